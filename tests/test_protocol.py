"""Protocol schema: contract fields and defaults, resolution per primary, round trip, errors."""

from __future__ import annotations

import math
import os
import re
import resource
import subprocess
import sys
import tomllib
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import BaseModel

from vtrial.errors import ProtocolWarning, UserInputError
from vtrial.protocol import (
    DEFAULT_SEED,
    MAX_PROTOCOL_BYTES,
    Protocol,
    apply_overrides,
    load_protocol,
    parse_protocol,
    primary_defaults,
    protocol_to_toml,
)
from vtrial.vocabulary import (
    COUNTABLE_EVENT_TYPES,
    DAYS_PER_MONTH,
    DEFAULT_SRE_TYPES,
    DRUGS,
    PROSTATE_STAGES,
    SYSTEMIC_THERAPIES,
)

MINIMAL = {
    "trial": {"name": "t", "patients": 10, "horizon_months": 12},
    "cohort": {"primary": {"breast": 1.0, "prostate": 1.0}},
    "arm": [{"name": "placebo", "drug": "none"}],
}


def test_contract_example_loads_with_every_field(contract_path):
    p = load_protocol(contract_path)
    assert p.trial.name == "breast-denosumab-vs-zoledronic"
    assert (p.trial.design, p.trial.patients, p.trial.horizon_months, p.trial.seed) == ("parallel", 2046, 34.0, 2010)
    breast = p.cohort.by_primary["breast"]
    assert (breast.age_years.mean, breast.age_years.sd, breast.age_years.min, breast.age_years.max) == (57, 11, 18, 90)
    assert breast.ecog == [0.45, 0.50, 0.05]
    assert (breast.female_fraction, breast.prior_sre, breast.visceral_metastases) == (0.99, 0.37, 0.5)
    assert breast.lesions.mean == 4.0  # the contract's value, not the data-file default 5.7
    assert breast.creatinine_clearance_ml_min.max == 150.0
    assert p.cohort.eligibility.min_creatinine_clearance_ml_min == 30.0
    assert [a.name for a in p.arm] == ["denosumab", "zoledronic_acid", "anti-tgf-beta"]
    assert p.arm[0].stop_after_months == 24.0
    assert p.arm[2].mechanism.tgf_beta_inhibition == 0.6 and p.arm[2].mechanism.half_life_days == 14.0
    assert p.analysis.reference_arm == "zoledronic_acid"
    assert p.analysis.landmarks_months == [12, 24]


def test_defaults_are_those_of_the_contract():
    p = parse_protocol(MINIMAL, "test")
    assert (p.trial.design, p.trial.accrual_months, p.trial.dropout_per_year, p.trial.seed) == (
        "parallel",
        0.0,
        0.0,
        DEFAULT_SEED,
    )
    arm = p.arm[0]
    assert (arm.allocation, arm.calcium_vitamin_d, arm.renal_adjustment) == (1.0, True, True)
    assert arm.dose_mg is None and arm.every_weeks is None and arm.stop_after_months is None
    assert p.analysis.reference_arm == "placebo"
    assert p.analysis.sre_types == list(DEFAULT_SRE_TYPES)
    assert p.analysis.sre_window_days == 21.0
    assert p.analysis.landmarks_months == [12.0]  # the default [12, 24] within the 12-month horizon
    assert (p.cohort.eligibility.min_creatinine_clearance_ml_min, p.cohort.eligibility.max_ecog) == (0.0, 2)


def test_profiles_resolve_data_file_then_cohort_then_by_primary():
    data = {
        **MINIMAL,
        "cohort": {
            "primary": {"breast": 1.0, "prostate": 1.0},
            "age_years": {"mean": 65.0},
            "female_fraction": 0.7,
            "by_primary": {"prostate": {"age_years": {"sd": 5.0}}},
        },
    }
    p = parse_protocol(data, "test")
    breast, prostate = p.cohort.by_primary["breast"], p.cohort.by_primary["prostate"]
    # cohort-wide mean over the data-file table; the other figures stay the data file's
    assert (breast.age_years.mean, breast.age_years.sd) == (65.0, primary_defaults("breast")["age_years"]["sd"])
    assert (prostate.age_years.mean, prostate.age_years.sd) == (65.0, 5.0)
    assert breast.female_fraction == 0.7
    assert prostate.female_fraction == 0.0  # prostate patients are always male
    assert prostate.lesions.mean == 4.8  # data file (bone-scan series, targets.csv NH-20)


