"""Prediction intervals over parameter draws: parameter uncertainty and sampling error together.

With common random numbers the spread of an estimate over the parameter draws is the
parameter uncertainty alone. The trial's predictive distribution adds each draw's own
sampling error: it is the mixture, over the ``K`` draws, of the estimate's within-trial
sampling distribution around draw ``k``'s estimate,

``F(x) = mean_k Phi_k(g(x))``,

with ``g`` the scale the estimate's confidence interval is built on (:data:`LOG` for ratios,
rates and medians, :data:`IDENTITY` for proportions) and ``Phi_k`` a normal distribution
centred on ``g(estimate_k)`` whose standard deviation is the half-width of draw ``k``'s own
95% CI on that scale over ``z = 1.96``: below the estimate the lower half-width, above it the
upper one (a split normal). For a Wald interval (the Cox hazard ratio, the Andersen–Gill rate
ratio: symmetric on the log scale) the two are equal and ``Phi_k`` is the usual normal
approximation; for the exact intervals (Clopper–Pearson, Garwood) and the Kaplan–Meier
median's, which are not symmetric on any scale, the split keeps each draw's CI as its
component's 2.5/97.5 percentiles. An upper bound not reached (``None``) is an open upper tail.
The percentiles of ``F`` are found by root finding (:func:`scipy.optimize.brentq`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from vtrial.analysis.proportions import CONFIDENCE

#: Scales of the normal approximation: the log scale of ratios, rates and medians, the
#: probability scale of proportions (where each draw's component keeps its Clopper–Pearson bounds).
LOG, IDENTITY = "log", "identity"
#: The standard normal quantile of the CIs' two-sided level (1.96 for 95%; lifelines' Wald intervals use it).
Z_CI = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
#: Standard normal quantile so far in a component's tail that its remaining mass (1e-15) is below
#: any percentile asked for: the edge of the search bracket.
_Z_EDGE = float(stats.norm.isf(1e-15))


def _to_scale(x: float | None, scale: str) -> float:
    """``g(x)``: NaN for a value missing or outside the scale's domain (log of a non-positive)."""
    if x is None or not math.isfinite(x):
        return math.nan
    if scale == LOG:
        return math.log(x) if x > 0 else math.nan
    return float(x)


def _from_scale(t: float, scale: str) -> float:
    """``g^-1(t)``."""
    return math.exp(t) if scale == LOG else t


class Mixture:
    """The mixture of split normals on the scale ``g``: one component per draw.

    Parameters
    ----------
    centre, below, above : ndarray
        Per component, ``g(estimate)`` and the standard deviations below and above it
        (0: no spread on that side; ``inf``: an open tail).
    """

    def __init__(self, centre: np.ndarray, below: np.ndarray, above: np.ndarray) -> None:
        self.centre, self.below, self.above = centre, below, above

    def cdf(self, t: float) -> float:
        """``F`` at ``t`` (right-continuous where a side has no spread)."""
        d = t - self.centre
        sd = np.where(d < 0, self.below, self.above)
        z = np.divide(d, sd, out=np.where(d >= 0, np.inf, -np.inf), where=sd > 0)
        return float(np.mean(stats.norm.cdf(z)))

    def quantile(self, p: float) -> float | None:
        """The ``p`` quantile of ``F`` on the scale ``g``; ``None`` when ``F`` never reaches ``p`` (open tails).

        It lies between the smallest and the largest of the components' ``p`` quantiles, the
        bracket of the root search.
        """
        z = float(stats.norm.ppf(p))
        sd = self.below if z < 0 else self.above
        with np.errstate(invalid="ignore"):  # 0 * inf of a component without spread on an open side
            own = self.centre + z * sd
        own = np.where(np.isnan(own), self.centre, own)
        low = float(own.min())
        if np.isfinite(own).all():
            high = float(own.max())
        else:  # an open upper tail: beyond the finite components' far tails F no longer grows
            finite = np.where(np.isfinite(self.above), self.above, 0.0)
            high = float((self.centre + _Z_EDGE * finite).max())
            if self.cdf(high) < p:
                return None
        if high <= low or self.cdf(low) >= p:  # one point, or a point mass (no spread below an estimate) at low
            return low
        return float(optimize.brentq(lambda t: self.cdf(t) - p, low, high, xtol=1e-13, rtol=4 * np.finfo(float).eps))


def mixture_percentiles(
    estimates: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    scale: str,
    percentiles: Sequence[float],
) -> list[float | None]:
    """Percentiles (in %) of the mixture of the draws' sampling distributions, on the estimate's own scale.

    Each draw contributes its estimate and its 95% CI ``[low, high]`` (``high`` ``None``: not
    reached, an open upper tail); every estimate and lower bound must lie in the scale's domain,
    and ``low <= estimate <= high`` (``ValueError`` otherwise). A percentile in an open tail the
    mixture never reaches is ``None``.
    """
    centre = np.array([_to_scale(e, scale) for e in estimates])
    low = np.array([_to_scale(v, scale) for v in lows])
    high = np.array([math.inf if v is None else _to_scale(v, scale) for v in highs])
    if not (centre.size and (low <= centre).all() and (centre <= high).all()):  # False for NaN too
        raise ValueError(f"needs at least one draw, each with low <= estimate <= high on the {scale} scale")
    mixture = Mixture(centre, (centre - low) / Z_CI, (high - centre) / Z_CI)
    out: list[float | None] = []
    for p in percentiles:
        t = mixture.quantile(p / 100.0)
        out.append(None if t is None else _from_scale(t, scale))
    return out


def prediction(
    values: Sequence[float | None],
    cis: Sequence[Sequence[float | None] | None],
    scale: str,
    percentiles: Sequence[float],
) -> dict:
    """The prediction interval of a headline number: its median, low and high percentiles and their draws' count.

    The draws whose estimate exists make the mixture (as for the spread over draws); if one of
    them has no usable CI (a lower bound missing or outside the scale, e.g. a rate of 0 on the
    log scale, or a draw recorded before the CIs were kept) the three are ``None`` and
    ``estimable`` is 0.
    """
    kept = [(v, ci) for v, ci in zip(values, cis, strict=True) if v is not None and math.isfinite(v)]
    complete = [(v, ci) for v, ci in kept if ci is not None]
    none = {"median": None, "low": None, "high": None, "estimable": 0}
    if len(complete) < len(kept):
        return none
    try:
        low, median, high = mixture_percentiles(
            [v for v, _ in complete], [ci[0] for _, ci in complete], [ci[1] for _, ci in complete], scale, percentiles
        )
    except ValueError:
        return none
    return {"median": median, "low": low, "high": high, "estimable": len(complete)}
