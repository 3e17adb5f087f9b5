"""Tests of vtrial.analysis: reference values from lifelines/scipy or by hand, fixed seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_waltons
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times, restricted_mean_survival_time
from scipy import stats

from vtrial.analysis import (
    analysis_settings,
    cox_comparison,
    read_protocol,
    summarise,
    summarise_run,
    to_json,
    write_summary,
)
from vtrial.analysis.run import read_tables
from vtrial.analysis.proportions import (
    clopper_pearson,
    fisher_p_value,
    newcombe_difference,
    poisson_rate_ci,
    wilson_interval,
)
from vtrial.analysis.radiotherapy import first_pain_courses, pain_response, radiotherapy_retreatment
from vtrial.analysis.summary import marker_summary, paired_view
from vtrial.analysis.survival import (
    DEATH,
    NUDGE_DAYS,
    SRE,
    _aalen_johansen,
    counting_process,
    cumulative_incidence,
    kaplan_meier,
    logrank,
    median_with_ci,
    position_in,
    rmst,
    run_starts,
    treatment_effect,
)
from vtrial.errors import UserInputError
from vtrial.sre import apply_window_rule
from vtrial.vocabulary import PAIN_ASSESSMENT_DAYS, REPORTED_ADVERSE_EVENTS

SRE_TYPES = ["pathological_fracture", "radiation_to_bone"]
HORIZON_DAYS = 1000.0


def make_trial(
    seed: int = 0,
    n: int = 500,
    arms: tuple[str, ...] = ("control", "active"),
    sre_per_day: tuple[float, ...] = (1 / 300, 0.75 / 300),
    death_per_day: tuple[float, ...] = (1 / 900, 1 / 900),
    paired: bool = False,
    primaries: tuple[str, ...] = ("breast",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic run tables: SREs a Poisson process, death exponential, cut-off at 1000 days.

    The time to the first SRE is then exponential too, so the SRE rate ratio is also the hazard
    ratio of the first SRE. The window rule is applied as the engine does (window 0 days).
    """
    rng = np.random.default_rng(seed)
    patients, events = [], []
    for i, (arm, rate, mu) in enumerate(zip(arms, sre_per_day, death_per_day)):
        pid = np.arange(n) + (0 if paired else i * n)
        death = rng.exponential(1 / mu, n)
        followup = np.minimum(death, HORIZON_DAYS)
        k = rng.poisson(rate * followup)
        owner = np.repeat(np.arange(n), k)
        ev = pd.DataFrame(
            {
                "patient_id": pid[owner],
                "arm": arm,
                "day": rng.random(k.sum()) * followup[owner],
                "type": rng.choice(SRE_TYPES, k.sum()),
                "site": "femur",
            }
        )
        ae = rng.random(n) < 0.05
        ev = pd.concat(
            [ev, pd.DataFrame({"patient_id": pid[ae], "arm": arm, "day": 1.0, "type": "hypocalcaemia", "site": ""})]
        )
        ev["counted"] = apply_window_rule(ev["patient_id"], ev["day"], ev["type"], SRE_TYPES, 0.0)
        counted = ev[ev["counted"]]
        p = pd.DataFrame(
            {
                "patient_id": pid,
                "arm": arm,
                "primary": rng.choice(list(primaries), n),
                "age_years": rng.normal(60, 10, n),
                "sex": rng.choice(["female", "male"], n),
                "ecog": rng.integers(0, 3, n),
                "creatinine_clearance_ml_min": rng.normal(80, 20, n),
                "n_lesions": rng.integers(1, 8, n),
                "followup_days": followup,
                "died": death <= HORIZON_DAYS,
                "visceral_metastases": rng.random(n) < 0.5,
                "prior_sre": rng.random(n) < 0.3,
            }
        )
        p["first_sre_day"] = p["patient_id"].map(counted.groupby("patient_id")["day"].min())
        p["n_sre"] = p["patient_id"].map(counted.groupby("patient_id").size()).fillna(0).astype(int)
        patients.append(p)
        events.append(ev)
    return pd.concat(patients, ignore_index=True), pd.concat(events, ignore_index=True)


def settings(arms=("control", "active"), design="parallel") -> dict:
    return {
        "trial": "synthetic",
        "design": design,
        "arms": list(arms),
        "reference_arm": arms[0],
        "sre_types": SRE_TYPES,
        "sre_window_days": 0.0,
        "landmarks_months": [12, 24],
        "horizon_months": HORIZON_DAYS / 30.4375,
    }


# --- proportions -----------------------------------------------------------------------------


def test_poisson_rate_ci_matches_garwood_table():
    # Exact 95% limits for 10 events are 4.7954 and 18.3904 (Garwood 1936; standard tables).
    rate, low, high = poisson_rate_ci(10, 5.0)
    assert rate == 2.0
    assert low == pytest.approx(4.7954 / 5, abs=1e-4)
    assert high == pytest.approx(18.3904 / 5, abs=1e-4)
    # No event: lower bound 0, upper bound -log(0.025) = 3.6889 events.
    assert poisson_rate_ci(0, 2.0)[1:] == (0.0, pytest.approx(3.6889 / 2, abs=1e-4))


