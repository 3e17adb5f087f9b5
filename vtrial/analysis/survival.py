"""Survival estimators on the run's tables: Kaplan–Meier, cumulative incidence, RMST, log-rank,
Cox and Andersen–Gill, on numpy.

The Kaplan–Meier fit, its log-log band, median and RMST are lifelines' estimators computed from
counts per time (:class:`KaplanMeier`; the same numbers, ``tests/test_analysis.py``) so that a run
does not import lifelines and its stack (~0.7 s). Two things differ from lifelines on purpose:

- the Aalen–Johansen cumulative incidence, because ``AalenJohansenFitter`` jitters tied times
  at random (and reseeds numpy's global generator) while the estimator itself is well defined
  with ties; it is computed from lifelines' Kaplan–Meier fit of the composite endpoint;
- the variance of the restricted mean survival time, because lifelines returns the variance of
  the survival *distribution* (lifelines#1682), not of the estimator; the Greenwood-type
  estimator of Klein & Moeschberger (4.5.1), as in R's survRM2, is used instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

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


def _event_table(durations: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times of lifelines' event table (0, then each distinct duration), at risk ``n`` and events ``d`` at each."""
    durations = np.asarray(durations, dtype=float)
    times, at = np.unique(durations, return_inverse=True)
    if times.size == 0 or times[0] > 0:  # lifelines' table starts at time 0
        times, at = np.r_[0.0, times], at + 1
    removed = np.bincount(at, minlength=times.size).astype(float)
    d = np.bincount(at, weights=np.asarray(events, dtype=float), minlength=times.size)
    n = durations.size - np.r_[0.0, np.cumsum(removed)[:-1]]
    return times, n, d


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan–Meier estimate with its 95% log-log (exponential Greenwood) pointwise band.

    lifelines' ``KaplanMeierFitter`` on the same data gives the same arrays, bit for bit
    (``tests/test_analysis.py``). Arrays are per time of the event table.
    """

    label: str
    times: np.ndarray
    at_risk: np.ndarray
    observed: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def at(self, t: np.ndarray | float) -> np.ndarray:
        """Survival at ``t`` (right-continuous steps: the last time ``<= t``, as lifelines' ``predict``)."""
        return self.survival[np.searchsorted(self.times, t, side="right") - 1]

    def band_at(self, t: np.ndarray) -> np.ndarray:
        """``[low, high]`` of the band at each ``t``, shape ``(len(t), 2)``."""
        i = np.searchsorted(self.times, t, side="right") - 1
        return np.column_stack([self.low[i], self.high[i]])


def kaplan_meier(durations: np.ndarray, events: np.ndarray, label: str) -> KaplanMeier:
    """Kaplan–Meier fit with 95% log-log (Greenwood) pointwise confidence bands.

    As lifelines computes it: ``S = exp(cumsum(log(n - d) - log(n)))``, Greenwood's
    ``cumsum(d / (n (n - d)))`` (0 where ``n == d``) and the band
    ``exp(-exp(log(-log S) -/+ z sqrt(var) / log S))``, 1 where undefined (``S == 1``).
    """
    times, n, d = _event_table(durations, events)
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.exp(np.cumsum(np.log(n - d) - np.log(n)))
        term = d / (n * (n - d))
        variance = np.cumsum(np.where(np.isinf(term), 0.0, term))
        v = np.log(survival)
        spread = special.ndtri(1 - (1 - CONFIDENCE) / 2) * np.sqrt(variance) / v
        low = np.exp(-np.exp(np.log(-v) - spread))
        high = np.exp(-np.exp(np.log(-v) + spread))
    return KaplanMeier(label, times, n, d, survival, np.nan_to_num(low, nan=1.0), np.nan_to_num(high, nan=1.0))


def _none_if_infinite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _median_time(times: np.ndarray, curve: np.ndarray) -> float:
    """First time the curve is at or below 0.5; infinite when it never is (lifelines' ``qth_survival_time``)."""
    if curve[-1] > 0.5:
        return math.inf
    return float(times[np.searchsorted(-curve, -0.5)])


def median_with_ci(kmf: KaplanMeier) -> tuple[float | None, float | None, float | None]:
    """Median survival and its 95% confidence interval in months; ``None`` where not reached.

    The interval is where the band's lower and upper curves reach 0.5 (lifelines'
    ``median_survival_times(confidence_interval_)``).
    """
    values = (_median_time(kmf.times, c) for c in (kmf.survival, kmf.low, kmf.high))
    return tuple(_none_if_infinite(v / DAYS_PER_MONTH) for v in values)  # type: ignore[return-value]


def _aalen_johansen(durations: np.ndarray, code: np.ndarray, cause: int) -> pd.DataFrame:
    """Per distinct time: at risk ``n``, events of any cause ``d``, of ``cause`` ``d1``, ``S(t-)`` and ``F(t)``.

    The times are those of lifelines' event table (time 0, then each distinct duration) and
    ``S`` is its Kaplan–Meier estimate of being free of every cause, computed as lifelines does
    (``exp(cumsum(log(n - d) - log(n)))``), from counts per time: the same numbers, bit for bit
    (``tests/test_analysis.py``), without lifelines' tables (~1 s per arm at 100,000 patients).
    """
    code = np.asarray(code)
    times, n, d = _event_table(durations, code != CENSORED)
    _, _, d1 = _event_table(durations, code == cause)
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
    z = special.ndtri(0.5 + CONFIDENCE / 2)
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


def rmst(kmf: KaplanMeier, tau: float) -> tuple[float, float]:
    """Restricted mean survival time up to ``tau`` and its Greenwood-type variance.

    The mean is the area under the step curve up to ``tau``, summed as lifelines'
    ``restricted_mean_survival_time`` sums it. ``Var = sum over event times t_j <= tau of
    A_j**2 d_j / (n_j (n_j - d_j))`` with ``A_j`` the area under the Kaplan–Meier curve between
    ``t_j`` and ``tau``. A term with ``n_j == d_j`` has ``A_j == 0`` (the curve is 0 afterwards)
    and contributes nothing.

    Returns
    -------
    mean, variance : float
        In the time unit of the fit.
    """
    inside = kmf.times <= tau
    times, sf = kmf.times[inside], kmf.survival[inside]
    # lifelines: the curve up to tau, then (tau, S(tau)); widths times values, the last width 0
    widths = np.diff(np.r_[times, tau])
    mean = float(np.sum(np.r_[widths * sf, 0.0]))
    area_before = np.r_[0.0, np.cumsum(sf[:-1] * np.diff(times))]
    remaining = mean - area_before
    d, n = kmf.observed[inside], kmf.at_risk[inside]
    term = np.divide(remaining**2 * d, n * (n - d), out=np.zeros_like(d), where=(n > d) & (d > 0))
    return mean, float(term.sum())


#: Keys of :func:`rmst_difference` besides ``tau_months``.
RMST_KEYS: tuple[str, ...] = ("arm_months", "reference_months", "difference_months", "ci_low", "ci_high", "p_value")


def rmst_difference(kmf: KaplanMeier | None, kmf_reference: KaplanMeier | None, tau: float) -> dict:
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
    z = special.ndtri(0.5 + CONFIDENCE / 2)
    result = {
        "tau_months": tau_months,
        "arm_months": m1 / DAYS_PER_MONTH,
        "reference_months": m0 / DAYS_PER_MONTH,
        "difference_months": diff / DAYS_PER_MONTH,
        "ci_low": (diff - z * se) / DAYS_PER_MONTH,
        "ci_high": (diff + z * se) / DAYS_PER_MONTH,
        "p_value": float(2 * special.ndtr(-abs(diff) / se)) if se > 0 else None,
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
    return {"test_statistic": statistic, "degrees_of_freedom": df, "p_value": float(special.chdtrc(df, statistic))}


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


def run_starts(values: np.ndarray) -> np.ndarray:
    """Whether each element of a sorted array starts a run of equal values (the first row of each group)."""
    first = np.ones(values.size, dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return first


def position_in(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each of ``values`` in the sorted, distinct ``keys``; -1 where it is not among them."""
    where = np.searchsorted(keys, values)
    found = where < keys.size
    found[found] = keys[where[found]] == values[found]
    return np.where(found, where, -1)


def counting_process(patients: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Counting-process rows ``(start, stop]`` of counted SREs, one row per gap, per patient and arm.

    Each counted SRE closes a row with ``event=True``; the last row runs to the end of
    follow-up with ``event=False`` (dropped when empty). Times are put on the model's one-day
    grid (rounded up), which bounds the number of distinct event times and so the cost of
    lifelines' left-truncated Cox fit; ties are then handled by Efron's method. An SRE on the
    same day as the previous one (or at day 0) is moved ``NUDGE_DAYS`` later so that no row
    has zero length: ``t'_k = NUDGE (k+1) + max(0, max_{j<=k} (t_j - NUDGE (j+1)))``.

    On numpy arrays keyed by patient and arm (pandas' grouped cumulative maximum and merge took
    ~0.4 s per comparison at 100,000 patients per arm); rows in the order of a stable sort by
    patient, arm (as text) and start.

    Returns
    -------
    DataFrame
        Columns ``patient_id, arm, start, stop, event``; ``arm`` categorical.
    """
    counted = events["counted"].to_numpy(dtype=bool)
    arm_values = [events["arm"][counted], patients["arm"]]
    arms = pd.Index(sorted(set().union(*(pd.unique(a) for a in arm_values))))
    sre_arm, patient_arm = (pd.Categorical(a, categories=arms).codes.astype(np.int64) for a in arm_values)
    sre_id = events["patient_id"].to_numpy(np.int64)[counted]
    day = np.ceil(events["day"].to_numpy(dtype=float)[counted])
    group = sre_id * arms.size + sre_arm  # one integer per patient and arm, increasing with both
    order = np.lexsort((day, group))  # stable
    group, day = group[order], day[order]
    first = run_starts(group)
    starts = np.flatnonzero(first)
    lengths = np.diff(np.r_[starts, group.size])
    rank = np.arange(group.size) - np.repeat(starts, lengths)  # earlier SREs of the patient under the arm
    step = NUDGE_DAYS * (rank + 1)
    lifted = day - step
    for k in range(1, int(lengths.max(initial=0))):  # running maximum within each patient, k-th SREs at once
        at = starts[lengths > k] + k
        lifted[at] = np.maximum(lifted[at - 1], lifted[at])
    stop = step + np.maximum(lifted, 0.0)
    start = np.where(first, 0.0, np.r_[0.0, stop[:-1]])
    keys = group[starts]
    last = np.maximum.reduceat(stop, starts) if starts.size else stop  # each patient's last SRE
    patient_key = patients["patient_id"].to_numpy(np.int64) * arms.size + patient_arm
    where = position_in(keys, patient_key)
    has = where >= 0
    tail_start = np.zeros(patient_key.size)
    tail_start[has] = last[where[has]]
    tail_stop = np.ceil(patients["followup_days"].to_numpy(dtype=float))
    kept = tail_stop > tail_start
    ids = np.r_[sre_id[order], patients["patient_id"].to_numpy(np.int64)[kept]]
    codes = np.r_[sre_arm[order], patient_arm[kept]]
    start, stop = np.r_[start, tail_start[kept]], np.r_[stop, tail_stop[kept]]
    event = np.r_[np.ones(group.size, dtype=bool), np.zeros(int(kept.sum()), dtype=bool)]
    # the SRE rows are in (patient, arm, start) order and a tail starts after its SREs: a stable
    # sort by patient and arm puts every row in (patient, arm, start) order
    rows = np.argsort(np.r_[group, patient_key[kept]], kind="stable")
    return pd.DataFrame(
        {
            "patient_id": ids[rows],
            "arm": pd.Categorical.from_codes(codes[rows], categories=arms),
            "start": start[rows],
            "stop": stop[rows],
            "event": event[rows],
        }
    )
