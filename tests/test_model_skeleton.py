"""The skeleton outside the lesions: density, microdamage (atypical fractures), the rebound after denosumab, the niche."""

import importlib

import numpy as np
import pytest

from vtrial.measurements import aff_per_10k, aff_risk_5_years, osteoporotic_fractures_from, skeleton_path
from vtrial.model import skeleton
from vtrial.model.lesion import established_state, lesion_traits
from vtrial.model.parameters import REGISTRY, Parameters
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.streams import Streams

#: the module (``vtrial.model.simulate`` is also the name of its function in the package)
simulate_module = importlib.import_module("vtrial.model.simulate")
PARAMS = Parameters()
YEAR = 365.25


def arm(drug="none", dose_mg=None, stop_after_months=None):
    return reference_arm(
        drug, dose_mg=dose_mg, every_weeks=4.0 if dose_mg else None, stop_after_months=stop_after_months
    )


def test_density_and_microdamage_reach_their_hand_calculated_steady_states():
    # steady state v = u = X: bone volume Z = X**(g_OB - g_OC) = 1.6**(0.0793 - 0.31) = 0.8972 (androgen
    # deprivation's RANKL rise) and 0.3**-0.2307 = 1.3202 (an antiresorptive); remodelling space S = 0.06 X, so the
    # density Z - S + 0.06 is 0.8972 - 0.036 = 0.8612 and 1.3202 + 0.042 = 1.3622; microdamage
    # D = s / (r (1 - s)) with s = 1 - X/0.6: 0 at X = 1.6 and 0.5 / (0.002 * 0.5) = 500 days at X = 0.3
    for x, volume, density, damage in (
        (1.6, 0.897241845548601, 0.861241845548601, 0.0),
        (0.3, 1.3201647322330237, 1.3621647322330237, 500.0),
    ):
        w, z, space, d = np.ones(1), np.ones(1), np.full(1, 0.06), np.zeros(1)
        for _ in range(2000):  # 2000 years in yearly steps (Z relaxes at 2e-4 X a day): exact for a constant input
            r, _, _, _ = skeleton.advance(w, z, space, d, np.array([x * x]), np.ones(1), YEAR, PARAMS)
        assert r[0] == pytest.approx(x, rel=1e-9)
        assert z[0] == pytest.approx(volume, rel=1e-6)
        assert skeleton.bone_density(z, space, PARAMS)[0] == pytest.approx(density, rel=1e-6)
        assert d[0] == pytest.approx(damage, abs=1e-6)


def test_an_antiresorptive_lowers_new_lesions_through_the_niche_without_a_seeding_term():
    assert "seeding_suppression" not in REGISTRY
    cb = reference_cohort(2000, "breast", seed=1)
    new = {
        name: int((simulate_module.simulate(cb, a, 2 * YEAR, Streams(3))[1]["type"] == "new_lesion").sum())
        for name, a in (
            ("placebo", arm()),
            ("zoledronic_acid", arm("zoledronic_acid", 4.0)),
            ("denosumab", arm("denosumab", 120.0)),
        )
    }
    # placebo 851, zoledronic acid 744 (-13%), denosumab 644 (-24%): seeding follows systemic resorption
    # (x resorption**0.18), which each drug lowers, and fewer lesions seed fewer (re-pinned after the refit that
    # followed disease control: 1004, 866 (-14%), 726 (-28%) before it; re-pinned: the precursor reserve's
    # maximum 1.0 -> 1.3 raises resorption on denosumab a little, 717 before; before the refit: 1077, 890, 773)
    # re-pinned after the lesion-threshold layout change (docs/model.md): 887, 786 (-11%), 675 (-24%); before it
    # 851, 744, 644 (the values above); re-pinned after the refit with the breast-cancer subtypes (slower
    # hormone-receptor-positive growth, a higher death hazard): 749, 658 (-12%), 560 (-25%); before it 887, 786, 675
    # re-pinned when the step went from one week to two: 755, 659 (-13%), 559 (-26%); weekly 749, 658, 560; and when
    # the rest of a lesion event's step came to be counted at the next step's rate: zoledronic acid 659 -> 658; and
    # when RANKL came to offset the bisphosphonate's loss in the lesions, with the drugs refitted (zoledronic acid
    # deeper in the skeleton outside the lesions, denosumab's Imax 0.937 -> 0.9): 755, 613 (-19%), 604 (-20%)
    assert new == {"placebo": 755, "zoledronic_acid": 613, "denosumab": 604}


