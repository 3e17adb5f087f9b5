"""Global sensitivity analysis of a trial's outcomes to the model parameters (``vtrial sensitivity``).

The uncertain parameters are the registry's (:data:`vtrial.model.parameters.REGISTRY`), each
varied over its documented range ``[low, high]``: uniformly, or log-uniformly when the range
spans more than a factor :data:`LOG_SPAN` (rates and hazards quoted over orders of magnitude).
SALib draws the design (Morris trajectories or Saltelli/Sobol' points, seeded with the
protocol's seed) and computes the indices; vtrial only runs the samples. Every sample is the
protocol's trial (its seed, replicate 0: the same virtual patients, common random numbers across
samples) under that sample's parameter values, so an outcome changes between samples only
through the parameters. Samples run in parallel (one joblib task each, on loky or dask) and are
collected in order, so the result does not depend on ``--jobs`` or the backend. Each finished
sample is kept in the partial folder, so an interrupted analysis resumes (``--resume``) without
running it again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from matplotlib.figure import Figure
from SALib.analyze import morris as morris_analyze
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import morris as morris_sample
from SALib.sample import sobol as sobol_sample

from vtrial import __version__
from vtrial.analysis import cox_comparison
from vtrial.batch import simulate_tables
from vtrial.engine import (
    check_options,
    dependency_versions,
    joblib_workers,
    protocol_fingerprint,
    resolve_jobs,
)
from vtrial.errors import UserInputError
from vtrial.model.parameters import REGISTRY
from vtrial.protocol import Protocol, protocol_to_toml
from vtrial.report import FIGURE_STYLE, svg_element, template_environment
from vtrial.store import (
    OutputFolder,
    atomic_write_json,
    atomic_write_text,
    drop_records,
    finalise_folder,
    owning,
    prepare_records,
)

METHODS = ("morris", "sobol")
#: A range wider than this factor (``high / low``, ``low > 0``) is sampled log-uniformly.
LOG_SPAN = 10.0
#: Morris grid levels (SALib's default; even, as Morris requires).
MORRIS_LEVELS = 4
#: Bootstrap resamples of SALib's confidence intervals (SALib's default).
RESAMPLES = 100
#: Outcome kinds: hazard ratios of a comparison ``ARM_vs_REFERENCE``, a proportion of an arm.
HR_ENDPOINTS = {"hr_time_to_first_sre": "time_to_first_sre", "hr_overall_survival": "overall_survival"}
PROPORTION = "proportion_with_sre"
#: Columns of ``sensitivity.csv`` per method (besides ``parameter``, ``outcome``, ``distribution``).
INDICES = {"morris": ("mu_star", "mu_star_conf", "sigma"), "sobol": ("S1", "S1_conf", "ST", "ST_conf")}
#: The index a tornado plot ranks and draws, with its confidence half-width.
TORNADO = {"morris": ("mu_star", "mu_star_conf"), "sobol": ("ST", "ST_conf")}
#: Parameters drawn per tornado plot.
TORNADO_BARS = 15
SAMPLES = "samples"


def distribution(name: str) -> str:
    """``logunif`` for a parameter whose range spans more than :data:`LOG_SPAN`, else ``unif``."""
    p = REGISTRY[name]
    return "logunif" if p.low > 0 and p.high / p.low > LOG_SPAN else "unif"


def salib_problem(names: Sequence[str]) -> dict:
    """The SALib problem of the named registry parameters: their ranges and distributions."""
    return {
        "num_vars": len(names),
        "names": list(names),
        "bounds": [[REGISTRY[n].low, REGISTRY[n].high] for n in names],
        "dists": [distribution(n) for n in names],
    }


def check_parameters(names: Sequence[str] | None) -> list[str]:
    """The parameters to vary: ``names`` (registered, distinct, at least 2) or every registry parameter."""
    if not names:
        return list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UserInputError(
            f"unknown model parameter(s) {unknown}",
            field="--parameter",
            fix="name parameters of docs/model.md (the parameter table), e.g. fracture_base_hazard",
        )
    if len(set(names)) != len(names) or len(names) < 2:
        raise UserInputError(
            f"need at least 2 distinct parameters, got {list(names)}",
            field="--parameter",
            fix="name each parameter once, at least two (or none: every parameter)",
        )
    return list(names)


def sample(problem: dict, method: str, samples: int, seed: int) -> np.ndarray:
    """SALib's design: ``samples`` Morris trajectories (``samples x (k+1)`` points) or a Saltelli
    design of ``samples`` base points (``samples x (k+2)`` points, first- and total-order only)."""
    if method == "morris":
        return morris_sample.sample(problem, samples, num_levels=MORRIS_LEVELS, seed=seed)
    return sobol_sample.sample(problem, samples, calc_second_order=False, seed=seed)


def analyse(problem: dict, method: str, x: np.ndarray, y: np.ndarray, seed: int) -> pd.DataFrame:
    """SALib's indices of one outcome ``y`` (one value per row of the design ``x``), one row per parameter.

    Columns: ``parameter`` and the method's :data:`INDICES` (95% confidence half-widths from
    SALib's bootstrap). An outcome that is not finite at every sample has no indices (NaN).
    """
    columns = INDICES[method]
    if not np.all(np.isfinite(y)):
        return pd.DataFrame({"parameter": problem["names"], **{c: np.nan for c in columns}})
    if method == "morris":
        result = morris_analyze.analyze(problem, x, y, num_resamples=RESAMPLES, num_levels=MORRIS_LEVELS, seed=seed)
    else:
        result = sobol_analyze.analyze(problem, y, calc_second_order=False, num_resamples=RESAMPLES, seed=seed)
    return pd.DataFrame({"parameter": problem["names"], **{c: np.asarray(result[c], dtype=float) for c in columns}})


def default_outcomes(protocol: Protocol) -> list[str]:
    """Both hazard ratios of every comparison with the reference arm and the proportion with SRE per arm."""
    reference = protocol.analysis.reference_arm
    comparisons = [f"{a.name}_vs_{reference}" for a in protocol.arm if a.name != reference]
    return [f"{kind}:{c}" for c in comparisons for kind in HR_ENDPOINTS] + [
        f"{PROPORTION}:{a.name}" for a in protocol.arm
    ]


def parse_outcome(protocol: Protocol, outcome: str) -> tuple[str, tuple[str, ...]]:
    """``(kind, arms)`` of an outcome name (``hr_time_to_first_sre:A_vs_B``, ``proportion_with_sre:A``)."""
    arms = [a.name for a in protocol.arm]
    kind, _, what = outcome.partition(":")
    pairs = {f"{a}_vs_{b}": (a, b) for a, b in itertools.permutations(arms, 2)}
    if kind in HR_ENDPOINTS and what in pairs:
        return kind, pairs[what]
    if kind == PROPORTION and what in arms:
        return kind, (what,)
    raise UserInputError(
        f"unknown outcome {outcome!r}",
        field="--outcome",
        fix=f"use {' or '.join(HR_ENDPOINTS)}:ARM_vs_REFERENCE or {PROPORTION}:ARM with the protocol's arms "
        f"({', '.join(arms)}), e.g. {default_outcomes(protocol)[0]}",
    )


def outcome_values(protocol: Protocol, patients: pd.DataFrame, outcomes: Sequence[str]) -> list[float]:
    """The outcomes of one simulated trial (NaN where a hazard ratio is not estimable)."""
    values = []
    for outcome in outcomes:
        kind, arms = parse_outcome(protocol, outcome)
        if kind == PROPORTION:
            in_arm = patients["arm"] == arms[0]
            values.append(float((patients.loc[in_arm, "n_sre"] > 0).mean()) if in_arm.any() else np.nan)
            continue
        hr = cox_comparison(patients, arms[0], arms[1], endpoint=HR_ENDPOINTS[kind], design=protocol.trial.design)[
            "hazard_ratio"
        ]
        values.append(np.nan if hr is None else float(hr))
    return values


def _sample_task(protocol: Protocol, names: Sequence[str], point: np.ndarray, outcomes: Sequence[str]) -> list[float]:
    """One design point: the protocol's trial under the point's parameter values, and its outcomes."""
    overrides = {n: float(np.clip(v, REGISTRY[n].low, REGISTRY[n].high)) for n, v in zip(names, point)}
    patients, _ = simulate_tables(protocol, 0, parameters=overrides)
    return outcome_values(protocol, patients, outcomes)


def _sample_path(partial: Path, index: int) -> Path:
    return partial / SAMPLES / f"{index:07d}.json"


def _finished_samples(records: dict[str, Any], x: np.ndarray, n_outcomes: int) -> dict[int, list[float]]:
    """Samples already run (:func:`vtrial.store.prepare_records`): those whose file name and point match."""
    done = {}
    for name, record in records.items():
        try:
            index = int(record["index"])
            values = [np.nan if v is None else float(v) for v in record["values"]]
            if (
                name == _sample_path(Path(), index).name
                and np.array_equal(record["point"], x[index])
                and len(values) == n_outcomes
            ):
                done[index] = values
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return done


def default_sensitivity_dir(protocol: Protocol) -> Path:
    """``outputs/<trial.name>-sensitivity``."""
    return Path("outputs") / f"{protocol.trial.name}-sensitivity"


def run_sensitivity(
    protocol: Protocol,
    out: str | Path | None = None,
    *,
    method: str = "morris",
    samples: int = 4,
    outcomes: Sequence[str] | None = None,
    parameters: Sequence[str] | None = None,
    jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    force: bool = False,
    resume: bool = False,
    inputs: Iterable[str | Path] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Run a global sensitivity analysis and write its folder atomically.

    The folder holds ``sensitivity.csv`` (one row per parameter and outcome: its sampling
    distribution and the method's indices), ``samples.csv`` (the design and every outcome of
    every sample), ``sensitivity.html`` (a tornado plot per outcome), the resolved protocol and
    a manifest. Returns the folder and the table of indices. The samples run on ``backend``
    (``loky``, or ``dask`` on ``scheduler`` or a local cluster; :func:`vtrial.engine.joblib_workers`),
    which, like ``jobs``, does not change the result.
    """
    if method not in METHODS:
        raise UserInputError(f"unknown method {method!r}", field="--method", fix="use --method morris or sobol")
    if samples < 2:
        raise UserInputError(
            f"--samples must be at least 2, got {samples}",
            field="--samples",
            fix="pass 2 or more (Morris trajectories, or Sobol' base points)",
        )
    if method == "sobol" and samples & (samples - 1):
        raise UserInputError(
            f"Sobol' sampling needs a power of 2, got {samples}",
            field="--samples",
            fix=f"pass --samples {1 << samples.bit_length()} (or {1 << (samples.bit_length() - 1)})",
        )
    check_options(jobs=jobs, backend=backend, scheduler=scheduler, out=out)
    outcomes = list(outcomes) if outcomes else default_outcomes(protocol)
    for outcome in outcomes:
        parse_outcome(protocol, outcome)
    if len(set(outcomes)) != len(outcomes):
        raise UserInputError(
            f"an outcome is named twice in {outcomes}", field="--outcome", fix="name each outcome once"
        )
    names = check_parameters(parameters)
    problem = salib_problem(names)
    seed = protocol.trial.seed
    x = sample(problem, method, samples, seed)
    out = Path(out) if out is not None else default_sensitivity_dir(protocol)
    folder = OutputFolder.of(out, "sensitivity", force, inputs)
    partial = folder.partial
    state = {
        "vtrial": __version__,
        "protocol": protocol_fingerprint(protocol),
        "method": method,
        "samples": samples,
        "outcomes": outcomes,
        "parameters": names,
    }
    with owning(folder):
        records = prepare_records(partial, state, resume, force, "sensitivity analysis", "samples", SAMPLES)
        done = _finished_samples(records, x, len(outcomes))
        todo = [i for i in range(len(x)) if i not in done]
        if on_progress:
            on_progress(len(done), len(x))
        jobs = resolve_jobs(jobs, max(len(todo), 1))
        with joblib_workers(backend, scheduler, jobs):
            runner = Parallel(return_as="generator", batch_size=1, pre_dispatch="2*n_jobs")
            results = runner(delayed(_sample_task)(protocol, names, x[i], outcomes) for i in todo)
            try:
                for i, values in zip(todo, results):
                    done[i] = values
                    record = {
                        "index": i,
                        "point": x[i].tolist(),
                        "values": [None if np.isnan(v) else v for v in values],
                    }
                    atomic_write_json(_sample_path(partial, i), record)
                    if on_progress:
                        on_progress(len(done), len(x))
            finally:
                results.close()  # an interrupted analysis stops its workers here, not in a finalizer
        y = np.array([done[i] for i in range(len(x))], dtype=float)
        table = indices_table(problem, method, x, y, outcomes, seed)
        drop_records(partial, SAMPLES)
        design = pd.DataFrame(x, columns=names).assign(**{o: y[:, k] for k, o in enumerate(outcomes)})
        atomic_write_text(partial / "samples.csv", design.to_csv(index_label="sample"))
        atomic_write_text(partial / "sensitivity.csv", table.to_csv(index=False))
        atomic_write_text(
            partial / "sensitivity.html", render_page(protocol, table, method, samples, len(x), y, outcomes)
        )
        atomic_write_text(partial / "protocol.toml", protocol_to_toml(protocol))
        atomic_write_json(
            partial / "manifest.json",
            {
                "vtrial": __version__,
                "sensitivity": method,
                "samples": samples,
                "model_runs": len(x),
                "patients": protocol.trial.patients,
                "seed": seed,
                "jobs": jobs,
                "backend": backend,
                "scheduler": scheduler,
                "outcomes": outcomes,
                "parameters": names,
                "dependencies": dependency_versions(),
            },
        )
        finalise_folder(partial, folder)
    return out, table


