"""The report's figures at the standard of survminer's ``ggsurvplot``, checked on matplotlib's own layout.

Each test reproduces a defect of issue 15 (the figures of the previous report fail it): texts are
measured where the renderer draws them, so an overlap is an overlap on the page.
"""

from __future__ import annotations

import json
import re
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from test_analysis import make_run_folder
from typer.testing import CliRunner

from vtrial.analysis import read_protocol, read_table
from vtrial.analysis.run import KEY, PATIENT_SCHEMA
from vtrial.analysis.survival import DAYS_PER_MONTH, cumulative_incidence_band
from vtrial.cli import app
from vtrial.errors import UserInputError
from vtrial.report import (
    CENSOR_LABEL,
    COLOURS,
    _interval,
    _number,
    cumulative_incidence_figure,
    forest_figure,
    kaplan_meier_figure,
    markers_figure,
    month_ticks,
    plot_points,
    protocol_brief,
    ratio_ticks,
    render_report,
    report_figures,
    report_run,
    risk_row_y,
    svg_element,
    sre_bars_figure,
    uncertainty_rows,
    write_figures,
)

HORIZON = 32.85  # horizon_months of the synthetic protocol


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = make_run_folder(tmp_path_factory.mktemp("figures") / "synthetic")
    report_run(folder)
    summary = json.loads((folder / "summary.json").read_text())
    patients = read_table(folder, "patients.parquet", PATIENT_SCHEMA, unique=KEY)
    return folder, summary, patients, protocol_brief(read_protocol(folder))


def drawn_texts(figure: Figure) -> list[tuple[str, object]]:
    """``(text, window extent)`` of every text the renderer actually draws (hidden and off-axis ticks excluded)."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    drawn = []
    draw_text = renderer.draw_text

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None and s.strip():
            drawn.append((s, mtext.get_window_extent(renderer)))
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = record
    figure.draw(renderer)
    return drawn


def overlaps(boxes) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes share more than one square pixel."""
    found = []
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if width > 1 and height > 1:
            found.append((a, b))
    return found


def test_no_text_of_any_figure_overlaps_another(run):
    _, summary, patients, brief = run
    figures = {k: f for k, f in report_figures(summary, patients, brief).items() if f is not None}
    assert set(figures) == {"km_sre", "cif", "km_os", "sre_bars", "forest"}
    for name, figure in figures.items():
        assert overlaps(drawn_texts(figure)) == [], name


def test_risk_table_counts_sit_under_the_ticks_in_arm_colours(run):
    _, summary, patients, brief = run
    figure = kaplan_meier_figure(patients, summary, brief, "time_to_first_sre")
    boxes = drawn_texts(figure)
    (ax,) = figure.axes  # the table is text under the curve axes
    ticks = month_ticks(HORIZON)
    np.testing.assert_array_equal(ticks, [0, 6, 12, 18, 24, 30])  # 32.85 months: 6-month steps
    np.testing.assert_array_equal(ax.get_xticks(), ticks)
    for row, (arm, colour) in enumerate(zip(("control", "active"), (c.lower() for c in COLOURS))):
        months = (
            patients.loc[patients["arm"] == arm, "first_sre_day"]
            .fillna(np.inf)
            .clip(upper=patients.loc[patients["arm"] == arm, "followup_days"])
            / DAYS_PER_MONTH
        )
        in_row = [t for t in ax.texts if t.get_position()[1] == risk_row_y(row)]
        label, texts = in_row[0], in_row[1:]
        # one count per tick, at the tick, in the arm's colour: patients still free of SRE and followed
        assert [t.get_position()[0] for t in texts] == list(ticks)
        assert [int(t.get_text()) for t in texts] == [int((months >= t).sum()) for t in ticks]
        assert texts[0].get_text() == "300"
        assert {to_hex(t.get_color()) for t in texts} == {colour}
        assert label.get_text() == arm and to_hex(label.get_color()) == colour
        # the arm's name ends clear of its count at time 0 (not glued: at least 4 px apart)
        name_box = next(b for s, b in boxes if s == arm)
        count_box = next(b for s, b in boxes if s == "300" and abs(b.y0 - name_box.y0) < 3)
        assert count_box.x0 - name_box.x1 >= 4
        # under the x axis label, one row below the other
        axis_label = next(b for s, b in boxes if s == "Months since randomisation")
        assert name_box.y1 < axis_label.y0


