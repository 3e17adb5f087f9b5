"""``vtrial validate``: every simulable target, published against simulated, inside its tolerance or not.

:func:`evaluate` turns the replicas' observations into the validation table (one row per
:data:`~vtrial.calibration.targets.CHECKS` entry); :func:`validate` runs the replicas and writes
``validate.csv``, ``not_simulated.csv`` and the self-contained ``validate.html`` (figures of
simulated against published values, with CIs and tolerance bands).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vtrial.calibration.replicas import Observation, load_replicas, run_replicas
from vtrial.calibration.statistics import estimate
from vtrial.calibration.targets import (
    CHECKS,
    NOT_SIMULATED,
    Check,
    check_tolerance,
    published,
    target_rows,
    target_version,
)
from vtrial.report import svg_element, template_environment
from vtrial.store import atomic_write_text

#: Columns of ``validate.csv``.
COLUMNS: tuple[str, ...] = (
    "target",
    "version",
    "trial",
    "endpoint",
    "compared",
    "unit",
    "published",
    "tolerance_low",
    "tolerance_high",
    "rule",
    "simulated",
    "simulated_ci_low",
    "simulated_ci_high",
    "inside",
    "replicas",
    "source",
)
#: Default patients per replica of ``vtrial validate``.
DEFAULT_PATIENTS = 2000
#: Figure panels: unit -> title.
PANELS = {
    "%": "Proportions and survival (%)",
    "months": "Medians (months)",
    "days": "Medians (days)",
    "ratio": "Hazard, rate and odds ratios",
    "SREs": "Mean SREs per patient",
    "lesions": "Mean bone lesions at entry",
    "% change": "Bone-marker change from week 0 (%)",
    "% reduction": "Bone-marker reduction from week 0 (%)",
    "SREs/year": "SREs per patient-year",
}


def replica_names(checks: Sequence[Check] = CHECKS) -> list[str]:
    """Every replica protocol the checks need (default: the simulated ones), in first-use order."""
    return list(dict.fromkeys(r for c in checks for r in c.replicas))


def counts_by_version(table: pd.DataFrame) -> dict[int, tuple[int, int]]:
    """Per target-table version: (checks inside their tolerance, checks)."""
    return {int(v): (int(g["inside"].sum()), len(g)) for v, g in table.groupby("version", sort=True)}


def headline(table: pd.DataFrame) -> str:
    """One line: how many checks are inside their tolerance, in all and per version."""
    parts = ", ".join(f"version {v}: {k} of {n}" for v, (k, n) in counts_by_version(table).items())
    return f"{int(table['inside'].sum())} of {len(table)} targets inside tolerance ({parts})"


def _row(check: Check, observations: Mapping[str, Observation]) -> dict:
    figure, tol, sim = published(check), check_tolerance(check), estimate(observations, check)
    return {
        "target": check.target,
        "version": target_version(check.target),
        "trial": figure.trial,
        "endpoint": figure.endpoint,
        "compared": check.label,
        "unit": check.unit,
        "published": figure.text,
        "tolerance_low": tol.low,
        "tolerance_high": tol.high,
        "rule": tol.rule,
        "simulated": sim.value,
        "simulated_ci_low": sim.low,
        "simulated_ci_high": sim.high,
        "inside": bool(tol.contains(sim.value)),
        "replicas": " + ".join(check.replicas),
        "source": figure.source,
    }


def evaluate(observations: Mapping[str, Observation]) -> pd.DataFrame:
    """The validation table: one row per check, published against simulated, ``inside`` boolean."""
    return pd.DataFrame([_row(c, observations) for c in CHECKS], columns=list(COLUMNS))


def not_simulated() -> pd.DataFrame:
    """The rows of ``targets.csv`` the simulator does not produce, with the reason."""
    rows = target_rows()
    return pd.DataFrame(
        [
            {
                "target": t,
                "trial": rows[t]["trial"],
                "endpoint": rows[t]["endpoint"],
                "reason": reason,
                "source": rows[t]["source"],
            }
            for t, reason in NOT_SIMULATED.items()
        ],
        columns=["target", "trial", "endpoint", "reason", "source"],
    )


def _panel(ax: Axes, rows: pd.DataFrame, title: str) -> None:
    """One panel: per check, the tolerance band (grey), published point (black) and simulated value with CI."""
    y = np.arange(len(rows))[::-1]
    low, high = rows["tolerance_low"].astype(float), rows["tolerance_high"].astype(float)
    ax.barh(y, (high - low).to_numpy(), left=low.to_numpy(), height=0.6, color="#d9dde5", label="tolerance")
    centre = pd.to_numeric(rows["published"], errors="coerce")
    ax.plot(centre, y, "|", color="black", markersize=12, label="published")
    sim = rows["simulated"].astype(float)
    err = np.vstack([sim - rows["simulated_ci_low"].astype(float), rows["simulated_ci_high"].astype(float) - sim])
    colour = np.where(rows["inside"], "#0072B2", "#D55E00")
    for yi, s, e0, e1, c in zip(y, sim, err[0], err[1], colour):
        if np.isfinite(s):  # a value without a CI (too few values for one) is drawn without a bar
            bar = [[e0], [e1]] if np.isfinite(e0) and np.isfinite(e1) else None
            ax.errorbar(s, yi, xerr=bar, fmt="o", color=c, markersize=4, capsize=2)
    ax.set_yticks(y, [f"{t} {c}" for t, c in zip(rows["target"], rows["compared"])], fontsize=7)
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#eeeeee")


def validation_figure(table: pd.DataFrame) -> str:
    """Simulated (blue inside, orange outside; 95% CI) against published values and tolerances, as SVG."""
    numeric = table[table["tolerance_low"].notna()]
    groups = [(PANELS[u], g) for u, g in numeric.groupby("unit", sort=False)]
    heights = [0.6 + 0.2 * len(g) for _, g in groups]
    figure = Figure(figsize=(7.5, sum(heights) + 0.4))
    grid = figure.add_gridspec(len(groups), 1, height_ratios=heights)
    for i, (title, rows) in enumerate(groups):
        _panel(figure.add_subplot(grid[i]), rows, title)
    figure.tight_layout()
    return svg_element(figure)


def render_html(table: pd.DataFrame, missing: pd.DataFrame, settings: Mapping) -> str:
    """The self-contained validation page."""
    return (
        template_environment()
        .get_template("validate.html")
        .render(
            rows=table.to_dict("records"),
            missing=missing.to_dict("records"),
            settings=settings,
            n_inside=int(table["inside"].sum()),
            n_checks=len(table),
            headline=headline(table),
            figure=validation_figure(table),
        )
    )


def print_table(table: pd.DataFrame) -> None:
    """The validation table on the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    def fmt(v: object) -> str:
        return "—" if v is None or pd.isna(v) else f"{v:.3g}"

    out = Table(title=f"vtrial validate: {headline(table)}")
    for column in ("target", "endpoint", "compared", "unit", "published", "tolerance", "simulated (95% CI)", "inside"):
        out.add_column(column)
    for r in table.itertuples():
        out.add_row(
            r.target,
            r.endpoint,
            r.compared,
            r.unit,
            r.published,
            "not reached" if pd.isna(r.tolerance_low) else f"{fmt(r.tolerance_low)}–{fmt(r.tolerance_high)}",
            f"{fmt(r.simulated)} ({fmt(r.simulated_ci_low)}–{fmt(r.simulated_ci_high)})"
            if not pd.isna(r.simulated)
            else "not reached",
            "[green]yes[/green]" if r.inside else "[red]no[/red]",
        )
    Console(width=140).print(out)


