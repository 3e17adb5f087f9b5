"""Disease stage, background therapy, castration resistance and the skeleton outside the lesions."""

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vtrial.cohort import sample_cohort
from vtrial.measurements import breast_subtypes
from vtrial.model import simulate, skeleton, systemic
from vtrial.model.parameters import Parameters
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.protocol import load_protocol
from vtrial.streams import PURPOSES, Streams
from vtrial.vocabulary import EVENT_TYPES, EVENT_TYPES_V2, SRE_TYPES, SYSTEMIC_THERAPIES

EXAMPLE = Path(__file__).parent.parent / "protocols" / "prostate-castration-sensitive.toml"
MONTH = 365.25 / 12


def arm(therapy=None, drug="none", dose_mg=None, every_weeks=None):
    return reference_arm(drug, dose_mg=dose_mg, every_weeks=every_weeks, systemic_therapy=therapy)


@pytest.fixture(scope="module")
def cohort():
    """1000 patients of the example protocol's CHAARTED-like cohort, all entering on day 0."""
    cb = sample_cohort(load_protocol(EXAMPLE), np.arange(1000), Streams(5))
    return replace(cb, entry_day=np.zeros(1000), dropout_day=np.full(1000, np.inf))


def first(patients, events, types):
    """Day of each patient's first event of the given types (inf without one)."""
    out = np.full(patients["patient_id"].size, np.inf)
    hit = np.isin(events["type"], types)
    np.minimum.at(out, np.searchsorted(patients["patient_id"], events["patient_id"][hit]), events["day"][hit])
    return out


def km(time, event):
    """Kaplan-Meier: sorted times and survival after each."""
    order = np.argsort(time, kind="stable")
    at_risk = time.size - np.arange(time.size)
    return time[order], np.cumprod(1.0 - event[order] / at_risk)


def km_median_months(time, event):
    t, s = km(time, event)
    return t[np.argmax(s <= 0.5)] / MONTH if (s <= 0.5).any() else np.inf


def km_risk(time, event, day):
    t, s = km(time, event)
    k = np.searchsorted(t, day, side="right")
    return 1.0 - (s[k - 1] if k else 1.0)


def endpoints(patients, events, types):
    """(KM probability of a first event by 24 months, its median in months, median OS in months)."""
    f = first(patients, events, types)
    fu = patients["followup_days"]
    time, event = np.minimum(f, fu), (f <= fu).astype(float)
    return km_risk(time, event, 24 * MONTH), km_median_months(time, event), km_median_months(fu, patients["died"] * 1.0)


def test_version_one_inputs_have_no_background_and_the_new_names_are_appended():
    cb = reference_cohort(10, "prostate")
    assert systemic.background(cb, arm(), Parameters()) is None
    assert list(PURPOSES.values()) == list(range(len(PURPOSES))) and PURPOSES["systemic"] == 8
    assert EVENT_TYPES[:13] == SRE_TYPES + (
        "death",
        "dropout",
        "new_lesion",
        "osteonecrosis_of_the_jaw",
        "hypocalcaemia",
        "renal_toxicity",
        "acute_phase_reaction",
        "atypical_femoral_fracture",
    )
    assert EVENT_TYPES[13:] == EVENT_TYPES_V2 + (
        "prophylactic_radiotherapy",
        "partial_pain_response",
        "complete_pain_response",
        "entry_radiotherapy",
    )


def test_the_arm_list_replaces_the_profile_list():
    params = Parameters()
    cb = replace(
        reference_cohort(4, "prostate"),
        prostate_stage="castration_sensitive",
        systemic_therapy={"prostate": ("androgen_deprivation",)},
    )
    usual = systemic.background(cb, arm(), params)
    assert usual.castration_sensitive.all() and usual.hormonal.all()
    np.testing.assert_allclose(usual.kill_sensitive, params.androgen_deprivation_kill_sensitive)
    np.testing.assert_allclose(usual.rankl_factor, 1.0 + params.androgen_deprivation_rankl_rise)
    none = systemic.background(cb, arm([]), params)
    assert not none.hormonal.any() and not none.kill_sensitive.any() and (none.rankl_factor == 1.0).all()
    both = systemic.background(cb, arm(["androgen_deprivation", "docetaxel", "chemotherapy"]), params)
    np.testing.assert_allclose(both.course_kill, params.docetaxel_kill)  # one course, not two
    # androgen deprivation acts on prostate tumours only; its bone loss on anyone who receives it
    breast = systemic.background(
        replace(reference_cohort(4, "breast"), systemic_therapy={"breast": ("androgen_deprivation",)}), arm(), params
    )
    assert not breast.kill_sensitive.any() and not breast.castration_sensitive.any()
    np.testing.assert_allclose(breast.rankl_factor, 1.6)
    with pytest.raises(ValueError, match="unknown systemic therapy 'hormones'"):
        systemic.background(cb, arm(["hormones"]), params)


