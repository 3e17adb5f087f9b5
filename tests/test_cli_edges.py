"""The command line's rough edges of issue 15, one reproduction each."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.conftest import two_arm_protocol
from vtrial import __version__
from vtrial.batch import format_summary
from vtrial.calibration.validate import COLUMNS, print_table
from vtrial.cli import main
from vtrial.engine import run_trial
from vtrial.protocol import load_protocol

COMMANDS = ["check", "schema", "cohort", "run", "batch", "report", "validate", "calibrate"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_misspelled_required_key_shows_did_you_mean_at_once(tmp_path, capsys) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(two_arm_protocol("typo", 10).replace("horizon_months", "horizon_month"))
    code, _, err = run_cli(["check", str(path)], capsys)
    assert code == 2
    assert err.startswith(
        f"error: {path}:4: trial.horizon_month: unknown key 'horizon_month'. Did you mean 'horizon_months'?"
    )


def test_single_arm_table_names_double_brackets(tmp_path, capsys) -> None:
    path = tmp_path / "one.toml"
    text = two_arm_protocol("one", 10)
    path.write_text(text[: text.index('[[arm]]\nname = "zoledronic_acid"')].replace("[[arm]]", "[arm]"))
    code, _, err = run_cli(["check", str(path)], capsys)
    assert code == 2
    assert err == (
        f"error: {path}:10: arm: is a single table [arm], not a list of tables Fix: write [[arm]] "
        "(two brackets) above each arm, or a list in YAML (docs/protocol.md describes every field)\n"
    )


def test_two_arm_tables_name_double_brackets(tmp_path, capsys) -> None:
    path = tmp_path / "two.toml"
    path.write_text(two_arm_protocol("two", 10).replace("[[arm]]", "[arm]"))
    code, _, err = run_cli(["check", str(path)], capsys)
    assert code == 2
    assert err == (
        f"error: {path}:14: is not valid TOML: Cannot declare ('arm',) twice Fix: a list of arm tables is "
        "written [[arm]] (two brackets) above each arm; [arm] declares a single table, once "
        "(docs/protocol.md describes every field)\n"
    )


class Interrupt(Exception):
    """Stands for Ctrl-C after the blocks are written."""


def test_interrupted_run_asks_for_resume_or_force(tmp_path, capsys) -> None:
    path = tmp_path / "p.toml"
    path.write_text(two_arm_protocol("p", 40))
    out = tmp_path / "run"

    def interrupt(_: object) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        run_trial(load_protocol(path), out, jobs=1, block_size=10, finish=interrupt)
    partial = tmp_path / ".run.partial"
    parts = sorted(p.name for p in (partial / "parts").iterdir())
    assert len(parts) == 3 * 8  # 2 arms x 4 blocks x 3 tables
    code, _, err = run_cli(["run", str(path), "--out", str(out), "--jobs", "1", "--quiet"], capsys)
    assert code == 2
    assert err == (
        f"error: {out}: an interrupted run of this folder is kept, with its finished blocks, in the hidden "
        "folder .run.partial Fix: pass --resume to finish it (same protocol and options), or --force to "
        "discard it and start again\n"
    )
    assert sorted(p.name for p in (partial / "parts").iterdir()) == parts  # nothing thrown away
    code, _, _ = run_cli(
        ["run", str(path), "--out", str(out), "--jobs", "1", "--quiet", "--block-size", "10", "--resume"], capsys
    )
    assert code == 0 and (out / "summary.json").is_file() and not partial.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_option_types_as_words(command: str, capsys) -> None:
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    assert not re.search(r"<(bool|int|float|list\[str\])>", out), out
    assert re.search(r"--help\s+Show this message", out)  # a flag: no type
    if command == "run":
        assert re.search(r"--jobs\s+INTEGER\s", out) and re.search(r"--force\s+Replace", out)


def test_version(capsys) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert (code, out) == (0, f"vtrial {__version__}\n")


def test_validate_table_shows_endpoints(capsys) -> None:
    row = dict.fromkeys(COLUMNS, None)
    row.update(
        target="STO-02",
        version=1,
        endpoint="median time to first on-study SRE",
        compared="denosumab",
        unit="months",
        published="26.4",
        tolerance_low=20.0,
        tolerance_high=30.0,
        simulated=25.0,
        simulated_ci_low=22.0,
        simulated_ci_high=28.0,
        inside=True,
    )
    print_table(pd.DataFrame([row], columns=list(COLUMNS)))
    out = capsys.readouterr().out
    assert "STO-02" in out and "median time to first" in out


def test_batch_columns_align_on_long_names() -> None:
    long = "a-very-long-trial-name-that-exceeds-the-column"
    endpoints = {"first_and_subsequent_sre": {"power_two_sided": 0.95}, "overall_survival": {"power_two_sided": 0.05}}
    summary = [
        {
            "trial": long,
            "patients": 2046,
            "arm": "zoledronic_acid_every_12_weeks",
            "reference": "zoledronic_acid_every_4_weeks",
            "replicates": 100,
            "power_two_sided": 0.8,
            "power_one_sided": 0.9,
            "hazard_ratio": {"median": 0.85},
            "endpoints": endpoints,
            "non_inferiority": {"hazard_ratio": {"probability": 0.97}},
        },
        {
            "trial": "short",
            "patients": 300,
            "arm": "b",
            "reference": "a",
            "replicates": 5,
            "power_two_sided": None,
            "power_one_sided": 0.1,
            "hazard_ratio": {"median": 1.2},
            "endpoints": endpoints,
            "non_inferiority": None,
        },
    ]
    lines = format_summary(summary).splitlines()
    assert len({len(line) for line in lines}) == 1  # every line as wide as the header
    starts = [line.index("100") + 3 for line in lines[2:3]] + [lines[3].index(" 5 ") + 2]
    assert starts[0] == starts[1]  # the R column ends at the same place
    # trial, N (4 wide: "2046"), comparison, R (3 wide: "100"), then the first power column
    assert (
        lines[0].index("pow 1st SRE")
        == len(long) + 1 + 4 + 1 + len("zoledronic_acid_every_12_weeks vs zoledronic_acid_every_4_weeks") + 1 + 3 + 1
    )
