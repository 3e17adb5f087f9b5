"""The survival-curve report: matplotlib figures as inline SVG in one self-contained HTML page.

The page needs nothing but itself: no external style sheet, script, font or image. Figures
are drawn on the Agg backend from the run's tables; the numbers come from the summary.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from lifelines.plotting import add_at_risk_counts
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from vtrial.analysis import (
    read_protocol,
    read_table,
    summarise_run,
    to_json,
    write_summary,
)
from vtrial.analysis.run import KEY, PATIENT_SCHEMA
from vtrial.store import atomic_write_text
from vtrial.analysis.survival import (
    DAYS_PER_MONTH,
    competing_risks,
    cumulative_incidence,
    endpoint,
    kaplan_meier,
)
from vtrial.errors import UserInputError

#: Points per curve in the figures.
PLOT_POINTS = 600
#: Most arms drawn in a figure (the first ones in protocol order; the tables list every arm).
MAX_FIGURE_ARMS = 12
#: Most rows of the forest plot.
MAX_FOREST_ROWS = 60
#: Arm colours (colour-blind safe, Okabe–Ito).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: Figure style: SVG text stays text, ids are reproducible.
_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "vtrial", "font.size": 9, "axes.spines.top": False,
          "axes.spines.right": False}

_ENDPOINT_TITLES = {
    "time_to_first_sre": ("Time to first skeletal-related event", "Free of SRE"),
    "overall_survival": ("Overall survival", "Alive"),
}


def svg_element(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue, no creation date)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _plot_grid(patients: pd.DataFrame) -> np.ndarray:
    """Months at which curves are drawn: ``PLOT_POINTS`` steps to the longest follow-up.

    A step function sampled this finely looks the same at the report's size, and the page stays
    small whatever the number of patients.
    """
    return np.linspace(0.0, patients["followup_days"].max() / DAYS_PER_MONTH, PLOT_POINTS)


def _drawn(patients: pd.DataFrame, arms: Sequence[str]) -> list[tuple[str, str]]:
    """``(arm, colour)`` of the arms drawn: the first ``MAX_FIGURE_ARMS`` that have patients."""
    present = set(patients["arm"])
    return [(arm, colour) for arm, colour in zip(arms, itertools.cycle(COLOURS)) if arm in present][:MAX_FIGURE_ARMS]


def kaplan_meier_figure(patients: pd.DataFrame, arms: Sequence[str], name: str) -> str:
    """Kaplan–Meier curves by arm with 95% bands and a number-at-risk table underneath."""
    title, ylabel = _ENDPOINT_TITLES[name]
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(7.0, 4.2))
        ax = figure.add_subplot()
        fits = []
        grid = _plot_grid(patients)
        for arm, colour in _drawn(patients, arms):
            durations, events = endpoint(patients[patients["arm"] == arm], name)
            kmf = kaplan_meier(durations / DAYS_PER_MONTH, events, arm, timeline=grid)
            kmf.plot_survival_function(ax=ax, ci_show=True, color=colour)
            fits.append(kmf)
        ax.set(title=title, xlabel="Months since randomisation", ylabel=ylabel, ylim=(0, 1.02), xlim=(0, None))
        ax.legend(frameon=False, loc="lower left")
        add_at_risk_counts(*fits, ax=ax, fig=figure, rows_to_show=["At risk"])
        return svg_element(figure)


def cumulative_incidence_figure(patients: pd.DataFrame, arms: Sequence[str], landmarks: Sequence[float]) -> str:
    """Aalen–Johansen cumulative incidence of SRE by arm, death competing."""
    grid = _plot_grid(patients)
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(7.0, 3.6))
        ax = figure.add_subplot()
        for arm, colour in _drawn(patients, arms):
            cif = cumulative_incidence(*competing_risks(patients[patients["arm"] == arm]))
            on_grid = cif.reindex(grid * DAYS_PER_MONTH, method="ffill").fillna(0.0)
            ax.step(grid, on_grid.to_numpy(), where="post", color=colour, label=arm)
        for month in landmarks:
            ax.axvline(month, color="#999999", lw=0.6, ls=":")
        ax.set(title="Cumulative incidence of SRE (death as competing risk)", xlabel="Months since randomisation",
               ylabel="Cumulative incidence", ylim=(0, None), xlim=(0, None))
        ax.legend(frameon=False, loc="upper left")
        return svg_element(figure)


def forest_rows(summary: Mapping) -> list[dict]:
    """Rows of the forest plot: every comparison (overall and by primary) with an estimate and its CI."""
    rows = []
    for c in summary["comparisons"]:
        vs = f"{c['arm']} vs {c['reference']}"
        for key, label, ratio in (
            ("time_to_first_sre", "time to first SRE", "hazard_ratio"),
            ("first_and_subsequent_sre", "all SREs (rate ratio)", "rate_ratio"),
            ("overall_survival", "overall survival", "hazard_ratio"),
        ):
            rows.append({"label": f"{vs}: {label}", **_estimate(c[key], ratio)})
    for s in summary["subgroups"]:
        label = f"{s['arm']} vs {s['reference']}: first SRE, {s['primary']}"
        rows.append({"label": label, **_estimate(s["time_to_first_sre"], "hazard_ratio")})
    return [r for r in rows if None not in (r["ratio"], r["ci_low"], r["ci_high"])]


def _estimate(result: Mapping, ratio: str) -> dict:
    return {"ratio": result[ratio], "ci_low": result["ci_low"], "ci_high": result["ci_high"]}


def forest_figure(summary: Mapping) -> str | None:
    """Forest plot of hazard and rate ratios with 95% CIs on a log axis; ``None`` if none."""
    rows = forest_rows(summary)[:MAX_FOREST_ROWS]
    if not rows:
        return None
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(7.0, 0.9 + 0.32 * len(rows)))
        ax = figure.add_subplot()
        y = np.arange(len(rows))[::-1]
        ratio = np.array([r["ratio"] for r in rows])
        low = np.array([r["ci_low"] for r in rows])
        high = np.array([r["ci_high"] for r in rows])
        ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="s", color="#333333", ms=4, capsize=2)
        ax.axvline(1.0, color="#999999", lw=0.8)
        ax.set_xscale("log")
        plain_number = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain_number)
        ax.xaxis.set_minor_formatter(plain_number)
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.set(xlabel="Ratio (95% CI), < 1 favours the arm", title="Hazard and rate ratios vs the reference arm")
        return svg_element(figure)


def sre_bars_figure(summary: Mapping) -> str:
    """SRE rate per patient-year (95% exact CI) and the fraction with each SRE type, by arm."""
    arms = list(summary["arms"])[:MAX_FIGURE_ARMS]
    types = summary["sre_types"]
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(8.0, 3.4))
        left, right = figure.subplots(1, 2, width_ratios=(1, 2))
        # an arm without patients (or follow-up) has no rate: NaN draws no bar
        rate = np.array([summary["arms"][a]["sre_rate_per_patient_year"] for a in arms], dtype=float)
        ci = np.array([summary["arms"][a]["sre_rate_per_patient_year_ci"] for a in arms], dtype=float)
        colours = list(itertools.islice(itertools.cycle(COLOURS), len(arms)))
        left.bar(arms, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], color=colours, capsize=3)
        left.set_xticks(range(len(arms)), [a.replace("_", " ") for a in arms], rotation=20, ha="right")
        left.set(title="SRE rate", ylabel="SREs per patient-year")
        width = 0.8 / len(arms)
        x = np.arange(len(types))
        for i, (arm, colour) in enumerate(zip(arms, colours)):
            share = np.array([summary["arms"][arm]["sre_by_type"][t] for t in types], dtype=float)
            right.bar(x + (i - (len(arms) - 1) / 2) * width, share, width, color=colour, label=arm)
        right.set_xticks(x, [t.replace("_", " ") for t in types], rotation=20, ha="right")
        right.set(title="Patients with each SRE type", ylabel="Fraction of the arm")
        right.legend(frameon=False)
        figure.tight_layout()
        return svg_element(figure)


def _n_pct(flag: pd.Series) -> str:
    return f"{int(flag.sum())} ({_number(100 * flag.mean() if len(flag) else None, 1)}%)"


def _median_iqr(values: pd.Series) -> str:
    q = values.quantile([0.25, 0.5, 0.75]).to_numpy()
    return f"{_number(q[1], 1)} ({_number(q[0], 1)}–{_number(q[2], 1)})"


def _mean_sd(values: pd.Series) -> str:
    return f"{_number(values.mean(), 1)} ({_number(values.std(), 1)})"


def baseline_table(patients: pd.DataFrame, arms: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Table 1: baseline characteristics by arm, as ``(label, [cell per arm])`` rows.

    A statistic an arm cannot have (any of an empty arm, the SD of one patient) shows "—".
    """
    groups = [patients[patients["arm"] == arm] for arm in arms]
    rows: list[tuple[str, list[str]]] = [
        ("Patients, n", [str(len(g)) for g in groups]),
        ("Age, years, mean (SD)", [_mean_sd(g["age_years"]) for g in groups]),
        ("Female, n (%)", [_n_pct(g["sex"] == "female") for g in groups]),
    ]
    rows += [(f"ECOG {e}, n (%)", [_n_pct(g["ecog"] == e) for g in groups]) for e in sorted(patients["ecog"].unique())]
    rows.append(("Creatinine clearance, mL/min, median (IQR)",
                 [_median_iqr(g["creatinine_clearance_ml_min"]) for g in groups]))
    rows += [(f"Primary: {p.replace('_', ' ')}, n (%)", [_n_pct(g["primary"] == p) for g in groups])
             for p in sorted(patients["primary"].unique())]
    rows.append(("Bone lesions at entry, median (IQR)", [_median_iqr(g["n_lesions"]) for g in groups]))
    for column, label in (("visceral_metastases", "Visceral metastases"), ("prior_sre", "Prior SRE")):
        if column in patients:
            rows.append((f"{label}, n (%)", [_n_pct(g[column].astype(bool)) for g in groups]))
    return rows


