"""Protocol files: the pydantic schema, TOML/YAML loading, per-primary defaults and error messages.

The schema follows ``docs/protocol.md`` field by field. Cohort fields that the
contract lets a user give once for the whole cohort (``age_years``, ``ecog``, ...) resolve into
one complete profile per primary, ``cohort.by_primary.<primary>``, starting from the defaults
of ``vtrial/data/primaries.toml``: data-file default < ``[cohort]`` field <
``[cohort.by_primary.<primary>]`` field. The resolved protocol (:func:`protocol_to_toml`) holds
only the profiles, so loading it gives back an equal :class:`Protocol`.

Every problem a user can fix surfaces as one :class:`vtrial.errors.UserInputError` naming the
file, the dotted field (``arm[1].every_weeks``), what was wrong and the fix.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import stat
import reprlib
import tomllib
import typing
import warnings
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import annotated_types
import numpy as np
import tomli_w
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from vtrial.errors import ProtocolWarning, UserInputError
from vtrial.vocabulary import (
    BREAST_SUBTYPES,
    DAYS_PER_MONTH,
    DEFAULT_SRE_TYPES,
    NON_SKELETAL_EVENTS,
    PRIMARIES,
    PROSTATE_STAGES,
    SITES,
    CountableEventType,
    ProstateStage,
    SystemicTherapyName,
)

if TYPE_CHECKING:
    from vtrial.model.agents import Agent

#: Seed used when the protocol gives none.
DEFAULT_SEED = 20101
#: Landmarks of the cumulative incidence when the protocol gives none (those within the horizon,
#: else the horizon itself).
DEFAULT_LANDMARKS_MONTHS = (12.0, 24.0)
#: Tolerance on probabilities that must sum to one.
SUM_TOLERANCE = 1e-6
#: Largest number of bone lesions a patient can have at entry.
MAX_LESIONS = 50
#: Largest trial (patients): the engine plans every patient's arm in memory.
MAX_PATIENTS = 10_000_000
#: Latest data cut-off, in months (100 years).
MAX_HORIZON_MONTHS = 1200.0
#: Shortest dosing interval, in weeks: the model steps one day at a time.
MIN_INTERVAL_WEEKS = 1.0 / 7.0
#: Largest dose, in mg.
MAX_DOSE_MG = 100_000.0
#: Largest activity, in kBq per kg of body weight.
MAX_DOSE_KBQ_PER_KG = 100_000.0
#: Most administrations in one phase of a schedule.
MAX_DOSES = 100_000
#: Most fractions of one radiotherapy course.
MAX_FRACTIONS = 100
#: Stage of prostate cancer when the protocol gives none.
DEFAULT_PROSTATE_STAGE = PROSTATE_STAGES[0]
#: Bone-marker visits (weeks) when the protocol gives none (those within the horizon).
DEFAULT_MARKER_WEEKS = (13, 25, 49)
#: Usual dose per administration of each named drug: (low, high, unit, usual regimen). A dose
#: outside runs, with a :class:`vtrial.errors.ProtocolWarning`.
PLAUSIBLE_DOSE: dict[str, tuple[float, float, str, str]] = {
    "zoledronic_acid": (1.0, 8.0, "mg", "label 4 mg every 3-4 weeks, 3.0-3.5 mg with renal impairment"),
    "pamidronate": (30.0, 180.0, "mg", "label 90 mg every 3-4 weeks"),
    "denosumab": (30.0, 240.0, "mg", "Xgeva 120 mg every 4 weeks, Prolia 60 mg every 6 months"),
    "radium_223": (20.0, 110.0, "kBq/kg", "Xofigo 55 kBq/kg every 4 weeks, 6 injections"),
}
#: Injections of radium-223 on the label; more (or an open-ended schedule) gives a warning.
RADIUM_LABEL_DOSES = 6
#: Radiotherapy: largest usual dose per fraction (Gy; stereotactic single fraction), largest
#: usual dose per fraction of conventional technique, largest usual total dose of one course.
MAX_GY_PER_FRACTION, MAX_CONVENTIONAL_GY_PER_FRACTION, MAX_COURSE_GY = 24.0, 10.0, 60.0
#: Widest usual non-inferiority margins: hazard ratio of time to first SRE, and risk difference of
#: the proportion with an SRE (wider margins run, with a warning).
MAX_USUAL_NI_HR, MAX_USUAL_NI_RD = 1.5, 0.15
#: Oldest age a cohort may reach, in years.
MAX_AGE_YEARS = 120.0
#: Largest protocol file, in bytes (1 MiB; a full protocol is a few kilobytes).
MAX_PROTOCOL_BYTES = 1 << 20
#: Longest trial name, so that ``.<name>.partial`` and ``<name>-batch`` stay valid file names.
MAX_NAME_LENGTH = 128

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_RESERVED_NAME = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])", re.IGNORECASE)
#: The protocol field that carries a dose in each unit an agent may be dosed in (``Agent.dose_unit``).
DOSE_FIELDS: dict[str, str] = {"mg": "dose_mg", "kBq/kg": "dose_kbq_per_kg"}

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]


#: The user's reference of every protocol field, named in error messages.
DOCS = "docs/protocol.md"
#: Fields written as TOML arrays of tables (``[[arm]]``), named in the fix of a ``[arm]`` written once or twice.
LIST_TABLES = ("arm", "then", "concurrent")


def _agents() -> dict[str, Agent]:
    """The agent registry, by drug name (imported when first needed: ``vtrial.model`` imports this module)."""
    from vtrial.model.agents import AGENTS

    return AGENTS


def _invalid(problem: str, fix: str, field: str = "") -> PydanticCustomError:
    """A validation error carrying its own fix (and a sub-field appended to the error location)."""
    return PydanticCustomError("vtrial", "{problem}", {"problem": problem, "fix": fix, "field": field})


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 3, 80, 80


def _show(value: Any) -> str:
    """``repr(value)``, shortened (a value may be huge or nested thousands of levels deep)."""
    return _SHORT_REPR.repr(value)


def _closest(word: object, choices: typing.Iterable[str]) -> str:
    """' Did you mean X?' for the closest valid choice, or ''."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


def _at_most_daily(weeks: float) -> float:
    """A dosing interval the model's one-day time step can represent."""
    if weeks < MIN_INTERVAL_WEEKS:
        raise _invalid(
            f"every_weeks = {weeks} is shorter than a day, the model's time step",
            "use every_weeks = 0.142857 (daily) or more, e.g. every_weeks = 4.0",
        )
    return weeks


def _listed_once(names: list[str]) -> list[str]:
    """A list of names in which no name is repeated."""
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _invalid(f"{name!r} is listed twice", "list each name once")
    return names


DoseMg = Annotated[float, Field(gt=0.0, le=MAX_DOSE_MG)]
DoseKbqPerKg = Annotated[float, Field(gt=0.0, le=MAX_DOSE_KBQ_PER_KG)]
IntervalWeeks = Annotated[float, Field(gt=0.0), AfterValidator(_at_most_daily)]
DoseCount = Annotated[int, Field(ge=1, le=MAX_DOSES)]
SystemicTherapy = Annotated[list[SystemicTherapyName], AfterValidator(_listed_once)]


