"""Parameter uncertainty: the Laplace approximation, its draws, the ensemble file and runs under it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import two_arm_protocol
from test_cli import run_main

from vtrial.analysis.summary import headline, spread, uncertainty_block
from vtrial.calibration import uncertainty as ensemble_module
from vtrial.calibration.fit import FITTED
from vtrial.calibration.uncertainty import (
    Laplace,
    laplace,
    load_ensemble,
    sample,
    write_ensemble,
)
from vtrial.model.parameters import REGISTRY
from vtrial.protocol import load_protocol
from vtrial.uncertainty import run_draws

#: Two parameters well inside their ranges (log-width 4.6 and 1.6).
TWO = ("fracture_base_hazard", "zoledronic_acid_emax")


def test_spread_is_numpy_linear_percentiles_of_the_estimable_draws():
    # kept 1, 2, 3, 4 (None and NaN are not estimable); linear rank p/100 * (4 - 1):
    # 2.5% -> 0.075 -> 1 + 0.075 = 1.075; 50% -> 1.5 -> 2.5; 97.5% -> 2.925 -> 3.925
    assert spread([3.0, None, 1.0, float("nan"), 4.0, 2.0]) == pytest.approx(
        {"median": 2.5, "low": 1.075, "high": 3.925, "estimable": 4})
    assert spread([None, None]) == {"median": None, "low": None, "high": None, "estimable": 0}


def test_uncertainty_block_gathers_each_headline_number_over_draws():
    draws = [
        {"arms": {"a": {"proportion_with_sre": p, "median_time_to_first_sre_months": None,
                        "sre_rate_per_patient_year": 1.0, "median_overall_survival_months": 10.0}},
         "comparisons": [{"arm": "b", "reference": "a", "time_to_first_sre": hr,
                          "first_and_subsequent_sre": 0.5, "overall_survival": None}]}
        for p, hr in ((0.2, 0.9), (0.4, 0.7))
    ]
    block = uncertainty_block(draws, "laplace")
    assert block["parameter_draws"] == 2 and block["percentiles"] == [2.5, 50.0, 97.5]
    # two values: 2.5% -> 0.2 + 0.025 * 0.2 = 0.205, 97.5% -> 0.395
    assert block["arms"]["a"]["proportion_with_sre"] == pytest.approx(
        {"median": 0.3, "low": 0.205, "high": 0.395, "estimable": 2})
    assert block["arms"]["a"]["median_time_to_first_sre_months"]["estimable"] == 0
    c = block["comparisons"][0]
    assert (c["arm"], c["reference"]) == ("b", "a")
    assert c["time_to_first_sre"] == pytest.approx({"median": 0.8, "low": 0.705, "high": 0.895, "estimable": 2})
    assert c["overall_survival"]["median"] is None


def _linear(names: tuple[str, ...], a: np.ndarray, b: np.ndarray):
    """Residuals linear in log v around the registry's values: r = A (log v - log v0) + b."""
    centre = np.log([REGISTRY[n].value for n in names])
    return lambda values: a @ (np.log(values) - centre) + b


def test_laplace_covariance_is_s2_times_the_inverse_of_jtj():
    a = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [1.0, -1.0]])
    b = np.array([0.5, -1.0, 1.0, 0.5])
    approx = laplace(_linear(TWO, a, b), TWO)
    s2 = (0.25 + 1 + 1 + 0.25) / (4 - 2)  # sum r^2 / (n - p) = 1.25
    # A^T A = [[6, 0], [0, 11]] -> inverse diag(1/6, 1/11)
    assert approx.scale2 == pytest.approx(1.25) == pytest.approx(s2)
    np.testing.assert_allclose(approx.covariance, [[1.25 / 6, 0], [0, 1.25 / 11]], atol=1e-9)
    assert approx.rank == 2 and approx.non_identified == [] and approx.dof == 2


