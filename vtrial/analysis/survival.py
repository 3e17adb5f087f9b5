"""Survival estimators on the run's tables: Kaplan–Meier, cumulative incidence, RMST, log-rank,
Cox and Andersen–Gill, built on lifelines.

Two things are computed here rather than taken from lifelines, each for a stated reason:

- the Aalen–Johansen cumulative incidence, because ``AalenJohansenFitter`` jitters tied times
  at random (and reseeds numpy's global generator) while the estimator itself is well defined
  with ties; it is computed from lifelines' Kaplan–Meier fit of the composite endpoint;
- the variance of the restricted mean survival time, because lifelines returns the variance of
  the survival *distribution* (lifelines#1682), not of the estimator; the Greenwood-type
  estimator of Klein & Moeschberger (4.5.1), as in R's survRM2, is used instead.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times, restricted_mean_survival_time
from scipy import stats

from vtrial.analysis.cox import BinaryCoxFitter
from vtrial.analysis.proportions import CONFIDENCE
from vtrial.vocabulary import DAYS_PER_MONTH

#: Shift that separates counted SREs on the same day (or at day 0) in the counting process.
NUDGE_DAYS = 1e-3

#: Endpoints of one row per patient: name -> (duration column, event definition).
ENDPOINTS: tuple[str, ...] = ("time_to_first_sre", "overall_survival")

#: Reason of a comparison one of whose arms nobody was randomised to.
EMPTY_ARM = "one of the two arms has no patients"

#: Event codes of the competing-risks view of the first SRE.
CENSORED, SRE, DEATH = 0, 1, 2


def endpoint(patients: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Durations (days) and event indicators of an endpoint, one per row of ``patients``.

    ``time_to_first_sre``: the first counted SRE, else censored at the end of follow-up (death
    and loss to follow-up censor). ``overall_survival``: follow-up, event if the patient died.
    """
    if name == "time_to_first_sre":
        first = patients["first_sre_day"].to_numpy(dtype=float)
        has = ~np.isnan(first)
        return np.where(has, first, patients["followup_days"].to_numpy(dtype=float)), has
    if name == "overall_survival":
        return patients["followup_days"].to_numpy(dtype=float), patients["died"].to_numpy(dtype=bool)
    raise ValueError(f"unknown endpoint {name!r}; expected one of {ENDPOINTS}")


