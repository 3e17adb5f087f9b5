"""Disease stage and background anticancer therapy: where each therapy acts in the model.

Every patient receives a background therapy: the usual care of the primary (and of the prostate
stage) unless a protocol of version 2 gives the stage (``prostate_stage``) and the therapies
(``systemic_therapy``, cohort-wide, replaced per arm); version-1 protocols take the usual care.
Each therapy acts on the nodes it acts on in life (its registry rows are named in
:data:`THERAPY_EFFECTS`):

* **tumour** (prostate patients): a log-kill rate added to the Gompertz equation of every bone
  lesion (``dy/dt = -gamma G y - kill``), one value while the disease is castration-sensitive and
  one once it is resistant. Androgen deprivation shrinks castration-sensitive disease and adds
  nothing to resistant disease, whose calibrated growth already includes continued castration;
  abiraterone, enzalutamide and docetaxel add to it. Docetaxel (and chemotherapy in prostate
  cancer) acts during its course only. Survival follows through the tumour: the death hazard
  rises with the summed bone burden, so shrinking disease lives longer.
* **castration resistance**: castration-sensitive disease carries a castration-resistant clone
  in proportion to its bone burden at entry (more tumour cells, more resistant cells). Under a
  hormonal therapy the clone grows (``resistant_clone_growth_rate``) minus the kill that acts on
  resistant disease (abiraterone, enzalutamide, the docetaxel course), and the disease becomes
  resistant with a hazard proportional to the clone: larger disease progresses sooner, and
  therapies that kill resistant cells delay it;
* **bone outside the lesions**: androgen deprivation, aromatase inhibitors and the prednisone
  given with abiraterone raise systemic osteoclast recruitment (RANKL), see
  :mod:`vtrial.model.skeleton`. Castration-resistant disease is by definition progression on
  androgen deprivation, given for years before entry: its rise of turnover is already there
  at entry (``entry_rankl_factor``: the skeleton starts at that therapy's turnover and
  remodelling space, density 1), while every other therapy, and androgen deprivation in
  castration-sensitive disease, starts at randomisation.
* **disease control** (breast, lung, head and neck): endocrine therapy (and an aromatase
  inhibitor), anti-HER2 therapy ("targeted") and chemotherapy control the disease for a while, each
  only in the patients whose tumour carries its target (:attr:`TherapyEffect.controls`: in breast
  cancer endocrine therapy controls hormone-receptor-positive disease, anti-HER2 therapy
  HER2-positive disease, chemotherapy every subtype and every other primary; the breast subtype
  also scales the tumour's growth rate, :func:`subtype_growth`), then it progresses and the next
  line follows after ``control_switch_days``; each of :data:`CONTROL_LINES` lines controls it for
  an exponential time whose median is the first line's (``endocrine_control_days``,
  ``chemotherapy_control_days``, ``her2_targeted_control_days``) times ``control_line_ratio`` per earlier line, and
  ``control_bone_only_ratio`` without visceral metastases. Under control every bone lesion takes
  the Norton-Simon log-kill ``disease_control_kill x ln 2 / doubling time`` of its patient (growth
  stops near the detection burden when it is 1); survival follows through the bone burden of the
  death hazard, and the non-skeletal part of that hazard is lowered by ``death_hr_disease_control``
  while the disease is controlled. The durations come from the stream purpose ``disease_control``.

"immunotherapy" has no row: it changes nothing (its control depends on the target and is not
modelled); "targeted" is anti-HER2 therapy and controls no primary other than HER2-positive breast
cancer.

Every protocol, version 1 included, resolves a background therapy per primary (its usual care), so
:func:`background` returns ``None`` only for a bare cohort block that carries none (the model's own
tests and reference cohorts), which then runs without these nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vtrial.cohort import CohortBlock
from vtrial.model.parameters import Parameters
from vtrial.model.types import ArmLike
from vtrial.vocabulary import BREAST_SUBTYPES, PRIMARIES, PROSTATE_STAGES, SYSTEMIC_THERAPIES

_PROSTATE = PRIMARIES.index("prostate")
_BREAST = PRIMARIES.index("breast")
_ADT = SYSTEMIC_THERAPIES.index("androgen_deprivation")


@dataclass(frozen=True)
class TherapyEffect:
    """Registry names of a therapy's effects (``None`` where it has none)."""

    kill_sensitive: str | None = None  # log-kill per day, castration-sensitive prostate cancer
    kill_resistant: str | None = None  # log-kill per day, castration-resistant prostate cancer
    course_days: str | None = None  # the kill lasts this long (a chemotherapy course, same in both
    #                                 stages); None: continuous
    hormonal: bool = False  # lowers androgen signalling: castration resistance can emerge under it
    rankl_rise: str | None = None  # relative rise of systemic osteoclast recruitment
    control: str | None = None  # median days of disease control of a first line (outside prostate cancer)
    controls: tuple[str, ...] = BREAST_SUBTYPES  # the breast-cancer subtypes it controls (a target they carry)

    def __post_init__(self) -> None:
        if (self.kill_sensitive is None) != (self.kill_resistant is None):
            raise ValueError(f"{self}: a therapy kills in both prostate stages or in neither")


