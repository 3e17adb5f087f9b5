"""The calibration targets: published figures, their tolerance rules and what the simulator compares.

:data:`CHECKS` is the declarative table: each row names a row of the target tables (version 1:
``vtrial/data/targets.csv``; version 2: ``vtrial/data/targets-v2.csv``, same columns), the
published cell it reads, the replica protocols whose virtual patients produce the matching
statistic, and the statistic. :data:`NOT_SIMULATED` lists the rows the simulator cannot produce,
with the reason. A test checks that together they cover every row.


Tolerance rules (:func:`tolerance`): inside the published 95% CI when one is given; inside the
range for a range such as ``19-25``; within 5 percentage points for proportions and survival
probabilities without a CI; within 20% for medians, means and ratios without a CI; a median
"not reached" is matched by a simulated median not reached within follow-up.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

#: Half-width of the tolerance of a proportion without a CI, in percentage points.
PROPORTION_POINTS = 5.0
#: Relative half-width of the tolerance of a median, mean or ratio without a CI.
RELATIVE = 0.20
NOT_REACHED = "not reached"

Kind = Literal["proportion", "median", "mean", "ratio"]
#: Target tables shipped in ``vtrial/data``, by version.
TARGET_FILES: dict[int, str] = {1: "targets.csv", 2: "targets-v2.csv"}

_RANGE = re.compile(r"^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$")


@dataclass(frozen=True)
class Tolerance:
    """The interval a simulated value must fall in, and the rule that set it.

    ``low``/``high`` are ``None`` for the "not reached" rule (the simulated median must be
    ``None``); ``centre`` is the published point (the middle of a range). A range is ``flat``:
    every value inside it fits equally well.
    """

    centre: float | None
    low: float | None
    high: float | None
    rule: str
    flat: bool = False

    def contains(self, value: float | None) -> bool:
        """Whether a simulated value (``None``: median not reached) satisfies the rule."""
        if self.centre is None:
            return value is None
        _, low, high = self.bounds()
        return value is not None and low <= value <= high

    def bounds(self) -> tuple[float, float, float]:
        """``centre, low, high`` of a numeric rule (every rule but "median not reached")."""
        if self.centre is None or self.low is None or self.high is None:
            raise ValueError(f"the rule {self.rule!r} has no numeric bounds")
        return self.centre, self.low, self.high


def tolerance(kind: Kind, published: str, ci: tuple[float, float] | None = None) -> Tolerance:
    """The tolerance of one published figure.

    Parameters
    ----------
    kind : {"proportion", "median", "mean", "ratio"}
        Proportions (and survival probabilities) are in percent.
    published : str
        The published cell: a number, a range ``a-b`` or ``not reached``.
    ci : (float, float), optional
        The published 95% confidence interval of this figure.

    Returns
    -------
    Tolerance
    """
    text = published.strip()
    if text == NOT_REACHED:
        return Tolerance(None, None, None, "median not reached")
    if ci is not None:
        return Tolerance(float(text), ci[0], ci[1], "inside the published 95% CI")
    bounds = _RANGE.match(text)
    if bounds:
        low, high = float(bounds[1]), float(bounds[2])
        return Tolerance((low + high) / 2, low, high, "inside the published range", flat=True)
    value = float(text)
    if kind == "proportion":
        low, high = max(value - PROPORTION_POINTS, 0.0), min(value + PROPORTION_POINTS, 100.0)
        return Tolerance(value, low, high, "within 5 percentage points")
    # a negative figure (a percent change) has its bounds the other way round
    low, high = sorted((value * (1 - RELATIVE), value * (1 + RELATIVE)))
    return Tolerance(value, low, high, "within 20%")


def residual(tol: Tolerance, value: float | None, lower_bound: float | None) -> float | None:
    """Distance of a simulated value from the published one, in half-widths of the tolerance.

    ``|residual| <= 1`` exactly when the value is inside the tolerance; an asymmetric CI uses
    the half-width on the value's side. A range is flat: 0 inside, the distance beyond the
    nearer end (in half-widths) outside. A median not reached (``None``) counts as
    ``lower_bound`` (the longest follow-up). ``None`` for the "not reached" rule, and for a
    median not reached without a follow-up to count it as.
    """
    value = lower_bound if value is None else value
    if tol.centre is None or value is None:
        return None
    centre, low, high = tol.bounds()
    side = high - centre if value >= centre else centre - low
    if side <= 0:
        return 0.0
    if tol.flat:
        return float(max(value - high, 0.0) + min(value - low, 0.0)) / side
    return (value - centre) / side


@dataclass(frozen=True)
class Check:
    """One published figure compared with one simulated statistic.

    Attributes
    ----------
    target : str
        Row id in ``targets.csv``.
    label : str
        What is compared (arm or group), shown in the table.
    column : {"value", "reference_value", "ratio"}
        The published cell; ``part`` picks one figure of a cell such as ``10 / 10 / 15`` (0-based).
    kind : Kind
        Sets the tolerance rule and the unit (proportions in percent).
    statistic : str
        Name of the statistic in :data:`vtrial.calibration.statistics.STATISTICS`.
    replicas : tuple of str
        Replica protocols (file stems in ``protocols/trials``) pooled for the statistic.
    arm : str, optional
        The arm the statistic is read from ("comparison" statistics: the compared arm).
    option : str or float, optional
        Statistic option: an event type, a time in months, or a marker visit week.
    unit : {"%", "% change", "% reduction", "months", "days", "ratio", "SREs", "SREs/year", "lesions"}
    """

    target: str
    label: str
    column: str
    kind: Kind
    statistic: str
    replicas: tuple[str, ...]
    arm: str | None = None
    option: str | float | None = None
    unit: str = "%"
    part: int = 0

    @property
    def arm_name(self) -> str:
        """``arm``, for the statistics of one arm (every check but the trial-wide ones)."""
        if self.arm is None:
            raise ValueError(f"check {self.target} ({self.statistic}) names no arm")
        return self.arm

    @property
    def number(self) -> float:
        """``option`` as a number: a time in months or a marker visit week."""
        if not isinstance(self.option, int | float):
            raise ValueError(
                f"check {self.target} ({self.statistic}) needs a number as its option, not {self.option!r}"
            )
        return float(self.option)


_STO, _FIZ, _POOLED = ("stopeck2010",), ("fizazi2011",), ("stopeck2010", "fizazi2011")
_DMAB, _ZA = "denosumab", "zoledronic_acid"


def _pair(
    target: str,
    statistic: str,
    replicas: tuple[str, ...],
    arms: tuple[str, str],
    kind: Kind,
    unit: str = "%",
    option: str | float | None = None,
) -> list[Check]:
    """Two checks of a row giving the arm's figure (``value``) and the reference's (``reference_value``)."""
    return [
        Check(target, arm, column, kind, statistic, replicas, arm, option, unit)
        for arm, column in zip(arms, ("value", "reference_value"))
    ]


_FIRST = {
    "STO-06": "radiation_to_bone",
    "STO-07": "pathological_fracture",
    "STO-08": "surgery_to_bone",
    "STO-09": "spinal_cord_compression",
    "FIZ-05": "radiation_to_bone",
    "FIZ-06": "pathological_fracture",
    "FIZ-07": "surgery_to_bone",
    "FIZ-08": "spinal_cord_compression",
}

#: The version-1 targets: published cell -> (replicas, statistic, tolerance kind).
_V1_CHECKS: tuple[Check, ...] = tuple(
    [
        *_pair("STO-02", "median_time_to_first_sre", _STO, (_DMAB, _ZA), "median", "months"),
        Check(
            "STO-03",
            "denosumab vs zoledronic acid",
            "ratio",
            "ratio",
            "hazard_ratio_first_sre",
            _STO,
            _DMAB,
            unit="ratio",
        ),
        *_pair("STO-04", "mean_sre_per_patient", _STO, (_DMAB, _ZA), "mean", "SREs"),
        Check("STO-04", "denosumab vs zoledronic acid", "ratio", "ratio", "rate_ratio_sre", _STO, _DMAB, unit="ratio"),
        *_pair("STO-05", "proportion_with_sre", _STO, (_DMAB, _ZA), "proportion"),
        *[
            c
            for tid in ("STO-06", "STO-07", "STO-08", "STO-09")
            for c in _pair(tid, "first_sre_type", _STO, (_DMAB, _ZA), "proportion", option=_FIRST[tid])
        ],
        *_pair("FIZ-02", "median_time_to_first_sre", _FIZ, (_DMAB, _ZA), "median", "months"),
        Check(
            "FIZ-02",
            "denosumab vs zoledronic acid",
            "ratio",
            "ratio",
            "hazard_ratio_first_sre",
            _FIZ,
            _DMAB,
            unit="ratio",
        ),
        *_pair("FIZ-03", "mean_sre_per_patient", _FIZ, (_DMAB, _ZA), "mean", "SREs"),
        Check("FIZ-03", "denosumab vs zoledronic acid", "ratio", "ratio", "rate_ratio_sre", _FIZ, _DMAB, unit="ratio"),
        *_pair("FIZ-04", "proportion_with_sre", _FIZ, (_DMAB, _ZA), "proportion"),
        *[
            c
            for tid in ("FIZ-05", "FIZ-06", "FIZ-07", "FIZ-08")
            for c in _pair(tid, "first_sre_type", _FIZ, (_DMAB, _ZA), "proportion", option=_FIRST[tid])
        ],
        *_pair("FIZ-09", "adverse_event", _FIZ, (_DMAB, _ZA), "proportion", option="hypocalcaemia"),
        *_pair("FIZ-10", "adverse_event", _FIZ, (_DMAB, _ZA), "proportion", option="osteonecrosis_of_the_jaw"),
        *_pair("SAA-01", "proportion_with_sre_by", ("saad2002",), (_ZA, "placebo"), "proportion", option=15.0),
        *_pair("SAA-02", "median_time_to_first_sre", ("saad2002",), (_ZA, "placebo"), "median", "days"),
        *_pair("ROS-01", "proportion_with_sre_by", ("rosen2003",), (_ZA, "placebo"), "proportion", option=9.0),
        *_pair("ROS-02", "median_time_to_first_sre", ("rosen2003",), (_ZA, "placebo"), "median", "days"),
        Check(
            "ROS-03",
            "zoledronic acid vs placebo",
            "ratio",
            "ratio",
            "rate_ratio_sre",
            ("rosen2003",),
            _ZA,
            unit="ratio",
        ),
        *_pair(
            "PAM-01", "median_time_to_first_sre", ("hortobagyi1996",), ("pamidronate", "placebo"), "median", "months"
        ),
        *_pair(
            "PAM-02",
            "proportion_with_sre_by",
            ("hortobagyi1996",),
            ("pamidronate", "placebo"),
            "proportion",
            option=12.0,
        ),
        *_pair("INT-06", "acute_phase_reaction_3_days", _POOLED, (_DMAB, _ZA), "proportion"),
        *_pair("INT-07", "adverse_event", _POOLED, (_DMAB, _ZA), "proportion", option="hypocalcaemia"),
        *_pair("ONJ-01", "adverse_event", _POOLED, (_DMAB, _ZA), "proportion", option="osteonecrosis_of_the_jaw"),
        Check("ONJ-03", "both arms", "value", "proportion", "onj_with_dental_risk", _POOLED),
        Check("NH-01", "untreated", "value", "proportion", "survival_at", ("registry-lung",), "untreated", 12.0),
        Check("NH-02", "untreated", "value", "proportion", "survival_at", ("registry-breast",), "untreated", 12.0),
        Check("NH-03", "untreated", "value", "proportion", "survival_at", ("registry-breast",), "untreated", 60.0),
        Check(
            "NH-04",
            "no SRE (censored at first SRE)",
            "value",
            "proportion",
            "survival_sre_free_at",
            ("registry-prostate",),
            "untreated",
            12.0,
        ),
        Check(
            "NH-04",
            "after a first SRE",
            "reference_value",
            "proportion",
            "survival_after_sre_at",
            ("registry-prostate",),
            "untreated",
            12.0,
        ),
        Check(
            "NH-11",
            "untreated",
            "value",
            "median",
            "median_overall_survival",
            ("clinical-breast",),
            "untreated",
            unit="months",
        ),
        Check(
            "NH-12",
            "untreated",
            "value",
            "median",
            "median_overall_survival",
            ("clinical-prostate",),
            "untreated",
            unit="months",
        ),
        Check(
            "NH-13",
            "untreated",
            "value",
            "median",
            "median_overall_survival",
            ("clinical-lung",),
            "untreated",
            unit="months",
        ),
        Check(
            "NH-14",
            "untreated",
            "value",
            "median",
            "median_overall_survival",
            ("clinical-head-and-neck",),
            "untreated",
            unit="months",
        ),
        Check(
            "NH-16", "untreated", "value", "proportion", "proportion_with_sre", ("clinical-head-and-neck",), "untreated"
        ),
        Check("NH-20", "breast", "value", "mean", "mean_lesions", ("clinical-breast",), "untreated", unit="lesions"),
        Check(
            "NH-20",
            "prostate",
            "reference_value",
            "mean",
            "mean_lesions",
            ("clinical-prostate",),
            "untreated",
            unit="lesions",
        ),
        Check("NH-21", "lung", "value", "mean", "mean_lesions", ("clinical-lung",), "untreated", unit="lesions"),
    ]
)

_LIPTON, _BODY, _BODY_PRIOR = ("lipton2008",), ("body2010",), ("body2010-prior",)
_IV = "iv_bisphosphonate"
#: Zoledronic acid arms whose uNTx visits give the death risk by uNTx (Coleman 2005: breast, prostate, lung).
_ZA_MARKERS = ("stopeck2010", "saad2002", "rosen2003")

#: The version-2 targets (``targets-v2.csv``).
_V2_CHECKS: tuple[Check, ...] = (
    *_pair("MK-01", "median_untx_change", _LIPTON, (_DMAB, _IV), "median", "% change", 13),
    *_pair("MK-02", "median_untx_change", _LIPTON, (_DMAB, _IV), "median", "% change", 25),
    *_pair("MK-03", "median_untx_reduction", _BODY, (_DMAB, _IV), "median", "% reduction", 25),
    *_pair(
        "MK-04",
        "median_untx_reduction_above_50",
        _BODY_PRIOR,
        (_DMAB, "iv_bisphosphonate_continued"),
        "median",
        "% reduction",
        25,
    ),
    Check(
        "MK-05",
        "high vs low uNTx, placebo",
        "ratio",
        "ratio",
        "sre_rate_ratio_by_untx",
        ("saad2002",),
        "placebo",
        unit="ratio",
    ),
    Check(
        "MK-06",
        "high vs low uNTx, placebo",
        "ratio",
        "ratio",
        "sre_rate_ratio_by_untx",
        ("rosen2003",),
        "placebo",
        unit="ratio",
    ),
    Check(
        "MK-07",
        "high vs low uNTx, zoledronic acid",
        "ratio",
        "ratio",
        "death_rate_ratio_by_untx",
        _ZA_MARKERS,
        _ZA,
        unit="ratio",
    ),
    *_pair("CA-01", "laboratory_hypocalcaemia_grade_2", _POOLED, (_DMAB, _ZA), "proportion"),
    *_pair(
        "RT-01",
        "pain_response",
        ("chow2007",),
        ("single_fraction_8gy", "multiple_fractions"),
        "proportion",
        "%",
        "overall",
    ),
    *_pair(
        "RT-02",
        "pain_response",
        ("chow2007",),
        ("single_fraction_8gy", "multiple_fractions"),
        "proportion",
        "%",
        "complete",
    ),
    Check(
        "RT-03",
        "8 Gy x 1 vs multiple fractions",
        "ratio",
        "ratio",
        "retreatment_odds_ratio",
        ("chow2007",),
        "single_fraction_8gy",
        unit="ratio",
    ),
    *_pair("RT-04", "radiotherapy_retreatment", ("dutch-bone-metastasis",), ("8_gy_x1", "24_gy_in_6"), "proportion"),
    Check(
        "SU-01",
        "irradiated long-bone lesions, not fixed",
        "value",
        "proportion",
        "fracture_after_radiotherapy",
        ("mirels1989",),
        "untreated",
        6.0,
    ),
    Check(
        "CS-01",
        "combined androgen blockade",
        "value",
        "median",
        "median_time_to_first_sre",
        ("zapca2017",),
        "androgen_blockade",
        unit="months",
    ),
    *_pair("RA-01", "median_overall_survival", ("alsympca",), ("radium_223", "placebo"), "median", "months"),
    Check(
        "RA-01",
        "radium-223 vs placebo",
        "ratio",
        "ratio",
        "hazard_ratio_overall_survival",
        ("alsympca",),
        "radium_223",
        unit="ratio",
    ),
    *_pair("RA-02", "median_bsap_change", ("nilsson2007",), ("radium_223", "placebo"), "median", "% change", 16),
    *_pair(
        "IV-01", "sre_rate_per_patient_year", ("zoom2013",), ("every_12_weeks", "every_4_weeks"), "mean", "SREs/year"
    ),
)

#: Every target the simulator produces.
CHECKS: tuple[Check, ...] = (*_V1_CHECKS, *_V2_CHECKS)

#: Rows of targets.csv the simulator does not produce, with the reason.
NOT_SIMULATED: dict[str, str] = {
    "STO-01": "a design input (the replica's sample size), not an outcome",
    "FIZ-01": "a design input (the replica's sample size), not an outcome",
    "SE-01": "needs years of denosumab exposure in an open-label extension; no replica of that cohort",
    "SE-04": "the label dose table is a model input (vtrial/model/agents/zoledronic_acid.py), not an outcome",
    "SE-05": "a definition of renal deterioration (creatinine rise), not a rate",
    "NH-19": "surgical pathology of mandibular resections; the simulator has no resection specimens",
    "NH-22": "the lytic/mixed/blastic mix is a cohort input (phenotype in vtrial/data/primaries.toml)",
    "AF-01": "an osteoporosis population (women >= 50 without cancer on osteoporosis doses); the simulator "
    "models patients with bone metastases only",
    "AF-02": "an osteoporosis population (adults >= 55 without cancer on osteoporosis doses); the simulator "
    "models patients with bone metastases only",
}


@dataclass(frozen=True)
class Published:
    """A published figure: the cell as written, its CI, unit and source."""

    text: str
    ci: tuple[float, float] | None
    trial: str
    endpoint: str
    source: str


@functools.cache
def version_rows(version: int) -> dict[str, dict[str, str]]:
    """The rows of one shipped target table (:data:`TARGET_FILES`) by id."""
    text = (files("vtrial") / "data" / TARGET_FILES[version]).read_text(encoding="utf-8")
    return {row["id"]: row for row in csv.DictReader(text.splitlines())}


@functools.cache
def target_rows() -> dict[str, dict[str, str]]:
    """The rows of every shipped target table by id (ids are unique across versions)."""
    return {tid: row for version in TARGET_FILES for tid, row in version_rows(version).items()}


def target_version(target: str) -> int:
    """The version of the target table a row id comes from."""
    return next(v for v in TARGET_FILES if target in version_rows(v))


def published(check: Check) -> Published:
    """The published figure a check compares with (its CI where ``targets.csv`` gives one)."""
    row = target_rows()[check.target]
    text = row[check.column].split("/")[check.part].strip()
    ci = None
    # a CI belongs to the ratio when the row has one, else to the value
    ci_column = "ratio" if row["ratio"] else "value"
    if row["ci_low"] and row["ci_high"] and check.column == ci_column:
        ci = (float(row["ci_low"]), float(row["ci_high"]))
    return Published(text, ci, row["trial"], row["endpoint"], row["source"])


def check_tolerance(check: Check) -> Tolerance:
    """The tolerance of a check's published figure."""
    figure = published(check)
    return tolerance(check.kind, figure.text, figure.ci)
