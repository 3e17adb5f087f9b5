"""Simulated statistics of the calibration targets, each with its 95% confidence interval.

Every function takes the observations of the replicas a check names and the check, and returns
an :class:`Estimate` in the check's unit (proportions in percent). Counts of several replicas
are pooled (the pooled safety rows); the other statistics read one replica.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from vtrial.analysis.proportions import clopper_pearson, poisson_rate_ci
from vtrial.analysis.survival import DAYS_PER_MONTH, kaplan_meier, value_at
from vtrial.calibration.replicas import ArmData, Observation
from vtrial.calibration.targets import Check

#: Two-sided 95% normal quantile (CI of a mean).
Z95 = 1.959963984540054


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
    k = sum(count(observations[r], check.arm) for r in check.replicas)
    n = sum(observations[r].summary["arms"][check.arm]["n"] for r in check.replicas)
    return _proportion(k, n, check)


def _median(arm_summary: dict, key: str, arm: ArmData, check: Check) -> Estimate:
    s = _scale(check)
    value, (low, high) = arm_summary[key], arm_summary[f"{key}_ci"]
    ceiling = s * arm.followup_days.max() / DAYS_PER_MONTH if arm.followup_days.size else None
    return Estimate(*(None if v is None else s * v for v in (value, low, high)), ceiling=ceiling)


def median_time_to_first_sre(observations: Observations, check: Check) -> Estimate:
    """Kaplan–Meier median time to first counted SRE of the arm."""
    obs = _one(observations, check)
    return _median(obs.summary["arms"][check.arm], "median_time_to_first_sre_months", obs.arms[check.arm], check)


def median_overall_survival(observations: Observations, check: Check) -> Estimate:
    """Kaplan–Meier median overall survival of the arm."""
    obs = _one(observations, check)
    return _median(obs.summary["arms"][check.arm], "median_overall_survival_months", obs.arms[check.arm], check)


def _comparison(observations: Observations, check: Check, endpoint: str, ratio: str) -> Estimate:
    obs = _one(observations, check)
    (result,) = [c[endpoint] for c in obs.summary["comparisons"] if c["arm"] == check.arm]
    return Estimate(result[ratio], result["ci_low"], result["ci_high"])


def hazard_ratio_first_sre(observations: Observations, check: Check) -> Estimate:
    """Cox hazard ratio of time to first SRE, the arm against the reference arm."""
    return _comparison(observations, check, "time_to_first_sre", "hazard_ratio")


def rate_ratio_sre(observations: Observations, check: Check) -> Estimate:
    """Andersen–Gill rate ratio of first and subsequent SREs, the arm against the reference arm."""
    return _comparison(observations, check, "first_and_subsequent_sre", "rate_ratio")


def mean_sre_per_patient(observations: Observations, check: Check) -> Estimate:
    """Counted SREs per patient of the arm, with the exact Poisson CI of the count."""
    arm = _one(observations, check).summary["arms"][check.arm]
    return Estimate(*poisson_rate_ci(arm["n_sre"], arm["n"])) if arm["n"] else NOT_ESTIMABLE


def proportion_with_sre(observations: Observations, check: Check) -> Estimate:
    """Crude fraction of the arm with at least one counted SRE during follow-up."""
    arm = _one(observations, check).summary["arms"][check.arm]
    return _proportion(arm["n_with_sre"], arm["n"], check)


def proportion_with_sre_by(observations: Observations, check: Check) -> Estimate:
    """Crude fraction of the arm with a first counted SRE within ``check.option`` months."""
    first = _one(observations, check).arms[check.arm].first_sre_day
    k = int(np.sum(first <= float(check.option) * DAYS_PER_MONTH))  # NaN (no SRE) compares False
    return _proportion(k, first.size, check)


def first_sre_type(observations: Observations, check: Check) -> Estimate:
    """Fraction of the arm whose first counted SRE is of type ``check.option``."""
    arm = _one(observations, check).summary["arms"][check.arm]
    return _proportion(round((arm["first_sre_by_type"][check.option] or 0.0) * arm["n"]), arm["n"], check)


def adverse_event(observations: Observations, check: Check) -> Estimate:
    """Fraction of the arm with adverse event ``check.option``, pooled over the check's replicas."""
    return _pooled(observations, check,
                   lambda obs, arm: obs.summary["arms"][arm]["adverse_events_ci"][check.option]["n"])


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
    ci = fit.confidence_interval_
    s = _scale(check)
    values = (value_at(fit.survival_function_.iloc[:, 0], t), value_at(ci.iloc[:, 0], t), value_at(ci.iloc[:, 1], t))
    return Estimate(*(None if v is None else s * v for v in values))


def survival_at(observations: Observations, check: Check) -> Estimate:
    """Overall survival of the arm at ``check.option`` months."""
    arm = _one(observations, check).arms[check.arm]
    return _survival(arm.followup_days, arm.died, float(check.option), check)


def survival_sre_free_at(observations: Observations, check: Check) -> Estimate:
    """Survival at ``check.option`` months with follow-up censored at the first SRE (time without SRE)."""
    arm = _one(observations, check).arms[check.arm]
    has = ~np.isnan(arm.first_sre_day)
    durations = np.where(has, arm.first_sre_day, arm.followup_days)
    return _survival(durations, arm.died & ~has, float(check.option), check)


def survival_after_sre_at(observations: Observations, check: Check) -> Estimate:
    """Survival ``check.option`` months after the first SRE, among patients with one."""
    arm = _one(observations, check).arms[check.arm]
    has = ~np.isnan(arm.first_sre_day)
    return _survival(arm.followup_days[has] - arm.first_sre_day[has], arm.died[has], float(check.option), check)


def mean_lesions(observations: Observations, check: Check) -> Estimate:
    """Mean number of bone lesions at entry, with a normal 95% CI."""
    n = _one(observations, check).arms[check.arm].n_lesions
    if n.size < 2:
        return NOT_ESTIMABLE
    half = Z95 * n.std(ddof=1) / math.sqrt(n.size)
    return Estimate(float(n.mean()), float(n.mean() - half), float(n.mean() + half))


#: Statistic functions by the name a :class:`~vtrial.calibration.targets.Check` gives.
STATISTICS: dict[str, Callable[[Observations, Check], Estimate]] = {
    f.__name__: f
    for f in (
        median_time_to_first_sre, median_overall_survival, hazard_ratio_first_sre, rate_ratio_sre,
        mean_sre_per_patient, proportion_with_sre, proportion_with_sre_by, first_sre_type, adverse_event,
        acute_phase_reaction_3_days, onj_with_dental_risk, survival_at, survival_sre_free_at,
        survival_after_sre_at, mean_lesions,
    )
}


def estimate(observations: Observations, check: Check) -> Estimate:
    """The simulated statistic of a check."""
    return STATISTICS[check.statistic](observations, check)