_DOCETAXEL = TherapyEffect(
    "docetaxel_kill", "docetaxel_kill", "docetaxel_course_days", control="chemotherapy_control_days"
)
#: Successive lines of therapy that control the disease (then none: best supportive care).
CONTROL_LINES = 4

#: Where each background therapy acts.
THERAPY_EFFECTS: dict[str, TherapyEffect] = {
    "androgen_deprivation": TherapyEffect(
        "androgen_deprivation_kill_sensitive",
        "androgen_deprivation_kill_resistant",
        hormonal=True,
        rankl_rise="androgen_deprivation_rankl_rise",
    ),
    "abiraterone_prednisone": TherapyEffect(
        "abiraterone_kill_sensitive",
        "abiraterone_kill_resistant",
        hormonal=True,
        rankl_rise="glucocorticoid_rankl_rise",
    ),
    "enzalutamide": TherapyEffect("enzalutamide_kill_sensitive", "enzalutamide_kill_resistant", hormonal=True),
    "docetaxel": _DOCETAXEL,
    "chemotherapy": _DOCETAXEL,
    "endocrine": TherapyEffect(control="endocrine_control_days", controls=("hr_positive",)),
    "aromatase_inhibitor": TherapyEffect(
        rankl_rise="aromatase_inhibitor_rankl_rise", control="endocrine_control_days", controls=("hr_positive",)
    ),
    "targeted": TherapyEffect(control="her2_targeted_control_days", controls=("her2_positive",)),
    "immunotherapy": TherapyEffect(),
}
assert tuple(THERAPY_EFFECTS) == SYSTEMIC_THERAPIES


@dataclass(frozen=True)
class Background:
    """Per-patient effects of the stage and background therapy of one arm (arrays ``[n]``)."""

    castration_sensitive: np.ndarray  # bool: prostate, castration-sensitive at entry
    hormonal: np.ndarray  # bool: prostate, on a hormonal therapy
    kill_sensitive: np.ndarray  # continuous log-kill per day while castration-sensitive
    kill_resistant: np.ndarray  # continuous log-kill per day once resistant
    course_kill: np.ndarray  # log-kill per day during the chemotherapy course
    course_days: float
    rankl_factor: np.ndarray  # multiplier of systemic osteoclast recruitment
    entry_rankl_factor: np.ndarray  # the part of it from therapy given long before entry (skeleton at its steady state)
    control_days: np.ndarray  # median days of disease control of the first line (0: no control)


def background(cohort_block: CohortBlock, arm: ArmLike, params: Parameters) -> Background | None:
    """Stage and background-therapy effects of a block under an arm.

    The arm's own ``systemic_therapy`` list applies to every patient; otherwise each patient
    receives the list of its primary's profile (the protocol resolves one per primary, by default
    the usual care of the primary and prostate stage). ``None`` for a bare cohort block that
    carries no therapy (the model's own tests): the model then runs without these nodes.
    """
    cb = cohort_block
    own = getattr(arm, "systemic_therapy", None)
    if own is None and cb.systemic_therapy is None:
        return None
    stage = cb.prostate_stage or PROSTATE_STAGES[0]
    if stage not in PROSTATE_STAGES:
        raise ValueError(f"unknown prostate stage {stage!r}")
    listed = set(own or ()).union(*(cb.systemic_therapy or {}).values())
    unknown = sorted(listed - set(SYSTEMIC_THERAPIES))
    if unknown:
        raise ValueError(f"unknown systemic therapy {unknown[0]!r}")
    n = cb.n_patients
    primary = cb.primary.astype(np.int64)
    # gets[k, i]: patient i receives therapy k
    if own is not None:
        gets = np.repeat(np.array([t in own for t in SYSTEMIC_THERAPIES])[:, None], n, axis=1)
    else:
        by_primary = cb.systemic_therapy or {}
        gets = np.array([[t in by_primary.get(p, ()) for p in PRIMARIES] for t in SYSTEMIC_THERAPIES])[:, primary]
    prostate = primary == _PROSTATE
    # breast subtype of each patient (-1: another primary; no subtype given: hormone-receptor positive)
    subtype = np.zeros(n, np.int8) if cb.breast_subtype is None else cb.breast_subtype
    castration_resistant = prostate & (stage == "castration_resistant")
    kill_sensitive, kill_resistant, course_kill, rise, control_days = np.zeros((5, n))
    hormonal = np.zeros(n, bool)
    for receives, effect in zip(gets, THERAPY_EFFECTS.values()):
        if effect.rankl_rise is not None:
            rise += getattr(params, effect.rankl_rise) * receives
        if effect.control is not None:  # the longest-controlling therapy listed sets the median
            # a therapy aimed at a receptor controls only the breast subtypes that carry it, and no other primary
            if effect.controls == BREAST_SUBTYPES:
                target = ~prostate
            else:
                target = (primary == _BREAST) & np.isin(subtype, [BREAST_SUBTYPES.index(s) for s in effect.controls])
            control_days = np.maximum(control_days, getattr(params, effect.control) * (receives & target))
        on = receives & prostate
        hormonal |= on & effect.hormonal
        if effect.kill_sensitive is None or effect.kill_resistant is None:
            continue
        if effect.course_days is None:
            kill_sensitive += getattr(params, effect.kill_sensitive) * on
            kill_resistant += getattr(params, effect.kill_resistant) * on
        else:  # one course, whichever chemotherapy names are listed
            course_kill = np.maximum(course_kill, getattr(params, effect.kill_sensitive) * on)
    return Background(
        castration_sensitive=prostate & (stage == "castration_sensitive"),
        hormonal=hormonal,
        kill_sensitive=kill_sensitive,
        kill_resistant=kill_resistant,
        course_kill=course_kill,
        course_days=params.docetaxel_course_days,
        rankl_factor=1.0 + rise,
        entry_rankl_factor=1.0 + params.androgen_deprivation_rankl_rise * (gets[_ADT] & castration_resistant),
        control_days=control_days,
    )


