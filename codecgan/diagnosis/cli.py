"""`codecgan diagnose PATH [--json]`: the ranked findings of a finished or running training run."""

from __future__ import annotations

import argparse
import sys

from codecgan.diagnosis.history import HistoryError
from codecgan.diagnosis.report import diagnose_path, render_json, render_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecgan diagnose",
        description="Name what went wrong in a training run, with its numbers and the experiment that confirms it.",
    )
    parser.add_argument(
        "path",
        help="a TensorBoard log directory (one run or a parent of runs) or a CSV file with step and/or epoch "
        "columns plus one column per tag",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of findings instead of text")
    return parser


def diagnose_main(argv: list[str]) -> int:
    """Run the diagnosis; prints the findings and returns 0, or prints a one-line error and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        findings, runs = diagnose_path(args.path)
    except HistoryError as error:
        print(f"codecgan diagnose: error: {error}", file=sys.stderr)
        return 2
    print(render_json(findings) if args.json else render_text(findings, args.path, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(diagnose_main(sys.argv[1:]))