def test_clopper_pearson_matches_beta_quantiles():
    # Clopper–Pearson by definition: Beta(a/2; k, n-k+1) and Beta(1-a/2; k+1, n-k).
    low, high = clopper_pearson(3, 50)
    assert low == pytest.approx(stats.beta.ppf(0.025, 3, 48), rel=1e-9)
    assert high == pytest.approx(stats.beta.ppf(0.975, 4, 47), rel=1e-9)
    assert clopper_pearson(0, 50)[0] == 0.0


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 50), (3, 50), (50, 50), (1, 1023), (512, 1023), (1022, 1023)])
def test_proportion_intervals_equal_scipy_binomtest(k, n):
    # scipy.stats.binomtest finds the exact bounds by bisection to an xtol of 2e-12; ours are the
    # beta quantiles themselves: the binomial tails at them are a/2 = 0.025 (to 1e-12).
    exact = stats.binomtest(k, n).proportion_ci(method="exact")
    low, high = clopper_pearson(k, n)
    assert low == pytest.approx(exact.low, abs=2e-12) and high == pytest.approx(exact.high, abs=2e-12)
    if k > 0:
        assert stats.binom.sf(k - 1, n, low) == pytest.approx(0.025, rel=1e-12)
    if k < n:
        assert stats.binom.cdf(k, n, high) == pytest.approx(0.025, rel=1e-12)
    wilson = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert wilson_interval(k, n) == (wilson.low, wilson.high)


@pytest.mark.parametrize(("count", "exposure"), [(0, 2.0), (1, 1.0), (10, 5.0), (4116, 1234.5)])
def test_poisson_rate_ci_equals_scipy_chi2_quantiles(count, exposure):
    alpha = 1 - 0.95  # 0.05000000000000004, as poisson_rate_ci computes it
    rate, low, high = poisson_rate_ci(count, exposure)
    assert low == (stats.chi2.ppf(alpha / 2, 2 * count) / 2 / exposure if count else 0.0)
    assert high == stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2 / exposure


def test_fisher_p_value_equals_scipy_fisher_exact():
    # margins from 1 to 2,000 patients, p-values from 1 down to ~1e-200; symmetric tables (ties of
    # the observed probability) included
    rng = np.random.default_rng(5)
    tables = [(3, 4, 1, 4), (0, 10, 0, 10), (5, 5, 0, 5), (0, 1, 1, 1), (2, 5, 3, 5), (5, 5, 7, 7)]
    for n1, n0 in ((1, 1), (7, 3), (50, 70), (1023, 1023), (2000, 1500)):
        tables += [(int(a), n1, int(b), n0) for a, b in zip(rng.integers(0, n1 + 1, 12), rng.integers(0, n0 + 1, 12))]
    for k1, n1, k0, n0 in tables:
        reference = stats.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]).pvalue
        assert fisher_p_value(k1, n1, k0, n0) == pytest.approx(reference, rel=5e-14), (k1, n1, k0, n0)


def test_newcombe_difference_matches_newcombe_1998_example():
    # Newcombe (1998) Stat Med 17:873, example 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
    d, low, high = newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (low, high) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339, abs=1e-4))


def test_fisher_p_value_of_the_tea_tasting_table():
    # Fisher's lady tasting tea, 3/4 vs 1/4: two-sided p = 34/70 = 0.4857.
    assert fisher_p_value(3, 4, 1, 4) == pytest.approx(34 / 70)


# --- survival estimators ---------------------------------------------------------------------


def test_rmst_against_survrm2_on_waltons():
    # survRM2 on lifelines' waltons data, group miR-137, tau = 10 (quoted in lifelines PR #1526):
    # RMST 9.7941, variance 0.0152, SE 0.123.
    waltons = load_waltons()
    group = waltons[waltons["group"] == "miR-137"]
    mean, variance = rmst(kaplan_meier(group["T"], group["E"], "miR-137"), 10.0)
    assert mean == pytest.approx(9.7941, abs=1e-4)
    assert variance == pytest.approx(0.0152, abs=5e-5)
    assert math.sqrt(variance) == pytest.approx(0.123, abs=5e-4)


def test_rmst_against_a_hand_computed_step_integral():
    # Deaths at 1, 2, 3, 4 of 4 patients, tau = 3.5: S = 1, .75, .5, .25 on the unit steps.
    mean, variance = rmst(kaplan_meier(np.array([1.0, 2, 3, 4]), np.ones(4, bool), "arm"), 3.5)
    assert mean == pytest.approx(1 + 0.75 + 0.5 + 0.25 * 0.5)
    # Greenwood: sum A_j^2 d_j / (n_j (n_j - d_j)), A_j = area from t_j to tau.
    expected = 1.375**2 / (4 * 3) + 0.625**2 / (3 * 2) + 0.125**2 / (2 * 1)
    assert variance == pytest.approx(expected)


def test_km_median_equals_lifelines():
    rng = np.random.default_rng(1)
    t, e = rng.exponential(300, 400), rng.random(400) < 0.8
    direct = KaplanMeierFitter().fit(t, e)
    median, low, high = median_with_ci(kaplan_meier(t, e, "arm"))
    assert median == pytest.approx(direct.median_survival_time_ / 30.4375)
    assert low < median < high


