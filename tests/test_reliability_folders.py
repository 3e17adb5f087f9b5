"""A run owns its folder: one process per folder, ``--force`` replaces only what vtrial wrote,
inputs are never overwritten, ``--resume`` carries only finished blocks.

Each test reproduces a defect of the red-team pass (vtrial issue 17: defects 1, 2, 3 and 8):
it failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from conftest import two_arm_protocol

from vtrial import cli
from vtrial.batch import run_batch
from vtrial.engine import run_trial
from vtrial.errors import UserInputError
from vtrial.protocol import load_protocol
from vtrial.store import OutputFolder, lock_path, owning

PROTOCOL = two_arm_protocol("folders", 40)
#: 40 patients in blocks of 10 under 2 arms (parallel design): 8 tasks.
BLOCK = 10
RUN_FILES = ["events.parquet", "manifest.json", "markers.parquet", "patients.parquet", "protocol.toml"]


@pytest.fixture
def protocol_file(tmp_path) -> Path:
    path = tmp_path / "inputs" / "folders.toml"
    path.parent.mkdir()
    path.write_text(PROTOCOL)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[bytes, bytes]:
    """Parquet bytes of an uninterrupted run."""
    path = tmp_path_factory.mktemp("protocol") / "folders.toml"
    path.write_text(PROTOCOL)
    out = tmp_path_factory.mktemp("reference") / "run"
    run_trial(load_protocol(path), out, jobs=1, block_size=BLOCK)
    return tables(out)


def tables(run_dir: Path) -> tuple[bytes, bytes]:
    return (run_dir / "patients.parquet").read_bytes(), (run_dir / "events.parquet").read_bytes()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``vtrial ARGV`` in this process; returns the exit code and stderr."""
    capsys.readouterr()
    handler = signal.getsignal(signal.SIGTERM)
    try:
        cli.main(argv)
    except SystemExit as done:
        return int(done.code), capsys.readouterr().err
    finally:
        signal.signal(signal.SIGTERM, handler)
    raise AssertionError("main() returned without exiting")


def run_api(protocol_file: Path, out: Path, **options) -> None:
    """``vtrial run`` without the report (faster): the folder rules are the same."""
    run_trial(load_protocol(protocol_file), out, jobs=1, block_size=BLOCK, inputs=(protocol_file,), **options)


def run_cli(protocol_file: Path, out: Path, *extra: str, capsys) -> tuple[int, str]:
    return run_main(
        ["run", str(protocol_file), "--out", str(out), "--jobs", "1", "--block-size", str(BLOCK), "--quiet", *extra],
        capsys,
    )


# --------------------------------------------------------------------------------------------
# defect 1: one process per folder


