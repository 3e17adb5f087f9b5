"""Pain of a lesion after a course: nerve sensitisation, pain response at 3 months, re-irradiation room."""

import importlib
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vtrial.analysis.radiotherapy import pain_response as summary_pain_response
from vtrial.calibration.statistics import pain_response
from vtrial.calibration.targets import Check
from vtrial.model import events as ev
from vtrial.model.local_therapy import LocalTherapy, pain_response_ratios
from vtrial.model.parameters import Parameters
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.model.simulate import simulate
from vtrial.protocol import PriorTreatment
from vtrial.streams import Streams
from vtrial.vocabulary import PAIN_ASSESSMENT_DAYS, PAIN_RESPONSES, SITES
from test_calibration_v2 import _arm, _obs

sim = importlib.import_module("vtrial.model.simulate")  # the package exports the function under this name
PARAMS = Parameters()
SINGLE = SimpleNamespace(dose_gy=8.0, fractions=1)


def test_the_nerves_hold_a_lesions_pain_after_its_drive_falls_by_hand():
    # tau = 390 days, 14-day steps; two lesions with sensitised shares 0.5 and 0
    share = np.array([0.5, 0.0], np.float32)
    sensitised = np.zeros(2, np.float32)
    # a rising drive: the nerves follow it at once and the pain is the drive itself (the calibrated hazard)
    for drive in (0.5, 0.8, 1.0):
        pain = ev.lesion_pain(np.full(2, drive, np.float32), sensitised, share, 14.0, PARAMS)
        np.testing.assert_array_equal(pain, np.full(2, drive, np.float32))
        np.testing.assert_array_equal(sensitised, np.full(2, drive, np.float32))
    # a course: the drive falls to 0.01; N at mid-step e^(-7/390) = 0.98221, pain 0.01 + 0.5 (0.98221 - 0.01)
    pain = ev.lesion_pain(np.full(2, 0.01, np.float32), sensitised, share, 14.0, PARAMS)
    assert pain == pytest.approx([0.01 + 0.5 * (math.exp(-7 / 390) - 0.01), 0.01], rel=1e-6)
    assert sensitised == pytest.approx([math.exp(-14 / 390)] * 2, rel=1e-6)
    # 3 months of the low drive: N = e^(-91/390) = 0.7919 held, so the sensitised lesion keeps ~40% of its pain
    for _ in range(5):
        pain = ev.lesion_pain(np.full(2, 0.01, np.float32), sensitised, share, 14.0, PARAMS)
    assert pain[0] == pytest.approx(0.01 + 0.5 * (math.exp(-77 / 390) - 0.01), rel=1e-5)  # 0.4152
    assert sensitised[0] == pytest.approx(math.exp(-84 / 390), rel=1e-5)


def test_response_categories_and_the_normal_tissue_room_by_hand():
    # 6 points of 10 at the course: a fall of 2 points is pain <= 4/6, a score below 0.5 is pain <= 0.5/6
    assert pain_response_ratios(PARAMS) == pytest.approx((2 / 3, 1 / 12))
    assert PAIN_ASSESSMENT_DAYS == pytest.approx(91.3125)
    # BED2 = D (1 + d / 2): 8 Gy x 1 40 Gy2, 24 Gy in 6 72 Gy2, of 135 Gy2
    single = LocalTherapy.from_arm(SimpleNamespace(radiotherapy=SINGLE), PARAMS)
    multi = LocalTherapy.from_arm(SimpleNamespace(radiotherapy=SimpleNamespace(dose_gy=24.0, fractions=6)), PARAMS)
    assert (single.normal_tissue_share, multi.normal_tissue_share) == pytest.approx((40 / 135, 72 / 135))
    lesions = SimpleNamespace(room=np.ones(2), weights=np.ones((4, 2), np.float32), y=np.zeros(2))
    for n, expected in enumerate(((95 / 135, 63 / 135), (55 / 135, 0.0)), 1):  # the second 24/6 finds no room
        sim._irradiate(lesions, np.array([0]), single)
        sim._irradiate(lesions, np.array([1]), multi)
        assert lesions.room == pytest.approx(expected)
        assert lesions.weights[2] == pytest.approx(expected, rel=1e-6)
        # and the tumour kill, -alpha BED10 per course: 0.3 x 14.4 Gy and 0.3 x 33.6 Gy
        assert lesions.y == pytest.approx([-4.32 * n, -10.08 * n])
    np.testing.assert_array_equal(lesions.weights[[0, 1, 3]], 1.0)  # only the radiotherapy hazard


