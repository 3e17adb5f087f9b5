"""Virtual cohort: marginals match the requested distributions, eligibility holds, reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from vtrial.cohort import cohort_table, nbinom_ppf, sample_cohort, write_cohort
from vtrial.protocol import MAX_LESIONS, apply_overrides, load_protocol, parse_protocol
from vtrial.streams import Streams
from vtrial.vocabulary import BREAST_SUBTYPES, DAYS_PER_MONTH, PRIMARIES, SITES

PROTOCOLS = Path(__file__).parent.parent / "protocols"

N = 200_000
BREAST, PROSTATE, LUNG = (PRIMARIES.index(p) for p in ("breast", "prostate", "lung"))
AXIAL = [SITES.index(s) for s in ("cervical_spine", "thoracic_spine", "lumbar_spine", "pelvis", "ribs")]


def protocol(cohort=None, **trial):
    return parse_protocol(
        {
            "trial": {
                "name": "cohort-test",
                "patients": 10,
                "horizon_months": 24,
                "accrual_months": 6,
                "dropout_per_year": 0.1,
                **trial,
            },
            # a clearance range wide enough that nothing is rejected: age stays an exact truncated normal
            "cohort": cohort
            or {
                "primary": {"breast": 0.4, "prostate": 0.4, "lung": 0.2},
                "creatinine_clearance_ml_min": {"min": 0.0, "max": 400.0},
            },
            "arm": [{"name": "placebo", "drug": "none"}],
        },
        "test",
    )


@pytest.fixture(scope="module")
def big():
    p = protocol()
    return p, sample_cohort(p, np.arange(N), Streams(11))


def within(sample: np.ndarray, expected: float, sd: float, k: float = 4.0) -> bool:
    return abs(sample.mean() - expected) < k * sd / np.sqrt(sample.size)


def test_primary_mix_follows_weights(big):
    _, b = big
    for code, w in ((BREAST, 0.4), (PROSTATE, 0.4), (LUNG, 0.2)):
        assert within(b.primary == code, w, np.sqrt(w * (1 - w)))
    assert not np.isin(b.primary, [PRIMARIES.index("head_and_neck")]).any()


def test_age_is_the_truncated_normal_of_the_profile(big):
    p, b = big
    age = p.cohort.by_primary["breast"].age_years  # mean 57, sd 11 on [18, 90]
    dist = stats.truncnorm((age.min - age.mean) / age.sd, (age.max - age.mean) / age.sd, age.mean, age.sd)
    x = b.age_years[b.primary == BREAST]
    assert x.min() >= 18 and x.max() <= 90
    assert within(x, dist.mean(), dist.std())  # 57.0 (the truncation is nearly symmetric)
    # sd of a sample sd ~ sd / sqrt(2 n)
    assert abs(x.std() - dist.std()) < 4 * dist.std() / np.sqrt(2 * x.size)


def test_sex_ecog_and_lesion_count(big):
    p, b = big
    breast = b.primary == BREAST
    assert within(b.female[breast], 0.99, np.sqrt(0.99 * 0.01))
    assert not b.female[b.primary == PROSTATE].any()
    for level, prob in enumerate([0.45, 0.50, 0.05]):  # breast ECOG 0/1/2
        assert within(b.ecog[breast] == level, prob, np.sqrt(prob * (1 - prob)))
    # 1 + NegBin(mean 4.7, size 2), capped at 50: E = 5.7 up to the cap, var = 4.7 + 4.7^2/2
    k, m = 2.0, 4.7
    counts = np.arange(MAX_LESIONS)
    pmf = stats.nbinom.pmf(counts, k, k / (k + m))
    expected = 1 + (counts * pmf).sum() + (MAX_LESIONS - 1) * (1 - pmf.sum())
    n = b.n_lesions[breast]
    assert n.min() >= 1 and n.max() <= MAX_LESIONS
    assert within(n, expected, np.sqrt(m + m**2 / k))


def test_sites_favour_the_axial_skeleton_and_prostate_is_blastic(big):
    _, b = big
    sites = b.lesion_site[b.primary == BREAST][b.lesion_mask[b.primary == BREAST]]
    axial = 0.05 + 0.18 + 0.15 + 0.17 + 0.15  # breast site probabilities of spine, pelvis, ribs = 0.70
    assert within(np.isin(sites, AXIAL), axial, np.sqrt(axial * (1 - axial)))
    assert (b.lesion_site[~b.lesion_mask] == -1).all()
    # first lesion blastic (fraction > 0.5): blastic 0.80 * 1 + mixed 0.15 * 0.5 + lytic 0.05 * 0 = 0.875
    first = b.lesion_blastic_fraction[b.primary == PROSTATE, 0] > 0.5
    assert within(first, 0.875, np.sqrt(0.875 * 0.125))
    # breast: 0.20 + 0.10 * 0.5 = 0.25
    assert within(b.lesion_blastic_fraction[b.primary == BREAST, 0] > 0.5, 0.25, np.sqrt(0.25 * 0.75))
    burden = b.lesion_burden[b.lesion_mask]
    assert burden.min() >= 1e-4 and burden.max() <= 0.5
    assert abs(np.median(burden) - 0.02) < 0.001  # log-normal median 0.02


def test_biology_accrual_and_dropout(big):
    _, b = big
    log_growth = np.log(b.biology["tumour_growth_rate"])
    assert within(log_growth, 0.0, 0.6) and abs(log_growth.std() - 0.6) < 4 * 0.6 / np.sqrt(2 * N)
    accrual_days = 6 * DAYS_PER_MONTH  # 182.6
    assert b.entry_day.min() >= 0 and b.entry_day.max() <= accrual_days
    assert within(b.entry_day, accrual_days / 2, accrual_days / np.sqrt(12))
    assert within(b.dropout_day, 3652.5, 3652.5)  # exponential, rate 0.1 per year


def test_no_dropout_means_never_lost():
    b = sample_cohort(protocol(dropout_per_year=0.0), np.arange(100), Streams(1))
    assert np.isinf(b.dropout_day).all()


def test_eligibility_resamples_without_dropping_patients():
    cohort = {"primary": {"lung": 1.0}, "eligibility": {"min_creatinine_clearance_ml_min": 60.0, "max_ecog": 1}}
    b = sample_cohort(protocol(cohort), np.arange(20_000), Streams(5))
    assert b.n_patients == 20_000
    assert b.creatinine_clearance_ml_min.min() >= 60.0 and b.ecog.max() <= 1
    # ECOG 0 vs 1 keep their ratio 0.25 : 0.55 among the eligible
    assert within(b.ecog == 0, 0.25 / 0.80, np.sqrt(0.3125 * 0.6875))
    # clearance falls with age (Cockcroft-Gault), so excluding low clearance leaves younger patients
    unfiltered = sample_cohort(protocol({"primary": {"lung": 1.0}}), np.arange(20_000), Streams(5))
    assert b.age_years.mean() < unfiltered.age_years.mean() - 0.5


def test_breast_subtypes_follow_their_weights_and_only_breast_patients_have_one(big):
    """Default mix 0.72 / 0.18 / 0.10 of the breast patients; the other primaries carry -1."""
    p, b = big
    assert p.cohort.breast_subtype == {"hr_positive": 0.72, "her2_positive": 0.18, "triple_negative": 0.10}
    breast = b.breast_subtype[b.primary == BREAST]
    for code, w in enumerate((0.72, 0.18, 0.10)):
        assert within(breast == code, w, np.sqrt(w * (1 - w)))
    assert (b.breast_subtype[b.primary != BREAST] == -1).all()
    # weights are relative, as the primary weights
    two = protocol({"primary": {"breast": 1.0}, "breast_subtype": {"hr_positive": 3.0, "triple_negative": 1.0}})
    codes = sample_cohort(two, np.arange(20_000), Streams(2)).breast_subtype
    assert within(codes == BREAST_SUBTYPES.index("triple_negative"), 0.25, np.sqrt(0.25 * 0.75))
    assert not (codes == BREAST_SUBTYPES.index("her2_positive")).any()
    assert protocol({"primary": {"lung": 1.0}}).cohort.breast_subtype is None


def test_same_seed_same_patients_whatever_the_blocks():
    p = protocol()
    whole = sample_cohort(p, np.arange(5000), Streams(3))
    order = np.random.default_rng(0).permutation(5000)
    for ids in np.array_split(order, np.arange(777, 5000, 777)):
        part = sample_cohort(p, ids, Streams(3))
        ref = whole.take(ids)
        width = part.lesion_mask.shape[1]
        for name in (
            "primary",
            "age_years",
            "creatinine_clearance_ml_min",
            "ecog",
            "female",
            "entry_day",
            "dropout_day",
            "prior_sre",
            "breast_subtype",
        ):
            np.testing.assert_array_equal(getattr(part, name), getattr(ref, name))
        np.testing.assert_array_equal(part.biology["pthrp_secretion"], ref.biology["pthrp_secretion"])
        for name in ("lesion_mask", "lesion_site", "lesion_blastic_fraction", "lesion_burden"):
            np.testing.assert_array_equal(getattr(part, name), getattr(ref, name)[:, :width])
    other = sample_cohort(p, np.arange(5000), Streams(4))
    assert (other.age_years != whole.age_years).mean() > 0.99


def test_cohort_table_has_one_row_per_patient():
    b = sample_cohort(protocol(), np.arange(300), Streams(2))
    table = cohort_table(b)
    assert len(table) == 300 and table["patient_id"].tolist() == list(range(300))
    assert set(table["primary"]) <= {"breast", "prostate", "lung"}
    assert set(table["sex"]) <= {"female", "male"}
    assert [len(s) for s in table["lesion_site"]] == b.n_lesions.tolist()
    assert set(np.concatenate(table["lesion_site"].to_numpy())) <= set(SITES)


def test_written_cohort_file_is_identical_for_any_block_size(tmp_path):
    protocol = apply_overrides(load_protocol(PROTOCOLS / "example.toml"), patients=3000)
    streams = Streams(protocol.trial.seed)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert write_cohort(protocol, streams, a, block_size=3000) == 3000
    assert write_cohort(protocol, streams, b, block_size=701) == 3000
    assert a.read_bytes() == b.read_bytes()


def test_nbinom_ppf_equals_scipy_stats_including_q_zero():
    """The lesion-count quantile without importing scipy.stats gives scipy.stats' values (-1 at q = 0)."""
    q = np.concatenate([[0.0, 1e-12, 0.5, 0.999999], np.random.default_rng(3).random(2000)])
    size = np.resize([0.7, 1.3, 4.0], q.size)
    p = size / (size + np.resize([0.5, 2.2, 6.0], q.size))
    assert np.array_equal(nbinom_ppf(q, size, p), stats.nbinom.ppf(q, size, p))
    assert nbinom_ppf(np.array([0.0]), np.array([1.3]), np.array([0.3]))[0] == -1.0
