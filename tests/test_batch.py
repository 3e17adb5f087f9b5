"""Batch cohorts: replicate trials reproduce single runs; power summary; CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_cli import run_main

from vtrial import batch as batch_module
from vtrial import cli
from vtrial.analysis.survival import treatment_effect
from vtrial.batch import (
    ROW_COLUMNS,
    replicate_rows,
    run_batch,
    search_sample_size,
    summarise_batch,
    trial_margins,
)
from vtrial.engine import run_trial
from vtrial.errors import UserInputError
from vtrial.protocol import parse_protocol, protocol_to_toml


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
    single = replicate_rows(
        pd.read_parquet(run_dir / "patients.parquet"),
        pd.read_parquet(run_dir / "events.parquet"),
        protocol,
        replicate=2,
    )[0]
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


def replicate_table(**columns) -> pd.DataFrame:
    """Hand-made batch rows: ``columns`` over a neutral row (every ratio 1, p 0.5, no margin met)."""
    n = max(len(v) for v in columns.values() if isinstance(v, (list, range, np.ndarray)))
    base = {
        "trial": "t",
        "patients": 200,
        "replicate": range(n),
        "seed": 1,
        "arm": "a",
        "reference": "r",
        "n_arm": 100,
        "n_reference": 100,
        "proportion_with_sre_arm": 0.3,
        "proportion_with_sre_reference": 0.4,
        "risk_difference": -0.1,
        "rd_ci_low": -0.2,
        "rd_ci_high": 0.0,
        "hazard_ratio": 1.0,
        "ci_low": 0.5,
        "ci_high": 1.5,
        "p_value": 0.5,
        "rate_ratio": 1.0,
        "rr_ci_low": 0.5,
        "rr_ci_high": 1.5,
        "rr_p_value": 0.5,
        "os_hazard_ratio": 1.0,
        "os_ci_low": 0.5,
        "os_ci_high": 1.5,
        "os_p_value": 0.5,
    }
    return pd.DataFrame({**base, **columns})[list(ROW_COLUMNS)]


def test_power_is_share_of_significant_replicates():
    rows = replicate_table(
        proportion_with_sre_arm=[0.2, 0.3, 0.25, 0.2],
        hazard_ratio=[0.6, 0.9, 1.3, 0.7],
        p_value=[0.01, 0.40, 0.03, 0.08],
        rr_p_value=[0.01, 0.01, 0.01, 0.2],
        rate_ratio=[0.5, 0.6, 0.7, 0.8],
        os_p_value=[0.2, 0.3, 0.4, 0.5],
    )
    (s,) = summarise_batch(rows, alpha=0.05)
    assert s["power_two_sided"] == 0.5  # p = 0.01 and 0.03
    # one-sided in favour of the arm: HR < 1 and p/2 < 0.05 -> 0.01 and 0.08 (0.04); not HR 1.3
    assert s["power_one_sided"] == 0.5
    assert s["hazard_ratio"]["median"] == pytest.approx(0.8)
    assert s["power_two_sided_mc_se"] == pytest.approx(np.sqrt(0.25 / 4))
    assert s["endpoints"]["first_and_subsequent_sre"]["power_two_sided"] == 0.75
    assert s["endpoints"]["first_and_subsequent_sre"]["rate_ratio"]["median"] == pytest.approx(0.65)
    assert s["endpoints"]["overall_survival"]["power_two_sided"] == 0.0
    assert s["non_inferiority"] is None


def test_batch_rejects_bad_options(tmp_path):
    with pytest.raises(UserInputError, match="--replicates"):
        run_batch([small_protocol()], tmp_path / "x", replicates=0)
    with pytest.raises(UserInputError, match="--alpha"):
        run_batch([small_protocol()], tmp_path / "x", replicates=1, alpha=1.5)


def test_cli_run_writes_the_full_run_folder_and_report_rebuilds_it(tmp_path):
    protocol = tmp_path / "p.toml"
    protocol.write_text(
        '[trial]\nname = "cli-run"\npatients = 120\nhorizon_months = 12\nseed = 5\n'
        "[cohort]\nprimary = { breast = 1.0 }\n"
        '[[arm]]\nname = "zoledronic_acid"\ndrug = "zoledronic_acid"\ndose_mg = 4.0\nevery_weeks = 4.0\n'
        '[[arm]]\nname = "denosumab"\ndrug = "denosumab"\ndose_mg = 120.0\nevery_weeks = 4.0\n'
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vtrial.cli"]
    done = subprocess.run(
        [*cmd, "run", str(protocol), "--out", str(out), "--jobs", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for name in ("protocol.toml", "patients.parquet", "events.parquet", "summary.json", "report.html", "manifest.json"):
        assert (out / name).is_file(), name
    first = (out / "summary.json").read_bytes()
    again = subprocess.run([*cmd, "report", str(out)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (out / "summary.json").read_bytes() == first
    # a second run into the same folder needs --force: exit 2, a message, no traceback
    refused = subprocess.run(
        [*cmd, "run", str(protocol), "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr


def test_two_protocols_sharing_a_trial_name_are_refused_before_any_folder(tmp_path):
    """Pooled, they doubled R of one comparison and kept one protocol's copy (issue 17, defect 9)."""
    out = tmp_path / "b"
    with pytest.raises(UserInputError) as info:
        run_batch([small_protocol("same", 240), small_protocol("same", 300)], out, replicates=2, jobs=1, block_size=100)
    assert str(info.value) == (
        "trial.name: 2 protocols share the name(s) ['same']; a batch keys its rows and files "
        "by trial.name Fix: give each protocol its own trial.name (and each file once)"
    )
    assert list(tmp_path.iterdir()) == []


