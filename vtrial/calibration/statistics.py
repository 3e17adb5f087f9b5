"""Simulated statistics of the calibration targets, each with its 95% confidence interval.

Every function takes the observations of the replicas a check names and the check, and returns
an :class:`Estimate` in the check's unit (proportions in percent). Counts of several replicas
are pooled (the pooled safety rows, the death risk by uNTx); the other statistics read one replica.

The marker statistics read the simulated visits (``markers.parquet``): markers exist only at the
replica's ``marker_weeks``, so a laboratory threshold is seen only at a visit, and a risk "by the
most recent uNTx" holds each visit's value until the next visit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from vtrial.analysis.proportions import clopper_pearson, poisson_rate_ci
from vtrial.analysis.radiotherapy import first_pain_courses
from vtrial.analysis.survival import DAYS_PER_MONTH, kaplan_meier
from vtrial.calibration.replicas import ArmData, Observation
from vtrial.calibration.targets import Check
from vtrial.model.markers import HYPOCALCAEMIA_GRADE_2_MMOL_L
from vtrial.vocabulary import LONG_BONE_SITES, PAIN_COURSES

#: Two-sided 95% normal quantile (CI of a mean, of a median, of a log ratio).
Z95 = 1.959963984540054
#: CTCAE grade >= 2 hypocalcaemia: albumin-corrected serum calcium below 8.0 mg/dL = 2.0 mmol/L (CA-01).
CALCIUM_GRADE_2_MMOL_L = HYPOCALCAEMIA_GRADE_2_MMOL_L
#: uNTx/Cr (nmol/mmol) at or above which uNTx is "high" (Brown 2005, Coleman 2005).
UNTX_HIGH = 100.0
#: uNTx/Cr below which uNTx is "low" in Coleman 2005 (50-99 is "moderate", left out of MK-07).
UNTX_LOW = 50.0
#: Days from one marker visit week to the next.
DAYS_PER_WEEK = 7.0


@dataclass(frozen=True)
class Estimate:
    """A simulated value with its 95% CI; ``None`` where not estimable (a median not reached).

    ``ceiling`` is the longest follow-up in the statistic's unit (what a median not reached
    exceeds), ``None`` for statistics that are always estimable.
    """

    value: float | None
    low: float | None
    high: float | None
    ceiling: float | None = None


Observations = Mapping[str, Observation]

#: The estimate of an arm a small replica randomised nobody (or too few patients) to.
NOT_ESTIMABLE = Estimate(None, None, None)


_T = TypeVar("_T")


def _kept(value: _T | None, what: str) -> _T:
    """An optional table of :class:`ArmData` that a statistic reads (the replicas keep it)."""
    if value is None:
        raise ValueError(f"the replica's arm data holds no {what}")
    return value


def _scale(check: Check) -> float:
    """Factor from the summary's unit (months, fractions) to the check's unit."""
    return {"%": 100.0, "days": DAYS_PER_MONTH}.get(check.unit, 1.0)


def _one(observations: Observations, check: Check) -> Observation:
    (name,) = check.replicas
    return observations[name]


def _proportion(k: int, n: int, check: Check) -> Estimate:
    if n == 0:
        return NOT_ESTIMABLE
    low, high = clopper_pearson(k, n)
    s = _scale(check)
    return Estimate(s * k / n, s * low, s * high)


def _pooled(observations: Observations, check: Check, count: Callable[[Observation, str], int]) -> Estimate:
    """Pooled proportion of ``check.arm`` over the check's replicas: sum of counts / sum of sizes."""
    k = sum(count(observations[r], check.arm_name) for r in check.replicas)
    n = sum(observations[r].summary["arms"][check.arm_name]["n"] for r in check.replicas)
    return _proportion(k, n, check)


def _median(arm_summary: dict, key: str, arm: ArmData, check: Check) -> Estimate:
    s = _scale(check)
    value, (low, high) = arm_summary[key], arm_summary[f"{key}_ci"]
    ceiling = s * arm.followup_days.max() / DAYS_PER_MONTH if arm.followup_days.size else None
    value, low, high = (None if v is None else s * v for v in (value, low, high))
    return Estimate(value, low, high, ceiling=ceiling)


