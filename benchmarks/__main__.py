"""``python -m benchmarks``: run every benchmark, print the table (with the speed-up over the stored
baseline), update docs/performance.md; ``--save-baseline`` stores these timings as the new baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import BASELINE, compare, run_all, save_baseline, table, write_report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 1,000,000-patient scaling point")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each timing (min and median reported)")
    parser.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="a checkout of the previous release: its end-to-end runs are timed in the same run",
    )
    parser.add_argument("--save-baseline", action="store_true", help=f"write these timings to {BASELINE.name}")
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/performance.md as it is")
    args = parser.parse_args()
    rows = compare(run_all(quick=args.quick, repeats=args.repeats, previous=args.previous))
    if args.save_baseline:
        save_baseline(rows)
    print(write_report(rows) if not args.no_report else table(rows))


if __name__ == "__main__":
    main()
