"""One block of a version-1 trial, timed in one process (``python -m benchmarks.block [--previous DIR]``).

The block of issue 12's speed criterion: 4,096 patients (breast and prostate, half each) under
placebo, zoledronic acid and denosumab at their label regimens (paired: the same patients in
each arm), 5 years. Each run simulates the three arms with :func:`vtrial.engine.simulate_block`
after one warm-up; wall and CPU time (``time.process_time``, less sensitive to other load on a
shared machine) are reported as min and median of the repeats. With ``--previous`` the same
block is timed on a checkout of the previous release in a child process, alternating run by run
with the current code, so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROTOCOL = """[trial]
name = "block"
patients = 4096
horizon_months = 60
accrual_months = 6
dropout_per_year = 0.1
design = "paired"
seed = 1

[cohort]
primary = { breast = 0.5, prostate = 0.5 }

[[arm]]
name = "placebo"
drug = "none"

[[arm]]
name = "zoledronic_acid"
drug = "zoledronic_acid"
dose_mg = 4.0
every_weeks = 4.0

[[arm]]
name = "denosumab"
drug = "denosumab"
dose_mg = 120.0
every_weeks = 4.0
"""


def time_block(repeats: int) -> list[tuple[float, float]]:
    """``(wall, cpu)`` seconds of each of ``repeats`` runs of the block's three arms (after one warm-up run)."""
    from vtrial.engine import plan_tasks, simulate_block
    from vtrial.protocol import load_protocol
    from vtrial.streams import Streams

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block.toml"
        path.write_text(PROTOCOL)
        protocol = load_protocol(path)
    streams = Streams(1)
    tasks = plan_tasks(protocol, streams, 4096)
    out = []
    for k in range(repeats + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        for task in tasks:
            simulate_block(protocol, streams, task)
        if k:
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def _child(code: Path, repeats: int) -> list[tuple[float, float]]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(repeats)], env=env, check=True, capture_output=True, text=True
    )
    return [tuple(t) for t in json.loads(done.stdout)]


def summary(runs: list[tuple[float, float]]) -> str:
    """``wall min (median), cpu min (median)`` of the runs."""
    wall, cpu = np.array(runs).T
    return (
        f"wall {wall.min():.2f} s (median {np.median(wall):.2f}), "
        f"cpu {cpu.min():.2f} s (median {np.median(cpu):.2f}), {len(runs)} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.block", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", type=Path, default=None, help="a checkout of the previous release")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:  # run by _child with the code to time on PYTHONPATH
        print(json.dumps(time_block(args.child)))
        return
    current: list[tuple[float, float]] = []
    previous: list[tuple[float, float]] = []
    here = Path(__file__).resolve().parents[1]
    for _ in range(args.repeats):  # one run each at a time, alternating
        current += _child(here, 1)
        if args.previous is not None:
            previous += _child(args.previous.resolve(), 1)
    print(f"current:  {summary(current)}")
    if previous:
        print(f"previous: {summary(previous)}")
        ratio = np.array(current).T.min(axis=1) / np.array(previous).T.min(axis=1)
        print(f"current / previous (min): wall {ratio[0]:.2f}x, cpu {ratio[1]:.2f}x")


if __name__ == "__main__":
    main()
