"""Interruption and faults: signals at several moments of a run, read-only folders, full disks, dead workers.

Guarantees checked: an interrupted or failed run never leaves a partial run folder in place of
the final one nor a ``*.tmp`` file in it; an existing run folder is left byte-identical when a
replacement fails; ``--resume`` finishes an interrupted run with the same bytes as an
uninterrupted one; operating-system write failures exit 2 with a message naming the cause.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from conftest import two_arm_protocol

from vtrial import cli
from vtrial.engine import run_trial
from vtrial.protocol import load_protocol
from vtrial.store import atomic_write_bytes

PROTOCOL = two_arm_protocol("fault", 120)
#: 120 patients in blocks of 10 under 2 arms: 24 tasks (12 per arm after 1:1 randomisation).
BLOCK = "10"


@pytest.fixture(scope="module")
def protocol_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("protocol") / "fault.toml"
    path.write_text(PROTOCOL)
    return path


@pytest.fixture(scope="module")
def reference(protocol_file, tmp_path_factory) -> tuple[bytes, bytes]:
    """Parquet bytes of the uninterrupted run (one block, one worker)."""
    out = tmp_path_factory.mktemp("reference") / "fault"
    run_trial(load_protocol(protocol_file), out, jobs=1, block_size=120)
    return tables(out)


def tables(run_dir: Path) -> tuple[bytes, bytes]:
    return (run_dir / "patients.parquet").read_bytes(), (run_dir / "events.parquet").read_bytes()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vtrial.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_main(argv: list[str]) -> int:
    """``vtrial ARGV`` in this process (so monkeypatches apply); returns the exit code."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        cli.main(argv)
    except SystemExit as done:
        return int(done.code)
    finally:
        signal.signal(signal.SIGTERM, handler)
    raise AssertionError("main() returned without exiting")


def wait_for(condition: Callable[[], bool], timeout: float = 180.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def n_parts(partial: Path) -> int:
    return len(list((partial / "parts").glob("events-*.parquet")))


# --------------------------------------------------------------------------------------------
# signals


MOMENTS: dict[str, Callable[[Path], bool]] = {
    "started": lambda partial: (partial / "state.json").exists(),
    "one-block": lambda partial: n_parts(partial) >= 1,
    "half": lambda partial: n_parts(partial) >= 8,
    "merging": lambda partial: (partial / "patients.parquet").exists(),
}


def interrupt_and_resume(protocol_file: Path, tmp_path: Path, signum: int, moment: str, jobs: str) -> Path:
    out = tmp_path / "fault"
    partial = tmp_path / ".fault.partial"
    common = [str(protocol_file), "--out", str(out), "--jobs", jobs, "--block-size", BLOCK, "--quiet"]
    proc = cli_process("run", *common)
    reached = wait_for(lambda: MOMENTS[moment](partial) or proc.poll() is not None)
    assert reached
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # the run finished before the signal arrived
        assert out.is_dir()
    else:
        assert proc.returncode == cli.EXIT_INTERRUPTED, err
        assert "--resume" in err  # the message says how to finish the run
        assert "Traceback" not in err
        assert not out.exists()
        assert partial.is_dir()
    assert not list(tmp_path.rglob("*.tmp"))
    if proc.returncode != 0:
        resumed = cli_process("run", *common, "--resume")
        _, err = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, err
    assert not partial.exists()
    assert not list(out.rglob("*.tmp"))
    return out


def test_sigint_after_a_block_then_resume_is_byte_identical(protocol_file, reference, tmp_path):
    out = interrupt_and_resume(protocol_file, tmp_path, signal.SIGINT, "one-block", "1")
    assert tables(out) == reference


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_at_any_moment_then_resume_is_byte_identical(protocol_file, reference, tmp_path, signum, moment):
    out = interrupt_and_resume(protocol_file, tmp_path, signum, moment, "2")
    assert tables(out) == reference


def test_an_interrupt_as_the_temporary_file_is_created_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C landing between the creation of the temporary file and the write is cleaned up.

    The signal tests found a ``.patients-...parquet.*.tmp`` left by an interrupt that arrived
    inside ``tempfile.mkstemp``, after the file was created but before its name was known.
    """
    opened = os.open

    def open_then_interrupt(path, flags, *args, **kwargs):
        fd = opened(path, flags, *args, **kwargs)
        os.close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "part.parquet", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_an_error_raised_while_handling_an_interrupt_is_an_interruption(monkeypatch, capsys):
    """A library failing while it stops (loky joining a manager thread that a SIGTERM kept from
    starting) is the interrupt's consequence: exit 130 and the resume hint, no traceback."""

    def interrupted_then_broken(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("cannot join thread before it is started") from None

    monkeypatch.setattr(cli, "app", interrupted_then_broken)
    assert run_main(["run", "x.toml"]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err and "internal error" not in err


# --------------------------------------------------------------------------------------------
# read-only folders and full disks


@pytest.fixture(scope="module")
def finished_run(protocol_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "fault"
    assert run_main(["run", str(protocol_file), "--out", str(out), "--jobs", "1", "--patients", "12", "--quiet"]) == 0
    return out


@pytest.fixture
def existing_run(finished_run, tmp_path) -> tuple[Path, dict[str, bytes]]:
    """A copy of a finished run folder and the bytes of every file in it."""
    out = tmp_path / "fault"
    shutil.copytree(finished_run, out)
    return out, snapshot(out)


def fail_with(code: int) -> Callable[..., None]:
    def fail(*args, **kwargs) -> None:
        raise OSError(code, os.strerror(code))

    return fail


def rerun(protocol_file: Path, out: Path) -> int:
    return run_main(
        ["run", str(protocol_file), "--out", str(out), "--jobs", "1", "--patients", "12", "--quiet", "--force"]
    )


def test_read_only_parent_folder_exits_2_and_keeps_the_run(protocol_file, existing_run, capsys):
    out, before = existing_run
    parent = out.parent
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: chmod does not make a folder read-only (see the simulated test)")
        code = rerun(protocol_file, out)
    finally:
        parent.chmod(0o755)
    assert code == cli.EXIT_USER
    assert "cannot write" in capsys.readouterr().err
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("os.replace", errno.EROFS, "Read-only file system"),
        ("os.fsync", errno.ENOSPC, "No space left on device"),
        ("os.open", errno.EACCES, "Permission denied"),  # the temporary file of an atomic write
    ],
)
def test_write_failures_exit_2_and_keep_the_run(
    protocol_file, existing_run, capsys, monkeypatch, target, code, message
):
    out, before = existing_run
    capsys.readouterr()
    failing = fail_with(code)
    if target == "os.open":  # only the creation of an atomic write's temporary file fails
        opened = os.open
        monkeypatch.setattr(
            target, lambda path, *a, **k: (failing if str(path).endswith(".tmp") else opened)(path, *a, **k)
        )
    else:
        monkeypatch.setattr(target, failing)
    assert rerun(protocol_file, out) == cli.EXIT_USER
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot write" in err and message in err
    assert "Traceback" not in err
    monkeypatch.undo()
    assert snapshot(out) == before
    assert not list(out.parent.rglob("*.tmp"))


def test_full_disk_while_merging_exits_2_and_keeps_the_run(protocol_file, existing_run, capsys, monkeypatch):
    out, before = existing_run
    capsys.readouterr()
    write_table = pq.ParquetWriter.write_table

    def full_disk_for_files(self, *args, **kwargs):
        if isinstance(self.where, (str, os.PathLike)):  # the merged tables, not in-memory block parts
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_table(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk_for_files)
    assert rerun(protocol_file, out) == cli.EXIT_USER
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    assert snapshot(out) == before
    assert not list(out.parent.rglob("*.tmp"))


def test_failed_final_rename_puts_the_existing_run_back(protocol_file, existing_run, capsys, monkeypatch):
    """The old folder is moved aside before the new one moves in; if that fails the old one returns."""
    out, before = existing_run
    capsys.readouterr()
    replace = os.replace
    partial = str(out.parent / ".fault.partial")

    def replace_but_not_the_partial(src, dst, **kwargs):
        if str(src) == partial:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace_but_not_the_partial)
    assert rerun(protocol_file, out) == cli.EXIT_USER
    monkeypatch.undo()
    assert snapshot(out) == before
    assert not (out.parent / ".fault.old").exists()


def test_run_files_get_the_usual_permissions(finished_run, tmp_path):
    """Atomically written files (through a private temporary file) are as readable as ordinary ones."""
    out = finished_run
    probe = tmp_path / "ordinary.txt"
    probe.write_text("x")
    expected = stat.S_IMODE(probe.stat().st_mode)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes) >= {"protocol.toml", "manifest.json", "summary.json", "report.html", "patients.parquet"}
    assert modes == dict.fromkeys(modes, expected)


