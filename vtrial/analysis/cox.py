"""Cox model of one binary covariate (the arm) for counting-process data, fast at any trial size.

Every comparison of a virtual trial is a Cox model with a single 0/1 covariate: time to first
SRE and overall survival (right-censored) and the Andersen–Gill model of first-and-subsequent
SREs (counting-process rows ``(start, stop]`` with a robust variance clustered by patient). With
one binary covariate the partial likelihood depends on the data only through, at each distinct
event time, the numbers at risk and of events in each arm, so it is computed from those counts
in ``O(rows log rows)``. lifelines' ``CoxPHFitter`` gives the same estimates (the tests compare
them) but its left-truncated fit loops over event times and its score residuals loop over rows
(``O(rows^2)``) and ignore the entry times — the robust Andersen–Gill variance it reports is that
of the wrong risk sets. At 100,000 patients per arm this fitter takes well under a second.

Ties are handled by Efron's approximation (as lifelines and R's ``coxph`` do). The robust
variance is the Lin–Wei sandwich ``I^-1 (sum_c U_c^2) I^-1`` of the per-cluster score residuals
``U_c`` (Lin & Wei, JASA 1989; Lin, Wei, Yang & Ying, JRSS-B 2000 for recurrent events).
"""

from __future__ import annotations

import numpy as np
from scipy import special

#: Newton–Raphson stops when the step in log hazard ratio is below this.
TOLERANCE = 1e-10
MAX_ITERATIONS = 50