@dataclass(frozen=True)
class _Drug(annotated_types.GroupedMetadata):
    """A ``drug`` field: the name of a registered agent that ``accepts`` (an enum in the JSON Schema).

    The registry is read when a protocol is validated or the schema is written, not at import,
    so an agent module added to :mod:`vtrial.model.agents` is a valid drug at once. Pydantic
    expands the group into its validator and its schema.
    """

    accepts: typing.Callable[[Agent], bool]

    def _allowed(self) -> list[str]:
        return [name for name, agent in _agents().items() if self.accepts(agent)]

    def _known(self, drug: str) -> str:
        names = self._allowed()
        if drug not in names:
            raise _invalid(f"{_show(drug)} is not allowed.{_closest(drug, names)}", f"use one of: {', '.join(names)}")
        return drug

    def _enum(self, schema: dict[str, Any]) -> None:
        schema["enum"] = self._allowed()

    def __iter__(self) -> typing.Iterator[object]:
        yield AfterValidator(self._known)
        yield Field(json_schema_extra=self._enum)


#: Any agent; an agent given on a schedule of its own (not placebo); one also given before randomisation.
AnyDrug = Annotated[str, _Drug(lambda agent: True)]
DosedDrug = Annotated[str, _Drug(lambda agent: agent.dosed)]
PriorDrug = Annotated[str, _Drug(lambda agent: agent.dosed and not agent.takes_mechanism)]


class _Schema(BaseModel):
    """Base of every protocol table: unknown keys are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# [trial]


class Trial(_Schema):
    """``[trial]``: identity, size and timeline of the trial."""

    name: str
    title: str = ""
    design: Literal["parallel", "paired"] = "parallel"
    patients: int = Field(ge=1, le=MAX_PATIENTS)
    horizon_months: float = Field(gt=0.0, le=MAX_HORIZON_MONTHS)
    accrual_months: NonNegativeFloat = 0.0
    dropout_per_year: NonNegativeFloat = 0.0
    seed: int = Field(DEFAULT_SEED, ge=0, lt=2**63)

    @field_validator("name")
    @classmethod
    def _names_a_folder(cls, name: str) -> str:
        if not _FOLDER_NAME.fullmatch(name):
            raise _invalid(
                f"{_show(name)} cannot name a run folder",
                "use only letters, digits, '-' and '_' (no spaces, '/', '.'), e.g. name = \"breast-dmab\"",
            )
        if len(name) > MAX_NAME_LENGTH:
            raise _invalid(
                f"the name is {len(name)} characters long, more than {MAX_NAME_LENGTH}",
                f"shorten the name to at most {MAX_NAME_LENGTH} characters",
            )
        if _RESERVED_NAME.fullmatch(name):
            raise _invalid(
                f"{name!r} is a reserved device name on Windows and cannot name a folder there",
                'choose another name, e.g. name = "trial-1"',
            )
        return name


# --------------------------------------------------------------------------------------------
# [cohort] and its per-primary profiles


class Distribution(_Schema):
    """A normal distribution truncated to ``[min, max]``; ``mean`` and ``sd`` before truncation."""

    mean: float
    sd: PositiveFloat
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if not self.min < self.max:
            raise _invalid(f"min ({self.min}) must be below max ({self.max})", "swap or correct min and max")
        if not self.min <= self.mean <= self.max:
            raise _invalid(
                f"mean ({self.mean}) lies outside [min, max] = [{self.min}, {self.max}]",
                "give a mean between min and max",
            )
        return self


class Lesions(_Schema):
    """Bone lesions at entry: ``1 + NegativeBinomial(mean - 1, size=dispersion)``, capped."""

    mean: float = Field(ge=1.0, le=MAX_LESIONS)
    dispersion: PositiveFloat = 2.0


class Phenotype(_Schema):
    """Probabilities that a patient's bone disease is lytic, mixed or blastic."""

    lytic: Probability
    mixed: Probability
    blastic: Probability

    @model_validator(mode="after")
    def _sums_to_one(self) -> Phenotype:
        total = self.lytic + self.mixed + self.blastic
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise _invalid(f"lytic + mixed + blastic = {total:.6g}, not 1", "make the three probabilities sum to 1")
        return self


class LesionBurden(_Schema):
    """Initial tumour burden per lesion (fraction of local capacity): log-normal."""

    median: float = Field(gt=1e-4, lt=0.5)
    sd_log: NonNegativeFloat


class BiologySpread(_Schema):
    """Standard deviations of the log of the per-patient biology multipliers (median 1)."""

    tumour_growth_rate: NonNegativeFloat
    pthrp_secretion: NonNegativeFloat
    osteoblastic_drive: NonNegativeFloat


class PrimaryProfile(_Schema):
    """Every cohort distribution of one primary tumour (the resolved defaults)."""

    age_years: Distribution
    female_fraction: Probability
    ecog: list[Probability] = Field(min_length=3, max_length=3)
    prior_sre: Probability
    creatinine_clearance_ml_min: Distribution
    lesions: Lesions
    visceral_metastases: Probability
    dental_risk: Probability
    vitamin_d_deficiency: Probability
    sites: dict[str, Probability]
    phenotype: Phenotype
    lesion_burden: LesionBurden
    biology_sd_log: BiologySpread
    systemic_therapy: SystemicTherapy

    @field_validator("age_years", "creatinine_clearance_ml_min")
    @classmethod
    def _not_negative(cls, value: Distribution) -> Distribution:
        if value.min < 0:
            raise _invalid(f"min ({value.min}) is negative", "use a min of 0 or more", field="min")
        return value

    @field_validator("age_years")
    @classmethod
    def _human_age(cls, value: Distribution) -> Distribution:
        if value.max > MAX_AGE_YEARS:
            raise _invalid(
                f"max ({value.max}) is above {MAX_AGE_YEARS:g} years",
                f"use a max of {MAX_AGE_YEARS:g} or less",
                field="max",
            )
        return value

    @field_validator("ecog")
    @classmethod
    def _ecog_sums_to_one(cls, ecog: list[float]) -> list[float]:
        if abs(sum(ecog) - 1.0) > SUM_TOLERANCE:
            raise _invalid(
                f"ECOG 0/1/2 probabilities {ecog} sum to {sum(ecog):.6g}, not 1",
                "make the three probabilities sum to 1",
            )
        return ecog

    @field_validator("sites")
    @classmethod
    def _known_sites_sum_to_one(cls, sites: dict[str, float]) -> dict[str, float]:
        for site in sites:
            if site not in SITES:
                raise _invalid(
                    f"unknown skeletal site {site!r}.{_closest(site, SITES)}",
                    f"use sites among {', '.join(SITES)}",
                    field=site,
                )
        if abs(sum(sites.values()) - 1.0) > SUM_TOLERANCE:
            raise _invalid(f"site probabilities sum to {sum(sites.values()):.6g}, not 1", "make them sum to 1")
        return sites


