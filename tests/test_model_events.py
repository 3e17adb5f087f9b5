"""Event hazards of vtrial.model.events: reference values computed by hand next to each assertion."""

import numpy as np
import pytest

from vtrial.model import events as ev
from vtrial.model.lesion import gompertz_rate
from vtrial.model.parameters import Parameters
from vtrial.streams import CHUNK, Streams
from vtrial.vocabulary import PRIMARIES, SITES

PARAMS = Parameters()
FEMUR, RIB = SITES.index("femur"), SITES.index("ribs")
_RADIATION = ev.LESION_EVENTS.index("radiation_to_bone")


def _weights(site, blastic, doubling_days, params=PARAMS):
    site = np.atleast_1d(site)
    growth = gompertz_rate(np.full(site.shape, float(doubling_days)), params)
    return ev.lesion_hazard_weights(site, np.full(site.shape, float(blastic)), growth, params)


def test_radiotherapy_weight_of_a_reference_lytic_lesion_is_the_base_hazard():
    w = _weights(FEMUR, 0.0, ev.PAIN_REFERENCE_DOUBLING_DAYS)
    assert w[_RADIATION, 0] == pytest.approx(PARAMS.radiation_hazard, rel=1e-12)


def test_blastic_lesions_carry_more_radiotherapy_hazard():
    # (1 + g phi): a purely blastic lesion has 1 + pain_blastic_gain times the lytic weight
    lytic, blastic = (_weights(FEMUR, phi, ev.PAIN_REFERENCE_DOUBLING_DAYS)[_RADIATION, 0] for phi in (0.0, 1.0))
    assert blastic / lytic == pytest.approx(1.0 + PARAMS.pain_blastic_gain, rel=1e-12)


def test_faster_lesions_carry_more_radiotherapy_hazard_by_the_growth_exponent():
    # halving the doubling time doubles the Gompertz rate: weight x 2**k
    params = Parameters({"pain_growth_exponent": 0.7})
    slow = _weights(FEMUR, 0.0, 100.0, params)[_RADIATION, 0]
    fast = _weights(FEMUR, 0.0, 50.0, params)[_RADIATION, 0]
    assert fast / slow == pytest.approx(2.0**0.7, rel=1e-12)


def test_fracture_weight_follows_the_site():
    # ribs weigh 0.5 of a weight-bearing femur (FRACTURE_SITE_WEIGHT)
    w = _weights([FEMUR, RIB], 0.0, 100.0)
    assert w[0, 1] / w[0, 0] == pytest.approx(ev.FRACTURE_SITE_WEIGHT[RIB] / ev.FRACTURE_SITE_WEIGHT[FEMUR])


def test_fracture_hazard_at_one_third_strength():
    # h0 (1 + k (1 - s))^4 with s = 1/3, k = 3: (1 + 2)^4 = 81
    w = _weights(FEMUR, 0.0, 100.0)
    h = ev.lesion_hazards(w, np.array([1.0 / 3.0]), np.array([0.1]), np.array([1.0]), PARAMS)
    assert h[0, 0] / w[0, 0] == pytest.approx((1.0 + PARAMS.fracture_strength_slope * 2.0 / 3.0) ** 4, rel=1e-12)


def _death(growth_multiplier, params=PARAMS):
    n = len(growth_multiplier)
    zeros = np.zeros(n)
    return ev.patient_risk(
        np.full(n, PRIMARIES.index("breast")),
        zeros,
        np.zeros(n, bool),
        np.full(n, 65.0),
        np.full(n, 80.0),
        np.zeros(n, bool),
        np.zeros(n, bool),
        np.asarray(growth_multiplier, float),
        np.zeros(n, bool),
        params,
    ).death


def test_death_hazard_of_a_reference_patient_is_the_primary_baseline():
    # ECOG 0, no visceral disease, age 65, growth multiplier 1: the baseline itself
    assert _death([1.0])[0] == pytest.approx(PARAMS.by_primary("death_hazard")[PRIMARIES.index("breast")])


