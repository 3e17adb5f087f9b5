"""Tests of vtrial.report: the page renders offline with every figure and table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_analysis import make_run_folder

from vtrial.report import forest_rows, report_run, template_environment, write_report


class _Page(HTMLParser):
    """Collects element ids, figures holding an <svg>, and every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.figures_with_svg: set[str] = set()
        self.external: list[str] = []
        self.tags: list[str] = []
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs and tag in ("table", "figure", "section"):
            self.ids.add(attrs["id"])
        if tag == "figure":
            self._figure = attrs.get("id")
        if tag == "svg" and self._figure:
            self.figures_with_svg.add(self._figure)
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name) or ""
            if value and not value.startswith("#"):
                self.external.append(value)
        if tag in ("link", "script", "img", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = make_run_folder(tmp_path_factory.mktemp("runs") / "synthetic")
    report_run(folder)
    return folder


def test_report_has_every_figure_and_table_and_nothing_external(run):
    html = (run / "report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    figures = {"figure-km-sre", "figure-km-os", "figure-cif", "figure-forest", "figure-sre-bars"}
    assert figures <= page.figures_with_svg
    assert {
        "table-baseline",
        "table-endpoints",
        "table-comparisons",
        "table-adverse-events",
        "table-manifest",
    } <= page.ids
    assert page.external == []
    assert "url(http" not in html and "@import" not in html
    # The number-at-risk table is drawn under each Kaplan–Meier plot and the cumulative incidence.
    assert html.count("Number at risk") == 3
    assert "Synthetic two-arm trial" in html and "denosumab 120.0 mg every 4.0 weeks" in html


def test_report_run_twice_gives_byte_identical_summary(run):
    first = (run / "summary.json").read_bytes()
    report_run(run)
    assert (run / "summary.json").read_bytes() == first
    assert json.loads(first)["trial"] == "synthetic"


@pytest.mark.slow  # two new interpreters: ~10 s
def test_report_after_the_warm_up_is_byte_identical(run):
    # warm_up runs while a run's workers simulate: the report written after it, in a fresh
    # interpreter, is the report written without it
    script = (
        "import sys; from pathlib import Path; from vtrial import report; "
        "sys.argv[2] == 'warm' and report.warm_up(); "
        "print(report.write_report(Path(sys.argv[1])).read_text(encoding='utf-8'), end='')"
    )
    pages = [
        subprocess.run(
            [sys.executable, "-c", script, str(run), mode], check=True, capture_output=True, text=True
        ).stdout
        for mode in ("cold", "warm")
    ]
    assert pages[0] == pages[1] and pages[0].count("<svg") >= 5
    assert template_environment() is template_environment()  # one per process: a template compiles once


def test_forest_rows_cover_overall_and_subgroups(run):
    summary = json.loads((run / "summary.json").read_text())
    labels = [row["label"] for row in forest_rows(summary)]
    # Three overall ratios and one per primary (breast, prostate).
    assert len(labels) == 5 and labels[-1] == "active vs control: first SRE, prostate"


def test_single_arm_report_renders_without_comparisons(tmp_path):
    run = make_run_folder(tmp_path / "single")
    toml = (run / "protocol.toml").read_text()
    (run / "protocol.toml").write_text(
        toml[: toml.index('[[arm]]\nname = "active"')] + toml[toml.index("[analysis]") :]
    )
    patients = pd.read_parquet(run / "patients.parquet")
    patients[patients["arm"] == "control"].to_parquet(run / "patients.parquet")
    events = pd.read_parquet(run / "events.parquet")  # rows of an arm the protocol lacks are refused
    events[events["arm"] == "control"].to_parquet(run / "events.parquet")
    (run / "manifest.json").unlink()
    page = _Page()
    page.feed(write_report(run).read_text(encoding="utf-8"))
    assert "figure-forest" not in page.ids and "table-comparisons" not in page.ids
    assert {"figure-km-sre", "figure-km-os", "figure-cif", "figure-sre-bars"} <= page.figures_with_svg


CHROMIUM = Path("/usr/bin/chromium")
#: Flags of a headless Chromium that touches no network and no profile but its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Run in the page once it is laid out: figure boxes, overlapping SVG texts, wrapped number cells.
LAYOUT_SCRIPT = """<script>
const out = {width: document.documentElement.clientWidth, figures: [], overlaps: [], wrapped: []};
for (const figure of document.querySelectorAll("figure")) {
  const svg = figure.querySelector("svg"), box = svg.getBoundingClientRect();
  out.figures.push({id: figure.id, width: box.width, height: box.height, left: box.left, right: box.right});
  const texts = [...svg.querySelectorAll("text")].map(t => [t.textContent, t.getBoundingClientRect()])
    .filter(([s, b]) => s.trim() && b.width > 0);
  texts.forEach(([a, p], i) => texts.slice(i + 1).forEach(([b, q]) => {
    const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
    if (w > 1 && h > 1) out.overlaps.push([figure.id, a, b]);
  }));
}
for (const td of document.querySelectorAll("#table-adverse-events td:not(:first-child), #table-comparisons td:not(:first-child)")) {
  const range = document.createRange(); range.selectNodeContents(td);
  const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
  if (lines.size > 1) out.wrapped.push(td.textContent.trim());
}
const pre = document.createElement("pre"); pre.id = "layout"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def chromium(tmp_path: Path, page: Path, *args: str) -> str:
    """Run headless Chromium on ``page`` with a fresh profile; its standard output."""
    done = subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
        text=True,
    )
    return done.stdout


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_report_paints_in_headless_chromium(run, tmp_path):
    import matplotlib.image

    shot = tmp_path / "shot.png"
    chromium(tmp_path, run / "report.html", f"--screenshot={shot}", "--window-size=1200,2000")
    pixels = matplotlib.image.imread(shot)
    assert np.ptp(pixels[..., :3]) > 0.5  # not a blank page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_report_layout_in_headless_chromium(run, tmp_path):
    """At a 640-pixel window (half a laptop screen): every figure visible and inside the width, no SVG texts overlapping, no number cell wrapped."""
    html = (run / "report.html").read_text(encoding="utf-8")
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", LAYOUT_SCRIPT + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, page, "--window-size=640,1600", "--dump-dom")
    layout = json.loads(unescape(re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S).group(1)))
    ids = [f["id"] for f in layout["figures"]]
    assert ids == ["figure-km-sre", "figure-cif", "figure-km-os", "figure-sre-bars", "figure-forest"]
    for figure in layout["figures"]:
        assert figure["width"] > 300 and figure["height"] > 100, figure
        assert 0 <= figure["left"] and figure["right"] <= layout["width"], figure
    assert layout["overlaps"] == []
    assert layout["wrapped"] == []


def test_endpoint_table_shows_radiotherapy_retreatment_and_pain_response_or_their_reason(run):
    html = (run / "report.html").read_text(encoding="utf-8")
    # the synthetic run has no lesion column: each cell (2 arms x re-treatment and pain response) gives the reason
    assert html.count("— (the events table has no lesion column") == 4
    assert "Irradiated lesions irradiated again" in html and "Pain response 3 months after" in html
    arm = {
        "radiotherapy_retreatment": 0.04,
        "radiotherapy_retreatment_detail": {"irradiated_lesions": 225, "retreated_lesions": 9},
        "pain_response": {"overall": 0.546, "complete": 0.163},
        "pain_response_detail": {"assessed_lesions": 1024, "responded_lesions": 559, "complete_lesions": 167},
    }
    environment = template_environment()
    assert environment.filters["retreatment"](arm) == "4.0% (9 of 225 lesions)"
    assert environment.filters["pain_response"](arm) == "54.6% (complete 16.3%) of 1,024 lesions"
    # a summary from before the pain response was reported
    assert environment.filters["pain_response"]({}) == "— (not in this summary)"


def test_report_shows_markers_when_the_run_has_them(tmp_path):
    run = make_run_folder(tmp_path / "markers")
    patients = pd.read_parquet(run / "patients.parquet")
    pd.DataFrame(
        {
            "patient_id": np.repeat(patients["patient_id"].to_numpy(), 2),
            "arm": np.repeat(patients["arm"].to_numpy(), 2),
            "week": np.tile([0, 13], len(patients)),
            "untx_nmol_mmol": np.tile([64.0, 16.0], len(patients)),
            "bsap_ug_l": np.tile([20.0, 15.0], len(patients)),
            "calcium_mmol_l": np.tile([2.4, 2.3], len(patients)),
        }
    ).to_parquet(run / "markers.parquet")
    report_run(run)
    page = _Page()
    html = (run / "report.html").read_text(encoding="utf-8")
    page.feed(html)
    assert "table-markers" in page.ids
    assert (
        '<td class="n">16.0</td>' in html
        and '<td class="n">−75.0%</td>' in html
        and '<td class="n">−25.0%</td>' in html
    )
    assert 'id="figure-markers"' in html


def test_report_states_non_inferiority_against_the_protocols_margins(run, tmp_path):
    """No margin in the protocol: no statement; with ``[analysis] non_inferiority_hr`` the page says whether the upper
    bound of the hazard ratio (from the same summary) is below it."""
    assert "note-non-inferiority" not in (run / "report.html").read_text(encoding="utf-8")
    folder = make_run_folder(tmp_path / "ni")
    toml = (folder / "protocol.toml").read_text()
    (folder / "protocol.toml").write_text(toml.replace("[analysis]\n", "[analysis]\nnon_inferiority_hr = 1.08\n", 1))
    report_run(folder)
    (comparison,) = json.loads((folder / "summary.json").read_text())["comparisons"]
    upper = comparison["time_to_first_sre"]["ci_high"]
    assert comparison["non_inferiority"] == {"hazard_ratio": {"margin": 1.08, "ci_high": upper, "met": upper < 1.08}}
    html = " ".join((folder / "report.html").read_text(encoding="utf-8").split())
    verdict = "met" if upper < 1.08 else "not met"
    assert f"hazard ratio of time to first SRE {upper:.3f} against 1.08: <strong>{verdict}</strong>." in html


def test_report_of_a_run_without_markers_has_no_marker_table(run):
    assert not (run / "markers.parquet").exists()
    page = _Page()
    page.feed((run / "report.html").read_text(encoding="utf-8"))
    assert "table-markers" not in page.ids and "table-adverse-events" in page.ids


@pytest.mark.slow  # three reports
def test_report_size_does_not_grow_with_the_patients(tmp_path):
    """Curves are drawn through their change points on a fixed grid (PLOT_POINTS), so the page grows
    with the patients only until every grid point is a change point, then stays: measured 243 kB at
    300 patients, 603 kB at 6,000, 649 kB at 20,000 (1.08x for 3.3x the patients; with a censor mark
    an SVG element each: 262, 674 and 738 kB); always under 1 MB."""
    sizes = []
    for n in (300, 6000, 20000):
        folder = make_run_folder(tmp_path / f"n{n}", n=n)
        report_run(folder)
        sizes.append((folder / "report.html").stat().st_size)
    assert max(sizes) < 1_000_000, sizes
    assert sizes[2] < 1.15 * sizes[1], sizes