def _first_courses(events) -> dict:
    first: dict = {}
    for pid, lesion, day, kind in zip(events["patient_id"], events["lesion"], events["day"], events["type"]):
        if kind == "radiation_to_bone":
            first.setdefault((pid, lesion), day)
    return first


def test_more_sensitisation_fewer_responders_and_the_first_courses_stay():
    # 600 prostate reference patients, 3 years, 8 Gy x 1, the same patients under four medians of the share
    cb = reference_cohort(600, "prostate", seed=7)
    counts, firsts = [], []
    for median in (0.05, 0.25, 0.6, 0.95):
        _, e, _ = simulate(
            cb, reference_arm(radiotherapy=SINGLE), 3 * 365.25, Streams(5), {"pain_sensitised_share": median}
        )
        counts.append((np.isin(e["type"], PAIN_RESPONSES).sum(), (e["type"] == "complete_pain_response").sum()))
        firsts.append(_first_courses(e))
        assessed = np.isin(e["type"], PAIN_RESPONSES)
        courses = _first_courses({k: v[~assessed] for k, v in e.items()})
        # every response is on its lesion's assessment day, 3 months after its first course
        for pid, lesion, day in zip(e["patient_id"][assessed], e["lesion"][assessed], e["day"][assessed]):
            assert day == pytest.approx(courses[(pid, lesion)] + PAIN_ASSESSMENT_DAYS)
    # measured: responses 663 / 578 / 445 / 217, complete 385 / 224 / 120 / 20 of ~970 irradiated lesions
    responses, complete = zip(*counts)
    assert responses[0] > responses[1] > responses[2] > responses[3] and complete[0] > 3 * complete[2]
    assert 530 < responses[1] < 630 and 180 < complete[1] < 270
    # the first course of a lesion comes from its drive (the nerves follow it up): 959 of the 969 lesions
    # irradiated at q ~ 0.05 have their first course on the same day at q ~ 0.95 (the others after a drive fell)
    same = sum(1 for key, day in firsts[0].items() if firsts[3].get(key) == day)
    assert same >= 0.97 * len(firsts[0])


def test_a_course_at_entry_goes_to_each_patients_most_painful_lesion_on_day_0():
    cb = reference_cohort(200, "breast", seed=4)
    # patients 0 and 1: two lesions alike (pelvis, blastic fraction 0.2) but for the burden, 0.02 and 0.08 in
    # slots 0 and 1 for patient 0, the other way round for patient 1: the larger drive T^a is the more painful
    fields = {
        k: getattr(cb, k).copy() for k in ("lesion_mask", "lesion_site", "lesion_blastic_fraction", "lesion_burden")
    }
    for row, burdens in ((0, (0.02, 0.08)), (1, (0.08, 0.02))):
        fields["lesion_mask"][row] = False
        fields["lesion_mask"][row, :2] = True
        fields["lesion_site"][row, :2] = SITES.index("pelvis")
        fields["lesion_blastic_fraction"][row, :2] = 0.2
        fields["lesion_burden"][row, :2] = burdens
    cb = replace(cb, **fields)
    entry = SimpleNamespace(dose_gy=8.0, fractions=1, at_entry=True)
    _, e, _ = simulate(cb, reference_arm(radiotherapy=entry), 365.25, Streams(3))
    _, plain, _ = simulate(cb, reference_arm(radiotherapy=SINGLE), 365.25, Streams(3))
    day0 = e["type"] == "entry_radiotherapy"  # protocol treatment, not an SRE: no radiation_to_bone on day 0
    assert np.all(e["day"][day0] == 0.0) and not np.any((e["type"] == "radiation_to_bone") & (e["day"] == 0.0))
    assert np.array_equal(np.sort(e["patient_id"][day0]), np.sort(cb.patient_id))  # one course per patient
    assert not np.any(plain["type"] == "entry_radiotherapy")
    chosen = dict(zip(e["patient_id"][day0], e["lesion"][day0]))
    assert (chosen[cb.patient_id[0]], chosen[cb.patient_id[1]]) == (1, 0)
    # its pain is assessed 3 months later unless the patient died or the lesion was irradiated again before;
    # measured: 136 of the 200 entry lesions respond
    assessed = np.isin(e["type"], PAIN_RESPONSES) & np.isclose(e["day"], PAIN_ASSESSMENT_DAYS)
    assert 0.5 * cb.n_patients < assessed.sum() < 0.9 * cb.n_patients