def hold_lock(out: Path, kind: str = "run") -> subprocess.Popen:
    """Another process that owns ``out`` (as a run in progress would) until it is killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from vtrial.store import OutputFolder, owning
        with owning(OutputFolder.of({str(out)!r}, {kind!r}, False)):
            print("locked", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_a_folder_owned_by_another_process_is_refused_and_a_dead_owner_blocks_nothing(
    protocol_file, tmp_path, reference
):
    out = tmp_path / "run"
    owner = hold_lock(out)
    try:
        with pytest.raises(UserInputError) as refused:
            run_trial(load_protocol(protocol_file), out, jobs=1, block_size=BLOCK)
        assert str(refused.value) == (
            f"{out}: another vtrial process (PID {owner.pid}) is writing this run folder "
            "Fix: wait for it to finish (or stop it), or choose another --out"
        )
        assert not out.exists() and not (tmp_path / ".run.partial").exists()
    finally:
        owner.kill()  # SIGKILL: the lock file stays behind, the kernel releases the lock
        owner.communicate()
    assert lock_path(out).read_text() == f"{owner.pid}\n"
    run_trial(load_protocol(protocol_file), out, jobs=1, block_size=BLOCK, resume=True)
    assert tables(out) == reference
    assert not lock_path(out).exists()


def test_a_batch_folder_owned_by_another_process_is_refused(protocol_file, tmp_path):
    out = tmp_path / "batch"
    partial = tmp_path / ".batch.partial"
    partial.mkdir()
    (partial / "batch.csv").write_text("rows of the batch in progress\n")
    with owning(OutputFolder.of(out, "batch", False)):
        with pytest.raises(
            UserInputError,
            match=rf"another vtrial process \(PID {os.getpid()}\) is writing this "
            "batch folder",
        ):
            run_batch([load_protocol(protocol_file)], out, replicates=1, jobs=1)
    assert (partial / "batch.csv").read_text() == "rows of the batch in progress\n"
    assert not out.exists()


@pytest.mark.slow
def test_a_second_cli_run_into_the_same_folder_is_refused(protocol_file, tmp_path):
    """The red-team case: ``vtrial run P --out X`` and, while it runs, ``vtrial run P --seed 99 --out X``."""
    out = tmp_path / "X"
    common = [str(protocol_file), "--out", str(out), "--jobs", "1", "--block-size", "10", "--quiet"]
    first = subprocess.Popen(
        [sys.executable, "-m", "vtrial.cli", "run", *common, "--patients", "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parts = tmp_path / ".X.partial" / "parts"
    while not (parts.is_dir() and any(parts.glob("events-*"))):
        assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGSTOP)  # keep it mid-run, whatever the machine's load
    try:
        second = subprocess.run(
            [sys.executable, "-m", "vtrial.cli", "run", *common, "--patients", "400", "--seed", "99"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == cli.EXIT_USER
    assert f"another vtrial process (PID {first.pid}) is writing this run folder" in second.stderr
    assert "Traceback" not in second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    patients = pd.read_parquet(out / "patients.parquet")
    assert len(patients) == 400 and patients["patient_id"].is_unique
    assert json.loads((out / "manifest.json").read_text())["seed"] == 5


# --------------------------------------------------------------------------------------------
# defect 2: --force replaces only a folder vtrial wrote (or an empty one)


def test_force_refuses_a_folder_that_is_not_a_run(protocol_file, tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "f").write_text("x\n")
    code, err = run_cli(protocol_file, out, "--force", capsys=capsys)
    assert code == cli.EXIT_USER
    assert err == (
        f"error: {out}: --force replaces only a run folder or an empty folder, and this one is not a vtrial run "
        "folder (no manifest.json of one); nothing was changed Fix: choose another --out, or move the folder "
        "away yourself\n"
    )
    assert snapshot(out) == {"f": b"x\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "inputs"]


def test_force_never_replaces_the_folder_of_the_protocol(protocol_file, tmp_path, capsys):
    for out in (protocol_file.parent, tmp_path):
        code, err = run_cli(protocol_file, out, "--force", capsys=capsys)
        assert code == cli.EXIT_USER
        assert f"the output folder holds {protocol_file}, which must not be replaced or deleted" in err
    assert protocol_file.read_text() == PROTOCOL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_force_never_replaces_a_run_folder_holding_the_protocol(protocol_file, tmp_path, capsys):
    """A protocol kept inside an earlier run folder is not deleted when that run is replaced."""
    out = tmp_path / "run"
    run_api(protocol_file, out)
    mine = out / "mine.toml"
    shutil.copy(protocol_file, mine)
    before = snapshot(out)
    code, err = run_cli(mine, out, "--force", capsys=capsys)
    assert code == cli.EXIT_USER and f"the output folder holds {mine}" in err
    assert snapshot(out) == before


def test_force_replaces_a_run_or_an_empty_folder(protocol_file, tmp_path, reference):
    out = tmp_path / "run"
    out.mkdir()
    run_api(protocol_file, out, force=True)
    assert tables(out) == reference
    (out / "events.parquet").write_bytes(b"stale")
    run_api(protocol_file, out, force=True)
    assert tables(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "run"]


def test_batch_force_replaces_only_a_batch_folder(protocol_file, tmp_path, capsys):
    batch = ["batch", str(protocol_file), "--replicates", "1", "--jobs", "1", "--quiet", "--force", "--out"]
    run_dir = tmp_path / "run"
    run_api(protocol_file, run_dir)
    before = snapshot(run_dir)
    code, err = run_main([*batch, str(run_dir)], capsys)
    assert code == cli.EXIT_USER
    assert "--force replaces only a batch folder or an empty folder, and this one is a vtrial run folder" in err
    assert snapshot(run_dir) == before
    out = tmp_path / "b"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    code, err = run_main([*batch, str(out)], capsys)
    assert code == cli.EXIT_USER and "this one is not a vtrial batch folder" in err
    assert snapshot(out) == {"notes.txt": b"mine\n"}
    (out / "notes.txt").unlink()
    assert run_main([*batch, str(out)], capsys)[0] == 0
    assert run_main([*batch, str(out)], capsys)[0] == 0  # a batch folder is replaced
    assert sorted(p.name for p in out.iterdir()) == [
        "batch.csv",
        "batch.html",
        "batch.parquet",
        "batch_summary.json",
        "manifest.json",
        "protocol-folders.toml",
    ]
    code, err = run_cli(protocol_file, out, "--force", capsys=capsys)
    assert code == cli.EXIT_USER and "this one is a vtrial batch folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "inputs", "run"]


@pytest.mark.parametrize("out", [".", ".."])
def test_out_holding_the_current_folder_is_refused_and_leaves_nothing(
    protocol_file, tmp_path, monkeypatch, capsys, out
):
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    code, err = run_cli(protocol_file, Path(out), "--force", capsys=capsys)
    assert code == cli.EXIT_USER
    assert f"{Path(out).resolve()}: the output folder holds {here}, which must not be replaced" in err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "inputs",
        "inputs/folders.toml",
        "work",
        "work/here",
    ]


def test_a_symlinked_out_writes_the_folder_it_points_to(protocol_file, tmp_path, reference):
    target = tmp_path / "target"
    link = tmp_path / "link"
    link.symlink_to(target)
    run_api(protocol_file, link)
    run_api(protocol_file, link, force=True)
    assert link.is_symlink() and link.resolve() == target
    assert sorted(p.name for p in target.iterdir()) == RUN_FILES
    assert tables(target) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "link", "target"]


# --------------------------------------------------------------------------------------------
# defect 3: vtrial cohort never overwrites its input, nor any file without --force


def test_cohort_never_overwrites_the_protocol(protocol_file, tmp_path, capsys):
    link = tmp_path / "link.parquet"
    link.symlink_to(protocol_file)
    for out in (protocol_file, link):
        for extra in ([], ["--force"]):
            code, err = run_main(["cohort", str(protocol_file), "--out", str(out), *extra], capsys)
            assert code == cli.EXIT_USER
            assert err == (
                f"error: {protocol_file}: --out: the output file is an input of this command; writing "
                "it would destroy the input Fix: choose another --out file\n"
            )
    assert protocol_file.read_text() == PROTOCOL
    assert sorted(p.name for p in protocol_file.parent.iterdir()) == ["folders.toml"]


def test_cohort_replaces_an_existing_file_only_with_force(protocol_file, tmp_path, capsys):
    out = tmp_path / "cohort.parquet"
    out.write_text("keep me\n")
    code, err = run_main(["cohort", str(protocol_file), "--out", str(out)], capsys)
    assert code == cli.EXIT_USER
    assert err == (
        f"error: {out}: --out: the output file already exists Fix: pass --force to replace it, or "
        "choose another --out file\n"
    )
    assert out.read_text() == "keep me\n"
    assert run_main(["cohort", str(protocol_file), "--out", str(out), "--force"], capsys)[0] == 0
    assert len(pd.read_parquet(out)) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.parquet", "inputs"]


# --------------------------------------------------------------------------------------------
# defect 8: --resume carries only finished blocks


class Interrupted(Exception):
    """Stands for an interruption after the tables and the manifest were written."""


def interrupted_run(protocol_file: Path, out: Path) -> Path:
    """A run stopped while writing its report: the partial folder holds every part and the merged tables."""

    def stop(partial: Path) -> None:
        (partial / f".report.html.{os.getpid()}.tmp").write_text("<html>half a report")
        raise Interrupted

    with pytest.raises(Interrupted):
        run_trial(load_protocol(protocol_file), out, jobs=1, block_size=BLOCK, finish=stop)
    partial = out.parent / f".{out.name}.partial"
    assert (partial / "manifest.json").is_file()
    return partial


def test_resume_drops_stale_files_of_the_partial_folder(protocol_file, tmp_path, reference):
    out = tmp_path / "run"
    interrupted_run(protocol_file, out)
    run_trial(load_protocol(protocol_file), out, jobs=1, block_size=BLOCK, resume=True)
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert tables(out) == reference
    assert json.loads((out / "manifest.json").read_text())["resumed"] is True


def test_resume_ignores_junk_names_and_reruns_unreadable_parts(protocol_file, tmp_path, reference):
    out = tmp_path / "run"
    parts = interrupted_run(protocol_file, out) / "parts"
    for junk in ("notes.txt", "junk.parquet", "events-a000-b0000001.parquet.bak", "events-a0-b1.parquet"):
        (parts / junk).write_text("junk")
    (parts / "subfolder").mkdir()
    truncated = parts / "events-a001-b0000002.parquet"
    truncated.write_bytes(truncated.read_bytes()[:100])
    (parts / "patients-a000-b0000003.parquet").write_bytes(b"")
    run_trial(load_protocol(protocol_file), out, jobs=1, block_size=BLOCK, resume=True)
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert tables(out) == reference
