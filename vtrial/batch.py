"""Batch cohorts: replicate trials of one or more protocols, for power, non-inferiority and trial sizing.

Replicate ``r`` of a protocol uses the random streams ``Streams(seed, replicate=r)``: the same
trial as ``vtrial run P --replicate r``. Each replicate runs in one worker (its blocks in
sequence, in memory) and returns one row per comparison of an arm with the reference arm: arm
sizes, the proportion with an SRE per arm and their risk difference, the hazard ratio of time to
first SRE, the rate ratio of all SREs and the hazard ratio of overall survival, each with its
95% CI and p-value. The summary gives, per trial size and comparison, power for each endpoint
(share of replicates significant at ``alpha``, two-sided, and one-sided in favour of the arm),
the probability of meeting a non-inferiority margin, the distribution of the ratios and the
median of each endpoint; a search finds the trial size reaching a target power
(``docs/sensitivity.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from joblib import Parallel, delayed
from matplotlib.figure import Figure

from vtrial import __version__
from vtrial.analysis import cox_comparison
from vtrial.analysis.proportions import newcombe_difference
from vtrial.analysis.summary import rate_ratio_comparison
from vtrial.engine import (
    DEFAULT_BLOCK_SIZE,
    check_options,
    dependency_versions,
    joblib_workers,
    plan_tasks,
    protocol_fingerprint,
    resolve_jobs,
    simulate_block,
)
from vtrial.errors import UserInputError
from vtrial.protocol import Protocol, apply_overrides, protocol_to_toml
from vtrial.report import FIGURE_STYLE, svg_element, template_environment
from vtrial.store import (
    OutputFolder,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    drop_records,
    finalise_folder,
    owning,
    prepare_records,
)
from vtrial.streams import Streams

ROW_COLUMNS = (
    "trial",
    "patients",
    "replicate",
    "seed",
    "arm",
    "reference",
    "n_arm",
    "n_reference",
    "proportion_with_sre_arm",
    "proportion_with_sre_reference",
    "risk_difference",
    "rd_ci_low",
    "rd_ci_high",
    "hazard_ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "rate_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "rr_p_value",
    "os_hazard_ratio",
    "os_ci_low",
    "os_ci_high",
    "os_p_value",
)
#: Subfolder of the partial folder holding each finished replicate's rows.
REPLICATES = "replicates"
#: A sample-size search goes at most this factor above the protocol's size.
SEARCH_SPAN = 64
#: Endpoints with power in the summary: name -> (ratio column, p-value column).
POWER_ENDPOINTS = {
    "time_to_first_sre": ("hazard_ratio", "p_value"),
    "first_and_subsequent_sre": ("rate_ratio", "rr_p_value"),
    "overall_survival": ("os_hazard_ratio", "os_p_value"),
}


def simulate_tables(
    protocol: Protocol,
    replicate: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    parameters: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients (one row per patient and arm) and events of one replicate trial, simulated in this process.

    ``parameters`` overrides model parameter values (``vtrial sensitivity``); default: the registry's.
    """
    streams = Streams(protocol.trial.seed, replicate)
    parts = [simulate_block(protocol, streams, t, parameters) for t in plan_tasks(protocol, streams, block_size)]
    return tuple(pd.concat([pd.DataFrame(part[k]) for part in parts], ignore_index=True) for k in range(2))


def _numbers(result: dict, ratio: str) -> tuple[float, float, float, float]:
    """``(ratio, ci_low, ci_high, p_value)`` of an analysis result, NaN where not estimable."""
    keys = (ratio, "ci_low", "ci_high", "p_value")
    ratio_, low, high, p = (np.nan if result[k] is None else float(result[k]) for k in keys)
    return ratio_, low, high, p


