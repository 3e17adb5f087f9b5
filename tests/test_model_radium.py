"""Radium-223: tumour kill weighted by the lesion formation rate, survival and BSAP in CRPC, marrow toxicity, protocol."""

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vtrial.model import markers as mk
from vtrial.model import simulate
from vtrial.model.drugs import Exposure, arm_administrations
from vtrial.model.lesion import (
    STATE_DTYPE,
    advance,
    established_state,
    formation_rate,
    interface_share,
    lesion_traits,
    turnover,
)
from vtrial.model.parameters import Parameters
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.protocol import load_protocol
from vtrial.streams import Streams

PARAMS = Parameters()
PROTOCOL = Path(__file__).parent.parent / "protocols" / "radium-223-alsympca.toml"


def arm(drug, **kw):
    return reference_arm(drug, **{"systemic_therapy": ["androgen_deprivation"], **kw})


RADIUM = arm("radium_223", dose_kbq_per_kg=55.0, every_weeks=4.0, doses=6)
PLACEBO = arm("none")


@pytest.fixture(scope="module")
def crpc_trial():
    """1000 men with CRPC and no visceral metastases under each arm, 4 years, BSAP at week 16."""
    n = 1000
    cb = reference_cohort(n, "prostate", seed=3)
    cb = replace(cb, visceral_metastases=np.zeros(n, bool))
    return {
        name: simulate(cb, a, 4 * 365.25, Streams(5), marker_weeks=(0, 16))
        for name, a in (("placebo", PLACEBO), ("radium", RADIUM))
    }


def _median_os_months(patients):
    """Kaplan-Meier median of the follow-up (death the event), in months."""
    t, d = patients["followup_days"], patients["died"]
    order = np.argsort(t)
    at_risk = t.size - np.arange(t.size)
    survival = np.cumprod(1.0 - d[order] / at_risk)
    return t[order][np.argmax(survival <= 0.5)] / 30.4375


def _bsap_changes(markers):
    """Relative changes of BSAP from week 0 to week 16 (patients with both visits)."""
    pid, week, bsap = markers["patient_id"], markers["week"], markers["bsap_ug_l"]
    base = dict(zip(pid[week == 0], bsap[week == 0]))
    return np.array([b / base[p] - 1.0 for p, b in zip(pid[week == 16], bsap[week == 16])])


def _bsap_change(markers):
    """Median relative change of BSAP from week 0 to week 16."""
    return float(np.median(_bsap_changes(markers)))


def test_radium_prolongs_survival_and_lowers_bsap_in_crpc(crpc_trial):
    placebo, radium = crpc_trial["placebo"], crpc_trial["radium"]
    # measured: 13.1 vs 16.6 months (ALSYMPCA 11.3 vs 14.9; 17.1 on radium before the interface node); re-pinned
    # after the refit that followed disease control: 15.2 vs 19.6 before it; 11.8 vs 17.5 before disease control (issue 13 item 7)
    # re-tuned the death terms: this cohort has no visceral disease, whose weight rose 0.14 -> 0.7, so it lives
    # longer (the ALSYMPCA replica, RA-01 in docs/calibration.md, gives 11.0 months on placebo)
    assert _median_os_months(placebo[0]) == pytest.approx(13.1, abs=1.0)
    assert _median_os_months(radium[0]) - _median_os_months(placebo[0]) > 3.0
    # BSAP follows the lesions' formation rate, which falls as radium kills the tumour driving the
    # osteoblasts, most of all at the bone interface (lesion.interface_share), and BSAP reads the woven formation:
    # measured +9.8% vs -78.5% at week 16 after 4 of 6 injections (Nilsson 2007, 4 injections: +9.3% vs -65.6%);
    # +16.1% vs -47.5% while BSAP read each lesion's whole formation; +19.8% vs -23.4% before the interface node;
    # +7% vs -7% before formation carried it
    assert _bsap_change(placebo[2]) > 0.05
    assert _bsap_change(radium[2]) < -0.1
    assert _bsap_change(radium[2]) < _bsap_change(placebo[2]) - 0.25
    # share of patients whose BSAP fell: measured 100% vs 28% (88% vs 15% before the interface node; ALSYMPCA: 87%
    # of radium patients had a total-ALP fall)
    assert (_bsap_changes(radium[2]) < 0).mean() > 0.75
    assert (_bsap_changes(placebo[2]) < 0).mean() < 0.35
    # and fewer symptomatic skeletal events in the first year (341 vs 637 patients, ratio 0.54; 329 vs 637 before the
    # interface node)
    sse = {"pathological_fracture", "spinal_cord_compression", "radiation_to_bone", "surgery_to_bone"}
    first_year = [
        len({p for p, t, d in zip(e["patient_id"], e["type"], e["day"]) if t in sse and d < 365.25})
        for _, e, _ in (placebo, radium)
    ]
    assert first_year[1] < 0.8 * first_year[0]