class BinaryCoxFitter:
    """Cox proportional-hazards fit of a 0/1 covariate with Efron ties and optional clustering.

    Attributes (after :meth:`fit`)
    ------------------------------
    log_hazard_ratio_ : float
    hazard_ratio_ : float
    standard_error_ : float
        Robust (clustered sandwich) standard error when ``cluster`` was given, else model-based.
    model_standard_error_ : float
        Standard error from the observed information.
    confidence_interval_ : tuple of float
        ``(low, high)`` of the hazard ratio.
    p_value_ : float
        Two-sided Wald p-value.
    n_events_ : int
    converged_ : bool
    reason_ : str or None
        Why the ratio cannot be estimated (the estimates are then NaN); ``None`` when it can.
    """

    def __init__(self, confidence: float = 0.95) -> None:
        self.confidence = confidence

    def fit(
        self,
        stop: np.ndarray,
        event: np.ndarray,
        treated: np.ndarray,
        start: np.ndarray | None = None,
        cluster: np.ndarray | None = None,
    ) -> BinaryCoxFitter:
        """Fit the model to rows at risk on ``(start, stop]`` (``start`` defaults to 0).

        Parameters
        ----------
        stop, event, treated : array, shape (n_rows,)
            End of each row, whether it ends with an event, and the covariate (0 or 1).
        start : array, optional
            Start of each row (left truncation / counting process); must be < ``stop``. Without
            it every row is at risk from the origin, so an event or censoring at time 0 counts.
        cluster : array, optional
            Cluster label of each row (the patient): robust sandwich variance.
        """
        stop = np.asarray(stop, dtype=float)
        event = np.asarray(event, dtype=bool)
        x = np.asarray(treated, dtype=bool)
        start = np.full_like(stop, -np.inf) if start is None else np.asarray(start, dtype=float)
        if np.any(start >= stop):
            raise ValueError("every row needs start < stop")
        times, d, d1 = self._event_counts(stop, event, x)
        n0, n1 = (self._at_risk(times, start[m], stop[m]) for m in (~x, x))
        # one entry per tied event: its time index k and Efron fraction l / d_k
        k = np.repeat(np.arange(times.size), d)
        frac = (np.arange(k.size) - np.repeat(np.cumsum(d) - d, d)) / d[k]

        self.n_events_ = int(d.sum())
        reason = self._infinite_estimate(d, d1, n0, n1, k, frac)
        if reason is not None:
            return self._not_estimable(reason)
        # each evaluation gives the likelihood, score and information at once: the candidate's
        # serve the next step and, at convergence, the variance
        beta, converged = 0.0, False
        loglik, score, information = self._efron(beta, d, d1, n0, n1, k, frac)
        for _ in range(MAX_ITERATIONS):
            step = score / information
            candidate = beta + step
            new = self._efron(candidate, d, d1, n0, n1, k, frac)
            while new[0] < loglik and abs(step) > TOLERANCE:  # step halving keeps the ascent monotone
                step /= 2
                candidate = beta + step
                new = self._efron(candidate, d, d1, n0, n1, k, frac)
            beta, (loglik, score, information) = candidate, new
            if abs(step) < TOLERANCE:
                converged = True
                break
        if not converged:
            return self._not_estimable("the Cox model did not converge")
        variance = 1.0 / information
        self.model_standard_error_ = float(np.sqrt(variance))
        if cluster is not None:
            residuals = self._score_residuals(beta, times, d, d1, n0, n1, k, frac, start, stop, event, x)
            _, codes = np.unique(np.asarray(cluster), return_inverse=True)
            per_cluster = np.bincount(codes, weights=residuals)
            variance = variance**2 * float(np.sum(per_cluster**2))
        se = float(np.sqrt(variance))
        z = special.ndtri(0.5 + self.confidence / 2)  # scipy.stats.norm.ppf, without importing scipy.stats
        with np.errstate(over="ignore"):
            low, high = float(np.exp(beta - z * se)), float(np.exp(beta + z * se))
        if not (se > 0 and 0 < low and high < np.inf):
            return self._not_estimable("the confidence interval is empty or unbounded (too few events)")
        self.log_hazard_ratio_ = float(beta)
        self.hazard_ratio_ = float(np.exp(beta))
        self.standard_error_ = se
        self.confidence_interval_ = (low, high)
        self.p_value_ = float(2 * special.ndtr(-abs(beta) / se))
        self.converged_ = True
        self.reason_: str | None = None
        return self

    def _not_estimable(self, reason: str) -> BinaryCoxFitter:
        """Set every estimate to NaN and record why the ratio cannot be estimated."""
        nan = float("nan")
        self.log_hazard_ratio_ = self.hazard_ratio_ = self.standard_error_ = self.model_standard_error_ = nan
        self.confidence_interval_ = (nan, nan)
        self.p_value_ = nan
        self.converged_ = False
        self.reason_ = reason
        return self

    @staticmethod
    def _infinite_estimate(d, d1, n0, n1, k, frac) -> str | None:
        """Why the maximum-likelihood log ratio is not finite, or ``None`` when it is.

        The score falls with ``beta`` from its limit at ``-inf`` (each treated event counts 1
        unless only treated rows are at risk) to its limit at ``+inf`` (each treated event
        counts 1, less every event with treated rows at risk); the estimate is finite exactly
        when the first limit is positive and the second negative. Otherwise the likelihood is
        flat (no event with both arms at risk) or monotone (the ratio runs to 0 or infinity).
        """
        untreated = n0[k] - frac * (d - d1)[k]  # Efron-adjusted rows at risk in each arm, per event
        treated = n1[k] - frac * d1[k]
        if not np.any((untreated > 0) & (treated > 0)):
            return "no event happened while both arms had patients at risk"
        observed = d1.sum()
        if not np.sum(untreated == 0) < observed < np.sum(treated > 0):
            return "the ratio runs to 0 or infinity: all events of one arm fell where the other arm had none"
        return None

    @staticmethod
    def _event_counts(stop: np.ndarray, event: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Distinct event times, events at each, and events of treated rows at each."""
        times, inverse = np.unique(stop[event], return_inverse=True)
        d = np.bincount(inverse, minlength=times.size)
        d1 = np.bincount(inverse, weights=x[event], minlength=times.size)
        return times, d, d1

    @staticmethod
    def _at_risk(times: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """Rows with ``start < t <= stop`` at each time ``t``: #(stop >= t) - #(start >= t)."""
        stop_sorted, start_sorted = np.sort(stop), np.sort(start)
        n = stop.size
        return (n - np.searchsorted(stop_sorted, times, side="left")) - (
            n - np.searchsorted(start_sorted, times, side="left")
        )

    @staticmethod
    def _efron(beta, d, d1, n0, n1, k, frac) -> tuple[float, float, float]:
        """Efron log partial likelihood, score and information at ``beta``."""
        r = np.exp(beta)
        s0 = n0 + n1 * r
        s1 = n1 * r
        tied0 = (d - d1) + d1 * r
        tied1 = d1 * r
        a = s0[k] - frac * tied0[k]
        b = s1[k] - frac * tied1[k]
        mean = b / a  # share of the (Efron-adjusted) risk set that is treated: x-bar, and x^2 = x
        loglik = beta * d1.sum() - np.log(a).sum()
        score = d1.sum() - mean.sum()
        information = np.sum(mean - mean**2)
        return float(loglik), float(score), float(information)

    @staticmethod
    def _score_residuals(beta, times, d, d1, n0, n1, k, frac, start, stop, event, x) -> np.ndarray:
        """Score residual of each row: its event term minus its compensator over ``(start, stop]``.

        Efron's averaging enters through the hazard increment ``sum_l 1/a_kl`` and the
        covariate mean ``sum_l b_kl / a_kl^2`` at each event time (Breslow's when untied).
        """
        r = np.exp(beta)
        a = (n0 + n1 * r)[k] - frac * ((d - d1) + d1 * r)[k]
        b = (n1 * r)[k] - frac * (d1 * r)[k]
        hazard = np.bincount(k, weights=1.0 / a, minlength=times.size)
        weighted_mean = np.bincount(k, weights=b / a**2, minlength=times.size)
        event_mean = np.bincount(k, weights=b / a, minlength=times.size) / np.maximum(d, 1)
        cum_hazard = np.concatenate([[0.0], np.cumsum(hazard)])
        cum_mean = np.concatenate([[0.0], np.cumsum(weighted_mean)])
        lo, hi = _search_sorted(times, start), _search_sorted(times, stop)
        xf = x.astype(float)
        risk = np.where(x, r, 1.0)
        compensator = risk * (xf * (cum_hazard[hi] - cum_hazard[lo]) - (cum_mean[hi] - cum_mean[lo]))
        at = np.clip(hi - 1, 0, max(times.size - 1, 0))
        observed = np.where(event, xf - event_mean[at] if times.size else 0.0, 0.0)
        return observed - compensator


def _search_sorted(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(times, values, side="right")``, searching the values in sorted order.

    The same indices; binary searches of sorted values touch memory in order (300,000 rows in
    180,000 times: 0.075 s unsorted, 0.02 s with the sort).
    """
    order = np.argsort(values)
    out = np.empty(values.size, dtype=np.intp)
    out[order] = np.searchsorted(times, values[order], side="right")
    return out
