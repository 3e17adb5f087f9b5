"""Parameter uncertainty: the Laplace approximation, its draws, the ensemble file and runs under it."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, truncnorm
from conftest import two_arm_protocol
from test_cli import run_main

from vtrial import engine as engine_module
from vtrial.analysis.prediction import IDENTITY, LOG, prediction
from vtrial.analysis.summary import PERCENTILES, headline, spread, uncertainty_block
from vtrial.calibration import uncertainty as ensemble_module
from vtrial.calibration.fit import FITTED
from vtrial.calibration.uncertainty import (
    Laplace,
    hold_at_edges,
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
        {"median": 2.5, "low": 1.075, "high": 3.925, "estimable": 4}
    )
    assert spread([None, None]) == {"median": None, "low": None, "high": None, "estimable": 0}


def _numbers(p: float, hr: float) -> dict:
    """Headline numbers of a two-arm trial (one arm ``a``, one comparison ``b`` vs ``a``) with their CIs."""
    return {
        "arms": {
            "a": {
                "proportion_with_sre": p,
                "proportion_with_sre_ci": [p - 0.1, p + 0.1],
                "median_time_to_first_sre_months": None,
                "median_time_to_first_sre_months_ci": [None, None],
                "sre_rate_per_patient_year": 1.0,
                "sre_rate_per_patient_year_ci": [0.5, 2.0],
                "median_overall_survival_months": 10.0,
                "median_overall_survival_months_ci": [8.0, None],
            }
        },
        "comparisons": [
            {
                "arm": "b",
                "reference": "a",
                "time_to_first_sre": hr,
                "time_to_first_sre_ci": [hr * 0.75, hr / 0.75],
                "first_and_subsequent_sre": 0.5,
                "first_and_subsequent_sre_ci": [None, None],  # no usable CI in the fitted run: no prediction
                "overall_survival": None,
                "overall_survival_ci": [None, None],
            }
        ],
    }


def test_uncertainty_block_gathers_each_headline_number_over_draws():
    block = uncertainty_block([_numbers(0.2, 0.9), _numbers(0.4, 0.7)], "laplace-mirrored", _numbers(0.3, 0.8))
    assert block["parameter_draws"] == 2 and block["percentiles"] == [2.5, 50.0, 97.5]
    # two values: 2.5% -> 0.2 + 0.025 * 0.2 = 0.205, 97.5% -> 0.395
    proportion = block["arms"]["a"]["proportion_with_sre"]
    assert {k: v for k, v in proportion.items() if k != "prediction"} == pytest.approx(
        {"median": 0.3, "low": 0.205, "high": 0.395, "estimable": 2}
    )
    # the fitted CI 0.3 +/- 0.1 moved by the deviations -0.1 and +0.1: N(0.2, s) and N(0.4, s),
    # s = 0.1 / 1.96, symmetric about 0.3, with F(high) = 0.975
    predicted = proportion["prediction"]
    assert predicted["median"] == pytest.approx(0.3) and predicted["estimable"] == 2
    s = 0.1 / norm.ppf(0.975)
    assert 0.5 * (norm.cdf((predicted["high"] - 0.2) / s) + norm.cdf((predicted["high"] - 0.4) / s)) == pytest.approx(
        0.975
    )
    assert predicted["low"] == pytest.approx(0.6 - predicted["high"])
    # no deviation: the fitted run's own CI
    assert block["arms"]["a"]["sre_rate_per_patient_year"]["prediction"] == pytest.approx(
        {"median": 1.0, "low": 0.5, "high": 2.0, "estimable": 2, "pair_centre": 1.0}
    )
    assert block["arms"]["a"]["median_time_to_first_sre_months"]["prediction"] == {
        "median": None,
        "low": None,
        "high": None,
        "estimable": 0,
        "pair_centre": None,
    }
    # an upper bound not reached: the fitted run's upper tail is open, so F stays at 1/2 above 10
    assert block["arms"]["a"]["median_overall_survival_months"]["prediction"] == pytest.approx(
        {"median": 10.0, "low": 8.0, "high": None, "estimable": 2, "pair_centre": 10.0}
    )
    c = block["comparisons"][0]
    assert (c["arm"], c["reference"]) == ("b", "a")
    assert {k: v for k, v in c["time_to_first_sre"].items() if k != "prediction"} == pytest.approx(
        {"median": 0.8, "low": 0.705, "high": 0.895, "estimable": 2}
    )
    # on the log scale: the pair's half-difference h = (log 0.9 - log 0.7) / 2 about the fitted log 0.8:
    # the fitted run's normal (sd -log 0.75 / 1.96) about log 0.8 - h and log 0.8 + h, symmetric about
    # log 0.8; the pair's own centre (curvature, not in the interval) is sqrt(0.9 x 0.7) = sqrt(0.63)
    assert c["time_to_first_sre"]["prediction"]["median"] == pytest.approx(0.8)
    assert c["time_to_first_sre"]["prediction"]["pair_centre"] == pytest.approx(0.63**0.5)
    assert c["first_and_subsequent_sre"]["prediction"]["estimable"] == 0
    assert c["overall_survival"]["median"] is None


def test_draws_equal_to_the_fitted_run_predict_its_confidence_interval():
    # every deviation 0: the prediction is the fitted CI, for a Wald HR (symmetric on the log
    # scale) and a Clopper-Pearson 12/40 (not symmetric on any scale)
    hr = prediction([0.645] * 3, 0.645, [0.478, 0.869], LOG, PERCENTILES)
    assert [hr["low"], hr["median"], hr["high"]] == pytest.approx([0.478, 0.645, 0.869])
    p = prediction([0.3, 0.3], 0.3, [0.1656, 0.4653], IDENTITY, PERCENTILES)
    assert [p["low"], p["median"], p["high"]] == pytest.approx([0.1656, 0.3, 0.4653]) and p["estimable"] == 2
    # a draw without its mirror (the last of an odd count) is left out; no complete pair: no prediction
    assert prediction([0.645] * 3, 0.645, [0.478, 0.869], LOG, PERCENTILES)["estimable"] == 2
    assert prediction([0.3], 0.3, [0.1656, 0.4653], IDENTITY, PERCENTILES)["estimable"] == 0


def _interval(predicted: dict) -> list:
    return [predicted["low"], predicted["median"], predicted["high"]]


def test_deviations_far_apart_give_the_hand_solved_percentiles():
    # fitted 1 with sd 1 on the log scale; a pair at log 10 and 0 (its centre log 5, not in the
    # interval): half-difference 5, deviations -5 and +5; at the 2.5th percentile the second
    # component is Phi(-11.6) ~ 1e-31, so 0.5 Phi(t + 5) = 0.025 -> t = -5 + Phi^-1(0.05) =
    # -6.6448536269514722; by symmetry the 97.5th is 6.6448536269514722 and the median 0
    z = norm.ppf(0.975)
    predicted = prediction([math.exp(10), 1.0], 1.0, [math.exp(-z), math.exp(z)], LOG, PERCENTILES)
    low, median, high = _interval(predicted)
    assert math.log(low) == pytest.approx(-6.6448536269514722, abs=1e-9)
    assert math.log(median) == pytest.approx(0.0, abs=1e-9)
    assert math.log(high) == pytest.approx(6.6448536269514722, abs=1e-9)
    assert math.log(predicted["pair_centre"]) == pytest.approx(5.0)


def test_deviations_close_together_solve_the_convolution_equation():
    # fitted e^0.5 with sd 1 on the log scale, deviations -0.5 and +0.5: F(t) = (Phi(t) + Phi(t - 1)) / 2
    z = norm.ppf(0.975)
    fitted = math.exp(0.5)
    out = _interval(prediction([1.0, math.e], fitted, [fitted * math.exp(-z), fitted * math.exp(z)], LOG, PERCENTILES))
    for value, p in zip(out, (0.025, 0.5, 0.975), strict=True):
        t = math.log(value)
        assert 0.5 * (norm.cdf(t) + norm.cdf(t - 1)) == pytest.approx(p, abs=1e-12)
    assert math.log(out[1]) == pytest.approx(0.5)


def test_a_fitted_ci_without_spread_below_and_an_open_upper_tail():
    # proportion 0 with a Clopper-Pearson [0, 0.1], a pair 0.2 and 0: deviations +0.1 and -0.1, point
    # masses of 1/2 at -0.1 and at 0.1 (no spread below); F(-0.1) = 1/4 >= 2.5% -> the 2.5th
    # percentile is -0.1, kept at 0; below 0.1, F = Phi((t + 0.1) / s) / 2 < 1/2, at 0.1 it jumps to
    # (Phi(3.92) + 1/2) / 2 -> the median is 0.1
    predicted = prediction([0.2, 0.0], 0.0, [0.0, 0.1], IDENTITY, PERCENTILES)
    assert _interval(predicted)[:2] == pytest.approx([0.0, 0.1])
    # a deviation pushing a proportion's bound past 1: kept at 1
    assert prediction([0.99, 0.91], 0.95, [0.9, 0.999], IDENTITY, PERCENTILES)["high"] == 1.0
    # a median whose upper bound is not reached, a pair 12 and 10 about the fitted 10: deviations
    # +-h, h = log(1.2) / 2, components at c1 = 10 / sqrt(1.2) and c2 = 10 sqrt(1.2); F never exceeds
    # (1/2 + 1/2) / 2 -> no 97.5th; the component at c2 reaches its 1/2 at c2 -> the median is c2;
    # the low solves the equation
    low, median, high = _interval(prediction([12.0, 10.0], 10.0, [8.0, None], LOG, PERCENTILES))
    c1, c2 = 10 / math.sqrt(1.2), 10 * math.sqrt(1.2)
    assert median == pytest.approx(c2) and high is None
    s = math.log(10 / 8) / norm.ppf(0.975)
    assert 0.5 * (norm.cdf(math.log(low / c1) / s) + norm.cdf(math.log(low / c2) / s)) == pytest.approx(0.025)


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_mirrored_deviations_centre_the_prediction_on_the_fit_and_contain_its_ci(k):
    # deviations +d_i and -d_i about a symmetric (Wald) fitted CI: F is symmetric about the fitted
    # estimate, and each tail only grows (Phi(q - d) + Phi(q + d) >= 2 Phi(q) for the upper
    # quantile q > 0: its derivative in d is phi(q - d) - phi(q + d) >= 0), so the interval
    # contains the CI and is centred on the estimate
    rng = np.random.default_rng(k)
    d = rng.normal(0, 0.3, k)
    fitted, half = 0.8, 0.25
    draws = fitted * np.exp(np.stack([d, -d], axis=1).ravel())
    low, median, high = _interval(
        prediction(draws, fitted, [fitted * math.exp(-half), fitted * math.exp(half)], LOG, PERCENTILES)
    )
    assert median == pytest.approx(fitted, rel=1e-9)
    assert math.log(low / fitted) == pytest.approx(-math.log(high / fitted), rel=1e-9)
    assert low <= fitted * math.exp(-half) and high >= fitted * math.exp(half)


def test_a_linear_model_recovers_the_known_predictive_distribution():
    # truth: estimate = fitted + b * theta on the log scale, theta ~ N(0, tau^2), sampling error
    # N(0, sigma^2): the predictive distribution is N(log fitted, b^2 tau^2 + sigma^2), so its
    # 97.5th percentile is 1.96 sqrt(0.3^2 + 0.4^2) = 1.96 x 0.5 above. The draws are K = 4000 mirrored
    # normal quantiles of theta (no sampling noise in them: common random numbers)
    b, tau, sigma, fitted = 0.6, 0.5, 0.4, 2.0
    theta = norm.ppf((np.arange(2000) + 0.5) / 4000)  # lower half; each followed by its mirror
    theta = np.stack([theta, -theta], axis=1).ravel() * tau
    z = norm.ppf(0.975)
    ci = [fitted * math.exp(-z * sigma), fitted * math.exp(z * sigma)]
    low, median, high = _interval(prediction(fitted * np.exp(b * theta), fitted, ci, LOG, PERCENTILES))
    assert math.log(high / fitted) == pytest.approx(z * 0.5, rel=1e-3)
    assert math.log(low / fitted) == pytest.approx(-z * 0.5, rel=1e-3)
    assert median == pytest.approx(fitted)


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


def test_a_parameter_near_a_range_end_is_held_and_the_others_conditioned_on_it():
    # rooms to the nearer end on the log scale: fracture_base_hazard log(1.15e-4 / 2e-5) = 1.7492,
    # zoledronic_acid_emax log(5 / 4.5) = 0.1054; sd 1 and 2: zoledronic acid has 0.0527 sd < 0.5
    centre = np.log([REGISTRY[n].value for n in TWO])
    approx = Laplace(TWO, centre, np.array([[1.0, 0.6], [0.6, 4.0]]), 1.0, 10, 2, [])
    held = hold_at_edges(approx)
    assert held.held == {"zoledronic_acid_emax": {"sd_log": 2.0, "room_sd": pytest.approx(math.log(5 / 4.5) / 2)}}
    # conditional variance 1 - 0.6^2 / 4 = 0.91; the fracture hazard has 1.7492 / 0.954 sd: free
    np.testing.assert_allclose(held.covariance, [[0.91, 0.0], [0.0, 0.0]], atol=1e-12)
    assert hold_at_edges(approx, edge_sd=0.05).held == {}  # 0.0527 sd of room is enough for 0.05


def test_a_pair_seen_only_through_its_product_keeps_the_products_spread():
    # sd 6 along log a - log b (not seen), 0.1 along log a + log b: C = [[18.005, -17.995], [-17.995, 18.005]];
    # both have little room in 4.243 sd; zoledronic acid the least (log(5 / 4.5) / 4.243 = 0.025 sd): held, and the other
    # keeps 18.005 - 17.995^2 / 18.005 = 0.36 / 18.005 = 0.019994 (the product's sd, 0.1 x sqrt 2, split)
    centre = np.log([REGISTRY[n].value for n in TWO])
    ridge = np.array([[18.005, -17.995], [-17.995, 18.005]])
    held = hold_at_edges(Laplace(TWO, centre, ridge, 1.0, 10, 2, []))
    assert list(held.held) == ["zoledronic_acid_emax"]
    assert held.covariance[0, 0] == pytest.approx(0.36 / 18.005) and held.sd()["zoledronic_acid_emax"] == 0.0


def test_draws_are_mirrored_pairs_centred_on_the_fit_and_inside_every_range():
    centre = np.log([REGISTRY[n].value for n in TWO])
    approx = hold_at_edges(Laplace(TWO, centre, np.array([[1.0, 0.6], [0.6, 4.0]]), 1.0, 10, 2, []))
    first = sample(approx, 2001, seed=11)
    np.testing.assert_array_equal(first, sample(approx, 2001, seed=11))
    assert not np.array_equal(first, sample(approx, 2001, seed=12))
    assert first.shape == (2001, 2)
    logs = np.log(first) - centre
    np.testing.assert_allclose(logs[0:2000:2], -logs[1:2000:2], atol=1e-12)  # pairs mirror each other
    # an odd count ends with the first member of the next pair; the same seed gives the same pairs
    np.testing.assert_array_equal(first, sample(approx, 2002, seed=11)[:2001])
    assert np.all(first[:, 1] == REGISTRY["zoledronic_acid_emax"].value)  # held at the fit
    # a pair is rejected when either member leaves the range, so the deviations stay within the room
    # to the NEARER end (1.7579 below, at the fitted 1.16e-4) on both sides: the draws' mean is the fit.
    # Rejecting each draw alone would keep deviations up to 2.8473 above and shift the mean of N(0, 0.91)
    # truncated to [-1.7579, 2.8473] by about +0.08 sd
    room = math.log(REGISTRY["fracture_base_hazard"].value / REGISTRY["fracture_base_hazard"].low)  # 1.7579 at 1.16e-4
    assert np.abs(logs[:, 0]).max() <= room
    assert logs[:2000, 0].mean() == pytest.approx(0.0, abs=1e-12)
    # the spread: N(0, 0.91) truncated to +/-1.7579, a = 1.7579 / 0.954 = 1.843 sd: sd 0.954 x 0.844
    a = room / math.sqrt(0.91)
    assert logs[:, 0].std() == pytest.approx(math.sqrt(0.91) * truncnorm(-a, a).std(), rel=0.05)
    for j, name in enumerate(TWO):
        assert REGISTRY[name].low <= first[:, j].min() and first[:, j].max() <= REGISTRY[name].high


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
    assert sidecar["method"] == "laplace-mirrored" and sidecar["draws"] == 5
    with pytest.raises(Exception, match=r"--parameter-draws: must be 0 or more, got -1"):
        load_ensemble(-1, path)
    with pytest.raises(
        Exception,
        match=r"--parameter-draws: asks for 6 parameter sets but the ensemble holds 5 "
        r"Fix: pass at most 5, or regenerate a larger ensemble with "
        r"`vtrial calibrate --uncertainty --draws 6`",
    ):
        load_ensemble(6, path)
    with pytest.raises(
        Exception,
        match=r"missing\.csv: --parameter-draws: the parameter ensemble \(draws and "
        r"sidecar\) is missing Fix: generate it with `vtrial calibrate --uncertainty`",
    ):
        load_ensemble(1, tmp_path / "missing.csv")
    path.write_text(path.read_text().replace("draw,", "draw ,"))
    with pytest.raises(Exception, match="the draws differ from those its sidecar describes"):
        load_ensemble(1, path)


def test_an_ensemble_made_for_other_parameter_values_is_refused(tmp_path, monkeypatch):
    path = _ensemble(tmp_path)
    refitted = dataclasses.replace(REGISTRY["radiation_hazard"], value=REGISTRY["radiation_hazard"].value * 1.1)
    monkeypatch.setitem(REGISTRY, "radiation_hazard", refitted)
    with pytest.raises(
        Exception,
        match=r"the ensemble was made for another parameter set .* Fix: regenerate it "
        r"with `vtrial calibrate --uncertainty`, or run without --parameter-draws",
    ):
        load_ensemble(1, path)


def test_the_shipped_ensemble_is_for_the_current_parameters():
    # fails after a refit until `vtrial calibrate --uncertainty --jobs 1` regenerates the ensemble
    sets, sidecar = load_ensemble(200)
    assert sidecar["method"] == "laplace-mirrored" and sidecar["draws"] == 200 and sidecar["patients"] == 1000
    fitted = np.log([REGISTRY[n].value for n in FITTED])
    logs = np.log([[parameters[n] for n in FITTED] for parameters in sets]) - fitted
    np.testing.assert_allclose(logs[0::2], -logs[1::2], atol=1e-9)  # mirrored pairs about the fit
    held = [FITTED.index(n) for n in sidecar["held"]]
    assert np.all(logs[:, held] == 0.0) and np.all(
        logs.std(axis=0)[[i for i in range(len(FITTED)) if i not in held]] > 0
    )
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
    (tmp_path / "parameter-draws" / "draw-00000.json").write_text(
        json.dumps({"parameters": sets[0], "headline": saved})
    )
    (tmp_path / "parameter-draws" / "draw-00001.json").write_text(
        json.dumps({"parameters": sets[0], "headline": saved})
    )
    draws = json.loads(run_draws(protocol, tmp_path, sets, sidecar, jobs=1).read_text())["draws"]
    assert draws[0]["headline"] == saved  # same parameters: kept
    assert draws[1]["headline"] != saved and draws[1]["parameters"] == sets[1]  # other parameters: run again


@pytest.mark.slow  # about 20 s on the shared machine: two process pools
def test_run_with_three_draws_writes_the_block_and_the_report_section(tmp_path, capsys, monkeypatch):
    # 80 patients: with 20 (and 40, 60) the fitted run of the refit with the breast-cancer subtypes has no SRE in
    # the zoledronic acid arm over the 3 months (80: 8 placebo patients and 1 with one),
    # so no hazard-ratio interval to build the prediction on
    small = tmp_path / "small.toml"
    small.write_text(two_arm_protocol("small", 80))
    monkeypatch.setattr(ensemble_module, "DRAWS_CSV", _ensemble(tmp_path))
    out = tmp_path / "run"
    code, _, err = run_main(
        capsys, "run", str(small), "--out", str(out), "--parameter-draws", "3", "--jobs", "1", "--quiet"
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    block = summary["uncertainty"]
    assert block["parameter_draws"] == 3 and block["method"] == "laplace-mirrored"
    assert set(block["arms"]) == {"placebo", "zoledronic_acid"}
    assert block["comparisons"][0]["arm"] == "zoledronic_acid"
    draws = json.loads((out / "parameter-draws.json").read_text())["draws"]
    values = [d["headline"]["arms"]["placebo"]["proportion_with_sre"] for d in draws]
    assert block["arms"]["placebo"]["proportion_with_sre"]["median"] == pytest.approx(float(np.median(values)))
    # the prediction: the fitted run's Wald interval (normal on the log scale, sd s) moved both ways by
    # each complete pair's half-difference (draws 0 and 1; 20 patients can leave a draw without an SRE)
    hrs = [d["headline"]["comparisons"][0]["time_to_first_sre"] for d in draws]
    pairs = [(hrs[i], hrs[i + 1]) for i in range(0, len(hrs) - 1, 2) if hrs[i] and hrs[i + 1]]
    half = [h for a, b in pairs for h in (math.log(a / b) / 2, -math.log(a / b) / 2)]
    fitted = summary["comparisons"][0]["time_to_first_sre"]
    s = math.log(fitted["ci_high"] / fitted["ci_low"]) / (2 * norm.ppf(0.975))
    predicted = block["comparisons"][0]["time_to_first_sre"]["prediction"]
    assert predicted["estimable"] == len(half) == 2
    for bound, p in ((predicted["low"], 0.025), (predicted["median"], 0.5), (predicted["high"], 0.975)):
        shifted = [norm.cdf((math.log(bound / fitted["hazard_ratio"]) - h) / s) for h in half]
        assert np.mean(shifted) == pytest.approx(p, abs=1e-9)
    report = (out / "report.html").read_text()
    assert 'id="table-uncertainty"' in report and "Prediction: parameters and sampling" in report
    # `vtrial report` rebuilds the same block from the run folder
    before = (out / "summary.json").read_text()
    assert run_main(capsys, "report", str(out))[0] == 0
    assert (out / "summary.json").read_text() == before


@pytest.mark.slow  # about 30 s on the shared machine: a dask cluster for the run and the draws
def test_the_uncertainty_block_is_the_same_on_loky_and_on_dask(tmp_path, small, capsys, monkeypatch):
    """`vtrial run --parameter-draws 2` with one loky worker and with `--backend dask` (one local
    cluster of 2 for the run and then the draws): the same ``uncertainty`` block and draws."""
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(ensemble_module, "DRAWS_CSV", _ensemble(tmp_path))
    started = []

    class Counted(engine_module._Cluster):
        def __init__(self, scheduler, jobs):
            started.append(jobs)
            super().__init__(scheduler, jobs)

    monkeypatch.setattr(engine_module, "_Cluster", Counted)
    blocks = []
    for name, flags in (("loky", ["--jobs", "1"]), ("dask", ["--jobs", "2", "--backend", "dask"])):
        out = tmp_path / name
        code, _, err = run_main(
            capsys, "run", str(small), "--out", str(out), "--parameter-draws", "2", *flags, "--quiet"
        )
        assert code == 0, err
        assert json.loads((out / "manifest.json").read_text())["backend"] == name
        summary = json.loads((out / "summary.json").read_text())
        assert summary["uncertainty"]["parameter_draws"] == 2
        blocks.append((summary["uncertainty"], (out / "parameter-draws.json").read_bytes()))
    assert blocks[0] == blocks[1]
    assert len(started) == 1  # the run's cluster served the draws too (two were started before)


@pytest.mark.parametrize(
    ("draws", "message"),
    [
        ("-2", "--parameter-draws: must be 0 or more, got -2"),
        ("9", "--parameter-draws: asks for 9 parameter sets but the ensemble holds 5"),
    ],
)
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


def test_a_curved_pair_contains_the_ci_and_reports_its_centre_apart():
    # a pair both above the fitted 0.8 on the log scale (+0.3 and +0.1: curvature +0.2, linear part
    # +-0.1): the interval is the first-order propagation, symmetric about log 0.8 (F = (Phi(t - 0.1)
    # + Phi(t + 0.1)) / 2 in units of the sd 0.25 / 1.96), so it contains the CI; the pair's centre
    # 0.8 e^0.2 is reported beside it. Mixing the draws' own estimates instead would centre the
    # interval near log 0.8 + 0.2 and miss the CI's lower bound
    fitted, half = 0.8, 0.25
    ci = [fitted * math.exp(-half), fitted * math.exp(half)]
    predicted = prediction([fitted * math.exp(0.3), fitted * math.exp(0.1)], fitted, ci, LOG, PERCENTILES)
    low, median, high = _interval(predicted)
    assert low <= ci[0] and high >= ci[1] and median == pytest.approx(fitted)
    sd = half / norm.ppf(0.975)
    t = math.log(high / fitted)
    assert 0.5 * (norm.cdf((t - 0.1) / sd) + norm.cdf((t + 0.1) / sd)) == pytest.approx(0.975, abs=1e-12)
    assert predicted["pair_centre"] == pytest.approx(fitted * math.exp(0.2))