def median_time_to_first_sre(observations: Observations, check: Check) -> Estimate:
    """Kaplan–Meier median time to first counted SRE of the arm."""
    obs = _one(observations, check)
    return _median(
        obs.summary["arms"][check.arm_name], "median_time_to_first_sre_months", obs.arms[check.arm_name], check
    )


def median_overall_survival(observations: Observations, check: Check) -> Estimate:
    """Kaplan–Meier median overall survival of the arm."""
    obs = _one(observations, check)
    return _median(
        obs.summary["arms"][check.arm_name], "median_overall_survival_months", obs.arms[check.arm_name], check
    )


def _comparison(observations: Observations, check: Check, endpoint: str, ratio: str) -> Estimate:
    obs = _one(observations, check)
    (result,) = [c[endpoint] for c in obs.summary["comparisons"] if c["arm"] == check.arm_name]
    return Estimate(result[ratio], result["ci_low"], result["ci_high"])


def hazard_ratio_first_sre(observations: Observations, check: Check) -> Estimate:
    """Cox hazard ratio of time to first SRE, the arm against the reference arm."""
    return _comparison(observations, check, "time_to_first_sre", "hazard_ratio")


def rate_ratio_sre(observations: Observations, check: Check) -> Estimate:
    """Andersen–Gill rate ratio of first and subsequent SREs, the arm against the reference arm."""
    return _comparison(observations, check, "first_and_subsequent_sre", "rate_ratio")


def mean_sre_per_patient(observations: Observations, check: Check) -> Estimate:
    """Counted SREs per patient of the arm, with the exact Poisson CI of the count."""
    arm = _one(observations, check).summary["arms"][check.arm_name]
    return Estimate(*poisson_rate_ci(arm["n_sre"], arm["n"])) if arm["n"] else NOT_ESTIMABLE


def proportion_with_sre(observations: Observations, check: Check) -> Estimate:
    """Crude fraction of the arm with at least one counted SRE during follow-up."""
    arm = _one(observations, check).summary["arms"][check.arm_name]
    return _proportion(arm["n_with_sre"], arm["n"], check)


def proportion_with_sre_by(observations: Observations, check: Check) -> Estimate:
    """Crude fraction of the arm with a first counted SRE within ``check.option`` months."""
    first = _one(observations, check).arms[check.arm_name].first_sre_day
    k = int(np.sum(first <= check.number * DAYS_PER_MONTH))  # NaN (no SRE) compares False
    return _proportion(k, first.size, check)


def first_sre_type(observations: Observations, check: Check) -> Estimate:
    """Fraction of the arm whose first counted SRE is of type ``check.option``."""
    arm = _one(observations, check).summary["arms"][check.arm_name]
    return _proportion(round((arm["first_sre_by_type"][check.option] or 0.0) * arm["n"]), arm["n"], check)


def adverse_event(observations: Observations, check: Check) -> Estimate:
    """Fraction of the arm with adverse event ``check.option``, pooled over the check's replicas."""
    return _pooled(
        observations, check, lambda obs, arm: obs.summary["arms"][arm]["adverse_events_ci"][check.option]["n"]
    )


def acute_phase_reaction_3_days(observations: Observations, check: Check) -> Estimate:
    """Fraction of the arm with an acute-phase reaction in the first 3 days, pooled."""
    return _pooled(observations, check, lambda obs, arm: obs.arms[arm].acute_phase_3_days)


def onj_with_dental_risk(observations: Observations, check: Check) -> Estimate:
    """Share of dental risk (poor dental health, extraction) among all ONJ cases, pooled over arms."""
    arms = [a for r in check.replicas for a in observations[r].arms.values()]
    k, n = sum(a.onj_dental_risk for a in arms), sum(a.onj for a in arms)
    return _proportion(k, n, check)