def validate(
    out: str | Path,
    *,
    patients: int = DEFAULT_PATIENTS,
    jobs: int | None = None,
    replicate: int = 0,
    trials: str | Path | None = None,
    parameters: Mapping[str, float] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run every replica and write the validation table (CSV, HTML) into ``out``.

    Parameters
    ----------
    out : path
        Folder for ``validate.csv``, ``not_simulated.csv`` and ``validate.html`` (created).
    patients : int
        Patients per replica protocol (all arms together).
    jobs : int, optional
        Parallel workers (default: all cores); one replica per task.
    replicate : int
        Replicate index of the random streams (the fit uses another one).
    trials : path, optional
        Folder of the replica protocols (default: the project's ``protocols/trials``).
    parameters : mapping, optional
        Model parameter overrides (default: the registry's values).

    Returns
    -------
    DataFrame
        The validation table (:data:`COLUMNS`).
    """
    protocols = load_replicas(replica_names(), trials)
    observations = run_replicas(
        protocols, patients, replicate=replicate, parameters=parameters, jobs=jobs, on_progress=on_progress
    )
    table = evaluate(observations)
    missing = not_simulated()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "validate.csv", table.to_csv(index=False))
    atomic_write_text(out / "not_simulated.csv", missing.to_csv(index=False))
    settings = {"patients": patients, "replicate": replicate, "parameters": dict(parameters or {})}
    atomic_write_text(out / "validate.html", render_html(table, missing, settings))
    return table
