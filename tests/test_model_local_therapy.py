"""Radiotherapy courses (LQ), prophylactic radiotherapy and the prophylactic-fixation switch of an arm."""

import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vtrial.model import simulate
from vtrial.model.local_therapy import (
    DEFAULT_COURSE,
    LocalTherapy,
    RadiotherapyCourse,
    biologically_effective_dose,
    course_log_survival,
    high_risk_hazard,
)
from vtrial.model.parameters import Parameters
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.streams import Streams
from vtrial.vocabulary import DAYS_PER_MONTH, DEFAULT_SRE_TYPES, EVENT_TYPES, SRE_TYPES

HORIZON = 2 * 365.25


def arm(name, radiotherapy=None, surgery=None, **kw):
    local = {k: v for k, v in (("radiotherapy", radiotherapy), ("surgery", surgery)) if v is not None}
    return reference_arm(**{"name": name, **local, **kw})


def course(dose_gy, fractions, technique="conventional", prophylactic=False):
    return SimpleNamespace(dose_gy=dose_gy, fractions=fractions, technique=technique, prophylactic=prophylactic)


def lesion_keys(events, types):
    """``patient_id * 100 + lesion`` of the events of the given types."""
    m = np.isin(events["type"], types)
    return events["patient_id"][m] * 100 + events["lesion"][m]


def retreated_share(events):
    _, courses = np.unique(lesion_keys(events, ["radiation_to_bone"]), return_counts=True)
    return float(np.mean(courses >= 2)), courses.size


def test_bed_by_hand():
    # BED10 = D (1 + d / 10): 8 x 1 -> 8 * 1.8; 30 / 10 -> 30 * 1.3; 24 / 2 -> 24 * 2.2
    assert biologically_effective_dose(8.0, 1, 10.0) == pytest.approx(14.4)
    assert biologically_effective_dose(30.0, 10, 10.0) == pytest.approx(39.0)
    assert biologically_effective_dose(24.0, 2, 10.0) == pytest.approx(52.8)
    params = Parameters()
    # the default course reproduces the version-1 kill exactly: -(alpha d + alpha/(alpha/beta) d^2) at 8 Gy
    assert course_log_survival(DEFAULT_COURSE, params) == -(0.3 * 8.0 + 0.3 / 10.0 * 8.0 * 8.0) == -4.32
    # other courses scale with BED: 30 Gy / 10 kills 39 / 14.4 times as many logs
    assert course_log_survival(RadiotherapyCourse(30.0, 10), params) == pytest.approx(-4.32 * 39.0 / 14.4)
    # Mirels 8: 15% in six months -> -ln(0.85) / 182.625 per day
    assert high_risk_hazard(params) == pytest.approx(8.899e-4, rel=1e-3)


def test_arm_tables_absent_mean_the_defaults_and_bad_values_fail():
    params = Parameters()
    for a in (arm("v1"), SimpleNamespace(name="v1", radiotherapy=None, surgery=None)):
        local = LocalTherapy.from_arm(a, params)
        assert local.course == RadiotherapyCourse(8.0, 1, "conventional", False)
        assert local.log_survival == -4.32 and local.prophylactic_fixation
    nofix = LocalTherapy.from_arm(arm("x", surgery=SimpleNamespace(prophylactic_fixation=False)), params)
    assert not nofix.prophylactic_fixation
    with pytest.raises(ValueError, match="technique among"):
        LocalTherapy.from_arm(arm("x", radiotherapy=course(8.0, 1, "proton")), params)
    with pytest.raises(ValueError, match="fractions >= 1"):
        LocalTherapy.from_arm(arm("x", radiotherapy=course(8.0, 0)), params)


