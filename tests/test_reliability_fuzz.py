"""Hostile protocol files: every input is either a Protocol or a UserInputError, never another exception.

Inputs are mutations of a valid protocol (a key dropped, a value replaced by a hostile one, a
key added, a value nested deeply), random tables, random text and random bytes, written as
TOML or YAML files and loaded with :func:`vtrial.protocol.load_protocol` (and, as dicts, with
:func:`vtrial.protocol.parse_protocol`). An accepted protocol must survive its own round trip
through :func:`vtrial.protocol.protocol_to_toml`.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtrial.errors import UserInputError
from vtrial.protocol import Protocol, load_protocol, parse_protocol, protocol_to_toml

VALID: dict[str, Any] = {
    "trial": {
        "name": "fuzz",
        "title": "Fuzzed",
        "design": "parallel",
        "patients": 100,
        "horizon_months": 24.0,
        "accrual_months": 6.0,
        "dropout_per_year": 0.1,
        "seed": 3,
    },
    "cohort": {
        "primary": {"breast": 0.5, "prostate": 0.5},
        "age_years": {"mean": 60.0, "sd": 10.0, "min": 18.0, "max": 90.0},
        "ecog": [0.4, 0.5, 0.1],
        "creatinine_clearance_ml_min": {"mean": 80.0, "sd": 20.0, "min": 15.0, "max": 150.0},
        "lesions": {"mean": 4.0},
        "eligibility": {"min_creatinine_clearance_ml_min": 30.0, "max_ecog": 2},
    },
    "arm": [
        {"name": "zol", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0},
        {
            "name": "agent",
            "drug": "custom",
            "every_weeks": 3.0,
            "mechanism": {"tgf_beta_inhibition": 0.6, "half_life_days": 14.0},
        },
    ],
    "analysis": {"reference_arm": "zol", "sre_window_days": 21.0, "landmarks_months": [12.0, 24.0]},
}

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_SETTINGS = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = st.one_of(
    st.sampled_from(
        [
            "trial",
            "cohort",
            "arm",
            "analysis",
            "name",
            "drug",
            "dose_mg",
            "every_weeks",
            "primary",
            "breast",
            "mean",
            "sd",
            "min",
            "max",
            "by_primary",
            "mechanism",
            "sites",
            "ecog",
        ]
    ),
    st.text(max_size=12),
)
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, -(2**63), 2**63, 2**64, 10**30, 10**400]),
    st.floats(),  # NaN, inf, -inf, subnormals, huge
    st.sampled_from([0.0, -0.0, -1.0, 1e-300, 1e300, 1.7976931348623157e308, math.nan, math.inf, -math.inf]),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "../x",
            "/abs",
            "a/b",
            ".hidden",
            "CON",
            "\u202e",
            "é" * 300,
            "x" * 10_000,
            "none",
            "custom",
            "hypercalcaemia",
            "1e400",
        ]
    ),
    st.lists(st.integers() | st.floats() | st.text(max_size=5), max_size=4),
    st.dictionaries(KEYS, st.integers() | st.floats() | st.text(max_size=5), max_size=4),
)
TABLES = st.recursive(
    HOSTILE,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a nested dict/list structure (the root excluded)."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


ALL_PATHS = paths(VALID)


def nested(depth: int) -> Any:
    value: Any = 1.0
    for _ in range(depth):
        value = {"a": value}
    return value


@st.composite
def mutated(draw: st.DrawFn) -> dict:
    """The valid protocol after one to three hostile edits."""
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
        op = draw(st.sampled_from(["drop", "replace", "add", "nest"]))
        if op == "drop":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(TABLES)
        elif op == "add":
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(HOSTILE)
            elif isinstance(target, list):
                target.append(draw(HOSTILE))
        else:
            parent[path[-1]] = nested(draw(st.sampled_from([2, 50, 3000])))
    return data


def dump_toml(data: Any) -> str | None:
    """TOML text of ``data``, or None when TOML cannot express it (None, non-str keys, ...)."""
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError, RecursionError):
        return None


def dump_yaml(data: Any) -> str | None:
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, RecursionError, TypeError):
        return None


def outcome_of_file(content: str | bytes, suffix: str) -> Protocol | UserInputError:
    """Load ``content`` from a file; anything but a Protocol or a UserInputError fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"protocol{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        try:
            protocol = load_protocol(path)
        except UserInputError as error:
            assert str(error).startswith(str(path)), "the message must name the file"
            return error
        assert isinstance(protocol, Protocol)
        resolved = path.with_name("resolved.toml")
        resolved.write_text(protocol_to_toml(protocol), encoding="utf-8")
        assert load_protocol(resolved) == protocol
        return protocol


def outcome_of_dict(data: Any) -> Protocol | UserInputError:
    try:
        return parse_protocol(data, "fuzz")
    except UserInputError as error:
        assert str(error).startswith("fuzz")
        return error


