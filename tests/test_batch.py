"""Batch cohorts: replicate trials reproduce single runs; power summary; CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from vtrial.batch import replicate_rows, run_batch, summarise_batch
from vtrial.engine import run_trial
from vtrial.errors import UserInputError
from vtrial.protocol import parse_protocol


def small_protocol(name: str = "batch-test", patients: int = 240):
    return parse_protocol(
        {
            "trial": {"name": name, "patients": patients, "horizon_months": 12, "seed": 31},
            "cohort": {"primary": {"prostate": 1.0}},
            "arm": [
                {"name": "placebo", "drug": "none"},
                {"name": "denosumab", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0},
            ],
        },
        "test",
    )


@pytest.fixture(scope="module")
def batch_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "b"
    return run_batch([small_protocol()], out, replicates=3, jobs=2, block_size=100)


def test_batch_rows_reproduce_single_runs_with_the_derived_seed(batch_result, tmp_path):
    folder, _ = batch_result
    table = pd.read_parquet(folder / "batch.parquet")
    assert table["replicate"].tolist() == [0, 1, 2]
    protocol = small_protocol()
    run_dir = tmp_path / "rep2"
    run_trial(protocol, run_dir, jobs=1, block_size=64, replicate=2)
    single = replicate_rows(pd.read_parquet(run_dir / "patients.parquet"), protocol, replicate=2)[0]
    row = table[table["replicate"] == 2].iloc[0].to_dict()
    for key, value in single.items():
        if isinstance(value, float):
            assert row[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert row[key] == value, key
    # replicates are independent trials: their hazard ratios differ
    assert table["hazard_ratio"].nunique() == 3


def test_batch_folder_contents(batch_result):
    folder, summary = batch_result
    csv = pd.read_csv(folder / "batch.csv")
    assert len(csv) == 3 and {"hazard_ratio", "ci_low", "ci_high", "p_value", "n_arm"} <= set(csv.columns)
    on_disk = json.loads((folder / "batch_summary.json").read_text())
    assert on_disk == summary
    assert summary[0]["replicates"] == 3
    assert (folder / "protocol-batch-test.toml").is_file()


def test_power_is_share_of_significant_replicates():
    rows = pd.DataFrame(
        {
            "trial": "t", "arm": "a", "reference": "r", "replicate": range(4),
            "n_arm": 100, "n_reference": 100,
            "proportion_with_sre_arm": [0.2, 0.3, 0.25, 0.2], "proportion_with_sre_reference": 0.4,
            "hazard_ratio": [0.6, 0.9, 1.3, 0.7], "ci_low": 0.5, "ci_high": 1.5,
            "p_value": [0.01, 0.40, 0.03, 0.08],
        }
    )
    (s,) = summarise_batch(rows, alpha=0.05)
    assert s["power_two_sided"] == 0.5  # p = 0.01 and 0.03
    # one-sided in favour of the arm: HR < 1 and p/2 < 0.05 -> 0.01 and 0.08 (0.04); not HR 1.3
    assert s["power_one_sided"] == 0.5
    assert s["hazard_ratio"]["median"] == pytest.approx(0.8)
    assert s["power_two_sided_mc_se"] == pytest.approx(np.sqrt(0.25 / 4))


def test_batch_rejects_bad_options(tmp_path):
    with pytest.raises(UserInputError, match="--replicates"):
        run_batch([small_protocol()], tmp_path / "x", replicates=0)
    with pytest.raises(UserInputError, match="--alpha"):
        run_batch([small_protocol()], tmp_path / "x", replicates=1, alpha=1.5)


def test_cli_run_writes_the_full_run_folder_and_report_rebuilds_it(tmp_path):
    protocol = tmp_path / "p.toml"
    protocol.write_text(
        '[trial]\nname = "cli-run"\npatients = 120\nhorizon_months = 12\nseed = 5\n'
        '[cohort]\nprimary = { breast = 1.0 }\n'
        '[[arm]]\nname = "zoledronic_acid"\ndrug = "zoledronic_acid"\ndose_mg = 4.0\nevery_weeks = 4.0\n'
        '[[arm]]\nname = "denosumab"\ndrug = "denosumab"\ndose_mg = 120.0\nevery_weeks = 4.0\n'
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vtrial.cli"]
    done = subprocess.run([*cmd, "run", str(protocol), "--out", str(out), "--jobs", "1", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("protocol.toml", "patients.parquet", "events.parquet", "summary.json", "report.html",
                 "manifest.json"):
        assert (out / name).is_file(), name
    first = (out / "summary.json").read_bytes()
    again = subprocess.run([*cmd, "report", str(out)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (out / "summary.json").read_bytes() == first
    # a second run into the same folder needs --force: exit 2, a message, no traceback
    refused = subprocess.run([*cmd, "run", str(protocol), "--out", str(out), "--quiet"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr


def test_two_protocols_sharing_a_trial_name_are_refused_before_any_folder(tmp_path):
    """Pooled, they doubled R of one comparison and kept one protocol's copy (issue 17, defect 9)."""
    out = tmp_path / "b"
    with pytest.raises(UserInputError) as info:
        run_batch([small_protocol("same", 240), small_protocol("same", 300)], out, replicates=2, jobs=1, block_size=100)
    assert str(info.value) == ("trial.name: 2 protocols share the name(s) ['same']; a batch keys its rows and files "
                               "by trial.name Fix: give each protocol its own trial.name (and each file once)")
    assert list(tmp_path.iterdir()) == []