def protocol_brief(protocol) -> dict:
    """The protocol's settings the report shows, as plain values."""
    trial, analysis = protocol.trial, protocol.analysis
    return {
        "name": trial.name,
        "title": trial.title or trial.name,
        "design": trial.design,
        "patients": trial.patients,
        "horizon_months": trial.horizon_months,
        "accrual_months": trial.accrual_months,
        "dropout_per_year": trial.dropout_per_year,
        "seed": trial.seed,
        "primary": dict(protocol.cohort.primary),
        "arms": [
            {
                "name": arm.name,
                "drug": arm.drug,
                "dose_mg": arm.dose_mg,
                "every_weeks": arm.every_weeks,
                "stop_after_months": arm.stop_after_months,
            }
            for arm in protocol.arm
        ],
        "reference_arm": analysis.reference_arm,
        "sre_types": list(analysis.sre_types),
        "sre_window_days": analysis.sre_window_days,
        "landmarks_months": list(analysis.landmarks_months),
    }


#: Deepest nesting of ``manifest.json`` the report shows (the engine writes two levels).
MAX_MANIFEST_DEPTH = 16


def _flatten(mapping: Mapping, prefix: str = "", depth: int = 1) -> list[tuple[str, str]]:
    """Nested manifest entries as ``(dotted key, value)`` rows; ``ValueError`` past ``MAX_MANIFEST_DEPTH``."""
    if depth > MAX_MANIFEST_DEPTH:
        raise ValueError(f"is nested more than {MAX_MANIFEST_DEPTH} levels deep")
    rows = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            rows += _flatten(value, f"{prefix}{key}.", depth + 1)
        else:
            rows.append((f"{prefix}{key}", json.dumps(value) if not isinstance(value, str) else value))
    return rows


