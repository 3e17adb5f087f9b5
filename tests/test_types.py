"""The structural types of the model (vtrial/model/types.py) and the checks that typing the package added."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vtrial.calibration.targets import residual, tolerance
from vtrial.model.agents import AGENTS, Administration
from vtrial.model.systemic import TherapyEffect
from vtrial.model.types import ArmLike, MechanismLike
from vtrial.protocol import parse_protocol

ARMS = [
    {"name": "placebo", "drug": "none"},
    {
        "name": "custom",
        "drug": "custom",
        "dose_mg": 20.0,
        "every_weeks": 4.0,
        "mechanism": {"tgf_beta_inhibition": 0.6, "half_life_days": 14.0, "reference_dose_mg": 10.0},
    },
]


def _protocol(**analysis):
    return parse_protocol(
        {
            "trial": {"name": "t", "patients": 20, "horizon_months": 12},
            "cohort": {"primary": {"breast": 1.0}},
            "arm": ARMS,
            "analysis": analysis,
        },
        "t.toml",
    )


def _members(protocol_class: type) -> list[str]:
    return sorted(name for name, value in vars(protocol_class).items() if isinstance(value, property))


def test_the_protocol_arm_has_every_member_of_arm_like_and_its_mechanism_those_of_mechanism_like():
    arm = _protocol().arm[1]
    assert _members(ArmLike) == [
        "calcium_vitamin_d",
        "drug",
        "every_weeks",
        "mechanism",
        "name",
        "renal_adjustment",
        "stop_after_months",
    ]
    assert all(hasattr(arm, name) for name in _members(ArmLike))
    assert len(_members(MechanismLike)) == 11
    assert all(hasattr(arm.mechanism, name) for name in _members(MechanismLike))


def test_the_reference_arm_defaults_to_the_first_arm():
    assert _protocol().reference_arm == "placebo"
    assert _protocol(reference_arm="custom").reference_arm == "custom"


def test_an_agent_that_needs_a_dose_and_has_none_says_which_regimen_to_give():
    agent = AGENTS["zoledronic_acid"]
    with pytest.raises(
        ValueError, match=re.escape("zoledronic_acid needs a dose: dose_mg = 4.0 and every_weeks = 4.0 (Zometa label)")
    ):
        Administration(agent, np.array([0.0])).given_dose()
    assert Administration(agent, np.array([0.0]), dose_mg=4).given_dose() == 4.0


def test_a_therapy_that_kills_in_one_prostate_stage_only_is_refused():
    with pytest.raises(ValueError, match="a therapy kills in both prostate stages or in neither"):
        TherapyEffect(kill_sensitive="docetaxel_kill")


def test_a_median_not_reached_counts_as_the_follow_up_or_has_no_residual_without_one():
    tol = tolerance("median", "10.0")  # within 20%: 8 to 12, half-width 2
    assert residual(tol, None, 12.0) == pytest.approx((12.0 - 10.0) / 2.0)
    assert residual(tol, None, None) is None
    assert residual(tolerance("median", "not reached"), 5.0, None) is None