def replicate_rows(patients: pd.DataFrame, events: pd.DataFrame, protocol: Protocol, replicate: int) -> list[dict]:
    """The batch rows of one replicate trial: one per arm compared with the reference arm.

    Each row: arm sizes, proportions with an SRE and their Newcombe risk difference (arm minus
    reference, 95% CI), the Cox hazard ratios of time to first SRE and of overall survival and
    the Andersen–Gill rate ratio of all SREs, each with its 95% CI and p-value.
    """
    reference = protocol.reference_arm
    design = protocol.trial.design
    with_sre = patients["n_sre"] > 0
    count = with_sre.groupby(patients["arm"]).sum()
    size = patients.groupby("arm").size()
    rows = []
    for arm in (a.name for a in protocol.arm):
        if arm == reference:
            continue
        k1, n1, k0, n0 = (
            int(x.get(a, 0)) for x, a in ((count, arm), (size, arm), (count, reference), (size, reference))
        )
        rd = newcombe_difference(k1, n1, k0, n0) if n1 and n0 else (np.nan,) * 3
        first = _numbers(cox_comparison(patients, arm, reference, "time_to_first_sre", design), "hazard_ratio")
        rate = _numbers(rate_ratio_comparison(patients, events, arm, reference), "rate_ratio")
        death = _numbers(cox_comparison(patients, arm, reference, "overall_survival", design), "hazard_ratio")
        rows.append(
            {
                "trial": protocol.trial.name,
                "patients": protocol.trial.patients,
                "replicate": replicate,
                "seed": protocol.trial.seed,
                "arm": arm,
                "reference": reference,
                "n_arm": n1,
                "n_reference": n0,
                "proportion_with_sre_arm": k1 / n1 if n1 else np.nan,
                "proportion_with_sre_reference": k0 / n0 if n0 else np.nan,
                **dict(zip(("risk_difference", "rd_ci_low", "rd_ci_high"), map(float, rd))),
                **dict(zip(("hazard_ratio", "ci_low", "ci_high", "p_value"), first)),
                **dict(zip(("rate_ratio", "rr_ci_low", "rr_ci_high", "rr_p_value"), rate)),
                **dict(zip(("os_hazard_ratio", "os_ci_low", "os_ci_high", "os_p_value"), death)),
            }
        )
    return rows


def _replicate_task(protocol: Protocol, replicate: int, block_size: int) -> list[dict]:
    return replicate_rows(*simulate_tables(protocol, replicate, block_size), protocol, replicate)


def _share(flags: np.ndarray) -> tuple[float | None, float | None]:
    """Share of true flags and its Monte Carlo standard error ``sqrt(p (1 - p) / R)``."""
    if not flags.size:
        return None, None
    p = float(flags.mean())
    return p, float(np.sqrt(p * (1 - p) / flags.size))


def power(ratio: np.ndarray, p_value: np.ndarray, alpha: float) -> dict:
    """Power over replicates: two-sided ``p < alpha``, and one-sided in favour of the arm (ratio < 1 and
    ``p / 2 < alpha``), each with its Monte Carlo standard error, over the analysable replicates."""
    valid = np.isfinite(p_value) & np.isfinite(ratio)
    two, two_se = _share(p_value[valid] < alpha)
    one, one_se = _share((ratio[valid] < 1) & (p_value[valid] / 2 < alpha))
    return {
        "replicates_analysable": int(valid.sum()),
        "power_two_sided": two,
        "power_two_sided_mc_se": two_se,
        "power_one_sided": one,
        "power_one_sided_mc_se": one_se,
    }


def _quantiles(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)]
    if not x.size:
        return dict.fromkeys(("median", "mean", "q025", "q975"))
    return {
        "median": float(np.median(x)),
        "mean": float(x.mean()),
        "q025": float(np.quantile(x, 0.025)),
        "q975": float(np.quantile(x, 0.975)),
    }


def non_inferiority(upper: np.ndarray, margin: float) -> dict:
    """Probability that a replicate shows non-inferiority: the upper 95% confidence bound below ``margin``.

    An upper bound of a two-sided 95% CI is a one-sided test at 2.5%, the rule of the pivotal
    denosumab trials. A replicate whose estimate is not analysable (NaN) counts as not meeting
    the margin (a trial that cannot show non-inferiority has not shown it).
    """
    met, se = _share(np.nan_to_num(upper, nan=np.inf) < margin)
    return {"margin": margin, "probability": met, "mc_se": se}


