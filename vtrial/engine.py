"""The trial engine: designs, blocks of patients, parallel tasks, streaming to disk, resume.

The engine knows no biology. It randomises patients (parallel design) or pairs them (every
patient under every arm), splits them into blocks, runs one task per (arm, block) with joblib
(loky processes locally, or a dask.distributed cluster), and streams each finished block to
the partial run folder. Every random draw is keyed to patients (:mod:`vtrial.streams`), so the
tables are identical whatever the number of workers, the block size or the backend.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import pickle
import platform
import queue
import re
import signal
import socket
import sys
import threading
import time
import traceback
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, UTC
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky.process_executor import TerminatedWorkerError

from vtrial import __version__
from vtrial.cohort import sample_cohort
from vtrial.errors import RunFailedError, UserInputError
from vtrial.model import simulate
from vtrial.model.markers import visit_weeks
from vtrial.protocol import Protocol, protocol_to_toml
from vtrial.sre import apply_window_rule
from vtrial.store import (
    TABLES,
    OutputFolder,
    PartsMerger,
    atomic_write_json,
    atomic_write_text,
    finalise,
    owning,
    part_path,
    prepare_partial,
    to_arrow,
    write_part,
)
from vtrial.streams import Streams
from vtrial.vocabulary import DAYS_PER_MONTH

#: Default patients per block: large enough that numpy's per-call overhead is amortised.
DEFAULT_BLOCK_SIZE = 4096
#: Below this many patient-arm-years a run simulates in this process: starting a worker process
#: (fork, imports) costs ~1-1.5 s, about what one core simulates of this work in that time
#: (~10,000 patient-arm-years/s), so a pool would not pay for itself (docs/performance.md).
IN_PROCESS_PATIENT_YEARS = 20_000
BACKENDS = ("loky", "dask")
#: Most workers ``--jobs`` may ask for: more processes than this only thrash one machine.
MAX_JOBS = 1024
#: Largest replicate index (the same range as a seed).
MAX_REPLICATE = 2**63 - 1
#: Longest file or folder name, in bytes, that common file systems allow (NAME_MAX).
NAME_MAX = 255
#: Bytes the run folder's hidden sibling adds to its name (``.<name>.partial``, see ``store.partial_dir``).
PARTIAL_EXTRA = len("..partial")
#: A dask scheduler address: ``tcp://host:port``, ``tls://host:port`` or ``host:port``.
_SCHEDULER = re.compile(r"(?:(?:tcp|tls)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")
#: Seconds to wait for a dask scheduler to accept a connection when the flags are checked.
SCHEDULER_TIMEOUT_S = 5.0
#: Seconds between a worker's checks that the process that started it is still alive.
WATCHDOG_INTERVAL_S = 0.5
#: Exit code of a worker whose parent died.
EXIT_PARENT_DIED = 1
#: Name of the process :class:`_ForkedWorker` forks.
FORKED_WORKER = "vtrial-forked-worker"
#: What a run says when a worker process dies (the finished blocks are kept).
WORKER_DIED = (
    "a worker process died during the run (killed, or out of memory); the finished blocks are kept. "
    "Finish the run with --resume (if memory is short, with fewer --jobs or a smaller --block-size)."
)
DEPENDENCIES = ("numpy", "scipy", "pandas", "pyarrow", "lifelines", "joblib", "pydantic", "typer", "matplotlib")


class Work(typing.Protocol):
    """What :func:`execute` needs of a task besides running it: its size, to choose the workers."""

    @property
    def patient_arms(self) -> int:
        """Patients it simulates, each counted once per arm it is simulated under."""
        ...


@dataclass(frozen=True)
class Task:
    """One unit of work: the patients of one block under one arm."""

    arm_index: int
    block_index: int
    patient_ids: np.ndarray

    @property
    def patient_arms(self) -> int:
        return int(self.patient_ids.size)


_Work = typing.TypeVar("_Work", bound=Work)
_Result = typing.TypeVar("_Result")


def trial_patient_arms(protocol: Protocol) -> int:
    """Patient-arms of the whole trial: every patient once, or under every arm in a paired design."""
    return protocol.trial.patients * (len(protocol.arm) if protocol.trial.design == "paired" else 1)


def allocation_ratio(weights: list[float]) -> np.ndarray | None:
    """Small integer ratio equal to the allocation weights, or None if there is none (<= 12 per block)."""
    w = np.asarray(weights, dtype=float)
    for scale in range(1, 13):
        r = w / w.min() * scale
        if np.allclose(r, np.round(r), rtol=0, atol=1e-9) and np.round(r).sum() <= 12:
            return np.round(r).astype(int)
    return None


def assign_arms(weights: list[float], n_patients: int, streams: Streams) -> np.ndarray:
    """Randomise patients to arms with permuted blocks (simple randomisation if no small ratio).

    A permuted block holds each arm ``ratio`` times, doubled while it stays at most 12 long
    (e.g. 1:1 -> blocks of 4, 2:1 -> blocks of 6). Weights that are not a small integer ratio
    fall back to simple randomisation with probabilities proportional to the weights.
    """
    rng = streams.trial_generator("randomisation")
    ratio = allocation_ratio(weights)
    if ratio is None:
        p = np.asarray(weights, dtype=float)
        return rng.choice(len(weights), size=n_patients, p=p / p.sum()).astype(np.int16)
    template = np.repeat(np.arange(len(weights), dtype=np.int16), ratio)
    while template.size * 2 <= 12 and template.size < 4:
        template = np.tile(template, 2)
    n_blocks = -(-n_patients // template.size)
    order = rng.random((n_blocks, template.size)).argsort(axis=1)
    return template[order].ravel()[:n_patients]


def plan_tasks(protocol: Protocol, streams: Streams, block_size: int) -> list[Task]:
    """All (arm, block) tasks of a trial, in the canonical (arm, block) order."""
    n = protocol.trial.patients
    ids = np.arange(n, dtype=np.int64)
    n_arms = len(protocol.arm)
    if protocol.trial.design == "paired":
        arm_of = None
    else:
        arm_of = assign_arms([a.allocation for a in protocol.arm], n, streams)
    tasks = []
    for a in range(n_arms):
        for b, start in enumerate(range(0, n, block_size)):
            block = ids[start : start + block_size]
            if arm_of is not None:
                block = block[arm_of[start : start + block_size] == a]
            if block.size:
                tasks.append(Task(a, b, block))
    return tasks


def simulate_block(
    protocol: Protocol, streams: Streams, task: Task, parameters: Mapping[str, float] | None = None
) -> tuple[dict, dict, dict]:
    """Sample one block's cohort, simulate it under its arm and count its SREs.

    ``parameters`` overrides model parameter values (calibration); default: the registry's.
    Returns the patient, event and marker columns, with ``counted`` (events) and
    ``first_sre_day`` and ``n_sre`` (patients) from the SRE window rule.
    """
    cohort = sample_cohort(protocol, task.patient_ids, streams)
    horizon_days = protocol.trial.horizon_months * DAYS_PER_MONTH
    patients, events, markers = simulate(
        cohort,
        protocol.arm[task.arm_index],
        horizon_days,
        streams,
        parameters,
        visit_weeks(protocol.analysis.marker_weeks),
    )
    analysis = protocol.analysis
    counted = apply_window_rule(
        events["patient_id"], events["day"], events["type"], analysis.sre_types, analysis.sre_window_days
    )
    events = {**events, "counted": counted}
    row = np.searchsorted(patients["patient_id"], events["patient_id"][counted])
    n_sre = np.bincount(row, minlength=len(patients["patient_id"])).astype(np.int32)
    first = np.full(len(patients["patient_id"]), np.nan)
    # events are sorted by (patient, day): the first counted SRE of a patient is its first occurrence
    first_row, first_at = np.unique(row, return_index=True)
    first[first_row] = np.asarray(events["day"], dtype=float)[counted][first_at]
    patients = {**patients, "first_sre_day": first, "n_sre": n_sre}
    return patients, events, markers


def _run_task(protocol: Protocol, streams: Streams, task: Task) -> tuple[Task, dict[str, pa.Table]]:
    patients, events, markers = simulate_block(protocol, streams, task)
    return task, {"patients": to_arrow(patients), "markers": to_arrow(markers), "events": to_arrow(events)}


def protocol_fingerprint(protocol: Protocol) -> str:
    """SHA-256 of the resolved protocol (what a resumed run must match)."""
    return hashlib.sha256(protocol_to_toml(protocol).encode()).hexdigest()


def resolve_jobs(jobs: int | None, tasks: int | None = None) -> int:
    """Number of workers to start: ``None`` or ``-1`` means all cores; never more than ``tasks``.

    Capping at the number of tasks matters: each loky worker is a process of its own, so
    ``--jobs 50`` for 20 blocks would otherwise start 30 idle processes.
    """
    if jobs is None or jobs == -1:
        n = os.cpu_count() or 1
    elif not 1 <= jobs <= MAX_JOBS:
        raise UserInputError(
            f"must be a number of workers from 1 to {MAX_JOBS}, got {jobs}",
            field="--jobs",
            fix="pass --jobs 1 or more, at most the number of cores (default: all cores)",
        )
    else:
        n = jobs
    return n if tasks is None else max(1, min(n, tasks))


def check_options(
    *,
    jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    replicate: int = 0,
    out: str | Path | None = None,
) -> None:
    """Check the flags of a command before anything is written (one place for all commands).

    Raises
    ------
    UserInputError
        A flag out of range, an unknown backend, ``--scheduler`` without ``--backend dask``,
        a scheduler address that is malformed or does not answer, an output path no file
        system accepts. Prints a warning on stderr when ``--jobs`` exceeds the cores.
    """
    cores = os.cpu_count() or 1
    if resolve_jobs(jobs) > cores and jobs not in (None, -1):
        print(
            f"warning: --jobs {jobs} is more than the {cores} cores of this machine; the extra workers "
            "only compete for them and use memory (each is a process)",
            file=sys.stderr,
        )
    if block_size < 1:
        raise UserInputError(
            f"block size must be positive, got {block_size}",
            field="--block-size",
            fix="pass a positive number of patients per block",
        )
    if not 0 <= replicate <= MAX_REPLICATE:
        raise UserInputError(
            f"replicate must be from 0 to 2**63 - 1, got {replicate}",
            field="--replicate",
            fix="pass --replicate 0 (the default) or another non-negative index",
        )
    check_backend(backend)
    if scheduler is not None:
        if backend != "dask":
            raise UserInputError(
                "a scheduler is used only by the dask backend",
                field="--scheduler",
                fix="add --backend dask, or drop --scheduler to run on this machine",
            )
        _check_scheduler(scheduler)
    if backend == "dask":
        _dask_distributed()
    if out is not None:
        check_out_path(Path(out))


def check_backend(backend: str) -> None:
    """Refuse a backend that is not one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise UserInputError(f"unknown backend {backend!r}", field="--backend", fix=f"use one of {', '.join(BACKENDS)}")