def test_explicit_default_tables_give_the_version_1_events():
    cb = reference_cohort(300, "breast", seed=3)
    _, v1, _ = simulate(cb, arm("a"), HORIZON, Streams(9))
    explicit = arm("a", radiotherapy=course(8.0, 1), surgery=SimpleNamespace(prophylactic_fixation=True))
    _, e, _ = simulate(cb, explicit, HORIZON, Streams(9))
    for key in v1:
        np.testing.assert_array_equal(v1[key], e[key])
    assert "prophylactic_radiotherapy" not in set(v1["type"])
    # every local event names its lesion
    local = np.isin(
        v1["type"], ["pathological_fracture", "spinal_cord_compression", "radiation_to_bone", "surgery_to_bone"]
    )
    assert local.sum() > 300 and np.all(v1["lesion"][local] >= 0)
    assert EVENT_TYPES[-4] == "prophylactic_radiotherapy" and EVENT_TYPES.index("atypical_femoral_fracture") == 12
    # appended: codes kept
    assert EVENT_TYPES[-3:] == ("partial_pain_response", "complete_pain_response", "entry_radiotherapy")


def test_single_fractions_are_retreated_more_often_than_30_gy_in_10():
    # Prostate (painful blastic lesions, longer survival), 3 years, the same patients under both courses.
    cb = reference_cohort(2000, "prostate", seed=7)
    _, single, _ = simulate(cb, arm("8x1", course(8.0, 1)), 3 * 365.25, Streams(5))
    _, multi, _ = simulate(cb, arm("30/10", course(30.0, 10)), 3 * 365.25, Streams(5))
    share_1, n_1 = retreated_share(single)
    share_10, n_10 = retreated_share(multi)
    # measured: 15.6% of 3284 lesions vs 8.1% of 3331 (odds ratio 2.1) since the nerve sensitisation holds the pain of
    # a lesion after its course and the normal-tissue room limits re-irradiation; before: 12.9% of 3085 lesions vs
    # 5.4% of 3119 (odds ratio 2.6; Chow 2007: 2.5, 1.76-3.56); re-measured after
    # the refit that followed disease control (among its values pain_acid_gain 0.615 -> 0.982): before it 10.1%
    # of 3111 vs 3.7% of 3135 (odds ratio 2.9); before the death terms were re-tuned for disease control (issue 13
    # item 7; these prostate patients now live longer): 10.3% of 2646 vs 4.7% of 2725; before the merged pain drive
    # and the refit: 6.0% of 2251 vs 2.2% of 2297. The single-fraction band was 0.08-0.125, set around 10.1%; widened
    # to 0.15 since 12.9% is still below the trials' ~20% vs ~8% [recalled] (Chow 2007) and the odds ratio is closer
    assert 2700 < n_1 < 3500 and 2700 < n_10 < 3500
    assert 0.12 < share_1 < 0.19 and 0.06 < share_10 < 0.10
    odds = share_1 / (1 - share_1) / (share_10 / (1 - share_10))
    assert 1.8 < odds < 4.0
    # the same pain relief: each patient's first course (for pain or cord compression) comes on the
    # same day at the same lesion under both arms, since the lesions are identical until then
    for e in (single, multi):
        e["rt"] = np.isin(e["type"], ["radiation_to_bone", "spinal_cord_compression"])
    first = [np.unique(e["patient_id"][e["rt"]], return_index=True) for e in (single, multi)]
    np.testing.assert_array_equal(first[0][0], first[1][0])
    for key in ("day", "lesion"):
        np.testing.assert_array_equal(single[key][single["rt"]][first[0][1]], multi[key][multi["rt"]][first[1][1]])


def test_prophylactic_radiotherapy_lowers_sres_at_the_treated_lesions():
    cb = reference_cohort(1000, "breast", seed=7)
    _, standard, _ = simulate(cb, arm("standard"), HORIZON, Streams(5))
    _, proph, _ = simulate(cb, arm("prophylactic", course(8.0, 1, prophylactic=True)), HORIZON, Streams(5))
    treated = proph["type"] == "prophylactic_radiotherapy"
    keys = lesion_keys(proph, ["prophylactic_radiotherapy"])
    # each lesion at most once, always with its lesion and site; not an SRE
    # 855 (1141 before the refit with the breast-cancer subtypes: slower hormone-receptor-positive growth, a higher
    # death hazard; 1328 before the death terms were re-tuned for disease control, 1000 before the first refit)
    assert np.unique(keys).size == keys.size and 750 < keys.size < 1000
    assert np.all(proph["lesion"][treated] >= 0) and np.all(proph["site"][treated] != "")
    assert "prophylactic_radiotherapy" not in SRE_TYPES
    # entry lesions that are high-risk are irradiated on day 0
    # 355 (428 before the refit with the breast-cancer subtypes; window 150-400 before the merged biology and refit)
    assert 250 < np.sum(proph["day"][treated] == 0.0) < 450
    # measured: 435 SREs at these lesions without prophylaxis, 120 with it (-72%; before the refit with the
    # breast-cancer subtypes: 545 and 162, -70%; before the death terms were re-tuned for disease control: 664 and
    # 252, -62%; before the merged biology and the refit: 401 and 136, -66%)
    before = np.isin(lesion_keys(standard, DEFAULT_SRE_TYPES), keys).sum()
    after = np.isin(lesion_keys(proph, DEFAULT_SRE_TYPES), keys).sum()
    assert 330 < before < 550 and 80 < after < 170


