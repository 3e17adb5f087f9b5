"""The trial engine: designs, blocks of patients, parallel tasks, streaming to disk, resume.

The engine knows no biology. It randomises patients (parallel design) or pairs them (every
patient under every arm), splits them into blocks, runs one task per (arm, block) with joblib
(loky processes locally, or a dask.distributed cluster), and streams each finished block to
the partial run folder. Every random draw is keyed to patients (:mod:`vtrial.streams`), so the
tables are identical whatever the number of workers, the block size or the backend.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
    atomic_write_json,
    atomic_write_text,
    finalise,
    merge_parts,
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
BACKENDS = ("loky", "dask")
DEPENDENCIES = ("numpy", "scipy", "pandas", "pyarrow", "lifelines", "joblib", "pydantic", "typer", "matplotlib")


@dataclass(frozen=True)
class Task:
    """One unit of work: the patients of one block under one arm."""

    arm_index: int
    block_index: int
    patient_ids: np.ndarray


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
        cohort, protocol.arm[task.arm_index], horizon_days, streams, parameters, visit_weeks(protocol.analysis.marker_weeks)
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


def resolve_jobs(jobs: int | None) -> int:
    """Number of workers: ``None`` or ``-1`` means all cores."""
    if jobs is None or jobs == -1:
        return os.cpu_count() or 1
    if jobs < 1:
        raise UserInputError(f"--jobs must be a positive number of workers, got {jobs}", field="--jobs",
                             fix="pass --jobs 1 or more (default: all cores)")
    return jobs


class _Cluster:
    """A dask.distributed client for joblib's dask backend (a LocalCluster without an address)."""

    def __init__(self, scheduler: str | None, jobs: int) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise UserInputError(
                "the dask backend needs dask.distributed", field="--backend",
                fix='install the cluster extra: pip install "vtrial[cluster]"',
            ) from exc
        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise UserInputError(
                    f"cannot reach the dask scheduler: {exc}", field="--scheduler",
                    fix="give the scheduler's address, e.g. tcp://10.0.0.5:8786, or omit it for a local cluster",
                ) from exc

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def execute(
    protocol: Protocol,
    streams: Streams,
    tasks: list[Task],
    *,
    jobs: int,
    backend: str = "loky",
    scheduler: str | None = None,
) -> Iterator[tuple[Task, dict[str, pa.Table]]]:
    """Run tasks in parallel and yield each finished one (in completion order)."""
    if backend not in BACKENDS:
        raise UserInputError(f"unknown backend {backend!r}", field="--backend", fix=f"use one of {', '.join(BACKENDS)}")
    if not tasks:
        return
    cluster = _Cluster(scheduler, jobs) if backend == "dask" else None
    try:
        with parallel_config(backend=backend, n_jobs=jobs if cluster is None else -1):
            runner = Parallel(return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs")
            yield from runner(delayed(_run_task)(protocol, streams, t) for t in tasks)
    except TerminatedWorkerError as exc:
        raise RunFailedError(
            "a worker process died during the run (killed, or out of memory); the finished blocks are kept. "
            "Finish the run with --resume (if memory is short, with fewer --jobs or a smaller --block-size)."
        ) from exc
    finally:
        if cluster is not None:
            cluster.close()


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

    The process holds the folder's lock (:func:`vtrial.store.owning`) from the first check to
    the final rename, so another run of the same folder is refused instead of mixing with it.
    """
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if block_size < 1:
        raise UserInputError(f"block size must be positive, got {block_size}", field="--block-size",
                             fix="pass a positive number of patients per block")
    jobs = resolve_jobs(jobs)
    run_dir = Path(out) if out is not None else Path("outputs") / protocol.trial.name
    folder = OutputFolder.of(run_dir, "run", force, inputs)
    partial = folder.partial
    with owning(folder):
        streams = Streams(protocol.trial.seed, replicate)
        state = {
            "protocol_sha256": protocol_fingerprint(protocol),
            "seed": protocol.trial.seed,
            "replicate": replicate,
            "block_size": block_size,
            "vtrial": __version__,
        }
        done = prepare_partial(partial, state, resume)
        tasks = plan_tasks(protocol, streams, block_size)
        todo = [t for t in tasks if (t.arm_index, t.block_index) not in done]
        total, finished = len(tasks), len(tasks) - len(todo)
        patients_done = 0
        if on_progress:
            on_progress(finished, total, patients_done)
        for task, tables in execute(protocol, streams, todo, jobs=jobs, backend=backend, scheduler=scheduler):
            # each part is written atomically; a block counts as finished once all its parts exist
            for kind in TABLES:
                write_part(partial, kind, task.arm_index, task.block_index, tables[kind])
            finished += 1
            patients_done += tables["patients"].num_rows
            if on_progress:
                on_progress(finished, total, patients_done)
        rows = {
            kind: merge_parts([part_path(partial, kind, t.arm_index, t.block_index) for t in tasks],
                              partial / f"{kind}.parquet")
            for kind in TABLES
        }
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
