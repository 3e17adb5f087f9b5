"""Numerical robustness at the edges of valid input, and bitwise reproducibility.

Extreme but valid protocols (each primary alone, creatinine clearance near 15 mL/min, 1 or 50
lesions, a 120-month horizon, 0.001 mg and 1000 mg doses, every interval from 1 to 52 weeks)
are simulated through the public API and must give finite follow-up and event days within
the cut-off, at most one death per patient and SRE proportions in [0, 1]. The second half
extends tests/test_engine.py's determinism checks: 4 workers, blocks of 1 and 37, the batch
and the cohort command give the same bytes for the same seed, and other bytes for another.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vtrial.errors import ProtocolWarning
from vtrial.batch import run_batch
from vtrial.cohort import sample_cohort
from vtrial.engine import Task, plan_tasks, run_trial, simulate_block
from vtrial.model import simulate
from vtrial.protocol import apply_overrides, parse_protocol
from vtrial.streams import Streams
from vtrial.vocabulary import DAYS_PER_MONTH, EVENT_TYPES, PRIMARIES

ROOT = Path(__file__).resolve().parents[1]


def protocol_with(cohort: dict | None = None, arm: dict | None = None, **trial) -> dict:
    return {
        "trial": {"name": "edge", "patients": 40, "horizon_months": 24, "seed": 17, **trial},
        "cohort": {"primary": {"breast": 1.0}, **(cohort or {})},
        "arm": [arm or {"name": "zol", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0}],
        "analysis": {
            "sre_types": [
                "pathological_fracture",
                "spinal_cord_compression",
                "radiation_to_bone",
                "surgery_to_bone",
                "hypercalcaemia",
            ]
        },
    }


def simulate_protocol(data: dict) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Patients and events of the protocol's first arm (one block, through the engine's task)."""
    protocol = parse_protocol(data, "edge")
    streams = Streams(protocol.trial.seed)
    task = Task(0, 0, np.arange(protocol.trial.patients, dtype=np.int64))
    patients, events, _ = simulate_block(protocol, streams, task)
    return pd.DataFrame(patients), pd.DataFrame(events), protocol.trial.horizon_months * DAYS_PER_MONTH


def assert_sane(patients: pd.DataFrame, events: pd.DataFrame, horizon_days: float) -> None:
    """The invariants every simulated trial must keep."""
    follow = patients["followup_days"].to_numpy(dtype=float)
    entry = patients["entry_day"].to_numpy(dtype=float)
    assert np.isfinite(follow).all() and (follow >= 0).all()
    assert (follow <= horizon_days - entry + 1e-9).all(), "follow-up beyond the data cut-off"
    day = events["day"].to_numpy(dtype=float)
    assert np.isfinite(day).all() and (day >= 0).all()
    end = patients.set_index("patient_id")["followup_days"].reindex(events["patient_id"]).to_numpy()
    assert (day <= end + 1e-9).all(), "an event after the end of follow-up"
    assert set(events["type"]) <= set(EVENT_TYPES)
    deaths = events[events["type"] == "death"].groupby("patient_id").size()
    assert (deaths <= 1).all(), "a patient died twice"
    died = patients.set_index("patient_id")["died"]
    assert died[died].index.sort_values().tolist() == deaths.index.sort_values().tolist()
    with_sre = (patients["n_sre"] > 0).mean()
    assert 0.0 <= with_sre <= 1.0
    assert (patients["n_sre"] >= 0).all() and (patients["n_lesions"] >= 1).all()
    first = patients["first_sre_day"].to_numpy(dtype=float)
    assert np.array_equal(np.isnan(first), patients["n_sre"].to_numpy() == 0)


@pytest.mark.parametrize("primary", PRIMARIES)
def test_each_primary_alone(primary):
    patients, events, horizon = simulate_protocol(protocol_with({"primary": {primary: 1.0}}))
    assert_sane(patients, events, horizon)
    assert (patients["primary"] == primary).all()