def indices_table(
    problem: dict, method: str, x: np.ndarray, y: np.ndarray, outcomes: Sequence[str], seed: int
) -> pd.DataFrame:
    """The rows of ``sensitivity.csv``: every parameter for every outcome (column ``k`` of ``y``)."""
    parts = []
    for k, outcome in enumerate(outcomes):
        part = analyse(problem, method, x, y[:, k], seed)
        part.insert(1, "outcome", outcome)
        part.insert(2, "distribution", problem["dists"])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def tornado_figure(rows: pd.DataFrame, method: str, outcome: str) -> str:
    """Horizontal bars of the ranking index (Morris mu*, Sobol' ST) with its 95% CI, largest on top."""
    index, conf = TORNADO[method]
    top = rows.sort_values(index, ascending=False, kind="stable").head(TORNADO_BARS)[::-1]
    with matplotlib.rc_context(FIGURE_STYLE):
        figure = Figure(figsize=(7.0, 0.9 + 0.28 * len(top)))
        ax = figure.add_subplot()
        y = np.arange(len(top))
        ax.barh(y, top[index], xerr=top[conf], color="#0072B2", ecolor="#555555", capsize=2)
        ax.set_yticks(y, top["parameter"])
        label = "Morris mu* (mean |elementary effect|)" if method == "morris" else "Sobol' total-order index ST"
        ax.set(xlabel=f"{label}, 95% CI", title=outcome)
        return svg_element(figure)