@pytest.mark.parametrize("case", ["continuous", "tied days", "first at 0", "ends with an event", "all censored"])
def test_kaplan_meier_equals_lifelines_bit_for_bit(case):
    # survival, log-log band, median and its CI, RMST, values at given times: lifelines' numbers exactly
    rng = np.random.default_rng(7)
    t, e = rng.exponential(300, 500), rng.random(500) < 0.8
    if case == "tied days":
        t = np.ceil(t / 7) * 7
    elif case == "first at 0":
        t[:5] = 0.0
    elif case == "ends with an event":
        t[np.argmax(t)], e[np.argmax(t)] = t.max(), True
    elif case == "all censored":
        e[:] = False
    reference = KaplanMeierFitter(alpha=0.05).fit(t, e)
    ours = kaplan_meier(t, e, "arm")
    np.testing.assert_array_equal(ours.times, reference.survival_function_.index.to_numpy())
    np.testing.assert_array_equal(ours.survival, reference.survival_function_.iloc[:, 0].to_numpy())
    np.testing.assert_array_equal(np.column_stack([ours.low, ours.high]), reference.confidence_interval_.to_numpy())
    np.testing.assert_array_equal(ours.at_risk, reference.event_table["at_risk"].to_numpy())
    np.testing.assert_array_equal(ours.observed, reference.event_table["observed"].to_numpy())
    expected = [
        reference.median_survival_time_,
        *median_survival_times(reference.confidence_interval_).to_numpy().ravel(),
    ]
    assert median_with_ci(ours) == tuple(None if math.isinf(v) else v / 30.4375 for v in expected)
    for tau in (100.0, 365.0, float(np.sort(t)[250]), 5000.0):
        assert rmst(ours, tau)[0] == restricted_mean_survival_time(reference, t=tau)
    grid = np.linspace(0, 1500, 600)
    on_grid = KaplanMeierFitter(alpha=0.05).fit(t, e, timeline=grid)
    np.testing.assert_array_equal(ours.at(grid), on_grid.survival_function_.iloc[:, 0].to_numpy())
    np.testing.assert_array_equal(ours.band_at(grid), on_grid.confidence_interval_.to_numpy())
    np.testing.assert_array_equal(ours.at(t[:50]), reference.survival_function_at_times(t[:50]).to_numpy())


@pytest.mark.parametrize(("n", "groups"), [(60, 2), (3000, 3), (2000, 5)])
def test_logrank_equals_lifelines_multivariate_logrank_test(n, groups):
    # tied whole days, censoring, unequal hazards, a patient alone at risk at the end
    rng = np.random.default_rng(n)
    arm = np.array(["placebo", "zoledronic_acid", "denosumab", "a", "b"])[rng.integers(0, groups, n)]
    t = np.ceil(rng.exponential(200, n) * np.where(arm == "denosumab", 1.4, 1.0))
    e = rng.random(n) < 0.7
    reference = multivariate_logrank_test(t, arm, e)
    ours = logrank(t, e, arm)
    assert ours["degrees_of_freedom"] == reference.degrees_of_freedom == groups - 1
    assert ours["test_statistic"] == pytest.approx(reference.test_statistic, rel=1e-12, abs=1e-12)
    assert ours["p_value"] == pytest.approx(reference.p_value, rel=1e-9)


def test_logrank_by_hand():
    # times 1 (A event), 2 (B event), 3 (A censored), 4 (B event); at 1: n=4 (2, 2), d=1, E_A=1/2, V=1/4;
    # at 2: n=3 (1 A, 2 B), d=1, E_A=1/3, V=2/9; at 4: only B at risk, E_A=0, V=0.
    # O_A - E_A = 1 - 5/6 = 1/6, V = 1/4 + 2/9 = 17/36, chi2 = (1/36) / (17/36) = 1/17.
    result = logrank(np.array([1.0, 2.0, 3.0, 4.0]), np.array([True, True, False, True]), np.array(list("ABAB")))
    assert result["test_statistic"] == pytest.approx(1 / 17, rel=1e-14)
    assert result["p_value"] == pytest.approx(stats.chi2.sf(1 / 17, 1), rel=1e-14)


def test_median_not_reached_is_none():
    assert median_with_ci(kaplan_meier(np.full(10, 100.0), np.zeros(10, bool), "arm"))[0] is None


def test_cumulative_incidence_equals_lifelines_aalen_johansen_without_ties():
    rng = np.random.default_rng(2)
    t = rng.exponential(300, 600)
    code = rng.choice([0, SRE, DEATH], 600, p=[0.3, 0.4, 0.3])
    ours = cumulative_incidence(t, code)
    # Continuous times: no ties, so lifelines does not jitter and is the reference.
    aj = AalenJohansenFitter(seed=0).fit(t, code, event_of_interest=SRE).cumulative_density_.iloc[:, 0]
    grid = [50.0, 200.0, 400.0, 800.0]
    assert [ours.loc[:g].iloc[-1] for g in grid] == pytest.approx([aj.loc[:g].iloc[-1] for g in grid], rel=1e-10)


def test_cumulative_incidence_invariants_with_ties():
    rng = np.random.default_rng(3)
    t = np.ceil(rng.exponential(200, 2000))  # whole days: many ties
    code = rng.choice([0, SRE, DEATH], 2000, p=[0.2, 0.5, 0.3])
    cif = cumulative_incidence(t, code)
    assert cif.iloc[0] == 0.0 and cif.between(0, 1).all()
    assert (np.diff(cif.to_numpy()) >= 0).all()
    km_composite = KaplanMeierFitter().fit(t, code != 0).survival_function_.iloc[:, 0]
    # The SRE incidence never exceeds the probability of any event.
    assert (cif.to_numpy() <= 1 - km_composite.reindex(cif.index).to_numpy() + 1e-12).all()
    competing = cumulative_incidence(t, code, cause=DEATH)
    assert (cif + competing).to_numpy() == pytest.approx(1 - km_composite.reindex(cif.index).to_numpy())


