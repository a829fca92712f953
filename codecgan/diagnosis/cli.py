"""`codecgan diagnose PATH [--json]`: the ranked findings of a finished or running training run.
`codecgan diagnose --list-codes [--json]`: every code it can report (`codecgan.diagnosis.registry`)."""

from __future__ import annotations

import argparse
import sys

from codecgan.diagnosis.code_list import render_codes_json, render_codes_text
from codecgan.diagnosis.history import HistoryError
from codecgan.diagnosis.report import diagnose_path, render_json, render_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecgan diagnose",
        description="Name what went wrong in a training run, with its numbers and the experiment that confirms it.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        help="a TensorBoard log directory (one run or a parent of runs) or a CSV file with step and/or epoch "
        "columns plus one column per tag",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of findings (or codes) instead of text")
    parser.add_argument(
        "--list-codes",
        action="store_true",
        help="list every code diagnose can report: its severities, family, the callback that raises it live, and "
        "what it means",
    )
    return parser


def diagnose_main(argv: list[str]) -> int:
    """Run the diagnosis; prints the findings (or, with --list-codes, the codes) and returns 0, or prints a one-line
    error and returns 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_codes:
        if args.path is not None:
            parser.error("--list-codes takes no PATH")
        print(render_codes_json() if args.json else render_codes_text())
        return 0
    if args.path is None:
        parser.error("give a PATH to diagnose, or --list-codes")
    try:
        findings, runs = diagnose_path(args.path)
    except HistoryError as error:
        print(f"codecgan diagnose: error: {error}", file=sys.stderr)
        return 2
    print(render_json(findings) if args.json else render_text(findings, args.path, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(diagnose_main(sys.argv[1:]))