class Eligibility(_Schema):
    """``[cohort.eligibility]``: filters applied while sampling (resampled, never dropped)."""

    min_creatinine_clearance_ml_min: NonNegativeFloat = 0.0
    max_ecog: int = Field(2, ge=0, le=2)


@functools.cache
def _data_file() -> dict[str, Any]:
    """The parsed ``vtrial/data/primaries.toml``."""
    return tomllib.loads((files("vtrial") / "data" / "primaries.toml").read_text(encoding="utf-8"))


def _figures(entry: dict[str, Any]) -> Any:
    """An entry of the data file without its ``source``: the ``value`` or the table of figures."""
    figures = {k: v for k, v in entry.items() if k != "source"}
    return figures["value"] if set(figures) == {"value"} else figures


def primary_defaults(primary: str, prostate_stage: str = DEFAULT_PROSTATE_STAGE) -> dict[str, Any]:
    """Default profile of one primary tumour from the data file (a fresh dict, no sources).

    For prostate cancer the defaults of ``prostate_stage`` (``[prostate_stage.<stage>]``) are
    laid over those of the primary.
    """
    entries = dict(_data_file()["primary"][primary])
    if primary == "prostate":
        entries.update(_data_file()["prostate_stage"][prostate_stage])
    return {field: _figures(entry) for field, entry in entries.items()}


def breast_subtype_defaults() -> dict[str, float]:
    """Default breast-cancer subtype mix of the data file (``[breast_subtype]``, no source)."""
    figures: dict[str, float] = _figures(_data_file()["breast_subtype"])
    return figures


def lesion_phenotype() -> dict[str, Any]:
    """Logit-normal blastic fraction of lesions by class: ``blastic_fraction_median``, ``logit_sd``."""
    return _figures(_data_file()["lesion_phenotype"])


def _merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``, recursively for tables."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in override.items()}}
    return override


class PriorTreatment(_Schema):
    """``[cohort.prior_treatment]``: bone-targeted treatment every patient received before randomisation."""

    drug: PriorDrug
    dose_mg: DoseMg | None = None
    dose_kbq_per_kg: DoseKbqPerKg | None = None
    every_weeks: IntervalWeeks
    months: Annotated[float, Field(gt=0.0, le=MAX_HORIZON_MONTHS)]

    @model_validator(mode="after")
    def _complete(self) -> PriorTreatment:
        _check_regimen(self)
        return self

    def dosing_plan(self) -> list[DosingPhase]:
        """The prior schedule as one phase ending at randomisation (day 0; negative days before it)."""
        return [_dosing_phase(self, -self.months * DAYS_PER_MONTH, 0.0, None)]


def _check_weights(
    weights: dict[str, float], names: tuple[str, ...], what: str, table: str, empty: str, fix: str
) -> dict[str, float]:
    """A table of relative weights over ``names``: known keys, no negative weight, a positive finite sum.

    ``what`` names one key in messages ("primary tumour"), ``table`` the table ("primary").
    """
    for key, weight in weights.items():
        if key not in names:
            raise _invalid(
                f"unknown {what} {key!r}.{_closest(key, names)}", f"use weights over {', '.join(names)}", field=key
            )
        if weight < 0:
            raise _invalid(f"weight {weight} is negative", "use a weight of 0 or more", field=key)
    if not 0 < sum(weights.values()) < float("inf"):
        raise _invalid(f"the {table} weights sum to {sum(weights.values())}: {empty}", fix)
    return weights


