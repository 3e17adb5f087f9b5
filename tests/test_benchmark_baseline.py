"""The solve_ivp baseline of benchmark c integrates the model's equations (benchmarks/ivp.py)."""

import importlib
from dataclasses import replace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from benchmarks import _label_arm, usual_care_cohort
from benchmarks.ivp import CohortDraws, reserve_rate, skeleton_rates, solve_ivp_patient
from vtrial.model import events as ev
from vtrial.model import skeleton
from vtrial.model.drugs import precursor_reserve
from vtrial.model.parameters import Parameters
from vtrial.streams import Streams

model = importlib.import_module("vtrial.model.simulate")
PARAMS = Parameters()


@pytest.mark.parametrize(
    "start, x2",
    [
        ([0.3, 0.95, 0.03, 40.0], 2.25),  # the rebound after denosumab: raised recruitment, suppressed osteoblasts
        ([1.0, 1.0, 0.06, 0.0], 0.01),  # healthy bone (S = s_0 = 0.06) under deep suppression (denosumab: X**2 ~ 0.01)
    ],
)
def test_skeleton_rates_are_the_derivative_of_the_model_step(start, x2):
    # one day from a skeleton off balance, by the model's step (w exact, Z, S, D with u at mid-step) and by
    # Radau on the derivatives: the changes of every state agree to 0.5% (0.3%, 0.2%, 0.2% for Z, S, D in the
    # rebound, 0.002% under suppression; at 7 days 6%: the model's step error); a wrong term would be tens of percent
    start = np.array(start)
    assert PARAMS.remodelling_space == 0.06
    model_state = [start[k : k + 1].copy() for k in range(4)]
    skeleton.advance(*model_state, np.array([x2]), np.ones(1), 1.0, PARAMS)

    def rhs(t, s):
        return skeleton_rates(*s, x2, PARAMS)[:4]

    ivp = solve_ivp(rhs, (0.0, 1.0), start, method="Radau", rtol=1e-12, atol=1e-14).y[:, -1]
    assert np.abs(ivp - start).min() > 5e-6  # every state moves
    np.testing.assert_allclose(np.concatenate(model_state) - start, ivp - start, rtol=5e-3)


def test_reserve_rate_is_the_derivative_of_the_model_daily_reserve():
    # 60 days of RANKL blockade (I = 0.9), then 60 days without: the reserve fills, then empties into recruitment
    inhibition = np.r_[np.full(60, 0.9), np.zeros(60)]
    daily = precursor_reserve(inhibition, PARAMS)
    q, ivp = 0.0, []
    for day in range(inhibition.size):
        q = solve_ivp(
            lambda t, s, i=inhibition[day]: [reserve_rate(s[0], i, PARAMS)],
            (0.0, 1.0),
            [q],
            rtol=1e-10,
            atol=1e-12,
        ).y[0, -1]
        ivp.append(q)
    # closed forms: under constant I, Q relaxes to a I / k at the rate k = a I / Qmax + r (1 - I); after it, Q e^{-r t}
    a, r, qmax = PARAMS.precursor_accumulation_rate, PARAMS.precursor_release_rate, PARAMS.precursor_reserve_max
    k = a * 0.9 / qmax + r * 0.1
    filled = a * 0.9 / k * -np.expm1(-60 * k)
    assert filled > 0.2  # 0.26 with the registry's rates
    np.testing.assert_allclose([daily[59], daily[-1]], [filled, filled * np.exp(-60 * r)], rtol=1e-12)
    np.testing.assert_allclose(ivp, daily, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("onj", [False, True])
def test_baseline_and_simulate_agree_on_the_states(monkeypatch, onj):
    # two breast patients (3 and 4 lesions) on denosumab with the usual care (endocrine: both have lines of disease
    # control in the year) for 52 weeks; every lesion and patient threshold infinite (no event can change a state;
    # osteoporotic fractures, marrow toxicity and hypocalcaemia change none), except, with ``onj``, a first ONJ
    # threshold of 1e-9: both stop denosumab after the dose of day 0 (the label rule), and the skeleton rebounds.
    # simulate's states are read at its week-52 marker visit (start of day 364, a step boundary, before that day's dose)
    cohort = usual_care_cohort(2, "breast", seed=3)
    arm = _label_arm("denosumab")
    days = 364
    drawn = ev.draw_thresholds(Streams(1), cohort.patient_id)
    patient = np.full_like(drawn.patient, np.inf)
    if onj:
        patient[:, ev.PATIENT_EVENTS.index("osteonecrosis_of_the_jaw"), 0] = 1e-9
    never = replace(drawn, lesion=np.full_like(drawn.lesion, np.inf), patient=patient)  # 3 and 4 lesions: drawn slots
    monkeypatch.setattr(ev, "draw_thresholds", lambda streams, ids: never)
    seen = {}
    truth = model._marker_truth

    def record(p, lesions, *args):
        seen.update(
            owner=lesions.owner.copy(),
            y=lesions.y.astype(float),
            z=lesions.z.astype(float),
            skeleton=np.stack([p.skeleton_w, p.skeleton_z, p.skeleton_s, p.microdamage, p.cum_suppression]),
        )
        return truth(p, lesions, *args)

    monkeypatch.setattr(model, "_marker_truth", record)
    events = model.simulate(cohort, arm, days + 1.0, Streams(1), marker_weeks=(52,))[1]
    assert list(events["type"]).count("osteonecrosis_of_the_jaw") == (2 if onj else 0)
    draws = replace(CohortDraws.of(cohort, arm, Streams(1), days, PARAMS), thresholds=never)
    for i in range(2):
        out = solve_ivp_patient(cohort, i, arm, days, draws, PARAMS)
        assert out.n_events == int(onj) and out.followup_days == days
        mine = seen["owner"] == i
        # measured (relative, the model's two-week step error): without ONJ Z 1.6e-3, T 3e-6, density 1e-6, w_S 6e-4,
        # D 3e-5, E 2e-6; with ONJ (rebound: w_S 1.3-1.7, Q 0.39 at a year) Z 2.1e-3, T 3e-4, density 2e-4, w_S 6.2e-3,
        # D 3.2e-3, E 2e-4 (weekly steps: Z 5e-4, w_S 3e-3). Bound 1% (benchmark d's)
        np.testing.assert_allclose(out.lesions[2], seen["z"][mine], rtol=1e-2)  # bone Z
        np.testing.assert_allclose(np.exp(out.lesions[1]), np.exp(seen["y"][mine]), rtol=1e-2)  # burden T
        w, z, space, damage, exposed = seen["skeleton"][:, i]
        density = skeleton.bone_density(z, space, PARAMS)
        assert abs(skeleton.bone_density(out.patient[1], out.patient[2], PARAMS) / density - 1.0) < 1e-2
        np.testing.assert_allclose(out.patient[[0, 3, 5]], [w, damage, exposed], rtol=1e-2)