@pytest.mark.parametrize("first", [0.0, 1.0])  # a duration at time 0, or none
def test_aalen_johansen_terms_equal_lifelines_kaplan_meier_bit_for_bit(first):
    # the times, at-risk counts, events and S(t-) of lifelines' Kaplan-Meier fit of the composite endpoint
    rng = np.random.default_rng(5)
    t = np.r_[first, first, np.ceil(rng.exponential(150, 1500))]  # whole days: many ties
    code = np.r_[SRE, 0, rng.choice([0, SRE, DEATH], 1500, p=[0.3, 0.4, 0.3])]
    km = KaplanMeierFitter().fit(t, code != 0)
    terms = _aalen_johansen(t, code, SRE)
    assert terms.index.equals(km.event_table.index) and terms.index[0] == 0.0
    assert np.array_equal(terms["n"], km.event_table["at_risk"].to_numpy(dtype=float))
    assert np.array_equal(terms["d"], km.event_table["observed"].to_numpy(dtype=float))
    s = km.survival_function_.iloc[:, 0].to_numpy()
    assert np.array_equal(terms["s_before"], np.r_[1.0, s[:-1]])
    d1 = pd.Series(code == SRE, dtype=float).groupby(t).sum().reindex(terms.index, fill_value=0.0)
    assert np.array_equal(terms["d1"], d1.to_numpy())
    assert np.array_equal(terms["F"], np.cumsum(np.r_[1.0, s[:-1]] * d1.to_numpy() / terms["n"].to_numpy()))


def test_cox_recovers_a_known_hazard_ratio_and_equals_lifelines():
    rng = np.random.default_rng(4)
    n = 4000
    treated = np.r_[np.zeros(n, int), np.ones(n, int)]
    t = rng.exponential(1 / np.where(treated == 1, 0.7, 1.0))
    c = rng.exponential(2.0, 2 * n)
    data = pd.DataFrame({"stop": np.minimum(t, c), "event": t <= c, "treated": treated})
    result = treatment_effect(data)
    assert result["ci_low"] < 0.7 < result["ci_high"]
    # lifelines as the reference; it stops its Newton steps with a score of ~2.5e-5 left (a
    # 2e-8 relative difference in the HR here), where BinaryCoxFitter reaches a zero score
    direct = CoxPHFitter().fit(data, "stop", "event")
    assert result["hazard_ratio"] == pytest.approx(float(np.exp(direct.params_["treated"])), rel=1e-7)
    assert result["p_value"] == pytest.approx(float(direct.summary.loc["treated", "p"]), rel=1e-5)
    low, high = np.exp(direct.confidence_intervals_.loc["treated"].to_numpy())
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high), rel=1e-7)


def test_counting_process_rows_by_hand():
    events = pd.DataFrame(
        {"patient_id": [1, 1, 1, 2], "arm": "a", "day": [0.0, 0.0, 5.2, 3.0], "type": "x", "counted": True}
    )
    patients = pd.DataFrame({"patient_id": [1, 2, 3], "arm": "a", "followup_days": [10.0, 3.0, 7.5]})
    rows = counting_process(patients, events)
    # Two SREs at day 0 are nudged apart; 5.2 is put on the day grid (6); patient 2's last
    # event is at the end of follow-up (no empty tail); patient 3 has no SRE.
    assert rows[["patient_id", "start", "stop", "event"]].values.tolist() == [
        [1, 0.0, 0.001, True],
        [1, 0.001, 0.002, True],
        [1, 0.002, 6.0, True],
        [1, 6.0, 10.0, False],
        [2, 0.0, 3.0, True],
        [3, 0.0, 8.0, False],
    ]


def test_counting_process_equals_its_formula_patient_by_patient():
    # paired ids (a patient under both arms) and several SREs a day apart or on one day
    patients, events = make_trial(seed=3, n=150, sre_per_day=(1 / 60, 1 / 90), paired=True)
    rows = counting_process(patients, events)
    expected = []
    counted = events[events["counted"]]
    for pid, arm in sorted(zip(patients["patient_id"], patients["arm"])):  # arms as text: active, control
        mine = counted[(counted["patient_id"] == pid) & (counted["arm"] == arm)]
        previous, running = 0.0, -math.inf
        for k, day in enumerate(sorted(np.ceil(mine["day"]))):
            running = max(running, day - NUDGE_DAYS * (k + 1))
            stop = NUDGE_DAYS * (k + 1) + max(0.0, running)
            expected.append([pid, arm, previous, stop, True])
            previous = stop
        end = math.ceil(
            patients.loc[(patients["patient_id"] == pid) & (patients["arm"] == arm), "followup_days"].item()
        )
        if end > previous:
            expected.append([pid, arm, previous, float(end), False])
    assert max(counted.groupby(["patient_id", "arm"]).size()) >= 5
    assert [[int(r[0]), str(r[1]), *r[2:]] for r in rows.values.tolist()] == expected


# --- the summary -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trial():
    patients, events = make_trial(seed=5, n=4000, primaries=("breast", "prostate"))
    return patients, events, summarise(patients, events, **settings())


def test_summary_recovers_the_known_ratios(trial):
    _, _, summary = trial
    (comparison,) = summary["comparisons"]
    first, recurrent = comparison["time_to_first_sre"], comparison["first_and_subsequent_sre"]
    # True ratio 0.75 for both the first SRE (exponential) and all SREs (Poisson process).
    assert first["ci_low"] < 0.75 < first["ci_high"]
    assert recurrent["ci_low"] < 0.75 < recurrent["ci_high"]
    assert recurrent["rate_ratio"] == pytest.approx(0.75, abs=0.03)
    # Same death rate in both arms.
    assert comparison["overall_survival"]["ci_low"] < 1.0 < comparison["overall_survival"]["ci_high"]
    # Crude rates: true 365.25/300 = 1.2175 per patient-year in the control arm.
    assert summary["arms"]["control"]["sre_rate_per_patient_year"] == pytest.approx(1.2175, rel=0.04)
    assert [s["primary"] for s in summary["subgroups"]] == ["breast", "prostate"]