def check_out_path(out: Path) -> None:
    """Refuse an output path that no file system accepts (NUL, a name longer than ``NAME_MAX`` bytes).

    The last name leaves room for the hidden ``.<name>.partial`` folder a run is assembled in.
    """
    text = str(out)
    if "\x00" in text:
        raise UserInputError(
            "the output path contains a NUL character",
            file=text.replace("\x00", "\\x00"),
            field="--out",
            fix="choose --out DIR without control characters",
        )
    names = [os.fsencode(part) for part in out.parts if part not in ("/", "..", ".")]
    for i, name in enumerate(names):
        limit = NAME_MAX - PARTIAL_EXTRA if i == len(names) - 1 else NAME_MAX
        if len(name) > limit:
            raise UserInputError(
                f"the name {name[:24].decode(errors='replace')}... is {len(name)} bytes long, more than {limit} "
                f"(file systems allow {NAME_MAX}; a run folder's name also needs room for its hidden .NAME.partial "
                "sibling)",
                field="--out",
                fix=f"choose --out DIR whose folder names are at most {limit} bytes",
            )


def _check_scheduler(address: str) -> None:
    """Refuse a malformed scheduler address, or one where nothing accepts a connection."""
    match = _SCHEDULER.fullmatch(address)
    if match is None:
        raise UserInputError(
            f"{address!r} is not a scheduler address",
            field="--scheduler",
            fix="give tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786, or omit it for a local cluster",
        )
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        socket.create_connection((host, port), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError as exc:
        raise UserInputError(
            f"cannot reach the dask scheduler at {address}: {exc.strerror or exc}",
            field="--scheduler",
            fix="start it (`dask scheduler`) or give the address it prints, or omit --scheduler for a local cluster",
        ) from None


def _dask_distributed() -> ModuleType:
    """The ``dask.distributed`` module, or a UserInputError saying how to install it."""
    try:
        import dask.distributed
    except ImportError as exc:
        raise UserInputError(
            "the dask backend needs dask.distributed",
            field="--backend",
            fix='install the cluster extra: pip install "vtrial[cluster]"',
        ) from exc
    return dask.distributed


def _watch_parent(parent: int) -> None:
    """Worker initialiser: exit as soon as ``parent``, the process that started this worker, dies.

    A SIGKILLed run cannot stop its loky workers, which would otherwise idle for minutes
    holding the terminal. A daemon thread polls ``os.getppid()``: when the parent dies the
    worker is re-parented and the value changes. ``parent`` is passed in rather than read
    here, so that a worker whose parent died while it was still starting exits too.
    (``PR_SET_PDEATHSIG`` is not used: it fires when the parent *thread* that spawned the
    worker ends, and loky spawns from threads.)
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_INTERVAL_S)
        os._exit(EXIT_PARENT_DIED)

    threading.Thread(target=watch, name="vtrial-parent-watchdog", daemon=True).start()


def local_workers(jobs: int):
    """joblib configuration for ``jobs`` loky workers on this machine that exit when their parent dies."""
    return parallel_config(backend="loky", n_jobs=jobs, initializer=_watch_parent, initargs=(os.getpid(),))


def stop_local_workers() -> None:
    """Stop this process's loky workers (started by :func:`local_workers`), if any.

    loky keeps idle workers for reuse (300 s), each holding the memory of its last block: at
    100,000 patients x 3 arms that was ~0.9 GiB of the run's peak while the tables were merged
    and analysed. A run with a ``finish`` step stops them once its blocks are simulated; the
    next run starts new ones (a run without one, e.g. :func:`vtrial.simulate` without ``out``,
    keeps them for the next).
    """
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor  # loky's singleton; joblib has no public handle on it
    if executor is not None:
        executor.shutdown(wait=True)


class _Cluster:
    """A dask.distributed client for joblib's dask backend (a LocalCluster without an address)."""

    def __init__(self, scheduler: str | None, jobs: int) -> None:
        distributed = _dask_distributed()
        Client, LocalCluster = distributed.Client, distributed.LocalCluster  # noqa: N806 - classes
        self.cluster = None
        if scheduler is None:
            # ":0": any free port for the scheduler's HTTP server (None still binds 8787, and a second
            # cluster on the machine then warns on stderr that the port is in use)
            self.cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0")
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise UserInputError(
                    f"cannot reach the dask scheduler: {exc}",
                    field="--scheduler",
                    fix="give the scheduler's address, e.g. tcp://10.0.0.5:8786, or omit it for a local cluster",
                ) from exc

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class _SharedCluster:
    """The one dask cluster of a command that runs several parallel steps (:func:`shared_dask_cluster`)."""

    cluster: _Cluster | None = None


_SHARED: ContextVar[_SharedCluster | None] = ContextVar("vtrial_shared_dask_cluster", default=None)


@contextmanager
def shared_dask_cluster() -> Iterator[None]:
    """Let every ``dask`` :func:`joblib_workers` inside share one cluster, started by the first and closed on exit.

    A run and its parameter draws (:func:`vtrial.api.simulate`) are two parallel steps: without
    this each would start (and close) a local cluster of its own. Nothing is started if no step
    runs on dask (e.g. the command stops at a bad option first).
    """
    shared = _SharedCluster()
    token = _SHARED.set(shared)
    try:
        yield
    finally:
        _SHARED.reset(token)
        if shared.cluster is not None:
            shared.cluster.close()


@contextmanager
def joblib_workers(backend: str, scheduler: str | None, jobs: int) -> Iterator[None]:
    """The joblib configuration of every parallel command: where its ``Parallel`` calls run.

    ``loky``: ``jobs`` processes on this machine (:func:`local_workers`). ``dask``: the cluster
    at ``scheduler``, or a local cluster of ``jobs`` single-threaded worker processes, closed on
    exit (inside :func:`shared_dask_cluster`: the shared one, started by the first step). One place
    for the backend logic of ``run``, ``batch``, ``sensitivity`` and the parameter draws; results
    do not depend on it (streams are keyed to patients).
    """
    check_backend(backend)
    if backend == "loky":
        with local_workers(jobs):
            yield
        return
    shared = _SHARED.get()
    if shared is not None and shared.cluster is None:
        shared.cluster = _Cluster(scheduler, jobs)
    cluster = _Cluster(scheduler, jobs) if shared is None else None
    try:
        with parallel_config(backend="dask", n_jobs=-1):
            yield
    finally:
        if cluster is not None:
            cluster.close()


@typing.overload
def execute(
    protocol: Protocol,
    streams: Streams,
    tasks: Sequence[Task],
    *,
    jobs: int | None,
    backend: str = ...,
    scheduler: str | None = ...,
    run: None = ...,
    prepare: Callable[[], None] | None = ...,
    started: Callable[[], None] | None = ...,
) -> Iterator[tuple[Task, dict[str, pa.Table]]]: ...
@typing.overload
def execute(
    protocol: Protocol,
    streams: Streams,
    tasks: Sequence[_Work],
    *,
    jobs: int | None,
    backend: str = ...,
    scheduler: str | None = ...,
    run: Callable[[Protocol, Streams, _Work], _Result],
    prepare: Callable[[], None] | None = ...,
    started: Callable[[], None] | None = ...,
) -> Iterator[_Result]: ...
def execute(
    protocol: Protocol,
    streams: Streams,
    tasks: Sequence[Work],
    *,
    jobs: int | None,
    backend: str = "loky",
    scheduler: str | None = None,
    run: Callable[[Protocol, Streams, typing.Any], object] | None = None,
    prepare: Callable[[], None] | None = None,
    started: Callable[[], None] | None = None,
) -> Iterator[object]:
    """Run tasks in parallel and yield each finished one (in completion order).

    At most one worker per task is started (``jobs`` is capped at ``len(tasks)``); one worker
    is this process. ``run`` replaces the (arm, block) simulation by another task function of
    the same signature (the parameter draws of :mod:`vtrial.uncertainty`). ``prepare`` runs in
    this process while worker processes simulate (in a thread beside loky or dask workers: this
    process only waits for them), and has ended when the last task is yielded. A small local
    run (:func:`workers` chose one worker for the default ``jobs``, loky) with a ``prepare`` runs
    its tasks in one process forked from this one (:class:`_ForkedWorker`), which simulates
    while this process runs ``prepare``; where that fork is not possible, the tasks run in this
    process and ``prepare`` is not run (in a thread it would only compete with them for the
    interpreter). ``started`` is called once the tasks have workers (after that fork), before
    ``prepare``: a progress display whose thread starts with its first report starts it after
    the fork.
    """
    check_backend(backend)
    chosen = workers(protocol, tasks, jobs, backend) if tasks else 1
    forked = None
    if tasks and prepare is not None and backend == "loky" and jobs in (None, -1) and chosen == 1:
        forked = _ForkedWorker.start(protocol, streams, tasks, run or _run_task)
    if started is not None:
        started()
    if not tasks:
        return
    if forked is not None and prepare is not None:  # forked only for a prepare step
        try:
            _attempt(prepare)
            yield from forked.results()
        finally:
            forked.stop()
        return
    jobs = chosen
    helper = None if prepare is None or jobs == 1 else _Helper(prepare)
    try:
        with joblib_workers(backend, scheduler, jobs):
            runner = Parallel(return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs")
            results = runner(delayed(run or _run_task)(protocol, streams, t) for t in tasks)
            if helper is not None:
                helper.start()  # loky and dask start their workers as new interpreters: no fork of this thread
            yield from results
    except TerminatedWorkerError as exc:
        raise RunFailedError(WORKER_DIED) from exc
    finally:
        if helper is not None:
            helper.join()


def _attempt(function: Callable[[], None]) -> None:
    """Call ``function`` and drop its error: a ``prepare`` step (e.g. a failed import) is retried, and its error
    reported, by the caller's next step."""
    try:
        function()
    except Exception:  # noqa: BLE001 - see the docstring
        return


class _Helper:
    """A function run in a daemon thread; its error is dropped (:func:`_attempt`)."""

    def __init__(self, function: Callable[[], None]) -> None:
        self.thread = threading.Thread(target=_attempt, args=(function,), name="vtrial-prepare", daemon=True)

    def start(self) -> None:
        if self.thread.ident is None:
            self.thread.start()

    def join(self) -> None:
        if self.thread.ident is not None:
            self.thread.join()


class _ChildTraceback(Exception):
    """The traceback of an error raised in the forked worker, as text (the ``__cause__`` of the error re-raised here)."""

    def __str__(self) -> str:
        return f"\n\n{self.args[0]}"


def _fork_context() -> ForkContext | None:
    """multiprocessing's ``fork`` start method where a fork of this process is safe, else None.

    Linux only (macOS system libraries are not fork-safe; Windows has no fork), and only while
    this process runs no other Python thread: a fork copies the locks other threads hold (e.g.
    the console lock of the CLI's progress bar, whose refresh thread runs on a terminal) but not
    the threads that would release them.
    """
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return None
    try:
        return multiprocessing.get_context("fork")
    except ValueError:
        return None


class _ForkedWorker:
    """One process forked from this one that runs the tasks in order and sends each result back.

    For a small local run with a ``prepare`` step (:func:`execute`): the child starts with every
    module of this process imported (a loky worker is a new interpreter: ~1 s of imports), and
    simulates on the second core while this process runs ``prepare`` (the analysis and report
    stack's imports). Results are those of this process (streams are keyed to patients).

    Why the fork is safe: it is made only while this process runs a single Python thread
    (:func:`_fork_context`). The native threads Python 3.12+ counts in its fork warning are those
    of OpenBLAS (numpy, scipy) and of pyarrow's jemalloc, libraries that stop and restore them
    around a fork (``pthread_atfork``); that warning is therefore not shown. The child touches
    nothing of this process but its pipe: it never prints, never calls the progress callbacks
    (this process does, with the results it receives), never writes the run folder; it ignores
    Ctrl-C (this process handles it and kills the child) and exits when this process dies.
    """

    def __init__(self, process: BaseProcess, results: Connection, n_tasks: int) -> None:
        self.process = process
        self.results_from = results
        self.n_tasks = n_tasks
        self.received_all = False

    @classmethod
    def start(
        cls, protocol: Protocol, streams: Streams, tasks: Sequence[typing.Any], run: Callable[..., object]
    ) -> _ForkedWorker | None:
        """Fork the worker and let it start on ``tasks``; None where no fork is possible (run them here)."""
        context = _fork_context()
        if context is None:
            return None
        receive, send = context.Pipe(duplex=False)
        args = (send, os.getpid(), protocol, streams, tasks, run)
        process = context.Process(target=_serve, args=args, name=FORKED_WORKER, daemon=True)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
                process.start()
        except OSError:  # no process could be made (memory, process limit)
            receive.close()
            return None
        finally:
            send.close()  # the child's copy stays open: the pipe ends when the child does
        return cls(process, receive, len(tasks))

    def results(self) -> Iterator[object]:
        """Each task's result in task order; the child's error raised here; a dead child a RunFailedError."""
        for _ in range(self.n_tasks):
            try:
                ok, value, text = self.results_from.recv()
            except EOFError:
                raise RunFailedError(WORKER_DIED) from None
            if not ok:
                raise value from _ChildTraceback(text)
            yield value
        self.received_all = True

    def stop(self) -> None:
        """Wait for the child to exit; kill it first if the run stopped before its last result (an error, Ctrl-C)."""
        if not self.received_all:
            self.process.kill()
        self.process.join()
        self.results_from.close()


def _serve(
    send: Connection,
    parent: int,
    protocol: Protocol,
    streams: Streams,
    tasks: Sequence[typing.Any],
    run: Callable[..., object],
) -> None:
    """The forked worker: run the tasks in order and send each result (or the error that stopped them) back.

    A thread sends, so that the simulation goes on while this process's results wait in the
    pipe for the parent, busy with its ``prepare`` step.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent too, which stops this process
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler (an interrupt of the parent)
    _watch_parent(parent)
    outbox: queue.SimpleQueue[tuple[bool, object, str] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_all, args=(send, outbox), name="vtrial-send")
    sender.start()
    try:
        for task in tasks:
            outbox.put((True, run(protocol, streams, task), ""))
    except Exception as exc:  # noqa: BLE001 - every error is the parent's to raise
        outbox.put((False, _portable(exc), "".join(traceback.format_exception(exc))))
    outbox.put(None)
    sender.join()


def _send_all(send: Connection, outbox: queue.SimpleQueue) -> None:
    """Send what ``outbox`` holds until None; exit if the parent is gone (its pipe closed)."""
    while (item := outbox.get()) is not None:
        try:
            send.send(item)
        except OSError:
            os._exit(EXIT_PARENT_DIED)


def _portable(error: Exception) -> Exception:
    """``error`` if it survives pickling (it crosses the pipe), else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure to pickle or rebuild
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def workers(protocol: Protocol, tasks: Sequence[Work], jobs: int | None, backend: str = "loky") -> int:
    """Workers that run the tasks: :func:`resolve_jobs`, but 1 (this process) for a small local run.

    Small: fewer than :data:`IN_PROCESS_PATIENT_YEARS` patient-arm-years to the horizon, with
    the default ``jobs`` (all cores; an explicit ``--jobs`` is obeyed). Results do not depend on
    it (streams are keyed to patients).
    """
    years = sum(t.patient_arms for t in tasks) * protocol.trial.horizon_months / 12.0
    if jobs in (None, -1) and backend == "loky" and years < IN_PROCESS_PATIENT_YEARS:
        return 1
    return resolve_jobs(jobs, len(tasks))


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    n_patients: int
    n_events: int
    wall_time_s: float


def dependency_versions() -> dict[str, str]:
    """Installed versions of the libraries a run depends on."""
    out = {"python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def default_run_dir(protocol: Protocol) -> Path:
    """The run folder of a protocol when none is given: ``outputs/<trial.name>``."""
    return Path("outputs") / protocol.trial.name


def run_trial(
    protocol: Protocol,
    out: Path | None = None,
    *,
    jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    replicate: int = 0,
    force: bool = False,
    resume: bool = False,
    inputs: tuple[str | Path, ...] = (),
    on_progress: Callable[[int, int, int], None] | None = None,
    finish: Callable[[Path], None] | None = None,
    prepare: Callable[[], None] | None = None,
) -> RunResult:
    """Simulate a trial into its run folder (atomically) and return where it is.

    Parameters
    ----------
    protocol : Protocol
        The resolved protocol (``--patients``/``--seed`` overrides already applied).
    out : Path, optional
        Run folder; default ``outputs/<trial.name>``.
    jobs : int, optional
        Parallel workers (default: all cores).
    backend : {"loky", "dask"}
        joblib backend; ``dask`` runs on ``scheduler`` or on a local cluster.
    block_size : int
        Patients per block (memory is bounded by it, results do not depend on it).
    replicate : int
        Replicate index (independent random streams derived from the seed).
    force, resume : bool
        Replace an existing run folder (only a run folder or an empty one); finish an
        interrupted run from its finished blocks.
    inputs : tuple of path, optional
        The protocol file(s) read: a folder holding one is never replaced.
    on_progress : callable, optional
        Called as ``on_progress(blocks_done, blocks_total, patients_done)``.
    finish : callable, optional
        Called with the partial folder once the tables are written (analysis and report),
        before the folder is moved into place.
    prepare : callable, optional
        Run in this process while worker processes simulate (the imports ``finish`` needs): in a
        thread beside loky or dask workers; in this process's own thread beside the one forked
        worker of a small run; not run when the blocks are simulated here (:func:`execute`).
        Its error is dropped: ``finish`` meets it again.

    The process holds the folder's lock (:func:`vtrial.store.owning`) from the first check to
    the final rename, so another run of the same folder is refused instead of mixing with it.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    check_options(jobs=jobs, backend=backend, scheduler=scheduler, block_size=block_size, replicate=replicate, out=out)
    run_dir = Path(out) if out is not None else default_run_dir(protocol)
    streams = Streams(protocol.trial.seed, replicate)
    tasks = plan_tasks(protocol, streams, block_size)
    requested, jobs = jobs, workers(protocol, tasks, jobs, backend)
    folder = OutputFolder.of(run_dir, "run", force, inputs)
    partial = folder.partial
    with owning(folder):
        state = {
            "protocol_sha256": protocol_fingerprint(protocol),
            "seed": protocol.trial.seed,
            "replicate": replicate,
            "block_size": block_size,
            "vtrial": __version__,
        }
        done = prepare_partial(partial, state, resume, force)
        todo = [t for t in tasks if (t.arm_index, t.block_index) not in done]
        total, finished = len(tasks), len(tasks) - len(todo)
        patients_done = 0
        # each table is merged in task order as its blocks finish, while the workers simulate the next
        mergers = {
            kind: PartsMerger(
                [part_path(partial, kind, t.arm_index, t.block_index) for t in tasks], partial / f"{kind}.parquet"
            )
            for kind in TABLES
        }
        try:
            for kind, merger in mergers.items():
                merger.ready(*(part_path(partial, kind, *block) for block in done))
            # one worker: the jobs asked for, so that ``execute`` tells the default (a forked worker) from --jobs 1
            simulated = execute(
                protocol,
                streams,
                todo,
                jobs=requested if jobs == 1 else jobs,
                backend=backend,
                scheduler=scheduler,
                prepare=prepare,
                started=None if on_progress is None else functools.partial(on_progress, finished, total, patients_done),
            )
            for task, tables in simulated:
                # each part is written atomically; a block counts as finished once all its parts exist
                for kind in TABLES:
                    write_part(partial, kind, task.arm_index, task.block_index, tables[kind])
                    mergers[kind].ready(part_path(partial, kind, task.arm_index, task.block_index))
                finished += 1
                patients_done += tables["patients"].num_rows
                if on_progress:
                    on_progress(finished, total, patients_done)
            if finish is not None and backend == "loky" and jobs > 1 and todo:
                stop_local_workers()  # the merge and ``finish`` need the memory more than a next run the warm workers
            rows = {kind: merger.close() for kind, merger in mergers.items()}
        finally:
            for merger in mergers.values():
                merger.abort()
        n_patients, n_events = rows["patients"], rows["events"]
        atomic_write_text(partial / "protocol.toml", protocol_to_toml(protocol))
        manifest = {
            "vtrial": __version__,
            "trial": protocol.trial.name,
            "seed": protocol.trial.seed,
            "replicate": replicate,
            "patients": protocol.trial.patients,
            "rows_patients": n_patients,
            "rows_events": n_events,
            "rows_markers": rows["markers"],
            "jobs": jobs,
            "backend": backend,
            "scheduler": scheduler,
            "block_size": block_size,
            "blocks": total,
            "resumed": bool(resume and len(done) > 0),
            "started_utc": started_at,
            "wall_time_s": round(time.perf_counter() - started, 3),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "platform": platform.platform(),
            "dependencies": dependency_versions(),
        }
        atomic_write_json(partial / "manifest.json", manifest)
        if finish is not None:
            finish(partial)
        finalise(partial, folder)
    return RunResult(run_dir, n_patients, n_events, time.perf_counter() - started)