def render_page(
    protocol: Protocol,
    table: pd.DataFrame,
    method: str,
    samples: int,
    runs: int,
    y: np.ndarray,
    outcomes: Sequence[str],
) -> str:
    """``sensitivity.html``: the settings, and per outcome its range over samples, tornado plot and top rows."""
    index, _ = TORNADO[method]
    sections = []
    for k, outcome in enumerate(outcomes):
        rows = table[table["outcome"] == outcome]
        finite = np.isfinite(y[:, k])
        estimable = bool(rows[index].notna().all())
        sections.append(
            {
                "outcome": outcome,
                "range": (float(np.min(y[finite, k])), float(np.max(y[finite, k]))) if finite.any() else None,
                "missing": int((~finite).sum()),
                "figure": tornado_figure(rows, method, outcome) if estimable else None,
                "top": rows.sort_values(index, ascending=False).head(5).to_dict("records") if estimable else [],
            }
        )
    environment: jinja2.Environment = template_environment()
    return environment.get_template("sensitivity.html").render(
        protocol=protocol,
        method=method,
        samples=samples,
        runs=runs,
        sections=sections,
        columns=INDICES[method],
        bars=TORNADO_BARS,
        n_parameters=table["parameter"].nunique(),
        log_span=LOG_SPAN,
        n_log=int((table.drop_duplicates("parameter")["distribution"] == "logunif").sum()),
    )