def test_curves_stop_at_the_cut_off_with_censor_marks(run):
    _, summary, patients, brief = run
    for name in ("time_to_first_sre", "overall_survival"):
        ax = kaplan_meier_figure(patients, summary, brief, name).axes[0]
        assert ax.get_xlim() == (0.0, HORIZON)
        curves = [line for line in ax.lines if line.get_label() != CENSOR_LABEL]
        marks = [line for line in ax.lines if line.get_label() == CENSOR_LABEL]  # one path of segments each
        assert len(curves) == 2 and len(marks) == 2
        assert max(np.nanmax(line.get_xdata()) for line in ax.lines) <= HORIZON
        assert all(len(m.get_xdata()) > 0 for m in marks)
    # everybody alive at 1000 days (32.854 months) is censored there: the OS marks end the curves
    os_marks = [
        m
        for m in kaplan_meier_figure(patients, summary, brief, "overall_survival").axes[0].lines
        if m.get_label() == CENSOR_LABEL
    ]
    assert len(os_marks) == 2
    assert all(np.nanmax(m.get_xdata()) == pytest.approx(HORIZON, abs=0.06) for m in os_marks)


def test_medians_and_log_rank_p_are_on_the_plot(run):
    _, summary, patients, brief = run
    figure = kaplan_meier_figure(patients, summary, brief, "time_to_first_sre")
    texts = [s for s, _ in drawn_texts(figure)]
    p = summary["logrank"]["time_to_first_sre"]["p_value"]
    assert f"Log-rank p = {p:.3f}" in texts and f"{p:.3f}" == "0.170"
    for arm in ("control", "active"):
        median = summary["arms"][arm]["median_time_to_first_sre_months"]
        assert f"{arm} (median {median:.1f} months)" in texts


def test_cumulative_incidence_has_bands_and_a_risk_table(run):
    _, summary, patients, brief = run
    figure = cumulative_incidence_figure(patients, summary, brief)
    (ax,) = figure.axes
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    assert "Number at risk" in [t.get_text() for t in ax.texts]
    first_row = [t.get_text() for t in ax.texts if t.get_position() == (0.0, risk_row_y(0))]
    assert first_row == ["control", "300"]  # the arm's label, its count at time 0
    assert ax.get_xlim() == (0.0, HORIZON)


def test_cumulative_incidence_band_matches_lifelines_without_ties():
    rng = np.random.default_rng(3)
    durations = rng.exponential(100.0, 200)  # continuous: lifelines does not jitter
    code = rng.choice([0, 1, 2], 200, p=[0.3, 0.4, 0.3])
    band = cumulative_incidence_band(durations, code)
    reference = AalenJohansenFitter().fit(durations, code, event_of_interest=1)
    # lifelines names its columns the other way round: "upper" holds the lower bound
    lower, upper = reference.confidence_interval_.to_numpy().T
    both = ~np.isnan(lower)  # lifelines gives NaN where everybody left has an event
    np.testing.assert_allclose(band["estimate"], reference.cumulative_density_.iloc[:, 0], atol=1e-12)
    np.testing.assert_allclose(band["low"].to_numpy()[both], lower[both], atol=1e-12)
    np.testing.assert_allclose(band["high"].to_numpy()[both], upper[both], atol=1e-12)
    assert both.sum() == 191 and band["low"].iloc[-1] == pytest.approx(0.489208, abs=1e-6)