def test_non_inferiority_of_each_comparison_reads_the_upper_95_bound(trial):
    """With the protocol's margins each comparison says whether its upper 95% bound is below them: the true hazard
    ratio 0.75 has its bound (about 0.8) below 1.08 but not below 0.78; no margin, no block."""
    patients, events, summary = trial
    (plain,) = summary["comparisons"]
    assert "non_inferiority" not in plain
    upper_hr, upper_rd = plain["time_to_first_sre"]["ci_high"], plain["proportion_with_sre"]["ci_high"]
    for margin in (1.08, 0.78):
        (tested,) = summarise(patients, events, **settings(), non_inferiority_hr=margin, non_inferiority_rd=0.05)[
            "comparisons"
        ]
        assert tested["non_inferiority"] == {
            "hazard_ratio": {"margin": margin, "ci_high": upper_hr, "met": upper_hr < margin},
            "risk_difference": {"margin": 0.05, "ci_high": upper_rd, "met": upper_rd < 0.05},
        }
        assert {k: v for k, v in tested.items() if k != "non_inferiority"} == plain
    assert 0.78 < upper_hr < 1.08 and upper_rd < 0.05


def test_summary_numbers_equal_direct_computations(trial):
    patients, events, summary = trial
    control = patients[patients["arm"] == "control"]
    arm = summary["arms"]["control"]
    assert arm["n"] == 4000
    assert arm["proportion_with_sre"] == control["first_sre_day"].notna().mean()
    years = control["followup_days"].sum() / 365.25
    assert arm["sre_rate_per_patient_year"] == pytest.approx(control["n_sre"].sum() / years)
    hypo = events[(events["arm"] == "control") & (events["type"] == "hypocalcaemia")]["patient_id"].nunique()
    assert arm["adverse_events"]["hypocalcaemia"] == hypo / 4000
    km = KaplanMeierFitter().fit(control["followup_days"], control["died"])
    assert arm["median_overall_survival_months"] == pytest.approx(km.median_survival_time_ / 30.4375)
    durations = control["first_sre_day"].fillna(control["followup_days"])
    code = np.where(control["first_sre_day"].notna(), 1, np.where(control["died"], 2, 0))
    cif12 = cumulative_incidence(durations.to_numpy(), code).loc[: 12 * 30.4375].iloc[-1]
    assert arm["cumulative_incidence_sre"]["12"] == pytest.approx(cif12)
    assert arm["cumulative_incidence_sre"]["12"] < arm["cumulative_incidence_sre"]["24"]


CONTRACT_EXAMPLE = {
    "trial": "x",
    "design": "parallel",
    "arms": {
        "a": {
            "n": 1,
            "median_time_to_first_sre_months": None,
            "proportion_with_sre": 0.3,
            "cumulative_incidence_sre": {"12": 0.2, "24": 0.3},
            "sre_rate_per_patient_year": 0.4,
            "sre_by_type": {t: 0.1 for t in SRE_TYPES},
            "median_overall_survival_months": 30.0,
            "adverse_events": {ae: 0.01 for ae in REPORTED_ADVERSE_EVENTS},
        }
    },
    "comparisons": [
        {
            "arm": "b",
            "reference": "a",
            "time_to_first_sre": {"hazard_ratio": 0.8, "ci_low": 0.7, "ci_high": 0.9, "p_value": 0.01},
            "first_and_subsequent_sre": {"rate_ratio": 0.8, "ci_low": 0.7, "ci_high": 0.9, "p_value": 0.01},
            "overall_survival": {"hazard_ratio": 0.9, "ci_low": 0.8, "ci_high": 1.1, "p_value": 0.5},
        }
    ],
}


def _assert_has_contract_keys(example: object, actual: object, where: str = "summary") -> None:
    """Every key of the contract example is in ``actual``, with a JSON type of the same kind."""
    if isinstance(example, dict):
        assert isinstance(actual, dict), where
        for key, value in example.items():
            assert key in actual, f"{where} lacks {key!r}"
            _assert_has_contract_keys(value, actual[key], f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list) and actual, where
        for item in actual:
            _assert_has_contract_keys(example[0], item, where + "[]")
    elif isinstance(example, (int, float)) or example is None:
        assert actual is None or type(actual) in (int, float), f"{where}: {type(actual)}"
    else:
        assert type(actual) is type(example), where


def test_cox_comparison_of_overall_survival_equals_lifelines(trial):
    patients, _, summary = trial
    data = patients.assign(treated=(patients["arm"] == "active").astype(int))[["followup_days", "died", "treated"]]
    direct = CoxPHFitter().fit(data, "followup_days", "died")
    result = cox_comparison(patients, "active", "control", "overall_survival")
    assert result["hazard_ratio"] == pytest.approx(float(direct.hazard_ratios_["treated"]), rel=1e-10)
    assert summary["comparisons"][0]["overall_survival"] == result


def test_summary_has_every_contract_key_with_plain_types(trial):
    _, _, summary = trial
    data = json.loads(to_json(summary))
    example = {**CONTRACT_EXAMPLE, "arms": {arm: CONTRACT_EXAMPLE["arms"]["a"] for arm in ("control", "active")}}
    _assert_has_contract_keys(example, data)
    assert data["comparisons"][0]["arm"] == "active" and data["comparisons"][0]["reference"] == "control"
    assert list(data["arms"]["control"]["adverse_events"]) == list(REPORTED_ADVERSE_EVENTS)
    assert to_json(summary) == to_json(json.loads(to_json(summary)))  # a round trip changes nothing