def test_power_of_a_known_hazard_ratio_matches_schoenfelds_normal_approximation():
    """300 synthetic trials (100 per arm, exponential times, HR 0.7, no censoring: 200 events each).

    Schoenfeld: power = Phi(sqrt(D / 4) |log HR| - z_0.975) = Phi(sqrt(50) 0.3567 - 1.96) = Phi(0.562) = 0.713.
    Tolerance: 3 Monte Carlo standard errors, 3 sqrt(0.713 0.287 / 300) = 0.078.
    """
    rng = np.random.default_rng(20)
    treated = np.repeat([1, 0], 100)
    hr, p = [], []
    for _ in range(300):
        times = rng.exponential(1.0 / np.where(treated == 1, 0.7, 1.0))
        fit = treatment_effect(pd.DataFrame({"stop": times, "event": True, "treated": treated}))
        hr.append(fit["hazard_ratio"])
        p.append(fit["p_value"])
    expected = stats.norm.cdf(np.sqrt(200 / 4) * abs(np.log(0.7)) - stats.norm.ppf(0.975))
    assert expected == pytest.approx(0.713, abs=5e-4)
    (s,) = summarise_batch(replicate_table(hazard_ratio=hr, p_value=p), alpha=0.05)
    assert s["power_two_sided"] == pytest.approx(expected, abs=3 * np.sqrt(expected * (1 - expected) / 300))
    assert s["hazard_ratio"]["median"] == pytest.approx(0.7, abs=0.03)


def test_non_inferiority_is_the_upper_95_bound_below_the_margin():
    rows = replicate_table(ci_high=[1.05, 1.10, np.nan, 1.079, 1.08], rd_ci_high=[0.01, 0.06, 0.04, np.nan, 0.05])
    (s,) = summarise_batch(rows, alpha=0.05, margins={"t": {"ni_hr": 1.08, "ni_rd": 0.05}})
    # 1.05 and 1.079 are below 1.08; 1.10 is not, 1.08 is not strictly below, NaN never meets it
    assert s["non_inferiority"]["hazard_ratio"] == {
        "margin": 1.08,
        "probability": 0.4,
        "mc_se": pytest.approx(np.sqrt(0.4 * 0.6 / 5)),
    }
    # 0.01 and 0.04 are below 0.05
    assert s["non_inferiority"]["risk_difference"]["probability"] == 0.4


