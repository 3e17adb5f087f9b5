"""Batch cohorts: replicate trials of one or more protocols, for power and trial sizing.

Replicate ``r`` of a protocol uses the random streams ``Streams(seed, replicate=r)``: the same
trial as ``vtrial run P --replicate r``. Each replicate runs in one worker (its blocks in
sequence, in memory) and returns one row per comparison of an arm with the reference arm: arm
sizes, the proportion with an SRE per arm and the hazard ratio of time to first SRE with its
95% CI and p-value. The summary gives power (share of replicates significant at ``alpha``,
two-sided, and one-sided in favour of the arm), the distribution of the hazard ratio and the
median of each endpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from joblib import Parallel, delayed

from vtrial.analysis import cox_comparison
from vtrial.engine import (
    DEFAULT_BLOCK_SIZE,
    check_options,
    dependency_versions,
    local_workers,
    plan_tasks,
    resolve_jobs,
    simulate_block,
)
from vtrial.errors import UserInputError
from vtrial.protocol import Protocol, protocol_to_toml
from vtrial.store import (
    OutputFolder,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    finalise_folder,
    owning,
    writing,
)
from vtrial.streams import Streams

ROW_COLUMNS = (
    "trial", "replicate", "seed", "arm", "reference", "n_arm", "n_reference",
    "proportion_with_sre_arm", "proportion_with_sre_reference",
    "hazard_ratio", "ci_low", "ci_high", "p_value",
)


def simulate_patients(protocol: Protocol, replicate: int, block_size: int = DEFAULT_BLOCK_SIZE) -> pd.DataFrame:
    """All patients of one replicate trial, simulated in this process (one row per patient and arm)."""
    streams = Streams(protocol.trial.seed, replicate)
    tables = [pd.DataFrame(simulate_block(protocol, streams, t)[0]) for t in plan_tasks(protocol, streams, block_size)]
    return pd.concat(tables, ignore_index=True)


def replicate_rows(patients: pd.DataFrame, protocol: Protocol, replicate: int) -> list[dict]:
    """The batch rows of one replicate trial: one per arm compared with the reference arm."""
    reference = protocol.reference_arm
    with_sre = patients["n_sre"] > 0
    proportion = with_sre.groupby(patients["arm"]).mean()
    size = patients.groupby("arm").size()
    rows = []
    for arm in (a.name for a in protocol.arm):
        if arm == reference:
            continue
        result = cox_comparison(patients, arm, reference, endpoint="time_to_first_sre")
        rows.append(
            {
                "trial": protocol.trial.name,
                "replicate": replicate,
                "seed": protocol.trial.seed,
                "arm": arm,
                "reference": reference,
                "n_arm": int(size.get(arm, 0)),
                "n_reference": int(size.get(reference, 0)),
                "proportion_with_sre_arm": float(proportion.get(arm, np.nan)),
                "proportion_with_sre_reference": float(proportion.get(reference, np.nan)),
                "hazard_ratio": result["hazard_ratio"],
                "ci_low": result["ci_low"],
                "ci_high": result["ci_high"],
                "p_value": result["p_value"],
            }
        )
    return rows


def _replicate_task(protocol: Protocol, replicate: int, block_size: int) -> list[dict]:
    return replicate_rows(simulate_patients(protocol, replicate, block_size), protocol, replicate)


def summarise_batch(rows: pd.DataFrame, alpha: float) -> list[dict]:
    """Power and endpoint distribution per trial and comparison."""
    out = []
    for (trial, arm, reference), g in rows.groupby(["trial", "arm", "reference"], sort=False):
        p = g["p_value"].to_numpy(dtype=float)
        hr = g["hazard_ratio"].to_numpy(dtype=float)
        valid = np.isfinite(p) & np.isfinite(hr)
        r = int(valid.sum())
        two = float(np.mean(p[valid] < alpha)) if r else None
        one = float(np.mean((hr[valid] < 1) & (p[valid] / 2 < alpha))) if r else None

        def q(x: np.ndarray, level: float) -> float | None:
            return float(np.quantile(x, level)) if x.size else None

        out.append(
            {
                "trial": trial,
                "arm": arm,
                "reference": reference,
                "replicates": int(len(g)),
                "replicates_analysable": r,
                "alpha": alpha,
                "power_two_sided": two,
                "power_two_sided_mc_se": None if two is None else float(np.sqrt(two * (1 - two) / r)),
                "power_one_sided": one,
                "power_one_sided_mc_se": None if one is None else float(np.sqrt(one * (1 - one) / r)),
                "hazard_ratio": {
                    "median": q(hr[valid], 0.5),
                    "mean": float(hr[valid].mean()) if r else None,
                    "q025": q(hr[valid], 0.025),
                    "q975": q(hr[valid], 0.975),
                },
                "median_n_arm": float(g["n_arm"].median()),
                "median_n_reference": float(g["n_reference"].median()),
                "median_proportion_with_sre_arm": float(g["proportion_with_sre_arm"].median()),
                "median_proportion_with_sre_reference": float(g["proportion_with_sre_reference"].median()),
                "median_p_value": q(p[valid], 0.5),
            }
        )
    return out


def format_summary(summary: list[dict]) -> str:
    """The batch summary as a plain-text table for the terminal, each column as wide as its longest entry."""

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else format(x, ".3f")

    header = ("trial", "comparison", "R", "power 2-sided", "1-sided", "median HR")
    rows = [
        (s["trial"], f"{s['arm']} vs {s['reference']}", str(s["replicates"]), fmt(s["power_two_sided"]),
         fmt(s["power_one_sided"]), fmt(s["hazard_ratio"]["median"]))
        for s in summary
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        # text columns left-aligned, numbers right-aligned
        return " ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    lines = [line(header), "-" * (sum(widths) + len(widths) - 1), *(line(row) for row in rows)]
    return "\n".join(lines)


def check_distinct_names(protocols: list[Protocol]) -> None:
    """Refuse two protocols with one ``trial.name``: rows, summaries and files are keyed by it.

    Pooling them would double the replicates of one comparison and lose one protocol's copy.
    """
    names = [p.trial.name for p in protocols]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise UserInputError(
            f"{sum(names.count(n) for n in shared)} protocols share the name(s) {shared}; a batch keys its "
            "rows and files by trial.name", field="trial.name",
            fix="give each protocol its own trial.name (and each file once)",
        )


def default_batch_dir(protocols: list[Protocol]) -> Path:
    """``outputs/<trial.name>-batch`` for one protocol, ``outputs/batch`` for several."""
    return Path("outputs") / (f"{protocols[0].trial.name}-batch" if len(protocols) == 1 else "batch")


def run_batch(
    protocols: list[Protocol],
    out: str | Path | None = None,
    *,
    replicates: int = 100,
    jobs: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    alpha: float = 0.05,
    force: bool = False,
    inputs: Iterable[str | Path] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, list[dict]]:
    """Run ``replicates`` trials of each protocol in parallel; write the batch folder atomically.

    The folder holds ``batch.parquet`` and ``batch.csv`` (one row per replicate and
    comparison), ``batch_summary.json`` (power and distributions), the resolved protocols and
    a manifest. Returns the folder and the summary. ``force`` replaces only a batch folder or
    an empty one, never a folder holding one of ``inputs`` (the protocol files); the folder is
    locked against other vtrial processes for the whole batch (:func:`vtrial.store.owning`).
    """
    if replicates < 1:
        raise UserInputError(f"--replicates must be at least 1, got {replicates}", field="--replicates",
                             fix="pass a positive number of replicate trials")
    if not 0 < alpha < 1:
        raise UserInputError(f"--alpha must be between 0 and 1, got {alpha}", field="--alpha",
                             fix="pass a significance level such as 0.05")
    check_options(jobs=jobs, block_size=block_size, out=out)
    check_distinct_names(protocols)
    work = [(p, r) for p in protocols for r in range(replicates)]
    jobs = resolve_jobs(jobs, len(work))
    out = Path(out) if out is not None else default_batch_dir(protocols)
    folder = OutputFolder.of(out, "batch", force, inputs)
    partial = folder.partial
    with owning(folder):
        with writing(partial):
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        rows: list[dict] = []
        if on_progress:
            on_progress(0, len(work))
        with local_workers(jobs):
            runner = Parallel(return_as="generator", batch_size=1, pre_dispatch="2*n_jobs")
            for done, result in enumerate(runner(delayed(_replicate_task)(p, r, block_size) for p, r in work), 1):
                rows.extend(result)
                if on_progress:
                    on_progress(done, len(work))
        table = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
        summary = summarise_batch(table, alpha)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), sink)
        atomic_write_bytes(partial / "batch.parquet", sink.getvalue().to_pybytes())
        atomic_write_text(partial / "batch.csv", table.to_csv(index=False))
        atomic_write_json(partial / "batch_summary.json", summary)
        for p in protocols:
            atomic_write_text(partial / f"protocol-{p.trial.name}.toml", protocol_to_toml(p))
        manifest = {
            "replicates": replicates,
            "jobs": jobs,
            "block_size": block_size,
            "alpha": alpha,
            "trials": [p.trial.name for p in protocols],
            "dependencies": dependency_versions(),
        }
        atomic_write_json(partial / "manifest.json", manifest)
        finalise_folder(partial, folder)
    return out, summary
