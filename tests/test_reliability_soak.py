"""Long soak (slow): 200 replicate trials in one batch lose nothing and do not grow memory."""

from __future__ import annotations

import threading

import pandas as pd
import psutil
import pytest

from vtrial.batch import run_batch
from vtrial.protocol import parse_protocol

REPLICATES = 200
#: Allowed growth of the parent's resident memory over the whole batch.
PARENT_GROWTH_BOUND_MB = 150.0
#: Allowed resident memory of any one worker process.
WORKER_PEAK_BOUND_MB = 1000.0


def soak_protocol():
    data = {
        "trial": {"name": "soak", "patients": 120, "horizon_months": 12, "seed": 31},
        "cohort": {"primary": {"breast": 0.5, "prostate": 0.5}},
        "arm": [
            {"name": "placebo", "drug": "none"},
            {"name": "zoledronic_acid", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0},
            {"name": "denosumab", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0},
        ],
        "analysis": {"reference_arm": "placebo"},
    }
    return parse_protocol(data, "soak")


class WorkerPeak:
    """Samples the resident memory of this process's children while a batch runs."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    self.peak_mb = max(self.peak_mb, child.memory_info().rss / 2**20)
                except psutil.Error:
                    continue  # the worker ended between listing and reading it
            self.samples += 1

    def __enter__(self) -> WorkerPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_two_hundred_replicates_lose_nothing_and_memory_stays_flat(tmp_path):
    protocol = soak_protocol()
    parent = psutil.Process()
    run_batch([protocol], tmp_path / "warm-up", replicates=4, jobs=2)  # imports, worker start, caches
    before_mb = parent.memory_info().rss / 2**20
    with WorkerPeak() as workers:
        out, summary = run_batch([protocol], tmp_path / "soak", replicates=REPLICATES, jobs=2)
    after_mb = parent.memory_info().rss / 2**20
    rows = pd.read_parquet(out / "batch.parquet")
    assert len(rows) == 2 * REPLICATES
    for arm in ("zoledronic_acid", "denosumab"):
        comparison = rows[rows["arm"] == arm]
        assert sorted(comparison["replicate"]) == list(range(REPLICATES))
        hazard_ratio = comparison["hazard_ratio"].dropna()
        assert len(hazard_ratio) >= 0.95 * REPLICATES  # a replicate without SREs in an arm has no HR
        assert hazard_ratio.nunique() == len(hazard_ratio), "two replicates gave the same trial"
        assert (comparison["n_arm"] + comparison["n_reference"]).eq(80).all()
    assert [s["replicates"] for s in summary] == [REPLICATES, REPLICATES]
    print(
        f"parent RSS {before_mb:.0f} -> {after_mb:.0f} MB; worker peak {workers.peak_mb:.0f} MB "
        f"({workers.samples} samples)"
    )
    assert after_mb - before_mb < PARENT_GROWTH_BOUND_MB
    assert workers.samples > 0 and 0 < workers.peak_mb < WORKER_PEAK_BOUND_MB