def test_each_trial_meets_the_margins_of_its_own_protocol_unless_the_command_gives_them():
    """Two trials, one with ``[analysis] non_inferiority_hr = 1.08``, one without: the protocol's margin applies to
    its own trial only; ``--non-inferiority-hr`` (here 1.2) replaces it for every trial."""
    with_margin = small_protocol("a")
    with_margin = with_margin.model_copy(
        update={"analysis": with_margin.analysis.model_copy(update={"non_inferiority_hr": 1.08})}
    )
    protocols = [with_margin, small_protocol("b")]
    assert trial_margins(protocols, None, None) == {
        "a": {"ni_hr": 1.08, "ni_rd": None},
        "b": {"ni_hr": None, "ni_rd": None},
    }
    assert trial_margins(protocols, 1.2, 0.05) == {
        "a": {"ni_hr": 1.2, "ni_rd": 0.05},
        "b": {"ni_hr": 1.2, "ni_rd": 0.05},
    }
    rows = pd.concat(
        [replicate_table(ci_high=[1.05, 1.10, 1.15]).assign(trial=name) for name in ("a", "b")], ignore_index=True
    )
    by_trial = {s["trial"]: s for s in summarise_batch(rows, alpha=0.05, margins=trial_margins(protocols, None, None))}
    assert by_trial["a"]["non_inferiority"]["hazard_ratio"]["probability"] == pytest.approx(1 / 3)  # 1.05 < 1.08
    assert by_trial["b"]["non_inferiority"] is None
    overridden = summarise_batch(rows, alpha=0.05, margins=trial_margins(protocols, 1.2, None))
    assert [s["non_inferiority"]["hazard_ratio"]["probability"] for s in overridden] == [1.0, 1.0]


def synthetic_power(n: int) -> float:
    """A monotone power curve: Phi(sqrt(n) / 10 - 1.96); 0.8 is reached first at n = 785 (sqrt(785)/10 = 2.8018)."""
    return float(stats.norm.cdf(np.sqrt(n) / 10 - 1.96))


@pytest.mark.parametrize("start", [100, 5000])
def test_sample_size_search_finds_the_first_size_reaching_the_target(start):
    assert synthetic_power(784) < 0.8 <= synthetic_power(785)
    calls = []
    exact = search_sample_size(lambda n: calls.append(n) or synthetic_power(n), 0.8, start, tolerance=0.0)
    assert exact["patients"] == 785 and exact["power"] == synthetic_power(785)
    assert len(calls) == len(set(calls)) < 25  # each size once; bisection, not a scan
    coarse = search_sample_size(synthetic_power, 0.8, start)
    assert 785 <= coarse["patients"] <= 785 / 0.95 and coarse["power"] >= 0.8
    short = search_sample_size(synthetic_power, 0.8, start, maximum=700)
    assert short["patients"] is None and max(short["evaluated"]) == 700


def test_batch_cli_checks_the_new_options(tmp_path, capsys):
    protocol = tmp_path / "p.toml"
    protocol.write_text(
        '[trial]\nname = "p"\npatients = 40\nhorizon_months = 6\n[cohort]\nprimary = { breast = 1.0 }\n'
        '[[arm]]\nname = "a"\ndrug = "none"\n[[arm]]\nname = "b"\ndrug = "none"\n'
    )
    base = ["batch", str(protocol), "--replicates", "1", "--out", str(tmp_path / "b"), "--quiet"]
    cases = {
        ("--non-inferiority-hr", "0.9"): "error: --non-inferiority-hr: a hazard-ratio margin must be above 1, got 0.9 "
        "Fix: pass the largest hazard ratio that still counts as non-inferior, e.g. 1.08",
        ("--non-inferiority-rd", "5"): "error: --non-inferiority-rd: a risk-difference margin must be between 0 and 1",
        ("--target-power", "1.5"): "error: --target-power: --target-power must be between 0 and 1, got 1.5",
        (
            "--target-power",
            "0.8",
            str(protocol),
        ): "error: --target-power: a sample-size search takes one protocol, got 2",
    }
    for extra, message in cases.items():
        with pytest.raises(SystemExit) as info:
            cli.main([*base, *extra])
        assert info.value.code == cli.EXIT_USER
        assert capsys.readouterr().err.startswith(message), extra
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_batch_gives_the_same_rows_on_one_worker_and_on_dask(batch_result, tmp_path, capsys):
    """3 replicates: loky with 2 workers (the module's batch), loky with 1 and `vtrial batch --backend
    dask` (a local cluster of 2) write the same ``batch.csv`` and ``batch_summary.json``, byte for
    byte. Slow because the dask cluster starts its workers (~10 s on the shared machine)."""
    pytest.importorskip("dask.distributed")
    loky, _ = batch_result
    one, _ = run_batch([small_protocol()], tmp_path / "one", replicates=3, jobs=1, block_size=100)
    protocol = tmp_path / "batch-test.toml"
    protocol.write_text(protocol_to_toml(small_protocol()))
    dask = tmp_path / "dask"
    code, _, err = run_main(
        capsys,
        "batch",
        str(protocol),
        "--replicates",
        "3",
        "--jobs",
        "2",
        "--backend",
        "dask",
        "--out",
        str(dask),
        "--quiet",
    )
    assert code == 0, err
    assert json.loads((dask / "manifest.json").read_text())["backend"] == "dask"
    for folder in (one, dask):
        for name in ("batch.csv", "batch_summary.json"):
            assert (folder / name).read_bytes() == (loky / name).read_bytes(), (folder.name, name)


