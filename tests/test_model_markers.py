"""Bone markers and serum calcium (vtrial.model.markers): the table, the visits, and each effect's direction.

Published figures the markers are compared with (IV-bisphosphonate-naive breast cancer):
median uNTx/Cr change at week 13 denosumab -73%, IV bisphosphonate -79%; at week 25 -75% vs
-71% (Lipton 2008 Clin Cancer Res 14:6690). ``denosumab_imax``, the bisphosphonate Emax and EC50 and
``rankl_osteoclast_survival`` were fitted with them and the SRE trials (docs/calibration.md); the
tolerances below are the model's honest distance in this tumour-heavy reference cohort.
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scipy.stats import spearmanr

from vtrial.model import markers as mk
from vtrial.model import simulate
from vtrial.model.markers import visit_weeks
from vtrial.model.parameters import Parameters
from vtrial.protocol import PriorTreatment
from vtrial.model.reference import reference_cohort
from vtrial.streams import PURPOSES, Streams
from test_model_simulate import DENOSUMAB, PLACEBO, ZOLEDRONIC, arm

WEEKS = (0, 13, 25)


def table(cb, which, weeks=WEEKS, horizon=365.25, seed=3, overrides=None):
    return pd.DataFrame(simulate(cb, which, horizon, Streams(seed), overrides, marker_weeks=weeks)[2])


def median_change(markers: pd.DataFrame, week: int, column: str = "untx_nmol_mmol") -> float:
    wide = markers.pivot(index="patient_id", columns="week", values=column)
    return float((100 * (wide[week] / wide[0] - 1)).dropna().median())


@pytest.fixture(scope="module")
def breast():
    return reference_cohort(1500, "breast", seed=21)


@pytest.fixture(scope="module")
def breast_arms(breast):
    return {a.name: table(breast, a) for a in (PLACEBO, DENOSUMAB, ZOLEDRONIC)}


def test_visits_are_week_zero_and_the_marker_weeks_or_none():
    assert visit_weeks([13, 25, 49]) == (0, 13, 25, 49)
    assert visit_weeks([]) == ()
    assert PURPOSES["markers"] == 9  # appended: earlier purposes keep their numbers


def test_table_has_one_row_per_patient_on_study_and_visit():
    cb = reference_cohort(300, "lung", seed=2)
    cb = replace(cb, dropout_day=np.where(np.arange(300) % 4 == 0, 60.0, np.inf))
    patients, events, markers = simulate(cb, ZOLEDRONIC, 365.25, Streams(3), marker_weeks=WEEKS)
    m = pd.DataFrame(markers)
    assert list(m.columns) == ["patient_id", "arm", "week", "untx_nmol_mmol", "bsap_ug_l", "calcium_mmol_l"]
    assert m.equals(m.sort_values(["patient_id", "week"]).reset_index(drop=True))
    assert (m["arm"] == "zoledronic_acid").all()
    # a visit is recorded exactly when the patient is still on study on that day
    follow = pd.Series(patients["followup_days"], index=patients["patient_id"])
    expected = {(pid, w) for pid, f in follow.items() for w in WEEKS if 7 * w < f}
    assert set(zip(m["patient_id"], m["week"])) == expected
    assert (m["week"] == 0).sum() == 300 and (m["week"] == 25).sum() < (m["week"] == 13).sum() < 300
    # markers are outputs only: the same run without visits has the same patients and events, and no markers
    p2, e2, none = simulate(cb, ZOLEDRONIC, 365.25, Streams(3))
    for k in events:
        np.testing.assert_array_equal(events[k], e2[k])
    np.testing.assert_array_equal(patients["followup_days"], p2["followup_days"])
    assert all(v.size == 0 for v in none.values()) and set(none) == set(markers)


def test_week_zero_is_before_any_dose_and_noise_is_common_to_arms(breast_arms):
    base = [a[a["week"] == 0].reset_index(drop=True) for a in breast_arms.values()]
    for other in base[1:]:
        pd.testing.assert_frame_equal(base[0].drop(columns="arm"), other.drop(columns="arm"))


def test_untreated_breast_baseline_and_progression(breast_arms):
    m = breast_arms["none"]
    week0 = m[m["week"] == 0]
    # the level is calibrated to a median 49.2 nmol/mmol in bisphosphonate-naive patients (Doshi 2012),
    # the trial-sampled Stopeck cohort gives 60 (72 before lesion regions resorbed with their burden); this
    # reference cohort carries more tumour: 114.8 (f = 0.067: 30 (0.933 x 121/30 + 0.067) = 114.9 at the median),
    # 111.7 with f = 0.1, 121.0 before uNTx kept a non-osteoclastic share f; 95 before the burden exponent, 74 before
    # the PTHrP loop
    assert 105 < week0["untx_nmol_mmol"].median() < 120
    assert week0["untx_nmol_mmol"].quantile(0.9) > 1.5 * week0["untx_nmol_mmol"].median()
    # 2.46: PTHrP (now induced by matrix TGF-beta and calcium) adds calcium in this tumour-heavy cohort
    assert 2.35 < week0["calcium_mmol_l"].median() < 2.50
    # untreated disease grows: resorption and formation markers rise
    # model: +35.6% (+36.5% before the non-osteoclastic share) and +6.8%
    assert median_change(m, 25) > 8 and median_change(m, 25, "bsap_ug_l") > 5


def test_denosumab_and_zoledronic_acid_against_the_published_untx_changes(breast_arms):
    dmab = [median_change(breast_arms["denosumab"], w) for w in (13, 25)]
    za = [median_change(breast_arms["zoledronic_acid"], w) for w in (13, 25)]
    # model (this cohort): denosumab -83.6% / -77.5%, zoledronic acid -72.0% / -66.8%; -88.4/-83.7 and -69.2/-65.7
    # before RANKL offset the bisphosphonate's osteoclast loss in the lesions and the drugs were refitted (-91.0/-86.2
    # and -71.5/-67.7 before uNTx kept a non-osteoclastic share; the growing tumour raises uNTx on the drug too)
    assert -88 < dmab[0] < -79 and -82 < dmab[1] < -72
    assert -77 < za[0] < -67 and -72 < za[1] < -62
    # published -73/-75 (denosumab) and -79/-71 (IV bisphosphonate): within 12 points, with the model's
    # denosumab deeper and its zoledronic acid shallower than observed (20 and 12 points before the refit)
    for model, published in zip(dmab + za, (-73, -75, -79, -71)):
        assert abs(model - published) < 12
    # about as deep as each other (published: 6 points the other way at week 13, 4 points this way at week 25):
    # 11.6 and 10.7 points in this cohort, whose lesions make more of uNTx than the trial's (the Lipton replica:
    # 7.0 and 5.9); 19.2 and 18.0 before the refit
    assert 0 < za[0] - dmab[0] < 13 and 0 < za[1] - dmab[1] < 13
    # formation follows resorption later and less (coupling): BSAP at week 13 -52% (denosumab), -34% (ZA)
    for name in ("denosumab", "zoledronic_acid"):
        assert median_change(breast_arms[name], 13) < median_change(breast_arms[name], 13, "bsap_ug_l") < -20
    below = {n: (m.loc[m["week"] == 13, "untx_nmol_mmol"] < 50).mean() for n, m in breast_arms.items()}
    # below 50 at week 13: denosumab 99.0%, zoledronic acid 77.4% (79.5% before the refit that followed the RANKL
    # offset of bisphosphonate loss, 77.7% before the non-osteoclastic share; 68.7%
    # before the refit with the breast-cancer subtypes, whose slower hormone-receptor-positive growth leaves less
    # tumour; above 85% before lesion regions resorbed with their burden: the patients with much tumour stay
    # high), placebo 2.5% (2.0%)
    assert below["denosumab"] > 0.95 and 0.85 > below["zoledronic_acid"] > 0.6 > 0.05 > below["none"]


def test_denosumab_lowers_untx_more_after_a_year_of_zoledronic_acid_in_those_still_above_50():
    """Body 2010 / Fizazi 2009: denosumab lowered uNTx by 80% at week 25 in patients whose uNTx stayed above 50
    on an IV bisphosphonate, against 75% in bisphosphonate-naive patients."""
    cb = reference_cohort(3000, "breast", seed=21)
    prior = replace(cb, prior_treatment=PriorTreatment(drug="zoledronic_acid", dose_mg=4.0, every_weeks=4.0, months=12))
    wide = table(prior, DENOSUMAB).pivot(index="patient_id", columns="week", values="untx_nmol_mmol")
    screened = wide[wide[0] > 50]
    after = float((100 * (1 - screened[25] / screened[0])).median())
    naive = -median_change(table(cb, DENOSUMAB), 25)
    # model: 392 of 3000 still above 50 after the year (this tumour-heavy cohort; 0.5-0.9% of the Body 2010
    # replica's), 78.9% against 77.9% in the naive (78.2% in naive patients above 50): more, by less than published
    assert 300 < len(screened) < 500
    assert after > naive > 70
    assert after - naive < 5


def test_untx_keeps_a_share_no_antiresorptive_removes():
    """uNTx/Cr = 30 ((1 - f) R + f), f = 0.067: blocked osteoclasts leave the non-osteoclastic share."""
    params = Parameters()
    recruitment = np.array([1.0, 1.0 - params.denosumab_imax])  # healthy; denosumab's maximal RANKL inhibition
    values = mk.true_values(
        np.zeros(0, np.int64),
        *(np.zeros(0),) * 6,
        recruitment,
        np.ones(2),
        np.ones(2),
        mk.calcium_gains(np.full(2, 60.0), np.zeros(2, bool), True, params),
        params,
    )
    # 30 (0.933 x 1 + 0.067) = 30 and 30 (0.933 x 0.1 + 0.067) = 4.809: a fall of 84.0% (Bekker 2004: up to 84%
    # in postmenopausal women) where the osteoclasts' recruitment falls 90% (4.809 -> 3.0 without the share)
    assert values[:, 0] == pytest.approx([30.0, 4.809], rel=1e-12)


def test_week_13_untx_change_under_each_agent(breast, breast_arms):
    """The non-osteoclastic share moves the week-13 median as the hand calculation from the osteoclastic readout."""
    share = Parameters().untx_nonosteoclastic_share
    osteoclastic = {
        a.name: table(breast, a, overrides={"untx_nonosteoclastic_share": 0.0}) for a in (DENOSUMAB, ZOLEDRONIC)
    }
    before = {name: median_change(m, 13) for name, m in osteoclastic.items()}
    after = {name: median_change(breast_arms[name], 13) for name in osteoclastic}
    assert before == pytest.approx({"denosumab": -85.15, "zoledronic_acid": -73.77}, abs=0.01)
    assert after == pytest.approx({"denosumab": -83.64, "zoledronic_acid": -72.00}, abs=0.01)
    # the median patient: R0 = 121.0 / 30 = 4.03 at entry, R13 = R0 (1 + before / 100); the readout
    # (0.933 R + 0.067) gives 1 - (0.933 x 0.1485 x 4.03 + 0.067) / (0.933 x 4.03 + 0.067) = -83.7% under denosumab
    # and 1 - (0.933 x 0.2623 x 4.03 + 0.067) / (0.933 x 4.03 + 0.067) = -72.0% under zoledronic acid
    r0 = 121.0 / 30.0
    for name, change in before.items():
        r13 = r0 * (1.0 + change / 100.0)
        expected = 100.0 * (((1.0 - share) * r13 + share) / ((1.0 - share) * r0 + share) - 1.0)
        # the median of the changes is near, not at, the median patient's change: 0.05 and 0.48 points off
        assert after[name] == pytest.approx(expected, abs=0.6)


def test_prostate_blastic_disease_has_higher_bsap_than_lytic_breast(breast, breast_arms):
    prostate = table(reference_cohort(1500, "prostate", seed=21), PLACEBO, weeks=(0,))["bsap_ug_l"].median()
    lung = table(reference_cohort(1500, "lung", seed=21), PLACEBO, weeks=(0,))["bsap_ug_l"].median()
    breast_bsap = breast_arms["none"].query("week == 0")["bsap_ug_l"].median()
    # bsap_lesion_weight is set to ~5x healthy (60 ug/L) in CRPC with bone metastases (ALSYMPCA median total ALP
    # ~210 U/L) on the Nilsson replica (59 ug/L); this reference cohort carries ~3x its tumour per lesion (entry
    # burdens around 0.08): measured 99.2 ug/L (8.3x healthy); 63.6 while BSAP read each lesion's whole formation
    assert 90 < prostate < 110
    # measured: breast 42.7 (45.6 before), lung 22.2 (29.6 before)
    assert prostate > 1.3 * breast_bsap and prostate > 2 * lung


def test_calcium_falls_after_denosumab_more_without_vitamin_d_and_with_poor_kidneys():
    cb = reference_cohort(1500, "prostate", seed=22)
    early = (0, 2)  # two weeks: resorption blocked, formation not yet followed

    def fall(cohort, supplemented=True):
        m = table(cohort, arm("denosumab", 120.0, calcium_vitamin_d=supplemented), weeks=early, horizon=60.0)
        wide = m.pivot(index="patient_id", columns="week", values="calcium_mmol_l")
        return float((wide[2] - wide[0]).median())

    replete = replace(cb, vitamin_d_deficient=np.zeros(1500, bool), creatinine_clearance_ml_min=np.full(1500, 90.0))
    deficient = replace(replete, vitamin_d_deficient=np.ones(1500, bool))
    renal = replace(replete, creatinine_clearance_ml_min=np.full(1500, 30.0))
    base = fall(replete)
    assert -0.2 < base < -0.04
    assert fall(deficient) < 1.5 * base and fall(replete, supplemented=False) < 1.3 * base and fall(renal) < 2 * base
    untreated = table(replete, PLACEBO, weeks=early, horizon=60.0).pivot(
        index="patient_id", columns="week", values="calcium_mmol_l"
    )
    assert abs(float((untreated[2] - untreated[0]).median())) < 0.02


def test_pthrp_raises_calcium():
    cb = reference_cohort(1000, "breast", seed=23)
    high = replace(cb, biology={**cb.biology, "pthrp_secretion": 3 * cb.biology["pthrp_secretion"]})
    low = table(cb, PLACEBO, weeks=(0,))["calcium_mmol_l"].median()
    assert table(high, PLACEBO, weeks=(0,))["calcium_mmol_l"].median() > low + 0.05


def test_calcium_law_is_linear_near_the_set_point_and_floored_far_below_it():
    """The law by hand for a balanced and a small uptake; an uptake far beyond any cohort's is held at 1.0 mmol/L."""
    params = Parameters()
    one = np.ones(3)
    gains = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])  # renal gain 1; uptake gain 2
    skeleton_w = one.copy()  # osteoblasts of a healthy skeleton: v**(3/8) = 1
    recruitment = np.array([1.0, 0.9, 0.9])  # balanced; resorption 10% below formation
    lesion_release = np.array([0.0, 0.0, -1e6])  # the third: an uptake of a wide biology's tail
    serum = mk.calcium(recruitment, skeleton_w, lesion_release, np.zeros(3), one, gains, params)
    # by hand: Ca_0 + c_N (X - 1) 2 for the uptake (release < 0: the uptake gain)
    small = params.calcium_healthy + params.calcium_per_release * (0.9 - 1.0) * 2.0
    assert serum[:2].tolist() == pytest.approx([params.calcium_healthy, small], rel=1e-12)
    assert serum[2] == mk.CALCIUM_FLOOR_MMOL_L


