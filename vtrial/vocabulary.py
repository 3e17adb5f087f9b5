"""The field's names shared by every stage: primaries, skeletal sites and event types.

Integer codes index these tuples; tables on disk always carry the names.
"""

from __future__ import annotations

from typing import Literal, get_args

#: Primary tumours a cohort may mix (protocol ``[cohort].primary`` keys).
PRIMARIES: tuple[str, ...] = ("breast", "prostate", "lung", "head_and_neck")

#: Breast-cancer subtypes (protocol ``[cohort].breast_subtype`` keys): hormone-receptor positive and
#: HER2 negative, HER2 positive (any hormone receptor), triple negative.
BREAST_SUBTYPES: tuple[str, ...] = ("hr_positive", "her2_positive", "triple_negative")

#: Skeletal sites of bone lesions.
SITES: tuple[str, ...] = (
    "cervical_spine",
    "thoracic_spine",
    "lumbar_spine",
    "pelvis",
    "ribs",
    "skull",
    "mandible_maxilla",
    "femur",
    "humerus",
    "other",
)

SPINAL_SITES: frozenset[str] = frozenset({"cervical_spine", "thoracic_spine", "lumbar_spine"})
#: Sites whose failure under load is a pathological fracture of a weight-bearing bone.
WEIGHT_BEARING_SITES: frozenset[str] = frozenset(
    {"cervical_spine", "thoracic_spine", "lumbar_spine", "pelvis", "femur"}
)
LONG_BONE_SITES: frozenset[str] = frozenset({"femur", "humerus"})
JAW_SITES: frozenset[str] = frozenset({"mandible_maxilla"})

#: Skeletal-related events (the analysis chooses which of them count).
SreType = Literal[
    "pathological_fracture",
    "spinal_cord_compression",
    "radiation_to_bone",
    "surgery_to_bone",
    "hypercalcaemia",
]
SRE_TYPES: tuple[SreType, ...] = get_args(SreType)
#: SRE types counted by default (the pivotal trials' definition; hypercalcaemia optional).
DEFAULT_SRE_TYPES: tuple[CountableEventType, ...] = SRE_TYPES[:4]

#: Adverse events of bone-targeted agents.
ADVERSE_EVENTS: tuple[str, ...] = (
    "osteonecrosis_of_the_jaw",
    "hypocalcaemia",
    "renal_toxicity",
    "acute_phase_reaction",
    "atypical_femoral_fracture",
)

#: Events of protocol version 2: a fracture outside the metastases (counted as an SRE only when
#: named in ``sre_types``), haematological toxicity (radium-223, chemotherapy), and castration-
#: sensitive prostate cancer becoming resistant.
EventTypeV2 = Literal["osteoporotic_fracture", "neutropenia", "thrombocytopenia", "castration_resistance"]
EVENT_TYPES_V2: tuple[EventTypeV2, ...] = get_args(EventTypeV2)
#: Events of ``EVENT_TYPES_V2`` that are not skeletal: ``sre_types`` may name them (a composite
#: endpoint), with a plausibility warning.
NON_SKELETAL_EVENTS: frozenset[str] = frozenset({"neutropenia", "thrombocytopenia", "castration_resistance"})
#: Event types ``[analysis].sre_types`` may name.
CountableEventType = Literal[SreType, EventTypeV2]
COUNTABLE_EVENT_TYPES: tuple[CountableEventType, ...] = get_args(CountableEventType)

#: Adverse events summary.json reports for every arm (0.0 where the arm cannot have them): those of
#: the bone-targeted agents, fractures outside the metastases, and radium-223's marrow toxicity.
REPORTED_ADVERSE_EVENTS: tuple[str, ...] = ADVERSE_EVENTS + ("osteoporotic_fracture", "neutropenia", "thrombocytopenia")

#: Every event type that may appear in ``events.parquet`` (new types appended: codes are indices).
#: ``prophylactic_radiotherapy`` is protocol treatment of an asymptomatic high-risk lesion, not an SRE;
#: ``partial_pain_response`` and ``complete_pain_response`` are a lesion's pain response 3 months after its
#: first course for pain (international consensus categories), not SREs; ``entry_radiotherapy`` is the course for pain
#: a protocol gives at randomisation (``[arm.radiotherapy] at_entry``), protocol treatment, not an SRE.
PAIN_RESPONSES: tuple[str, ...] = ("partial_pain_response", "complete_pain_response")
#: Courses of radiotherapy for a painful lesion: on study (an SRE) or at randomisation (protocol treatment). A
#: lesion's first of either is its first course (pain response, re-treatment, fracture after radiotherapy).
PAIN_COURSES: tuple[str, ...] = ("radiation_to_bone", "entry_radiotherapy")
EVENT_TYPES: tuple[str, ...] = (
    SRE_TYPES
    + ("death", "dropout", "new_lesion")
    + ADVERSE_EVENTS
    + EVENT_TYPES_V2
    + ("prophylactic_radiotherapy",)
    + PAIN_RESPONSES
    + ("entry_radiotherapy",)
)

#: Stages of prostate cancer (protocol ``[cohort].prostate_stage``); the first is the default.
ProstateStage = Literal["castration_resistant", "castration_sensitive"]
PROSTATE_STAGES: tuple[ProstateStage, ...] = get_args(ProstateStage)

#: Background anticancer therapies (protocol ``systemic_therapy`` lists).
SystemicTherapyName = Literal[
    "androgen_deprivation",
    "abiraterone_prednisone",
    "enzalutamide",
    "docetaxel",
    "chemotherapy",
    "endocrine",
    "aromatase_inhibitor",
    "targeted",
    "immunotherapy",
]
SYSTEMIC_THERAPIES: tuple[SystemicTherapyName, ...] = get_args(SystemicTherapyName)

#: Days of a week: the protocol's ``every_weeks`` and ``marker_weeks``.
DAYS_PER_WEEK: int = 7
#: Julian-calendar averages used to convert the protocol's months and years into days.
DAYS_PER_YEAR: float = 365.25
DAYS_PER_MONTH: float = DAYS_PER_YEAR / 12
#: Days after a lesion's first course for pain at which its pain response is assessed: 3 months, the
#: time point of the trials pooled by Chow 2007 and of the international consensus (Chow 2012).
PAIN_ASSESSMENT_DAYS = 3.0 * DAYS_PER_MONTH


def __getattr__(name: str) -> tuple[str, ...]:
    """``DRUGS``: the drugs a protocol arm may name, one per agent of :mod:`vtrial.model.agents`.

    Read from the agent registry when asked for (the registry imports this module).
    """
    if name == "DRUGS":
        from vtrial.model.agents import AGENTS

        return tuple(AGENTS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
