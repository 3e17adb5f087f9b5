"""Shared fixtures: paths of the shipped protocols and the contract example."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT.parent / "shared" / "examples" / "contract.toml"


def two_arm_protocol(name: str, patients: int) -> str:
    """A small placebo vs zoledronic acid protocol over 3 months (breast and lung), as TOML text."""
    return f"""\
[trial]
name = "{name}"
patients = {patients}
horizon_months = 3
seed = 5

[cohort]
primary = {{ breast = 0.5, lung = 0.5 }}

[[arm]]
name = "placebo"
drug = "none"

[[arm]]
name = "zoledronic_acid"
drug = "zoledronic_acid"
dose_mg = 4.0
every_weeks = 4.0
"""


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def contract_path() -> Path:
    if not CONTRACT.exists():
        pytest.skip("the shared contract example is not available")
    return CONTRACT