def _survival(durations: np.ndarray, died: np.ndarray, months: float, check: Check) -> Estimate:
    """Kaplan–Meier survival at ``months`` with its 95% CI; ``None`` past the last follow-up."""
    if durations.size == 0:
        return NOT_ESTIMABLE
    fit = kaplan_meier(durations, died, "survival")
    t = months * DAYS_PER_MONTH
    if t > fit.times[-1]:  # past the last follow-up
        return NOT_ESTIMABLE
    s = _scale(check)
    low, high = fit.band_at(np.array([t]))[0]
    return Estimate(*(s * float(v) for v in (fit.at(t), low, high)))


def survival_at(observations: Observations, check: Check) -> Estimate:
    """Overall survival of the arm at ``check.option`` months."""
    arm = _one(observations, check).arms[check.arm_name]
    return _survival(arm.followup_days, arm.died, check.number, check)


def survival_sre_free_at(observations: Observations, check: Check) -> Estimate:
    """Survival at ``check.option`` months with follow-up censored at the first SRE (time without SRE)."""
    arm = _one(observations, check).arms[check.arm_name]
    has = ~np.isnan(arm.first_sre_day)
    durations = np.where(has, arm.first_sre_day, arm.followup_days)
    return _survival(durations, arm.died & ~has, check.number, check)


def survival_after_sre_at(observations: Observations, check: Check) -> Estimate:
    """Survival ``check.option`` months after the first SRE, among patients with one."""
    arm = _one(observations, check).arms[check.arm_name]
    has = ~np.isnan(arm.first_sre_day)
    return _survival(arm.followup_days[has] - arm.first_sre_day[has], arm.died[has], check.number, check)


def mean_lesions(observations: Observations, check: Check) -> Estimate:
    """Mean number of bone lesions at entry, with a normal 95% CI."""
    n = _one(observations, check).arms[check.arm_name].n_lesions
    if n.size < 2:
        return NOT_ESTIMABLE
    half = Z95 * n.std(ddof=1) / math.sqrt(n.size)
    return Estimate(float(n.mean()), float(n.mean() - half), float(n.mean() + half))


def sre_rate_per_patient_year(observations: Observations, check: Check) -> Estimate:
    """Counted SREs per patient-year of the arm (skeletal morbidity rate), exact Poisson CI."""
    arm = _one(observations, check).summary["arms"][check.arm_name]
    return Estimate(arm["sre_rate_per_patient_year"], *arm["sre_rate_per_patient_year_ci"])


def hazard_ratio_overall_survival(observations: Observations, check: Check) -> Estimate:
    """Cox hazard ratio of death, the arm against the reference arm."""
    return _comparison(observations, check, "overall_survival", "hazard_ratio")


# --- bone markers ----------------------------------------------------------------------------


#: Fewest values for a distribution-free 95% CI of a median: even the smallest and largest of ``n`` values
#: cover it with probability ``1 - 2 / 2**n``, at least 0.95 only from 6 values on.
MIN_MEDIAN_CI_VALUES = 6


def median_with_rank_ci(values: np.ndarray) -> Estimate:
    """Sample median with the distribution-free 95% CI between two order statistics.

    The CI runs from the ``floor((n - z sqrt(n)) / 2)``-th to the ``ceil(1 + (n + z sqrt(n)) / 2)``-th
    smallest value (1-based, clipped to ``1..n``): the normal approximation to the binomial ranks.
    Below :data:`MIN_MEDIAN_CI_VALUES` values the median has no CI (``None`` ends): clipped ranks
    would give an interval that covers it less often than claimed (one value: a zero-width one).
    """
    n = values.size
    if n == 0:
        return NOT_ESTIMABLE
    ordered = np.sort(values)
    if n < MIN_MEDIAN_CI_VALUES:
        return Estimate(float(np.median(ordered)), None, None)
    half = Z95 * math.sqrt(n)
    low = min(max(math.floor((n - half) / 2), 1), n)
    high = min(max(math.ceil(1 + (n + half) / 2), 1), n)
    return Estimate(float(np.median(ordered)), float(ordered[low - 1]), float(ordered[high - 1]))