def test_castration_sensitive_disease_on_adt_has_far_fewer_sres_and_lives_longer_than_resistant(cohort):
    horizon = 6 * 365.25
    sensitive = endpoints(
        *simulate(
            replace(cohort, prostate_stage="castration_sensitive"), arm(["androgen_deprivation"]), horizon, Streams(8)
        )[:2],
        SRE_TYPES[:4],
    )
    resistant = endpoints(
        *simulate(
            replace(cohort, prostate_stage="castration_resistant"), arm(["androgen_deprivation"]), horizon, Streams(8)
        )[:2],
        SRE_TYPES[:4],
    )
    # SRE by 24 months (KM), median time to first SRE, median OS (months); re-pinned after the refit that followed
    # disease control: sensitive 0.428, 29.5, 31.1 (was 0.42, 29.5, 35.5; 0.410, 30.3, 34.1 just before the refit),
    # resistant 0.791, 11.5, 17.7 (was 0.76, 12.7, 18.8; 0.771, 12.7, 19.5 just before the refit)
    np.testing.assert_allclose(sensitive, (0.428, 29.5, 31.1), rtol=0.1)
    np.testing.assert_allclose(resistant, (0.791, 11.5, 17.7), rtol=0.1)
    assert sensitive[0] < resistant[0] - 0.25 and sensitive[2] > resistant[2] + 12


def test_castration_resistance_comes_at_the_sourced_median_and_later_with_docetaxel_or_abiraterone(cohort):
    cb = replace(cohort, prostate_stage="castration_sensitive")
    medians = {}
    for name, therapy in {
        "adt": ["androgen_deprivation"],
        "docetaxel": ["androgen_deprivation", "docetaxel"],
        "abiraterone": ["androgen_deprivation", "abiraterone_prednisone"],
        "none": [],
    }.items():
        patients, events, _ = simulate(cb, arm(therapy), 3.5 * 365.25, Streams(8))
        f = first(patients, events, ["castration_resistance"])
        fu = patients["followup_days"]
        medians[name] = km_median_months(np.minimum(f, fu), (f <= fu) * 1.0)
    # CHAARTED: 11.7 months on ADT alone, 20.2 with docetaxel; LATITUDE: far later with abiraterone
    assert 10.0 < medians["adt"] < 13.5
    assert 17.0 < medians["docetaxel"] < 23.0
    assert medians["abiraterone"] > 24.0
    assert medians["none"] == np.inf  # no castration, no castration resistance


def test_castration_resistance_only_happens_in_castration_sensitive_prostate_cancer(cohort):
    _, events, _ = simulate(
        replace(cohort, prostate_stage="castration_resistant"), arm(["androgen_deprivation"]), 3 * 365.25, Streams(8)
    )
    assert not np.any(events["type"] == "castration_resistance")


def test_androgen_deprivation_costs_uninvolved_bone_and_an_antiresorptive_gains_it():
    params = Parameters()
    density = {}
    for name, rise, x2 in (
        ("adt", 1.0 + params.androgen_deprivation_rankl_rise, 1.0),
        ("none", 1.0, 1.0),
        ("antiresorptive", 1.0, 0.1**2),
    ):
        w, z, space, damage, path = np.ones(1), np.ones(1), np.full(1, params.remodelling_space), np.zeros(1), []
        for _ in range(5 * 52):
            skeleton.advance(w, z, space, damage, np.array([x2]), np.array([rise]), 7.0, params)
            path.append(float(skeleton.bone_density(z, space, params)[0]))
        density[name] = np.array(path)[[51, 259]]  # after 1 and 5 years
    # 2-5%/year (Greenspan 2005), ~8% by year 5: the remodelling space opens within months (0.6 x 0.06 = 3.6%),
    # the volume follows slowly (before the remodelling space: 0.972, 0.921)
    np.testing.assert_allclose(density["adt"], (0.953, 0.918), atol=0.003)
    np.testing.assert_array_equal(density["none"], 1.0)
    assert density["antiresorptive"][0] > 1.05
    # fracture risk doubles per SD of density lost, and rises as (S/s_0)**0.3 with the open remodelling space:
    # 1.6**0.3 = 1.1513 on androgen deprivation's steady turnover
    np.testing.assert_allclose(
        skeleton.fracture_hazard(
            np.array([1.0, 1.0 - params.bmd_sd_fraction, 1.0]), np.array([0.06, 0.06, 0.096]), params
        ),
        params.osteoporotic_fracture_hazard * np.array([1.0, 2.0, 1.6**0.3]),
    )


