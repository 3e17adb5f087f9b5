"""simulate(): output tables, determinism, common random numbers, adverse-event trends."""

import warnings
from dataclasses import replace

import numpy as np
import pytest

from vtrial.errors import ModelInvariantError
from vtrial.model import simulate
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.streams import Streams
from vtrial.vocabulary import EVENT_TYPES, SRE_TYPES

HORIZON = 2 * 365.25


def arm(drug, dose_mg=None, every_weeks=4.0, **kw):
    return reference_arm(drug, dose_mg=dose_mg, every_weeks=every_weeks, **kw)


PLACEBO = arm("none", every_weeks=None)
DENOSUMAB = arm("denosumab", 120.0)
ZOLEDRONIC = arm("zoledronic_acid", 4.0)


def first_sre(patients, events):
    first = np.full(patients["patient_id"].size, np.inf)
    sre = np.isin(events["type"], SRE_TYPES[:4])
    pos = np.searchsorted(patients["patient_id"], events["patient_id"][sre])
    np.minimum.at(first, pos, events["day"][sre])
    return first


def test_tables_follow_the_contract():
    cb = reference_cohort(300, "lung", seed=2)
    cb = replace(cb, entry_day=np.linspace(0, 200, 300), dropout_day=np.where(np.arange(300) % 5 == 0, 100.0, np.inf))
    patients, events, _ = simulate(cb, ZOLEDRONIC, HORIZON, Streams(3))
    n = 300
    assert all(v.shape == (n,) for v in patients.values())
    assert set(np.unique(events["type"])) <= set(EVENT_TYPES)
    assert len({v.shape for v in events.values()}) == 1
    order = np.lexsort((events["day"], events["patient_id"]))
    np.testing.assert_array_equal(order, np.arange(order.size))
    # follow-up ends at death, dropout or the cut-off, and no event comes after it
    limit = HORIZON - patients["entry_day"]
    assert np.all(patients["followup_days"] <= limit + 1e-9)
    pos = np.searchsorted(patients["patient_id"], events["patient_id"])
    assert np.all(events["day"] <= patients["followup_days"][pos] + 1e-9) and np.all(events["day"] >= 0)
    deaths = events["patient_id"][events["type"] == "death"]
    np.testing.assert_array_equal(np.sort(deaths), patients["patient_id"][patients["died"]])
    dropped = patients["dropped_out"]
    assert dropped.sum() > 0 and not np.any(dropped & patients["died"])
    np.testing.assert_allclose(patients["followup_days"][dropped], 100.0)
    # lung patients mostly die within two years (median survival ~6-7 months)
    assert 0.5 < patients["died"].mean() < 0.95
    local = np.isin(events["type"], ["pathological_fracture", "radiation_to_bone"])
    assert np.all(events["lesion"][local] >= 0) and np.all(events["site"][local] != "")


def test_same_inputs_give_identical_outputs_and_blocks_do_not_matter():
    cb = reference_cohort(200, "breast", seed=4)
    p1, e1, _ = simulate(cb, DENOSUMAB, HORIZON, Streams(11))
    p2, e2, _ = simulate(cb, DENOSUMAB, HORIZON, Streams(11))
    for k in e1:
        np.testing.assert_array_equal(e1[k], e2[k])
    # the same patients simulated in a different block (a subset) meet the same events
    part = np.arange(50, 120)
    p3, e3, _ = simulate(cb.take(part), DENOSUMAB, HORIZON, Streams(11))
    keep = np.isin(e1["patient_id"], cb.patient_id[part])
    for k in ("patient_id", "day", "type", "lesion", "site"):
        np.testing.assert_array_equal(e1[k][keep], e3[k])
    np.testing.assert_array_equal(p1["followup_days"][part], p3["followup_days"])


def test_with_common_thresholds_placebo_brings_the_first_sre_no_later_than_denosumab():
    cb = reference_cohort(600, "breast", seed=5)
    placebo = first_sre(*simulate(cb, PLACEBO, HORIZON, Streams(8))[:2])
    dmab = first_sre(*simulate(cb, DENOSUMAB, HORIZON, Streams(8))[:2])
    either = np.isfinite(placebo) | np.isfinite(dmab)
    assert either.sum() > 200
    assert np.mean(placebo[either] <= dmab[either]) > 0.85
    assert np.isfinite(placebo).mean() > np.isfinite(dmab).mean() + 0.1


def test_onj_incidence_rises_with_exposure_time():
    cb = reference_cohort(3000, "prostate", seed=6)
    cb = replace(cb, dental_risk=np.ones(3000, bool))
    _, events, _ = simulate(cb, DENOSUMAB, 3 * 365.25, Streams(9))
    onj = events["day"][events["type"] == "osteonecrosis_of_the_jaw"]
    by_year = [np.sum(onj < d) for d in (365, 730, 1096)]
    assert by_year[0] < by_year[1] < by_year[2]
    # no ONJ without an anti-resorptive
    _, events, _ = simulate(cb, PLACEBO, 3 * 365.25, Streams(9))
    assert not np.any(events["type"] == "osteonecrosis_of_the_jaw")


def test_zoledronic_acid_renal_toxicity_rises_as_creatinine_clearance_falls():
    rates = []
    for crcl in (90.0, 55.0, 35.0):
        cb = reference_cohort(1500, "breast", seed=7)
        cb = replace(cb, creatinine_clearance_ml_min=np.full(1500, crcl))
        patients, events, _ = simulate(cb, arm("zoledronic_acid", 4.0, renal_adjustment=False), 365.25, Streams(10))
        rates.append(np.unique(events["patient_id"][events["type"] == "renal_toxicity"]).size / 1500)
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] > 0.15