def marker_change(arm: ArmData, column: str, week: int, above: float = -math.inf) -> np.ndarray:
    """Per-patient percent change of a marker from week 0 to ``week`` (patients measured at both).

    Only patients whose week-0 value is above ``above`` are kept (an entry criterion on the marker).
    """
    m = _kept(arm.markers, "markers")
    start = m.loc[(m["week"] == 0) & (m[column] > above), ["patient_id", column]]
    visit = m.loc[m["week"] == week, ["patient_id", column]]
    both = start.merge(visit, on="patient_id", suffixes=("_0", ""))
    return (100.0 * (both[column] / both[f"{column}_0"] - 1.0)).to_numpy()


def median_untx_change(observations: Observations, check: Check) -> Estimate:
    """Median per-patient percent change of uNTx/Cr from week 0 to week ``check.option``."""
    return median_with_rank_ci(
        marker_change(_one(observations, check).arms[check.arm_name], "untx_nmol_mmol", int(check.number))
    )


def _reduction(change: Estimate) -> Estimate:
    """A percent change as a percent reduction (sign turned, CI ends swapped)."""
    if change.value is None:
        return change
    return Estimate(
        -change.value, None if change.high is None else -change.high, None if change.low is None else -change.low
    )


def median_untx_reduction(observations: Observations, check: Check) -> Estimate:
    """Median per-patient percent reduction of uNTx/Cr from week 0 to week ``check.option``."""
    return _reduction(median_untx_change(observations, check))


def median_untx_reduction_above_50(observations: Observations, check: Check) -> Estimate:
    """As :func:`median_untx_reduction`, among patients entering with uNTx/Cr above 50 nmol/mmol (MK-04)."""
    arm = _one(observations, check).arms[check.arm_name]
    return _reduction(median_with_rank_ci(marker_change(arm, "untx_nmol_mmol", int(check.number), UNTX_LOW)))


def median_bsap_change(observations: Observations, check: Check) -> Estimate:
    """Median per-patient percent change of bone-specific alkaline phosphatase to week ``check.option``."""
    return median_with_rank_ci(
        marker_change(_one(observations, check).arms[check.arm_name], "bsap_ug_l", int(check.number))
    )


def laboratory_hypocalcaemia_grade_2(observations: Observations, check: Check) -> Estimate:
    """Share of the arm with a visit after week 0 with calcium below :data:`CALCIUM_GRADE_2_MMOL_L`, pooled.

    Calcium exists only at the marker visits: a dip between visits is not seen, as in a trial's
    scheduled laboratory tests.
    """

    def low(obs: Observation, arm: str) -> int:
        m = _kept(obs.arms[arm].markers, "markers")
        return int(m.loc[(m["week"] > 0) & (m["calcium_mmol_l"] < CALCIUM_GRADE_2_MMOL_L), "patient_id"].nunique())

    return _pooled(observations, check, low)


def untx_exposure(
    arm: ArmData, event_day: np.ndarray, end_day: np.ndarray, high: float, low: float
) -> tuple[int, float, int, float]:
    """Events and time at risk with the most recent uNTx high (``>= high``) and low (``< low``).

    Each visit's uNTx holds from its day (week x 7) to the next visit of the patient, or to the
    patient's ``end_day`` (the event or the end of follow-up); ``event_day`` is NaN without event.
    Both arrays are per patient, in the order of ``arm.patient_id``. Returns
    ``(events_high, days_high, events_low, days_low)``.
    """
    m = _kept(arm.markers, "markers").sort_values(["patient_id", "week"])
    ids = _kept(arm.patient_id, "patient_id")
    row = pd.Series(np.arange(ids.size), index=ids)[m["patient_id"]].to_numpy()
    start = m["week"].to_numpy(dtype=float) * DAYS_PER_WEEK
    following = m.groupby("patient_id")["week"].shift(-1).fillna(np.inf).to_numpy(dtype=float) * DAYS_PER_WEEK
    days = np.clip(np.minimum(following, end_day[row]) - start, 0.0, None)
    event = event_day[row]
    hit = (event >= start) & (event < following)  # one interval per event; NaN (no event) compares False
    untx = m["untx_nmol_mmol"].to_numpy()
    is_high, is_low = untx >= high, untx < low
    return int(hit[is_high].sum()), float(days[is_high].sum()), int(hit[is_low].sum()), float(days[is_low].sum())


