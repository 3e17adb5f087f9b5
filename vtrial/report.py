"""The survival-curve report: matplotlib figures as inline SVG in one self-contained HTML page.

The page needs nothing but itself: no external style sheet, script, font or image. Figures
are drawn on the Agg backend from the run's tables; the numbers come from the summary.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
from matplotlib.ticker import MaxNLocator, NullLocator
from matplotlib.transforms import ScaledTranslation

from vtrial.analysis import (
    analyse_run,
    read_protocol,
    read_table,
    summarise_run,
    to_json,
    write_summary,
)
from vtrial.analysis.run import KEY, PATIENT_SCHEMA
from vtrial.analysis.summary import landmark_key
from vtrial.analysis.survival import (
    DAYS_PER_MONTH,
    competing_risks,
    cumulative_incidence_band,
    endpoint,
    kaplan_meier,
)
from vtrial.errors import UserInputError
from vtrial.store import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: Points per curve in the figures, and per figure (more arms, fewer points each, down to the least).
PLOT_POINTS, FIGURE_PLOT_POINTS, LEAST_PLOT_POINTS = 600, 1200, 100
#: Most arms drawn in a figure (the first ones in protocol order; the tables list every arm).
MAX_FIGURE_ARMS = 12
#: Most arms whose curves get confidence bands (more overlapping bands are unreadable and heavy).
MAX_BAND_ARMS = 4
#: Most rows of the forest plot.
MAX_FOREST_ROWS = 60
#: Arm colours (colour-blind safe, Okabe–Ito).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: Figure style: SVG text stays text, ids are reproducible, minus signs are U+2212.
FIGURE_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "vtrial",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.unicode_minus": True,
}
#: File formats of ``vtrial report --format`` and the resolution of PNG files.
FIGURE_FORMATS = ("png", "pdf", "svg")
PNG_DPI = 200
#: Metadata that keeps a creation date out of each file format (same run, same bytes).
_NO_DATE: dict[str, dict] = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
#: Candidate ticks of the forest plot's log axis (the ones inside the axis are labelled); no 0.25,
#: whose label would touch 0.2's on an axis from 0.1.
_RATIO_TICKS = (0.05, 0.1, 0.2, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)
#: Tick spacings of the time axis, months: the first giving at most 8 intervals is used.
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 48, 96)
#: Unicode minus, for numbers in the page.
MINUS = "\u2212"

_ENDPOINT_TITLES = {
    "time_to_first_sre": ("Time to first skeletal-related event", "Free of SRE"),
    "overall_survival": ("Overall survival", "Alive"),
}
_ENDPOINT_MEDIANS = {
    "time_to_first_sre": "median_time_to_first_sre_months",
    "overall_survival": "median_overall_survival_months",
}


def svg_element(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue, no creation date).

    The figures are laid out when built (:class:`_Layout`), so the SVG is drawn once: no
    layout engine and no tight bounding box, which each cost a draw measuring every text.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context(FIGURE_STYLE):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


#: Inches per typographic point.
_INCH = 1.0 / 72.0
#: Space around the figure's content, inches.
_EDGE = 0.1
#: Height of the bold title line and the space above and below it, inches.
_TITLE = 0.36
#: Height of a line of 9-point tick labels with its tick and pad, and of an axis label line, inches.
_TICK_LINE, _LABEL_LINE = 0.24, 0.22
#: Widening of text by hinted rendering at low resolution (the Agg renderer at 72 dpi: up to 8%).
_HINTING = 1.08
#: Height of a legend row (9-point text and its spacing), inches.
_LEGEND_ROW = 0.2


def text_width(strings: Sequence[str]) -> float:
    """Width in inches of the widest of ``strings`` in the figures' 9-point font (0 when none).

    One FreeType measurement per string, as the renderer lays text out: cheap, so the figures
    are laid out once, from their texts, instead of by a layout engine that measures every
    text on each of its passes.
    """
    prop = FontProperties(size=FIGURE_STYLE["font.size"])
    widest = max((text_to_path.get_text_width_height_descent(s, prop, ismath=False)[0] for s in strings), default=0.0)
    return _HINTING * _INCH * widest


def _ticks_width(ticks: Sequence[str]) -> float:
    """Inches left of a y axis taken by its 9-point tick labels, tick and pad, and its label."""
    return text_width(ticks) + (3.5 + 3.5 + 4.0) * _INCH + _LABEL_LINE


class _Layout:
    """Axes placed in inches on a figure whose size follows from its contents (top-down).

    A figure is built as a column of bands: :meth:`band` reserves a height below the bands
    already reserved, :meth:`axes` places axes in a band by their left edge and width, and
    :meth:`figure` creates the figure at the width given and the height reserved.
    """

    def __init__(self, width: float) -> None:
        self.width, self.height = width, _EDGE
        self._axes: list[tuple[float, float, float, float]] = []

    def band(self, height: float) -> float:
        """Reserve ``height`` inches below the previous band; the band's top, inches from the figure's top."""
        top = self.height
        self.height += height
        return top

    def axes(self, left: float, width: float, top: float, height: float) -> None:
        """Axes ``width`` x ``height`` inches at ``left`` inches from the left, ``top`` from the top."""
        self._axes.append((left, width, top, height))

    def figure(self, title: str | None = None) -> tuple[Figure, list[Axes]]:
        """The figure (``height`` plus the bottom edge) with its axes, in the order placed, and its title."""
        width, height = self.width, self.height + _EDGE
        figure = Figure(figsize=(width, height))
        placed = [
            figure.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))
            for left, w, top, h in self._axes
        ]
        if title is not None:
            figure.suptitle(
                title, x=_EDGE / width, y=1 - _EDGE / height, ha="left", va="top", fontsize=10, fontweight="bold"
            )
        return figure, placed


def _legend_columns(labels: Sequence[str], room: float, most: int) -> tuple[int, float]:
    """Columns of a legend of ``labels`` fitting ``room`` inches (at most ``most``, at least 1) and its width.

    An entry is its handle (2 em), the gap to its text (0.8 em) and the text; columns are 2 em
    apart; the width is that of the columns at the widest entry.
    """
    em = 9.0 * _INCH
    entry = text_width(labels) + 2.8 * em
    columns = max(1, min(len(labels), most, int((room - 0.8 * em + 2.0 * em) // (entry + 2.0 * em))))
    return columns, columns * entry + (columns - 1) * 2.0 * em + 0.8 * em


def _top_legend(figure: Figure, handles: Sequence[Any], labels: Sequence[str], columns: int, top: float) -> None:
    """The arms' legend in ``columns`` columns, its top ``top`` inches from the figure's top, at the title's left."""
    width, height = figure.get_size_inches()
    figure.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(_EDGE / width, 1 - top / height),
        borderaxespad=0.0,
        borderpad=0.0,
        frameon=False,
        ncols=columns,
    )