# --------------------------------------------------------------------------------------------
# a worker dies mid-run


def loky_workers(pid: int) -> list[psutil.Process]:
    children = psutil.Process(pid).children(recursive=True)
    return [c for c in children if any("loky" in part and "popen" in part for part in c.cmdline())]


def test_killed_worker_is_reported_and_the_run_resumes(protocol_file, reference, tmp_path):
    out = tmp_path / "fault"
    partial = tmp_path / ".fault.partial"
    common = [str(protocol_file), "--out", str(out), "--jobs", "2", "--block-size", BLOCK, "--quiet"]
    proc = cli_process("run", *common)
    assert wait_for(lambda: n_parts(partial) >= 2 or proc.poll() is not None)
    workers = loky_workers(proc.pid)
    assert workers, "no loky worker found"
    workers[0].kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_INTERNAL, err  # not bad input: a fault, reported without a traceback
    assert "Traceback" not in err
    assert "worker" in err and "--resume" in err
    assert not out.exists()
    assert n_parts(partial) >= 2
    resumed = cli_process("run", *common, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert tables(out) == reference


def test_workers_exit_promptly_when_the_run_is_killed(protocol_file, tmp_path):
    """SIGKILL of `vtrial run`: its loky workers exit within seconds (they idled ~5.6 min holding the terminal)."""
    partial = tmp_path / ".fault.partial"
    proc = cli_process(
        "run", str(protocol_file), "--out", str(tmp_path / "fault"), "--jobs", "2", "--block-size", BLOCK, "--quiet"
    )
    assert wait_for(lambda: n_parts(partial) >= 1 or proc.poll() is not None)
    workers = loky_workers(proc.pid)
    assert workers, "no loky worker found"
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    _, alive = psutil.wait_procs(workers, timeout=5)
    for worker in alive:  # clean up before failing, so that the test run does not leak them
        worker.kill()
    assert alive == []