def _rate_ratio(counts: list[tuple[int, float, int, float]]) -> Estimate:
    """Rate ratio high/low of pooled ``(events_high, days_high, events_low, days_low)``, Wald CI on the log."""
    k_high, t_high, k_low, t_low = (sum(c[i] for c in counts) for i in range(4))
    if min(k_high, k_low) == 0 or min(t_high, t_low) <= 0.0:
        return NOT_ESTIMABLE
    ratio = (k_high / t_high) / (k_low / t_low)
    half = Z95 * math.sqrt(1.0 / k_high + 1.0 / k_low)
    return Estimate(ratio, ratio * math.exp(-half), ratio * math.exp(half))


def sre_rate_ratio_by_untx(observations: Observations, check: Check) -> Estimate:
    """Rate ratio of a first SRE with the most recent uNTx high (>= 100) vs low (< 100), pooled (Brown 2005)."""
    counts = []
    for name in check.replicas:
        arm = observations[name].arms[check.arm_name]
        has = ~np.isnan(arm.first_sre_day)
        end = np.where(has, arm.first_sre_day, arm.followup_days)
        counts.append(untx_exposure(arm, arm.first_sre_day, end, UNTX_HIGH, UNTX_HIGH))
    return _rate_ratio(counts)


def death_rate_ratio_by_untx(observations: Observations, check: Check) -> Estimate:
    """Rate ratio of death with the most recent uNTx high (>= 100) vs low (< 50), pooled (Coleman 2005)."""
    counts = []
    for name in check.replicas:
        arm = observations[name].arms[check.arm_name]
        death = np.where(arm.died, arm.followup_days, np.nan)
        counts.append(untx_exposure(arm, death, arm.followup_days, UNTX_HIGH, UNTX_LOW))
    return _rate_ratio(counts)


# --- radiotherapy and lesions ------------------------------------------------------------------


def _retreatment_counts(obs: Observation, arm: str) -> tuple[int, int]:
    detail = obs.summary["arms"][arm]["radiotherapy_retreatment_detail"]
    return detail["retreated_lesions"], detail["irradiated_lesions"]


def radiotherapy_retreatment(observations: Observations, check: Check) -> Estimate:
    """Share of the arm's irradiated lesions irradiated again during follow-up."""
    return _proportion(*_retreatment_counts(_one(observations, check), check.arm_name), check)


def retreatment_odds_ratio(observations: Observations, check: Check) -> Estimate:
    """Odds ratio of re-irradiation of a lesion, the arm against the reference arm (Woolf CI)."""
    obs = _one(observations, check)
    k1, n1 = _retreatment_counts(obs, check.arm_name)
    k0, n0 = _retreatment_counts(obs, obs.summary["reference_arm"])
    cells = (k1, n1 - k1, k0, n0 - k0)
    if min(cells) == 0:
        return NOT_ESTIMABLE
    ratio = (cells[0] * cells[3]) / (cells[1] * cells[2])
    half = Z95 * math.sqrt(sum(1.0 / c for c in cells))
    return Estimate(ratio, ratio * math.exp(-half), ratio * math.exp(half))


