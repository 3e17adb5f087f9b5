"""Protocol files: the pydantic schema, TOML/YAML loading, per-primary defaults and error messages.

The schema follows the contract in ``protocol.md`` field by field. Cohort fields that the
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
import re
import reprlib
import tomllib
import typing
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import tomli_w
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vtrial.errors import UserInputError
from vtrial.vocabulary import DEFAULT_SRE_TYPES, PRIMARIES, SITES, SRE_TYPES

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
#: Oldest age a cohort may reach, in years.
MAX_AGE_YEARS = 120.0
#: Longest trial name, so that ``.<name>.partial`` and ``<name>-batch`` stay valid file names.
MAX_NAME_LENGTH = 128

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_RESERVED_NAME = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])", re.IGNORECASE)

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]


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


def _closest(word: str, choices: typing.Iterable[str]) -> str:
    """' Did you mean X?' for the closest valid choice, or ''."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


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
                "choose another name, e.g. name = \"trial-1\"",
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
                f"max ({value.max}) is above {MAX_AGE_YEARS:g} years", f"use a max of {MAX_AGE_YEARS:g} or less",
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


def primary_defaults(primary: str) -> dict[str, Any]:
    """Default profile of one primary tumour from the data file (a fresh dict, no sources)."""
    return {field: _figures(entry) for field, entry in _data_file()["primary"][primary].items()}


def lesion_phenotype() -> dict[str, Any]:
    """Logit-normal blastic fraction of lesions by class: ``blastic_fraction_median``, ``logit_sd``."""
    return _figures(_data_file()["lesion_phenotype"])


def _merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``, recursively for tables."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in override.items()}}
    return override


