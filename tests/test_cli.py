"""The command line: exit codes, messages that name the field, check and cohort commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from vtrial import __version__
from vtrial.cli import main

BROKEN = Path(__file__).parent / "broken"

#: Every broken protocol and the dotted field (or the problem, for files that do not parse)
#: its message must name.
EXPECTED = {
    "accrual_after_horizon.toml": "trial.accrual_months",
    "age_min_above_max.toml": "cohort.age_years",
    "age_typo_subkey.toml": "cohort.age_years.meen",
    "allocation_zero.toml": "arm[0].allocation",
    "bad_trial_name.toml": "trial.name",
    "binary.toml": "is not a text file",
    "blank.yaml": "the file is empty",
    "custom_without_mechanism.toml": "arm[1].mechanism",
    "design_unknown.toml": "trial.design",
    "duplicate_arm_names.toml": "arm[1].name",
    "ecog_not_one.toml": "cohort.ecog",
    "eligibility_impossible.toml": "cohort.eligibility.min_creatinine_clearance_ml_min",
    "empty.toml": "the file is empty",
    "empty_arm_list.yaml": "arm:",
    "float_patients.toml": "trial.patients",
    "inf_horizon.toml": "trial.horizon_months",
    "landmark_after_horizon.toml": "analysis.landmarks_months[1]",
    "max_ecog_out_of_range.toml": "cohort.eligibility.max_ecog",
    "mechanism_fraction_above_one.toml": "arm[1].mechanism.tgf_beta_inhibition",
    "mechanism_on_named_drug.toml": "arm[1].mechanism",
    "missing_dose.toml": "arm[1].dose_mg",
    "missing_interval.toml": "arm[1].every_weeks",
    "missing_trial_name.toml": "trial.name",
    "negative_dose.toml": "arm[1].dose_mg",
    "negative_horizon.toml": "trial.horizon_months",
    "negative_stop.toml": "arm[1].stop_after_months",
    "negative_weight.toml": "cohort.primary.lung",
    "no_arm.toml": "arm:",
    "not_toml.toml": "not_toml.toml:1: is not valid TOML",
    "probability_above_one.toml": "cohort.prior_sre",
    "prostate_female.toml": "cohort.by_primary.prostate.female_fraction",
    "trial_name_with_space.toml": "trial.name",
    "typo_arm_key.toml": "typo_arm_key.toml:17: arm[1].evry_weeks",
    "typo_key.toml": "typo_key.toml:5: trial.horizon_month",
    "unknown_drug.toml": "arm[1].drug",
    "unknown_primary.toml": "cohort.primary.brest",
    "unknown_reference_arm.toml": "analysis.reference_arm",
    "unknown_site.toml": "cohort.by_primary.breast.sites.spine",
    "breast_subtype_negative.toml": "cohort.breast_subtype.her2_positive: weight -0.2 is negative",
    "breast_subtype_unknown.toml": "cohort.breast_subtype.her2_postive: unknown breast-cancer subtype 'her2_postive'. "
    "Did you mean 'her2_positive'?",
    "breast_subtype_without_breast.toml": "cohort.breast_subtype: breast_subtype is given, but breast has no weight",
    "unknown_sre_type.toml": "analysis.sre_types[1]",
    "weights_zero.toml": "cohort.primary",
    "wrong_type_patients.toml": "trial.patients",
    "yaml_bad_syntax.yaml": "yaml_bad_syntax.yaml:3: is not valid YAML",
    "yaml_list.yaml": "not a mapping",
    "yaml_typo_key.yaml": "yaml_typo_key.yaml:10: arm[0].alocation",
    "zero_interval.toml": "arm[1].every_weeks",
    "zero_patients.toml": "trial.patients",
    # protocol version 2
    "v2_arm_systemic_therapy_twice.toml": "arm[1].systemic_therapy: 'androgen_deprivation' is listed twice",
    "v2_concurrent_none.toml": "arm[1].concurrent[0].drug: 'none' is not allowed",
    "v2_doses_zero.toml": "arm[1].doses: 0 is out of range",
    "v2_kbq_on_denosumab.toml": "arm[1].dose_kbq_per_kg: dose_kbq_per_kg is the activity of radium_223",
    "v2_marker_weeks_decreasing.toml": "analysis.marker_weeks: marker_weeks [25, 13] are not increasing",
    "v2_mechanism_homing_above_one.toml": "arm[1].mechanism.homing_inhibition",
    "v2_prior_treatment_typo.toml": "cohort.prior_treatment.month: unknown key 'month'. Did you mean 'months'?",
    "v2_prostate_stage_unknown.toml": "cohort.prostate_stage: 'castrate_resistant' is not allowed. Did you mean "
    "'castration_resistant'?",
    "v2_prostate_stage_without_prostate.toml": "cohort.prostate_stage: prostate_stage = 'castration_sensitive', "
    "but prostate has no weight",
    "v2_radium_dose_mg.toml": "arm[1].concurrent[0].dose_mg: radium_223 is dosed by activity per body weight, not "
    "in mg Fix: replace dose_mg with dose_kbq_per_kg",
    "v2_rt_dose_zero.toml": "arm[1].radiotherapy.dose_gy: 0.0 is out of range: it must be greater than 0.0",
    "v2_rt_technique_unknown.toml": "arm[1].radiotherapy.technique: 'stereotatic' is not allowed. Did you mean "
    "'stereotactic'?",
    "v2_rt_zero_fractions.toml": "arm[1].radiotherapy.fractions: 0 is out of range: it must be at least 1",
    "v2_systemic_therapy_typo.toml": "cohort.systemic_therapy[0]: 'androgen_deprevation' is not allowed. Did you "
    "mean 'androgen_deprivation'?",
    "v2_then_after_horizon.toml": "arm[1].then[0].after_months: starts at month 30, at or after the data cut-off",
    "v2_then_after_stop.toml": "arm[1].then[0].after_months: starts at month 12, when the arm's treatment has stopped",
    "v2_then_missing_after.toml": "arm[1].then[0].after_months: is required but missing",
    "v2_then_missing_drug.toml": "arm[1].then[0].drug: is required but missing",
    "v2_then_not_in_order.toml": "arm[1].then[1].after_months: the phase starts at month 6, not after the phase "
    "before it (month 12)",
}


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI entry point in-process; exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def run_process(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vtrial.cli", *argv], capture_output=True, text=True, timeout=120)


def test_corpus_is_complete():
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_protocol_exits_2_naming_the_field(capsys, name):
    code, out, err = run_main(capsys, "check", str(BROKEN / name))
    assert code == 2
    assert err.startswith("error: ") and EXPECTED[name] in err and "Fix:" in err
    assert "Traceback" not in err and "ok:" not in out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("typo_key.toml", "trial.horizon_month"),
        ("binary.toml", "is not a text file"),
        ("unknown_primary.toml", "cohort.primary.brest"),
        ("yaml_list.yaml", "not a mapping"),
    ],
)
def test_real_process_exits_2_without_traceback(name, expected):
    result = run_process("check", str(BROKEN / name))
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_file_and_directory_exit_2(tmp_path):
    missing = run_process("check", str(tmp_path / "absent.toml"))
    assert missing.returncode == 2 and "absent.toml: no such file" in missing.stderr
    directory = run_process("check", str(tmp_path))
    assert directory.returncode == 2 and "is a directory" in directory.stderr
    assert "Traceback" not in missing.stderr + directory.stderr


def test_usage_errors_exit_2(capsys):
    code, _, err = run_main(capsys, "cohort", "protocols/example.toml", "--out")
    assert code == 2 and "--out" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_broken_protocol_in_a_real_process(name):
    result = run_process("check", str(BROKEN / name))
    assert result.returncode == 2 and EXPECTED[name] in result.stderr and "Traceback" not in result.stderr


def test_check_accepts_every_shipped_protocol_and_the_contract(root, contract_path):
    shipped = sorted(str(p) for p in (root / "protocols").glob("*.toml"))
    paths = [*shipped, str(contract_path)]
    assert {"example.toml", "breast.toml", "prostate.toml", "lung.toml", "head_and_neck.toml"} <= {
        Path(p).name for p in shipped
    }
    result = run_process("check", *paths)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"ok: {p}" for p in paths]


def test_check_show_prints_a_protocol_that_checks_again(capsys, root, tmp_path):
    code, out, _ = run_main(capsys, "check", "--show", str(root / "protocols" / "example.toml"))
    assert code == 0 and "[cohort.by_primary.lung]" in out and "seed = 20101" in out
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(out.rsplit("ok: ", 1)[0])
    assert run_main(capsys, "check", str(resolved))[0] == 0


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"vtrial {__version__}"


def test_cohort_writes_one_row_per_patient(root, tmp_path):
    out = tmp_path / "cohort.parquet"
    result = run_process(
        "cohort", str(root / "protocols" / "example.toml"), "--out", str(out), "--patients", "250", "--seed", "9"
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out)
    assert len(table) == 250 and table["patient_id"].is_unique
    assert {"primary", "age_years", "sex", "ecog", "n_lesions", "lesion_site"} <= set(table.columns)
    assert set(table["primary"].astype(str)) <= {"breast", "prostate", "lung"}


def test_cohort_rejects_a_bad_override(capsys, root, tmp_path):
    code, _, err = run_main(
        capsys,
        "cohort",
        str(root / "protocols" / "example.toml"),
        "--out",
        str(tmp_path / "c.parquet"),
        "--patients",
        "0",
    )
    assert code == 2 and "--patients" in err


def test_check_accepts_the_v2_example():
    result = run_process("check", str(Path(__file__).parent / "data" / "contract_v2.toml"))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.endswith("contract_v2.toml\n")


IMPLAUSIBLE = """[trial]
name = "t"
patients = 10
horizon_months = 12
[cohort]
primary = { breast = 0.6, lung = 0.3 }
[[arm]]
name = "zol"
drug = "zoledronic_acid"
dose_mg = 4000.0
every_weeks = 4.0
[arm.radiotherapy]
dose_gy = 40.0
fractions = 1
"""


def test_implausible_values_are_printed_once_as_warnings(capsys, tmp_path):
    path = tmp_path / "implausible.toml"
    path.write_text(IMPLAUSIBLE)
    code, out, err = run_main(capsys, "check", str(path), str(path))
    assert code == 0 and out == f"ok: {path}\nok: {path}\n"
    lines = err.splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "cohort.primary",
        "arm[0].dose_mg",
        "arm[0].radiotherapy.dose_gy",
    ]
    assert lines[1].startswith(
        f"warning: {path}: arm[0].dose_mg: 4000 mg of zoledronic_acid per administration is outside the usual 1-8 mg"
    )


def test_warnings_stay_warnings_in_a_real_process_with_python_warnings_as_errors(tmp_path):
    path = tmp_path / "implausible.toml"
    path.write_text(IMPLAUSIBLE)
    result = subprocess.run(
        [sys.executable, "-m", "vtrial.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0 and result.stdout == f"ok: {path}\n"
    assert result.stderr.count("warning: ") == 3 and "Traceback" not in result.stderr


def test_schema_prints_the_json_schema_of_the_protocol(capsys):
    code, out, _ = run_main(capsys, "schema")
    schema = json.loads(out)
    assert (
        code == 0
        and schema["title"] == "Protocol"
        and set(schema["properties"]) == {"trial", "cohort", "arm", "analysis"}
    )
    arm = schema["$defs"]["Arm"]["properties"]
    assert {"then", "concurrent", "radiotherapy", "surgery", "doses", "dose_kbq_per_kg", "stop_on_onj"} <= set(arm)
    assert "radium_223" in json.dumps(arm["drug"])
    assert schema["$defs"]["Radiotherapy"]["properties"]["technique"]["enum"] == ["conventional", "stereotactic"]


def test_a_run_folder_s_protocol_does_not_repeat_the_warnings(tmp_path):
    """`vtrial run` warns when it loads the protocol; reading the run folder's copy for the report is silent."""
    from vtrial.analysis.run import read_protocol

    (tmp_path / "protocol.toml").write_text(IMPLAUSIBLE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_protocol(tmp_path).arm[0].dose_mg == 4000.0


# --------------------------------------------------------------------------------------------
# flags: checked in one place, before any folder is made (issue 17, defect 5)

#: Bad flags of `vtrial run` and the start of the message each must give (after "error: ").
BAD_RUN_FLAGS = {
    "jobs-huge": (["--jobs", "1000000"], "--jobs: must be a number of workers from 1 to 1024, got 1000000"),
    "jobs-zero": (["--jobs", "0"], "--jobs: must be a number of workers from 1 to 1024, got 0"),
    "replicate-negative": (["--replicate", "-1"], "--replicate: replicate must be from 0 to 2**63 - 1, got -1"),
    "scheduler-malformed": (
        ["--backend", "dask", "--scheduler", "not-an-address"],
        "--scheduler: 'not-an-address' is not a scheduler address",
    ),
    "scheduler-unreachable": (
        ["--backend", "dask", "--scheduler", "tcp://127.0.0.1:1"],
        "--scheduler: cannot reach the dask scheduler at tcp://127.0.0.1:1",
    ),
    "scheduler-without-dask": (
        ["--scheduler", "tcp://127.0.0.1:8786"],
        "--scheduler: a scheduler is used only by the dask backend",
    ),
    "backend-unknown": (["--backend", "foo"], "--backend: unknown backend 'foo'"),
    "block-size-zero": (["--block-size", "0"], "--block-size: block size must be positive, got 0"),
    "out-name-too-long": (["--out", "a" * 300], "--out: the name aaaaaaaaaaaaaaaaaaaaaaaa... is 300 bytes long"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUN_FLAGS))
def test_bad_run_flags_exit_2_naming_the_flag_and_leave_no_folder(capsys, root, tmp_path, monkeypatch, case):
    flags, expected = BAD_RUN_FLAGS[case]
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(
        capsys,
        "run",
        str(root / "protocols" / "example.toml"),
        "--patients",
        "30",
        "--quiet",
        *(["--out", "o"] if "--out" not in flags else []),
        *flags,
    )
    assert code == 2, err
    assert err.startswith(f"error: {expected}") and "Fix:" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no run folder, no partial folder


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["batch", "protocols/example.toml", "--jobs", "-5", "--out", "b"], "--jobs: must be a number of workers"),
        (["batch", "protocols/example.toml", "--replicates", "1", "--out", "b" * 250], "--out: the name bbbb"),
        (["batch", "protocols/example.toml", "--backend", "foo", "--out", "b"], "--backend: unknown backend 'foo'"),
        (
            ["batch", "protocols/example.toml", "--scheduler", "tcp://127.0.0.1:8786", "--out", "b"],
            "--scheduler: a scheduler is used only by the dask backend",
        ),
        (
            ["sensitivity", "protocols/example.toml", "--backend", "dask", "--scheduler", "nope", "--out", "s"],
            "--scheduler: 'nope' is not a scheduler address",
        ),
        (
            ["sensitivity", "protocols/example.toml", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1"],
            "--scheduler: cannot reach the dask scheduler at tcp://127.0.0.1:1",
        ),
        (["validate", "--replicate", "-1", "--patients", "10", "--out", "v"], "--replicate: replicate must be from 0"),
        (["calibrate", "--jobs", "5000", "--evaluations", "40", "--out", "c"], "--jobs: must be a number of workers"),
    ],
)
def test_batch_sensitivity_validate_calibrate_check_their_flags_first(
    capsys, root, tmp_path, monkeypatch, argv, expected
):
    monkeypatch.chdir(tmp_path)
    argv = [str(root / a) if a.startswith("protocols/") else a for a in argv]
    code, _, err = run_main(capsys, *argv, *(["--quiet"] if argv[0] != "calibrate" else []))
    assert code == 2, err
    assert err.startswith(f"error: {expected}") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_jobs_are_capped_at_the_tasks_and_a_warning_names_the_cores(root, tmp_path):
    """`--jobs 50` for 60 patients in blocks of 20 (3 arms: 9 tasks) starts 9 workers, not 50."""
    out = tmp_path / "run"
    result = run_process(
        "run",
        str(root / "protocols" / "example.toml"),
        "--patients",
        "60",
        "--block-size",
        "20",
        "--jobs",
        "50",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["jobs"] == 9
    cores = os.cpu_count()
    assert f"warning: --jobs 50 is more than the {cores} cores of this machine" in result.stderr


# --------------------------------------------------------------------------------------------
# progress without a terminal (defect 12)


def test_progress_without_a_terminal_prints_lines_and_the_analysis_and_report_stages(root, tmp_path):
    """stderr is a pipe: a plain line every 10% of the blocks (not only the last), then the stages."""
    result = run_process(
        "run",
        str(root / "protocols" / "example.toml"),
        "--patients",
        "200",
        "--block-size",
        "10",
        "--jobs",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    blocks = [line for line in lines if line.startswith("blocks ")]
    assert blocks[0].startswith("blocks 0/60 (0%)") and blocks[-1].startswith("blocks 60/60 (100%)")
    assert 11 <= len(blocks) <= 20  # every 10% (or 5 s), not every one of the 60 blocks
    assert "elapsed" in blocks[-1] and blocks[-1].endswith("remaining 0:00:00")
    stages = [line.split(" done in")[0] for line in lines if " done in " in line]
    assert stages == ["analysis", "report"]
    assert lines.index("analysis ...") > lines.index(blocks[-1])


#: A console command (``main()`` without arguments) in a process that registers an exit handler and keeps an
#: object that only the interpreter's teardown finalises (it then writes to stderr); ``{thread}`` optionally
#: leaves another thread running: an idle pool thread (a normal exit waits for it) or a daemon thread.
CONSOLE_SCRIPT = """
import atexit, builtins, os, sys, threading
from pathlib import Path
folder = Path(sys.argv[1])
atexit.register(lambda: (folder / "exit-handler").write_text("ran"))
class Finalised:
    def __init__(self):
        self.write = os.write  # module names may be gone when the teardown finalises this object
    def __del__(self):
        self.write(2, b"teardown")
builtins.kept_until_teardown = Finalised()
{thread}
sys.argv = ["vtrial", "schema"]
from vtrial.cli import main
main()
"""


@pytest.mark.parametrize(
    ("thread", "teardown"),
    [
        ("", False),
        ("threading.Thread(target=threading.Event().wait, daemon=True).start()", False),
        ("from concurrent.futures import ThreadPoolExecutor; pool = ThreadPoolExecutor(1); pool.submit(int)", True),
    ],
    ids=["alone", "with-a-daemon-thread", "with-a-pool-thread"],
)
def test_a_console_command_skips_the_teardown_only_when_nothing_is_left_to_wait_for(tmp_path, thread, teardown):
    """The exit handlers run and the output is whole either way; the teardown (~0.4 s after a run) only with a
    thread that a normal exit waits for (not a daemon)."""
    result = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT.format(thread=thread), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == ("teardown" if teardown else "")
    assert json.loads(result.stdout)["title"] == "Protocol"  # the whole schema (~30 kB) reached the pipe
    assert (tmp_path / "exit-handler").read_text() == "ran"
