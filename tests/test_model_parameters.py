"""The parameter registry: every value lies in its documented range; overrides are validated."""

from pathlib import Path

import numpy as np
import pytest

from vtrial.model.parameters import REGISTRY, Parameters, markdown_table
from vtrial.vocabulary import PRIMARIES


def test_every_parameter_lies_in_its_range_and_has_a_source():
    for p in REGISTRY.values():
        assert p.low <= p.value <= p.high, p.name
        assert p.source and p.unit and p.meaning, p.name


def test_per_primary_parameters_cover_every_primary():
    params = Parameters()
    death = params.by_primary("death_hazard")
    assert death.shape == (len(PRIMARIES),)
    # lung and head-and-neck patients die faster than breast and prostate patients
    assert death[PRIMARIES.index("lung")] > 2 * death[PRIMARIES.index("breast")]


def test_overrides_are_validated():
    assert Parameters({"osteoblast_rate": 0.03}).osteoblast_rate == 0.03
    with pytest.raises(KeyError):
        Parameters({"osteoblast_rat": 0.03})
    with pytest.raises(ValueError):
        Parameters({"osteoblast_rate": 0.5})
    assert np.isclose(Parameters().bone_turnover_rate, REGISTRY["bone_turnover_rate"].value)


def test_docs_parameter_table_is_the_registry():
    doc = (Path(__file__).parent.parent / "docs" / "model.md").read_text()
    assert markdown_table() in doc