def test_marrow_events_are_more_frequent_on_radium(crpc_trial):
    counts = {name: Counter(events["type"].tolist()) for name, (_, events, _) in crpc_trial.items()}
    # measured per 1000: neutropenia 12 vs 28, thrombocytopenia 27 vs 75 (ALSYMPCA 0.7% vs 2.2%, 2.0% vs 6.3%)
    assert counts["radium"]["neutropenia"] > 1.5 * counts["placebo"]["neutropenia"] > 0
    assert counts["radium"]["thrombocytopenia"] > 2 * counts["placebo"]["thrombocytopenia"] > 0
    assert counts["radium"]["thrombocytopenia"] > counts["radium"]["neutropenia"]


def test_radium_kills_more_in_blastic_than_in_lytic_lesions():
    phi = np.array([0.9, 0.1])
    traits = lesion_traits(phi, 1.0, 1.0, 0.002, PARAMS)
    exposure = Exposure(arm_administrations(RADIUM, 56), np.array([80.0, 80.0]), 56, PARAMS)
    inputs = exposure.inputs(0, 28, np.arange(2))
    assert inputs.formation_kill > 0.0 and inputs.marrow_dose_rate > 0.0
    final = {}
    for kill in (True, False):
        state = established_state(np.array([0.08, 0.08]), traits, PARAMS)
        uptake = formation_rate(state.w, state.y, traits, PARAMS)
        rate = (inputs.formation_kill * uptake).astype(STATE_DTYPE) if kill else 0.0
        advance(state, traits, np.ones(2, STATE_DTYPE), np.ones(2, STATE_DTYPE), 1.0, 1.0, rate, 28.0, PARAMS)
        final[kill] = state.y.astype(float)
    state = established_state(np.array([0.08, 0.08]), traits, PARAMS)
    uptake = formation_rate(state.w, state.y, traits, PARAMS)
    # woven bone formation driven by the tumour covering the bone surfaces: a blastic lesion takes up several-fold
    # what healthy bone does (bone scans of osteoblastic metastases), a lytic one little more; measured 5.118 vs
    # 1.608 at detection (ratio 3.2; 2.6 at T = 0.02, 3.5 at T = 0.3). With the lesion-wide signal H in place of
    # the covered share: 3.312 vs 1.439; before formation carried the drive: 1.22 vs 1.12
    assert uptake.tolist() == pytest.approx([5.118, 1.608], abs=1e-3)
    # BSAP reads the very same rate
    assert turnover(state, traits, np.ones(2, STATE_DTYPE), 1.0, PARAMS)[3].tolist() == uptake.tolist()
    log_kill = final[False] - final[True]
    assert log_kill[0] / log_kill[1] == pytest.approx(uptake[0] / uptake[1], rel=0.05)
    assert log_kill[0] > 2.0 * log_kill[1] > 0.0


def test_radium_is_dosed_by_activity_six_times_from_the_protocol():
    protocol = load_protocol(PROTOCOL)
    radium, placebo = protocol.arm
    assert (radium.drug, radium.dose_kbq_per_kg, radium.doses, radium.allocation) == ("radium_223", 55.0, 6, 2.0)
    [administration] = arm_administrations(radium, 400)
    assert administration.dose_mg == 55.0
    assert administration.days.tolist() == [0.0, 28.0, 56.0, 84.0, 112.0, 140.0]
    # twice the activity: twice the kill rate and marrow dose rate (linear in activity)
    double = arm_administrations(arm("radium_223", dose_kbq_per_kg=110.0, every_weeks=4.0, doses=6), 400)
    one, two = (
        Exposure(a, np.array([80.0]), 400, PARAMS).inputs(0, 200, np.array([0])) for a in ([administration], double)
    )
    assert two.formation_kill == pytest.approx(2 * one.formation_kill, rel=1e-12)
    assert two.marrow_dose_rate == pytest.approx(2 * one.marrow_dose_rate, rel=1e-12)
    cb = replace(reference_cohort(200, "prostate", seed=1), visceral_metastases=np.zeros(200, bool))
    deaths = [simulate(cb, a, 2 * 365.25, Streams(2))[0]["died"].sum() for a in (placebo, radium)]
    assert deaths[1] < deaths[0]