def test_five_years_of_zoledronic_acid_give_atypical_fractures_of_the_published_order_and_fewer_after_stopping():
    on = skeleton_path(arm("zoledronic_acid", 4.0), 10)
    off = skeleton_path(arm("zoledronic_acid", 4.0, stop_after_months=60), 11)
    # per 10,000 patient-years: 4.8 in years 1-2 rising to 14.9 in year 5 (osteoporosis: ~1-2 rising to ~10-13
    # after 5-8 years, Black 2010; Dell 2012); 0.47% over 5 years (oncology: 0.1-1% over 2-5 years)
    # (re-pinned after the refit that followed the RANKL offset of bisphosphonate loss, E_max 2.96 -> 4.5 and EC50
    # 2 -> 1 mg: deeper suppression of uninvolved bone; before it: 3.7, 10.4, 0.34%, 10.9/11.7, 3.9/12.7; re-pinned after the refit that followed disease control, zoledronic acid E_max 2.67 -> 2.96; before it: 3.4,
    # 9.4, 0.31%, 9.7/10.5, 3.3/11.2; re-pinned after the refit before, E_max 3.24 -> 2.67; before that: 3.9, 11.4,
    # 0.37%, 12.1/12.8, 5.2/14.0)
    assert aff_per_10k(on, 0, 2) == pytest.approx(4.8, abs=0.1)
    assert aff_per_10k(on, 4, 5) == pytest.approx(14.9, abs=0.1)
    assert aff_risk_5_years(on) == pytest.approx(0.0047, abs=0.0001)
    # after stopping: 17.1 vs 17.3 in the 2 years after (the bone pool of 60 infusions keeps resorption at
    # ~0.18-0.29 of healthy), then 10.4 vs 19.5 in the next 2 as remodelling returns and repairs the damage
    assert aff_per_10k(off, 5, 7) == pytest.approx(17.1, abs=0.1)
    assert aff_per_10k(on, 5, 7) == pytest.approx(17.3, abs=0.1)
    assert aff_per_10k(off, 7, 9) == pytest.approx(10.4, abs=0.1)
    assert aff_per_10k(on, 7, 9) == pytest.approx(19.5, abs=0.1)
    # once turnover is back (resorption 0.98-1.0 in years 9-10; 0.75 in year 8), the damage and the hazard fall by
    # 70% a year (Schilcher 2011: -70% per year since last use): the repair runs at r / theta = 0.002 / 0.6 =
    # 3.3e-3/day at full turnover, exp(-3.3e-3 * 365) = 0.30 (0.48 before: the repair stopped growing at the threshold)
    year9, year10 = (np.searchsorted(off[:, 0], y * YEAR) - 1 for y in (9, 10))
    assert off[year9, 2] > 0.97
    assert off[year10, 4] / off[year9, 4] == pytest.approx(0.30, abs=0.01)