class Cohort(_Schema):
    """``[cohort]``: primary-tumour mix, eligibility and the resolved profile of each primary.

    ``prostate_stage`` is set (default ``castration_resistant``) exactly when prostate is one
    of the primaries, and ``breast_subtype`` (the mix of breast-cancer subtypes, default from the
    data file) exactly when breast is; ``systemic_therapy`` resolves into each profile like the
    other cohort-wide fields, its default depending on the primary and the prostate stage.
    """

    primary: dict[str, float]
    prostate_stage: ProstateStage | None = None
    breast_subtype: dict[str, float] | None = None
    eligibility: Eligibility = Field(default_factory=Eligibility)
    prior_treatment: PriorTreatment | None = None
    by_primary: dict[str, PrimaryProfile] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _resolve_profiles(cls, data: Any) -> Any:
        """Fold the cohort-wide fields and the data-file defaults into one profile per primary."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        cohort_wide = {k: data.pop(k) for k in PrimaryProfile.model_fields if k in data}
        weights, explicit = data.get("primary"), data.get("by_primary", {})
        if not isinstance(weights, dict) or not isinstance(explicit, dict):
            return data
        if "prostate" in weights and data.get("prostate_stage") is None:
            data["prostate_stage"] = DEFAULT_PROSTATE_STAGE
        if "breast" in weights and data.get("breast_subtype") is None:
            data["breast_subtype"] = breast_subtype_defaults()
        stage = data.get("prostate_stage")
        resolved = dict(explicit)
        for primary in weights:
            if primary in PRIMARIES:
                # prostate patients are always male, whatever the cohort-wide fraction
                own = {k: v for k, v in cohort_wide.items() if (primary, k) != ("prostate", "female_fraction")}
                # an unknown stage is reported by the field's own validation; the defaults are the default stage's
                defaults = primary_defaults(primary, stage if stage in PROSTATE_STAGES else DEFAULT_PROSTATE_STAGE)
                resolved[primary] = _merge(_merge(defaults, own), explicit.get(primary, {}))
        data["by_primary"] = resolved
        return data

    @field_validator("primary")
    @classmethod
    def _known_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        return _check_weights(
            weights,
            PRIMARIES,
            "primary tumour",
            "primary",
            "no patient can be sampled",
            "give at least one primary a positive weight and keep the weights small, e.g. primary = { breast = 1.0 }",
        )

    @field_validator("breast_subtype")
    @classmethod
    def _known_subtypes(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is None:
            return None
        return _check_weights(
            weights,
            BREAST_SUBTYPES,
            "breast-cancer subtype",
            "subtype",
            "no breast patient can be sampled",
            "give at least one subtype a positive weight, e.g. breast_subtype = { hr_positive = 1.0 }",
        )

    @model_validator(mode="after")
    def _consistent(self) -> Cohort:
        if self.breast_subtype is not None and "breast" not in self.primary:
            raise _invalid(
                "breast_subtype is given, but breast has no weight in cohort.primary",
                "remove breast_subtype (it applies to breast cancer only) or add breast to cohort.primary",
                field="breast_subtype",
            )
        if self.prostate_stage is not None and "prostate" not in self.primary:
            raise _invalid(
                f"prostate_stage = {self.prostate_stage!r}, but prostate has no weight in cohort.primary",
                "remove prostate_stage (it applies to prostate cancer only) or add prostate to cohort.primary",
                field="prostate_stage",
            )
        for primary, profile in self.by_primary.items():
            if primary not in self.primary:
                raise _invalid(
                    f"profile for {primary!r}, which has no weight in cohort.primary",
                    f"add {primary} to cohort.primary or remove [cohort.by_primary.{primary}]",
                    field=f"by_primary.{primary}",
                )
            if primary == "prostate" and profile.female_fraction != 0:
                raise _invalid(
                    "prostate patients are always male",
                    "set female_fraction = 0.0 for prostate or remove it",
                    field="by_primary.prostate.female_fraction",
                )
            if sum(profile.ecog[: self.eligibility.max_ecog + 1]) <= 0:
                raise _invalid(
                    f"no {primary} patient has ECOG <= {self.eligibility.max_ecog}",
                    "raise max_ecog or give those ECOG levels a positive probability",
                    field="eligibility.max_ecog",
                )
            if self.eligibility.min_creatinine_clearance_ml_min >= profile.creatinine_clearance_ml_min.max:
                raise _invalid(
                    f"every {primary} patient has creatinine clearance below "
                    f"{self.eligibility.min_creatinine_clearance_ml_min} mL/min",
                    f"use a minimum below {profile.creatinine_clearance_ml_min.max}",
                    field="eligibility.min_creatinine_clearance_ml_min",
                )
        return self


# --------------------------------------------------------------------------------------------
# [[arm]]


@dataclass(frozen=True)
class DosingPhase:
    """One phase of a dosing plan: ``agent`` every ``every_weeks`` from ``start_day`` until ``end_day``.

    Days count from randomisation (a prior treatment has negative days). ``end_day`` is
    ``math.inf`` when the phase runs to the end of follow-up; ``doses``, when set, caps the
    administrations of the phase. ``dose`` is in ``dose_unit`` ("mg" or "kBq/kg"; None and ""
    for ``"none"``, a holiday, and for a custom agent without dose_mg). ``concurrent`` marks an
    agent given alongside the arm's main schedule rather than replacing it.
    """

    agent: str
    dose: float | None
    dose_unit: str
    every_weeks: float | None
    doses: int | None
    start_day: float
    end_day: float
    concurrent: bool = False

    def administration_days(self, until: float = math.inf) -> np.ndarray:
        """Days of the administrations: every ``every_weeks`` from ``start_day``, before ``end_day`` and ``until``."""
        if self.every_weeks is None:  # placebo or a holiday
            return np.empty(0)
        stop = min(self.end_day, until)
        if self.doses is not None:
            stop = min(stop, self.start_day + 7.0 * self.every_weeks * (self.doses - 0.5))
        return np.arange(self.start_day, max(stop, self.start_day), 7.0 * self.every_weeks)


def _check_regimen(schedule: Any) -> None:
    """Dose and interval of a schedule (an arm, a phase, a concurrent agent, a prior treatment) are complete.

    Each agent is dosed in its ``dose_unit`` (the field of :data:`DOSE_FIELDS`: radium-223 by
    activity per body weight, ``dose_kbq_per_kg``, the others in mg); an agent that ``needs_dose``
    needs that field, and every ``dosed`` agent needs ``every_weeks``.
    """
    drug = schedule.drug
    agent = _agents()[drug]
    own = DOSE_FIELDS[agent.dose_unit]
    if own != "dose_mg" and schedule.dose_mg is not None:
        raise _invalid(
            f"{drug} is dosed by activity per body weight, not in mg",
            f"replace dose_mg with {own}: {agent.label_regimen}",
            field="dose_mg",
        )
    for unit, field in DOSE_FIELDS.items():
        if field not in (own, "dose_mg") and getattr(schedule, field) is not None:
            users = " or ".join(name for name, a in _agents().items() if a.dose_unit == unit)
            fix = f"write {agent.label_regimen}" if agent.needs_dose else f"remove {field}"
            raise _invalid(f"{field} is the activity of {users}, but drug = {drug!r}", fix, field=field)
    if getattr(schedule, own) is None and agent.needs_dose:
        raise _invalid(f"drug {drug!r} needs a dose", f"add {agent.label_regimen}", field=own)
    if schedule.every_weeks is None and agent.dosed:
        raise _invalid(f"drug {drug!r} needs a dosing interval", f"add {agent.label_regimen}", field="every_weeks")


def _dosing_phase(
    schedule: Any, start_day: float, end_day: float, doses: int | None, concurrent: bool = False
) -> DosingPhase:
    """The :class:`DosingPhase` of a validated schedule."""
    agent = _agents()[schedule.drug]
    dose = getattr(schedule, DOSE_FIELDS[agent.dose_unit])
    given = agent.dosed
    return DosingPhase(
        agent=schedule.drug,
        dose=dose if given else None,
        dose_unit=agent.dose_unit if given and dose is not None else "",
        every_weeks=schedule.every_weeks if given else None,
        doses=doses if given else None,
        start_day=start_day,
        end_day=end_day,
        concurrent=concurrent,
    )


class Mechanism(_Schema):
    """``[arm.mechanism]``: fractional effects of a custom agent at full exposure of its reference dose."""

    rankl_inhibition: Probability = 0.0
    osteoclast_inhibition: Probability = 0.0
    tgf_beta_inhibition: Probability = 0.0
    pthrp_inhibition: Probability = 0.0
    tumour_kill: Probability = 0.0
    homing_inhibition: Probability = 0.0
    osteoblast_drive_inhibition: Probability = 0.0
    bone_formation_stimulation: Probability = 0.0
    il6_inhibition: Probability = 0.0
    half_life_days: PositiveFloat
    #: dose (mg) at which the fractions hold; an arm's ``dose_mg`` acts relative to it (vtrial/model/agents/custom.py)
    reference_dose_mg: Annotated[float, Field(gt=0.0, le=MAX_DOSE_MG)] | None = None


class Phase(_Schema):
    """``[[arm.then]]``: a later phase of an arm's schedule, replacing the one before (``"none"``: a holiday)."""

    after_months: Annotated[float, Field(gt=0.0, le=MAX_HORIZON_MONTHS)]
    drug: AnyDrug
    dose_mg: DoseMg | None = None
    dose_kbq_per_kg: DoseKbqPerKg | None = None
    every_weeks: IntervalWeeks | None = None
    doses: DoseCount | None = None

    @model_validator(mode="after")
    def _complete(self) -> Phase:
        _check_regimen(self)
        return self


class Concurrent(_Schema):
    """``[[arm.concurrent]]``: a further agent given alongside the arm's schedule, on its own schedule."""

    drug: DosedDrug
    dose_mg: DoseMg | None = None
    dose_kbq_per_kg: DoseKbqPerKg | None = None
    every_weeks: IntervalWeeks
    doses: DoseCount | None = None
    after_months: Annotated[float, Field(ge=0.0, le=MAX_HORIZON_MONTHS)] = 0.0

    @model_validator(mode="after")
    def _complete(self) -> Concurrent:
        _check_regimen(self)
        return self


class Radiotherapy(_Schema):
    """``[arm.radiotherapy]``: the course of radiotherapy to bone whenever the arm gives one."""

    dose_gy: Annotated[float, Field(gt=0.0)] = 8.0
    fractions: Annotated[int, Field(ge=1, le=MAX_FRACTIONS)] = 1
    technique: Literal["conventional", "stereotactic"] = "conventional"
    prophylactic: bool = False
    at_entry: bool = False