def subtype_growth(breast_subtype: np.ndarray | None, params: Parameters) -> np.ndarray | float:
    """Tumour growth rate of each patient's breast-cancer subtype relative to a hormone-receptor-positive tumour.

    1 for the other primaries and for a block without subtypes (every breast patient hormone-receptor positive).
    """
    if breast_subtype is None:
        return 1.0
    factor = np.array([1.0, params.her2_positive_growth_factor, params.triple_negative_growth_factor, 1.0])
    return factor[breast_subtype]  # code -1 (another primary) reads the last entry


def kill(
    sensitive: np.ndarray,
    kill_sensitive: np.ndarray,
    kill_resistant: np.ndarray,
    course_kill: np.ndarray,
    course_days: float,
    start: float,
    end: float,
) -> np.ndarray:
    """Mean background log-kill per day over the step ``start .. end`` (per patient).

    ``sensitive``: the patient's disease is still castration-sensitive. The course kill counts for
    the share of the step inside the course.
    """
    inside = np.clip(course_days - start, 0.0, end - start) / (end - start)
    return np.where(sensitive, kill_sensitive, kill_resistant) + inside * course_kill


def resistant_clone(clone: np.ndarray, kill_resistant: np.ndarray, days: float, params: Parameters) -> np.ndarray:
    """Advance the castration-resistant clone by ``days`` in place (exponential growth minus kill); return its step mean.

    ``clone`` is in units of the entry bone burden; ``kill_resistant`` is the step-mean log-kill
    per day acting on resistant disease.
    """
    rate = params.resistant_clone_growth_rate - kill_resistant
    growth = np.expm1(rate * days)
    mean = clone * np.where(rate != 0.0, growth / np.where(rate != 0.0, rate * days, 1.0), 1.0)
    clone += clone * growth
    return mean


def resistance_hazard(clone_mean: np.ndarray, at_risk: np.ndarray, params: Parameters) -> np.ndarray:
    """Hazard per day of castration resistance: proportional to the resistant clone, where at risk.

    ``at_risk``: castration-sensitive disease under a hormonal therapy.
    """
    return params.castration_resistance_hazard * clone_mean * at_risk


def control_schedule(
    control_days: np.ndarray, visceral: np.ndarray, draws: np.ndarray, params: Parameters
) -> tuple[np.ndarray, np.ndarray]:
    """Days at which each line's disease control starts and ends, ``[CONTROL_LINES, n]`` each.

    ``control_days``: the first line's median (0: no control); ``draws``: unit exponentials
    ``[n, CONTROL_LINES]``. Line ``k`` controls for ``draw x median x ratio^k / ln 2`` days
    (``control_bone_only_ratio`` longer without visceral metastases); the next line starts
    ``control_switch_days`` after it ends.
    """
    ratio = params.control_line_ratio ** np.arange(CONTROL_LINES)
    median = control_days * np.where(visceral, 1.0, params.control_bone_only_ratio)
    length = draws.T * ratio[:, None] * median / np.log(2.0)
    end = np.cumsum(length, axis=0) + params.control_switch_days * np.arange(CONTROL_LINES)[:, None]
    return end - length, end


def controlled_share(start: np.ndarray, end: np.ndarray, step_start: float, step_end: float) -> np.ndarray:
    """Share of the step ``step_start .. step_end`` under disease control (per patient, ``[n]``)."""
    inside = np.minimum(end, step_end)
    inside -= np.maximum(start, step_start)
    np.maximum(inside, 0.0, out=inside)
    return inside.sum(axis=0) / (step_end - step_start)