def _number(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals; "—" for a missing (``None`` or NaN) value."""
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _estimate_text(result: Mapping, ratio: str) -> str:
    """``0.82 (0.71–0.95)``, or the reason when the estimate is missing."""
    if result[ratio] is None:
        return f"not estimable: {result['reason']}"
    return f"{result[ratio]:.2f} ({result['ci_low']:.2f}–{result['ci_high']:.2f})"


def _retreatment_text(arm: Mapping) -> str:
    """``4.0% (9 of 225 lesions)``, or the reason there is no share."""
    share, detail = arm.get("radiotherapy_retreatment"), arm.get("radiotherapy_retreatment_detail") or {}
    if share is None:
        return f"— ({detail.get('reason', 'not in this summary')})"
    return f"{100 * share:.1f}% ({detail['retreated_lesions']} of {detail['irradiated_lesions']} lesions)"


def _test_p(result: Mapping) -> str:
    """The p-value of a test, or why it was not computed."""
    if result["p_value"] is None:
        return f"not computed ({result['reason']})"
    return _p(result["p_value"])


def template_environment() -> jinja2.Environment:
    """The jinja2 environment of the package's page templates, with the report's number filters."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("vtrial", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(number=_number, p=_p, estimate=_estimate_text, retreatment=_retreatment_text,
                               test_p=_test_p, pct=lambda v: "—" if v is None else f"{100 * v:.1f}%")
    return environment