def test_a_direction_the_targets_do_not_see_gets_no_spread_and_is_reported():
    names = (*TWO, "radiation_hazard")
    a = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [2.0, 0.0, 2.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    approx = laplace(_linear(names, a, np.array([1.0, 0.0, 0.0, 1.0, 0.0])), names)
    assert approx.rank == 2
    (dropped,) = approx.non_identified
    assert set(dropped["loadings"]) == set(names)
    null = np.array([1.0, 0.0, -1.0]) / np.sqrt(2)  # first minus third: the residuals do not change
    assert abs(dropped["loadings"]["fracture_base_hazard"]) == pytest.approx(null[0], abs=1e-4)
    np.testing.assert_allclose(approx.covariance @ null, 0, atol=1e-9)
    draws = np.log(sample(approx, 50, seed=3))
    np.testing.assert_allclose((draws - approx.centre) @ null, 0, atol=1e-7)


def test_draws_are_reproducible_and_inside_every_plausible_range():
    centre = np.log([REGISTRY[n].value for n in TWO])
    wide = Laplace(TWO, centre, np.diag([4.0, 4.0]), 1.0, 10, 2, [])  # sd 2 in log: most candidates leave the range
    first, again = sample(wide, 300, seed=11), sample(wide, 300, seed=11)
    np.testing.assert_array_equal(first, again)
    for j, name in enumerate(TWO):
        assert REGISTRY[name].low <= first[:, j].min() and first[:, j].max() <= REGISTRY[name].high
    assert not np.array_equal(first, sample(wide, 300, seed=12))


def _ensemble(tmp_path: Path, draws: np.ndarray | None = None) -> Path:
    """An ensemble over FITTED in ``tmp_path``: the fitted values first, then small log-normal draws."""
    centre = np.log([REGISTRY[n].value for n in FITTED])
    approx = Laplace(FITTED, centre, np.eye(len(FITTED)) * 1e-4, 1.0, 40, len(FITTED), [])
    values = np.vstack([np.exp(centre), sample(approx, 4, seed=1)]) if draws is None else draws
    path = tmp_path / "parameter-draws.csv"
    write_ensemble(path, values, approx, {"created_utc": "2025-01-01T00:00:00+00:00", "patients": 10})
    return path


def test_load_ensemble_reads_the_first_k_and_refuses_bad_requests(tmp_path, monkeypatch):
    path = _ensemble(tmp_path)
    sets, sidecar = load_ensemble(2, path)
    assert len(sets) == 2 and sets[0] == {n: pytest.approx(REGISTRY[n].value, rel=1e-9) for n in FITTED}
    assert sidecar["method"] == "laplace" and sidecar["draws"] == 5
    with pytest.raises(Exception, match=r"--parameter-draws: must be 0 or more, got -1"):
        load_ensemble(-1, path)
    with pytest.raises(Exception, match=r"--parameter-draws: asks for 6 parameter sets but the ensemble holds 5 "
                                         r"Fix: pass at most 5, or regenerate a larger ensemble with "
                                         r"`vtrial calibrate --uncertainty --draws 6`"):
        load_ensemble(6, path)
    with pytest.raises(Exception, match=r"missing\.csv: --parameter-draws: the parameter ensemble \(draws and "
                                         r"sidecar\) is missing Fix: generate it with `vtrial calibrate --uncertainty`"):
        load_ensemble(1, tmp_path / "missing.csv")
    path.write_text(path.read_text().replace("draw,", "draw ,"))
    with pytest.raises(Exception, match="the draws differ from those its sidecar describes"):
        load_ensemble(1, path)


def test_an_ensemble_made_for_other_parameter_values_is_refused(tmp_path, monkeypatch):
    path = _ensemble(tmp_path)
    refitted = dataclasses.replace(REGISTRY["radiation_hazard"], value=REGISTRY["radiation_hazard"].value * 1.1)
    monkeypatch.setitem(REGISTRY, "radiation_hazard", refitted)
    with pytest.raises(Exception, match=r"the ensemble was made for another parameter set .* Fix: regenerate it "
                                         r"with `vtrial calibrate --uncertainty`, or run without --parameter-draws"):
        load_ensemble(1, path)


def test_the_shipped_ensemble_is_for_the_current_parameters():
    sets, sidecar = load_ensemble(20)
    assert len(sets) == 20 and sidecar["draws"] >= 20
    for parameters in sets:
        assert all(REGISTRY[n].low <= v <= REGISTRY[n].high for n, v in parameters.items())


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(two_arm_protocol("small", 20))
    return path


@pytest.mark.slow  # about 20 s on the shared machine: two process pools
def test_draws_share_the_patients_and_do_not_depend_on_jobs(tmp_path, small):
    protocol = load_protocol(small)
    sets, sidecar = load_ensemble(3, _ensemble(tmp_path))
    results = []
    for jobs in (1, 2):
        folder = tmp_path / f"jobs{jobs}"
        folder.mkdir()
        results.append(json.loads(run_draws(protocol, folder, sets, sidecar, jobs=jobs).read_text()))
        assert not (folder / "parameter-draws").exists()
    assert results[0] == results[1]
    from vtrial.analysis import analysis_settings, summarise
    from vtrial.analysis.summary import plain
    from vtrial.calibration.replicas import simulate_trial

    fitted = headline(summarise(*simulate_trial(protocol, 0)[:2], **analysis_settings(protocol)))
    assert results[0]["draws"][0]["headline"] == plain(fitted)  # draw 0 is the fitted set: the same trial


def test_a_resumed_run_keeps_the_draws_it_finished(tmp_path, small):
    protocol = load_protocol(small)
    sets, sidecar = load_ensemble(2, _ensemble(tmp_path))
    saved = {"arms": {}, "comparisons": []}  # a marker: a finished draw is read back, not simulated again
    (tmp_path / "parameter-draws").mkdir()
    (tmp_path / "parameter-draws" / "draw-00000.json").write_text(json.dumps({"parameters": sets[0], "headline": saved}))
    (tmp_path / "parameter-draws" / "draw-00001.json").write_text(json.dumps({"parameters": sets[0], "headline": saved}))
    draws = json.loads(run_draws(protocol, tmp_path, sets, sidecar, jobs=1).read_text())["draws"]
    assert draws[0]["headline"] == saved  # same parameters: kept
    assert draws[1]["headline"] != saved and draws[1]["parameters"] == sets[1]  # other parameters: run again


@pytest.mark.slow  # about 20 s on the shared machine: two process pools
def test_run_with_three_draws_writes_the_block_and_the_report_section(tmp_path, small, capsys, monkeypatch):
    monkeypatch.setattr(ensemble_module, "DRAWS_CSV", _ensemble(tmp_path))
    out = tmp_path / "run"
    code, _, err = run_main(capsys, "run", str(small), "--out", str(out), "--parameter-draws", "3", "--jobs", "1",
                            "--quiet")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    block = summary["uncertainty"]
    assert block["parameter_draws"] == 3 and block["method"] == "laplace"
    assert set(block["arms"]) == {"placebo", "zoledronic_acid"}
    assert block["comparisons"][0]["arm"] == "zoledronic_acid"
    draws = json.loads((out / "parameter-draws.json").read_text())["draws"]
    values = [d["headline"]["arms"]["placebo"]["proportion_with_sre"] for d in draws]
    assert block["arms"]["placebo"]["proportion_with_sre"]["median"] == pytest.approx(float(np.median(values)))
    assert 'id="table-uncertainty"' in (out / "report.html").read_text()
    # `vtrial report` rebuilds the same block from the run folder
    before = (out / "summary.json").read_text()
    assert run_main(capsys, "report", str(out))[0] == 0
    assert (out / "summary.json").read_text() == before


@pytest.mark.parametrize(("draws", "message"), [
    ("-2", "--parameter-draws: must be 0 or more, got -2"),
    ("9", "--parameter-draws: asks for 9 parameter sets but the ensemble holds 5"),
])
def test_bad_draw_counts_exit_2_before_anything_is_written(tmp_path, small, capsys, monkeypatch, draws, message):
    monkeypatch.setattr(ensemble_module, "DRAWS_CSV", _ensemble(tmp_path))
    out = tmp_path / "run"
    code, _, err = run_main(capsys, "run", str(small), "--out", str(out), "--parameter-draws", draws, "--quiet")
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_a_stale_ensemble_exits_2(tmp_path, small, capsys, monkeypatch):
    monkeypatch.setattr(ensemble_module, "DRAWS_CSV", _ensemble(tmp_path))
    refitted = dataclasses.replace(REGISTRY["radiation_hazard"], value=REGISTRY["radiation_hazard"].value * 1.1)
    monkeypatch.setitem(REGISTRY, "radiation_hazard", refitted)
    code, _, err = run_main(capsys, "run", str(small), "--out", str(tmp_path / "run"), "--parameter-draws", "1")
    assert code == 2 and "the ensemble was made for another parameter set" in err


def test_calibrate_uncertainty_refuses_the_fit_options(capsys):
    code, _, err = run_main(capsys, "calibrate", "--uncertainty", "--evaluations", "50")
    assert code == 2 and "--evaluations: is an option of the fit, not of --uncertainty" in err