@pytest.mark.parametrize("drug", ["zoledronic_acid", "denosumab"])
def test_creatinine_clearance_near_15(drug):
    cohort = {"creatinine_clearance_ml_min": {"mean": 15.0, "sd": 1.0, "min": 15.0, "max": 20.0}}
    arm = {"name": "a", "drug": drug, "dose_mg": 4.0 if drug == "zoledronic_acid" else 120.0, "every_weeks": 4.0}
    patients, events, horizon = simulate_protocol(protocol_with(cohort, arm))
    assert_sane(patients, events, horizon)
    assert patients["creatinine_clearance_ml_min"].between(15.0, 20.0).all()


@pytest.mark.parametrize("mean", [1.0, 50.0])
def test_lesions_at_the_bounds(mean):
    patients, events, horizon = simulate_protocol(protocol_with({"lesions": {"mean": mean}}))
    assert_sane(patients, events, horizon)
    if mean == 1.0:
        assert (patients["n_lesions"] == 1).all()
    else:
        assert patients["n_lesions"].mean() > 20 and patients["n_lesions"].max() <= 50


def test_ten_year_horizon():
    patients, events, horizon = simulate_protocol(protocol_with(patients=20, horizon_months=120))
    assert_sane(patients, events, horizon)
    assert horizon == pytest.approx(3652.5)


@pytest.mark.parametrize("dose", [0.001, 1000.0])
@pytest.mark.parametrize("drug", ["zoledronic_acid", "pamidronate", "denosumab"])
def test_extreme_doses(drug, dose):
    # an implausible dose runs, with the plausibility warning naming the field
    with pytest.warns(ProtocolWarning, match=r"arm\[0\]\.dose_mg: .* it runs as given"):
        patients, events, horizon = simulate_protocol(
            protocol_with(arm={"name": "a", "drug": drug, "dose_mg": dose, "every_weeks": 4.0})
        )
    assert_sane(patients, events, horizon)


def test_a_custom_agent_at_full_effect():
    mechanism = {
        "rankl_inhibition": 1.0,
        "osteoclast_inhibition": 1.0,
        "tgf_beta_inhibition": 1.0,
        "pthrp_inhibition": 1.0,
        "tumour_kill": 1.0,
        "half_life_days": 0.5,
    }
    arm = {"name": "a", "drug": "custom", "every_weeks": 1.0, "mechanism": mechanism}
    patients, events, horizon = simulate_protocol(protocol_with(arm=arm))
    assert_sane(patients, events, horizon)