def check_everywhere(data: Any) -> None:
    outcome_of_dict(data)
    if (text := dump_toml(data)) is not None:
        outcome_of_file(text, ".toml")
    if (text := dump_yaml(data)) is not None:
        outcome_of_file(text, ".yaml")


def test_the_unmutated_protocol_is_accepted_from_toml_and_yaml():
    for text, suffix in ((dump_toml(VALID), ".toml"), (dump_yaml(VALID), ".yaml")):
        protocol = outcome_of_file(text, suffix)
        assert isinstance(protocol, Protocol)
        assert protocol.trial.patients == 100 and protocol.arm[1].mechanism.tgf_beta_inhibition == 0.6


@SETTINGS
@given(mutated())
def test_mutated_protocols_are_accepted_or_rejected_cleanly(data):
    check_everywhere(data)


@SETTINGS
@given(st.dictionaries(KEYS, TABLES, max_size=5))
def test_random_tables_are_rejected_cleanly(data):
    assert isinstance(outcome_of_dict(data), UserInputError)
    if (text := dump_toml(data)) is not None:
        assert isinstance(outcome_of_file(text, ".toml"), UserInputError)


@SETTINGS
@given(st.text(max_size=300), st.sampled_from([".toml", ".yaml", ".yml"]))
def test_random_text_is_rejected_cleanly(text, suffix):
    assert isinstance(outcome_of_file(text, suffix), UserInputError)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([".toml", ".yaml"]))
def test_random_bytes_are_rejected_cleanly(content, suffix):
    assert isinstance(outcome_of_file(content, suffix), UserInputError)


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("x = " + "[" * 5000 + "]" * 5000, ".toml"),
        ("[" * 5000 + "]" * 5000, ".yaml"),
        ("a: " + "{b: " * 3000 + "1" + "}" * 3000, ".yaml"),
    ],
    ids=["toml-arrays", "yaml-lists", "yaml-maps"],
)
def test_deep_nesting_is_a_user_error(text, suffix):
    error = outcome_of_file(text, suffix)
    assert isinstance(error, UserInputError)
    assert "nested too deeply" in str(error)


def test_deep_nesting_in_a_dict_is_a_user_error():
    data = copy.deepcopy(VALID)
    data["cohort"]["primary"] = nested(5000)
    error = outcome_of_dict(data)
    assert isinstance(error, UserInputError)
    assert len(str(error)) < 1000  # the value is shown shortened, not 5000 levels deep


@pytest.mark.parametrize(
    ("section", "key", "value", "field"),
    [
        ("trial", "patients", 10**30, "trial.patients"),
        ("trial", "horizon_months", 1e300, "trial.horizon_months"),
        ("cohort", "primary", {"breast": 1e308, "lung": 1e308}, "cohort.primary"),
        ("cohort", "age_years", {"mean": 1e300, "sd": 1.0, "min": 0.0, "max": 1e301}, "cohort.age_years.max"),
    ],
)
def test_huge_values_the_engine_cannot_run_are_rejected(section, key, value, field):
    data = copy.deepcopy(VALID)
    data[section][key] = value
    error = outcome_of_dict(data)
    assert isinstance(error, UserInputError)
    assert error.field == field


@pytest.mark.parametrize(("key", "value"), [("dose_mg", 1e300), ("every_weeks", 1e-300)])
def test_doses_the_model_cannot_represent_are_rejected(key, value):
    data = copy.deepcopy(VALID)
    data["arm"][0][key] = value
    error = outcome_of_dict(data)
    assert isinstance(error, UserInputError)
    assert error.field == f"arm[0].{key}"


@pytest.mark.slow
@SLOW_SETTINGS
@given(mutated())
def test_mutated_protocols_many_examples(data):
    check_everywhere(data)


@pytest.mark.slow
@SLOW_SETTINGS
@given(st.binary(max_size=2000) | st.text(max_size=2000), st.sampled_from([".toml", ".yaml"]))
def test_random_content_many_examples(content, suffix):
    assert isinstance(outcome_of_file(content, suffix), UserInputError)


CLI_CASES = {
    "valid.toml": tomli_w.dumps(VALID),
    "deep.toml": "x = " + "[" * 5000 + "]" * 5000,
    "binary.toml": bytes(range(256)),
    "typo.yaml": yaml.safe_dump({**VALID, "trail": {}}),
    "huge.toml": tomli_w.dumps({**VALID, "trial": {**VALID["trial"], "patients": 10**30}}),
    "utf16.toml": tomli_w.dumps(VALID).encode("utf-16"),
    "nan.yaml": yaml.safe_dump(VALID).replace("horizon_months: 24.0", "horizon_months: .nan"),
}


def test_cli_check_exits_0_or_2_without_traceback(tmp_path):
    procs = {}
    for name, content in CLI_CASES.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "vtrial.cli", "check", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
    codes = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in out + err, (name, err)
        codes[name] = proc.returncode
        if proc.returncode == 2:
            assert err.startswith("error: ") and name in err
    assert codes == {name: 0 if name == "valid.toml" else 2 for name in CLI_CASES}