def test_stopping_denosumab_loses_density_fast_and_raises_osteoporotic_and_multiple_fractures():
    rows = {
        name: skeleton_path(a, 5)
        for name, a in (
            ("placebo", arm()),
            ("continued", arm("denosumab", 120.0)),
            ("stopped", arm("denosumab", 120.0, stop_after_months=36)),
        )
    }
    hazard, share = ({name: osteoporotic_fractures_from(r, 3)[k] for name, r in rows.items()} for k in (0, 1))

    def at(name, years, column):
        return rows[name][np.searchsorted(rows[name][:, 0], years * YEAR) - 1, column]

    # the precursor reserve overshoots: resorption of uninvolved bone peaks at 1.49 (CTX +50-100%, Bone 2011;
    # 1.53 with denosumab_imax 0.937)
    assert rows["stopped"][:, 2].max() == pytest.approx(1.49, abs=0.01)
    # density gained in 3 years (+6.6%; FREEDOM lumbar +9.2%, hip +6.0%) is lost within ~12 months once
    # resorption returns: 1.067 at 3.5 years, 1.006 at 4.5 (the remodelling space reopens, the volume follows
    # at the raised turnover); continued: 1.075 (1.068, 1.003, 1.076 with Imax 0.937; before the reserve:
    # 1.22 at 3 years, still 1.16 two years after stopping)
    assert at("stopped", 3.5, 3) == pytest.approx(1.067, abs=0.001)
    assert at("stopped", 4.5, 3) == pytest.approx(1.006, abs=0.001)
    assert at("continued", 4.5, 3) == pytest.approx(1.075, abs=0.001)
    # per 100 patient-years over the 2 years after month 36: placebo 7.4e-5/day x 365.25 x 100 = 2.703 (density 1,
    # remodelling space healthy), continued 1.11 (-59%: FREEDOM -68%, density alone -35%), stopped 2.05 (76% of
    # placebo), FREEDOM and its extension: 7.1 vertebral fractures per 100 patient-years after stopping vs 8.5 on
    # placebo, 84% (Cummings 2018) (0.975 and 2.035 with Imax 0.937; before the reserve: 0.57, 0.82, 2.69)
    assert hazard == pytest.approx({"placebo": 2.703, "continued": 1.112, "stopped": 2.049}, abs=0.001)
    # a fracture involves several vertebrae in 51% after stopping vs 38.7% (Cummings 2018: 60.7% vs 38.7%; 52% with
    # Imax 0.937, 56% before)
    assert share == pytest.approx({"placebo": 0.387, "continued": 0.387, "stopped": 0.514}, abs=0.001)
    # FREEDOM counted the off-treatment period from 7 months after the last dose (here month 35 + 7 = 3.5 years):
    # 2.35 per 100 patient-years (87% of placebo), several vertebrae in 53%
    assert osteoporotic_fractures_from(rows["stopped"], 3.5) == pytest.approx((2.347, 0.534), abs=0.001)


def test_vertebrae_follow_the_geometric_law():
    uniform = np.random.default_rng(0).random(100_000)
    n = skeleton.vertebrae(np.zeros(uniform.size), uniform, PARAMS)
    # P(n >= 2) = 0.387, P(n >= 3) = 0.387**2 = 0.150 at stable density; at most MAX_VERTEBRAE
    assert (n >= 2).mean() == pytest.approx(0.387, abs=0.005)
    assert (n >= 3).mean() == pytest.approx(0.150, abs=0.005)
    assert n.max() == skeleton.MAX_VERTEBRAE


def test_a_new_lesion_on_a_drug_starts_with_suppressed_turnover(monkeypatch):
    seeded = []
    original = simulate_module._new_lesions

    def spy(*args, **kwargs):
        rows = original(*args, **kwargs)
        if len(args) > 9 or "inputs" in kwargs:
            seeded.append(rows)
        return rows

    monkeypatch.setattr(simulate_module, "_new_lesions", spy)
    cb = reference_cohort(200, "breast", seed=1)
    w = {}
    for name, a in (("placebo", arm()), ("denosumab", arm("denosumab", 120.0))):
        seeded.clear()
        simulate_module.simulate(cb, a, YEAR, Streams(3))
        w[name] = np.concatenate([rows["w"] for rows in seeded])
    # osteoblasts (w = v**2) of the new lesions follow their osteoclast recruitment: X**2 ~ 0.1**2 on denosumab
    assert np.median(w["denosumab"]) < 0.05 * np.median(w["placebo"])
    traits = lesion_traits(np.array([0.2]), 1.0, 1.0, 0.001, PARAMS)
    treated = established_state(np.array([0.02]), traits, PARAMS, recruitment_sq=np.array([0.01]))
    lighter = established_state(np.array([0.02]), traits, PARAMS, recruitment_sq=np.array([0.04]))
    untreated = established_state(np.array([0.02]), traits, PARAMS)
    # suppressed resorption (u Z < 1) induces no extra PTHrP (M = 1), untreated lytic bone does
    assert treated.m[0] == lighter.m[0] == 1.0 < untreated.m[0]
    assert treated.w[0] < 0.01 * untreated.w[0]
    # with M = 1 on both, w scales with X**2: 0.01 / 0.04; bone Z = v**(7/8) / X scales as X**(-1/8): 0.5**-0.125
    assert treated.w[0] == pytest.approx(0.25 * lighter.w[0], rel=1e-6)
    assert treated.z[0] == pytest.approx(lighter.z[0] * 0.5**-0.125, rel=1e-5)