@pytest.mark.parametrize("weeks", [1, 3, 13, 52])
def test_dosing_intervals(weeks):
    arm = {"name": "a", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": float(weeks)}
    assert_sane(*simulate_protocol(protocol_with(arm=arm, patients=20)))


@pytest.mark.slow
@pytest.mark.parametrize("weeks", range(1, 53))
@pytest.mark.parametrize("drug", ["zoledronic_acid", "denosumab"])
def test_every_dosing_interval(drug, weeks):
    arm = {"name": "a", "drug": drug, "dose_mg": 4.0, "every_weeks": float(weeks)}
    assert_sane(*simulate_protocol(protocol_with(arm=arm, patients=60)))


def test_model_direct_call_on_a_sampled_cohort():
    """``simulate`` on ``sample_cohort`` (no engine): the same invariants, on a mixed paired cohort."""
    protocol = parse_protocol(protocol_with({"primary": dict.fromkeys(PRIMARIES, 1.0)}, patients=60), "edge")
    streams = Streams(5)
    cohort = sample_cohort(protocol, np.arange(60), streams)
    patients, events, _ = simulate(cohort, protocol.arm[0], 24 * DAYS_PER_MONTH, streams)
    patients = pd.DataFrame(patients).assign(n_sre=0, first_sre_day=np.nan)
    assert_sane(patients, pd.DataFrame(events), 24 * DAYS_PER_MONTH)


def test_a_wide_biology_spread():
    """Per-patient multipliers far in the tails (log-SD 3: a 20-fold spread per SD) stay finite."""
    cohort = {
        "biology_sd_log": {"tumour_growth_rate": 3.0, "pthrp_secretion": 3.0, "osteoblastic_drive": 3.0},
        "lesion_burden": {"median": 0.4, "sd_log": 3.0},
    }
    assert_sane(*simulate_protocol(protocol_with(cohort, patients=200)))


# --------------------------------------------------------------------------------------------
# bitwise reproducibility (extends tests/test_engine.py)


def engine_protocol(**trial):
    data = protocol_with({"primary": {"breast": 0.5, "lung": 0.5}}, **{"patients": 80, "horizon_months": 6, **trial})
    data["arm"].append({"name": "placebo", "drug": "none"})
    return parse_protocol(data, "edge")


def parquet_bytes(run_dir: Path) -> tuple[bytes, bytes]:
    return (run_dir / "patients.parquet").read_bytes(), (run_dir / "events.parquet").read_bytes()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("determinism") / "reference"
    run_trial(engine_protocol(), out, jobs=1, block_size=4096)
    return out


@pytest.mark.parametrize(("jobs", "block_size"), [(4, 37), (2, 1)])
def test_same_bytes_for_four_workers_and_odd_blocks(reference_run, tmp_path, jobs, block_size):
    out = tmp_path / "run"
    run_trial(engine_protocol(), out, jobs=jobs, block_size=block_size)
    assert parquet_bytes(out) == parquet_bytes(reference_run)


@pytest.mark.parametrize("block_size", [1000, 128])
def test_same_bytes_for_large_blocks(tmp_path, block_size):
    """Block sizes that pad the lesion axis differently (a reduction over lesions must not depend on it)."""
    data = protocol_with({"primary": {"breast": 0.5, "lung": 0.5}}, patients=1200, horizon_months=3)
    runs = []
    for size in (block_size, 1200):
        out = tmp_path / f"b{size}"
        run_trial(parse_protocol(data, "edge"), out, jobs=2, block_size=size)
        runs.append(parquet_bytes(out))
    assert runs[0] == runs[1]


def test_replicates_and_seeds_differ(reference_run, tmp_path):
    other_seed, other_replicate = tmp_path / "seed", tmp_path / "replicate"
    run_trial(apply_overrides(engine_protocol(), seed=18), other_seed, jobs=1)
    run_trial(engine_protocol(), other_replicate, jobs=1, replicate=1)
    reference = parquet_bytes(reference_run)
    assert parquet_bytes(other_seed)[0] != reference[0]
    assert parquet_bytes(other_replicate)[0] != reference[0]
    assert parquet_bytes(other_seed)[0] != parquet_bytes(other_replicate)[0]


def test_batch_is_identical_for_any_workers(tmp_path):
    protocol = engine_protocol(patients=60)
    one, _ = run_batch([protocol], tmp_path / "one", replicates=4, jobs=1)
    two, _ = run_batch([protocol], tmp_path / "two", replicates=4, jobs=2, block_size=25)
    assert (one / "batch.parquet").read_bytes() == (two / "batch.parquet").read_bytes()
    rows = pd.read_parquet(one / "batch.parquet")
    assert rows["replicate"].tolist() == [0, 1, 2, 3]
    assert rows["hazard_ratio"].nunique() == 4


def test_cohort_command_is_identical_across_processes(tmp_path):
    protocol_file = tmp_path / "p.toml"
    protocol_file.write_text(
        "[trial]\nname = 'c'\npatients = 300\nhorizon_months = 12\nseed = 4\n"
        "[cohort]\nprimary = { breast = 1.0, prostate = 1.0, lung = 1.0, head_and_neck = 1.0 }\n"
        "[[arm]]\nname = 'placebo'\ndrug = 'none'\n"
    )
    outputs = {}
    for name, hash_seed, seed in (("a", "1", "4"), ("b", "999", "4"), ("c", "1", "5")):
        out = tmp_path / f"{name}.parquet"
        subprocess.run(
            [sys.executable, "-m", "vtrial.cli", "cohort", str(protocol_file), "--out", str(out), "--seed", seed],
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
        )
        outputs[name] = out.read_bytes()
    assert outputs["a"] == outputs["b"]
    assert outputs["a"] != outputs["c"]
    assert len(pd.read_parquet(tmp_path / "a.parquet")) == 300


def test_run_protocol_copy_is_unchanged_by_a_run():
    """A run does not mutate the protocol it is given (the resolved protocol is what is reproduced)."""
    protocol = engine_protocol()
    before = copy.deepcopy(protocol)
    streams = Streams(protocol.trial.seed)
    for task in plan_tasks(protocol, streams, 4096):
        simulate_block(protocol, streams, task)
    assert protocol == before
