"""Calibration: tolerance rules, the target table, the replica protocols and ``vtrial validate``."""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from vtrial.calibration.fit import EDGE, FITTED, Coordinates, fit
from vtrial.calibration.replicas import TRIALS_DIR, ArmData, Observation
from vtrial.calibration.statistics import (
    proportion_with_sre_by,
    survival_after_sre_at,
    survival_sre_free_at,
)
from vtrial.calibration.targets import (
    CHECKS,
    NOT_SIMULATED,
    Check,
    published,
    residual,
    target_rows,
    tolerance,
    version_rows,
)
from vtrial.calibration.validate import COLUMNS, replica_names
from vtrial.model.parameters import REGISTRY

SHARED_TARGETS = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "targets.csv"


def vtrial(*args: str) -> subprocess.CompletedProcess:
    """The real command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "vtrial.cli", *args], capture_output=True, text=True, timeout=600)


# --- tolerance rules --------------------------------------------------------------------------


def test_ci_rule_uses_the_published_interval() -> None:
    tol = tolerance("ratio", "0.82", (0.71, 0.95))
    assert (tol.low, tol.high, tol.rule) == (0.71, 0.95, "inside the published 95% CI")
    assert tol.contains(0.71) and tol.contains(0.95) and not tol.contains(0.96) and not tol.contains(0.70)


def test_proportion_without_ci_is_within_five_points_and_not_below_zero() -> None:
    tol = tolerance("proportion", "36.5")
    assert (tol.low, tol.high) == (31.5, 41.5)
    assert tol.contains(41.4) and not tol.contains(41.6)
    assert tolerance("proportion", "0.9").low == 0.0


def test_median_mean_and_ratio_without_ci_are_within_twenty_percent() -> None:
    for kind in ("median", "mean", "ratio"):
        tol = tolerance(kind, "26.4")
        assert tol.low == pytest.approx(21.12) and tol.high == pytest.approx(31.68)
    assert tolerance("median", "26.4").contains(31.6) and not tolerance("median", "26.4").contains(31.7)


def test_range_means_inside_the_range() -> None:
    tol = tolerance("median", "19-25")
    assert (tol.centre, tol.low, tol.high, tol.rule) == (22.0, 19.0, 25.0, "inside the published range")
    assert tol.contains(19.0) and not tol.contains(25.1)


def test_not_reached_is_matched_only_by_a_median_not_reached() -> None:
    tol = tolerance("median", "not reached")
    assert tol.contains(None) and not tol.contains(30.0)
    assert residual(tol, 30.0, 34.0) is None


def test_residual_is_in_half_widths_of_the_tolerance_on_the_value_side() -> None:
    tol = tolerance("ratio", "0.82", (0.71, 0.95))
    assert residual(tol, 0.95, 0.0) == pytest.approx(1.0)
    assert residual(tol, 0.60, 0.0) == pytest.approx(-2.0)
    # a median not reached counts as the longest follow-up
    assert residual(tolerance("median", "10"), None, 14.0) == pytest.approx(2.0)


# --- the target table -------------------------------------------------------------------------


def test_every_target_row_is_checked_or_listed_as_not_simulated() -> None:
    ids = set(target_rows())
    checked = {c.target for c in CHECKS}
    assert checked | set(NOT_SIMULATED) == ids
    assert not checked & set(NOT_SIMULATED)
    assert all(reason for reason in NOT_SIMULATED.values())


def test_shipped_targets_keep_their_sources() -> None:
    rows = version_rows(1)
    assert all(row["source"] for row in rows.values())
    if SHARED_TARGETS.exists():
        with SHARED_TARGETS.open(encoding="utf-8") as stream:
            assert {r["id"]: r for r in csv.DictReader(stream)} == rows


def test_checks_read_the_published_cells() -> None:
    by_key = {(c.target, c.label): c for c in CHECKS}
    assert published(by_key["STO-03", "denosumab vs zoledronic acid"]).ci == (0.71, 0.95)
    assert published(by_key["STO-02", "zoledronic_acid"]).text == "26.4"
    assert published(by_key["NH-04", "after a first SRE"]).text == "40"
    assert published(by_key["NH-02", "untreated"]).ci == (50.0, 53.0)
    # FIZ-02's CI belongs to the hazard ratio, not to the medians
    assert published(by_key["FIZ-02", "zoledronic_acid"]).ci is None


# --- statistics on hand-made arms -------------------------------------------------------------


def _arm(followup: list[float], died: list[bool], first_sre: list[float]) -> dict[str, Observation]:
    data = ArmData(np.array(followup), np.array(died), np.array(first_sre), np.ones(len(followup)), 0, 0, 0)
    return {"r": Observation({}, {"a": data})}


def test_crude_proportion_with_sre_by_a_landmark() -> None:
    obs = _arm([400.0, 400.0, 400.0, 400.0], [False] * 4, [100.0, 350.0, 380.0, np.nan])
    check = Check("X", "a", "value", "proportion", "proportion_with_sre_by", ("r",), "a", 12.0)
    assert proportion_with_sre_by(obs, check).value == pytest.approx(50.0)  # 12 months = 365.25 days


def test_survival_without_sre_censors_at_the_first_sre_and_after_sre_starts_there() -> None:
    # patient 0 dies at 100 without SRE; patient 1 has an SRE at 50 and dies at 300; 2 and 3 survive
    obs = _arm([100.0, 300.0, 500.0, 500.0], [True, True, False, False], [np.nan, 50.0, np.nan, np.nan])
    free = Check("X", "a", "value", "proportion", "survival_sre_free_at", ("r",), "a", 12.0)
    # at risk 4 at day 50: patient 1 censored; death at 100 with 3 at risk -> 2/3
    assert survival_sre_free_at(obs, free).value == pytest.approx(100 * 2 / 3)
    after = Check("X", "a", "value", "proportion", "survival_after_sre_at", ("r",), "a", 6.0)
    # the one patient with an SRE dies 250 days after it: alive at 6 months (182.6 days)
    assert survival_after_sre_at(obs, after).value == pytest.approx(100.0)


# --- the fit's coordinates ---------------------------------------------------------------------


def test_fit_coordinates_map_the_real_line_into_the_plausible_ranges() -> None:
    coords = Coordinates(("fracture_base_hazard", "zoledronic_acid_emax"))  # 2e-5..2e-3 and 1..5
    values = np.array([1e-4, 2.5])
    assert coords.values(coords.z_of(values)) == pytest.approx(values)
    assert coords.values(np.array([-50.0, 50.0])) == pytest.approx([2e-5, 5.0])
    # a start at the end of its range moves EDGE of the log-range inside: 2e-5 * 100**0.02
    assert coords.values(coords.z_of(np.array([2e-5, 5.0])))[0] == pytest.approx(2e-5 * 100**EDGE)


def test_fitted_parameters_have_positive_ranges_and_stay_inside_them() -> None:
    for name in FITTED:
        p = REGISTRY[name]
        assert 0 < p.low <= p.value <= p.high, name


def test_a_small_fit_keeps_its_best_point_inside_the_range_and_writes_it(tmp_path: Path) -> None:
    import json

    result = fit(tmp_path, patients=40, evaluations=4, jobs=1, names=("radiation_hazard",))
    p = REGISTRY["radiation_hazard"]
    assert result.finished and result.evaluations == 4
    assert p.low <= result.fitted["radiation_hazard"] <= p.high
    assert result.cost <= result.cost_start  # the best point seen, the start included
    assert result.cost == min(h["cost"] for h in result.history)
    written = json.loads((tmp_path / "calibration.json").read_text())
    assert written["fitted"] == result.fitted and written["finished"] is True


# --- replica protocols and the command line ----------------------------------------------------


def test_every_replica_passes_vtrial_check() -> None:
    paths = sorted(str(p) for p in TRIALS_DIR.glob("*.toml"))
    assert {Path(p).stem for p in paths} == set(replica_names(CHECKS))
    result = vtrial("check", *paths)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok: ") == len(paths)


def test_validate_writes_the_table_csv_and_html(tmp_path: Path) -> None:
    out = tmp_path / "validate"
    result = vtrial("validate", "--patients", "40", "--jobs", "2", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "validate.csv")
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == len(CHECKS)
    assert list(zip(table["target"], table["compared"])) == [(c.target, c.label) for c in CHECKS]
    assert table["inside"].dtype == bool
    missing = pd.read_csv(out / "not_simulated.csv")
    assert set(missing["target"]) == set(NOT_SIMULATED)
    html = (out / "validate.html").read_text(encoding="utf-8")
    assert "<svg" in html and "STO-03" in html and "NH-19" in html
    assert "targets inside tolerance" in result.stdout


def test_the_validation_page_leaves_the_report_filters_alone() -> None:
    # the page templates share one environment per process: a validation page rendered before a report must not
    # change the report's number filter (it once replaced it with a one-argument version, and reports failed)
    from vtrial.calibration.validate import render_html
    from vtrial.report import template_environment

    row = dict.fromkeys(COLUMNS, "x") | {
        "version": 1,
        "unit": "ratio",
        "published": "0.82",
        "tolerance_low": 0.7123,
        "tolerance_high": np.nan,
        "simulated": 0.76038,
        "simulated_ci_low": 0.654,
        "simulated_ci_high": 0.884,
        "inside": True,
    }
    settings = {"patients": 10, "replicate": 0, "parameters": {}}
    html = render_html(pd.DataFrame([row]), pd.DataFrame(columns=["target", "why"]), settings)
    assert "0.712 – —" in html and "0.76" in html  # three significant digits, a dash for a missing bound
    assert template_environment().filters["number"](-1.234, 1) == "\u22121.2"


def _short_replicas(directory: Path) -> None:
    """Copies of the replicas cut to 2 months: the survival medians (NH-11..14) cannot be reached."""
    directory.mkdir()
    for path in TRIALS_DIR.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        data["trial"].update(horizon_months=2.0, accrual_months=0.0)
        analysis = data.setdefault("analysis", {})
        analysis["landmarks_months"] = [1.0]
        analysis["marker_weeks"] = [w for w in analysis.get("marker_weeks", []) if w <= 8]  # 2 months: 8.7 weeks
        (directory / path.name).write_text(tomli_w.dumps(data), encoding="utf-8")


def test_strict_exits_1_when_a_target_misses_and_0_without_strict(tmp_path: Path) -> None:
    trials = tmp_path / "trials"
    _short_replicas(trials)
    common = ["--patients", "30", "--jobs", "2", "--trials", str(trials), "--quiet"]
    strict = vtrial("validate", *common, "--out", str(tmp_path / "strict"), "--strict")
    assert strict.returncode == 1, strict.stderr
    assert "outside tolerance" in strict.stderr
    table = pd.read_csv(tmp_path / "strict" / "validate.csv")
    assert not table.loc[table["target"] == "NH-13", "inside"].any()
    lenient = vtrial("validate", *common, "--out", str(tmp_path / "lenient"))
    assert lenient.returncode == 0, lenient.stderr


def test_missing_replica_folder_is_a_user_error(tmp_path: Path) -> None:
    result = vtrial("validate", "--trials", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v"), "--quiet")
    assert result.returncode == 2
    assert "replica protocol is missing" in result.stderr and "--trials" in result.stderr


# --- the calibration targets at full size (slow) ------------------------------------------------


#: Targets inside their tolerance with a margin of at least 0.4 half-widths at both 2000 and 4000
#: patients (replicate 0) with the shipped parameters: the slow check keeps them there. Re-chosen after the
#: RANKL offset of bisphosphonate loss and its refit (the margins at 2000 / 4000 patients in the comments of
#: those that left; those that joined had at least 0.43 at both).
ROBUST_TARGETS = (
    ("STO-03", "denosumab vs zoledronic acid"),
    ("STO-04", "denosumab"),
    ("STO-04", "zoledronic_acid"),
    ("STO-04", "denosumab vs zoledronic acid"),
    ("STO-05", "denosumab"),
    ("STO-05", "zoledronic_acid"),
    ("STO-06", "zoledronic_acid"),
    ("STO-07", "denosumab"),
    ("STO-07", "zoledronic_acid"),
    # FIZ-02 denosumab left with the refit with the breast-cancer subtypes: 16.2 months against >= 16.6 at 2000
    # patients (17.1, inside, at 4000), at the edge; the FIZ-02 ratio, FIZ-03 and FIZ-05 zoledronic acid and FIZ-09
    # denosumab left with the RANKL offset (margins 0.25/0.15, 0.32/0.58, -0.10/0.34 and 0.34/0.24: zoledronic acid a
    # little weaker in blastic lesions, denosumab's Imax 0.9)
    ("FIZ-02", "zoledronic_acid"),
    ("FIZ-04", "denosumab"),
    ("FIZ-04", "zoledronic_acid"),
    ("FIZ-06", "denosumab"),
    ("FIZ-06", "zoledronic_acid"),
    ("FIZ-09", "zoledronic_acid"),
    ("FIZ-10", "denosumab"),
    ("SAA-01", "placebo"),
    ("SAA-02", "placebo"),
    ("ROS-02", "zoledronic_acid"),
    # ROS-02 placebo (0.19/-0.04), NH-02 (0.33/0.47) and NH-16 (0.05/0.03) had drifted to their edges with earlier
    # changes and left the list with this re-choice; PAM-02 pamidronate left with disease control (at the edge)
    ("INT-06", "denosumab"),
    ("INT-06", "zoledronic_acid"),
    ("INT-07", "denosumab"),
    ("INT-07", "zoledronic_acid"),
    ("ONJ-01", "denosumab"),
    ("ONJ-01", "zoledronic_acid"),
    # NH-01 left with disease control: 17.7% against 9-11 (a lung tail of long chemotherapy control)
    ("NH-04", "no SRE (censored at first SRE)"),
    ("NH-04", "after a first SRE"),
    ("NH-20", "breast"),
    ("NH-20", "prostate"),
    ("NH-21", "lung"),
)

#: Version-2 targets inside their tolerance at 2000 and 4000 patients, away from its edge (CA-01 denosumab left
#: with the RANKL offset: 8.2% and 7.8% against >= 7.4, margins 0.15/0.08).
ROBUST_V2_TARGETS = (
    ("MK-01", "denosumab"),
    ("MK-01", "iv_bisphosphonate"),
    ("MK-02", "denosumab"),
    ("MK-02", "iv_bisphosphonate"),
    ("MK-03", "denosumab"),
    ("MK-03", "iv_bisphosphonate"),
    ("MK-04", "denosumab"),
    ("MK-05", "high vs low uNTx, placebo"),
    ("CA-01", "zoledronic_acid"),
    ("RT-01", "multiple_fractions"),
    ("RT-02", "multiple_fractions"),
    ("RA-01", "radium-223 vs placebo"),
)


@pytest.mark.slow
def test_calibration_targets_at_full_size(tmp_path: Path) -> None:
    from vtrial.calibration.validate import validate

    table = validate(tmp_path, patients=2000, jobs=2).set_index(["target", "compared"])
    robust = [*ROBUST_TARGETS, *ROBUST_V2_TARGETS]
    assert table.loc[robust, "inside"].all(), table.loc[robust, ["simulated", "inside"]]
    # 59 of 69 and 18 of 29 at 2000 and 4000 patients (the RANKL offset of bisphosphonate loss and its refit; 14 of 25
    # version-2 targets before the pain state and the uNTx share); issue 13 asks for at least 58 version-1 targets
    assert table.loc[table["version"] == 1, "inside"].sum() >= 58
    assert table.loc[table["version"] == 2, "inside"].sum() >= 17


def test_calibrate_names_an_unknown_parameter_and_exits_2(tmp_path: Path) -> None:
    result = vtrial("calibrate", "--parameter", "osteoclast_speed", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--parameter" in result.stderr and "osteoclast_speed" in result.stderr and "Traceback" not in result.stderr


def test_a_screened_trial_s_replica_runs_its_screening_multiple_of_patients() -> None:
    """body2010-prior randomised only patients whose uNTx stayed above 50 on a bisphosphonate: its replica runs
    25 times the patients of the others, and the statistic keeps those who pass the screen."""
    from vtrial.calibration.replicas import SCREENED_PER_RANDOMISED, load_replicas, run_replicas

    assert SCREENED_PER_RANDOMISED == {"body2010-prior": 25}
    observations = run_replicas(load_replicas(["body2010-prior", "lipton2008"]), 40, jobs=1)
    sizes = {name: sum(arm.patient_id.size for arm in o.arms.values()) for name, o in observations.items()}
    assert sizes == {"body2010-prior": 1000, "lipton2008": 40}