#: A trial's non-inferiority margins: ``ni_hr`` (hazard ratio of time to first SRE) and ``ni_rd``
#: (risk difference of the proportion with an SRE), each ``None`` when not tested.
Margins = Mapping[str, float | None]


def trial_margins(protocols: Iterable[Protocol], ni_hr: float | None, ni_rd: float | None) -> dict[str, dict]:
    """The margins of each trial: the command's (``--non-inferiority-hr``/``-rd``) where given, else the
    protocol's ``[analysis] non_inferiority_hr``/``_rd``."""
    return {
        p.trial.name: {
            "ni_hr": p.analysis.non_inferiority_hr if ni_hr is None else ni_hr,
            "ni_rd": p.analysis.non_inferiority_rd if ni_rd is None else ni_rd,
        }
        for p in protocols
    }


def summarise_batch(rows: pd.DataFrame, alpha: float, margins: Mapping[str, Margins] | None = None) -> list[dict]:
    """Power, non-inferiority and endpoint distribution per trial, trial size and comparison.

    The top-level power keys are those of time to first SRE; ``endpoints`` has the power and
    ratio distribution of each of :data:`POWER_ENDPOINTS`; ``non_inferiority`` the probability of
    meeting each trial's margins (:func:`trial_margins`; none for a trial not in ``margins``) on the
    hazard ratio of time to first SRE (``ni_hr``) and on the risk difference of the proportion with
    an SRE (``ni_rd``).
    """
    out = []
    for (trial, patients, arm, reference), g in rows.groupby(["trial", "patients", "arm", "reference"], sort=False):
        endpoints = {}
        for name, (ratio, p) in POWER_ENDPOINTS.items():
            r = g[ratio].to_numpy(dtype=float)
            endpoints[name] = {**power(r, g[p].to_numpy(dtype=float), alpha), ratio: _quantiles(r)}
        first = endpoints["time_to_first_sre"]
        own = (margins or {}).get(trial, {})
        hr_margin, rd_margin = own.get("ni_hr"), own.get("ni_rd")
        ni = {}
        if hr_margin is not None:
            ni["hazard_ratio"] = non_inferiority(g["ci_high"].to_numpy(dtype=float), hr_margin)
        if rd_margin is not None:
            ni["risk_difference"] = non_inferiority(g["rd_ci_high"].to_numpy(dtype=float), rd_margin)
        out.append(
            {
                "trial": trial,
                "patients": int(patients),
                "arm": arm,
                "reference": reference,
                "replicates": int(len(g)),
                "alpha": alpha,
                **{
                    k: first[k]
                    for k in (
                        "replicates_analysable",
                        "power_two_sided",
                        "power_two_sided_mc_se",
                        "power_one_sided",
                        "power_one_sided_mc_se",
                    )
                },
                "hazard_ratio": first["hazard_ratio"],
                "endpoints": endpoints,
                "non_inferiority": ni or None,
                "median_n_arm": float(g["n_arm"].median()),
                "median_n_reference": float(g["n_reference"].median()),
                "median_proportion_with_sre_arm": float(g["proportion_with_sre_arm"].median()),
                "median_proportion_with_sre_reference": float(g["proportion_with_sre_reference"].median()),
                "median_risk_difference": _quantiles(g["risk_difference"].to_numpy(dtype=float))["median"],
                "median_p_value": _quantiles(g["p_value"].to_numpy(dtype=float))["median"],
            }
        )
    return out