def test_stopping_denosumab_lets_resorption_overshoot():
    """The osteoclast-precursor reserve filled under denosumab is released once RANKL signalling returns."""
    cb = reference_cohort(800, "breast", seed=24)
    week = (0, 78)
    stopped = table(cb, arm("denosumab", 120.0, stop_after_months=3.0), weeks=week, horizon=560.0)
    continued = table(cb, DENOSUMAB, weeks=week, horizon=560.0)
    placebo = table(cb, PLACEBO, weeks=week, horizon=560.0)
    assert median_change(continued, 78) < -60  # model: -76%
    assert median_change(stopped, 78) > median_change(placebo, 78) + 15  # model: +62% vs +35%


def test_a_lesion_region_resorbs_with_the_root_of_its_tumour_burden():
    """uNTx carries the tumour burden: a lesion's resorbing region grows as ``(T / T_det)**0.5``."""
    params = Parameters()
    owner = np.array([0, 1])
    burden = np.array([0.05, 0.2])  # at the detection burden (tumour_detection_burden), and 4x it
    resorbed = np.array([2.0, 2.0])  # the same u Z in both
    values = mk.true_values(
        owner,
        resorbed,
        burden,
        *(np.zeros(2),) * 4,
        np.ones(2),
        np.ones(2),
        np.ones(2),
        mk.calcium_gains(np.full(2, 60.0), np.zeros(2, bool), True, params),
        params,
    )
    # R = X + g (T / 0.05)**0.5 u Z = 1 + 0.2 * 1 * 2 = 1.4 and 1 + 0.2 * 2 * 2 = 1.8;
    # uNTx = 30 (0.933 R + 0.067) = 41.196 and 52.392
    assert values[:, 0] == pytest.approx([41.196, 52.392], rel=1e-12)
    # untreated breast reference cohort at entry: Spearman correlation of uNTx with the summed burden
    # 0.804 (0.675 when every lesion's region resorbed alike, exponent 0); the median rises 91 -> 116 nmol/mmol
    # (0.803, 0.673, 89 -> 113 with the share at 0.1; 0.81, 0.68, 95 -> 122 before uNTx kept its non-osteoclastic
    # share: the noise weighs more on a smaller range)
    cb = reference_cohort(600, "breast", seed=21)
    total = dict(zip(cb.patient_id.tolist(), cb.lesion_burden.sum(axis=1).tolist()))
    rho = {}
    for exponent in (0.0, 0.5):
        override = {"lesion_resorption_burden_exponent": exponent}
        m = pd.DataFrame(simulate(cb, PLACEBO, 30.0, Streams(3), override, marker_weeks=(0,))[2])
        rho[exponent] = spearmanr(m["untx_nmol_mmol"], m["patient_id"].map(total)).statistic
    assert rho == pytest.approx({0.0: 0.675, 0.5: 0.804}, abs=0.001)