def test_interface_share_is_depleted_by_the_alpha_kill_and_repopulates():
    share = np.ones(2, STATE_DTYPE)
    mean = interface_share(share, np.array([0.01, 0.0], STATE_DTYPE), 7.0, PARAMS)
    # ds/dt = r (1 - s) - q k s with r = 0.017/day, q = 20, k = 0.01/day: rate r + q k = 0.217/day towards
    # r / 0.217 = 0.07834; after 7 days 0.07834 + 0.92166 exp(-1.519) = 0.28012, mean over the days
    # 0.07834 + 0.92166 (1 - exp(-1.519)) / 1.519 = 0.55226; no kill: stays 1
    assert share.tolist() == pytest.approx([0.28012, 1.0], abs=2e-5)
    assert mean.tolist() == pytest.approx([0.55226, 1.0], abs=2e-5)


def _bsap_course(radium: bool, weeks: int = 52) -> np.ndarray:
    """Weekly BSAP (ug/L, no noise) of two men with one lesion each, blastic and lytic, under Nilsson's 4 x 55 kBq/kg.

    The steps of :func:`vtrial.model.simulate.simulate`: uptake-weighted kill, interface share, lesion update;
    the visit of :func:`vtrial.model.markers.true_values` on a healthy skeleton.
    """
    phi = np.array([0.9, 0.1])
    traits = lesion_traits(phi, 1.0, 1.0, 0.002, PARAMS)
    state = established_state(np.array([0.08, 0.08]), traits, PARAMS)
    share, ones = np.ones(2, STATE_DTYPE), np.ones(2, STATE_DTYPE)
    schedule = arm("radium_223", dose_kbq_per_kg=55.0, every_weeks=4.0, doses=4) if radium else PLACEBO
    exposure = Exposure(arm_administrations(schedule, 7 * weeks), np.array([80.0, 80.0]), 7 * weeks, PARAMS)
    course = []
    for week in range(weeks):
        resorbed, resorption, formation, forming, pthrp = turnover(state, traits, ones, 1.0, PARAMS, 1.0, share)
        values = mk.true_values(
            np.arange(2), resorbed, state.burden, resorption, formation, forming, state.burden * pthrp,
            np.ones(2), np.ones(2), np.ones(2), np.ones((2, 2)), PARAMS,
        )  # fmt: skip
        course.append(values[:, 1])
        inputs = exposure.inputs(7 * week, 7 * week + 7, np.arange(2))
        uptake = (inputs.formation_kill * formation_rate(state.w, state.y, traits, PARAMS, share)).astype(STATE_DTYPE)
        cells = replace(inputs.cells, osteoblast_drive_keep=interface_share(share, uptake, 7.0, PARAMS))
        advance(state, traits, ones, ones, 1.0, 1.0, uptake, 7.0, PARAMS, cells)
    return np.array(course)


def test_radium_lowers_bsap_more_in_a_blastic_lesion_and_it_recovers_after():
    radium, placebo = _bsap_course(True), _bsap_course(False)
    change = radium / radium[0] - 1.0
    # at detection (T = 0.08) the blastic lesion forms 5.118 x healthy bone, 1.505 of it lamellar (v^3/8), the lytic
    # one 1.608 and 1.270: BSAP = 12 (1 + 0.5 (5.118 - 1.505)) = 33.68 and 12 (1 + 0.5 (1.608 - 1.270)) = 14.03 ug/L
    assert radium[0].tolist() == pytest.approx([33.68, 14.03], abs=0.01)
    # radium kills the interface tumour that drives the woven formation within the first week (20x the
    # lesion-average kill): measured -63.5% (blastic) and -12.8% (lytic) after one week, -59.2% and -12.8% at week 16 (four weeks
    # after the fourth injection), between -58% and -64% (blastic) every week of treatment
    assert change[[1, 16]].ravel().tolist() == pytest.approx([-0.635, -0.128, -0.592, -0.128], abs=0.005)
    assert (change[1:17, 0] < -0.55).all() and (change[1:17, 0] > -0.65).all()
    # untreated, BSAP rises with the growing tumour: measured +8.8% and +1.8% by week 16
    assert (placebo[16] / placebo[0] - 1.0).tolist() == pytest.approx([0.088, 0.018], abs=0.005)
    # after the last injection the interface repopulates (ln 2 / 40 days) and BSAP climbs back: the blastic lesion
    # against no radium -64.8% at week 13, -35.8% at week 30, -13.3% at week 51
    against = radium[:, 0] / placebo[:, 0] - 1.0
    assert against[[13, 30, 51]].tolist() == pytest.approx([-0.648, -0.358, -0.133], abs=0.005)
