"""Version-2 calibration targets: their table, the switch of waiting checks, and their statistics by hand."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vtrial.calibration.replicas import ArmData, Observation
from vtrial.calibration.statistics import (
    Z95,
    Estimate,
    death_rate_ratio_by_untx,
    fracture_after_radiotherapy,
    laboratory_hypocalcaemia_grade_2,
    median_untx_change,
    median_untx_reduction,
    median_untx_reduction_above_50,
    median_with_rank_ci,
    radiotherapy_retreatment,
    retreatment_odds_ratio,
    sre_rate_ratio_by_untx,
    untx_exposure,
)
from vtrial.calibration.targets import (
    CHECKS,
    NOT_SIMULATED,
    Check,
    check_tolerance,
    residual,
    target_version,
    tolerance,
    version_rows,
)
from vtrial.calibration.validate import counts_by_version

SHARED_V2 = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "targets-v2.csv"


# --- the table and the switch -------------------------------------------------------------------


def test_version_2_rows_are_shipped_with_their_sources_and_versions() -> None:
    rows = version_rows(2)
    assert len(rows) == 19 and all(row["source"] for row in rows.values())
    assert target_version("MK-01") == 2 and target_version("STO-02") == 1
    if SHARED_V2.exists():
        with SHARED_V2.open(encoding="utf-8") as stream:
            assert {r["id"]: r for r in csv.DictReader(stream)} == rows


def test_every_version_2_row_is_simulated_or_not_simulated_with_a_reason() -> None:
    simulated = {c.target for c in CHECKS}
    assert {"MK-04", "RA-01", "RA-02", "IV-01", "RT-01", "RT-02", "RT-03", "CS-01"} <= simulated
    assert "RT-01" not in NOT_SIMULATED and "osteoporosis" in NOT_SIMULATED["AF-02"]


def test_a_negative_figure_is_within_twenty_percent_on_both_sides() -> None:
    tol = tolerance("median", "-73")
    assert (tol.low, tol.high) == pytest.approx((-87.6, -58.4))
    assert tol.contains(-60.0) and tol.contains(-85.0) and not tol.contains(-91.4) and not tol.contains(-50.0)
    assert residual(tol, -58.4, 0.0) == pytest.approx(1.0)
    assert residual(tol, -91.4, 0.0) == pytest.approx(-18.4 / 14.6)


def test_mk07_reads_the_published_range() -> None:
    (check,) = [c for c in CHECKS if c.target == "MK-07"]
    tol = check_tolerance(check)
    assert (tol.low, tol.high, tol.rule) == (4.0, 6.0, "inside the published range")


def test_counts_by_version() -> None:
    table = pd.DataFrame({"version": [1, 1, 2, 2, 2], "inside": [True, False, True, True, False]})
    assert counts_by_version(table) == {1: (1, 2), 2: (2, 3)}


# --- hand-made arms ------------------------------------------------------------------------------


def _obs(summary_arms: dict, arms: dict[str, ArmData], reference: str | None = None) -> Observation:
    return Observation({"arms": summary_arms, "reference_arm": reference}, arms)


def _arm(patient_id, followup, died, first_sre, markers=None, lesion_events=None) -> ArmData:
    n = len(patient_id)
    return ArmData(
        np.array(followup, float),
        np.array(died, bool),
        np.array(first_sre, float),
        np.ones(n),
        0,
        0,
        0,
        np.array(patient_id),
        markers,
        lesion_events,
    )


def _markers(rows: list[tuple[int, int, float, float]]) -> pd.DataFrame:
    """(patient, week, uNTx, calcium) rows; BSAP fixed at 20."""
    return pd.DataFrame(
        {
            "patient_id": [r[0] for r in rows],
            "week": [r[1] for r in rows],
            "untx_nmol_mmol": [r[2] for r in rows],
            "bsap_ug_l": 20.0,
            "calcium_mmol_l": [r[3] for r in rows],
        }
    )


def test_median_rank_ci_uses_the_binomial_order_statistics() -> None:
    est = median_with_rank_ci(np.arange(100, 0, -1, dtype=float))
    # n = 100: ranks floor((100 - 19.6) / 2) = 40 and ceil(1 + (100 + 19.6) / 2) = 61
    assert (est.value, est.low, est.high) == (50.5, 40.0, 61.0)
    assert median_with_rank_ci(np.array([])).value is None
    # fewer than 6 values: no distribution-free 95% CI (the extremes cover the median with 1 - 2/2**5 = 0.94)
    assert median_with_rank_ci(np.array([3.0, 1.0, 2.0, 5.0, 4.0])) == Estimate(3.0, None, None)
    # 6 values: the extremes, 1 - 2/2**6 = 0.97
    assert median_with_rank_ci(np.arange(6, dtype=float)) == Estimate(2.5, 0.0, 5.0)


def test_median_untx_change_and_reduction_by_hand() -> None:
    markers = _markers(
        [
            (1, 0, 100.0, 2.3),
            (1, 13, 20.0, 2.3),  # -80%
            (2, 0, 40.0, 2.3),
            (2, 13, 30.0, 2.3),  # -25%
            (3, 0, 60.0, 2.3),
            (3, 13, 30.0, 2.3),  # -50%
            (4, 0, 80.0, 2.3),
            (4, 13, 40.0, 2.3),  # -50%
            (5, 0, 200.0, 2.3),  # not measured at week 13
        ]
    )
    obs = {"r": _obs({}, {"a": _arm([1, 2, 3, 4, 5], [200] * 5, [False] * 5, [np.nan] * 5, markers)})}
    check = Check("X", "a", "value", "median", "median_untx_change", ("r",), "a", 13, "% change")
    change = median_untx_change(obs, check)
    # n = 4: too few values for a 95% CI of the median (the extremes cover it with 1 - 2/2**4 = 0.875)
    assert (change.value, change.low, change.high) == (-50.0, None, None)
    reduction = median_untx_reduction(obs, check)
    assert (reduction.value, reduction.low, reduction.high) == (50.0, None, None)
    # entry uNTx above 50: patients 1, 3, 4 (5 has no week 13): -80, -50, -50
    assert median_untx_reduction_above_50(obs, check).value == 50.0


def test_laboratory_hypocalcaemia_counts_patients_with_a_low_visit_after_week_0_pooled() -> None:
    one = _markers(
        [
            (1, 0, 50.0, 1.90),
            (1, 4, 50.0, 2.30),  # low only at week 0: not counted
            (2, 4, 50.0, 1.95),
            (2, 8, 50.0, 1.80),  # counted once
            (3, 8, 50.0, 2.00),  # 2.0 is grade 1
        ]
    )
    two = _markers([(7, 4, 50.0, 1.99), (8, 12, 50.0, 1.70), (9, 4, 50.0, 2.40)])

    def arm(m):
        return _arm([0], [1], [False], [np.nan], m)

    obs = {"r1": _obs({"a": {"n": 4}}, {"a": arm(one)}), "r2": _obs({"a": {"n": 6}}, {"a": arm(two)})}
    check = Check("X", "a", "value", "proportion", "laboratory_hypocalcaemia_grade_2", ("r1", "r2"), "a")
    assert laboratory_hypocalcaemia_grade_2(obs, check).value == pytest.approx(30.0)  # (1 + 2) of (4 + 6)


def _untx_arm(died: list[bool], first_sre: list[float]) -> ArmData:
    # patient 1: uNTx 150 from day 0, 40 from day 28, 120 from day 56; patient 2: 80, then 110 from day 28;
    # patient 3: 30 from day 0
    markers = _markers(
        [
            (1, 0, 150.0, 2.3),
            (1, 4, 40.0, 2.3),
            (1, 8, 120.0, 2.3),
            (2, 0, 80.0, 2.3),
            (2, 4, 110.0, 2.3),
            (3, 0, 30.0, 2.3),
        ]
    )
    return _arm([1, 2, 3], [100.0, 50.0, 30.0], died, first_sre, markers)


def test_sre_rate_by_the_most_recent_untx_by_hand() -> None:
    arm = _untx_arm([False, False, False], [40.0, 45.0, np.nan])
    end = np.array([40.0, 45.0, 30.0])
    # high (>= 100): patient 1 days 0-28, patient 2 days 28-45 with its SRE: 1 event in 45 days;
    # low (< 100): patient 1 days 28-40 with its SRE, patient 2 days 0-28, patient 3 days 0-30: 1 in 70
    assert untx_exposure(arm, arm.first_sre_day, end, 100.0, 100.0) == (1, 45.0, 1, 70.0)
    obs = {"r": _obs({}, {"placebo": arm})}
    est = sre_rate_ratio_by_untx(obs, Check("X", "h", "ratio", "ratio", "sre_rate_ratio_by_untx", ("r",), "placebo"))
    assert est.value == pytest.approx(70.0 / 45.0)
    assert est.high == pytest.approx(70.0 / 45.0 * math.exp(Z95 * math.sqrt(2.0)))


def test_death_rate_by_untx_leaves_out_the_moderate_band() -> None:
    arm = _untx_arm([True, False, True], [np.nan, np.nan, np.nan])
    # high: patient 1 days 0-28 and 56-100 (death at 100), patient 2 days 28-50: 1 death in 94 days;
    # low (< 50): patient 1 days 28-56, patient 3 days 0-30 (death): 1 in 58; patient 2's 80 is moderate
    assert untx_exposure(arm, np.array([100.0, np.nan, 30.0]), arm.followup_days, 100.0, 50.0) == (1, 94.0, 1, 58.0)
    obs = {"r1": _obs({}, {"za": arm}), "r2": _obs({}, {"za": arm})}
    est = death_rate_ratio_by_untx(
        obs, Check("X", "h", "ratio", "ratio", "death_rate_ratio_by_untx", ("r1", "r2"), "za")
    )
    assert est.value == pytest.approx(58.0 / 94.0)  # pooled: 2 in 188 against 2 in 116
    assert est.high == pytest.approx(58.0 / 94.0 * math.exp(Z95 * math.sqrt(1.0)))


def test_retreatment_share_and_odds_ratio_by_hand() -> None:
    def detail(k, n):
        return {"radiotherapy_retreatment_detail": {"retreated_lesions": k, "irradiated_lesions": n}}

    obs = {"r": _obs({"single": detail(20, 100), "multiple": detail(10, 100)}, {}, reference="multiple")}
    share = radiotherapy_retreatment(
        obs, Check("X", "s", "value", "proportion", "radiotherapy_retreatment", ("r",), "single")
    )
    assert share.value == pytest.approx(20.0)
    est = retreatment_odds_ratio(obs, Check("X", "s", "ratio", "ratio", "retreatment_odds_ratio", ("r",), "single"))
    assert est.value == pytest.approx(20 * 90 / (80 * 10))
    half = Z95 * math.sqrt(1 / 20 + 1 / 80 + 1 / 10 + 1 / 90)
    assert (est.low, est.high) == pytest.approx((2.25 * math.exp(-half), 2.25 * math.exp(half)))


def test_fracture_after_radiotherapy_by_hand() -> None:
    rows = [
        (1, 10.0, "radiation_to_bone", "femur", 0),
        (1, 100.0, "pathological_fracture", "femur", 0),  # fractured
        (1, 10.0, "radiation_to_bone", "humerus", 1),  # followed
        (1, 20.0, "radiation_to_bone", "femur", 2),
        (1, 250.0, "pathological_fracture", "femur", 2),  # after 6 mo
        (2, 5.0, "pathological_fracture", "femur", 0),
        (2, 10.0, "radiation_to_bone", "femur", 0),  # broken before
        (2, 10.0, "radiation_to_bone", "pelvis", 1),  # not long bone
        (3, 50.0, "radiation_to_bone", "femur", 0),  # not followed
        (4, 5.0, "surgery_to_bone", "femur", 0),
        (4, 10.0, "radiation_to_bone", "femur", 0),  # fixed before
    ]
    events = pd.DataFrame(rows, columns=["patient_id", "day", "type", "site", "lesion"])
    arm = _arm(
        [1, 2, 3, 4], [300.0, 400.0, 100.0, 400.0], [False, False, True, False], [np.nan] * 4, lesion_events=events
    )
    check = Check("X", "l", "value", "proportion", "fracture_after_radiotherapy", ("r",), "a", 6.0)
    est = fracture_after_radiotherapy({"r": _obs({}, {"a": arm})}, check)
    assert est.value == pytest.approx(100.0 / 3.0)  # 1 of patient 1's three lesions