def test_sre_type_legend_covers_no_bar(run):
    _, summary, _, brief = run
    figure = sre_bars_figure(summary, brief)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    legend = (figure.legends or [ax.get_legend() for ax in figure.axes if ax.get_legend()])[0]
    box = legend.get_window_extent(renderer)
    bars = [p for ax in figure.axes for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 2 + 4
    assert not any(box.overlaps(bar.get_window_extent(renderer)) for bar in bars)


def test_forest_plot_labels_ticks_above_one_and_prints_each_ratio(run):
    _, summary, _, brief = run
    figure = forest_figure(summary, brief)
    texts = [s for s, _ in drawn_texts(figure)]
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.75", "1", "1.5"]
    c = summary["comparisons"][0]["time_to_first_sre"]
    assert f"HR {c['hazard_ratio']:.2f} ({c['ci_low']:.2f}–{c['ci_high']:.2f})" in texts
    assert "HR 0.87 (0.72–1.06)" in texts and "Ratio (95% CI)" in texts
    assert "active vs control: first SRE, prostate" in texts
    # an axis of ratios all below 1 still labels a tick above 1
    assert ratio_ticks(0.3, 0.6) == ((0.3 / 1.1, 1.55), [0.5, 0.75, 1.0, 1.5])
    # ratios down to 0.1: 0.25 is not labelled, its label would touch 0.2's
    assert ratio_ticks(0.1, 2.1)[1] == [0.1, 0.2, 0.5, 0.75, 1.0, 1.5, 2.0]


def test_display_labels_replace_arm_names(run, tmp_path):
    folder = make_run_folder(tmp_path / "labelled")
    toml = (folder / "protocol.toml").read_text()
    toml = toml.replace('name = "active"\n', 'name = "active"\nlabel = "Denosumab 120 mg q4w"\n')
    (folder / "protocol.toml").write_text(toml)
    report_run(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Denosumab 120 mg q4w vs control: time to first SRE" in html
    assert "Denosumab 120 mg q4w (median" in html and "<th>Denosumab 120 mg q4w</th>" in html
    assert "The Denosumab 120 mg q4w arm received denosumab" in html
    assert json.loads((folder / "summary.json").read_text())["comparisons"][0]["arm"] == "active"


def test_numbers_carry_true_minus_signs_and_negative_intervals_read():
    assert _number(-0.0661, 3) == "−0.066" and _number(-0.0004, 3) == "0.000" and _number(1.5, 1) == "1.5"
    assert _interval(-0.066, -0.015, 1, percent=True) == "(−6.6% to −1.5%)"
    assert _interval(-0.066, 0.015, 1, percent=True) == "(−6.6% to 1.5%)"
    assert _interval(0.71, 0.95) == "(0.71–0.95)"


def test_adverse_event_cells_are_nowrap_and_minus_signs_true(run):
    folder, summary, patients, brief = run
    html = (folder / "report.html").read_text(encoding="utf-8")
    section = html[
        html.index('id="table-adverse-events"') : html.index("</table>", html.index('id="table-adverse-events"'))
    ]
    cells = section.count("<td")
    assert (
        cells == section.count('<td class="n">') + section.count("<td>") and section.count('<td class="n">') == 8 * 3
    )  # 8 events x (2 arms + 1 difference)
    assert "td.n { white-space: nowrap;" in html
    shown = re.sub(r"<[^>]*>", "", html)  # the page's text, SVG attributes left out
    assert "–-" not in shown and "(-" not in shown and not re.search(r"(?<![\w-])-\d", shown)
    difference = summary["comparisons"][0]["adverse_events"]["hypocalcaemia"]
    assert difference["ci_low"] < 0  # the interval reads "(−x% to y%)"
    assert f"(−{-100 * difference['ci_low']:.1f}% to " in section


def test_landmark_past_follow_up_is_explained(run):
    folder, summary, patients, brief = run
    summary = json.loads(json.dumps(summary))
    summary["arms"]["active"]["cumulative_incidence_sre"]["24"] = None
    html = render_report(summary, patients, brief, None)
    longest = patients.loc[patients["arm"] == "active", "followup_days"].max() / DAYS_PER_MONTH
    assert f"{longest:.1f}" == "32.9"
    assert "The cumulative incidence at 24 months is not estimable in active (longest follow-up 32.9 months)" in html
    assert html.count("(past follow-up*)") == 1


def test_markers_figure_shows_each_marker_over_time(run):
    _, summary, _, brief = run
    assert markers_figure(summary, brief) is None  # the synthetic run has no markers
    summary = json.loads(json.dumps(summary))
    visit = {
        "untx_nmol_mmol": 64.0,
        "bsap_ug_l": 20.0,
        "calcium_mmol_l": 2.4,
        "untx_change_pct": 0.0,
        "bsap_change_pct": 0.0,
        "untx_below_50": 0.2,
        "n": 300,
    }
    for arm in summary["arms"]:
        summary["arms"][arm]["markers"] = {"0": visit, "13": {**visit, "untx_nmol_mmol": 16.0}}
    figure = markers_figure(summary, brief)
    assert [ax.get_ylabel() for ax in figure.axes] == ["uNTx/Cr, nmol/mmol", "BSAP, µg/L", "Calcium, mmol/L"]
    np.testing.assert_array_equal(figure.axes[0].lines[0].get_ydata(), [64.0, 16.0])
    np.testing.assert_array_equal(figure.axes[0].lines[0].get_xdata(), [0.0, 13.0])
    assert overlaps(drawn_texts(figure)) == []


def test_uncertainty_block_is_shown_beside_the_monte_carlo_interval(run):
    _, summary, patients, brief = run
    summary = json.loads(json.dumps(summary))
    summary["uncertainty"] = {
        "parameter_draws": 40,
        "percentiles": [2.5, 50, 97.5],
        "arms": {
            "active": {
                "proportion_with_sre": {"median": 0.61, "low": 0.48, "high": 0.73},
                "median_time_to_first_sre_months": {"median": 8.0, "low": 5.5, "high": 11.25},
            }
        },
        "comparisons": [
            {
                "arm": "active",
                "reference": "control",
                "time_to_first_sre": {
                    "median": 0.88,
                    "low": 0.61,
                    "high": 1.24,
                    "prediction": {"median": 0.87, "low": 0.52, "high": 1.41},
                },
            }
        ],
    }
    summary["uncertainty"]["arms"]["active"]["proportion_with_sre"]["prediction"] = {
        "median": 0.6,
        "low": 0.405,
        "high": 0.79,
    }
    summary["uncertainty"]["arms"]["active"]["median_time_to_first_sre_months"]["prediction"] = {
        "median": 8.1,
        "low": 4.9,
        "high": None,
    }
    rows = uncertainty_rows(summary, {"active": "Denosumab", "control": "Zoledronic acid"})
    arm = summary["arms"]["active"]
    lo, hi = arm["proportion_with_sre_ci"]
    assert rows[0] == (
        "Denosumab",
        "Patients with ≥ 1 SRE",
        f"{100 * arm['proportion_with_sre']:.1f}% ({100 * lo:.1f}%–{100 * hi:.1f}%)",
        "61.0% (48.0%–73.0%)",
        "60.0% (40.5%–79.0%)",
    )
    assert rows[1][3:] == ("8.0 (5.5–11.2)", "8.1 (4.9–—)")  # 11.25 rounds half to even; an open upper tail
    hr = summary["comparisons"][0]["time_to_first_sre"]
    assert rows[2] == (
        "Denosumab vs Zoledronic acid",
        "Time to first SRE, HR",
        f"{hr['hazard_ratio']:.2f} ({hr['ci_low']:.2f}–{hr['ci_high']:.2f})",
        "0.88 (0.61–1.24)",
        "0.87 (0.52–1.41)",
    )
    html = render_report(summary, patients, brief, None)
    assert 'id="table-uncertainty"' in html and "Over 40 parameter draws, median (2.5th–97.5th percentile)" in html
    assert '<td class="n">0.87 (0.52–1.41)</td>' in html
    # a block written before the prediction existed: a dash in its column
    del summary["uncertainty"]["comparisons"][0]["time_to_first_sre"]["prediction"]
    assert uncertainty_rows(summary, {})[2][4] == "—"
    assert uncertainty_rows({k: v for k, v in summary.items() if k != "uncertainty"}, {}) == []


def test_write_figures_writes_each_figure_atomically(run, tmp_path):
    _, summary, patients, brief = run
    figures = report_figures(summary, patients, brief)
    paths = write_figures(tmp_path, {"forest": figures["forest"], "sre_bars": figures["sre_bars"]}, "pdf")
    assert paths == [tmp_path / "figures" / "forest.pdf", tmp_path / "figures" / "sre_bars.pdf"]
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in paths)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["forest.pdf", "sre_bars.pdf"]  # no temporary
    with pytest.raises(UserInputError, match="figure format 'jpg' is not one of png, pdf, svg"):
        write_figures(tmp_path, figures, "jpg")


@pytest.mark.slow
def test_cli_report_format_writes_every_figure(tmp_path):
    folder = make_run_folder(tmp_path / "export")
    result = CliRunner().invoke(app, ["report", str(folder), "--format", "png"])
    assert result.exit_code == 0, result.output
    assert f"wrote the figures to {folder / 'figures'} as png" in result.output
    files = sorted(p.name for p in (folder / "figures").iterdir())
    assert files == ["cif.png", "forest.png", "km_os.png", "km_sre.png", "sre_bars.png"]  # no temporary left
    assert all((folder / "figures" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)


@pytest.mark.slow
def test_report_stays_under_one_megabyte_for_a_large_trial(tmp_path):
    folder = make_run_folder(tmp_path / "large", n=5000)
    patients = pd.read_parquet(folder / "patients.parquet")  # the synthetic normal can go below 0 at this size
    patients["creatinine_clearance_ml_min"] = patients["creatinine_clearance_ml_min"].clip(lower=5.0)
    patients.to_parquet(folder / "patients.parquet")
    _, report = report_run(folder)
    assert 300_000 < report.stat().st_size < 1_000_000


def test_long_arm_labels_keep_the_curves_visible(run):
    # a five-arm version-2 trial with long arm names collapsed the curve axes ("constrained_layout not
    # applied"): two legend entries a row were wider than the figure
    _, summary, patients, brief = run
    long_brief = {
        **brief,
        "arms": [{**arm, "label": f"{arm['name']}_then_a_long_schedule_description"} for arm in brief["arms"]],
    }
    figure = kaplan_meier_figure(patients, summary, long_brief, "time_to_first_sre")
    svg_element(figure)  # warnings are errors: a collapsed layout fails here
    (legend,) = figure.legends
    assert legend._ncols == 1  # one entry a row: the longest label is ~60 characters
    n_arms = len(legend.get_texts())
    short = kaplan_meier_figure(patients, summary, brief, "time_to_first_sre")
    # the figure grows by the legend rows added (0.2 inch each)
    assert figure.get_size_inches()[1] == pytest.approx(short.get_size_inches()[1] + 0.2 * (n_arms - 1), abs=1e-9)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    curves = figure.axes[0].get_window_extent(canvas.get_renderer())
    assert curves.height > 100  # pixels: the curves keep their axes


def texts_outside(figure: Figure, boxes) -> list[str]:
    """Texts of ``boxes`` (:func:`drawn_texts`) reaching past the figure's edges."""
    width, height = figure.bbox.width, figure.bbox.height
    return [s for s, b in boxes if b.x0 < 0 or b.y0 < 0 or b.x1 > width or b.y1 > height]


def test_long_arm_labels_stay_inside_every_figure(run):
    # with constrained layout, labels of ~45 characters ran past the figure's edges (the curve
    # figures' legend past the right one), cut in the PNG files, which have no tight bounding box
    _, summary, patients, brief = run
    long_brief = {
        **brief,
        "arms": [{**arm, "label": f"{arm['name']} arm, a long schedule description"} for arm in brief["arms"]],
    }
    for name, figure in report_figures(summary, patients, long_brief).items():
        if figure is None:
            continue
        assert figure.get_layout_engine() is None, name  # laid out when built: one draw per file
        boxes = drawn_texts(figure)
        assert texts_outside(figure, boxes) == [], name
        assert overlaps(boxes) == [], name


def twelve_arm_toml() -> str:
    """A 12-arm protocol (placebo, zoledronic acid, denosumab in turn) whose arm labels are ~50 characters."""
    arms = []
    for i in range(12):
        drug = ("none", "zoledronic_acid", "denosumab")[i % 3]
        dose = {
            "none": "",
            "zoledronic_acid": "dose_mg = 4.0\nevery_weeks = 4.0\n",
            "denosumab": "dose_mg = 120.0\nevery_weeks = 4.0\n",
        }
        label = f"Arm {i + 1}: {drug.replace('_', ' ')} long descriptive label variant {i}"
        arms.append(f'[[arm]]\nname = "arm{i:02d}"\nlabel = "{label}"\ndrug = "{drug}"\n{dose[drug]}')
    return (
        '[trial]\nname = "twelve"\npatients = 360\nhorizon_months = 18\naccrual_months = 3\n\n'
        "[cohort]\nprimary = { breast = 0.5, prostate = 0.5 }\n\n"
        + "\n".join(arms)
        + '\n[analysis]\nreference_arm = "arm00"\nlandmarks_months = [12]\nmarker_weeks = [12]\n'
    )


@pytest.mark.slow
def test_twelve_arms_with_long_labels_lay_out_inside_their_figures(tmp_path):
    # constrained layout collapsed the curve axes of such a run (its warning is an error here) and the
    # rotated arm labels of the SRE bars ran past the figure's left edge; now each figure is laid out once
    # from its measured texts: every drawn text inside the figure, none over another, one draw per file
    protocol = tmp_path / "twelve.toml"
    protocol.write_text(twelve_arm_toml())
    result = CliRunner().invoke(app, ["run", str(protocol), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "run"
    summary = json.loads((folder / "summary.json").read_text())
    patients = read_table(folder, "patients.parquet", PATIENT_SCHEMA, unique=KEY)
    figures = report_figures(summary, patients, protocol_brief(read_protocol(folder)))
    assert all(figure is not None for figure in figures.values())
    for name, figure in figures.items():
        assert figure.get_layout_engine() is None, name
        boxes = drawn_texts(figure)
        assert texts_outside(figure, boxes) == [], name
        assert overlaps(boxes) == [], name
        # the last arm is drawn: in the legend and the risk table or bar labels; its 3 + 2 (by primary) ratios
        shown = sum(s.startswith("Arm 12: denosumab long descriptive label variant 11") for s, _ in boxes)
        assert shown == {"markers": 1, "forest": 5}.get(name, 2), name


def test_svg_curves_are_compact_whatever_the_patients(run):
    # the page of a 100,000-patient, three-arm run passed 1 MB (1.13 MB): ~1,800 censor marks were an
    # SVG <use> element each (~120 bytes), and three arms drew 600 points each
    _, summary, patients, brief = run
    svg = svg_element(kaplan_meier_figure(patients, summary, brief, "time_to_first_sre"))
    assert svg.count("<use") == 14  # 6 + 6 tick marks and 2 bands; the censor marks are 2 paths
    # at most 1,200 points a figure: 600 each for 2 arms, 400 for 3, 100 (the least) for 12
    assert [plot_points(n) for n in (1, 2, 3, 4, 12, 20)] == [600, 600, 400, 300, 100, 100]
