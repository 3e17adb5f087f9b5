"""Local treatment of bone lesions as an arm gives it: the radiotherapy course and the surgery policy.

Every course of radiotherapy to bone in an arm (for pain, for cord compression, prophylactic)
follows the arm's ``[arm.radiotherapy]`` table; its tumour kill follows the linear-quadratic
model. A course of ``n`` fractions of ``d = D / n`` Gy leaves the surviving fraction
``S = exp(-n (alpha d + beta d^2)) = exp(-alpha BED)`` with the biologically effective dose
``BED = D (1 + d / (alpha/beta))``, so the kill ``-ln S`` scales with the BED: the default
8 Gy x 1 (BED10 14.4 Gy) kills ``ln S = -4.32`` (alpha 0.3/Gy), 30 Gy / 10 (BED10 39 Gy)
2.7 times that. The technique acts through the dose and fractions only: stereotactic schedules
(e.g. 24 Gy / 2, BED10 52.8 Gy) control lesions better because their BED is higher; no
further technique factor is applied.

A course also gives the normal tissue around the lesion (spinal cord, nerve roots, gut) its
dose, ``BED2`` (alpha/beta 2 Gy: late-responding tissue), which adds up over courses and limits
re-irradiation: each course uses ``BED2 / reirradiation_tolerance_bed2_gy`` of the lesion's room
(8 Gy x 1: 40 Gy2, 0.30 of 135 Gy2; 24 Gy in 6: 72 Gy2, 0.53), and the lesion's radiotherapy hazard
keeps the share of room left (:attr:`LocalTherapy.normal_tissue_share`).

The arm is read duck-typed (``getattr`` with the documented default when a field is absent), so
version-1 protocols, which have neither table, get 8 Gy x 1, no prophylactic radiotherapy and
prophylactic fixation of impending long-bone fractures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vtrial.model.parameters import Parameters
from vtrial.model.types import ArmLike
from vtrial.vocabulary import DAYS_PER_MONTH

TECHNIQUES: tuple[str, ...] = ("conventional", "stereotactic")
#: Days (six months, Mirels' follow-up) over which the high-risk rule's risk is taken.
HIGH_RISK_HORIZON_DAYS = 6.0 * DAYS_PER_MONTH
#: alpha/beta (Gy) of the late-responding normal tissue a course also irradiates (spinal cord: Fowler 1989).
NORMAL_TISSUE_ALPHA_BETA_GY = 2.0
#: Fall of the pain score (points of 10) that makes a partial response (international consensus, Chow 2012).
PARTIAL_RESPONSE_POINTS = 2.0
#: Score below which the pain is 0 of 10 on the integer scale: a complete response.
COMPLETE_RESPONSE_SCORE = 0.5


@dataclass(frozen=True)
class RadiotherapyCourse:
    """One course of radiotherapy to a lesion: total dose, fractions, technique; prophylaxis and a course at entry on or off."""

    dose_gy: float = 8.0
    fractions: int = 1
    technique: str = "conventional"
    prophylactic: bool = False
    at_entry: bool = False


DEFAULT_COURSE = RadiotherapyCourse()


def biologically_effective_dose(dose_gy: float, fractions: int, alpha_beta_gy: float) -> float:
    """``BED = D (1 + d / (alpha/beta))`` (Gy) of ``dose_gy`` in ``fractions`` equal fractions."""
    return dose_gy * (1.0 + dose_gy / fractions / alpha_beta_gy)


def course_log_survival(course: RadiotherapyCourse, params: Parameters) -> float:
    """``ln S = -alpha BED``: the log tumour cells surviving one course (added to ``ln T``)."""
    bed = biologically_effective_dose(course.dose_gy, course.fractions, params.radiation_alpha_beta_gy)
    return -(params.radiation_alpha_per_gy * bed)


def high_risk_hazard(params: Parameters) -> float:
    """Fracture + cord-compression hazard per day above which a lesion is high-risk.

    The hazard whose risk over ``HIGH_RISK_HORIZON_DAYS`` is ``prophylactic_rt_risk``.
    """
    return -np.log1p(-params.prophylactic_rt_risk) / HIGH_RISK_HORIZON_DAYS


@dataclass(frozen=True)
class LocalTherapy:
    """What an arm does to lesions: its radiotherapy course, its kill, its normal-tissue dose, and fixation on/off.

    ``normal_tissue_share``: the share of a lesion's re-irradiation room one course uses,
    ``BED2 / reirradiation_tolerance_bed2_gy``.
    """

    course: RadiotherapyCourse
    log_survival: float
    prophylactic_fixation: bool
    normal_tissue_share: float

    @classmethod
    def from_arm(cls, arm: ArmLike, params: Parameters) -> LocalTherapy:
        """Read ``arm.radiotherapy`` and ``arm.surgery`` (either may be absent or ``None``)."""
        rt = getattr(arm, "radiotherapy", None)
        course = RadiotherapyCourse(
            dose_gy=float(getattr(rt, "dose_gy", DEFAULT_COURSE.dose_gy)),
            fractions=int(getattr(rt, "fractions", DEFAULT_COURSE.fractions)),
            technique=str(getattr(rt, "technique", DEFAULT_COURSE.technique)),
            prophylactic=bool(getattr(rt, "prophylactic", DEFAULT_COURSE.prophylactic)),
            at_entry=bool(getattr(rt, "at_entry", DEFAULT_COURSE.at_entry)),
        )
        if course.technique not in TECHNIQUES or course.dose_gy <= 0.0 or course.fractions < 1:
            raise ValueError(
                f"arm {getattr(arm, 'name', '?')!r}: radiotherapy needs dose_gy > 0, fractions >= 1 and a "
                f"technique among {TECHNIQUES}, not {course}"
            )
        fixation = bool(getattr(getattr(arm, "surgery", None), "prophylactic_fixation", True))
        bed2 = biologically_effective_dose(course.dose_gy, course.fractions, NORMAL_TISSUE_ALPHA_BETA_GY)
        return cls(course, course_log_survival(course, params), fixation, bed2 / params.reirradiation_tolerance_bed2_gy)


def pain_response_ratios(params: Parameters) -> tuple[float, float]:
    """Largest ratios of a lesion's pain at the assessment to its pain at the course: partial, complete response.

    The pain score is taken proportional to the lesion's pain, ``pain_baseline_score`` at the course:
    a partial response is a fall of :data:`PARTIAL_RESPONSE_POINTS` (from 6 points: ratio 2/3), a complete
    one a score below :data:`COMPLETE_RESPONSE_SCORE` (ratio 1/12).
    """
    score = params.pain_baseline_score
    return (score - PARTIAL_RESPONSE_POINTS) / score, COMPLETE_RESPONSE_SCORE / score