def test_no_sre_in_an_arm_gives_nulls_with_reasons():
    patients, events = make_trial(seed=6, n=300, sre_per_day=(1 / 300, 0.0))
    summary = summarise(patients, events, **settings())
    active = summary["arms"]["active"]
    assert active["median_time_to_first_sre_months"] is None
    assert active["proportion_with_sre"] == 0.0 and active["sre_rate_per_patient_year"] == 0.0
    assert active["cumulative_incidence_sre"] == {"12": 0.0, "24": 0.0}
    comparison = summary["comparisons"][0]
    for key, ratio in (("time_to_first_sre", "hazard_ratio"), ("first_and_subsequent_sre", "rate_ratio")):
        assert comparison[key][ratio] is None and comparison[key]["reason"] == "no events in the compared arm"
    assert comparison["overall_survival"]["hazard_ratio"] is not None
    json.loads(to_json(summary))


def test_single_arm_and_all_censored():
    patients, events = make_trial(seed=7, n=200, arms=("only",), sre_per_day=(0.0,), death_per_day=(1e-9,))
    summary = summarise(patients, events, **settings(arms=("only",)))
    assert summary["comparisons"] == [] and summary["subgroups"] == []
    assert summary["logrank"]["overall_survival"]["p_value"] is None
    assert summary["arms"]["only"]["median_overall_survival_months"] is None
    assert summary["arms"]["only"]["median_time_to_first_sre_months"] is None


def test_all_censored_two_arms():
    patients, events = make_trial(seed=8, n=200, sre_per_day=(0.0, 0.0), death_per_day=(1e-9, 1e-9))
    summary = summarise(patients, events, **settings())
    assert summary["logrank"]["time_to_first_sre"]["reason"] == "no events in any arm"
    assert summary["comparisons"][0]["overall_survival"]["hazard_ratio"] is None


def test_unknown_reference_arm_is_a_user_error():
    patients, events = make_trial(seed=9, n=50)
    with pytest.raises(UserInputError, match="reference arm 'placebo'"):
        summarise(patients, events, **{**settings(), "reference_arm": "placebo"})


def test_paired_view_by_hand():
    first = {"ref": [100.0, 100.0, np.nan, 100.0, np.nan, 50.0], "new": [150.0, np.nan, 30.0, 100.2, np.nan, 20.0]}
    pair = pd.DataFrame(
        [
            {"patient_id": i, "arm": arm, "first_sre_day": day}
            for arm, days in first.items()
            for i, day in enumerate(days)
        ]
    )
    view = paired_view(pair, "new", "ref")
    # 0 delayed; 1 prevented; 2 and 5 advanced; 3 (same day) and 4 (none) unchanged.
    assert (view["delayed"], view["prevented"], view["advanced"], view["unchanged"]) == (1 / 6, 1 / 6, 2 / 6, 2 / 6)
    assert view["n_with_sre_under_both"] == 3
    assert view["median_difference_months"] == pytest.approx(0.2 / 30.4375)


def test_paired_design_clusters_on_the_virtual_patient():
    patients, events = make_trial(seed=10, n=2000, paired=True)
    summary = summarise(patients, events, **settings(design="paired"))
    comparison = summary["comparisons"][0]
    assert comparison["paired"]["n_patients"] == 2000
    assert sum(comparison["paired"][k] for k in ("delayed", "prevented", "advanced", "unchanged")) == pytest.approx(1)
    assert comparison["first_and_subsequent_sre"]["ci_low"] < 0.75 < comparison["first_and_subsequent_sre"]["ci_high"]


# --- the run folder --------------------------------------------------------------------------


PROTOCOL_TOML = """
[trial]
name = "synthetic"
title = "Synthetic two-arm trial"
design = "parallel"
patients = 600
horizon_months = 32.85

[cohort]
primary = { breast = 0.5, prostate = 0.5 }

[[arm]]
name = "control"
drug = "zoledronic_acid"
dose_mg = 4.0
every_weeks = 4.0

[[arm]]
name = "active"
drug = "denosumab"
dose_mg = 120.0
every_weeks = 4.0

[analysis]
sre_types = ["pathological_fracture", "radiation_to_bone"]
sre_window_days = 0
landmarks_months = [12, 24]
"""


def make_run_folder(path, seed: int = 11, n: int = 300):
    """A run folder with the contract's files, built from synthetic tables."""
    path.mkdir(parents=True, exist_ok=True)
    patients, events = make_trial(seed=seed, n=n, primaries=("breast", "prostate"))
    patients.to_parquet(path / "patients.parquet")
    events.to_parquet(path / "events.parquet")
    (path / "protocol.toml").write_text(PROTOCOL_TOML)
    (path / "manifest.json").write_text(json.dumps({"version": "0.1.0", "seed": seed, "workers": 2}))
    return path


def test_write_summary_is_byte_identical_when_rebuilt(tmp_path):
    run = make_run_folder(tmp_path / "run")
    first = write_summary(run).read_bytes()
    assert write_summary(run).read_bytes() == first
    assert json.loads(first)["arms"]["control"]["n"] == 300
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_missing_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(UserInputError, match="no such directory"):
        summarise_run(tmp_path / "nowhere")
    run = make_run_folder(tmp_path / "run")
    (run / "events.parquet").unlink()
    with pytest.raises(UserInputError, match=r"events\.parquet.*Fix: give the folder written by `vtrial run"):
        summarise_run(run)
    (run / "events.parquet").write_text("not parquet")
    with pytest.raises(UserInputError, match="cannot be read as Parquet"):
        summarise_run(run)
    pd.DataFrame({"patient_id": [1]}).to_parquet(run / "events.parquet")
    with pytest.raises(UserInputError, match="lacks the column"):
        summarise_run(run)