def test_without_prophylactic_fixation_impending_fractures_break():
    cb = reference_cohort(1000, "breast", seed=7)
    _, fix, _ = simulate(cb, arm("fix"), HORIZON, Streams(5))
    _, nofix, _ = simulate(cb, arm("nofix", surgery=SimpleNamespace(prophylactic_fixation=False)), HORIZON, Streams(5))

    # without fixation every surgery follows a fracture or cord compression at that lesion on that day
    def at(e, types):
        m = np.isin(e["type"], types)
        return set(zip(e["patient_id"][m], e["lesion"][m], e["day"][m]))

    causes = ["pathological_fracture", "spinal_cord_compression"]
    assert at(nofix, ["surgery_to_bone"]) <= at(nofix, causes)
    # the lesions fixed prophylactically under the default break more often without fixation
    fixed = {100 * p + lesion for p, lesion, _ in at(fix, ["surgery_to_bone"]) - at(fix, causes)}
    fixed = np.array(sorted(fixed))
    broken = [np.isin(lesion_keys(e, ["pathological_fracture"]), fixed).sum() for e in (fix, nofix)]
    # measured: 112 lesions fixed; 9 of them fracture with fixation (hazard x0.3 after it), 25 without (before the
    # death terms were re-tuned for disease control: 134, 17 and 32; before the merged biology and the refit: 81, 8
    # and 15)
    assert 90 < fixed.size < 160 and 5 <= broken[0] <= 25 and broken[1] >= broken[0] + 4
    assert (nofix["type"] == "pathological_fracture").sum() > (fix["type"] == "pathological_fracture").sum()


def test_the_fractionation_protocol_arms_retreat_single_fractions_more_often():
    # protocols/radiotherapy-fractionation.toml read as plain tables (the version-2 schema loads it
    # once merged): its arms as namespaces, its cohort as reference blocks weighted by primary
    protocol = tomllib.loads((Path(__file__).parents[1] / "protocols" / "radiotherapy-fractionation.toml").read_text())
    n, horizon = protocol["trial"]["patients"], protocol["trial"]["horizon_months"] * DAYS_PER_MONTH
    blocks, first = [], 0
    for i, (primary, weight) in enumerate(protocol["cohort"]["primary"].items()):
        blocks.append(reference_cohort(round(weight * n), primary, seed=11 + i, first_id=first))
        first += blocks[-1].n_patients
    shares = {}
    for table in protocol["arm"]:
        a = arm(table["name"], SimpleNamespace(**table["radiotherapy"]))
        keys = [lesion_keys(simulate(cb, a, horizon, Streams(1))[1], ["radiation_to_bone"]) for cb in blocks]
        _, courses = np.unique(np.concatenate(keys), return_counts=True)
        shares[table["name"]] = (float(np.mean(courses >= 2)), courses.size)
    # measured: 14.3% of 1094 irradiated lesions after 8 Gy x 1, 7.7% of 1105 after 30 Gy / 10 (before the nerve
    # sensitisation and the normal-tissue room: 9.8% of 1042 and 5.7% of 1056; before the merged pain drive and the
    # refit: 6.4% of 865, 3.3% of 874)
    (single, n_single), (multi, n_multi) = shares["single_8gy"], shares["multiple_30gy_10"]
    assert 900 < n_single < 1250 and 900 < n_multi < 1250
    assert 0.11 < single < 0.18 and 0.055 < multi < 0.10 and single > 1.5 * multi
