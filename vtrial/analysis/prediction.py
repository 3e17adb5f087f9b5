"""Prediction intervals over parameter draws: parameter uncertainty and sampling error together.

The run at the fitted parameters gives the point estimate and its sampling distribution (its
95% CI). The parameter draws come in mirrored pairs ``log v_hat +/- delta_i``
(:func:`vtrial.calibration.uncertainty.sample`), and each draw re-runs the same patients with the
same random streams (common random numbers), so on the scale ``g`` the CI is built on a pair's
estimates ``g_i+`` and ``g_i-`` differ from the fitted run's by the parameters alone. Their
half-difference ``h_i = (g_i+ - g_i-) / 2`` is the first-order (linear) effect of ``delta_i``;
their mean minus ``g(fitted)`` is the second-order (curvature) term. The prediction propagates
the parameter uncertainty to first order, as the Laplace approximation that made the draws
assumes (it is exact for a model linear in ``log v``): the predictive distribution is the fitted
run's sampling distribution convolved with the deviations ``+h_i`` and ``-h_i``, the mixture

``F(x) = mean_i [Phi(g(x) - h_i) + Phi(g(x) + h_i)] / 2``,

with ``g`` the log for ratios, rates and medians (:data:`LOG`) and the identity for proportions
(:data:`IDENTITY`), and ``Phi`` a split normal centred on ``g(fitted)`` whose standard deviation
is the fitted CI's half-width on that scale over ``z = 1.96``: below the estimate the lower
half-width, above it the upper one. For a Wald interval (the Cox hazard ratio, the Andersen–Gill
rate ratio) the two are equal and ``Phi`` is the usual normal approximation; for the exact
intervals (Clopper–Pearson, Garwood) and the Kaplan–Meier median's the split keeps the CI as
``Phi``'s 2.5/97.5 percentiles, so with every ``h_i = 0`` the prediction interval is the CI. An
upper bound not reached (``None``) is an open upper tail. The percentiles of ``F`` are found by
root finding (:func:`scipy.optimize.brentq`, imported only when draws are summarised).

Because the deviations are symmetric and ``Phi`` is unimodal, each tail of ``F`` holds at least
the CI's 2.5% beyond the CI's bound (``Phi(q - h) + Phi(q + h) >= 2 Phi(q)`` beyond the mode),
so the prediction interval contains the CI and widens it with the parameters' spread. The
curvature term is not in the interval; it is reported beside it (``pair_centre``: the estimate
at the pairs' mean, to compare with the fitted estimate), and the spread of the draws' own
estimates (:func:`vtrial.analysis.summary.spread`) shows the full, nonlinear parameter
uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from vtrial.analysis.proportions import CONFIDENCE

#: Scales of the normal approximation: the log scale of ratios, rates and medians, the
#: probability scale of proportions (where each draw's component keeps its Clopper–Pearson bounds).
LOG, IDENTITY = "log", "identity"
#: The standard normal quantile of the CIs' two-sided level (1.96 for 95%; lifelines' Wald intervals use it).
Z_CI = float(special.ndtri(0.5 + CONFIDENCE / 2))
#: Standard normal quantile so far in a component's tail that its remaining mass (1e-15) is below
#: any percentile asked for: the edge of the search bracket.
_Z_EDGE = float(-special.ndtri(1e-15))


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
        return float(np.mean(special.ndtr(z)))

    def quantile(self, p: float) -> float | None:
        """The ``p`` quantile of ``F`` on the scale ``g``; ``None`` when ``F`` never reaches ``p`` (open tails).

        It lies between the smallest and the largest of the components' ``p`` quantiles, the
        bracket of the root search.
        """
        z = float(special.ndtri(p))
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
        from scipy.optimize import brentq  # ~0.5 s to import: only runs with parameter draws need it

        return float(brentq(lambda t: self.cdf(t) - p, low, high, xtol=1e-13, rtol=4 * np.finfo(float).eps))


def prediction(
    values: Sequence[float | None],
    fitted: float | None,
    fitted_ci: Sequence[float | None] | None,
    scale: str,
    percentiles: Sequence[float],
) -> dict:
    """The prediction interval of a headline number: median, low and high percentiles, draws used, pair centre.

    ``values`` are the draws' estimates in the ensemble's order (rows ``2i`` and ``2i + 1`` a
    mirrored pair), ``fitted`` and ``fitted_ci`` ``[low, high]`` the fitted run's estimate and 95%
    CI (``high`` ``None``: not reached, an open upper tail). The pairs whose two estimates exist
    make the mixture (a draw without its mirror, as the last of an odd count, is left out); a
    percentile in an open tail the mixture never reaches is ``None``. ``pair_centre`` is the
    estimate at the mean of the pairs' estimates on the scale (the second-order shift, not in the
    interval). All are ``None`` and ``estimable`` 0 when the fitted run has no estimate or no
    usable CI (a bound missing or outside the scale, e.g. a rate of 0 on the log scale) or no
    pair is complete. A proportion's percentiles are kept inside [0, 1] (a deviation can move a
    bound past them).
    """
    none = {"median": None, "low": None, "high": None, "estimable": 0, "pair_centre": None}
    g = [_to_scale(v, scale) for v in values]
    pairs = np.array([(g[i], g[i + 1]) for i in range(0, len(g) - 1, 2) if not math.isnan(g[i] + g[i + 1])])
    if fitted_ci is None or not pairs.size:
        return none
    centre, low = _to_scale(fitted, scale), _to_scale(fitted_ci[0], scale)
    high = math.inf if fitted_ci[1] is None else _to_scale(fitted_ci[1], scale)
    if not low <= centre <= high:  # False for NaN too
        return none
    half = (pairs[:, 0] - pairs[:, 1]) / 2
    centres = centre + np.concatenate([half, -half])
    ones = np.ones(centres.size)
    mixture = Mixture(centres, ones * (centre - low) / Z_CI, ones * (high - centre) / Z_CI)
    out: list[float | None] = []
    for p in percentiles:
        t = mixture.quantile(p / 100.0)
        value = None if t is None else _from_scale(t, scale)
        out.append(min(max(value, 0.0), 1.0) if value is not None and scale == IDENTITY else value)
    low_p, median, high_p = out
    return {
        "median": median,
        "low": low_p,
        "high": high_p,
        "estimable": int(centres.size),
        "pair_centre": _from_scale(float(pairs.mean()), scale),
    }