def test_resolved_toml_round_trips(root, contract_path):
    for path in [contract_path, *sorted(p for p in (root / "protocols").glob("*.toml"))]:
        p = load_protocol(path)
        text = protocol_to_toml(p)
        assert parse_protocol(tomllib.loads(text), "resolved") == p
        # every default is written out
        resolved = tomllib.loads(text)
        assert {"seed", "design", "accrual_months", "dropout_per_year"} <= set(resolved["trial"])
        assert set(resolved["cohort"]["by_primary"]) == set(p.cohort.primary)


def test_yaml_gives_the_same_protocol_as_toml(tmp_path, root):
    source = root / "protocols" / "example.toml"
    data = tomllib.loads(source.read_text())
    yaml_path = tmp_path / "example.yaml"
    yaml_path.write_text(yaml.safe_dump(data))
    assert load_protocol(yaml_path) == load_protocol(source)


def test_overrides_replace_patients_and_seed_only():
    p = parse_protocol(MINIMAL, "test")
    q = apply_overrides(p, patients=50, seed=3)
    assert (q.trial.patients, q.trial.seed) == (50, 3)
    assert q.cohort == p.cohort and p.trial.patients == 10
    with pytest.raises(UserInputError, match="--patients"):
        apply_overrides(p, patients=0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"trial": {**MINIMAL["trial"], "patients": True}}, "trial.patients"),
        ({"arm": [{"name": "a", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": "4"}]}, "arm[0].every_weeks"),
        ({"cohort": {"primary": {"breast": 1.0}, "sites": {"pelvis": 2.0}}}, "cohort.sites.pelvis"),
        ({"cohort": {"primary": {"breast": 1.0}, "lesions": {"mean": 0.5}}}, "cohort.lesions.mean"),
        ({"analysis": {"landmarks_months": [24, 12]}}, "analysis.landmarks_months"),
        ({"analysis": {"sre_types": ["hypercalcaemia", "hypercalcaemia"]}}, "analysis.sre_types"),
    ],
)
def test_errors_name_the_dotted_field(change, field):
    with pytest.raises(UserInputError) as info:
        parse_protocol({**MINIMAL, **change}, "dict")
    assert info.value.field == field
    assert info.value.file == "dict" and info.value.fix


def test_unknown_key_gives_line_and_closest_key(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        '[trial]\nname = "t"\npatients = 5\nhorizon_months = 12\nsed = 4\n'
        '[cohort]\nprimary = { lung = 1.0 }\n[[arm]]\nname = "a"\ndrug = "none"\n'
    )
    with pytest.raises(UserInputError) as info:
        load_protocol(path)
    assert (info.value.field, info.value.line) == ("trial.sed", 5)
    assert "Did you mean 'seed'?" in str(info.value)


# --------------------------------------------------------------------------------------------
# protocol version 2

V2_EXAMPLE = Path(__file__).parent / "data" / "contract_v2.toml"
ZOL = {"name": "zol", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0}


def with_arm(**fields) -> dict:
    """MINIMAL with a second arm: zoledronic acid with ``fields`` laid over it (None removes a key)."""
    arm = {k: v for k, v in {**ZOL, **fields}.items() if v is not None}
    return {**MINIMAL, "arm": [MINIMAL["arm"][0], arm]}


def test_v2_example_loads_with_every_field():
    p = load_protocol(V2_EXAMPLE)
    assert p.cohort.prostate_stage == "castration_sensitive"
    assert p.cohort.by_primary["prostate"].systemic_therapy == ["androgen_deprivation"]
    assert p.cohort.by_primary["breast"].systemic_therapy == ["androgen_deprivation"]  # cohort-wide value
    prior = p.cohort.prior_treatment
    assert (prior.drug, prior.dose_mg, prior.every_weeks, prior.months) == ("zoledronic_acid", 4.0, 4.0, 12.0)
    deesc, switch, radium, sbrt, custom = p.arm
    assert (deesc.withhold_on_renal_toxicity, deesc.stop_on_onj, deesc.then[0].every_weeks) == (True, True, 12.0)
    assert switch.doses == 6 and [(t.after_months, t.drug) for t in switch.then] == [(6.0, "denosumab"), (24.0, "none")]
    assert radium.systemic_therapy == ["androgen_deprivation", "abiraterone_prednisone"]
    c = radium.concurrent[0]
    assert (c.drug, c.dose_kbq_per_kg, c.every_weeks, c.doses, c.after_months) == ("radium_223", 55.0, 4.0, 6, 0.0)
    assert radium.radiotherapy.model_dump() == {
        "dose_gy": 30.0,
        "fractions": 10,
        "technique": "conventional",
        "prophylactic": False,
        "at_entry": False,
    }
    assert (sbrt.radiotherapy.technique, sbrt.radiotherapy.prophylactic, sbrt.surgery.prophylactic_fixation) == (
        "stereotactic",
        True,
        True,
    )
    m = custom.mechanism
    assert (m.homing_inhibition, m.osteoblast_drive_inhibition, m.bone_formation_stimulation, m.il6_inhibition) == (
        0.7,
        0.2,
        0.0,
        0.3,
    )
    assert p.analysis.marker_weeks == [13, 25, 49]
    assert parse_protocol(tomllib.loads(protocol_to_toml(p)), "resolved") == p


def test_a_v1_protocol_gets_the_v2_defaults():
    p = parse_protocol(with_arm(), "test")
    assert p.cohort.prostate_stage == "castration_resistant" and p.cohort.prior_treatment is None
    assert {k: v.systemic_therapy for k, v in p.cohort.by_primary.items()} == {
        "breast": ["endocrine", "targeted", "chemotherapy"],
        "prostate": ["androgen_deprivation"],
    }
    assert p.cohort.breast_subtype == {"hr_positive": 0.72, "her2_positive": 0.18, "triple_negative": 0.10}
    arm = p.arm[1]
    assert (arm.doses, arm.withhold_on_renal_toxicity, arm.stop_on_onj, arm.systemic_therapy) == (
        None,
        True,
        True,
        None,
    )
    assert (arm.then, arm.concurrent, arm.mechanism) == ([], [], None)
    assert arm.radiotherapy.model_dump() == {
        "dose_gy": 8.0,
        "fractions": 1,
        "technique": "conventional",
        "prophylactic": False,
        "at_entry": False,
    }
    assert arm.surgery.prophylactic_fixation is True
    assert p.analysis.marker_weeks == [13, 25, 49]  # all within the 12-month (52.2-week) horizon
    no_prostate = parse_protocol({**MINIMAL, "cohort": {"primary": {"lung": 1.0}}}, "test")
    assert no_prostate.cohort.prostate_stage is None
    assert no_prostate.cohort.by_primary["lung"].systemic_therapy == ["chemotherapy"]
    short = parse_protocol({**MINIMAL, "trial": {**MINIMAL["trial"], "horizon_months": 5}}, "test")
    assert short.analysis.marker_weeks == [13]  # 5 months = 21.7 weeks


def test_systemic_therapy_resolves_stage_then_cohort_then_by_primary():
    stage = primary_defaults("prostate", "castration_sensitive")["systemic_therapy"]
    assert stage == ["androgen_deprivation"]
    assert primary_defaults("breast")["systemic_therapy"] == ["endocrine", "targeted", "chemotherapy"]
    data = {
        **MINIMAL,
        "cohort": {
            "primary": {"breast": 1.0, "prostate": 1.0},
            "systemic_therapy": [],
            "by_primary": {"prostate": {"systemic_therapy": ["enzalutamide"]}},
        },
    }
    p = parse_protocol(data, "test")
    assert p.cohort.by_primary["breast"].systemic_therapy == []
    assert p.cohort.by_primary["prostate"].systemic_therapy == ["enzalutamide"]


def test_v1_dosing_plan_gives_the_model_s_v1_dosing_days():
    from vtrial.model.drugs import dosing_days

    for fields in ({}, {"stop_after_months": 7.5}, {"every_weeks": 12.0}):
        arm = parse_protocol(with_arm(**fields), "test").arm[1]
        (phase,) = arm.dosing_plan()
        assert (phase.agent, phase.dose, phase.dose_unit, phase.start_day) == ("zoledronic_acid", 4.0, "mg", 0.0)
        assert np.array_equal(phase.administration_days(1000), dosing_days(arm, 1000))
    (none,) = parse_protocol(MINIMAL, "test").arm[0].dosing_plan()
    assert (none.agent, none.dose, none.every_weeks, none.end_day) == ("none", None, None, math.inf)
    assert none.administration_days(1000).size == 0


def test_dosing_plan_lists_phases_concurrent_agents_and_stop_in_order():
    month = DAYS_PER_MONTH
    data = with_arm(
        doses=6,
        stop_after_months=30.0,
        then=[
            {"after_months": 6.0, "drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0},
            {"after_months": 24.0, "drug": "none"},
        ],
        concurrent=[
            {"drug": "radium_223", "dose_kbq_per_kg": 55.0, "every_weeks": 4.0, "doses": 6, "after_months": 3.0}
        ],
    )
    arm = parse_protocol({**data, "trial": {**data["trial"], "horizon_months": 36}}, "test").arm[1]
    plan = arm.dosing_plan()
    assert [
        (p.agent, p.dose, p.dose_unit, p.every_weeks, p.doses, p.start_day, p.end_day, p.concurrent) for p in plan
    ] == [
        ("zoledronic_acid", 4.0, "mg", 4.0, 6, 0.0, 6 * month, False),
        ("radium_223", 55.0, "kBq/kg", 4.0, 6, 3 * month, 30 * month, True),
        ("denosumab", 120.0, "mg", 4.0, None, 6 * month, 24 * month, False),
        ("none", None, "", None, None, 24 * month, 30 * month, False),
    ]
    # doses caps the administrations: 6 infusions of zoledronic acid 28 days apart, then denosumab
    assert plan[0].administration_days().tolist() == [0.0, 28.0, 56.0, 84.0, 112.0, 140.0]
    assert plan[1].administration_days().tolist() == [3 * month + 28.0 * k for k in range(6)]
    assert plan[2].administration_days()[[0, -1]].tolist() == [6 * month, 6 * month + 28.0 * 19]


def test_prior_treatment_plan_ends_at_randomisation():
    data = {
        **MINIMAL,
        "cohort": {
            **MINIMAL["cohort"],
            "prior_treatment": {"drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0, "months": 12.0},
        },
    }
    (phase,) = parse_protocol(data, "test").cohort.prior_treatment.dosing_plan()
    assert (phase.agent, phase.dose, phase.start_day, phase.end_day) == (
        "zoledronic_acid",
        4.0,
        -12 * DAYS_PER_MONTH,
        0.0,
    )
    assert phase.administration_days().size == 14  # days -365.25, -337.25, ..., -1.25


@pytest.mark.parametrize(
    ("section", "fields", "read", "expected"),
    [
        (
            "cohort",
            {"prostate_stage": "castration_sensitive"},
            lambda p: p.cohort.prostate_stage,
            "castration_sensitive",
        ),
        (
            "cohort",
            {"systemic_therapy": ["docetaxel", "immunotherapy"]},
            lambda p: p.cohort.by_primary["breast"].systemic_therapy,
            ["docetaxel", "immunotherapy"],
        ),
        (
            "cohort",
            {"prior_treatment": {"drug": "radium_223", "dose_kbq_per_kg": 55.0, "every_weeks": 4.0, "months": 6.0}},
            lambda p: p.cohort.prior_treatment.dose_kbq_per_kg,
            55.0,
        ),
        ("arm", {"doses": 12}, lambda p: p.arm[1].doses, 12),
        ("arm", {"withhold_on_renal_toxicity": False}, lambda p: p.arm[1].withhold_on_renal_toxicity, False),
        ("arm", {"stop_on_onj": False}, lambda p: p.arm[1].stop_on_onj, False),
        ("arm", {"systemic_therapy": []}, lambda p: p.arm[1].systemic_therapy, []),
        (
            "arm",
            {
                "then": [
                    {"after_months": 6.0, "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 12.0, "doses": 4}
                ]
            },
            lambda p: p.arm[1].then[0].doses,
            4,
        ),
        (
            "arm",
            {"concurrent": [{"drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0, "after_months": 2.0}]},
            lambda p: p.arm[1].concurrent[0].after_months,
            2.0,
        ),
        ("arm", {"radiotherapy": {"dose_gy": 20.0, "fractions": 5}}, lambda p: p.arm[1].radiotherapy.fractions, 5),
        ("arm", {"surgery": {"prophylactic_fixation": False}}, lambda p: p.arm[1].surgery.prophylactic_fixation, False),
        (
            "arm",
            {"drug": "radium_223", "dose_mg": None, "dose_kbq_per_kg": 55.0, "doses": 6},
            lambda p: p.arm[1].drug,
            "radium_223",
        ),
        (
            "arm",
            {
                "drug": "custom",
                "dose_mg": None,
                "mechanism": {
                    "homing_inhibition": 0.5,
                    "osteoblast_drive_inhibition": 0.1,
                    "bone_formation_stimulation": 0.2,
                    "il6_inhibition": 0.3,
                    "half_life_days": 7.0,
                },
            },
            lambda p: p.arm[1].mechanism.il6_inhibition,
            0.3,
        ),
        ("analysis", {"marker_weeks": [4, 8]}, lambda p: p.analysis.marker_weeks, [4, 8]),
        (
            "analysis",
            {"sre_types": ["pathological_fracture", "osteoporotic_fracture"]},
            lambda p: p.analysis.sre_types,
            ["pathological_fracture", "osteoporotic_fracture"],
        ),
    ],
)
def test_each_v2_field_is_accepted_and_round_trips(section, fields, read, expected):
    data = with_arm(**fields) if section == "arm" else {**with_arm(), section: {**MINIMAL.get(section, {}), **fields}}
    p = parse_protocol(data, "test")
    assert read(p) == expected
    assert parse_protocol(tomllib.loads(protocol_to_toml(p)), "resolved") == p


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            with_arm(
                dose_mg=None,
                drug="radium_223",
                dose_kbq_per_kg=55.0,
                every_weeks=4.0,
                doses=6,
                then=[{"after_months": 6.0, "drug": "radium_223", "dose_mg": 55.0, "every_weeks": 4.0}],
            ),
            "arm[1].then[0].dose_mg",
            "radium_223 is dosed by activity per body weight, not in mg",
        ),
        (with_arm(dose_mg=None), "arm[1].dose_mg", "drug 'zoledronic_acid' needs a dose"),
        (with_arm(drug="radium_223", dose_mg=None), "arm[1].dose_kbq_per_kg", "drug 'radium_223' needs a dose"),
        (
            with_arm(then=[{"after_months": 6.0, "drug": "denosumab", "every_weeks": 4.0}]),
            "arm[1].then[0].dose_mg",
            "drug 'denosumab' needs a dose",
        ),
        (
            with_arm(then=[{"after_months": 0.0, "drug": "none"}]),
            "arm[1].then[0].after_months",
            "0.0 is out of range: it must be greater than 0.0",
        ),
        (
            {**MINIMAL, "analysis": {"non_inferiority_hr": 0.9}},
            "analysis.non_inferiority_hr",
            "0.9 is out of range: it must be greater than 1.0",
        ),
        (
            {**MINIMAL, "analysis": {"non_inferiority_rd": 1.5}},
            "analysis.non_inferiority_rd",
            "1.5 is out of range: it must be less than 1.0",
        ),
        (
            with_arm(then=[{"after_months": 6.0, "drug": "none"}, {"after_months": 6.0, "drug": "none"}]),
            "arm[1].then[1].after_months",
            "not after the phase before it",
        ),
        (
            with_arm(then=[{"after_months": 6.0, "drug": "denosumb", "dose_mg": 120.0, "every_weeks": 4.0}]),
            "arm[1].then[0].drug",
            "Did you mean 'denosumab'?",
        ),
        (
            with_arm(then=[{"after_months": 6.0, "drug": "custom", "every_weeks": 2.0}]),
            "arm[1].mechanism",
            "then[0] gives drug 'custom', which needs an [arm.mechanism] table",
        ),
        (
            with_arm(concurrent=[{"drug": "radium_223", "dose_kbq_per_kg": 55.0, "doses": 6}]),
            "arm[1].concurrent[0].every_weeks",
            "is required but missing",
        ),
        (
            with_arm(concurrent=[{"drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0, "after_months": -1.0}]),
            "arm[1].concurrent[0].after_months",
            "it must be at least 0.0",
        ),
        (
            with_arm(
                stop_after_months=6.0,
                concurrent=[{"drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0, "after_months": 6.0}],
            ),
            "arm[1].concurrent[0].after_months",
            "when the arm's treatment has stopped (stop_after_months = 6)",
        ),
        (with_arm(doses=2.5), "arm[1].doses", "expected a whole number, got 2.5"),
        (with_arm(stop_on_onj="yes"), "arm[1].stop_on_onj", "expected true or false"),
        (with_arm(withhold_on_renal_toxicity=1), "arm[1].withhold_on_renal_toxicity", "expected true or false"),
        (with_arm(systemic_therapy=["chemotheraphy"]), "arm[1].systemic_therapy[0]", "Did you mean 'chemotherapy'?"),
        (with_arm(radiotherapy={"dose_gy": -8.0}), "arm[1].radiotherapy.dose_gy", "it must be greater than 0.0"),
        (with_arm(radiotherapy={"fractions": 2.0}), "arm[1].radiotherapy.fractions", "expected a whole number"),
        (
            with_arm(radiotherapy={"dose_gy": 8.0, "fraction": 1}),
            "arm[1].radiotherapy.fraction",
            "Did you mean 'fractions'?",
        ),
        (
            with_arm(surgery={"prophylactic_fixation": "no"}),
            "arm[1].surgery.prophylactic_fixation",
            "expected true or false",
        ),
        (
            with_arm(drug="custom", dose_mg=None, mechanism={"il6_inhibition": -0.1, "half_life_days": 7.0}),
            "arm[1].mechanism.il6_inhibition",
            "it must be at least 0.0",
        ),
        (
            {
                **MINIMAL,
                "cohort": {
                    **MINIMAL["cohort"],
                    "prior_treatment": {"drug": "none", "every_weeks": 4.0, "months": 12.0},
                },
            },
            "cohort.prior_treatment.drug",
            "'none' is not allowed",
        ),
        (
            {
                **MINIMAL,
                "cohort": {
                    **MINIMAL["cohort"],
                    "prior_treatment": {"drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0, "months": 0.0},
                },
            },
            "cohort.prior_treatment.months",
            "it must be greater than 0.0",
        ),
        (
            {**MINIMAL, "cohort": {**MINIMAL["cohort"], "by_primary": {"breast": {"systemic_therapy": ["hormonal"]}}}},
            "cohort.by_primary.breast.systemic_therapy[0]",
            "is not allowed",
        ),
        (
            {**MINIMAL, "analysis": {"marker_weeks": [13, 60]}},
            "analysis.marker_weeks[1]",
            "week 60 lies after the data cut-off (12 months = 52.2 weeks)",
        ),
        ({**MINIMAL, "analysis": {"marker_weeks": [0, 13]}}, "analysis.marker_weeks[0]", "it must be at least 1"),
        (
            {**MINIMAL, "analysis": {"sre_types": ["osteoporotic_fractur"]}},
            "analysis.sre_types[0]",
            "Did you mean 'osteoporotic_fracture'?",
        ),
    ],
)
def test_v2_errors_name_the_dotted_field(data, field, message):
    with pytest.raises(UserInputError) as info:
        parse_protocol(data, "dict")
    assert info.value.field == field
    assert message in info.value.problem and info.value.fix


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            with_arm(dose_mg=4000.0),
            "arm[1].dose_mg",
            "4000 mg of zoledronic_acid per administration is outside the usual 1-8 mg",
        ),
        (
            with_arm(drug="denosumab", dose_mg=1200.0),
            "arm[1].dose_mg",
            "1200 mg of denosumab per administration is outside the usual 30-240 mg",
        ),
        (
            with_arm(concurrent=[{"drug": "radium_223", "dose_kbq_per_kg": 550.0, "every_weeks": 4.0, "doses": 6}]),
            "arm[1].concurrent[0].dose_kbq_per_kg",
            "550 kBq/kg of radium_223 per administration is outside the usual 20-110 kBq/kg",
        ),
        (
            with_arm(concurrent=[{"drug": "radium_223", "dose_kbq_per_kg": 55.0, "every_weeks": 4.0}]),
            "arm[1].concurrent[0].doses",
            "no limit on the injections of radium_223: the label gives 6",
        ),
        (
            with_arm(then=[{"after_months": 6.0, "drug": "pamidronate", "dose_mg": 900.0, "every_weeks": 4.0}]),
            "arm[1].then[0].dose_mg",
            "900 mg of pamidronate",
        ),
        (
            {
                **MINIMAL,
                "cohort": {
                    **MINIMAL["cohort"],
                    "prior_treatment": {"drug": "zoledronic_acid", "dose_mg": 0.4, "every_weeks": 4.0, "months": 12.0},
                },
            },
            "cohort.prior_treatment.dose_mg",
            "0.4 mg of zoledronic_acid",
        ),
        (
            with_arm(radiotherapy={"dose_gy": 40.0, "fractions": 1}),
            "arm[1].radiotherapy.dose_gy",
            "40 Gy in 1 fraction is 40 Gy per fraction, above the usual maximum of 24 Gy",
        ),
        (
            with_arm(radiotherapy={"dose_gy": 16.0, "fractions": 1}),
            "arm[1].radiotherapy.dose_gy",
            "16 Gy in 1 fraction is 16 Gy per fraction, above the 10 Gy of conventional technique",
        ),
        (
            with_arm(radiotherapy={"dose_gy": 80.0, "fractions": 40}),
            "arm[1].radiotherapy.dose_gy",
            "80 Gy in 40 fractions is more than the usual 60 Gy of one palliative course",
        ),
        (
            {**MINIMAL, "cohort": {"primary": {"breast": 0.6, "prostate": 0.3}}},
            "cohort.primary",
            "the weights are fractions but sum to 0.9, not 1; they are used as relative weights "
            "(breast 66.7%, prostate 33.3%)",
        ),
        (
            {
                **MINIMAL,
                "cohort": {**MINIMAL["cohort"], "breast_subtype": {"hr_positive": 0.7, "triple_negative": 0.1}},
            },
            "cohort.breast_subtype",
            "the weights are fractions but sum to 0.8, not 1; they are used as relative weights "
            "(hr_positive 87.5%, triple_negative 12.5%)",
        ),
        (
            {**MINIMAL, "analysis": {"sre_types": ["pathological_fracture", "neutropenia"]}},
            "analysis.sre_types",
            "neutropenia is not skeletal",
        ),
        (
            {**MINIMAL, "analysis": {"non_inferiority_hr": 2.0}},
            "analysis.non_inferiority_hr",
            "a hazard-ratio margin of 2 is wider than the usual 1.05-1.5",
        ),
        (
            {**MINIMAL, "analysis": {"non_inferiority_rd": 0.3}},
            "analysis.non_inferiority_rd",
            "a risk-difference margin of 0.3 is wider than the usual 0.02-0.15",
        ),
    ],
)
def test_implausible_values_run_with_a_warning(data, field, message):
    with pytest.warns(ProtocolWarning) as record:
        p = parse_protocol(data, "dict")
    assert isinstance(p, Protocol)
    (warning,) = [w.message for w in record if w.message.field == field]
    assert message in warning.problem and str(warning).startswith(f"dict: {field}: ")


def test_plausible_protocols_give_no_warning(root):
    paths = [V2_EXAMPLE, *sorted((root / "protocols").rglob("*.toml"))]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtocolWarning)
        for path in paths:
            load_protocol(path)
        # whole-number weights are relative weights; SBRT 24 Gy in 2 fractions is usual
        parse_protocol(with_arm(radiotherapy={"dose_gy": 24.0, "fractions": 2, "technique": "stereotactic"}), "t")
        parse_protocol({**MINIMAL, "cohort": {"primary": {"breast": 2, "lung": 1}}}, "t")
        parse_protocol({**MINIMAL, "analysis": {"sre_types": ["osteoporotic_fracture"]}}, "t")
        # the margins of the pivotal denosumab trials (Stopeck 2010, Fizazi 2011)
        margins = parse_protocol({**MINIMAL, "analysis": {"non_inferiority_hr": 1.08, "non_inferiority_rd": 0.05}}, "t")
    assert (margins.analysis.non_inferiority_hr, margins.analysis.non_inferiority_rd) == (1.08, 0.05)
    assert len(paths) > 15


def _documented_fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """Names of every field of ``model`` and of the models it contains."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        stack = [info.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in seen:
                seen.add(annotation)
                names |= _documented_fields(annotation, seen)
            stack.extend(typing.get_args(annotation))
    return names


def test_every_field_is_in_the_user_reference(root):
    text = (root / "docs" / "protocol.md").read_text(encoding="utf-8")
    fields = _documented_fields(Protocol, set())
    assert {"prior_treatment", "then", "dose_kbq_per_kg", "il6_inhibition", "marker_weeks", "lesion_burden"} <= fields
    missing = sorted(f for f in fields if not re.search(rf"\b{re.escape(f)}\b", text))
    assert missing == []
    names = (*DRUGS, *SYSTEMIC_THERAPIES, *PROSTATE_STAGES, *COUNTABLE_EVENT_TYPES)
    assert sorted(n for n in names if f'"{n}"' not in text and f"`{n}`" not in text) == []
    assert "shared" not in text


# reading the file: regular files up to 1 MiB, a byte-order mark, YAML 1.2 (issue 17, defects 6, 11)

MINIMAL_TOML = (
    '[trial]\nname = "t"\npatients = 10\nhorizon_months = 12\n\n[cohort]\nprimary = { breast = 1.0 }\n\n'
    '[[arm]]\nname = "placebo"\ndrug = "none"\n'
)
MINIMAL_YAML = (
    "trial:\n  name: t\n  patients: 10\n  horizon_months: 12\ncohort:\n  primary: {breast: 1.0}\n"
    "arm:\n  - name: placebo\n    drug: none\n"
)


def _check_process(path: str) -> subprocess.CompletedProcess:
    """`vtrial check PATH` with 20 s and 1 GiB of address space at most (an endless read fails fast)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "vtrial.cli", "check", path],
        capture_output=True,
        text=True,
        timeout=20,
        preexec_fn=limit,
    )


def test_a_fifo_is_refused_instead_of_waiting_forever(tmp_path):
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    result = _check_process(str(fifo))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {fifo}: is not a regular file (a pipe, a device or a socket)")


def test_an_endless_device_is_refused_instead_of_filling_the_memory():
    result = _check_process("/dev/zero")
    assert result.returncode == 2
    assert result.stderr.startswith("error: /dev/zero: is not a regular file") and "Traceback" not in result.stderr


def test_files_up_to_one_mebibyte_are_read_and_larger_ones_refused(tmp_path):
    exact = tmp_path / "exact.toml"
    exact.write_text(MINIMAL_TOML + "#" * (MAX_PROTOCOL_BYTES - len(MINIMAL_TOML) - 1) + "\n")
    assert exact.stat().st_size == MAX_PROTOCOL_BYTES == 1_048_576
    assert load_protocol(exact).trial.patients == 10
    larger = tmp_path / "larger.toml"
    larger.write_text(MINIMAL_TOML + "#" * (MAX_PROTOCOL_BYTES - len(MINIMAL_TOML)) + "\n")
    with pytest.raises(UserInputError, match=r"larger.toml: is larger than 1 MiB \(1,048,576 bytes\)"):
        load_protocol(larger)


@pytest.mark.parametrize(("suffix", "text"), [(".toml", MINIMAL_TOML), (".yaml", MINIMAL_YAML)])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path, suffix, text):
    plain, marked = tmp_path / f"plain{suffix}", tmp_path / f"marked{suffix}"
    plain.write_text(text, encoding="utf-8")
    marked.write_text(text, encoding="utf-8-sig")
    assert marked.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert load_protocol(marked) == load_protocol(plain)


def test_a_yaml_key_given_twice_is_refused_naming_the_key_and_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(MINIMAL_YAML.replace("  patients: 10\n", "  patients: 10\n  patients: 2000\n"))
    with pytest.raises(UserInputError) as info:
        load_protocol(path)
    assert str(info.value) == (
        f"{path}:4: is not valid YAML: the key 'patients' is given twice "
        "Fix: remove one of the two (the last would otherwise win silently)"
    )


@pytest.mark.parametrize(("value", "patients"), [("0100", 100), ("+250", 250), ("0x10", 16), ("0o17", 15)])
def test_yaml_integers_follow_yaml_1_2(tmp_path, value, patients):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_YAML.replace("patients: 10", f"patients: {value}"))
    assert load_protocol(path).trial.patients == patients  # YAML 1.1 reads 0100 as octal 64


@pytest.mark.parametrize("value", ["1:40", "1_000"])
def test_yaml_1_1_only_numbers_are_text(tmp_path, value):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_YAML.replace("patients: 10", f"patients: {value}"))
    with pytest.raises(UserInputError, match="trial.patients"):  # YAML 1.1: 1:40 is 100 (base 60), 1_000 is 1000
        load_protocol(path)


def test_yaml_floats_follow_yaml_1_2(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_YAML.replace("horizon_months: 12", "horizon_months: 1.2e1"))
    assert load_protocol(path).trial.horizon_months == 12.0  # YAML 1.1 (PyYAML) reads 1.2e1 as text