def test_radiotherapy_retreatment_counts_second_courses_at_the_same_lesion():
    events = pd.DataFrame(
        {
            "patient_id": [1, 1, 1, 1, 2, 2, 3],
            "day": [40.0, 10.0, 20.0, 5.0, 30.0, 50.0, 60.0],
            "type": [
                "radiation_to_bone",
                "radiation_to_bone",
                "radiation_to_bone",
                "prophylactic_radiotherapy",
                "radiation_to_bone",
                "pathological_fracture",
                "hypercalcaemia",
            ],
            "lesion": [0, 0, 1, 2, 0, 0, -1],
        }
    )
    # irradiated lesions: (1, 0) twice, (1, 1) once, (2, 0) once; prophylactic and other events do not count
    assert radiotherapy_retreatment(events) == (
        1 / 3,
        {"irradiated_lesions": 3, "retreated_lesions": 1, "reason": None},
    )
    assert radiotherapy_retreatment(events[events["type"] != "radiation_to_bone"]) == (
        None,
        {"irradiated_lesions": 0, "retreated_lesions": 0, "reason": "no lesion was irradiated in this arm"},
    )


def test_summary_reports_retreatment_per_arm_or_why_not(trial):
    patients, events, summary = trial
    # the synthetic tables have no lesion column: null with the reason
    arm = summary["arms"]["control"]
    assert arm["radiotherapy_retreatment"] is None
    assert arm["radiotherapy_retreatment_detail"]["reason"].startswith("the events table has no lesion column")
    # with lesions (each SRE at lesion 0): every patient with two radiotherapy events is a re-treated lesion
    events = events.assign(lesion=0)
    arm = summarise(patients, events, **settings())["arms"]["active"]
    courses = events[(events["arm"] == "active") & (events["type"] == "radiation_to_bone")].groupby("patient_id").size()
    assert arm["radiotherapy_retreatment"] == pytest.approx((courses >= 2).mean())
    assert arm["radiotherapy_retreatment_detail"]["irradiated_lesions"] == courses.size > 500


def test_pain_response_counts_first_courses_by_intention_to_treat():
    day = PAIN_ASSESSMENT_DAYS
    rows = [
        (1, 0.0, "entry_radiotherapy", 0),  # first course at entry (not an SRE); a partial response
        (1, day, "partial_pain_response", 0),
        (1, 50.0, "radiation_to_bone", 0),  # a re-treatment: not a first course
        (1, 20.0, "radiation_to_bone", 1),  # complete response
        (1, 20.0 + day, "complete_pain_response", 1),
        (1, 30.0, "prophylactic_radiotherapy", 2),  # not a course for pain
        (2, 5.0, "radiation_to_bone", 0),  # patient died on day 50: no response, counted
        (3, 300.0, "radiation_to_bone", 0),  # censored alive on day 350, before the assessment: left out
        (4, 10.0, "radiation_to_bone", 0),  # followed: no response
        (4, 12.0, "hypercalcaemia", -1),
    ]
    events = pd.DataFrame(rows, columns=["patient_id", "day", "type", "lesion"])
    patients = pd.DataFrame(
        {"patient_id": [4, 3, 2, 1], "followup_days": [400.0, 350.0, 50.0, 500.0], "died": [False, False, True, False]}
    )
    # counted: (1, 0) partial, (1, 1) complete, (2, 0) died, (4, 0) none -> 2 of 4 respond, 1 of 4 completely
    assert pain_response(events, patients) == (
        {"overall": 0.5, "complete": 0.25},
        {"assessed_lesions": 4, "responded_lesions": 2, "complete_lesions": 1, "reason": None},
    )
    courses = first_pain_courses(events, patients["patient_id"], patients["followup_days"], patients["died"])
    assert courses[["patient_id", "lesion", "day", "courses"]].to_numpy().tolist() == [
        [1, 0, 0.0, 2],  # the entry course and the re-treatment on day 50
        [1, 1, 20.0, 1],
        [2, 0, 5.0, 1],
        [3, 0, 300.0, 1],
        [4, 0, 10.0, 1],
    ]
    none = events[~events["type"].isin(["entry_radiotherapy", "radiation_to_bone"])]
    assert pain_response(none, patients)[1]["reason"] == "no lesion was irradiated for pain in this arm"
    assert pain_response(events[events["patient_id"] == 3], patients)[1]["reason"] == "no assessment was reached"


def test_summary_reports_pain_response_per_arm(trial):
    patients, events, _ = trial
    arm = summarise(patients, events.assign(lesion=0), **settings())["arms"]["active"]
    # the synthetic events have no pain-response rows: every assessed lesion is a non-responder
    assert arm["pain_response"] == {"overall": 0.0, "complete": 0.0}
    assert arm["pain_response_detail"]["assessed_lesions"] > 500


def test_marker_summary_medians_changes_and_share_below_50():
    markers = pd.DataFrame(
        {
            "patient_id": [1, 1, 2, 2, 3, 3, 4],
            "arm": ["a"] * 7,
            "week": [0, 13, 0, 13, 0, 13, 0],
            "untx_nmol_mmol": [100.0, 20.0, 60.0, 30.0, 40.0, 36.0, 80.0],
            "bsap_ug_l": [20.0, 15.0, 10.0, 9.0, 30.0, 15.0, 12.0],
            "calcium_mmol_l": [2.3, 2.2, 2.4, 2.5, 2.6, 2.35, 2.5],
        }
    )
    summary = marker_summary(markers)
    assert list(summary) == ["0", "13"]
    # uNTx changes -80%, -50%, -10%; BSAP -25%, -10%, -50%; 3 of 3 below 50 at week 13
    assert summary["13"] == pytest.approx(
        {
            "untx_change_pct": -50.0,
            "untx_below_50": 1.0,
            "bsap_change_pct": -25.0,
            "calcium_mmol_l": 2.35,
            "untx_nmol_mmol": 30.0,
            "bsap_ug_l": 15.0,
            "n": 3,
        }
    )
    assert summary["0"]["untx_below_50"] == 0.25 and summary["0"]["untx_change_pct"] == 0.0