def _legend_rows(n: int, columns: int) -> float:
    """Height in inches of a legend of ``n`` entries in ``columns`` columns (and the gap under it)."""
    return _LEGEND_ROW * -(-n // columns) + 0.12


def arm_labels(brief: Mapping) -> dict[str, str]:
    """Display label of each arm: its protocol ``label``, else its name."""
    return {arm["name"]: arm.get("label") or arm["name"] for arm in brief["arms"]}


def month_ticks(horizon_months: float) -> np.ndarray:
    """Ticks of the time axis from 0 to the data cut-off, at most 8 intervals of 1, 2, 3, 6, 12… months."""
    step = next((s for s in _MONTH_STEPS if horizon_months / s <= 8), _MONTH_STEPS[-1])
    return np.arange(0.0, horizon_months + 1e-9, step)


def _drawn(patients: pd.DataFrame, arms: Sequence[str]) -> list[tuple[str, str, pd.DataFrame]]:
    """``(arm, colour, its patients)`` of the arms drawn: the first ``MAX_FIGURE_ARMS`` that have patients.

    One grouping of the arm column (comparing it with each arm name was ~0.2 s of the report
    at 300,000 patient-arms).
    """
    rows = patients.groupby("arm", sort=False, observed=True).indices
    drawn = [(arm, colour) for arm, colour in zip(arms, itertools.cycle(COLOURS)) if arm in rows][:MAX_FIGURE_ARMS]
    return [(arm, colour, patients.iloc[rows[arm]]) for arm, colour in drawn]


def plot_points(n_arms: int) -> int:
    """Points of each curve of a figure of ``n_arms`` curves: ``PLOT_POINTS``, fewer past 2 arms.

    The figure's points (and censor marks) stay within ``FIGURE_PLOT_POINTS``, so that the
    page stays under 1 MB whatever the number of patients and arms (3 arms: 400 points each,
    ~1 point of the figure apart; 12 arms: 100).
    """
    return max(LEAST_PLOT_POINTS, min(PLOT_POINTS, FIGURE_PLOT_POINTS // max(n_arms, 1)))


def _arm_grid(durations: np.ndarray, horizon: float, points: int) -> np.ndarray:
    """Months at which an arm's curve is drawn: ``points`` steps, stopped at its last follow-up.

    A step function sampled this finely looks the same at the report's size, and the page stays
    small whatever the number of patients; no curve runs past the data cut-off.
    """
    last = min(float(durations.max()), horizon)
    grid = np.linspace(0.0, horizon, points)
    return np.append(grid[grid < last], last)


def _step(
    ax: Axes, grid: np.ndarray, curve: np.ndarray, band: np.ndarray | None, colour: str, label: str, with_band: bool
) -> None:
    """A step curve (and its band) drawn through its change points only: same picture, smaller SVG."""
    values = np.column_stack([curve] if band is None else [curve, band])
    keep = np.r_[True, np.any(np.diff(values, axis=0) != 0, axis=1)]
    keep[-1] = True  # the curve reaches the arm's last follow-up
    x = grid[keep]
    ax.step(x, curve[keep], where="post", color=colour, lw=1.4, label=label)
    if with_band and band is not None:
        ax.fill_between(x, band[keep, 0], band[keep, 1], step="post", color=colour, alpha=0.15, lw=0)


#: Height of the curve axes and of a number-at-risk row, inches.
_CURVE_HEIGHT, _RISK_ROW = 2.6, 0.2
#: Least width of the curve axes, inches (the figure widens for long arm labels).
_CURVE_WIDTH = 4.5


#: The number-at-risk table's title, inches below the curve axes (under the x tick labels and label).
_RISK_TITLE = _TICK_LINE + _LABEL_LINE + 0.2


class _CurveFigure:
    """A figure of curves by arm: title, the arms' legend above the curves, a number-at-risk table below.

    Laid out from its texts (:class:`_Layout`): the left margin holds the y tick labels and
    label and the table's arm labels (clear of the count at time 0, centred on the axis); the
    legend gets as many columns (up to ``columns``) as fit the figure's width. The table is
    text placed under the curve axes (no axes of its own: each costs ~50 ms to build and draw).
    """

    def __init__(self, title: str, entries: Sequence[str], rows: Sequence[str], most_patients: int, columns: int):
        # the arm's label ends a pad of 6 points plus the widest count's half width left of the axis
        self.pad = 6 + 3.0 * len(str(most_patients))
        left = _EDGE + max(_ticks_width(["0.00"]), text_width(rows) + self.pad * _INCH)
        width = max(7.0, left + _CURVE_WIDTH + 0.3)
        self.columns, legend = _legend_columns(entries, width - 2 * _EDGE, columns)
        width = max(width, legend + 2 * _EDGE)
        layout = _Layout(width)
        layout.band(_TITLE - _EDGE)
        self.legend_top = layout.band(_legend_rows(len(entries), self.columns))
        layout.axes(left, width - left - 0.3, layout.band(_CURVE_HEIGHT), _CURVE_HEIGHT)
        layout.band(_RISK_TITLE + _RISK_ROW * len(rows))
        self.figure, (self.ax,) = layout.figure(title)

    def finish(self, rows: Sequence[tuple[str, str, np.ndarray]], horizon: float) -> Figure:
        """Time axis, legend and number-at-risk table once the curves are drawn."""
        ticks = _time_axis(self.ax, horizon)
        handles, labels = self.ax.get_legend_handles_labels()
        _top_legend(self.figure, handles, labels, self.columns, self.legend_top)
        _risk_table(self.figure, self.ax, rows, ticks, self.pad)
        return self.figure


def risk_row_y(row: int) -> float:
    """Height of the number-at-risk table's row ``row`` (0: first arm), in fractions of the curve axes (< 0)."""
    return -(_RISK_TITLE + _RISK_ROW * (row + 0.5)) / _CURVE_HEIGHT


def _risk_table(
    figure: Figure, ax: Axes, rows: Sequence[tuple[str, str, np.ndarray]], ticks: np.ndarray, pad: float
) -> None:
    """Number at risk (duration >= tick) of each arm under each tick of ``ax``, one row per arm in its colour.

    The arm's label ends ``pad`` points left of the axis, clear of the count at time 0 (which
    is centred on it).
    """
    under = ax.get_xaxis_transform()  # x: months, y: fraction of the axes
    left_of = ax.transAxes + ScaledTranslation(-pad * _INCH, 0.0, figure.dpi_scale_trans)
    title_y = -(_RISK_TITLE - 0.04) / _CURVE_HEIGHT
    ax.text(0.0, title_y, "Number at risk", transform=ax.transAxes, ha="left", va="bottom", fontsize=8, color="#5b6475")
    for i, (label, colour, durations) in enumerate(rows):
        y = risk_row_y(i)
        ax.text(0.0, y, label, transform=left_of, ha="right", va="center", color=colour)
        for t in ticks:
            count = str(int((durations >= t).sum()))
            ax.text(t, y, count, transform=under, ha="center", va="center", color=colour, fontsize=8)


def _time_axis(ax: Axes, horizon: float) -> np.ndarray:
    """The curve axes' time axis: 0 to the data cut-off with :func:`month_ticks`."""
    ticks = month_ticks(horizon)
    ax.set_xlim(0.0, horizon)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_tick_params(labelbottom=True)
    ax.set_xlabel("Months since randomisation")
    return ticks


def _y_ticks(ax: Axes, top: float) -> None:
    """Fixed ticks from 0 to ``top`` (at most 6 intervals), labelled to the decimals of the step."""
    ticks = np.asarray(MaxNLocator(6).tick_values(0.0, top))
    ticks = ticks[ticks <= top + 1e-12]
    ax.set_yticks(ticks, tick_labels(ticks, least=1))


def tick_labels(ticks: np.ndarray, least: int = 0) -> list[str]:
    """Labels of evenly spaced ticks with the same decimals, as many as the step needs (``least`` to 3)."""
    decimals = max(least, *(len(f"{t:.3f}".rstrip("0").split(".")[1]) for t in ticks))
    return [f"{t:.{decimals}f}" for t in ticks]


#: Label of the censor marks' line (a leading underscore keeps it out of the legend).
CENSOR_LABEL = "_censored"
#: Height of a censor mark, points.
_CENSOR_MARK = 5.0


def _censor_marks(ax: Axes, months: np.ndarray, survival: np.ndarray, colour: str) -> None:
    """Vertical censor marks on a survival curve (y from 0 to 1.02), as one path of short segments.

    A marker per mark would be an SVG element per mark (~120 bytes; ~1,800 of them in a
    three-arm figure of a large run: the page passed 1 MB); a segment of the path is ~30 bytes.
    Their height in data units follows from the fixed height of the curve axes.
    """
    half = 0.5 * _CENSOR_MARK * _INCH / _CURVE_HEIGHT * 1.02
    x = np.column_stack([months, months, np.full(len(months), np.nan)]).ravel()
    y = np.column_stack([survival - half, survival + half, np.full(len(months), np.nan)]).ravel()
    ax.plot(x, y, lw=0.8, color=colour, label=CENSOR_LABEL)


def _logrank_text(result: Mapping | None) -> str | None:
    """``Log-rank p = 0.012`` (``p < 0.001``), or ``None`` when the test was not computed."""
    if not result or result.get("p_value") is None:
        return None
    p = result["p_value"]
    return "Log-rank p < 0.001" if p < 0.001 else f"Log-rank p = {p:.3f}"


def kaplan_meier_figure(patients: pd.DataFrame, summary: Mapping, brief: Mapping, name: str) -> Figure:
    """Kaplan–Meier curves by arm: 95% bands, censor marks, medians and log-rank p, number at risk.

    Curves stop at each arm's last follow-up and the axis at the data cut-off.
    """
    title, ylabel = _ENDPOINT_TITLES[name]
    labels, horizon = arm_labels(brief), float(brief["horizon_months"])
    drawn = _drawn(patients, list(summary["arms"]))
    entries = []
    for arm, _, _ in drawn:
        median = summary["arms"][arm][_ENDPOINT_MEDIANS[name]]
        entries.append(f"{labels[arm]} (median {'not reached' if median is None else f'{median:.1f} months'})")
    most = max((len(arm_patients) for _, _, arm_patients in drawn), default=0)
    with matplotlib.rc_context(FIGURE_STYLE):
        layout = _CurveFigure(title, entries, [labels[a] for a, _, _ in drawn], most, columns=2)
        ax, rows, points = layout.ax, [], plot_points(len(drawn))
        for (arm, colour, arm_patients), entry in zip(drawn, entries):
            durations, events = endpoint(arm_patients, name)
            months = np.minimum(durations / DAYS_PER_MONTH, horizon)
            grid = _arm_grid(months, horizon, points)
            kmf = kaplan_meier(months, events, arm)
            _step(ax, grid, kmf.at(grid), kmf.band_at(grid), colour, entry, len(drawn) <= MAX_BAND_ARMS)
            # one censor mark per plotting step: the marks show where follow-up ends, not each patient
            step = horizon / (points - 1)
            censored = np.unique(np.round(months[~events.astype(bool)] / step) * step)
            censored = censored[censored <= grid[-1]]
            _censor_marks(ax, censored, kmf.at(censored), colour)
            rows.append((labels[arm], colour, months))
        ax.set(ylabel=ylabel, ylim=(0, 1.02))
        _y_ticks(ax, 1.0)
        pvalue = _logrank_text(summary.get("logrank", {}).get(name))
        if pvalue:
            ax.text(0.02, 0.04, pvalue, transform=ax.transAxes, ha="left", va="bottom")
        return layout.finish(rows, horizon)


def cumulative_incidence_figure(patients: pd.DataFrame, summary: Mapping, brief: Mapping) -> Figure:
    """Aalen–Johansen cumulative incidence of SRE by arm, death competing: 95% bands, landmarks, number at risk."""
    labels, horizon = arm_labels(brief), float(brief["horizon_months"])
    drawn = _drawn(patients, list(summary["arms"]))
    most = max((len(arm_patients) for _, _, arm_patients in drawn), default=0)
    with matplotlib.rc_context(FIGURE_STYLE):
        names = [labels[a] for a, _, _ in drawn]
        title = "Cumulative incidence of SRE (death as competing risk)"
        layout = _CurveFigure(title, names, names, most, columns=3)
        ax, rows, top, points = layout.ax, [], 0.0, plot_points(len(drawn))
        for arm, colour, arm_patients in drawn:
            durations, code = competing_risks(arm_patients)
            months = np.minimum(durations / DAYS_PER_MONTH, horizon)
            grid = _arm_grid(months, horizon, points)
            band = cumulative_incidence_band(durations, code)
            on_grid = band.reindex(grid * DAYS_PER_MONTH, method="ffill").fillna(0.0).to_numpy()
            with_band = len(drawn) <= MAX_BAND_ARMS
            _step(ax, grid, on_grid[:, 0], on_grid[:, 1:], colour, labels[arm], with_band)
            top = max(top, float(np.nanmax(on_grid if with_band else on_grid[:, 0])))
            rows.append((labels[arm], colour, months))
        for month in summary["landmarks_months"]:
            ax.axvline(month, color="#999999", lw=0.6, ls=":")
        top = min(1.0, top * 1.05) or 0.05
        ax.set(ylabel="Cumulative incidence", ylim=(0, top))
        _y_ticks(ax, top)
        return layout.finish(rows, horizon)


#: Forest-plot rows of a comparison: summary key, text, ratio key, ratio name.
_FOREST_ENDPOINTS = (
    ("time_to_first_sre", "time to first SRE", "hazard_ratio", "HR"),
    ("first_and_subsequent_sre", "all SREs", "rate_ratio", "RR"),
    ("overall_survival", "overall survival", "hazard_ratio", "HR"),
)


def forest_rows(summary: Mapping, labels: Mapping[str, str] | None = None) -> list[dict]:
    """Rows of the forest plot: every comparison (overall and by primary) with an estimate and its CI.

    ``labels`` maps arm names to display labels (default: the names).
    """
    labels = labels or {}
    rows = []
    for c in summary["comparisons"]:
        vs = f"{labels.get(c['arm'], c['arm'])} vs {labels.get(c['reference'], c['reference'])}"
        for key, text, ratio, short in _FOREST_ENDPOINTS:
            rows.append({"label": f"{vs}: {text}", "kind": short, **_estimate(c[key], ratio)})
    for s in summary["subgroups"]:
        vs = f"{labels.get(s['arm'], s['arm'])} vs {labels.get(s['reference'], s['reference'])}"
        label = f"{vs}: first SRE, {s['primary'].replace('_', ' ')}"
        rows.append({"label": label, "kind": "HR", **_estimate(s["time_to_first_sre"], "hazard_ratio")})
    return [r for r in rows if None not in (r["ratio"], r["ci_low"], r["ci_high"])]


def _estimate(result: Mapping, ratio: str) -> dict:
    return {"ratio": result[ratio], "ci_low": result["ci_low"], "ci_high": result["ci_high"]}


def ratio_ticks(low: float, high: float) -> tuple[tuple[float, float], list[float]]:
    """Limits and labelled ticks of a log ratio axis holding ``[low, high]``.

    The axis always reaches past 1 on both sides (to 1.5 and 1/1.5 at least), so a tick above
    and below 1 is labelled whatever the estimates.
    """
    limits = (min(low / 1.1, 1 / 1.55), max(high * 1.1, 1.55))
    ticks = [t for t in _RATIO_TICKS if limits[0] <= t <= limits[1]]
    if len(ticks) > 7:  # wide intervals: keep the 1-2-5 ticks
        ticks = [t for t in ticks if f"{t:g}".lstrip("0.").rstrip("0")[:1] in "125"]
    return limits, ticks


def forest_figure(summary: Mapping, brief: Mapping) -> Figure | None:
    """Forest plot of hazard and rate ratios with 95% CIs on a log axis and a numeric column; ``None`` if none."""
    rows = forest_rows(summary, arm_labels(brief))[:MAX_FOREST_ROWS]
    if not rows:
        return None
    texts = [f"{r['kind']} {r['ratio']:.2f} ({r['ci_low']:.2f}–{r['ci_high']:.2f})" for r in rows]
    with matplotlib.rc_context(FIGURE_STYLE):
        left = _EDGE + text_width([r["label"] for r in rows]) + 0.1
        column = max(text_width(texts), text_width(["Ratio (95% CI)"])) + 0.1
        width = max(7.5, left + 3.0 + 0.2 + column + _EDGE)
        plot = width - left - 0.2 - column - _EDGE
        layout = _Layout(width)
        layout.band(_TITLE - _EDGE + 0.1)  # the title, and the column's heading under it
        height = 0.3 * len(rows) + 0.1
        layout.axes(left, plot, layout.band(height + _TICK_LINE + _LABEL_LINE), height)
        figure, (ax,) = layout.figure("Hazard and rate ratios vs the reference arm")
        y = np.arange(len(rows))[::-1]
        ratio = np.array([r["ratio"] for r in rows])
        low = np.array([r["ci_low"] for r in rows])
        high = np.array([r["ci_high"] for r in rows])
        ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="s", color="#333333", ms=4, capsize=2)
        ax.axvline(1.0, color="#999999", lw=0.8)
        ax.set_xscale("log")
        limits, ticks = ratio_ticks(float(low.min()), float(high.max()))
        ax.set_xlim(*limits)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set(xlabel="Ratio (95% CI), < 1 favours the arm")
        # the numeric column: text right of the axes (x: fraction of the axes, y: rows)
        x = 1.0 + 0.2 / plot
        ax.text(x, 1.0 + 0.08 / height, "Ratio (95% CI)", transform=ax.transAxes, ha="left", va="bottom")
        for yi, text in zip(y, texts):
            ax.text(x, yi, text, transform=ax.get_yaxis_transform(), va="center", ha="left")
        return figure


def _two_lines(text: str) -> str:
    """``text`` broken at the space nearest its middle (unchanged without a space): a short, level label."""
    spaces = [i for i, c in enumerate(text) if c == " "]
    if not spaces:
        return text
    cut = min(spaces, key=lambda i: abs(2 * i - len(text)))
    return f"{text[:cut]}\n{text[cut + 1 :]}"


def sre_bars_figure(summary: Mapping, brief: Mapping) -> Figure:
    """SRE rate per patient-year (95% exact CI) by arm, and the fraction of each arm with each SRE type.

    The rates are horizontal bars beside the arms' labels (long labels stay level and inside the
    figure); the arms' legend sits above the panels, so it covers no bar.
    """
    labels = arm_labels(brief)
    arms = list(summary["arms"])[:MAX_FIGURE_ARMS]
    types = summary["sre_types"]
    names = [labels[a] for a in arms]
    type_names = [_two_lines(t.replace("_", " ")) for t in types]
    with matplotlib.rc_context(FIGURE_STYLE):
        left = _EDGE + text_width(names) + 0.1
        rates_width, panel_gap = 1.9, _ticks_width(["0.00"]) + 0.1
        # the type labels sit level, on two lines, each in its own slot
        slot = text_width([line for name in type_names for line in name.split("\n")]) + 0.15
        width = max(8.0, left + rates_width + panel_gap + max(3.0, slot * len(types)) + _EDGE)
        columns, _ = _legend_columns(names, width - 2 * _EDGE, 3)
        layout = _Layout(width)
        legend_top = layout.band(_legend_rows(len(names), columns))
        height = max(2.2, 0.22 * len(arms))
        top = layout.band(0.3) + 0.3  # the panels' titles
        layout.axes(left, rates_width, top, height)
        layout.axes(left + rates_width + panel_gap, width - left - rates_width - panel_gap - _EDGE, top, height)
        layout.band(height + _TICK_LINE + _LABEL_LINE)  # two lines of type labels, or tick labels and a label
        figure, (rates, shares) = layout.figure()
        # an arm without patients (or follow-up) has no rate: NaN draws no bar
        rate = np.array([summary["arms"][a]["sre_rate_per_patient_year"] for a in arms], dtype=float)
        ci = np.array([summary["arms"][a]["sre_rate_per_patient_year_ci"] for a in arms], dtype=float)
        colours = list(itertools.islice(itertools.cycle(COLOURS), len(arms)))
        y = np.arange(len(arms))
        rates.barh(y, rate, xerr=[rate - ci[:, 0], ci[:, 1] - rate], color=colours, capsize=3)
        rates.set_yticks(y, names)
        rates.set_ylim(len(arms) - 0.4, -0.6)
        rates.set(title="SRE rate", xlabel="SREs per patient-year")
        rates.xaxis.set_major_locator(MaxNLocator(4))
        bar = 0.8 / len(arms)
        x = np.arange(len(types))
        for i, (name, colour, arm) in enumerate(zip(names, colours, arms)):
            share = np.array([summary["arms"][arm]["sre_by_type"][t] for t in types], dtype=float)
            shares.bar(x + (i - (len(arms) - 1) / 2) * bar, share, bar, color=colour, label=name)
        shares.set_xticks(x, type_names)
        shares.set(title="Patients with each SRE type", ylabel="Fraction of the arm")
        handles, entries = shares.get_legend_handles_labels()
        _top_legend(figure, handles, entries, columns, legend_top)
        return figure


#: Panels of the marker figure: summary key, axis label.
_MARKER_PANELS = (
    ("untx_nmol_mmol", "uNTx/Cr, nmol/mmol"),
    ("bsap_ug_l", "BSAP, µg/L"),
    ("calcium_mmol_l", "Calcium, mmol/L"),
)


def markers_figure(summary: Mapping, brief: Mapping) -> Figure | None:
    """Median uNTx, BSAP and serum calcium by visit week and arm; ``None`` when the run has no markers."""
    labels = arm_labels(brief)
    arms = [
        (a, c)
        for a, c in zip(list(summary["arms"])[:MAX_FIGURE_ARMS], itertools.cycle(COLOURS))
        if summary["arms"][a].get("markers")
    ]
    if not arms:
        return None
    weeks = {arm: sorted(summary["arms"][arm]["markers"], key=float) for arm, _ in arms}
    with matplotlib.rc_context(FIGURE_STYLE):
        # fixed ticks, known before the layout: their labels set the panels' left margins
        panel_ticks = []
        for key, _ in _MARKER_PANELS:
            values = np.array([summary["arms"][a]["markers"][w][key] for a, _ in arms for w in weeks[a]], dtype=float)
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            locator = MaxNLocator(5, steps=[1, 2, 2.5, 5, 10])
            ticks = np.asarray(locator.tick_values(low, high if high > low else low + 1.0))
            panel_ticks.append((ticks, tick_labels(ticks)))
        last = max(float(w) for a in weeks.values() for w in a)
        week_ticks = np.asarray(MaxNLocator(5, integer=True).tick_values(0.0, last))
        week_ticks = week_ticks[week_ticks <= last + 1e-9]
        names = [labels[a] for a, _ in arms]
        margins = [_ticks_width(shown) + 0.1 for _, shown in panel_ticks]
        columns, legend = _legend_columns(names, 8.0 - 2 * _EDGE, 4)
        width = max(8.0, legend + 2 * _EDGE)
        panel = (width - _EDGE - sum(margins) - 0.15) / len(_MARKER_PANELS)
        layout = _Layout(width)
        layout.band(_TITLE - _EDGE)
        legend_top = layout.band(_legend_rows(len(names), columns))
        top = layout.band(2.0)
        x = _EDGE
        for margin in margins:
            x += margin
            layout.axes(x, panel, top, 2.0)
            x += panel
        layout.band(_TICK_LINE + _LABEL_LINE)
        figure, panels = layout.figure("Bone markers and serum calcium, median by visit")
        for ax, (key, ylabel), (ticks, shown) in zip(panels, _MARKER_PANELS, panel_ticks):
            for arm, colour in arms:
                visits = summary["arms"][arm]["markers"]
                values = np.array([visits[w][key] for w in weeks[arm]], dtype=float)
                ax.plot([float(w) for w in weeks[arm]], values, marker="o", ms=3, color=colour, label=labels[arm])
            ax.set_yticks(ticks, shown)
            ax.set_ylim(ticks[0], ticks[-1])
            ax.set_xticks(week_ticks, [f"{w:g}" for w in week_ticks])
            ax.set_xlim(0, max(last, float(week_ticks[-1])) * 1.04)
            ax.set(ylabel=ylabel, xlabel="Week")
        handles, entries = panels[0].get_legend_handles_labels()
        _top_legend(figure, handles, entries, columns, legend_top)
        return figure


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
    rows.append(
        ("Creatinine clearance, mL/min, median (IQR)", [_median_iqr(g["creatinine_clearance_ml_min"]) for g in groups])
    )
    rows += [
        (f"Primary: {p.replace('_', ' ')}, n (%)", [_n_pct(g["primary"] == p) for g in groups])
        for p in sorted(patients["primary"].unique())
    ]
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
                "label": arm.label or arm.name,
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


def _significant(value: float | None) -> str:
    """``value`` to three significant digits; "—" for a missing (``None`` or NaN) value (the validation page)."""
    return "—" if value is None or value != value else f"{value:.3g}"


def _number(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals with a true minus sign (U+2212); "—" for a missing (``None`` or NaN) value."""
    if value is None or not np.isfinite(value):
        return "—"
    text = f"{value:.{digits}f}"
    if text.startswith("-"):
        text = text[1:] if float(text) == 0 else MINUS + text[1:]
    return text


def _pct(value: float | None, digits: int = 1) -> str:
    """A proportion as a percentage, ``12.5%``; "—" when missing."""
    return "—" if value is None else f"{_number(100 * value, digits)}%"


def _interval(low: float | None, high: float | None, digits: int = 2, percent: bool = False) -> str:
    """``(0.71–0.95)``, or ``(−6.6% to −1.5%)`` when a bound is negative (an en dash next to a minus misreads)."""

    def show(v: float | None) -> str:
        return _pct(v, digits) if percent else _number(v, digits)

    negative = any(v is not None and np.isfinite(v) and v < 0 for v in (low, high))
    return f"({show(low)}{' to ' if negative else '–'}{show(high)})"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _estimate_text(result: Mapping, ratio: str, digits: int = 2) -> str:
    """``0.82 (0.71–0.95)``, or the reason when the estimate is missing."""
    if result[ratio] is None:
        return f"not estimable: {result['reason']}"
    return f"{_number(result[ratio], digits)} {_interval(result['ci_low'], result['ci_high'], digits)}"


def _retreatment_text(arm: Mapping) -> str:
    """``4.0% (9 of 225 lesions)``, or the reason there is no share."""
    share, detail = arm.get("radiotherapy_retreatment"), arm.get("radiotherapy_retreatment_detail") or {}
    if share is None:
        return f"— ({detail.get('reason', 'not in this summary')})"
    return f"{100 * share:.1f}% ({detail['retreated_lesions']} of {detail['irradiated_lesions']} lesions)"


def _pain_response_text(arm: Mapping) -> str:
    """``54.6% (complete 16.3%) of 1,024 lesions``, or the reason there is no share."""
    shares, detail = arm.get("pain_response"), arm.get("pain_response_detail") or {}
    if shares is None:
        return f"— ({detail.get('reason', 'not in this summary')})"
    return (
        f"{100 * shares['overall']:.1f}% (complete {100 * shares['complete']:.1f}%) "
        f"of {detail['assessed_lesions']:,} lesions"
    )


def _test_p(result: Mapping) -> str:
    """The p-value of a test, or why it was not computed."""
    if result["p_value"] is None:
        return f"not computed ({result['reason']})"
    return _p(result["p_value"])


@functools.cache
def template_environment() -> jinja2.Environment:
    """The jinja2 environment of the package's page templates, with the report's number filters.

    One per process, so that a template is compiled once (jinja2 caches it per environment).
    """
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("vtrial", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        number=_number,
        significant=_significant,
        p=_p,
        estimate=_estimate_text,
        retreatment=_retreatment_text,
        pain_response=_pain_response_text,
        test_p=_test_p,
        pct=_pct,
    )
    environment.globals.update(interval=_interval)
    return environment


def warm_up() -> None:
    """Compile the report's template and write a small figure with text as SVG, once per process.

    What the first report of a process pays besides its own work (the template's compilation,
    the font and the SVG backend's first use: ~0.3-0.5 s); run while a run's workers simulate
    (:func:`vtrial.api.run`'s ``prepare``), the report after them does not wait for it.
    """
    template_environment().get_template("report.html")
    layout = _Layout(2.0)
    layout.axes(0.6, 1.2, layout.band(1.0), 0.7)
    figure, (axes,) = layout.figure("warm-up")
    axes.plot([0.0, 1.0], [0.0, 1.0])
    axes.set_xlabel("months")
    svg_element(figure)


def report_figures(summary: Mapping, patients: pd.DataFrame, brief: Mapping) -> dict[str, Figure | None]:
    """Every figure of the report by file name; ``None`` for a figure the run cannot have (no ratio, no marker)."""
    return {
        "km_sre": kaplan_meier_figure(patients, summary, brief, "time_to_first_sre"),
        "cif": cumulative_incidence_figure(patients, summary, brief),
        "km_os": kaplan_meier_figure(patients, summary, brief, "overall_survival"),
        "sre_bars": sre_bars_figure(summary, brief),
        "forest": forest_figure(summary, brief),
        "markers": markers_figure(summary, brief),
    }


def landmarks_past_followup(summary: Mapping, patients: pd.DataFrame, labels: Mapping[str, str]) -> list[dict]:
    """Landmarks at which an arm with patients has no cumulative incidence, with each such arm's longest follow-up.

    The estimate ends at an arm's last follow-up; with staggered entry nobody is followed the
    whole horizon, so a landmark at the horizon is past it.
    """
    longest = (patients.groupby("arm", observed=True)["followup_days"].max() / DAYS_PER_MONTH).to_dict()
    notes = []
    for months in summary["landmarks_months"]:
        key = landmark_key(months)
        arms = [
            (labels[arm], longest[arm])
            for arm, a in summary["arms"].items()
            if a["n"] and a["cumulative_incidence_sre"][key] is None
        ]
        if arms:
            notes.append({"months": key, "arms": arms})
    return notes


#: Rows of the parameter-uncertainty table: summary key, text, Monte Carlo CI key, digits, percent.
_UNCERTAIN_ARM_ROWS = (
    ("proportion_with_sre", "Patients with ≥ 1 SRE", "proportion_with_sre_ci", 1, True),
    (
        "median_time_to_first_sre_months",
        "Median time to first SRE, months",
        "median_time_to_first_sre_months_ci",
        1,
        False,
    ),
    ("sre_rate_per_patient_year", "SRE rate per patient-year", "sre_rate_per_patient_year_ci", 3, False),
    (
        "median_overall_survival_months",
        "Median overall survival, months",
        "median_overall_survival_months_ci",
        1,
        False,
    ),
)


def _percentiles_text(entry: Mapping | None, digits: int = 2, percent: bool = False) -> str:
    """``median (low–high)`` of an entry of the ``uncertainty`` block; "—" when absent (a block from before it)."""
    if entry is None:
        return "—"
    show = _pct if percent else _number
    return f"{show(entry['median'], digits)} {_interval(entry['low'], entry['high'], digits, percent)}"


def uncertainty_rows(summary: Mapping, labels: Mapping[str, str]) -> list[tuple[str, str, str, str, str]]:
    """The ``uncertainty`` block beside the Monte Carlo estimates: ``(who, endpoint, Monte Carlo, draws, prediction)`` rows.

    The Monte Carlo interval is the sampling error of the virtual patients at the calibrated
    parameters; the draws' percentile interval is the spread over the parameter draws (parameter
    uncertainty alone); the prediction interval carries both (the ``prediction`` of each entry).
    """
    block = summary.get("uncertainty")
    if not block:
        return []
    rows = []
    for arm, values in block["arms"].items():
        mc = summary["arms"][arm]
        for key, text, ci, digits, percent in _UNCERTAIN_ARM_ROWS:
            if key not in values:
                continue
            show = _pct if percent else _number
            rows.append(
                (
                    labels.get(arm, arm),
                    text,
                    f"{show(mc[key], digits)} {_interval(mc[ci][0], mc[ci][1], digits, percent)}",
                    _percentiles_text(values[key], digits, percent),
                    _percentiles_text(values[key].get("prediction"), digits, percent),
                )
            )
    comparisons = {(c["arm"], c["reference"]): c for c in summary["comparisons"]}
    for c in block.get("comparisons", []):
        mc = comparisons.get((c["arm"], c["reference"]))
        who = f"{labels.get(c['arm'], c['arm'])} vs {labels.get(c['reference'], c['reference'])}"
        for key, text, ratio, short in _FOREST_ENDPOINTS:
            if key not in c:
                continue
            rows.append(
                (
                    who,
                    f"{text[0].upper()}{text[1:]}, {short}",
                    _estimate_text(mc[key], ratio) if mc else "—",
                    _percentiles_text(c[key]),
                    _percentiles_text(c[key].get("prediction")),
                )
            )
    return rows


def render_report(
    summary: Mapping,
    patients: pd.DataFrame,
    brief: Mapping,
    manifest: list[tuple[str, str]] | None,
    figures: Mapping[str, Figure | None] | None = None,
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
    figures : mapping, optional
        :func:`report_figures` of the same run (drawn here when not given).
    """
    arms = list(summary["arms"])
    labels = arm_labels(brief)
    figures = report_figures(summary, patients, brief) if figures is None else figures
    return (
        template_environment()
        .get_template("report.html")
        .render(
            summary=summary,
            brief=brief,
            labels=labels,
            figures={name: None if figure is None else svg_element(figure) for name, figure in figures.items()},
            limits={
                "arms": MAX_FIGURE_ARMS,
                "forest_rows": MAX_FOREST_ROWS,
                "n_forest_rows": len(forest_rows(summary)),
            },
            baseline=baseline_table(patients, arms),
            landmarks_past=landmarks_past_followup(summary, patients, labels),
            uncertainty=uncertainty_rows(summary, labels),
            manifest=manifest,
        )
    )


def write_figures(run_dir: Path, figures: Mapping[str, Figure | None], fmt: str) -> list[Path]:
    """Write each figure as ``figures/<name>.<fmt>`` of the run folder (atomically); the paths written."""
    if fmt not in FIGURE_FORMATS:
        raise UserInputError(
            f"figure format {fmt!r} is not one of {', '.join(FIGURE_FORMATS)}",
            fix=f"give --format {' or '.join(FIGURE_FORMATS)}",
        )
    folder = run_dir / "figures"
    folder.mkdir(exist_ok=True)
    paths = []
    for name, figure in figures.items():
        if figure is None:
            continue
        buffer = io.BytesIO()
        with matplotlib.rc_context(FIGURE_STYLE):
            figure.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata=_NO_DATE[fmt])
        path = folder / f"{name}.{fmt}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


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


def write_report(
    run_dir: str | Path,
    summary: Mapping | None = None,
    figure_format: str | None = None,
    patients: pd.DataFrame | None = None,
) -> Path:
    """Write ``report.html`` of a run folder (atomically); the summary is rebuilt if not given.

    With ``figure_format`` (``"png"``, ``"pdf"`` or ``"svg"``) each figure is also written to
    the folder's ``figures/`` (:func:`write_figures`). ``patients``: the folder's checked
    patients table when already read (:func:`vtrial.analysis.analyse_run`), else read here.
    """
    run_dir = Path(run_dir)
    summary = json.loads(to_json(summarise_run(run_dir) if summary is None else summary))
    if patients is None:
        patients = read_table(run_dir, "patients.parquet", PATIENT_SCHEMA, KEY, categorical=True)
    brief = protocol_brief(read_protocol(run_dir))
    figures = report_figures(summary, patients, brief)
    html = render_report(summary, patients, brief, _read_manifest(run_dir), figures)
    if figure_format is not None:
        write_figures(run_dir, figures, figure_format)
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path


def report_run(run_dir: str | Path, figure_format: str | None = None) -> tuple[Path, Path]:
    """Rebuild ``summary.json`` and ``report.html`` (and figure files, :func:`write_report`) from the tables alone."""
    run_dir = Path(run_dir)
    summary, patients = analyse_run(run_dir)
    return write_summary(run_dir, summary), write_report(run_dir, summary, figure_format, patients)