def uncertainty_section(summary: Mapping) -> Markup:
    """The section of the ``uncertainty`` block (``templates/uncertainty.html``), empty when the summary has none."""
    if "uncertainty" not in summary:
        return Markup("")
    template = template_environment().get_template("uncertainty.html")
    return Markup(template.render(u=summary["uncertainty"], summary=summary))


def render_report(
    summary: Mapping, patients: pd.DataFrame, brief: Mapping, manifest: list[tuple[str, str]] | None
) -> str:
    """The report page as HTML text.

    Parameters
    ----------
    summary : mapping
        The run's summary (:func:`vtrial.analysis.summarise`).
    patients : DataFrame
        ``patients.parquet`` (curves and Table 1 are drawn from it).
    brief : mapping
        The protocol in brief (:func:`protocol_brief`).
    manifest : list of (str, str) or None
        The rows of ``manifest.json`` (dotted key, value), shown as a table; ``None`` when the
        run folder has none.
    """
    arms = list(summary["arms"])
    figures = {
        "km_sre": kaplan_meier_figure(patients, arms, "time_to_first_sre"),
        "km_os": kaplan_meier_figure(patients, arms, "overall_survival"),
        "cif": cumulative_incidence_figure(patients, arms, summary["landmarks_months"]),
        "forest": forest_figure(summary),
        "sre_bars": sre_bars_figure(summary),
    }
    return template_environment().get_template("report.html").render(
        summary=summary,
        brief=brief,
        figures=figures,
        limits={"arms": MAX_FIGURE_ARMS, "forest_rows": MAX_FOREST_ROWS, "n_forest_rows": len(forest_rows(summary))},
        baseline=baseline_table(patients, arms),
        manifest=manifest,
        uncertainty=uncertainty_section(summary),
    )


def _read_manifest(run_dir: Path) -> list[tuple[str, str]] | None:
    """The rows of ``manifest.json`` (:func:`_flatten`); ``None`` when the run folder has none."""
    path = run_dir / "manifest.json"
    if not path.is_file():
        return None
    fix = "run the protocol again with --force to rewrite the run folder"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError as problem:
        raise UserInputError("is nested too deeply to read", file=path, fix=fix) from problem
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise UserInputError(f"is not valid JSON ({problem})", file=path, fix=fix) from problem
    if not isinstance(manifest, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(manifest), "number")
        raise UserInputError(f"holds a JSON {kind}, not an object of entries", file=path, fix=fix)
    try:
        return _flatten(manifest)
    except ValueError as problem:
        raise UserInputError(str(problem), file=path, fix=fix) from problem


def write_report(run_dir: str | Path, summary: Mapping | None = None) -> Path:
    """Write ``report.html`` of a run folder (atomically); the summary is rebuilt if not given."""
    run_dir = Path(run_dir)
    summary = summarise_run(run_dir) if summary is None else summary
    html = render_report(
        json.loads(to_json(summary)),
        read_table(run_dir, "patients.parquet", PATIENT_SCHEMA, unique=KEY),
        protocol_brief(read_protocol(run_dir)),
        _read_manifest(run_dir),
    )
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path


def report_run(run_dir: str | Path) -> tuple[Path, Path]:
    """Rebuild ``summary.json`` and ``report.html`` of a run folder from its tables alone."""
    run_dir = Path(run_dir)
    summary = summarise_run(run_dir)
    return write_summary(run_dir, summary), write_report(run_dir, summary)