def test_androgen_deprivation_raises_osteoporotic_fractures_and_seeding_but_leaves_the_tumour_of_resistant_disease_alone():
    base = reference_cohort(3000, "prostate", seed=3)
    horizon = 5 * 365.25
    runs = {
        (stage, name): simulate(
            replace(
                base,
                prostate_stage=stage,
                ecog=np.zeros(3000, np.int8),
                visceral_metastases=np.zeros(3000, bool),
                lesion_burden=base.lesion_burden * 0.1,
            ),
            arm(therapy),
            horizon,
            Streams(4),
        )
        for stage, name, therapy in (
            ("castration_resistant", "adt", ["androgen_deprivation"]),
            ("castration_resistant", "none", []),
            ("castration_sensitive", "adt", ["androgen_deprivation"]),
        )
    }
    risk = {}
    for key, (patients, events, _) in runs.items():
        f = first(patients, events, ["osteoporotic_fracture"])
        fu = patients["followup_days"]
        risk[key] = km_risk(np.minimum(f, fu), (f <= fu) * 1.0, horizon - 1)
    # Shahinian 2005: 19.4% vs 12.6% of men with any fracture within 5 years of starting androgen deprivation
    assert risk["castration_resistant", "none"] == pytest.approx(0.126, abs=0.03)
    # men who start it at entry (castration-sensitive disease): model 20.2% vs 13.5% (20.7% vs 12.3% before the
    # lesion-threshold layout change and the refit with the breast-cancer subtypes)
    assert risk["castration_sensitive", "adt"] == pytest.approx(0.202, abs=0.005)
    # castration-resistant men have been castrated for years: the fast loss of the first year (the remodelling
    # space opening, 0.6 x 0.06 = 3.6% of density) happened before entry, so fewer fractures after it (17.0%;
    # 17.6% before)
    assert risk["castration_resistant", "adt"] == pytest.approx(0.170, abs=0.005)
    assert risk["castration_resistant", "none"] + 0.025 < risk["castration_resistant", "adt"]
    # ADT adds no kill to resistant disease; its higher systemic resorption (1.6) raises seeding through the
    # niche by 1.6**0.18 = 1.09 (docs/model.md), so new lesions are a little more common, never fewer
    new = {key: int((events["type"] == "new_lesion").sum()) for key, (_, events, _) in runs.items()}
    none, adt = new["castration_resistant", "none"], new["castration_resistant", "adt"]
    assert none < adt < 1.15 * none


def test_castration_resistant_men_enter_at_the_turnover_of_their_androgen_deprivation():
    """The skeleton of a castration-resistant man on androgen deprivation starts at its steady turnover (density 1);
    a castration-sensitive man starts it at entry, from healthy bone."""
    params = Parameters()
    f = 1.0 + params.androgen_deprivation_rankl_rise
    base = reference_cohort(4, "prostate", seed=1)
    factors = {}
    for stage in ("castration_resistant", "castration_sensitive"):
        cb = replace(base, prostate_stage=stage, systemic_therapy={"prostate": ("androgen_deprivation",)})
        factors[stage] = systemic.background(cb, arm(None), params).entry_rankl_factor
    np.testing.assert_array_equal(factors["castration_resistant"], f)
    np.testing.assert_array_equal(factors["castration_sensitive"], 1.0)
    # steady state of skeleton.advance at X = 1.6: w = X^2, u = X, S = s_0 X; density Z - S + s_0 = 1
    s0 = params.remodelling_space
    w, z, space, damage = np.array([f * f]), np.array([1.0 + s0 * (f - 1.0)]), np.array([s0 * f]), np.zeros(1)
    resorption, density, _, _ = skeleton.advance(w, z, space, damage, np.ones(1), np.array([f]), 7.0, params)
    np.testing.assert_allclose((w, space, resorption), ([f * f], [s0 * f], [f]), rtol=1e-12)
    assert skeleton.bone_density(np.array([1.0 + s0 * (f - 1.0)]), np.array([s0 * f]), params)[0] == pytest.approx(1.0)
    # the volume alone still relaxes towards X**(g_OB - g_OC) (years): 1.5% of density lost in the first year
    assert 0.99 < density[0] < 1.0


