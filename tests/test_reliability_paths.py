"""Safety of paths and names: a protocol cannot write outside its run folder nor run code.

Trial names name the run folder, so only letters, digits, '-' and '_' are accepted, at most
128 characters, and not a Windows device name (CON, NUL, COM1, ...). ``--out`` is used exactly
as given. YAML is read with the safe loader: tags that construct Python objects are rejected.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vtrial.engine import run_trial
from vtrial.errors import UserInputError
from vtrial.protocol import MAX_NAME_LENGTH, load_protocol, parse_protocol

BASE = {
    "trial": {"name": "paths", "patients": 4, "horizon_months": 2, "seed": 1},
    "cohort": {"primary": {"breast": 1.0}},
    "arm": [{"name": "placebo", "drug": "none"}],
}


def with_name(name: str) -> dict:
    data = copy.deepcopy(BASE)
    data["trial"]["name"] = name
    return data


REJECTED = [
    "../x",
    "..",
    ".",
    "/abs",
    "a/b",
    "a\\b",
    ".hidden",
    "a.b",
    "a b",
    "",
    "x\n",
    "a\x00b",
    "é",
    "ａ",
    "x" * (MAX_NAME_LENGTH + 1),
    "CON",
    "nul",
    "Aux",
    "prn",
    "COM1",
    "lpt9",
    "$HOME",
    "~",
    "a:b",
    "*",
]
ACCEPTED = ["a", "A-b_9", "-rf", "__init__", "x" * MAX_NAME_LENGTH, "CONSOLE", "com10", "nul-trial"]


@pytest.mark.parametrize("name", REJECTED)
def test_unsafe_trial_names_are_rejected(name):
    with pytest.raises(UserInputError) as error:
        parse_protocol(with_name(name), "p.toml")
    assert error.value.field == "trial.name"


@pytest.mark.parametrize("name", ACCEPTED)
def test_safe_trial_names_are_accepted(name):
    assert parse_protocol(with_name(name), "p.toml").trial.name == name


@pytest.mark.parametrize("name", ["-rf", "x" * MAX_NAME_LENGTH])
def test_default_run_folder_is_inside_outputs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_trial(parse_protocol(with_name(name), "p.toml"), jobs=1)
    assert result.run_dir == Path("outputs") / name
    assert (tmp_path / "outputs" / name / "patients.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == [name]


def test_arm_names_never_reach_the_file_system(tmp_path, monkeypatch):
    """Arm names are data (table values), not paths: '../' in one writes nothing elsewhere."""
    data = copy.deepcopy(BASE)
    data["arm"] = [{"name": "../../escape", "drug": "none"}, {"name": "/etc/x", "drug": "none"}]
    monkeypatch.chdir(tmp_path)
    run_trial(parse_protocol(data, "p.toml"), Path("deep") / "run", jobs=1)
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert found == [
        "deep",
        "deep/run",
        "deep/run/events.parquet",
        "deep/run/manifest.json",
        "deep/run/markers.parquet",
        "deep/run/patients.parquet",
        "deep/run/protocol.toml",
    ]


@pytest.mark.parametrize("out", ["my run v1.2", "nested/a/b", ".dotted"])
def test_out_is_honoured_as_given(out, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_trial(parse_protocol(BASE, "p.toml"), Path(out), jobs=1)
    assert result.run_dir == Path(out)
    assert (tmp_path / out / "patients.parquet").is_file()
    assert not list(tmp_path.rglob("*.partial")) and not (tmp_path / "outputs").exists()


UNSAFE_YAML = [
    "trial: !!python/object/apply:os.system ['touch {marker}']\n",
    "trial: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
    "trial: !!python/name:os.system\n",
    "!!python/object/apply:builtins.exec [\"open('{marker}', 'w')\"]\n",
]


@pytest.mark.parametrize("text", UNSAFE_YAML)
def test_yaml_python_tags_are_rejected_and_nothing_runs(text, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(text.format(marker=marker))
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_protocol(path)
    assert not marker.exists()


def test_cli_check_rejects_yaml_python_tags_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(
        yaml.safe_dump({"trial": {"name": "x"}}) + UNSAFE_YAML[0].format(marker=marker).replace("trial", "t")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "vtrial.cli", "check", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not valid YAML" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "title", ["__import__('os').system('touch MARKER')", "{{ 7*7 }}", "${HOME}", "$(touch MARKER)", "`touch MARKER`"]
)
def test_values_that_look_like_code_stay_text(title, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = copy.deepcopy(BASE)
    data["trial"]["title"] = title
    path = tmp_path / "p.toml"
    path.write_text(
        f"[trial]\nname = 'paths'\ntitle = {title!r}\npatients = 4\nhorizon_months = 2\n"
        "[cohort]\nprimary = { breast = 1.0 }\n[[arm]]\nname = 'placebo'\ndrug = 'none'\n"
    )
    assert load_protocol(path).trial.title == title
    assert parse_protocol(data, "p").trial.title == title
    assert not (tmp_path / "MARKER").exists()