def test_death_hazard_scales_with_the_growth_multiplier_to_its_exponent():
    params = Parameters({"death_growth_exponent": 1.5})
    slow, fast = _death([0.5, 2.0], params)
    assert fast / slow == pytest.approx(4.0**1.5, rel=1e-12)


def test_radiotherapy_hazard_is_the_pain_drive_and_falls_as_resorption_is_suppressed():
    # h0 T (1 + c_acid uZ), c_acid 0.982 (refit; was 0.615: 1, 1.615, 3.46): no resorption leaves the tumour's own
    # pain 1, healthy 1 + 0.982 = 1.982, x4 resorption 1 + 4 x 0.982 = 4.928
    w = _weights(FEMUR, 0.0, ev.PAIN_REFERENCE_DOUBLING_DAYS)
    burden = np.full(3, 0.2)
    h = ev.lesion_hazards(np.repeat(w, 3, axis=1), np.ones(3), burden, np.array([0.0, 1.0, 4.0]), PARAMS)
    assert h[_RADIATION] / (w[_RADIATION, 0] * 0.2) == pytest.approx([1.0, 1.982, 4.928], rel=1e-6)


def test_pain_drive_falls_with_osteoclast_suppression_and_with_burden():
    # an untreated lytic lesion resorbs ~2.4x healthy: drive 0.1 (1 + 0.982 x 2.4) = 0.1 x 3.3568 = 0.33568; under
    # denosumab-like suppression (uZ 0.2) 0.1 (1 + 0.982 x 0.2) = 0.1 x 1.1964 = 0.11964; after 8 Gy (T x e^-4.32)
    # the drive falls 75-fold at the same acid (c_acid 0.982 after the refit; with 0.615 it was 0.2476 and 0.1123)
    drive = ev.pain_drive(np.array([0.1, 0.1, 0.1 * np.exp(-4.32)]), np.array([2.4, 0.2, 2.4]), PARAMS)
    assert drive == pytest.approx([0.33568, 0.11964, 0.33568 * np.exp(-4.32)], rel=1e-9)
    # a burden exponent of 2/3: halving the burden lowers the drive by 2^(2/3)
    params = Parameters({"pain_burden_exponent": 2.0 / 3.0})
    half = ev.pain_drive(np.array([0.2, 0.1]), np.array([1.0, 1.0]), params)
    assert half[0] / half[1] == pytest.approx(2.0 ** (2.0 / 3.0), rel=1e-12)


def test_a_patient_meets_the_same_lesion_thresholds_in_any_block_drawn_slots_and_later_ones():
    # the first DRAWN_SLOTS slots come from the "events" chunks, the later ones from the patient's own generator
    # (stream purpose lesion_slots, keyed to the patient id), drawn when first asked for, in any order
    streams = Streams(5)
    whole = ev.draw_thresholds(streams, np.arange(2 * CHUNK + 10))
    block = np.array([2049, 3, 1500])
    part = ev.draw_thresholds(streams, block)
    slots = np.arange(ev.MAX_LESION_SLOTS)
    assert part.lesion_at(np.array([2]), np.array([40])).shape == (1, 4, ev.LESION_THRESHOLDS)  # a later slot first
    for row, patient in enumerate(block):
        mine = np.full(slots.size, row)
        np.testing.assert_array_equal(part.lesion_at(mine, slots), whole.lesion_at(np.full(slots.size, patient), slots))
        np.testing.assert_array_equal(
            part.surgery_at(mine, slots), whole.surgery_at(np.full(slots.size, patient), slots)
        )
        own = streams.generator("lesion_slots", int(patient))
        later = slots[ev.DRAWN_SLOTS :]
        np.testing.assert_array_equal(part.lesion_at(mine[later], later), own.standard_exponential((40, 4, 3)))
        np.testing.assert_array_equal(part.surgery_at(mine[later], later), own.random((40, 2, 3)))
    # the patient thresholds follow the drawn slots in the chunk's stream: 24 x 4 x 3 exponentials, then 8 x 8
    chunk = streams.generator("events", 0)
    chunk.standard_exponential((CHUNK, ev.DRAWN_SLOTS, 4, 3))
    np.testing.assert_array_equal(part.patient[1], chunk.standard_exponential((CHUNK, 8, 8))[3])