def fracture_after_radiotherapy(observations: Observations, check: Check) -> Estimate:
    """Share of irradiated long-bone lesions that fracture within ``check.option`` months of the first course.

    A lesion counts from its first course for pain (:data:`~vtrial.vocabulary.PAIN_COURSES`) if it had no fracture or surgery
    before (Mirels: lesions neither broken nor fixed); it is in the denominator if it fractured
    within the window or its patient was followed through the window.
    """
    arm = _one(observations, check).arms[check.arm_name]
    lesion_events = _kept(arm.lesion_events, "lesion_events")
    ev = lesion_events[lesion_events["site"].isin(LONG_BONE_SITES)]
    window = check.number * DAYS_PER_MONTH
    key = ["patient_id", "lesion"]
    patient_id = _kept(arm.patient_id, "patient_id")
    course = first_pain_courses(ev, patient_id, arm.followup_days, arm.died).set_index(key)["day"].rename("course")
    lesions = ev.join(course, on=key, how="inner")
    before = lesions[~lesions["type"].isin(PAIN_COURSES) & (lesions["day"] <= lesions["course"])]
    fractures = lesions[
        (lesions["type"] == "pathological_fracture")
        & (lesions["day"] > lesions["course"])
        & (lesions["day"] <= lesions["course"] + window)
    ]
    eligible = course.drop(pd.MultiIndex.from_frame(before[key]), errors="ignore").reset_index()
    followup = pd.Series(arm.followup_days, index=patient_id)[eligible["patient_id"]].to_numpy()
    fractured = pd.MultiIndex.from_frame(eligible[key]).isin(pd.MultiIndex.from_frame(fractures[key]))
    followed = followup >= eligible["course"].to_numpy() + window
    return _proportion(int(fractured.sum()), int((fractured | followed).sum()), check)


def pain_response(observations: Observations, check: Check) -> Estimate:
    """Share of the lesions irradiated for pain that respond at 3 months, by intention to treat.

    ``check.option``: ``"overall"`` (a partial or complete response) or ``"complete"``; the counts are the
    arm's ``pain_response_detail`` (:func:`vtrial.analysis.radiotherapy.pain_response`). A lesion
    counts from its first course for pain (:data:`~vtrial.vocabulary.PAIN_COURSES`); it is in the denominator if its patient
    was followed to the assessment (:data:`~vtrial.vocabulary.PAIN_ASSESSMENT_DAYS` later)
    or died before it (no response, as the trials counted deaths before the assessment); patients
    censored alive before it (end of the replica, dropout) are left out.
    """
    if check.option not in ("overall", "complete"):
        raise ValueError(f"check {check.target} (pain_response) needs 'overall' or 'complete', not {check.option!r}")
    detail = _one(observations, check).summary["arms"][check.arm_name]["pain_response_detail"]
    responded = detail["responded_lesions" if check.option == "overall" else "complete_lesions"]
    return _proportion(responded, detail["assessed_lesions"], check)


#: Statistic functions by the name a :class:`~vtrial.calibration.targets.Check` gives.
STATISTICS: dict[str, Callable[[Observations, Check], Estimate]] = {
    f.__name__: f
    for f in (
        median_time_to_first_sre,
        median_overall_survival,
        hazard_ratio_first_sre,
        rate_ratio_sre,
        mean_sre_per_patient,
        proportion_with_sre,
        proportion_with_sre_by,
        first_sre_type,
        adverse_event,
        acute_phase_reaction_3_days,
        onj_with_dental_risk,
        survival_at,
        survival_sre_free_at,
        survival_after_sre_at,
        mean_lesions,
        sre_rate_per_patient_year,
        hazard_ratio_overall_survival,
        median_untx_change,
        median_untx_reduction,
        median_untx_reduction_above_50,
        median_bsap_change,
        laboratory_hypocalcaemia_grade_2,
        sre_rate_ratio_by_untx,
        death_rate_ratio_by_untx,
        radiotherapy_retreatment,
        retreatment_odds_ratio,
        fracture_after_radiotherapy,
        pain_response,
    )
}


def estimate(observations: Observations, check: Check) -> Estimate:
    """The simulated statistic of a check."""
    return STATISTICS[check.statistic](observations, check)