class Cohort(_Schema):
    """``[cohort]``: primary-tumour mix, eligibility and the resolved profile of each primary."""

    primary: dict[str, float]
    eligibility: Eligibility = Field(default_factory=Eligibility)
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
        resolved = dict(explicit)
        for primary in weights:
            if primary in PRIMARIES:
                # prostate patients are always male, whatever the cohort-wide fraction
                own = {k: v for k, v in cohort_wide.items() if (primary, k) != ("prostate", "female_fraction")}
                resolved[primary] = _merge(_merge(primary_defaults(primary), own), explicit.get(primary, {}))
        data["by_primary"] = resolved
        return data

    @field_validator("primary")
    @classmethod
    def _known_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        for primary, weight in weights.items():
            if primary not in PRIMARIES:
                raise _invalid(
                    f"unknown primary tumour {primary!r}.{_closest(primary, PRIMARIES)}",
                    f"use weights over {', '.join(PRIMARIES)}",
                    field=primary,
                )
            if weight < 0:
                raise _invalid(f"weight {weight} is negative", "use a weight of 0 or more", field=primary)
        if not 0 < sum(weights.values()) < float("inf"):
            raise _invalid(
                f"the primary weights sum to {sum(weights.values())}: no patient can be sampled",
                "give at least one primary a positive weight and keep the weights small, e.g. primary = { breast = 1.0 }",
            )
        return weights

    @model_validator(mode="after")
    def _consistent(self) -> Cohort:
        for primary, profile in self.by_primary.items():
            if primary not in self.primary:
                raise _invalid(
                    f"profile for {primary!r}, which has no weight in cohort.primary",
                    f"add {primary} to cohort.primary or remove [cohort.by_primary.{primary}]",
                    field=f"by_primary.{primary}",
                )
            if primary == "prostate" and profile.female_fraction != 0:
                raise _invalid(
                    "prostate patients are always male", "set female_fraction = 0.0 for prostate or remove it",
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


class Mechanism(_Schema):
    """``[arm.mechanism]``: fractional effects of a custom agent at full exposure of its reference dose."""

    rankl_inhibition: Probability = 0.0
    osteoclast_inhibition: Probability = 0.0
    tgf_beta_inhibition: Probability = 0.0
    pthrp_inhibition: Probability = 0.0
    tumour_kill: Probability = 0.0
    half_life_days: PositiveFloat
    #: dose (mg) at which the fractions hold; an arm's ``dose_mg`` acts relative to it (vtrial/model/agents/custom.py)
    reference_dose_mg: Annotated[float, Field(gt=0.0, le=MAX_DOSE_MG)] | None = None


class Arm(_Schema):
    """``[[arm]]``: one treatment arm."""

    name: str = Field(min_length=1)
    drug: str
    dose_mg: Annotated[float, Field(gt=0.0, le=MAX_DOSE_MG)] | None = None
    every_weeks: PositiveFloat | None = None
    allocation: PositiveFloat = 1.0
    calcium_vitamin_d: bool = True
    stop_after_months: PositiveFloat | None = None
    renal_adjustment: bool = True
    mechanism: Mechanism | None = None

    @field_validator("every_weeks")
    @classmethod
    def _at_most_daily(cls, weeks: float | None) -> float | None:
        if weeks is not None and weeks < MIN_INTERVAL_WEEKS:
            raise _invalid(
                f"every_weeks = {weeks} is shorter than a day, the model's time step",
                "use every_weeks = 0.142857 (daily) or more, e.g. every_weeks = 4.0",
            )
        return weeks

    @field_validator("drug")
    @classmethod
    def _known_drug(cls, drug: str) -> str:
        agents = _agents()
        if drug not in agents:
            raise _invalid(f"{_show(drug)} is not allowed.{_closest(drug, agents)}", f"use one of: {', '.join(agents)}")
        return drug

    @model_validator(mode="after")
    def _drug_needs(self) -> Arm:
        agent = _agents()[self.drug]
        takes_mechanism = [name for name, a in _agents().items() if a.takes_mechanism]
        if agent.takes_mechanism and self.mechanism is None:
            raise _invalid(
                f"drug {self.drug!r} needs an [arm.mechanism] table saying where the agent acts",
                "add [arm.mechanism] with e.g. tgf_beta_inhibition = 0.6 and half_life_days = 14.0",
                field="mechanism",
            )
        if not agent.takes_mechanism and self.mechanism is not None:
            raise _invalid(
                f"a mechanism describes a {' or '.join(takes_mechanism)} agent, but drug = {self.drug!r}",
                "remove [arm.mechanism] or set " + " or ".join(f'drug = "{name}"' for name in takes_mechanism),
                field="mechanism",
            )
        if agent.takes_mechanism and self.dose_mg is not None and self.mechanism.reference_dose_mg is None:
            raise _invalid(
                f"dose_mg = {self.dose_mg} needs the dose at which the mechanism's fractions hold",
                "add reference_dose_mg (mg) to [arm.mechanism], or remove dose_mg to give the reference dose",
                field="mechanism.reference_dose_mg",
            )
        if self.dose_mg is None and agent.needs_dose:
            raise _invalid(f"drug {self.drug!r} needs a dose", f"add {agent.label_regimen}", field="dose_mg")
        if self.every_weeks is None and agent.dosed:
            raise _invalid(
                f"drug {self.drug!r} needs a dosing interval", f"add {agent.label_regimen}", field="every_weeks"
            )
        return self


# --------------------------------------------------------------------------------------------
# [analysis] and the protocol


class Analysis(_Schema):
    """``[analysis]``: reference arm, SRE definition and landmarks."""

    reference_arm: str | None = None
    sre_types: list[Literal[SRE_TYPES]] = Field(default_factory=lambda: list(DEFAULT_SRE_TYPES), min_length=1)
    sre_window_days: NonNegativeFloat = 21.0
    landmarks_months: list[PositiveFloat] | None = Field(None, min_length=1)

    @field_validator("sre_types")
    @classmethod
    def _unique(cls, types: list[str]) -> list[str]:
        if len(set(types)) != len(types):
            raise _invalid("an SRE type is listed twice", "list each SRE type once")
        return types

    @field_validator("landmarks_months")
    @classmethod
    def _increasing(cls, landmarks: list[float] | None) -> list[float] | None:
        if landmarks is not None and any(b <= a for a, b in zip(landmarks, landmarks[1:])):
            raise _invalid(f"landmarks {landmarks} are not increasing", "list landmarks in increasing order, once each")
        return landmarks


class Protocol(_Schema):
    """A whole protocol file, resolved: every default filled in."""

    trial: Trial
    cohort: Cohort
    arm: list[Arm] = Field(min_length=1)
    analysis: Analysis = Field(default_factory=Analysis)

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
                raise _invalid(f"arm name {name!r} is used twice", "give every arm a unique name", field=f"arm[{i}].name")
        if self.analysis.reference_arm is None:
            self.analysis.reference_arm = names[0]
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
    if path.is_dir():
        raise UserInputError(
            "is a directory, not a protocol file", file=path, fix="give the path of a .toml or .yaml file"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserInputError("no such file", file=path, fix="check the path, e.g. protocols/example.toml") from None
    except OSError as error:
        raise UserInputError(f"cannot be read ({error.strerror})", file=path, fix="check the path and its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise UserInputError("is not a text file", file=path, fix="give a protocol written in TOML or YAML")
    if not text.strip():
        raise UserInputError(
            "the file is empty", file=path, fix="write [trial], [cohort] and [[arm]] tables (see protocols/example.toml)"
        )
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        data = _parse_yaml(text, path) if is_yaml else _parse_toml(text, path)
        return _validate(data, str(path), text, is_yaml)
    except RecursionError:
        raise _too_deep(path) from None


def _too_deep(source: str | Path) -> UserInputError:
    return UserInputError(
        "is nested too deeply to be a protocol", file=source,
        fix="write the sections [trial], [cohort], [[arm]] and [analysis] with plain values (see protocol.md)",
    )


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        at = re.search(r"\(at line (\d+), column \d+\)", str(error))
        message = str(error)[: at.start()].strip() if at else str(error)
        raise UserInputError(
            f"is not valid TOML: {message}",
            file=path,
            line=int(at.group(1)) if at else None,
            fix="check the syntax on that line: text in quotes, tables as [name], lists as [a, b]",
        ) from None


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise UserInputError(
            f"is not valid YAML: {getattr(error, 'problem', None) or error}",
            file=path,
            line=mark.line + 1 if mark is not None else None,
            fix="check the indentation and the 'key: value' syntax on that line",
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
    try:
        return Protocol.model_validate(data)
    except ValidationError as error:
        raise _user_error(error, data, source, text, is_yaml) from None


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
    for err in error.errors():
        loc = _user_loc(err["loc"], data)
        ctx = err.get("ctx", {})
        if ctx.get("field"):
            loc = (*loc, *ctx["field"].replace("[", ".[").split("."))
        path = _dotted(loc)
        problem, fix = _explain(err, loc)
        key = next((p for p in reversed(loc) if isinstance(p, str) and not p.startswith("[")), None)
        line = _line_of(text, key, is_yaml, first=err["type"] == "extra_forbidden") if key and err["type"] != "missing" else None
        problems.setdefault(path, (problem, fix, line))
    path, (problem, fix, line) = next(iter(problems.items()))
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


def _explain(err: dict[str, Any], loc: tuple) -> tuple[str, str]:
    """Problem and fix of one pydantic error."""
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    if kind == "vtrial":
        return ctx["problem"], ctx["fix"]
    if kind == "missing":
        return "is required but missing", f"add {loc[-1]} (see protocol.md for its meaning and unit)"
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        return f"unknown key {loc[-1]!r}.{_closest(loc[-1], valid)}", f"use one of: {', '.join(valid)}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return f"{_show(value)} is not allowed.{_closest(value, allowed)}", f"use one of: {', '.join(allowed)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}", f"write {_EXPECTED[kind]}"
    bounds = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
              "less_than": "less than {lt}", "less_than_equal": "at most {le}"}
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
                f"{patients} patients is out of range", field="--patients", fix=f"use --patients from 1 to {MAX_PATIENTS}"
            )
        changes["patients"] = int(patients)
    if seed is not None:
        if not 0 <= seed < 2**63:
            raise UserInputError(f"seed {seed} is out of range", field="--seed", fix="use a seed in [0, 2**63)")
        changes["seed"] = int(seed)
    return protocol.model_copy(update={"trial": protocol.trial.model_copy(update=changes)})
