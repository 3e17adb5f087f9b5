"""BinaryCoxFitter against lifelines (reference values) and against the truth (simulated replicates)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from vtrial.analysis.cox import BinaryCoxFitter


@pytest.fixture(scope="module")
def survival_data() -> pd.DataFrame:
    """Exponential times, HR exp(-0.35), uniform censoring; pairs of rows share a cluster id."""
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.integers(0, 2, n)
    t = rng.exponential(1 / (0.1 * np.exp(-0.35 * x)))
    c = rng.uniform(0, 15, n)
    return pd.DataFrame(
        {
            "stop": np.minimum(t, c),
            "event": t <= c,
            "treated": x,
            "id": np.arange(n) // 2,
            "start": rng.uniform(0, 0.5, n) * np.minimum(t, c),
        }
    )


def lifelines_fit(df: pd.DataFrame, **kwargs) -> tuple[float, float]:
    cph = CoxPHFitter().fit(df, "stop", "event", **kwargs)
    return float(cph.params_["treated"]), float(cph.standard_errors_["treated"])


# lifelines stops its Newton iterations with a small score left: agreement to ~1e-7 relative
@pytest.mark.parametrize(
    ("case", "columns", "kwargs"),
    [
        ("right censored", ["stop", "event", "treated"], {}),
        ("clustered sandwich", ["stop", "event", "treated", "id"], {"cluster_col": "id"}),
        ("left truncated", ["start", "stop", "event", "treated"], {"entry_col": "start"}),
    ],
)
def test_equals_lifelines(survival_data, case, columns, kwargs):
    df = survival_data[columns]
    beta, se = lifelines_fit(df, **kwargs)
    fit = BinaryCoxFitter().fit(
        df["stop"],
        df["event"],
        df["treated"],
        start=df["start"] if "entry_col" in kwargs else None,
        cluster=df["id"] if "cluster_col" in kwargs else None,
    )
    assert fit.converged_
    assert fit.log_hazard_ratio_ == pytest.approx(beta, rel=1e-6)
    assert fit.standard_error_ == pytest.approx(se, rel=1e-6)


def test_efron_ties_equal_lifelines(survival_data):
    df = survival_data.assign(stop=np.ceil(survival_data["stop"]))[["stop", "event", "treated"]]
    assert df.loc[df["event"], "stop"].duplicated().sum() > 1000  # heavily tied
    beta, se = lifelines_fit(df)
    fit = BinaryCoxFitter().fit(df["stop"], df["event"], df["treated"])
    assert fit.log_hazard_ratio_ == pytest.approx(beta, rel=1e-6)
    assert fit.standard_error_ == pytest.approx(se, rel=1e-6)


def test_two_sided_wald_interval_and_p():
    rng = np.random.default_rng(2)
    x = np.repeat([0, 1], 500)
    t = rng.exponential(np.where(x == 1, 1 / 0.5, 1.0))
    fit = BinaryCoxFitter(confidence=0.9).fit(t, np.ones(1000, bool), x)
    z90 = 1.6448536269514722  # scipy.stats.norm.ppf(0.95)
    beta, se = fit.log_hazard_ratio_, fit.standard_error_
    assert fit.confidence_interval_ == pytest.approx((np.exp(beta - z90 * se), np.exp(beta + z90 * se)))
    assert fit.p_value_ == pytest.approx(math.erfc(abs(beta) / se / math.sqrt(2)), rel=1e-12)  # 2 (1 - Phi(|z|))
    assert fit.hazard_ratio_ == pytest.approx(np.exp(beta))


def recurrent_trial(rng: np.random.Generator, n: int, rate_ratio: float, frailty_shape: float):
    """Andersen–Gill rows of recurrent events: Poisson processes with gamma frailty (mean 1)."""
    x = np.repeat([0, 1], n // 2)
    follow = rng.uniform(0.5, 2.0, n)
    frailty = rng.gamma(frailty_shape, 1 / frailty_shape, n)
    counts = rng.poisson(1.5 * frailty * np.where(x == 1, rate_ratio, 1.0) * follow)
    owner = np.repeat(np.arange(n), counts)
    times = rng.uniform(0, follow[owner])
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    start = np.where(first, 0.0, np.r_[0.0, times[:-1]])
    last_stop = np.zeros(n)
    last_stop[owner] = times  # the last event of each patient wins
    tail = follow > last_stop
    ids = np.r_[owner, np.flatnonzero(tail)]
    return (
        np.r_[start, last_stop[tail]],
        np.r_[times, follow[tail]],
        np.r_[np.ones(owner.size, bool), np.zeros(tail.sum(), bool)],
        x[ids],
        ids,
    )


def test_robust_andersen_gill_variance_matches_the_replicate_spread():
    """Over 300 simulated trials with overdispersed events, the robust SE matches the SD of the estimate.

    The model-based SE ignores the within-patient correlation and is too small; the sandwich
    clustered by patient is the Andersen–Gill standard (Lin, Wei, Yang & Ying 2000).
    """
    rng = np.random.default_rng(11)
    betas, robust, model = [], [], []
    for _ in range(300):
        start, stop, event, x, ids = recurrent_trial(rng, 400, 0.75, frailty_shape=1.0)
        fit = BinaryCoxFitter().fit(stop, event, x, start=start, cluster=ids)
        betas.append(fit.log_hazard_ratio_)
        robust.append(fit.standard_error_)
        model.append(fit.model_standard_error_)
    spread = np.std(betas, ddof=1)
    assert abs(np.mean(betas) - np.log(0.75)) < 3 * spread / np.sqrt(300)
    # the SD of an SD from 300 replicates is ~4%: allow 12%
    assert np.mean(robust) == pytest.approx(spread, rel=0.12)
    assert np.mean(model) < 0.8 * spread


def test_rows_must_have_positive_length():
    with pytest.raises(ValueError, match="start < stop"):
        BinaryCoxFitter().fit([1.0, 2.0], [True, False], [0, 1], start=[1.0, 0.0])
