"""Shared fixtures: paths of the shipped protocols and the contract example."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT.parent / "shared" / "examples" / "contract.toml"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def contract_path() -> Path:
    if not CONTRACT.exists():
        pytest.skip("the shared contract example is not available")
    return CONTRACT