def format_summary(summary: list[dict]) -> str:
    """The batch summary as a plain-text table for the terminal, each column as wide as its longest entry.

    Power of each endpoint (two-sided), the median hazard ratio and the probability of meeting a
    non-inferiority margin when one was set.
    """

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else format(x, ".3f")

    header = ("trial", "N", "comparison", "R", "pow 1st SRE", "all SRE", "OS", "med HR", "P(NI)")
    rows = []
    for s in summary:
        e = s["endpoints"]
        ni = s["non_inferiority"] or {}
        met = ni.get("hazard_ratio", ni.get("risk_difference", {})).get("probability")
        rows.append(
            (
                s["trial"],
                str(s["patients"]),
                f"{s['arm']} vs {s['reference']}",
                str(s["replicates"]),
                fmt(s["power_two_sided"]),
                fmt(e["first_and_subsequent_sre"]["power_two_sided"]),
                fmt(e["overall_survival"]["power_two_sided"]),
                fmt(s["hazard_ratio"]["median"]),
                fmt(met),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    text_columns = (0, 2)

    def line(row: tuple[str, ...]) -> str:
        # text columns left-aligned, numbers right-aligned
        return " ".join(
            cell.ljust(w) if i in text_columns else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    lines = [line(header), "-" * (sum(widths) + len(widths) - 1), *(line(row) for row in rows)]
    return "\n".join(lines)


def decision_power(summary: list[dict]) -> float:
    """The power a sample-size search targets, for one trial size: the smallest over its comparisons of
    the probability of meeting the non-inferiority margin (the hazard-ratio margin if given, else the
    risk-difference one), or, without a margin, of the two-sided power of time to first SRE."""
    values = []
    for s in summary:
        ni = s["non_inferiority"]
        if ni:
            values.append((ni.get("hazard_ratio") or ni["risk_difference"])["probability"])
        else:
            values.append(s["power_two_sided"])
    return min(0.0 if v is None else v for v in values)  # no analysable replicate: no power


def search_sample_size(
    power_at: Callable[[int], float],
    target: float,
    start: int,
    *,
    minimum: int = 10,
    maximum: int = 1_000_000,
    tolerance: float = 0.05,
) -> dict:
    """The smallest trial size whose estimated power reaches ``target``, by bracketing and bisection.

    From ``start`` the size is doubled until the power reaches the target (or halved until it
    falls below it), within ``[minimum, maximum]``; the bracket ``(lo, hi]`` is then bisected
    until ``hi - lo <= tolerance * hi``. ``power_at`` is called once per size (its results are
    kept). Returns ``{"target", "patients"`` (``hi``; ``None`` when even ``maximum`` falls short)
    ``, "power", "evaluated"`` (size -> power, in the order evaluated)``}``.
    """
    evaluated: dict[int, float] = {}

    def reached(n: int) -> bool:
        if n not in evaluated:
            evaluated[n] = float(power_at(n))
        return evaluated[n] >= target

    lo, hi = None, None
    n = min(max(start, minimum), maximum)
    if reached(n):
        hi = n
        while hi > minimum:
            n = max(hi // 2, minimum)
            if not reached(n):
                lo = n
                break
            hi = n
    else:
        lo = n
        while lo < maximum:
            n = min(lo * 2, maximum)
            if reached(n):
                hi = n
                break
            lo = n
    if hi is not None and lo is not None:
        while hi - lo > max(1.0, tolerance * hi):
            mid = (lo + hi) // 2
            if reached(mid):
                hi = mid
            else:
                lo = mid
    return {"target": target, "patients": hi, "power": None if hi is None else evaluated[hi], "evaluated": evaluated}


def check_distinct_names(protocols: list[Protocol]) -> None:
    """Refuse two protocols with one ``trial.name``: rows, summaries and files are keyed by it.

    Pooling them would double the replicates of one comparison and lose one protocol's copy.
    """
    names = [p.trial.name for p in protocols]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise UserInputError(
            f"{sum(names.count(n) for n in shared)} protocols share the name(s) {shared}; a batch keys its "
            "rows and files by trial.name",
            field="trial.name",
            fix="give each protocol its own trial.name (and each file once)",
        )


def default_batch_dir(protocols: list[Protocol]) -> Path:
    """``outputs/<trial.name>-batch`` for one protocol, ``outputs/batch`` for several."""
    return Path("outputs") / (f"{protocols[0].trial.name}-batch" if len(protocols) == 1 else "batch")


def check_batch_options(
    replicates: int,
    alpha: float,
    ni_hr: float | None,
    ni_rd: float | None,
    target_power: float | None,
    n_protocols: int,
) -> None:
    """Refuse bad batch flags (``UserInputError``) before anything is written."""
    if replicates < 1:
        raise UserInputError(
            f"--replicates must be at least 1, got {replicates}",
            field="--replicates",
            fix="pass a positive number of replicate trials",
        )
    if not 0 < alpha < 1:
        raise UserInputError(
            f"--alpha must be between 0 and 1, got {alpha}",
            field="--alpha",
            fix="pass a significance level such as 0.05",
        )
    if ni_hr is not None and not 1 < ni_hr < 100:
        raise UserInputError(
            f"a hazard-ratio margin must be above 1, got {ni_hr}",
            field="--non-inferiority-hr",
            fix="pass the largest hazard ratio that still counts as non-inferior, e.g. 1.08",
        )
    if ni_rd is not None and not 0 < ni_rd < 1:
        raise UserInputError(
            f"a risk-difference margin must be between 0 and 1, got {ni_rd}",
            field="--non-inferiority-rd",
            fix="pass the largest excess of the proportion with SRE that is non-inferior, e.g. 0.05",
        )
    if target_power is not None:
        if not 0 < target_power < 1:
            raise UserInputError(
                f"--target-power must be between 0 and 1, got {target_power}",
                field="--target-power",
                fix="pass a power such as 0.8",
            )
        if n_protocols != 1:
            raise UserInputError(
                f"a sample-size search takes one protocol, got {n_protocols}",
                field="--target-power",
                fix="run one batch per protocol",
            )


def _record_name(protocol: Protocol, replicate: int) -> str:
    """File name of one finished replicate's rows in the partial folder's :data:`REPLICATES`."""
    return f"{protocol.trial.name}-{protocol.trial.patients}-{replicate}.json"


def _finished_rows(records: dict[str, Any]) -> dict[str, list[dict]]:
    """Rows of the replicates already run (:func:`vtrial.store.prepare_records`), by record file name.

    A record counts when its file name is the one of the trial, size and replicate it holds; JSON
    nulls are read back as the NaN they were written for.
    """
    done = {}
    for name, record in records.items():
        try:
            key = f"{record['trial']}-{int(record['patients'])}-{int(record['replicate'])}.json"
            rows = [{c: np.nan if row[c] is None else row[c] for c in ROW_COLUMNS} for row in record["rows"]]
        except (KeyError, TypeError, ValueError):
            continue
        if name == key:
            done[name] = rows
    return done


def _simulate_rows(
    protocols: list[Protocol],
    replicates: int,
    block_size: int,
    on_progress: Callable[[int, int], None] | None,
    partial: Path,
    done: dict[str, list[dict]],
) -> list[dict]:
    """The rows of ``replicates`` trials of each protocol, in order: those in ``done`` (by record name)
    as they are, the others run on the current joblib workers and each saved in ``partial`` as it ends."""
    work = [(p, r) for p in protocols for r in range(replicates)]
    todo = [(p, r) for p, r in work if _record_name(p, r) not in done]
    if on_progress:
        on_progress(len(work) - len(todo), len(work))
    runner = Parallel(return_as="generator", batch_size=1, pre_dispatch="2*n_jobs")
    results = runner(delayed(_replicate_task)(p, r, block_size) for p, r in todo)
    try:
        for finished, ((p, r), result) in enumerate(zip(todo, results), len(work) - len(todo) + 1):
            name = _record_name(p, r)
            done[name] = result
            record = {
                "trial": p.trial.name,
                "patients": p.trial.patients,
                "replicate": r,
                "rows": [
                    {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()} for row in result
                ],
            }
            atomic_write_json(partial / REPLICATES / name, record)
            if on_progress:
                on_progress(finished, len(work))
    finally:
        results.close()  # an interrupted batch stops its workers here, not in a finalizer
    return [row for p, r in work for row in done[_record_name(p, r)]]


def run_batch(
    protocols: list[Protocol],
    out: str | Path | None = None,
    *,
    replicates: int = 100,
    jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    alpha: float = 0.05,
    non_inferiority_hr: float | None = None,
    non_inferiority_rd: float | None = None,
    target_power: float | None = None,
    force: bool = False,
    resume: bool = False,
    inputs: Iterable[str | Path] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, list[dict]]:
    """Run ``replicates`` trials of each protocol in parallel; write the batch folder atomically.

    The folder holds ``batch.parquet`` and ``batch.csv`` (one row per trial size, replicate and
    comparison), ``batch_summary.json`` (power, non-inferiority and distributions per trial size
    and comparison), ``batch.html`` (distribution of hazard ratios with the margin; the power
    curve of a search), the resolved protocols and a manifest. With ``target_power`` (one
    protocol) the trial size is searched (:func:`search_sample_size`, :func:`decision_power`),
    every size with the same ``replicates`` replicate seeds, up to :data:`SEARCH_SPAN` times the
    protocol's size, and ``sample_size.json`` is written. The replicates run on ``backend``
    (``loky``, or ``dask`` on ``scheduler`` or a local cluster; :func:`vtrial.engine.joblib_workers`),
    which, like ``jobs``, does not change the result.
    Each finished replicate's rows are saved in the partial folder as it ends, so an interrupted
    batch resumes (``resume``) with the same protocols, ``replicates`` and ``target_power``
    (:func:`vtrial.store.prepare_records`) running only the replicates not finished; a search
    re-evaluates each size from the saved rows.
    Returns the folder and the summary. ``force`` replaces only a batch folder or an empty one,
    never a folder holding one of ``inputs`` (the protocol files); the folder is locked against
    other vtrial processes for the whole batch (:func:`vtrial.store.owning`).
    """
    check_batch_options(replicates, alpha, non_inferiority_hr, non_inferiority_rd, target_power, len(protocols))
    check_options(jobs=jobs, backend=backend, scheduler=scheduler, block_size=block_size, out=out)
    check_distinct_names(protocols)
    jobs = resolve_jobs(jobs, len(protocols) * replicates)
    out = Path(out) if out is not None else default_batch_dir(protocols)
    folder = OutputFolder.of(out, "batch", force, inputs)
    partial = folder.partial
    margins = trial_margins(protocols, non_inferiority_hr, non_inferiority_rd)
    search = None
    # what decides the rows (alpha and margins only summarise them; the block size changes nothing)
    state = {
        "vtrial": __version__,
        "protocols": {p.trial.name: protocol_fingerprint(p) for p in protocols},
        "replicates": replicates,
        "target_power": target_power,
    }
    with owning(folder):
        done = _finished_rows(prepare_records(partial, state, resume, force, "batch", "replicates", REPLICATES))
        with joblib_workers(backend, scheduler, jobs):
            if target_power is None:
                rows = _simulate_rows(protocols, replicates, block_size, on_progress, partial, done)
            else:
                rows = []

                def power_at(n: int) -> float:
                    point = _simulate_rows(
                        [apply_overrides(protocols[0], patients=n)], replicates, block_size, on_progress, partial, done
                    )
                    rows.extend(point)
                    return decision_power(summarise_batch(pd.DataFrame(point), alpha, margins=margins))

                start = protocols[0].trial.patients
                search = search_sample_size(power_at, target_power, start, maximum=SEARCH_SPAN * start)
        drop_records(partial, REPLICATES)
        table = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
        summary = summarise_batch(table, alpha, margins=margins)
        if search is not None:
            search = {
                **search,
                "replicates": replicates,
                "evaluated": [
                    {"patients": n, "power": p, "mc_se": float(np.sqrt(p * (1 - p) / replicates))}
                    for n, p in sorted(search["evaluated"].items())
                ],
            }
            atomic_write_json(partial / "sample_size.json", search)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), sink)
        atomic_write_bytes(partial / "batch.parquet", sink.getvalue().to_pybytes())
        atomic_write_text(partial / "batch.csv", table.to_csv(index=False))
        atomic_write_json(partial / "batch_summary.json", summary)
        atomic_write_text(partial / "batch.html", render_batch_page(table, summary, search, margins))
        for p in protocols:
            atomic_write_text(partial / f"protocol-{p.trial.name}.toml", protocol_to_toml(p))
        manifest = {
            "replicates": replicates,
            "jobs": jobs,
            "backend": backend,
            "scheduler": scheduler,
            "block_size": block_size,
            "alpha": alpha,
            "non_inferiority_hr": non_inferiority_hr,
            "non_inferiority_rd": non_inferiority_rd,
            "margins": margins,
            "target_power": target_power,
            "trials": [p.trial.name for p in protocols],
            "dependencies": dependency_versions(),
        }
        atomic_write_json(partial / "manifest.json", manifest)
        finalise_folder(partial, folder)
    return out, summary


def ratio_histogram(rows: pd.DataFrame, margin: float | None) -> str:
    """Histogram of the hazard ratio of time to first SRE over replicates, with 1 and the margin drawn."""
    hr = rows["hazard_ratio"].to_numpy(dtype=float)
    hr = hr[np.isfinite(hr)]
    with matplotlib.rc_context(FIGURE_STYLE):
        figure = Figure(figsize=(6.0, 3.0))
        ax = figure.add_subplot()
        ax.hist(hr, bins=max(5, min(40, hr.size // 3)), color="#0072B2", alpha=0.8)
        ax.axvline(1.0, color="#999999", lw=0.8)
        if margin is not None:
            ax.axvline(margin, color="#D55E00", lw=1.2, ls="--", label=f"margin {margin:g}")
            ax.legend(frameon=False)
        ax.set(xlabel="Hazard ratio of time to first SRE", ylabel="Replicates")
        return svg_element(figure)


def power_curve(search: dict) -> str:
    """Estimated power over the trial sizes a search evaluated, with Monte Carlo error bars and the target."""
    points = search["evaluated"]
    with matplotlib.rc_context(FIGURE_STYLE):
        figure = Figure(figsize=(6.0, 3.0))
        ax = figure.add_subplot()
        ax.errorbar(
            [p["patients"] for p in points],
            [p["power"] for p in points],
            yerr=[1.96 * p["mc_se"] for p in points],
            fmt="o-",
            color="#0072B2",
            capsize=2,
            ms=4,
        )
        ax.axhline(search["target"], color="#D55E00", lw=1.0, ls="--", label=f"target {search['target']:g}")
        ax.set(xlabel="Patients per trial (all arms)", ylabel="Power", ylim=(0, 1.02))
        ax.legend(frameon=False)
        return svg_element(figure)


def render_batch_page(
    table: pd.DataFrame, summary: list[dict], search: dict | None, margins: Mapping[str, Margins]
) -> str:
    """``batch.html``: the summary table, the power curve of a search and the hazard-ratio histograms
    (each with its trial's margin, :func:`trial_margins`)."""
    shown = search["patients"] if search and search["patients"] is not None else table["patients"].max()
    figures = []
    for (trial, arm, reference), g in table[table["patients"] == shown].groupby(
        ["trial", "arm", "reference"], sort=False
    ):
        figures.append(
            {
                "title": f"{trial}: {arm} vs {reference}, {shown} patients",
                "svg": ratio_histogram(g, margins[trial]["ni_hr"]),
            }
        )
    return (
        template_environment()
        .get_template("batch.html")
        .render(
            summary=summary,
            search=search,
            curve=power_curve(search) if search else None,
            figures=figures,
        )
    )