def test_a_course_at_entry_after_a_prior_treatment_reads_the_pain_under_the_prior_drug():
    """The most painful lesion on day 0 is judged with the resorption the prior treatment left, not untreated."""
    cb = reference_cohort(1, "breast", seed=4)
    fields = {
        k: getattr(cb, k).copy() for k in ("lesion_mask", "lesion_site", "lesion_blastic_fraction", "lesion_burden")
    }
    fields["lesion_mask"][0] = False
    fields["lesion_mask"][0, :2] = True
    fields["lesion_site"][0, :2] = SITES.index("pelvis")
    # a lytic lesion (burden 0.05), whose pain is mostly osteoclast acid, and a mixed one (0.03, blastic fraction 0.5)
    fields["lesion_blastic_fraction"][0, :2] = (0.0, 0.5)
    fields["lesion_burden"][0, :2] = (0.05, 0.03)
    naive = replace(cb, **fields)
    prior = replace(
        naive, prior_treatment=PriorTreatment(drug="denosumab", dose_mg=120.0, every_weeks=4.0, months=12.0)
    )
    entry = SimpleNamespace(dose_gy=8.0, fractions=1, at_entry=True)

    def chosen(cohort):
        _, e, _ = simulate(cohort, reference_arm(radiotherapy=entry), 30.0, Streams(3))
        return int(e["lesion"][e["type"] == "entry_radiotherapy"][0])

    # measured: naive, the lytic lesion is chosen from a burden of 0.05 up; after a year of denosumab, whose
    # suppressed osteoclasts take most of its acid, only from 0.08 (the mixed lesion's blastic pain stays)
    assert (chosen(naive), chosen(prior)) == (0, 1)


def test_pain_response_statistic_by_hand():
    rows = [
        (1, 10.0, "radiation_to_bone", "femur", 0),
        (1, 10.0 + PAIN_ASSESSMENT_DAYS, "partial_pain_response", "femur", 0),  # responder
        (1, 20.0, "radiation_to_bone", "pelvis", 1),
        (1, 20.0 + PAIN_ASSESSMENT_DAYS, "complete_pain_response", "pelvis", 1),  # complete responder
        (1, 30.0, "radiation_to_bone", "spine_thoracic", 2),  # no response: followed
        (2, 5.0, "radiation_to_bone", "femur", 0),  # died on day 50: no response
        (3, 300.0, "radiation_to_bone", "femur", 0),  # alive at the end of follow-up (350) before assessment
    ]
    events = pd.DataFrame(rows, columns=["patient_id", "day", "type", "site", "lesion"])
    patients = pd.DataFrame(
        {"patient_id": [1, 2, 3], "followup_days": [400.0, 50.0, 350.0], "died": [False, True, False]}
    )
    # the statistic reads the arm's summary, whose pain response is the analysis of its events
    _, detail = summary_pain_response(events, patients)
    arm = _arm([1, 2, 3], [400.0, 50.0, 350.0], [False, True, False], [np.nan] * 3, lesion_events=events)
    observations = {"r": _obs({"a": {"pain_response_detail": detail}}, {"a": arm})}
    overall = Check("X", "l", "value", "proportion", "pain_response", ("r",), "a", "overall")
    complete = Check("X", "l", "value", "proportion", "pain_response", ("r",), "a", "complete")
    assert pain_response(observations, overall).value == pytest.approx(100 * 2 / 4)
    assert pain_response(observations, complete).value == pytest.approx(100 * 1 / 4)
    with pytest.raises(ValueError, match=r"check X \(pain_response\) needs 'overall' or 'complete', not 'partial'"):
        pain_response(observations, Check("X", "l", "value", "proportion", "pain_response", ("r",), "a", "partial"))