def test_a_version_one_block_meets_the_same_events_as_before_the_stage_existed():
    """Castration-resistant disease (version 2, no therapy that moves RANKL) leaves every version-1 event in place."""
    cb = reference_cohort(400, "prostate", seed=9)
    v1 = simulate(cb, arm(drug="zoledronic_acid", dose_mg=4.0, every_weeks=4.0), 3 * 365.25, Streams(2))[1]
    v2 = simulate(
        replace(cb, prostate_stage="castration_resistant", systemic_therapy={"prostate": ("targeted",)}),
        arm(drug="zoledronic_acid", dose_mg=4.0, every_weeks=4.0),
        3 * 365.25,
        Streams(2),
    )[1]
    # version 2 adds the background marrow toxicity of advanced disease; the fractures outside the metastases
    # exist in both (version 2 keeps its thresholds from the `systemic` stream, version 1 draws from `skeleton`)
    added = ["osteoporotic_fracture", "neutropenia", "thrombocytopenia"]
    keep = ~np.isin(v2["type"], added)
    assert (v1["type"] == "osteoporotic_fracture").sum() > 0 and (v2["type"] == "osteoporotic_fracture").sum() > 0
    assert (v2["type"] == "thrombocytopenia").sum() > 0
    assert not np.isin(v1["type"], ["castration_resistance", "neutropenia", "thrombocytopenia"]).any()
    v1 = {k: v[v1["type"] != "osteoporotic_fracture"] for k, v in v1.items()}
    for k in v1:
        np.testing.assert_array_equal(v1[k], v2[k][keep])


def test_the_example_protocol_uses_the_contract_fields():
    data = tomllib.loads(EXAMPLE.read_text())
    assert data["cohort"]["prostate_stage"] == "castration_sensitive"
    assert set(data["cohort"]["systemic_therapy"]) <= set(SYSTEMIC_THERAPIES)


def test_disease_control_lines_follow_their_medians_and_the_switch_gap():
    """Each line controls for its median (draw ln 2) times 0.6 per earlier line; the next starts 56 days later."""
    params = Parameters({"control_line_ratio": 0.6, "control_switch_days": 56.0, "control_bone_only_ratio": 2.5})
    draws = np.full((2, systemic.CONTROL_LINES), np.log(2.0))
    start, end = systemic.control_schedule(np.array([100.0, 100.0]), np.array([True, False]), draws, params)
    # visceral: 100, 60, 36, 21.6 days of control; bone-only: 2.5x as long (250, 150, 90, 54)
    np.testing.assert_allclose(start[:, 0], [0.0, 156.0, 272.0, 364.0])
    np.testing.assert_allclose(end[:, 0], [100.0, 216.0, 308.0, 385.6])
    np.testing.assert_allclose(end[:, 1], [250.0, 456.0, 602.0, 712.0])
    # step 90..160: visceral controlled 90..100 and 156..160 (14 of 70 days); bone-only throughout
    np.testing.assert_allclose(systemic.controlled_share(start, end, 90.0, 160.0), [0.2, 1.0])
    assert PURPOSES["disease_control"] == 15  # appended: earlier purposes keep their numbers


def test_endocrine_therapy_and_chemotherapy_control_disease_outside_prostate_cancer_only():
    params = Parameters()
    for primary, therapy, days in (
        ("breast", "endocrine", params.endocrine_control_days),
        ("breast", "aromatase_inhibitor", params.endocrine_control_days),
        ("lung", "chemotherapy", params.chemotherapy_control_days),
        ("lung", "targeted", 0.0),
        ("prostate", "chemotherapy", 0.0),  # prostate cancer: the docetaxel course kill instead
    ):
        cb = replace(reference_cohort(3, primary), systemic_therapy={primary: (therapy,)})
        np.testing.assert_allclose(systemic.background(cb, arm(), params).control_days, days)
    both = replace(reference_cohort(3, "breast"), systemic_therapy={"breast": ("endocrine", "chemotherapy")})
    longer = max(params.endocrine_control_days, params.chemotherapy_control_days)
    np.testing.assert_allclose(systemic.background(both, arm(), params).control_days, longer)