def test_a_state_outside_its_valid_range_fails_loudly_naming_the_patient():
    """An absurd parameter (PTHrP secretion x1e38) must not give silently wrong tables."""
    cohort = reference_cohort(50, "breast", seed=1)
    pthrp = cohort.biology["pthrp_secretion"].copy()
    pthrp[7] = 1e38
    broken = replace(cohort, biology={**cohort.biology, "pthrp_secretion": pthrp})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow itself is what is being provoked
        with pytest.raises(ModelInvariantError, match=r"patient 7 \(breast.*pthrp_secretion x1e\+38"):
            simulate(broken, arm("none"), 365.0, Streams(1))


def test_placebo_new_lesions_take_their_patients_state_computed_once(monkeypatch):
    """Without a dosed agent a new lesion's state is its patient's, computed once per block: the same tables
    as the state computed step by step from the step's (neutral) inputs."""
    import sys

    from vtrial.model.drugs import Exposure

    cb = reference_cohort(400, "breast", seed=4)
    cached = simulate(cb, PLACEBO, HORIZON, Streams(6))
    assert (cached[1]["type"] == "new_lesion").sum() > 50  # the shortcut is exercised
    module = sys.modules["vtrial.model.simulate"]
    assert not Exposure.of_arm(ZOLEDRONIC, cb.creatinine_clearance_ml_min, 28, module.Parameters()).untreated
    of_arm = Exposure.of_arm

    def stepwise(*args, **kwargs):
        exposure = of_arm(*args, **kwargs)
        assert exposure.untreated  # placebo
        exposure.untreated = False
        return exposure

    monkeypatch.setattr(module.Exposure, "of_arm", stepwise)
    for got, want in zip(simulate(cb, PLACEBO, HORIZON, Streams(6)), cached):
        assert got.keys() == want.keys()
        for column in want:
            np.testing.assert_array_equal(got[column], want[column])


def test_event_indices_are_those_of_numpy_nonzero_in_row_major_order():
    """The events of a step are found by flat indices and divmod: the rows and columns of ``np.nonzero``, same order."""
    import importlib

    find = importlib.import_module("vtrial.model.simulate")._nonzero
    rng = np.random.default_rng(8)
    for shape in ((4, 1000), (8, 3), (2, 0), (0, 5)):
        mask = rng.random(shape) < 0.01
        rows, cols = find(mask)
        want = np.nonzero(mask)
        assert np.array_equal(rows, want[0]) and np.array_equal(cols, want[1]) and rows.dtype == want[0].dtype
    # by hand: a 2 x 3 mask with entries at (0, 2), (1, 0) and (1, 2)
    rows, cols = find(np.array([[False, False, True], [True, False, True]]))
    assert rows.tolist() == [0, 1, 1] and cols.tolist() == [2, 0, 2]


def test_a_patient_beyond_the_drawn_lesion_slots_meets_its_thresholds_in_any_block_and_arm(monkeypatch):
    # patient 0 enters with 30 lesions: slots 24-29 take the thresholds of its own generator (stream purpose
    # lesion_slots). Alone or in a block of 6, under placebo or denosumab, it meets the same thresholds in all 64
    # slots, and (same arm) the same events, 4 of them (placebo) at a lesion beyond the drawn slots
    from vtrial.model import events as ev

    cb = reference_cohort(6, "breast", seed=3, max_lesions=6)
    width = 30
    pad = width - cb.lesion_mask.shape[1]
    widen = {
        name: np.pad(getattr(cb, name), ((0, 0), (0, pad)))
        for name in ("lesion_mask", "lesion_site", "lesion_blastic_fraction", "lesion_burden")
    }
    widen["lesion_mask"][0] = True
    widen["lesion_site"][0] = np.arange(width) % 5
    widen["lesion_blastic_fraction"][0] = 0.2
    widen["lesion_burden"][0] = 0.05
    cb = replace(cb, **widen)
    drawn = []
    draw = ev.draw_thresholds
    monkeypatch.setattr(ev, "draw_thresholds", lambda streams, ids: drawn.append(draw(streams, ids)) or drawn[-1])
    slots = np.arange(ev.MAX_LESION_SLOTS)
    first = {}
    for drug in ("none", "denosumab"):
        arm = reference_arm(
            drug, dose_mg=None if drug == "none" else 120.0, every_weeks=None if drug == "none" else 4.0
        )
        runs = [simulate(block, arm, 5 * 365.25, Streams(1))[1] for block in (cb, cb.take(np.array([0])))]
        mine = [{k: np.asarray(v)[np.asarray(e["patient_id"]) == cb.patient_id[0]] for k, v in e.items()} for e in runs]
        for k in ("day", "type", "lesion"):
            np.testing.assert_array_equal(mine[0][k], mine[1][k])
        first[drug] = mine[0]
    # 19 events and 2 pain responses (22 events, 6 beyond the drawn slots, before the refit with the breast-cancer
    # subtypes)
    assert first["none"]["day"].size == 21 and (first["none"]["lesion"] >= ev.DRAWN_SLOTS).sum() == 4
    assert len(drawn) == 4
    for t in drawn:
        np.testing.assert_array_equal(
            t.lesion_at(np.zeros(64, int), slots), drawn[0].lesion_at(np.zeros(64, int), slots)
        )
        np.testing.assert_array_equal(
            t.surgery_at(np.zeros(64, int), slots), drawn[0].surgery_at(np.zeros(64, int), slots)
        )
    assert not np.array_equal(first["none"]["day"], first["denosumab"]["day"])  # the arms differ by biology only