def test_marker_changes_leave_out_patients_without_a_week_0_visit():
    markers = pd.DataFrame(
        {
            "patient_id": [7, 3, 3, 5, 7, 9],
            "arm": ["a"] * 6,
            "week": [13, 13, 0, 13, 0, 0],
            "untx_nmol_mmol": [30.0, 45.0, 50.0, 55.0, 60.0, 70.0],
            "bsap_ug_l": [8.0, 9.0, 10.0, 1.0, 16.0, 20.0],
            "calcium_mmol_l": [2.4, 2.2, 2.3, 2.9, 2.5, 2.6],
        }
    )
    week = marker_summary(markers)["13"]
    # patient 5 has no week 0: out of the changes (uNTx -50% and -10%, BSAP -50% and -10%), in the rest
    assert week["untx_change_pct"] == pytest.approx(-30.0) and week["bsap_change_pct"] == pytest.approx(-30.0)
    assert week["n"] == 3 and week["untx_nmol_mmol"] == 45.0 and week["calcium_mmol_l"] == 2.4
    assert week["untx_below_50"] == pytest.approx(2 / 3)


def test_run_folder_markers_are_summarised_and_old_folders_have_none(tmp_path):
    run = make_run_folder(tmp_path / "run")
    summary = summarise_run(run)
    assert all(arm["markers"] == {} for arm in summary["arms"].values())
    # every adverse-event type is listed for every arm, 0.0 where the arm has none
    assert all(list(arm["adverse_events"]) == list(REPORTED_ADVERSE_EVENTS) for arm in summary["arms"].values())
    patients = pd.read_parquet(run / "patients.parquet")
    first = patients.groupby("arm").head(2)
    pd.DataFrame(
        {
            "patient_id": np.repeat(first["patient_id"].to_numpy(), 2),
            "arm": np.repeat(first["arm"].to_numpy(), 2),
            "week": np.tile([0, 13], len(first)),
            "untx_nmol_mmol": np.tile([60.0, 15.0], len(first)),
            "bsap_ug_l": np.tile([20.0, 16.0], len(first)),
            "calcium_mmol_l": np.tile([2.4, 2.3], len(first)),
        }
    ).to_parquet(run / "markers.parquet")
    summary = summarise_run(run)
    for arm in summary["arms"].values():
        assert arm["markers"]["13"]["untx_change_pct"] == pytest.approx(-75.0)
        assert arm["markers"]["13"]["bsap_change_pct"] == pytest.approx(-20.0)
        assert arm["markers"]["13"]["untx_below_50"] == 1.0 and arm["markers"]["13"]["n"] == 2


@pytest.mark.parametrize("design", ["parallel", "paired"])
def test_summary_is_the_same_from_text_and_from_categorical_columns(design):
    # the run's analysis reads text as categoricals (fast comparisons); categories in any order
    # give the summary of Python strings, number for number (the codes are re-sorted)
    arms = ("zeta", "alpha", "mid")
    patients, events = make_trial(
        seed=12,
        n=400,
        arms=arms,
        sre_per_day=(1 / 300, 0.7 / 300, 0.9 / 300),
        death_per_day=(1 / 900,) * 3,
        paired=design == "paired",
        primaries=("breast", "prostate"),
    )
    options = {**settings(arms, design), "reference_arm": "zeta"}
    unsorted = {"arm": list(arms), "type": ["radiation_to_bone", "hypocalcaemia", "pathological_fracture"]}
    as_categories = {
        name: frame.assign(
            **{c: pd.Categorical(frame[c], categories=unsorted[c]) for c in ("arm", "type") if c in frame}
        )
        for name, frame in (("patients", patients), ("events", events))
    }
    assert list(as_categories["patients"]["arm"].cat.categories) == ["zeta", "alpha", "mid"]
    text = to_json(summarise(patients, events, **options))
    assert to_json(summarise(as_categories["patients"], as_categories["events"], **options)) == text
    assert json.loads(text)["comparisons"][0]["arm"] == "alpha"


def test_run_folder_tables_read_as_sorted_categoricals_give_the_same_summary(tmp_path):
    run = make_run_folder(tmp_path / "run")
    patients, events, _ = read_tables(run, ["control", "active"], categorical=True)
    assert list(patients["arm"].cat.categories) == ["active", "control"]
    assert list(events["type"].cat.categories) == sorted(set(pd.read_parquet(run / "events.parquet")["type"]))
    text_tables = read_tables(run, ["control", "active"])
    assert text_tables[0]["arm"].dtype == object
    assert write_summary(run).read_text() == to_json(
        summarise(text_tables[0], text_tables[1], **analysis_settings(read_protocol(run)))
    )


def test_sorted_lookups_find_runs_and_positions():
    # runs of equal values in a sorted array start at rows 0, 2 and 3
    np.testing.assert_array_equal(run_starts(np.array([4, 4, 7, 9, 9, 9])), [True, False, True, True, False, False])
    assert run_starts(np.array([], dtype=np.int64)).size == 0
    # 7 is at index 1 of the keys, 9 at 2; 5 and 10 are not among them (10 is past the end)
    np.testing.assert_array_equal(position_in(np.array([4, 7, 9]), np.array([9, 5, 7, 10, 4])), [2, -1, 1, -1, 0])
    np.testing.assert_array_equal(position_in(np.array([], dtype=np.int64), np.array([3])), [-1])