def test_usual_care_control_gives_breast_cancer_its_long_survivors_and_a_lower_sre_rate():
    """Endocrine therapy (the breast usual care) against none, same patients: more alive at 5 years, SREs slower."""
    cb = reference_cohort(1500, "breast", seed=3)
    runs = {
        name: simulate(replace(cb, systemic_therapy={"breast": therapy}), arm(), 5 * 365.25, Streams(4))
        for name, therapy in (("none", ()), ("endocrine", ("endocrine",)))
    }
    alive = {name: 1.0 - patients["died"].mean() for name, (patients, _, _) in runs.items()}
    rate = {
        name: np.isin(events["type"], SRE_TYPES).sum() / (patients["followup_days"].sum() / 365.25)
        for name, (patients, events, _) in runs.items()
    }
    months = {name: np.median(patients["followup_days"]) / MONTH for name, (patients, _, _) in runs.items()}
    # measured 2.6% against 8.7% alive, median follow-up 8.9 against 15.4 months, 2.74 against 2.59 SREs per
    # patient-year: without control the burden term leaves almost nobody at 5 years (the old model's shape); under
    # control the bone-only patients' long lines keep several times as many, and their slowed lesions break less
    # often per year lived
    assert alive["none"] < 0.04 and alive["endocrine"] > 0.06, alive
    assert months["endocrine"] > 1.5 * months["none"], months
    assert rate["endocrine"] < 0.97 * rate["none"], rate


def test_each_therapy_controls_the_breast_subtypes_that_carry_its_target():
    """Endocrine therapy controls hormone-receptor-positive disease, anti-HER2 therapy HER2-positive disease,
    chemotherapy every subtype; the longest-controlling therapy listed sets the first line's median."""
    params = Parameters()
    endocrine, her2, chemo = (
        params.endocrine_control_days,
        params.her2_targeted_control_days,
        params.chemotherapy_control_days,
    )
    cb = replace(reference_cohort(3, "breast"), breast_subtype=np.array([0, 1, 2], np.int8))
    for therapy, days in (
        (("endocrine",), [endocrine, 0.0, 0.0]),
        (("aromatase_inhibitor",), [endocrine, 0.0, 0.0]),
        (("targeted",), [0.0, her2, 0.0]),
        (("chemotherapy",), [chemo, chemo, chemo]),
        (("endocrine", "targeted", "chemotherapy"), [endocrine, her2, chemo]),  # the breast usual care
    ):
        background = systemic.background(replace(cb, systemic_therapy={"breast": therapy}), arm(), params)
        np.testing.assert_allclose(background.control_days, days, err_msg=str(therapy))
    # a block without subtypes: every breast patient hormone-receptor positive
    plain = replace(reference_cohort(2, "breast"), systemic_therapy={"breast": ("endocrine",)})
    np.testing.assert_allclose(systemic.background(plain, arm(), params).control_days, endocrine)
    # anti-HER2 therapy controls no other primary
    lung = replace(reference_cohort(2, "lung"), systemic_therapy={"lung": ("targeted",)})
    assert not systemic.background(lung, arm(), params).control_days.any()


def test_subtype_growth_factors_and_the_stream_purpose():
    params = Parameters()
    factor = systemic.subtype_growth(np.array([0, 1, 2, -1], np.int8), params)
    np.testing.assert_allclose(
        factor, [1.0, params.her2_positive_growth_factor, params.triple_negative_growth_factor, 1.0]
    )
    assert systemic.subtype_growth(None, params) == 1.0
    assert PURPOSES["subtype"] == 16  # appended: earlier purposes keep their numbers


def test_triple_negative_breast_cancer_dies_sooner_and_breaks_bone_sooner_than_hormone_receptor_positive():
    """The same patients as each subtype under the breast usual care (the documented ``breast_subtypes`` scenario):
    triple-negative disease grows faster and only chemotherapy controls it, so both endpoints move the same way."""
    out = breast_subtypes()
    # measured: median survival 18.3 months (hormone-receptor positive), 12.5 (HER2 positive), 9.3 (triple
    # negative); median time to a first SRE 4.3, 3.7 and 3.2 months (the reference cohort's heavy disease)
    assert out["os_triple_negative"] < out["os_her2_positive"] < out["os_hr_positive"]
    assert out["os_triple_negative"] < 0.6 * out["os_hr_positive"], out
    assert out["sre_triple_negative"] < out["sre_her2_positive"] < out["sre_hr_positive"]
    assert out["sre_triple_negative"] < 0.85 * out["sre_hr_positive"], out
