"""The trial engine: designs, allocation, follow-up, determinism across workers/blocks/backends, resume."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from tests.conftest import two_arm_protocol
from vtrial import engine
from vtrial.cli import main
from vtrial.engine import (
    FORKED_WORKER,
    IN_PROCESS_PATIENT_YEARS,
    WORKER_DIED,
    allocation_ratio,
    assign_arms,
    plan_tasks,
    run_trial,
    simulate_block,
    workers,
)
from vtrial.errors import ModelInvariantError, RunFailedError, UserInputError
from vtrial.progress import ProgressBar
from vtrial.protocol import apply_overrides, load_protocol, parse_protocol
from vtrial.store import ROW_GROUP_ROWS, TABLES, PartsMerger, merge_parts, to_arrow
from vtrial.streams import Streams
from vtrial.vocabulary import DAYS_PER_MONTH

ROOT = Path(__file__).resolve().parents[1]


def make_protocol(**trial):
    """A small two-arm breast protocol (short horizon keeps runs fast)."""
    data = {
        "trial": {"name": "engine-test", "patients": 300, "horizon_months": 12, "seed": 7, **trial},
        "cohort": {"primary": {"breast": 0.5, "prostate": 0.5}},
        "arm": [
            {"name": "placebo", "drug": "none"},
            {"name": "zoledronic_acid", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0},
        ],
    }
    return parse_protocol(data, "test")


def read(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(run_dir / "patients.parquet"), pd.read_parquet(run_dir / "events.parquet")


def test_allocation_ratio_finds_small_integer_ratios():
    assert allocation_ratio([1.0, 1.0]).tolist() == [1, 1]
    assert allocation_ratio([2.0, 1.0]).tolist() == [2, 1]
    assert allocation_ratio([0.5, 0.25, 0.25]).tolist() == [2, 1, 1]
    assert allocation_ratio([1.0, np.pi]) is None


def test_permuted_blocks_balance_every_block():
    arms = assign_arms([1.0, 1.0], 4000, Streams(1))
    # blocks of 4 with two of each arm: every complete block is balanced
    assert (arms.reshape(-1, 4).sum(axis=1) == 2).all()
    arms3 = assign_arms([2.0, 1.0], 6000, Streams(1))
    # 2:1 in blocks of 6 -> exactly 4000 vs 2000
    assert np.bincount(arms3).tolist() == [4000, 2000]


def test_simple_randomisation_fallback_follows_weights():
    arms = assign_arms([1.0, np.e], 100_000, Streams(3))
    share = np.mean(arms == 1)
    expected = np.e / (1 + np.e)  # 0.7311
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / 100_000)


def test_paired_tasks_cover_every_patient_in_every_arm():
    protocol = make_protocol(design="paired", patients=1000)
    tasks = plan_tasks(protocol, Streams(7), block_size=300)
    for arm in (0, 1):
        ids = np.concatenate([t.patient_ids for t in tasks if t.arm_index == arm])
        assert ids.tolist() == list(range(1000))


def test_parallel_tasks_partition_patients():
    protocol = make_protocol(patients=1000)
    tasks = plan_tasks(protocol, Streams(7), block_size=300)
    ids = np.sort(np.concatenate([t.patient_ids for t in tasks]))
    assert ids.tolist() == list(range(1000))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "reference"
    run_trial(make_protocol(), out, jobs=1, block_size=128, finish=None)
    return out


def parquet_bytes(run_dir: Path) -> tuple[bytes, ...]:
    return tuple((run_dir / f"{kind}.parquet").read_bytes() for kind in ("patients", "events", "markers"))


def test_run_folder_has_the_contract_files(reference_run):
    for name in ("protocol.toml", "patients.parquet", "events.parquet", "markers.parquet", "manifest.json"):
        assert (reference_run / name).is_file()
    assert not (reference_run / "parts").exists()
    patients, events = read(reference_run)
    for col in (
        "patient_id",
        "arm",
        "primary",
        "age_years",
        "sex",
        "ecog",
        "creatinine_clearance_ml_min",
        "n_lesions",
        "followup_days",
        "died",
        "first_sre_day",
        "n_sre",
    ):
        assert col in patients.columns
    for col in ("patient_id", "arm", "day", "type", "site", "counted"):
        assert col in events.columns
    assert len(patients) == 300
    # markers at the default visits (weeks 0, 13, 25, 49) of a 12-month trial, while on study
    markers = pd.read_parquet(reference_run / "markers.parquet")
    assert list(markers.columns) == ["patient_id", "arm", "week", "untx_nmol_mmol", "bsap_ug_l", "calcium_mmol_l"]
    assert sorted(markers["week"].unique()) == [0, 13, 25, 49]
    assert (markers["week"] == 0).sum() == 300
    merged = markers.merge(patients, on=["patient_id", "arm"])
    assert (7 * merged["week"] < merged["followup_days"]).all()


def test_markers_can_be_turned_off_and_leave_patients_and_events_unchanged(reference_run, tmp_path):
    protocol = make_protocol()
    off = protocol.model_copy(update={"analysis": protocol.analysis.model_copy(update={"marker_weeks": []})})
    out = tmp_path / "off"
    run_trial(off, out, jobs=1, block_size=128)
    assert parquet_bytes(out)[:2] == parquet_bytes(reference_run)[:2]
    assert pd.read_parquet(out / "markers.parquet").empty


@pytest.mark.parametrize(("jobs", "block_size"), [(2, 128), (1, 77), (2, 1000)])
def test_same_seed_same_bytes_for_any_workers_and_blocks(reference_run, tmp_path, jobs, block_size):
    out = tmp_path / "run"
    run_trial(make_protocol(), out, jobs=jobs, block_size=block_size)
    assert parquet_bytes(out) == parquet_bytes(reference_run)


def test_different_seed_differs(reference_run, tmp_path):
    out = tmp_path / "run"
    run_trial(apply_overrides(make_protocol(), seed=8), out, jobs=1, block_size=128)
    assert parquet_bytes(out) != parquet_bytes(reference_run)


def test_counted_sres_match_patient_table(reference_run):
    patients, events = read(reference_run)
    n_sre = events[events["counted"]].groupby(["arm", "patient_id"]).size()
    merged = patients.set_index(["arm", "patient_id"])["n_sre"]
    assert (merged.reindex(n_sre.index) == n_sre).all()
    assert merged.sum() == n_sre.sum()
    first = events[events["counted"]].groupby(["arm", "patient_id"])["day"].min()
    assert np.allclose(patients.set_index(["arm", "patient_id"])["first_sre_day"].reindex(first.index), first)


def test_allocation_ratio_respected_in_run(reference_run):
    patients, _ = read(reference_run)
    # 1:1 permuted blocks of 4: 300 patients -> exactly 150 each
    assert patients["arm"].value_counts().to_dict() == {"placebo": 150, "zoledronic_acid": 150}


def test_paired_design_has_identical_cohorts_across_arms(tmp_path):
    out = tmp_path / "paired"
    run_trial(make_protocol(design="paired", patients=200), out, jobs=1, block_size=64)
    patients, _ = read(out)
    cols = [
        "patient_id",
        "primary",
        "age_years",
        "sex",
        "ecog",
        "creatinine_clearance_ml_min",
        "n_lesions",
        "entry_day",
    ]
    a = patients[patients["arm"] == "placebo"][cols].reset_index(drop=True)
    b = patients[patients["arm"] == "zoledronic_acid"][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 200


def test_accrual_and_cutoff_give_the_expected_follow_up(tmp_path):
    out = tmp_path / "accrual"
    protocol = make_protocol(patients=2000, horizon_months=12, accrual_months=6)
    run_trial(protocol, out, jobs=2, block_size=500)
    patients, _ = read(out)
    horizon = 12 * DAYS_PER_MONTH
    entry = patients["entry_day"].to_numpy()
    # entry uniform on [0, 6 months]: mean 3 months, within 4 standard errors
    assert abs(entry.mean() - 3 * DAYS_PER_MONTH) < 4 * (6 * DAYS_PER_MONTH / np.sqrt(12)) / np.sqrt(len(entry))
    assert entry.min() >= 0 and entry.max() <= 6 * DAYS_PER_MONTH
    # nobody is followed beyond the data cut-off; those still on study at cut-off reach it exactly
    assert (patients["followup_days"] <= horizon - entry + 1e-9).all()
    censored = ~patients["died"] & ~patients["dropped_out"]
    assert np.allclose(patients.loc[censored, "followup_days"], horizon - entry[censored.to_numpy()])


def test_dropout_is_exponential(tmp_path):
    out = tmp_path / "dropout"
    protocol = make_protocol(patients=3000, horizon_months=12, dropout_per_year=0.5)
    run_trial(protocol, out, jobs=2, block_size=1000)
    patients, events = read(out)
    dropout_days = events.loc[events["type"] == "dropout", "day"]
    assert patients["dropped_out"].sum() == len(dropout_days)
    # among patients, dropout before min(death, cut-off): without death it would be 1 - exp(-0.5) = 0.393;
    # deaths remove some patients first, so the observed share is lower but substantial
    share = patients["dropped_out"].mean()
    assert 0.2 < share < 0.393 + 4 * np.sqrt(0.393 * 0.607 / 3000)


def test_existing_run_folder_needs_force(reference_run):
    with pytest.raises(UserInputError, match="--force"):
        run_trial(make_protocol(), reference_run, jobs=1)


def test_force_replaces_a_run(tmp_path):
    out = tmp_path / "run"
    run_trial(make_protocol(patients=50), out, jobs=1)
    run_trial(make_protocol(patients=60), out, jobs=1, force=True)
    assert len(pd.read_parquet(out / "patients.parquet")) == 60


def _run_cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vtrial.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def test_sigterm_leaves_no_run_folder_and_resume_is_identical(tmp_path):
    protocol_file = tmp_path / "p.toml"
    protocol_file.write_text(
        '[trial]\nname = "interrupted"\npatients = 2400\nhorizon_months = 24\nseed = 11\n'
        "[cohort]\nprimary = { prostate = 1.0 }\n"
        '[[arm]]\nname = "placebo"\ndrug = "none"\n'
        '[[arm]]\nname = "denosumab"\ndrug = "denosumab"\ndose_mg = 120.0\nevery_weeks = 4.0\n'
    )
    out = tmp_path / "interrupted"
    partial = tmp_path / ".interrupted.partial"
    common = [str(protocol_file), "--out", str(out), "--jobs", "1", "--block-size", "100", "--quiet"]
    proc = _run_cli("run", *common)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((partial / "parts").glob("events-*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert not out.exists()
    finished = list((partial / "parts").glob("events-*.parquet"))
    assert 0 < len(finished) < 48
    assert not list(partial.rglob("*.tmp"))
    resumed = _run_cli("run", *common, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert not partial.exists()
    fresh = tmp_path / "fresh"
    again = _run_cli("run", str(protocol_file), "--out", str(fresh), "--jobs", "2", "--block-size", "300", "--quiet")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert parquet_bytes(out) == parquet_bytes(fresh)


def test_dask_local_cluster_gives_identical_tables(reference_run, tmp_path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "dask"
    # with dask's default HTTP port taken (another cluster on the machine, a notebook's dashboard), the
    # local cluster takes a free port without a warning (warnings are errors here); it failed while
    # the cluster asked for no dashboard (dask then still binds 8787)
    with socket.socket() as taken:
        try:
            taken.bind(("", 8787))
            taken.listen()
        except OSError:  # already taken by someone else: the case under test as well
            pass
        run_trial(make_protocol(), out, jobs=2, block_size=128, backend="dask")
    assert parquet_bytes(out) == parquet_bytes(reference_run)


def test_run_and_report_in_two_processes_give_identical_tables(reference_run, tmp_path):
    """A fresh interpreter (another process, other hash seed) reproduces the run byte for byte."""
    out = tmp_path / "other-process"
    code = (
        "from tests.test_engine import make_protocol; from vtrial.engine import run_trial; "
        f"run_trial(make_protocol(), {str(out)!r}, jobs=1, block_size=50)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent, env=env)
    assert parquet_bytes(out) == parquet_bytes(reference_run)


def test_a_run_stops_its_loky_workers_before_the_analysis(tmp_path):
    """Idle loky workers kept the memory of their last block through the merge and analysis (~0.9 GiB at 100k)."""
    seen = {}

    def finish(partial: Path) -> None:
        children = psutil.Process().children(recursive=True)
        seen["workers"] = [c for c in children if any("loky" in part and "popen" in part for part in c.cmdline())]

    run_trial(make_protocol(), tmp_path / "run", jobs=2, block_size=100, finish=finish)
    assert seen["workers"] == []


def test_small_runs_with_default_jobs_simulate_in_process_and_explicit_jobs_are_obeyed():
    """300 patients x 2 arms x 1 year = 600 patient-arm-years: no pool by default; --jobs 2 is kept."""
    protocol = make_protocol()
    tasks = plan_tasks(protocol, Streams(7), 100)  # 3 blocks x 2 arms
    assert len(tasks) == 6 and 600 < IN_PROCESS_PATIENT_YEARS
    assert workers(protocol, tasks, None) == 1 and workers(protocol, tasks, -1) == 1
    assert workers(protocol, tasks, 2) == 2
    assert workers(protocol, tasks, None, backend="dask") == min(os.cpu_count() or 1, 6)
    # 20,000 patients x 2 arms x 1 year = 40,000 patient-arm-years: all cores, capped at the 10 tasks
    large = make_protocol(patients=20_000)
    large_tasks = plan_tasks(large, Streams(7), 4096)
    assert workers(large, large_tasks, None) == min(os.cpu_count() or 1, len(large_tasks))


@pytest.mark.parametrize(("jobs", "threads"), [(2, ["vtrial-prepare"]), (1, [])])
def test_prepare_runs_in_a_thread_while_workers_simulate_and_not_beside_this_process(tmp_path, jobs, threads):
    ran = []

    def prepare() -> None:
        ran.append(threading.current_thread().name)

    run_trial(make_protocol(), tmp_path / "run", jobs=jobs, block_size=100, prepare=prepare)
    assert ran == threads


def in_new_interpreter(scenario: str, *args: str) -> typing.Any:
    """Run ``scenario(*args)`` of this module in a new interpreter and return what it returns (through JSON).

    A fork needs a process without other threads; a test process may hold one that an earlier test left (dask's
    idle offload thread), which rightly keeps runs in process. Warnings are errors there too.
    """
    code = f"import json, sys; from tests import test_engine; print(json.dumps(test_engine.{scenario}(*sys.argv[1:])))"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _recording_forks() -> list[bool]:
    """Record, for each run from now on, whether its blocks went to a forked worker."""
    forks: list[bool] = []
    start = engine._ForkedWorker.start

    def recording(*args: typing.Any) -> typing.Any:
        worker = start(*args)
        forks.append(worker is not None)
        return worker

    engine._ForkedWorker.start = recording
    return forks


def _fail_on_block(index: int, error: BaseException | None) -> typing.Callable[..., object]:
    """A ``simulate_block`` that raises ``error`` (None: dies, as if killed) on block ``index`` of arm 1."""

    def simulate(protocol, streams, task, parameters=None):
        if (task.arm_index, task.block_index) == (1, index):
            if error is None:
                os.kill(os.getpid(), signal.SIGKILL)
            raise error
        return simulate_block(protocol, streams, task, parameters)

    return simulate


def forked_run(out: str) -> dict:
    seen = {"threads": [], "children": []}

    def prepare() -> None:
        seen["threads"].append(threading.current_thread().name)
        seen["children"].append([p.name for p in multiprocessing.active_children()])

    run_trial(make_protocol(), Path(out), block_size=128, prepare=prepare)
    return {**seen, "left": len(multiprocessing.active_children())}


def test_a_small_run_simulates_in_a_forked_worker_while_preparing_and_writes_the_same_bytes(reference_run, tmp_path):
    """Issue 16 a: default jobs, 600 patient-arm-years: one forked worker simulates while this process runs
    ``prepare`` (in its main thread); the Parquet files are those of --jobs 1; no child is left."""
    seen = in_new_interpreter("forked_run", str(tmp_path / "forked"))
    assert seen == {"threads": ["MainThread"], "children": [[FORKED_WORKER]], "left": 0}
    assert parquet_bytes(tmp_path / "forked") == parquet_bytes(reference_run)


def terminal_run(out: str) -> dict:
    """A run reporting to a progress bar on a terminal (a redrawing thread once shown), as `vtrial run` at a terminal."""
    forks = _recording_forks()
    stream = io.StringIO()
    with ProgressBar("blocks", console=Console(file=stream, force_terminal=True, width=200)) as bar:
        run_trial(make_protocol(), Path(out), block_size=128, prepare=lambda: None, on_progress=bar.update)
    return {"forks": forks, "text": stream.getvalue()}


def test_a_run_at_a_terminal_forks_its_worker_before_the_bar_starts_its_thread(reference_run, tmp_path):
    """Issue 16 a: the bar is drawn from the first report, which a small run makes after the fork; same bytes."""
    seen = in_new_interpreter("terminal_run", str(tmp_path / "run"))
    blocks = len(plan_tasks(make_protocol(), Streams(7, 0), 128))
    assert seen["forks"] == [True]
    assert f"{blocks}/{blocks}" in seen["text"]  # the bar reached the last block
    assert parquet_bytes(tmp_path / "run") == parquet_bytes(reference_run)


def test_no_fork_while_another_thread_runs(reference_run, tmp_path):
    """A fork copies the locks other threads hold (the progress bar's refresh thread on a terminal): then the
    blocks are simulated in this process, as without ``prepare``."""
    release = threading.Event()
    other = threading.Thread(target=release.wait, name="other")
    other.start()
    ran = []
    try:
        run_trial(make_protocol(), tmp_path / "run", block_size=128, prepare=lambda: ran.append(True))
    finally:
        release.set()
        other.join()
    assert ran == []  # no fork: ``prepare`` runs beside a forked worker only
    assert parquet_bytes(tmp_path / "run") == parquet_bytes(reference_run)


ERRORS = {
    "model": ModelInvariantError("patient 17: bone mass -0.2 < 0 on day 40"),
    "user": UserInputError("no dose", file="p.toml", field="arm[1].dose_mg", fix="give dose_mg"),
}

#: What a UserInputError holds besides its message (kept when it crosses the pipe).
USER_ERROR_PARTS = ("problem", "file", "field", "fix", "line")


def failing_runs(folder: str, kind: str) -> dict:
    """``vtrial run`` (default jobs: forked worker; --jobs 1: in process) and ``run_trial``, failing on a block."""
    path = Path(folder) / "p.toml"
    path.write_text(two_arm_protocol("p", 40))
    engine.simulate_block = _fail_on_block(0, ERRORS[kind])  # the forked child has it too
    forks = _recording_forks()
    shown = []
    for jobs in ([], ["--jobs", "1"]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
            main(["run", str(path), "--out", f"{folder}/run", "--quiet", "--force", *jobs])
        shown.append([done.value.code, err.getvalue()])
    with pytest.raises(type(ERRORS[kind])) as raised:
        run_trial(load_protocol(path), Path(folder) / "again", prepare=lambda: None)
    error = raised.value
    parts = [getattr(error, name, None) for name in USER_ERROR_PARTS]
    return {"forks": forks, "shown": shown, "text": str(error), "parts": parts, "cause": str(error.__cause__)}


@pytest.mark.parametrize(("kind", "code"), [("model", 1), ("user", 2)])
def test_an_error_in_the_forked_worker_reaches_the_user_as_in_process(tmp_path, kind, code):
    """The message and exit code of the run in this process (--jobs 1); the child's traceback is the cause."""
    seen = in_new_interpreter("failing_runs", str(tmp_path), kind)
    assert seen["forks"] == [True, True]  # `vtrial run` with default jobs, then run_trial; --jobs 1 does not fork
    assert seen["shown"] == [[code, f"error: {ERRORS[kind]}\n"]] * 2
    assert seen["text"] == str(ERRORS[kind])
    assert seen["parts"] == [getattr(ERRORS[kind], name, None) for name in USER_ERROR_PARTS]
    assert "in simulate\n" in seen["cause"] and f"{type(ERRORS[kind]).__name__}: {ERRORS[kind]}" in seen["cause"]


def killed_worker(folder: str) -> dict:
    """A run whose forked worker dies on arm 1's second block, then the same run resumed (nothing killed)."""
    engine.simulate_block = _fail_on_block(1, None)
    forks = _recording_forks()
    with pytest.raises(RunFailedError) as failed:
        run_trial(make_protocol(), Path(folder) / "run", block_size=100, prepare=lambda: None)
    parts = sorted(p.name for p in (Path(folder) / ".run.partial" / "parts").iterdir())
    left = len(multiprocessing.active_children())
    engine.simulate_block = simulate_block
    run_trial(make_protocol(), Path(folder) / "run", block_size=100, prepare=lambda: None, resume=True)
    return {"forks": forks, "failed": str(failed.value), "parts": parts, "left": left}


def test_a_killed_forked_worker_fails_the_run_and_keeps_its_finished_blocks(reference_run, tmp_path):
    """As a killed loky worker: RunFailedError (exit code 1, no traceback); the blocks received are kept, and
    --resume finishes the run with the bytes of an uninterrupted one."""
    seen = in_new_interpreter("killed_worker", str(tmp_path))
    assert seen["forks"] == [True, True] and seen["left"] == 0
    assert seen["failed"] == WORKER_DIED
    # tasks run and are sent in order; those the child had sent before it died (up to 4) are written
    order = [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert seen["parts"] in [
        sorted(f"{kind}-a{a:03d}-b{b:07d}.parquet" for kind in TABLES for a, b in order[:k]) for k in range(5)
    ]
    assert parquet_bytes(tmp_path / "run") == parquet_bytes(reference_run)


def interrupted_run(folder: str) -> dict:
    def prepare() -> None:
        raise KeyboardInterrupt  # Ctrl-C while this process imports the report stack

    forks = _recording_forks()
    with pytest.raises(KeyboardInterrupt):
        run_trial(make_protocol(), Path(folder) / "run", block_size=100, prepare=prepare)
    return {"forks": forks, "left": len(multiprocessing.active_children()), "out": (Path(folder) / "run").exists()}


def test_ctrl_c_while_preparing_stops_the_forked_worker(tmp_path):
    """Ctrl-C reaches this process (the child ignores it): the run stops as in process, the child is killed."""
    assert in_new_interpreter("interrupted_run", str(tmp_path)) == {"forks": [True], "left": 0, "out": False}


def test_ctrl_c_at_the_terminal_stops_the_command_and_its_forked_worker(tmp_path):
    """Ctrl-C goes to the whole process group: the forked worker ignores it, the command stops as in process
    (exit code 130, the --resume message, no traceback from either process) and kills the worker."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vtrial.cli", "run", str(ROOT / "protocols" / "breast.toml"), "--out", str(out)]
    proc = subprocess.Popen([*command, "--quiet"], stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 60
    children: list[psutil.Process] = []
    while not children and proc.poll() is None and time.time() < deadline:
        children = psutil.Process(proc.pid).children()
        time.sleep(0.01)
    assert [c.ppid() for c in children] == [proc.pid]  # the forked worker, simulating
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == (
        "interrupted: no output folder was written; an interrupted run, batch or sensitivity analysis keeps what "
        "it finished: finish it with the same command and `--resume`\n"
    )
    assert not out.exists()
    assert not psutil.pid_exists(children[0].pid) or children[0].status() == psutil.STATUS_ZOMBIE


def test_to_arrow_builds_the_arrays_of_pa_array_without_importing_pandas(tmp_path):
    """The forked worker never imports pandas (~0.35 s); the Parquet bytes are those of ``pa.array``/``pa.table``."""
    code = (
        "import sys, numpy as np; from vtrial.store import to_arrow; "
        "to_arrow({'a': np.arange(2), 'b': np.array(['x', 'é'], dtype=object)}); print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout == "False\n"
    columns = {
        "id": np.array([3, 1, 2**40], dtype=np.int64),
        "small": np.array([-1, 0, 7], dtype=np.int16),
        "count": np.array([0, 5, 9], dtype=np.int32),
        "day": np.array([1.5, np.nan, -0.0]),
        "flag": np.array([True, False, True]),
        "label": np.array(["placebo", "", "x\x00y"], dtype=object),  # ASCII: its code points are its bytes
        "text": np.array(["placebo", "", "zolédronic acid \u2013 4 mg"], dtype=object),
    }
    empty = {name: values[:0] for name, values in columns.items()}
    for table in (columns, empty):
        built = to_arrow(table)
        reference = pa.table(
            {
                n: pa.array(v.astype(str).tolist(), type=pa.string()) if v.dtype == object else pa.array(v)
                for n, v in table.items()
            }
        )
        assert built.schema == reference.schema
        assert _parquet(built) == _parquet(reference)
    assert to_arrow(columns).column("text").to_pylist() == ["placebo", "", "zolédronic acid \u2013 4 mg"]


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_parts_merged_as_they_become_ready_give_the_file_of_the_whole_merge(tmp_path):
    # a run merges each block's part while the next blocks are simulated, in whatever order they
    # finish: the file is the one merging all parts at the end gives, row groups included
    rng = np.random.default_rng(4)
    sizes = [30_000, 50_000, 1, 70_000, 20_000]
    paths = []
    for i, n in enumerate(sizes):
        table = pa.table({"patient_id": np.arange(n) + 10 * i, "arm": [("a", "b")[i % 2]] * n, "day": rng.random(n)})
        paths.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(table, paths[-1])
    whole = merge_parts(paths, tmp_path / "whole.parquet")
    merger = PartsMerger(paths, tmp_path / "streamed.parquet")
    merger.ready(paths[1], paths[3])  # not the first: nothing merged yet
    assert merger.rows == 0 and not (tmp_path / "streamed.parquet").exists()
    merger.ready(paths[0])  # 0, 1: 80,000 rows, one full row group written; 3 waits for 2
    assert merger.rows == ROW_GROUP_ROWS
    merger.ready(paths[4], paths[2])
    assert merger.rows == 2 * ROW_GROUP_ROWS  # 170,001 rows: two full groups, the rest at close
    assert merger.close() == whole == sum(sizes)
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
