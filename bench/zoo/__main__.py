"""`python -m bench.zoo [overlay ...]`: run the failure zoo (see `bench.zoo`), write its table and pictures."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import bench.zoo
from bench.zoo.entries import ROOT, ZOO
from bench.zoo.report import write_report
from bench.zoo.runner import confirm_all, reuse_runs, run_all

RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "runs" / "zoo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zoo", description=bench.zoo.__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="overlays to run (default: all)")
    parser.add_argument("--slots", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--runs", type=Path, default=RUNS, help="where the run directories go (default runs/zoo)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where zoo.md, zoo.json and zoo/*.png go")
    parser.add_argument("--no-plots", action="store_true", help="skip the pictures")
    parser.add_argument("--no-confirm", action="store_true", help="skip `codecgan confirm` on each run")
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="diagnose the runs of the last `make zoo` again (after a rule changed) and re-use their finished confirm "
        "arms; exit statuses and wall times come from the last zoo.json. Only overlays it has no run of are trained",
    )
    args = parser.parse_args(argv)
    by_name = {entry.name: entry for entry in ZOO}
    unknown = [name for name in args.names if name not in by_name]
    if unknown:
        parser.error(f"unknown overlays {unknown}; choose from {sorted(by_name)}")
    entries = [by_name[name] for name in args.names] if args.names else list(ZOO)
    print(f"failure zoo: {len(entries)} runs, {args.slots} processes at a time, logs in {args.runs}", flush=True)
    start = time.monotonic()
    results = (
        reuse_runs(entries, args.runs, args.results, args.slots)
        if args.reuse_runs
        else run_all(entries, args.runs, args.slots)
    )
    if not args.no_confirm:
        confirm_all(entries, results, args.slots)
    total = time.monotonic() - start
    if args.reuse_runs:  # the runs' own time, from the zoo that trained them, plus this diagnosis
        total += json.loads((args.results / "zoo.json").read_text())["total_wall_s"]
    markdown = write_report(entries, results, total, args.results)
    if not args.no_plots:
        from bench.zoo.plots import draw_all  # matplotlib only when drawing

        draw_all(entries, results, args.results / "zoo")
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
