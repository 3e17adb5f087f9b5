"""Counts and proportions: exact Poisson rates, Clopper–Pearson, Newcombe differences, Fisher.

Each function is a thin, named wrapper around :mod:`scipy.stats`, so the summary and the report
state one method for one quantity.
"""

from __future__ import annotations

import math

from scipy import stats

#: Confidence level of every interval in the summary.
CONFIDENCE = 0.95


def poisson_rate_ci(count: int, exposure: float, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Event rate ``count / exposure`` with its exact (Garwood) Poisson confidence interval.

    The bounds are the chi-square quantiles ``chi2(a/2, 2k)/2`` and ``chi2(1-a/2, 2k+2)/2``
    divided by the exposure; the lower bound is 0 when no event was seen.

    Parameters
    ----------
    count : int
        Number of events.
    exposure : float
        Person-time at risk (> 0), in the unit of the rate.
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    rate, ci_low, ci_high : float
    """
    alpha = 1.0 - confidence
    low = stats.chi2.ppf(alpha / 2, 2 * count) / 2 if count > 0 else 0.0
    high = stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2
    return count / exposure, float(low) / exposure, float(high) / exposure


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact Clopper–Pearson interval of a binomial proportion ``k / n`` (``n > 0``)."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def newcombe_difference(
    k1: int, n1: int, k0: int, n0: int, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Risk difference ``k1/n1 - k0/n0`` with Newcombe's hybrid score interval (his method 10).

    Combines the two Wilson score intervals; unlike the Wald interval it stays inside
    [-1, 1] and keeps its coverage for rare events such as osteonecrosis of the jaw.

    Returns
    -------
    difference, ci_low, ci_high : float
    """
    p1, p0 = k1 / n1, k0 / n0
    w1 = stats.binomtest(k1, n1).proportion_ci(confidence_level=confidence, method="wilson")
    w0 = stats.binomtest(k0, n0).proportion_ci(confidence_level=confidence, method="wilson")
    d = p1 - p0
    low = d - math.sqrt((p1 - w1.low) ** 2 + (w0.high - p0) ** 2)
    high = d + math.sqrt((w1.high - p1) ** 2 + (p0 - w0.low) ** 2)
    return d, float(low), float(high)


def fisher_p_value(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-sided Fisher's exact p-value of the 2x2 table (events, non-events) x (arm, reference)."""
    return float(stats.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]).pvalue)
