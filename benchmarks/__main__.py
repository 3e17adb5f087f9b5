"""``python -m benchmarks [--quick]``: run every benchmark, print the table, update docs/performance.md."""

from __future__ import annotations

import argparse

from benchmarks import run_all, write_report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 1,000,000-patient scaling point")
    args = parser.parse_args()
    print(write_report(run_all(quick=args.quick)))


if __name__ == "__main__":
    main()
