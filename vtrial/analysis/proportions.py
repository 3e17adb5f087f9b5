"""Counts and proportions: exact Poisson rates, Clopper–Pearson, Newcombe differences, Fisher.

Each function is a named formula on :mod:`scipy.special` (the functions :mod:`scipy.stats` itself
evaluates), so the summary and the report state one method for one quantity, and a run does not
import :mod:`scipy.stats` (~0.8 s). ``tests/test_analysis.py`` compares each with :mod:`scipy.stats`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

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
    # chi2(q, 2k) / 2 = gammaincinv(k, q), as scipy.stats.chi2.ppf computes it (2 gammaincinv(df / 2, q))
    low = 2 * special.gammaincinv(count, alpha / 2) / 2 if count > 0 else 0.0
    high = 2 * special.gammaincinv(count + 1, 1 - alpha / 2) / 2
    return count / exposure, float(low) / exposure, float(high) / exposure


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact Clopper–Pearson interval of a binomial proportion ``k / n`` (``n > 0``).

    The bounds are beta quantiles, ``B(a/2; k, n - k + 1)`` and ``B(1 - a/2; k + 1, n - k)``: the
    roots ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")`` finds by bisection
    (to its ``xtol`` of 2e-12), here evaluated directly.
    """
    alpha = 1.0 - confidence
    low = special.betaincinv(k, n - k + 1, alpha / 2) if k > 0 else 0.0
    high = special.betaincinv(k + 1, n - k, 1 - alpha / 2) if k < n else 1.0
    return float(low), float(high)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of ``k / n`` (``n > 0``), as ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``."""
    p = k / n
    z = special.ndtri(0.5 + 0.5 * confidence)
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (center - delta if k > 0 else 0.0), (center + delta if k < n else 1.0)


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
    (l1, u1), (l0, u0) = wilson_interval(k1, n1, confidence), wilson_interval(k0, n0, confidence)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return d, float(low), float(high)


def fisher_p_value(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-sided Fisher's exact p-value of the 2x2 table (events, non-events) x (arm, reference).

    The sum of the hypergeometric probabilities of the tables with the same margins that are no
    more likely than the observed one (within a relative 1e-14, ``scipy.stats.fisher_exact``'s
    tolerance). The probabilities are relative to the most likely table, built outwards from it by
    the ratio of neighbouring terms ``P(x + 1) / P(x) = (n1 - x)(e - x) / ((x + 1)(n0 - e + x + 1))``
    (no log-gamma differences, which lose ~1e-12 at thousands of patients); equal to
    ``scipy.stats.fisher_exact`` to ~1e-13 relative (``tests/test_analysis.py``).
    """
    events = k1 + k0
    x = np.arange(max(0, events - n0), min(n1, events) + 1, dtype=float)
    ratio = (n1 - x[:-1]) * (events - x[:-1]) / ((x[:-1] + 1) * (n0 - events + x[:-1] + 1))
    mode = int(np.argmax(ratio < 1)) if (ratio < 1).any() else x.size - 1
    relative = np.ones(x.size)
    relative[mode + 1 :] = np.cumprod(ratio[mode:])
    relative[:mode] = np.cumprod(1 / ratio[:mode][::-1])[::-1]
    observed = relative[k1 - int(x[0])]
    return float(min(1.0, relative[relative <= observed * (1 + 1e-14)].sum() / relative.sum()))
