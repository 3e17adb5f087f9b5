"""The skeleton outside the lesions: density, microdamage (atypical fractures), the rebound after denosumab, the niche."""

import importlib
from types import SimpleNamespace

import numpy as np
import pytest

from vtrial.model import skeleton
from vtrial.model.drugs import Exposure
from vtrial.model.lesion import established_state, lesion_traits
from vtrial.model.parameters import REGISTRY, Parameters
from vtrial.model.reference import reference_cohort
from vtrial.streams import Streams

#: the module (``vtrial.model.simulate`` is also the name of its function in the package)
simulate_module = importlib.import_module("vtrial.model.simulate")
PARAMS = Parameters()
YEAR = 365.25


def arm(drug="none", dose_mg=None, stop_after_months=None):
    return SimpleNamespace(
        name=drug,
        drug=drug,
        dose_mg=dose_mg,
        every_weeks=4.0 if dose_mg else None,
        calcium_vitamin_d=True,
        stop_after_months=stop_after_months,
        renal_adjustment=True,
        mechanism=None,
    )


def path(a, years):
    """Weekly path of one patient's compartment (CrCl 80) under arm ``a``: start day, days, resorption, Z, D, loss."""
    exposure = Exposure.of_arm(a, np.array([80.0]), int(years * YEAR), PARAMS)
    grid = exposure.step_grid(7)
    w, z, damage, rows = np.ones(1), np.ones(1), np.zeros(1), []
    for start, end in zip(grid[:-1].tolist(), grid[1:].tolist()):
        inputs = exposure.inputs(start, end, np.arange(1))
        before = z.copy()
        r, density, d = skeleton.advance(w, z, damage, inputs.recruitment_sq, np.ones(1), float(end - start), PARAMS)
        rows.append(
            (start, end - start, r[0], density[0], d[0], skeleton.loss_per_year(before, z, float(end - start))[0])
        )
    return np.array(rows)


def rate_per_10k(rows, hazard, first_year, last_year):
    """Mean hazard over the years ``[first_year, last_year)`` per 10,000 patient-years."""
    inside = (rows[:, 0] >= first_year * YEAR) & (rows[:, 0] < last_year * YEAR)
    return float((hazard[inside] * rows[inside, 1]).sum() / rows[inside, 1].sum() * YEAR * 1e4)


def test_density_and_microdamage_reach_their_hand_calculated_steady_states():
    # steady state v = u = X: Z = X**(g_OB - g_OC) = 1.6**(0.0793 - 0.31) = 0.8972 (androgen deprivation's RANKL rise)
    # and 0.3**-0.2307 = 1.3202 (an antiresorptive); microdamage D = s / (r (1 - s)) with s = 1 - X/0.6:
    # 0 at X = 1.6 and 0.5 / (0.002 * 0.5) = 500 days at X = 0.3
    for x, density, damage in ((1.6, 0.897241845548601, 0.0), (0.3, 1.3201647322330237, 500.0)):
        w, z, d = np.ones(1), np.ones(1), np.zeros(1)
        for _ in range(200):  # 200 years in yearly steps: every state is exact for a constant input
            r, _, _ = skeleton.advance(w, z, d, np.array([x * x]), np.ones(1), YEAR, PARAMS)
        assert r[0] == pytest.approx(x, rel=1e-9)
        assert z[0] == pytest.approx(density, rel=1e-6)
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
    # placebo 891, zoledronic acid 770 (-14%), denosumab 641 (-28%): seeding follows systemic resorption
    # (x resorption**0.18), which each drug lowers, and fewer lesions seed fewer (re-pinned after the refit:
    # zoledronic acid E_max 3.24 -> 2.67; before: 1077, 890, 773; and with the death terms re-tuned for disease
    # control, issue 13 item 7, fewer patient-years: before 1004, 866, 717)
    assert new == {"placebo": 891, "zoledronic_acid": 770, "denosumab": 641}


def test_five_years_of_zoledronic_acid_give_atypical_fractures_of_the_published_order_and_fewer_after_stopping():
    on = path(arm("zoledronic_acid", 4.0), 10)
    off = path(arm("zoledronic_acid", 4.0, stop_after_months=60), 10)
    h_on, h_off = (PARAMS.atypical_fracture_hazard * rows[:, 4] for rows in (on, off))
    # per 10,000 patient-years: 3.4 in years 1-2 rising to 9.4 in year 5 (osteoporosis: ~1-2 rising to ~10-13
    # after 5-8 years, Black 2010; Dell 2012); 0.31% over 5 years (oncology: 0.1-1% over 2-5 years)
    # (re-pinned after the refit, zoledronic acid E_max 3.24 -> 2.67; before: 3.9, 11.4, 0.37%, 12.1/12.8, 5.2/14.0)
    assert rate_per_10k(on, h_on, 0, 2) == pytest.approx(3.4, abs=0.1)
    assert rate_per_10k(on, h_on, 4, 5) == pytest.approx(9.4, abs=0.1)
    assert -np.expm1(-(h_on * on[:, 1])[on[:, 0] < 5 * YEAR].sum()) == pytest.approx(0.0031, abs=0.0001)
    # after stopping: 9.7 vs 10.5 in the 2 years after (the bone pool keeps resorption at ~0.25-0.5 of
    # healthy), then 4.0 vs 11.2 in the next 2 as remodelling returns and repairs the damage
    assert rate_per_10k(off, h_off, 5, 7) == pytest.approx(9.7, abs=0.1)
    assert rate_per_10k(on, h_on, 5, 7) == pytest.approx(10.5, abs=0.1)
    assert rate_per_10k(off, h_off, 7, 9) == pytest.approx(4.0, abs=0.1)
    assert rate_per_10k(on, h_on, 7, 9) == pytest.approx(11.2, abs=0.1)


def test_stopping_denosumab_loses_density_fast_and_raises_osteoporotic_and_multiple_fractures():
    share = {}
    hazard = {}
    for name, a in (
        ("placebo", arm()),
        ("continued", arm("denosumab", 120.0)),
        ("stopped", arm("denosumab", 120.0, stop_after_months=36)),
    ):
        rows = path(a, 5)
        after = rows[:, 0] >= 3 * YEAR
        h = skeleton.fracture_hazard(rows[after, 3], PARAMS) * rows[after, 1]
        odds = (
            PARAMS.multiple_fracture_share
            / (1 - PARAMS.multiple_fracture_share)
            * np.exp(PARAMS.multiple_fracture_loss_gain * np.maximum(rows[after, 5], 0.0))
        )
        hazard[name] = h.sum() / 2 * 100  # per 100 patient-years over the 2 years after month 36
        share[name] = float((h * odds / (1 + odds)).sum() / h.sum())
    # continued 0.57, stopped 0.82 (+44%), placebo 2.69 per 100 patient-years: the rebound loses density at
    # up to ~6%/year, but density gained over 3 years (1.22) is not yet back at 1 after 2 years (1.16)
    assert hazard == pytest.approx({"placebo": 2.69, "continued": 0.57, "stopped": 0.82}, abs=0.01)
    # a fracture involves several vertebrae in 56% after stopping vs 38.7% (Cummings 2018: 60.7% vs 38.7%)
    assert share == pytest.approx({"placebo": 0.387, "continued": 0.387, "stopped": 0.564}, abs=0.001)


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
