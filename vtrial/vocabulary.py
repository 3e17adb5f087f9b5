"""The field's names shared by every stage: primaries, skeletal sites and event types.

Integer codes index these tuples; tables on disk always carry the names.
"""

from __future__ import annotations

#: Primary tumours a cohort may mix (protocol ``[cohort].primary`` keys).
PRIMARIES: tuple[str, ...] = ("breast", "prostate", "lung", "head_and_neck")

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
SRE_TYPES: tuple[str, ...] = (
    "pathological_fracture",
    "spinal_cord_compression",
    "radiation_to_bone",
    "surgery_to_bone",
    "hypercalcaemia",
)
#: SRE types counted by default (the pivotal trials' definition; hypercalcaemia optional).
DEFAULT_SRE_TYPES: tuple[str, ...] = SRE_TYPES[:4]

#: Adverse events of bone-targeted agents.
ADVERSE_EVENTS: tuple[str, ...] = (
    "osteonecrosis_of_the_jaw",
    "hypocalcaemia",
    "renal_toxicity",
    "acute_phase_reaction",
    "atypical_femoral_fracture",
)

#: Every event type that may appear in ``events.parquet``.
EVENT_TYPES: tuple[str, ...] = SRE_TYPES + ("death", "dropout", "new_lesion") + ADVERSE_EVENTS

#: Julian-calendar averages used to convert the protocol's months and years into days.
DAYS_PER_YEAR: float = 365.25
DAYS_PER_MONTH: float = DAYS_PER_YEAR / 12


def __getattr__(name: str) -> tuple[str, ...]:
    """``DRUGS``: the drugs a protocol arm may name, one per module of :mod:`vtrial.model.agents`.

    Read from the agent registry when asked for (the registry imports this module).
    """
    if name == "DRUGS":
        from vtrial.model.agents import AGENTS

        return tuple(AGENTS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