class Surgery(_Schema):
    """``[arm.surgery]``: orthopaedic policy of the arm."""

    prophylactic_fixation: bool = True


class Arm(_Schema):
    """``[[arm]]``: one treatment arm.

    Its schedule is ``drug`` from randomisation, then each ``then`` phase from its
    ``after_months``, with the ``concurrent`` agents alongside; ``stop_after_months`` ends all
    of them. :meth:`dosing_plan` gives the whole plan as one list.
    """

    name: str = Field(min_length=1)
    label: str | None = Field(None, min_length=1, max_length=60)
    drug: AnyDrug
    dose_mg: DoseMg | None = None
    dose_kbq_per_kg: DoseKbqPerKg | None = None
    every_weeks: IntervalWeeks | None = None
    doses: DoseCount | None = None
    allocation: PositiveFloat = 1.0
    calcium_vitamin_d: bool = True
    stop_after_months: PositiveFloat | None = None
    renal_adjustment: bool = True
    withhold_on_renal_toxicity: bool = True
    stop_on_onj: bool = True
    systemic_therapy: SystemicTherapy | None = None
    mechanism: Mechanism | None = None
    then: list[Phase] = Field(default_factory=list)
    concurrent: list[Concurrent] = Field(default_factory=list)
    radiotherapy: Radiotherapy = Field(default_factory=Radiotherapy)
    surgery: Surgery = Field(default_factory=Surgery)

    @model_validator(mode="after")
    def _drug_needs(self) -> Arm:
        agents = _agents()
        described: list[tuple[str, Phase | Concurrent]] = [(f"then[{i}]", p) for i, p in enumerate(self.then)]
        described += [(f"concurrent[{i}]", c) for i, c in enumerate(self.concurrent)]
        described = [(part, s) for part, s in described if agents[s.drug].takes_mechanism]
        if agents[self.drug].takes_mechanism and self.mechanism is None:
            raise _invalid(
                "drug 'custom' needs an [arm.mechanism] table saying where the agent acts",
                "add [arm.mechanism] with e.g. tgf_beta_inhibition = 0.6 and half_life_days = 14.0",
                field="mechanism",
            )
        if described and self.mechanism is None:
            part, schedule = described[0]
            raise _invalid(
                f"{part} gives drug {schedule.drug!r}, which needs an [arm.mechanism] table saying where the agent acts",
                "add [arm.mechanism] with e.g. tgf_beta_inhibition = 0.6 and half_life_days = 14.0",
                field="mechanism",
            )
        if not agents[self.drug].takes_mechanism and not described and self.mechanism is not None:
            raise _invalid(
                f"a mechanism describes a custom agent, but drug = {self.drug!r}",
                'remove [arm.mechanism] or set drug = "custom"',
                field="mechanism",
            )
        mechanism_doses = [self.dose_mg] if agents[self.drug].takes_mechanism else []
        mechanism_doses += [s.dose_mg for _, s in described]
        given = [d for d in mechanism_doses if d is not None]
        if given and self.mechanism is not None and self.mechanism.reference_dose_mg is None:
            raise _invalid(
                f"dose_mg = {given[0]} needs the dose at which the mechanism's fractions hold",
                "add reference_dose_mg (mg) to [arm.mechanism], or remove dose_mg to give the reference dose",
                field="mechanism.reference_dose_mg",
            )
        _check_regimen(self)
        stop = self.stop_after_months
        for i, phase in enumerate(self.then):
            if i and phase.after_months <= self.then[i - 1].after_months:
                raise _invalid(
                    f"the phase starts at month {phase.after_months:g}, not after the phase before it "
                    f"(month {self.then[i - 1].after_months:g})",
                    "list the [[arm.then]] phases in order, each after_months later than the one before",
                    field=f"then[{i}].after_months",
                )
        for part, i, start in [
            *(("then", i, p.after_months) for i, p in enumerate(self.then)),
            *(("concurrent", i, c.after_months) for i, c in enumerate(self.concurrent)),
        ]:
            if stop is not None and start >= stop:
                raise _invalid(
                    f"starts at month {start:g}, when the arm's treatment has stopped (stop_after_months = {stop:g})",
                    "start it before stop_after_months, or remove stop_after_months "
                    '(a [[arm.then]] phase with drug = "none" stops treatment from its after_months)',
                    field=f"{part}[{i}].after_months",
                )
        return self

    def dosing_plan(self) -> list[DosingPhase]:
        """Every phase of the arm's schedule, ordered by start day (main schedule first on ties).

        The main schedule is ``drug`` from day 0, each ``then`` phase replacing the one before
        from its start; ``concurrent`` agents run from their own start; ``stop_after_months``
        ends every phase. Holidays (``"none"``) are phases of their own.
        """
        stop = math.inf if self.stop_after_months is None else self.stop_after_months * DAYS_PER_MONTH
        schedules: list[Arm | Phase] = [self, *self.then]
        starts = [0.0, *(p.after_months * DAYS_PER_MONTH for p in self.then)]
        ends = [*starts[1:], stop]
        plan = [
            _dosing_phase(schedule, start, min(end, stop), schedule.doses)
            for schedule, start, end in zip(schedules, starts, ends)
        ]
        plan += [
            _dosing_phase(c, c.after_months * DAYS_PER_MONTH, stop, c.doses, concurrent=True) for c in self.concurrent
        ]
        return sorted(plan, key=lambda phase: phase.start_day)


# --------------------------------------------------------------------------------------------
# [analysis] and the protocol


