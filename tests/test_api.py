"""The Python API: vtrial.load_protocol, vtrial.simulate and the Trial it returns."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from matplotlib.figure import Figure

import vtrial
from tests.conftest import two_arm_protocol
from vtrial.cli import main
from vtrial.vocabulary import DAYS_PER_MONTH

PATIENTS = 60


@pytest.fixture(scope="module")
def protocol_file(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("api") / "small.toml"
    path.write_text(two_arm_protocol("small", PATIENTS))
    return path


@pytest.fixture(scope="module")
def trial(protocol_file) -> vtrial.Trial:
    return vtrial.simulate(vtrial.load_protocol(protocol_file), seed=11)


def test_public_names() -> None:
    assert vtrial.__all__ == ["Trial", "UserInputError", "__version__", "load_protocol", "simulate"]
    assert all(hasattr(vtrial, name) for name in vtrial.__all__)


def test_import_is_light() -> None:
    """``import vtrial`` loads none of the heavy libraries (they come with the first trial)."""
    code = (
        "import sys, vtrial; print(sorted(m for m in ('numpy', 'pandas', 'lifelines', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_path_does_not_import_lifelines_or_scipy_stats(tmp_path) -> None:
    """Simulating, analysing and reporting a run needs neither lifelines nor scipy.stats/optimize (~1.5 s of imports)."""
    code = (
        "import sys, vtrial, numpy as np\n"
        "trial = vtrial.simulate(vtrial.load_protocol(sys.argv[1]), patients=60, seed=1)\n"
        "trial.save(sys.argv[2])\n"
        "from vtrial.report import report_run\n"
        "report_run(sys.argv[2])\n"
        "print(sorted(m for m in ('lifelines', 'scipy.stats', 'scipy.optimize') if m in sys.modules))"
    )
    protocol = Path(__file__).parent.parent / "protocols" / "breast.toml"
    args = [sys.executable, "-c", code, str(protocol), str(tmp_path / "run")]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_load_protocol_from_dict_equals_file(protocol_file) -> None:
    import tomllib

    as_dict = tomllib.loads(protocol_file.read_text())
    assert vtrial.load_protocol(as_dict) == vtrial.load_protocol(protocol_file)


def test_load_protocol_error_points_to_docs() -> None:
    with pytest.raises(vtrial.UserInputError) as error:
        vtrial.load_protocol({"trial": {"name": "x"}})
    assert "docs/protocol.md" in str(error.value)


def test_tables_and_summary(trial: vtrial.Trial) -> None:
    assert len(trial.patients) == PATIENTS  # parallel design: one row per patient
    assert sorted(trial.patients["arm"].unique()) == ["placebo", "zoledronic_acid"]
    assert trial.events["counted"].dtype == bool
    assert set(trial.markers["week"]) >= {0}
    assert trial.summary["trial"] == "small"
    assert list(trial.summary["arms"]) == ["placebo", "zoledronic_acid"]


def test_kaplan_meier_is_in_months(trial: vtrial.Trial) -> None:
    fits = trial.kaplan_meier("os")
    assert list(fits) == ["placebo", "zoledronic_acid"]
    placebo = trial.patients[trial.patients["arm"] == "placebo"]
    kmf = fits["placebo"]
    assert isinstance(kmf, KaplanMeierFitter)
    # the last time of the fit is the longest follow-up, in months (days / 30.4375)
    assert kmf.timeline[-1] == pytest.approx(placebo["followup_days"].max() / DAYS_PER_MONTH)
    assert kmf.timeline[-1] <= 3.0 + 1e-9  # the 3-month horizon
    # the same fit as lifelines on the months by hand
    by_hand = KaplanMeierFitter().fit(placebo["followup_days"] / DAYS_PER_MONTH, placebo["died"])
    np.testing.assert_allclose(kmf.survival_function_.to_numpy(), by_hand.survival_function_.to_numpy())
    with pytest.raises(vtrial.UserInputError, match="unknown endpoint 'pfs'"):
        trial.kaplan_meier("pfs")


def test_cumulative_incidence_by_arm(trial: vtrial.Trial) -> None:
    curves = trial.cumulative_incidence()
    placebo = trial.patients[trial.patients["arm"] == "placebo"]
    curve = curves["placebo"]
    assert curve.index.name == "months" and curve.index[-1] <= 3.0 + 1e-9
    # with nobody censored before the last SRE, the incidence at the end is the fraction with an SRE
    # (the curve is non-decreasing and at most that fraction)
    assert np.all(np.diff(curve.to_numpy()) >= 0)
    assert curve.iloc[-1] <= placebo["first_sre_day"].notna().mean() + 1e-12


def test_compare_is_the_summary_as_a_table(trial: vtrial.Trial) -> None:
    table = trial.compare()
    assert list(table.columns) == [
        "arm",
        "reference",
        "endpoint",
        "measure",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "reason",
    ]
    row = table[table["endpoint"] == "overall_survival"].iloc[0]
    source = trial.summary["comparisons"][0]["overall_survival"]
    assert (row["arm"], row["reference"], row["measure"]) == ("zoledronic_acid", "placebo", "hazard_ratio")
    if source["hazard_ratio"] is None:
        assert np.isnan(row["estimate"]) and row["reason"] == source["reason"]
    else:
        assert row["estimate"] == source["hazard_ratio"] and row["p_value"] == source["p_value"]
    assert set(table["measure"]) <= {"hazard_ratio", "rate_ratio", "difference_months", "risk_difference"}


def test_plot_survival_draws_one_curve_per_arm(trial: vtrial.Trial) -> None:
    ax = Figure().add_subplot()
    assert trial.plot_survival(ax=ax) is ax
    assert [line.get_label() for line in ax.get_lines()] == ["placebo", "zoledronic_acid"]
    assert ax.get_xlabel() == "Months since randomisation"


def test_save_writes_the_cli_run_folder(trial: vtrial.Trial, protocol_file, tmp_path) -> None:
    """``Trial.save`` and ``vtrial run`` with the same seed write the same files, byte for byte."""
    saved = trial.save(tmp_path / "saved")
    with pytest.raises(SystemExit) as done:
        main(["run", str(protocol_file), "--out", str(tmp_path / "cli"), "--seed", "11", "--jobs", "1", "--quiet"])
    assert done.value.code == 0
    same = ["patients.parquet", "events.parquet", "markers.parquet", "protocol.toml", "summary.json"]
    match, mismatch, errors = filecmp.cmpfiles(saved, tmp_path / "cli", same, shallow=False)
    assert sorted(match) == sorted(same) and not mismatch and not errors
    # the manifests differ at most in when, how long and by which command (report.html shows them: not compared)
    volatile = {"started_utc", "wall_time_s", "command"}
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (saved, tmp_path / "cli")]
    assert [{k: v for k, v in m.items() if k not in volatile} for m in manifests] == [
        {k: v for k, v in manifests[0].items() if k not in volatile}
    ] * 2
    with pytest.raises(vtrial.UserInputError, match="already exists"):
        trial.save(saved)
    trial.save(saved, force=True)
    again = vtrial.Trial.from_folder(saved)
    assert again.summary == trial.summary
    assert again.patients.equals(trial.patients)


def test_report_writes_html(trial: vtrial.Trial, tmp_path) -> None:
    path = trial.report(tmp_path / "report.html")
    html = path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "zoledronic_acid" in html