class Interrupt(Exception):
    """Stands for Ctrl-C after some replicates."""


def counting_replicates(monkeypatch) -> list[tuple[int, int]]:
    """Record the ``(patients, replicate)`` of every replicate simulated (in this process: ``jobs=1``)."""
    calls = []
    real = batch_module._replicate_task

    def task(protocol, replicate, block_size):
        calls.append((protocol.trial.patients, replicate))
        return real(protocol, replicate, block_size)

    monkeypatch.setattr(batch_module, "_replicate_task", task)
    return calls


def test_an_interrupted_batch_resumes_byte_identically_without_rerunning_finished_replicates(
    batch_result, tmp_path, monkeypatch
):
    """Interrupted after 2 of 3 replicates, resumed: the resumed batch simulates only replicate 2 and
    writes the same ``batch.csv``/``batch_summary.json`` as the uninterrupted batch (the module's,
    2 workers: results do not depend on the workers or block size)."""
    whole, _ = batch_result
    calls = counting_replicates(monkeypatch)

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_batch([small_protocol()], tmp_path / "b", replicates=3, jobs=1, on_progress=stop_after_two)
    partial = tmp_path / ".b.partial"
    assert sorted(p.name for p in (partial / "replicates").iterdir()) == [
        "batch-test-240-0.json",
        "batch-test-240-1.json",
    ]
    assert calls == [(240, 0), (240, 1)]
    progress = []
    folder, _ = run_batch(
        [small_protocol()],
        tmp_path / "b",
        replicates=3,
        jobs=1,
        resume=True,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert calls == [(240, 0), (240, 1), (240, 2)]
    assert progress == [(2, 3), (3, 3)]
    for name in ("batch.csv", "batch_summary.json"):
        assert (folder / name).read_bytes() == (whole / name).read_bytes(), name
    assert not partial.exists() and not (folder / "replicates").exists() and not (folder / "state.json").exists()


def fake_replicates(monkeypatch) -> list[tuple[int, int]]:
    """Replace the simulation of a replicate by hand-made rows: replicate ``r`` of a trial of ``n``
    patients is significant (p 0.01, else 0.5) when ``n >= 100 (r + 1)``; record each call."""
    calls = []

    def task(protocol, replicate, block_size):
        n = protocol.trial.patients
        calls.append((n, replicate))
        p = 0.01 if n >= 100 * (replicate + 1) else 0.5
        row = replicate_table(p_value=[p]).to_dict("records")[0]
        return [{**row, "trial": protocol.trial.name, "patients": n, "replicate": replicate, "seed": 31}]

    monkeypatch.setattr(batch_module, "_replicate_task", task)
    return calls


def test_an_interrupted_sample_size_search_resumes_from_the_saved_rows(tmp_path, monkeypatch):
    """4 replicates, target power 0.75 from 240 patients: power is 2/4 below 300 patients, 3/4 from 300
    and 4/4 from 400, so the search evaluates 240 (0.5), 480 (1), 360 (0.75), 300 (0.75), 270 (0.5),
    285 (0.5) and stops at 300 (285 - 270 <= 0.05 x 300). Interrupted after 10 replicates (during 360),
    the resumed search runs the other 14 once each and writes the same ``sample_size.json``,
    ``batch.csv`` and summary."""
    calls = fake_replicates(monkeypatch)
    whole, _ = run_batch([small_protocol()], tmp_path / "whole", replicates=4, jobs=1, target_power=0.75)
    sizes = list(dict.fromkeys(n for n, _ in calls))
    assert sizes == [240, 480, 360, 300, 270, 285] and len(calls) == 24
    search = json.loads((whole / "sample_size.json").read_text())
    assert search["patients"] == 300 and search["power"] == 0.75
    calls.clear()
    finished = []

    def stop_after_ten(done: int, total: int) -> None:
        if done:
            finished.append(done)
        if len(finished) == 10:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_batch(
            [small_protocol()], tmp_path / "b", replicates=4, jobs=1, target_power=0.75, on_progress=stop_after_ten
        )
    assert calls == [(240, r) for r in range(4)] + [(480, r) for r in range(4)] + [(360, 0), (360, 1)]
    calls.clear()
    folder, _ = run_batch([small_protocol()], tmp_path / "b", replicates=4, jobs=1, target_power=0.75, resume=True)
    assert calls == [(360, 2), (360, 3)] + [(n, r) for n in (300, 270, 285) for r in range(4)]
    for name in ("sample_size.json", "batch.csv", "batch_summary.json"):
        assert (folder / name).read_bytes() == (whole / name).read_bytes(), name


def test_resuming_a_batch_with_another_protocol_exits_2_and_keeps_its_replicates(tmp_path, capsys, monkeypatch):
    calls = fake_replicates(monkeypatch)
    protocol = tmp_path / "batch-test.toml"
    protocol.write_text(protocol_to_toml(small_protocol()))

    def stop_after_one(done: int, total: int) -> None:
        if done == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_batch([small_protocol()], tmp_path / "b", replicates=3, jobs=1, on_progress=stop_after_one)
    base = ["batch", str(protocol), "--replicates", "3", "--jobs", "1", "--out", str(tmp_path / "b"), "--quiet"]
    code, _, err = run_main(capsys, *base, "--seed", "32", "--resume")
    assert code == cli.EXIT_USER
    assert err == (
        f"error: {tmp_path / '.b.partial'}: protocols: the interrupted batch in this folder was started with other "
        "settings; changed: protocols Fix: resume with the same protocol and options, or pass --force instead of "
        "--resume to discard it and start again\n"
    )
    assert (tmp_path / ".b.partial" / "replicates" / "batch-test-240-0.json").is_file()
    code, _, err = run_main(capsys, *base)  # neither --resume nor --force: the finished replicate is kept
    assert code == cli.EXIT_USER
    assert err == (
        f"error: {tmp_path / 'b'}: an interrupted batch of this folder is kept, with its finished replicates, in "
        "the hidden folder .b.partial Fix: pass --resume to finish it (same protocol and options), or --force to "
        "discard it and start again\n"
    )
    assert calls == [(240, 0)]
    assert (tmp_path / ".b.partial" / "replicates" / "batch-test-240-0.json").is_file()
    code, _, err = run_main(capsys, *base, "--resume")
    assert code == 0, err
    assert calls == [(240, 0), (240, 1), (240, 2)]
    # interrupted again elsewhere, then --force: the finished replicate is discarded and run again
    with pytest.raises(Interrupt):
        run_batch([small_protocol()], tmp_path / "c", replicates=3, jobs=1, on_progress=stop_after_one)
    calls.clear()
    code, _, err = run_main(capsys, *base[:-3], "--out", str(tmp_path / "c"), "--quiet", "--force")
    assert code == 0, err
    assert calls == [(240, 0), (240, 1), (240, 2)]
