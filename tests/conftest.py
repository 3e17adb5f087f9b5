"""Shared fixtures: paths of the shipped protocols and the contract example."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT.parent / "shared" / "examples" / "contract.toml"
#: Shipped protocols that use version-2 fields: the version-1 schema rejects them until the
#: version-2 schema is merged (tests/test_model_local_therapy.py runs their arms meanwhile).
V2_PROTOCOLS = frozenset({"radiotherapy-fractionation.toml"})


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def contract_path() -> Path:
    if not CONTRACT.exists():
        pytest.skip("the shared contract example is not available")
    return CONTRACT