def competing_risks(patients: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Time to the first of SRE or death, coded ``SRE`` (1), ``DEATH`` (2) or ``CENSORED`` (0)."""
    durations, has_sre = endpoint(patients, "time_to_first_sre")
    code = np.where(has_sre, SRE, np.where(patients["died"].to_numpy(dtype=bool), DEATH, CENSORED))
    return durations, code


def kaplan_meier(
    durations: np.ndarray, events: np.ndarray, label: str, timeline: np.ndarray | None = None
) -> KaplanMeierFitter:
    """Kaplan–Meier fit with 95% log-log (Greenwood) pointwise confidence bands.

    ``timeline`` evaluates the curve on a grid (for figures of large trials); estimates such as
    the median use the full curve (no timeline).
    """
    return KaplanMeierFitter(alpha=1 - CONFIDENCE, label=label).fit(durations, events, timeline=timeline)


def _none_if_infinite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def median_with_ci(kmf: KaplanMeierFitter) -> tuple[float | None, float | None, float | None]:
    """Median survival and its 95% confidence interval in months; ``None`` where not reached."""
    ci = median_survival_times(kmf.confidence_interval_).to_numpy().ravel()
    median = kmf.median_survival_time_
    low, high = float(ci[0]), float(ci[1])
    return tuple(_none_if_infinite(v / DAYS_PER_MONTH) for v in (median, low, high))  # type: ignore[return-value]


def _aalen_johansen(durations: np.ndarray, code: np.ndarray, cause: int) -> pd.DataFrame:
    """Per distinct time: at risk ``n``, events of any cause ``d``, of ``cause`` ``d1``, ``S(t-)`` and ``F(t)``.

    The times are those of lifelines' event table (time 0, then each distinct duration) and
    ``S`` is its Kaplan–Meier estimate of being free of every cause, computed as lifelines does
    (``exp(cumsum(log(n - d) - log(n)))``), from counts per time: the same numbers, bit for bit
    (``tests/test_analysis.py``), without lifelines' tables (~1 s per arm at 100,000 patients).
    """
    durations, code = np.asarray(durations, dtype=float), np.asarray(code)
    times, at = np.unique(durations, return_inverse=True)
    if times.size == 0 or times[0] > 0:  # lifelines' table starts at time 0
        times, at = np.r_[0.0, times], at + 1
    removed = np.bincount(at, minlength=times.size).astype(float)
    d = np.bincount(at, weights=(code != CENSORED).astype(float), minlength=times.size)
    d1 = np.bincount(at, weights=(code == cause).astype(float), minlength=times.size)
    n = durations.size - np.r_[0.0, np.cumsum(removed)[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.exp(np.cumsum(np.log(n - d) - np.log(n)))
    s_before = np.r_[1.0, survival[:-1]]
    index = pd.Index(times, name="event_at")
    return pd.DataFrame(
        {"n": n, "d": d, "d1": d1, "s_before": s_before, "F": np.cumsum(s_before * d1 / n)}, index=index
    )


def cumulative_incidence(durations: np.ndarray, code: np.ndarray, cause: int = SRE) -> pd.Series:
    """Aalen–Johansen cumulative incidence of ``cause`` with the other causes competing.

    ``F(t) = sum over event times t_j <= t of S(t_j-) d_j / n_j``, with ``S`` the Kaplan–Meier
    estimate of being free of every cause, ``d_j`` the ``cause`` events at ``t_j`` and ``n_j``
    at risk. Ties need no jitter.

    Returns
    -------
    pandas.Series
        Step function indexed by time (days), starting at 0 with value 0.
    """
    return _aalen_johansen(durations, code, cause)["F"].rename("cumulative_incidence")


def cumulative_incidence_band(durations: np.ndarray, code: np.ndarray, cause: int = SRE) -> pd.DataFrame:
    """:func:`cumulative_incidence` with its 95% pointwise confidence band.

    The delta-method variance of Collett (2015, p. 411; SAS ``PROC LIFETEST``, lifelines
    ``AalenJohansenFitter``), ``Var F(t) = sum (F(t) - F(t_j))^2 d_j / (n_j (n_j - d_j))
    + sum S(t_j-)^2 d1_j (n_j - d1_j) / n_j^3 - 2 sum (F(t) - F(t_j)) S(t_j-) d1_j / n_j^2``
    over ``t_j <= t``, on the log(-log) scale so the band stays in [0, 1]. Computed here with
    cumulative sums (no jitter of tied times, unlike lifelines).

    Returns
    -------
    DataFrame
        Indexed by time (days): ``estimate``, ``low``, ``high``; the band is 0 where ``F`` is 0.
    """
    t = _aalen_johansen(durations, code, cause)
    f = t["F"].to_numpy()
    n, d, d1, s = (t[c].to_numpy() for c in ("n", "d", "d1", "s_before"))
    # n == d (everyone left has an event) ends the curve: F is constant afterwards, the term is 0
    a = np.divide(d, n * (n - d), out=np.zeros_like(n), where=n > d)
    b = s**2 * d1 * (n - d1) / n**3
    c = s * d1 / n**2
    variance = (
        f**2 * np.cumsum(a)
        - 2 * f * np.cumsum(a * f)
        + np.cumsum(a * f**2)
        + np.cumsum(b)
        - 2 * (f * np.cumsum(c) - np.cumsum(c * f))
    )
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    inside = (f > 0) & (f < 1)
    safe = np.where(inside, f, 0.5)
    se = np.sqrt(np.maximum(variance, 0.0)) / (safe * np.abs(np.log(safe)))
    centre = np.log(-np.log(safe))
    low = np.where(inside, np.exp(-np.exp(centre + z * se)), f)
    high = np.where(inside, np.exp(-np.exp(centre - z * se)), f)
    return pd.DataFrame({"estimate": f, "low": low, "high": high}, index=t.index)


def value_at(step: pd.Series, t: float) -> float | None:
    """Value of a right-continuous step function at ``t``; ``None`` beyond its last time."""
    if t > step.index[-1]:
        return None
    return float(step.loc[:t].iloc[-1])


def rmst(kmf: KaplanMeierFitter, tau: float) -> tuple[float, float]:
    """Restricted mean survival time up to ``tau`` and its Greenwood-type variance.

    ``Var = sum over event times t_j <= tau of A_j**2 d_j / (n_j (n_j - d_j))`` with
    ``A_j`` the area under the Kaplan–Meier curve between ``t_j`` and ``tau``. A term with
    ``n_j == d_j`` has ``A_j == 0`` (the curve is 0 afterwards) and contributes nothing.

    Returns
    -------
    mean, variance : float
        In the time unit of the fit.
    """
    mean = float(restricted_mean_survival_time(kmf, t=tau))
    sf = kmf.survival_function_.iloc[:, 0]
    sf = sf[sf.index <= tau]
    times = sf.index.to_numpy(dtype=float)
    area_before = np.r_[0.0, np.cumsum(sf.to_numpy()[:-1] * np.diff(times))]
    remaining = mean - area_before
    table = kmf.event_table.loc[sf.index]
    d, n = table["observed"].to_numpy(dtype=float), table["at_risk"].to_numpy(dtype=float)
    term = np.divide(remaining**2 * d, n * (n - d), out=np.zeros_like(d), where=(n > d) & (d > 0))
    return mean, float(term.sum())


#: Keys of :func:`rmst_difference` besides ``tau_months``.
RMST_KEYS: tuple[str, ...] = ("arm_months", "reference_months", "difference_months", "ci_low", "ci_high", "p_value")


def rmst_difference(kmf: KaplanMeierFitter | None, kmf_reference: KaplanMeierFitter | None, tau: float) -> dict:
    """Difference in RMST (arm minus reference) up to ``tau``, in months, with a Wald CI and p.

    The arms' variances add, which assumes independent arms (conservative under pairing). An
    arm without patients has no fit (``None``): every number is then ``None`` with the reason;
    so is the p-value, with its reason, when no event before ``tau`` gives the difference a
    variance.
    """
    tau_months = tau / DAYS_PER_MONTH
    if kmf is None or kmf_reference is None:
        return {"tau_months": tau_months, **null_result(RMST_KEYS, EMPTY_ARM)}
    m1, v1 = rmst(kmf, tau)
    m0, v0 = rmst(kmf_reference, tau)
    diff, se = m1 - m0, math.sqrt(v1 + v0)
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    result = {
        "tau_months": tau_months,
        "arm_months": m1 / DAYS_PER_MONTH,
        "reference_months": m0 / DAYS_PER_MONTH,
        "difference_months": diff / DAYS_PER_MONTH,
        "ci_low": (diff - z * se) / DAYS_PER_MONTH,
        "ci_high": (diff + z * se) / DAYS_PER_MONTH,
        "p_value": float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else None,
    }
    if result["p_value"] is None:
        result["reason"] = "no event before the restriction time: the difference has no variance"
    return result


def logrank(durations: np.ndarray, events: np.ndarray, groups: np.ndarray) -> dict:
    """Log-rank test across all groups (the two-group test when there are two)."""
    keys = ("test_statistic", "degrees_of_freedom", "p_value")
    n_groups = len(pd.unique(groups))
    if n_groups < 2:
        return null_result(keys, "a single arm: nothing to compare")
    if not np.any(events):
        return null_result(keys, "no events in any arm")
    statistic, df = logrank_statistic(durations, events, groups)
    return {"test_statistic": statistic, "degrees_of_freedom": df, "p_value": float(stats.chi2.sf(statistic, df))}


def logrank_statistic(durations: np.ndarray, events: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Log-rank chi-squared statistic of k groups and its degrees of freedom, k - 1.

    The estimator of lifelines' ``multivariate_logrank_test`` (observed minus expected events
    per group over the distinct times, hypergeometric covariance, the last group left out),
    computed with counts per (time, group) instead of a survival table per group: lifelines
    took ~5 s at 300,000 rows. Agrees with it to ~1e-13 relative (``tests/test_analysis.py``).
    """
    labels, group = np.unique(groups, return_inverse=True)
    times, time = np.unique(np.asarray(durations, dtype=float), return_inverse=True)
    k, cells = labels.size, times.size * labels.size
    key = time * k + group
    leaving = np.bincount(key, minlength=cells).reshape(times.size, k)
    observed = np.bincount(key, weights=np.asarray(events, dtype=float), minlength=cells).reshape(times.size, k)
    at_risk = leaving[::-1].cumsum(axis=0)[::-1].astype(float)
    n, d = at_risk.sum(axis=1), observed.sum(axis=1)
    z = observed.sum(axis=0) - (at_risk * (d / n)[:, None]).sum(axis=0)
    # d (n - d) / (n - 1) / n**2; a time with one patient at risk adds nothing to the covariance
    factor = np.divide((n - d) * d, (n - 1) * n**2, out=np.zeros_like(n), where=n > 1)
    weighted = at_risk * factor[:, None]
    covariance = np.diag((weighted * n[:, None]).sum(axis=0)) - at_risk.T @ weighted
    statistic = z[:-1] @ np.linalg.pinv(covariance[:-1, :-1]) @ z[:-1]
    return float(statistic), k - 1


def null_result(keys: tuple[str, ...], reason: str) -> dict:
    """A result whose every number is ``None``, with the reason it could not be estimated."""
    return {**dict.fromkeys(keys), "reason": reason}


def treatment_effect(
    data: pd.DataFrame,
    *,
    ratio_name: str = "hazard_ratio",
    entry_col: str | None = None,
    cluster_col: str | None = None,
) -> dict:
    """Cox estimate of ``exp(beta)`` for the binary column ``treated``, with 95% CI and Wald p.

    Fitted by :class:`vtrial.analysis.cox.BinaryCoxFitter` (Efron ties; the same estimates as
    lifelines' ``CoxPHFitter``, fast at any size, and a robust variance that respects the
    counting-process risk sets).

    Parameters
    ----------
    data : DataFrame
        Columns ``stop`` (duration), ``event`` (bool), ``treated`` (0/1), and the optional
        ``entry_col`` (left truncation: the counting-process start) and ``cluster_col``
        (robust sandwich variance clustered on it).
    ratio_name : str
        Name of the ratio in the result (``hazard_ratio`` or ``rate_ratio``).

    Returns
    -------
    dict
        ``{ratio_name, ci_low, ci_high, p_value}``; all ``None`` with a ``reason`` when an arm
        has no patients or no event, or the ratio cannot be estimated (no event while both arms
        are at risk, a ratio running to 0 or infinity, no convergence).
    """
    keys = (ratio_name, "ci_low", "ci_high", "p_value")
    events_by_arm = data.groupby("treated")["event"].sum()
    if not events_by_arm.any():
        return null_result(keys, "no events in either arm")
    if len(events_by_arm) < 2:
        return null_result(keys, EMPTY_ARM)
    if (events_by_arm == 0).any():
        which = "the reference arm" if events_by_arm.get(0, 0) == 0 else "the compared arm"
        return null_result(keys, f"no events in {which}")
    fitter = BinaryCoxFitter(CONFIDENCE).fit(
        data["stop"].to_numpy(dtype=float),
        data["event"].to_numpy(dtype=bool),
        data["treated"].to_numpy(dtype=int),
        start=None if entry_col is None else data[entry_col].to_numpy(dtype=float),
        cluster=None if cluster_col is None else data[cluster_col].to_numpy(),
    )
    if fitter.reason_ is not None:
        return null_result(keys, fitter.reason_)
    low, high = fitter.confidence_interval_
    return {ratio_name: fitter.hazard_ratio_, "ci_low": low, "ci_high": high, "p_value": fitter.p_value_}


def counting_process(patients: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Counting-process rows ``(start, stop]`` of counted SREs, one row per gap, per patient and arm.

    Each counted SRE closes a row with ``event=True``; the last row runs to the end of
    follow-up with ``event=False`` (dropped when empty). Times are put on the model's one-day
    grid (rounded up), which bounds the number of distinct event times and so the cost of
    lifelines' left-truncated Cox fit; ties are then handled by Efron's method. An SRE on the
    same day as the previous one (or at day 0) is moved ``NUDGE_DAYS`` later so that no row
    has zero length: ``t'_k = NUDGE (k+1) + max(0, max_{j<=k} (t_j - NUDGE (j+1)))``.

    Returns
    -------
    DataFrame
        Columns ``patient_id, arm, start, stop, event``.
    """
    keys = ["patient_id", "arm"]
    sre = events.loc[events["counted"].to_numpy(dtype=bool), keys + ["day"]]
    sre = sre.assign(day=np.ceil(sre["day"].to_numpy(dtype=float))).sort_values(keys + ["day"], kind="stable")
    step = NUDGE_DAYS * (sre.groupby(keys, sort=False).cumcount().to_numpy() + 1)
    lifted = pd.Series(sre["day"].to_numpy() - step, index=sre.index).groupby([sre[k] for k in keys]).cummax()
    sre = sre.assign(stop=step + np.maximum(lifted.to_numpy(), 0.0), event=True)
    sre["start"] = sre.groupby(keys, sort=False)["stop"].shift(1, fill_value=0.0)
    last = sre.groupby(keys, sort=False)["stop"].max().rename("start")
    tail = patients[keys + ["followup_days"]].merge(last, on=keys, how="left")
    tail = tail.assign(
        start=tail["start"].fillna(0.0), stop=np.ceil(tail["followup_days"].to_numpy(dtype=float)), event=False
    )
    tail = tail[tail["stop"] > tail["start"]]
    columns = keys + ["start", "stop", "event"]
    rows = pd.concat([sre[columns], tail[columns]], ignore_index=True)
    return rows.sort_values(keys + ["start"], kind="stable", ignore_index=True)