class Analysis(_Schema):
    """``[analysis]``: reference arm, SRE definition, landmarks, bone-marker visits and non-inferiority margins."""

    reference_arm: str | None = None
    sre_types: Annotated[list[CountableEventType], AfterValidator(_listed_once)] = Field(
        default_factory=lambda: list(DEFAULT_SRE_TYPES), min_length=1
    )
    sre_window_days: NonNegativeFloat = 21.0
    landmarks_months: list[PositiveFloat] | None = Field(None, min_length=1)
    marker_weeks: list[Annotated[int, Field(ge=1)]] | None = None
    #: largest hazard ratio of time to first SRE (arm vs reference) that is still non-inferior
    non_inferiority_hr: Annotated[float, Field(gt=1.0, lt=100.0)] | None = None
    #: largest excess of the proportion with an SRE (arm minus reference) that is still non-inferior
    non_inferiority_rd: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None

    @field_validator("landmarks_months", "marker_weeks")
    @classmethod
    def _increasing(cls, times: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if times is not None and any(b <= a for a, b in zip(times, times[1:])):
            raise _invalid(f"{info.field_name} {times} are not increasing", "list them in increasing order, once each")
        return times


class Protocol(_Schema):
    """A whole protocol file, resolved: every default filled in."""

    trial: Trial
    cohort: Cohort
    arm: list[Arm] = Field(min_length=1)
    analysis: Analysis = Field(default_factory=Analysis)

    @property
    def reference_arm(self) -> str:
        """The arm the others are compared with: ``[analysis].reference_arm``, by default the first arm."""
        return self.analysis.reference_arm or self.arm[0].name

    @model_validator(mode="after")
    def _cross_field(self) -> Protocol:
        trial = self.trial
        if trial.accrual_months >= trial.horizon_months:
            raise _invalid(
                f"accrual ({trial.accrual_months} months) must end before the data cut-off "
                f"({trial.horizon_months} months)",
                "shorten accrual_months or lengthen horizon_months",
                field="trial.accrual_months",
            )
        names = [arm.name for arm in self.arm]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _invalid(
                    f"arm name {name!r} is used twice", "give every arm a unique name", field=f"arm[{i}].name"
                )
        if self.analysis.reference_arm is None:
            self.analysis.reference_arm = self.reference_arm
        elif self.analysis.reference_arm not in names:
            raise _invalid(
                f"reference arm {self.analysis.reference_arm!r} is not an arm.{_closest(self.analysis.reference_arm, names)}",
                f"use one of the arm names: {', '.join(names)}",
                field="analysis.reference_arm",
            )
        if self.analysis.landmarks_months is None:
            within = [m for m in DEFAULT_LANDMARKS_MONTHS if m <= trial.horizon_months]
            self.analysis.landmarks_months = within or [trial.horizon_months]
        for i, landmark in enumerate(self.analysis.landmarks_months):
            if landmark > trial.horizon_months:
                raise _invalid(
                    f"landmark {landmark} months lies after the data cut-off ({trial.horizon_months} months)",
                    "use landmarks within (0, horizon_months]",
                    field=f"analysis.landmarks_months[{i}]",
                )
        horizon_weeks = trial.horizon_months * DAYS_PER_MONTH / 7.0
        if self.analysis.marker_weeks is None:
            self.analysis.marker_weeks = [w for w in DEFAULT_MARKER_WEEKS if w <= horizon_weeks]
        for i, week in enumerate(self.analysis.marker_weeks):
            if week > horizon_weeks:
                raise _invalid(
                    f"week {week} lies after the data cut-off ({trial.horizon_months:g} months = "
                    f"{horizon_weeks:.1f} weeks)",
                    "use marker weeks within the horizon",
                    field=f"analysis.marker_weeks[{i}]",
                )
        for a, arm in enumerate(self.arm):
            for part, i, start in [
                *(("then", i, p.after_months) for i, p in enumerate(arm.then)),
                *(("concurrent", i, c.after_months) for i, c in enumerate(arm.concurrent)),
            ]:
                if start >= trial.horizon_months:
                    raise _invalid(
                        f"starts at month {start:g}, at or after the data cut-off ({trial.horizon_months:g} months): "
                        "no patient receives it",
                        "start it before horizon_months or remove it",
                        field=f"arm[{a}].{part}[{i}].after_months",
                    )
        return self


# --------------------------------------------------------------------------------------------
# loading, errors, writing


def load_protocol(path: str | Path) -> Protocol:
    """Read, validate and resolve a protocol file (TOML, or YAML for ``.yaml``/``.yml``).

    Raises
    ------
    UserInputError
        Missing or unreadable file, bad syntax, unknown key, wrong type or value.
    """
    path = Path(path)
    raw = _read_protocol_bytes(path)
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is dropped
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise UserInputError("is not a text file", file=path, fix="give a protocol written in TOML or YAML")
    if not text.strip():
        raise UserInputError(
            "the file is empty",
            file=path,
            fix="write [trial], [cohort] and [[arm]] tables (see protocols/example.toml)",
        )
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        data = _parse_yaml(text, path) if is_yaml else _parse_toml(text, path)
        return _validate(data, str(path), text, is_yaml)
    except RecursionError:
        raise _too_deep(path) from None


def _read_protocol_bytes(path: Path) -> bytes:
    """The bytes of a protocol file: a regular file of at most :data:`MAX_PROTOCOL_BYTES`.

    The file is opened without blocking and checked on the open descriptor, so a FIFO (which
    would wait for a writer forever) or a device such as ``/dev/zero`` (endless) is refused
    instead of hanging or filling the memory.
    """
    if path.is_dir():
        raise UserInputError(
            "is a directory, not a protocol file", file=path, fix="give the path of a .toml or .yaml file"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UserInputError("no such file", file=path, fix="check the path, e.g. protocols/example.toml") from None
    except OSError as error:
        raise UserInputError(
            f"cannot be read ({error.strerror})", file=path, fix="check the path and its permissions"
        ) from None
    except ValueError:  # a NUL character in the path
        raise UserInputError(
            "no such file", file=repr(str(path)), fix="give a path without control characters"
        ) from None
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserInputError(
                "is not a regular file (a pipe, a device or a socket)",
                file=path,
                fix="save the protocol to a .toml or .yaml file and give its path",
            )
        try:
            raw = handle.read(MAX_PROTOCOL_BYTES + 1)
        except OSError as error:
            raise UserInputError(
                f"cannot be read ({error.strerror})", file=path, fix="check the path and its permissions"
            ) from None
    if len(raw) > MAX_PROTOCOL_BYTES:
        raise UserInputError(
            f"is larger than 1 MiB ({MAX_PROTOCOL_BYTES:,} bytes), the most a protocol file may be",
            file=path,
            fix="give the protocol file itself (a protocol is a few kilobytes of TOML or YAML)",
        )
    return raw


def _too_deep(source: str | Path) -> UserInputError:
    return UserInputError(
        "is nested too deeply to be a protocol",
        file=source,
        fix="write the sections [trial], [cohort], [[arm]] and [analysis] with plain values (see docs/protocol.md)",
    )


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        at = re.search(r"\(at line (\d+), column \d+\)", str(error))
        message = str(error)[: at.start()].strip() if at else str(error)
        fix = "check the syntax on that line: text in quotes, tables as [name], lists as [a, b]"
        twice = re.fullmatch(r"Cannot declare \((.*)\) twice", message)
        name = re.findall(r"'([^']*)'", twice.group(1))[-1] if twice else None
        if name in LIST_TABLES:
            fix = (
                f"a list of {name} tables is written [[{name}]] (two brackets) above each {name}; "
                f"[{name}] declares a single table, once"
            )
        raise UserInputError(
            f"is not valid TOML: {message}",
            file=path,
            line=int(at.group(1)) if at else None,
            fix=f"{fix} ({DOCS} describes every field)",
        ) from None


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A YAML mapping that gives one key twice (PyYAML would keep the last silently)."""


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 (core schema) numbers and duplicate keys refused.

    PyYAML resolves numbers by YAML 1.1, where ``1:40`` is the base-60 number 100, ``017`` is
    octal and ``1_000`` is 1000; YAML 1.2 reads ``1:40`` and ``1_000`` as text (so they are
    rejected where a number is expected), ``017`` as 17 and ``1e3`` as a number. Booleans are
    left as PyYAML reads them.
    """

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise _DuplicateKey(None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml12_int(self, node: yaml.ScalarNode) -> int:
        value = self.construct_scalar(node)
        base = {"0o": 8, "0x": 16}.get(value[:2], 10)
        try:
            return int(value[2:] if base != 10 else value, base)
        except ValueError as error:  # more digits than Python converts
            raise yaml.constructor.ConstructorError(None, None, str(error).split(";")[0], node.start_mark) from None

    def construct_yaml12_float(self, node: yaml.ScalarNode) -> float:
        value = self.construct_scalar(node).lower()
        if value.lstrip("+-") == ".inf":
            return -math.inf if value.startswith("-") else math.inf
        return math.nan if value == ".nan" else float(value)


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _Yaml12Loader.construct_yaml12_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _Yaml12Loader.construct_yaml12_float)


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise UserInputError(
            f"is not valid YAML: {getattr(error, 'problem', None) or error}",
            file=path,
            line=mark.line + 1 if mark is not None else None,
            fix="remove one of the two (the last would otherwise win silently)"
            if isinstance(error, _DuplicateKey)
            else "check the indentation and the 'key: value' syntax on that line",
        ) from None
    if not isinstance(data, dict):
        raise UserInputError(
            f"the top level is a {type(data).__name__}, not a mapping of sections",
            file=path,
            fix="write the sections trial:, cohort:, arm: (a list) and analysis: at the top level",
        )
    return data


def parse_protocol(data: dict[str, Any], source: str) -> Protocol:
    """Validate and resolve a protocol given as a dict (``source`` names it in error messages)."""
    if not isinstance(data, dict):
        raise UserInputError("a protocol must be a mapping of sections", file=source, fix="give a dict")
    try:
        return _validate(data, source, None, False)
    except RecursionError:
        raise _too_deep(source) from None


def _validate(data: dict[str, Any], source: str, text: str | None, is_yaml: bool) -> Protocol:
    """The validated protocol; each implausible value raises a :class:`ProtocolWarning`."""
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as error:
        raise _user_error(error, data, source, text, is_yaml) from None
    for field, problem in plausibility_warnings(protocol):
        warnings.warn(ProtocolWarning(problem, file=source, field=field), stacklevel=3)
    return protocol


def _schedules(protocol: Protocol) -> typing.Iterator[tuple[str, Any]]:
    """Every dosing schedule of the protocol with its dotted field."""
    if protocol.cohort.prior_treatment is not None:
        yield "cohort.prior_treatment", protocol.cohort.prior_treatment
    for a, arm in enumerate(protocol.arm):
        yield f"arm[{a}]", arm
        yield from ((f"arm[{a}].then[{i}]", phase) for i, phase in enumerate(arm.then))
        yield from ((f"arm[{a}].concurrent[{i}]", agent) for i, agent in enumerate(arm.concurrent))


def plausibility_warnings(protocol: Protocol) -> list[tuple[str, str]]:
    """Valid but implausible values of a protocol: (dotted field, problem and usual range) pairs.

    In the order of the file: primary and breast-subtype weights written as fractions that do not
    sum to one (they are used as relative weights), doses outside :data:`PLAUSIBLE_DOSE`, radium-223 beyond its
    label's six injections, radiotherapy above the usual dose per fraction or per course,
    non-inferiority margins wider than :data:`MAX_USUAL_NI_HR` / :data:`MAX_USUAL_NI_RD`, and
    non-skeletal events counted as SREs.
    """
    found = []
    for field, weights in (
        ("cohort.primary", protocol.cohort.primary),
        ("cohort.breast_subtype", protocol.cohort.breast_subtype),
    ):
        total = sum((weights or {}).values())
        if weights and abs(total - 1.0) > SUM_TOLERANCE and not all(float(w).is_integer() for w in weights.values()):
            shares = ", ".join(f"{k} {w / total:.1%}" for k, w in weights.items())
            found.append(
                (
                    field,
                    f"the weights are fractions but sum to {total:.6g}, not 1; they are used "
                    f"as relative weights ({shares}); write fractions that sum to 1, or whole-number weights",
                )
            )
    for field, schedule in _schedules(protocol):
        if schedule.drug in PLAUSIBLE_DOSE:
            low, high, unit, usual = PLAUSIBLE_DOSE[schedule.drug]
            key = "dose_kbq_per_kg" if unit == "kBq/kg" else "dose_mg"
            dose = getattr(schedule, key)
            if not low <= dose <= high:
                found.append(
                    (
                        f"{field}.{key}",
                        f"{dose:g} {unit} of {schedule.drug} per administration is outside "
                        f"the usual {low:g}-{high:g} {unit} ({usual}); it runs as given",
                    )
                )
        doses = getattr(schedule, "doses", None)
        if (
            schedule.drug == "radium_223"
            and field != "cohort.prior_treatment"
            and (doses or math.inf) > RADIUM_LABEL_DOSES
        ):
            given = "no limit on the injections" if doses is None else f"{doses} injections"
            found.append(
                (
                    f"{field}.doses",
                    f"{given} of radium_223: the label gives {RADIUM_LABEL_DOSES} "
                    f"(write doses = {RADIUM_LABEL_DOSES}); it runs as given",
                )
            )
    for a, arm in enumerate(protocol.arm):
        rt, field = arm.radiotherapy, f"arm[{a}].radiotherapy.dose_gy"
        per_fraction = rt.dose_gy / rt.fractions
        course = f"{rt.dose_gy:g} Gy in {rt.fractions} fraction{'s' if rt.fractions > 1 else ''}"
        usual = (
            "usual courses: 8 Gy in 1, 20 Gy in 5 or 30 Gy in 10 fractions (conventional); "
            "16-24 Gy in 1, 24 Gy in 2 or 35 Gy in 5 fractions (stereotactic)"
        )
        if per_fraction > MAX_GY_PER_FRACTION:
            found.append(
                (
                    field,
                    f"{course} is {per_fraction:g} Gy per fraction, above the usual maximum of "
                    f"{MAX_GY_PER_FRACTION:g} Gy ({usual}); it runs as given",
                )
            )
        elif rt.technique == "conventional" and per_fraction > MAX_CONVENTIONAL_GY_PER_FRACTION:
            found.append(
                (
                    field,
                    f"{course} is {per_fraction:g} Gy per fraction, above the "
                    f"{MAX_CONVENTIONAL_GY_PER_FRACTION:g} Gy of conventional technique; is it "
                    f'technique = "stereotactic"? ({usual}); it runs as given',
                )
            )
        if rt.dose_gy > MAX_COURSE_GY:
            found.append(
                (
                    field,
                    f"{course} is more than the usual {MAX_COURSE_GY:g} Gy of one palliative "
                    f"course ({usual}); it runs as given",
                )
            )
    for name, widest, usual in (
        (
            "non_inferiority_hr",
            MAX_USUAL_NI_HR,
            "hazard-ratio margin of {:g} is wider than the usual 1.05-{:g} "
            "(the denosumab trials: 1.08 on time to first SRE)",
        ),
        (
            "non_inferiority_rd",
            MAX_USUAL_NI_RD,
            "risk-difference margin of {:g} is wider than the usual 0.02-{:g} of the proportion with an SRE",
        ),
    ):
        margin = getattr(protocol.analysis, name)
        if margin is not None and margin > widest:
            found.append((f"analysis.{name}", f"a {usual.format(margin, widest)}; it is used as given"))
    counted = [t for t in protocol.analysis.sre_types if t in NON_SKELETAL_EVENTS]
    if counted:
        found.append(
            (
                "analysis.sre_types",
                f"{', '.join(counted)} {'is' if len(counted) == 1 else 'are'} not "
                "skeletal; counted as SREs, they enter every SRE endpoint (usual SREs: "
                f"{', '.join(DEFAULT_SRE_TYPES)}, hypercalcaemia)",
            )
        )
    return found


_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "string_type": "text in quotes",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "list_type": "a list",
}


def _user_error(error: ValidationError, data: Any, source: str, text: str | None, is_yaml: bool) -> UserInputError:
    """Translate pydantic's errors into one UserInputError (the first problem, and a count of the rest)."""
    problems: dict[str, tuple[str, str, int | None]] = {}
    # an unknown key first: it is usually the misspelling of a key reported missing
    for err in sorted(error.errors(), key=lambda err: err["type"] != "extra_forbidden"):
        loc = _user_loc(err["loc"], data)
        ctx = err.get("ctx", {})
        if ctx.get("field"):
            loc = (*loc, *ctx["field"].replace("[", ".[").split("."))
        path = _dotted(loc)
        problem, fix = _explain(err, loc)
        key = next((p for p in reversed(loc) if isinstance(p, str) and not p.startswith("[")), None)
        line = (
            _line_of(text, key, is_yaml, first=err["type"] == "extra_forbidden")
            if key and err["type"] != "missing"
            else None
        )
        problems.setdefault(path, (problem, fix, line))
    path, (problem, fix, line) = next(iter(problems.items()))
    if DOCS not in fix:
        fix += f" ({DOCS} describes every field)"
    if len(problems) > 1:
        fix += f" ({len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}: run `vtrial check` again after this fix.)"
    return UserInputError(problem, file=source, field=path, fix=fix, line=line)


def _user_loc(loc: tuple, data: Any) -> tuple:
    """Report an error in a resolved profile at the ``[cohort]`` field the user wrote, if that is its origin."""
    if len(loc) >= 4 and loc[:2] == ("cohort", "by_primary"):
        cohort = data.get("cohort") if isinstance(data, dict) else None
        own = cohort.get("by_primary", {}) if isinstance(cohort, dict) else {}
        own = own.get(loc[2], {}) if isinstance(own, dict) else {}
        if isinstance(cohort, dict) and loc[3] in cohort and not (isinstance(own, dict) and loc[3] in own):
            return ("cohort", *loc[3:])
    return tuple(loc)


def _dotted(loc: tuple) -> str:
    """``("arm", 1, "every_weeks")`` -> ``"arm[1].every_weeks"``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("["):
            path += part
        else:
            path += f".{part}" if path else part
    return path


def _explain(err: ErrorDetails, loc: tuple) -> tuple[str, str]:
    """Problem and fix of one pydantic error."""
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    if kind == "vtrial":
        return ctx["problem"], ctx["fix"]
    if kind == "missing":
        return "is required but missing", f"add {loc[-1]} (see docs/protocol.md for its meaning and unit)"
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        return f"unknown key {loc[-1]!r}.{_closest(loc[-1], valid)}", f"use one of: {', '.join(valid)}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return f"{_show(value)} is not allowed.{_closest(value, allowed)}", f"use one of: {', '.join(allowed)}"
    if kind == "list_type" and isinstance(value, dict) and loc and loc[-1] in LIST_TABLES:
        return (
            f"is a single table [{loc[-1]}], not a list of tables",
            f"write [[{loc[-1]}]] (two brackets) above each {loc[-1]}, or a list in YAML",
        )
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}", f"write {_EXPECTED[kind]}"
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        limit = bounds[kind].format(**ctx)
        return f"{_show(value)} is out of range: it must be {limit}", f"use a value {limit}"
    if kind in ("too_short", "too_long"):
        return f"{err['msg']}", "correct the number of items"
    if kind == "finite_number":
        return f"{_show(value)} is not a finite number", "use a finite number"
    return f"{err['msg']} (got {_show(value)})", "correct the value"


def _fields_of(model: type[BaseModel]) -> dict[str, Any]:
    """Keys valid in a table of ``model`` (``[cohort]`` also takes every profile field)."""
    if model is Cohort:
        return {**Cohort.model_fields, **PrimaryProfile.model_fields}
    return dict(model.model_fields)


def _model_in(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The table model inside an annotation, and whether it is the value type of a dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict:
        found = _model_in(args[1])
        return (found[0], True) if found else None
    return next((found for arg in args if (found := _model_in(arg))), None)


def _valid_keys(loc: tuple) -> list[str]:
    """Valid keys of the table at ``loc`` (empty when the location is not a table)."""
    model: type[BaseModel] = Protocol
    dict_key_next = False
    for part in loc:
        if isinstance(part, int) or dict_key_next:
            dict_key_next = False
            continue
        field = _fields_of(model).get(part)
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return []
        model, dict_key_next = found
    return list(_fields_of(model))


def _line_of(text: str | None, key: str, is_yaml: bool, first: bool) -> int | None:
    """Line where ``key`` is written (the first one if ``first``, else only if it is written once)."""
    if text is None:
        return None
    k = re.escape(key)
    pattern = rf"(^|[\s{{,-])['\"]?{k}['\"]?\s*:" if is_yaml else rf"(^|[\s{{,.\[])['\"]?{k}['\"]?\s*(=|\])"
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if re.search(pattern, line.split("#")[0])]
    return lines[0] if lines and (first or len(lines) == 1) else None


def protocol_to_toml(protocol: Protocol) -> str:
    """The resolved protocol as TOML: every default filled in; loading it gives an equal protocol."""
    header = (
        f"# Resolved protocol of trial {protocol.trial.name!r}: every default filled in.\n"
        "# `vtrial run` on this file reproduces the run; the per-primary profiles are in\n"
        "# [cohort.by_primary.<primary>] (sources: vtrial/data/primaries.toml).\n\n"
    )
    return header + tomli_w.dumps(protocol.model_dump(exclude_none=True))


def apply_overrides(protocol: Protocol, patients: int | None = None, seed: int | None = None) -> Protocol:
    """The protocol with ``--patients`` and ``--seed`` from the command line applied."""
    changes: dict[str, int] = {}
    if patients is not None:
        if not 1 <= patients <= MAX_PATIENTS:
            raise UserInputError(
                f"{patients} patients is out of range",
                field="--patients",
                fix=f"use --patients from 1 to {MAX_PATIENTS}",
            )
        changes["patients"] = int(patients)
    if seed is not None:
        if not 0 <= seed < 2**63:
            raise UserInputError(f"seed {seed} is out of range", field="--seed", fix="use a seed in [0, 2**63)")
        changes["seed"] = int(seed)
    return protocol.model_copy(update={"trial": protocol.trial.model_copy(update=changes)})
