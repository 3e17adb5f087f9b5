"""The measured results ``docs/model.md`` quotes: one seeded scenario per measured paragraph.

The parameter values of ``docs/model.md`` come from the registry (:mod:`vtrial.model.docs`);
this module does the same for the numbers the prose *measures* by running the model (median
survival on radium-223, new lesions by arm, re-treatment after one or ten fractions...). Each
scenario is a small deterministic function (fixed cohort seed and stream seed, the cohort size
the document states) registered with the print format of each number it returns. Running them
writes ``docs/measurements.json``: per scenario and number, the value and its printed text. The
document quotes a number as ``<!-- m:SCENARIO.NUMBER -->TEXT<!-- /m -->``, refilled from the JSON
by the same render step as the parameter values (``python -m vtrial.model.docs``); a test keeps
the document equal to its rendering and every quoted name known, and a slow test re-runs the
scenarios against the JSON: same seeds and code give the same floats (JSON keeps a float's
exact repr), so the comparison is exact.

``python -m vtrial.measurements`` re-measures every scenario (``... NAME ...`` only the named
ones, the others kept), writes the JSON atomically and re-renders ``docs/model.md``. It lives
outside :mod:`vtrial.model`, which stays pure numpy without I/O; it reads the model only through
its public functions, as the tests do.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from vtrial.analysis.cox import BinaryCoxFitter
from vtrial.analysis.radiotherapy import first_pain_courses
from vtrial.analysis.survival import kaplan_meier, median_with_ci
from vtrial.cohort import CohortBlock, sample_cohort
from vtrial.model import docs, skeleton
from vtrial.model.drugs import Exposure
from vtrial.model.lesion import (
    STATE_DTYPE,
    CellInputs,
    LesionState,
    LesionTraits,
    advance,
    established_state,
    formation_rate,
    lesion_traits,
    turnover,
)
from vtrial.model.parameters import Parameters
from vtrial.model.reference import reference_arm, reference_cohort
from vtrial.model.simulate import simulate
from vtrial.protocol import Arm, PriorTreatment, load_protocol
from vtrial.store import atomic_write_json
from vtrial.streams import Streams
from vtrial.vocabulary import BREAST_SUBTYPES, DAYS_PER_MONTH, DAYS_PER_YEAR, DEFAULT_SRE_TYPES, SRE_TYPES

PARAMS = Parameters()
#: The symptomatic skeletal events (SSEs) of ALSYMPCA: the default SREs.
SSE_TYPES = DEFAULT_SRE_TYPES


@dataclass(frozen=True)
class Scenario:
    """A measured paragraph: the function that measures it and the print format of each number."""

    name: str
    formats: Mapping[str, str]
    run: Callable[[], dict[str, float]]


#: Every scenario, by name (registration order: the order of ``docs/model.md``).
SCENARIOS: dict[str, Scenario] = {}


def scenario(**formats: str) -> Callable[[Callable[[], dict[str, float]]], Callable[[], dict[str, float]]]:
    """Register a scenario function under its name, with the format spec of each number it returns."""

    def register(run: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
        SCENARIOS[run.__name__] = Scenario(run.__name__, formats, run)
        return run

    return register


def measure(name: str) -> dict[str, dict[str, float | str]]:
    """Run one scenario: ``{number: {"value": ..., "text": ...}}``, the text in the number's format."""
    sc = SCENARIOS[name]
    values = sc.run()
    if set(values) != set(sc.formats):
        raise RuntimeError(f"scenario {name!r} returned {sorted(values)}, declared {sorted(sc.formats)}")
    return {k: {"value": values[k], "text": format(values[k], sc.formats[k])} for k in sc.formats}


# ---------------------------------------------------------------------------------------------- helpers


def _first_day(patients: Mapping, events: Mapping, types: Sequence[str]) -> np.ndarray:
    """Day of each patient's first event of the given types (inf without one)."""
    out = np.full(patients["patient_id"].size, np.inf)
    hit = np.isin(events["type"], types)
    np.minimum.at(out, np.searchsorted(patients["patient_id"], events["patient_id"][hit]), events["day"][hit])
    return out


def _time_to(patients: Mapping, events: Mapping, types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) of the first event of the given types, censored at the end of follow-up."""
    first, followup = _first_day(patients, events, types), patients["followup_days"]
    return np.minimum(first, followup), first <= followup


def _median_months(time: np.ndarray, event: np.ndarray) -> float:
    """Kaplan-Meier median in months (``vtrial.analysis``); the scenarios are sized so that it is reached."""
    median = median_with_ci(kaplan_meier(time, event, "m"))[0]
    if median is None:
        raise RuntimeError("a scenario's median is not reached: lengthen its follow-up")
    return median


def _km_risk(time: np.ndarray, event: np.ndarray, day: float) -> float:
    """Kaplan-Meier probability of the event by ``day``."""
    return float(1.0 - kaplan_meier(time, event, "r").at(day))


def _hazard_ratio(control: tuple[np.ndarray, np.ndarray], treated: tuple[np.ndarray, np.ndarray]) -> float:
    """Cox hazard ratio of ``treated`` against ``control``, each ``(time, event)``."""
    time, event = (np.concatenate([c, t]) for c, t in zip(control, treated))
    x = np.r_[np.zeros(control[0].size), np.ones(treated[0].size)]
    return float(BinaryCoxFitter().fit(time, event, x).hazard_ratio_)


def _lesion_keys(events: Mapping, types: Sequence[str]) -> np.ndarray:
    """``patient_id * 100 + lesion`` of the events of the given types (a patient has at most 64 lesions)."""
    m = np.isin(events["type"], types)
    return events["patient_id"][m] * 100 + events["lesion"][m]


def _median_marker(markers: Mapping, column: str, week: int) -> float:
    return float(np.median(markers[column][markers["week"] == week]))


def _sre_rate(patients: Mapping, events: Mapping, types: Sequence[str] = SSE_TYPES) -> float:
    """Events of the given types per patient-year."""
    return float(np.isin(events["type"], types).sum() / (patients["followup_days"].sum() / DAYS_PER_YEAR))


# ---------------------------------------------------------------------------------------------- one lesion


def _traits(blastic_fraction: Sequence[float], growth_rate: float) -> LesionTraits:
    """Lesion traits of the given phenotypes with the patient multipliers (PTHrP secretion, drive) at 1."""
    phi = np.asarray(blastic_fraction, dtype=float)
    return lesion_traits(phi, np.ones_like(phi), np.ones_like(phi), np.full_like(phi, growth_rate), PARAMS)


def _induction(state: LesionState) -> float:
    """The PTHrP induction ``M`` of the first lesion (an established state always carries it)."""
    return float(np.asarray(state.m)[0])


def _steady_lytic_induction(tgf_beta_keep: float) -> float:
    """PTHrP induction ``M`` of an established lytic lesion (T 0.1, tumour frozen) after 150 weeks of a TGF-beta block."""
    traits = _traits([0.0], 0.0)
    state = established_state(np.array([0.1]), traits, PARAMS)
    one = np.ones(1, STATE_DTYPE)
    for _ in range(150):
        advance(state, traits, one, one, 1.0, tgf_beta_keep, 0.0, 7.0, PARAMS)
    return _induction(state)


@scenario(
    lytic_m=".2f",
    lytic_z=".2f",
    lytic_uz=".1f",
    calcium_only_m=".2f",
    blastic_u=".2f",
    blastic_u_without_rankl=".2f",
    blastic_z=".2f",
    uptake_blastic=".1f",
    uptake_lytic=".1f",
    uptake_ratio=".1f",
    uptake_ratio_small=".2f",
    uptake_ratio_large=".1f",
    stimulated_bone="+.0%",
    stimulated_resorption="+.0%",
)
def lesion_states() -> dict[str, float]:
    """Established lesions at a burden (deterministic): the vicious cycle's steady state and radium uptake.

    Lytic (phi 0) and blastic (phi 1) lesions at T 0.1 with the patient multipliers 1; the calcium-only
    loop is the steady induction under a full TGF-beta block. Radium uptake is the formation rate
    (healthy bone 1) of a blastic (phi 0.9) and a lytic (phi 0.1) lesion at detection (T 0.08), and
    the blastic/lytic ratio there, at T 0.02 (small) and at T 0.3 (large). Tumour-free bone under
    full bone-formation stimulation for 52 weeks: the change of its bone mass and of its osteoclast
    activity ``u`` against the same bone unstimulated.
    """
    one = np.ones(1, STATE_DTYPE)
    lytic = _traits([0.0], 0.0)
    state = established_state(np.array([0.1]), lytic, PARAMS)
    out: dict[str, float] = {
        "lytic_m": _induction(state),
        "lytic_z": float(state.z[0]),
        "lytic_uz": float(turnover(state, lytic, one, 1.0, PARAMS)[0][0]),
        "calcium_only_m": _steady_lytic_induction(0.0),
    }
    for key, params in (
        ("blastic_u", PARAMS),
        ("blastic_u_without_rankl", Parameters({"osteoblast_rankl_blastic": 0.0})),
    ):
        blastic = lesion_traits(np.ones(1), np.ones(1), np.ones(1), np.zeros(1), params)
        state = established_state(np.array([0.1]), blastic, params)
        out[key] = float(turnover(state, blastic, one, 1.0, params)[0][0] / state.z[0])
        if params is PARAMS:
            out["blastic_z"] = float(state.z[0])
    traits = _traits([0.9, 0.1], 0.002)
    ratios = {}
    for burden in (0.02, 0.08, 0.3):
        state = established_state(np.full(2, burden), traits, PARAMS)
        uptake = formation_rate(state.w, state.y, traits, PARAMS)
        ratios[burden] = float(uptake[0] / uptake[1])
        if burden == 0.08:
            out["uptake_blastic"], out["uptake_lytic"] = float(uptake[0]), float(uptake[1])
    out["uptake_ratio"], out["uptake_ratio_small"], out["uptake_ratio_large"] = ratios[0.08], ratios[0.02], ratios[0.3]
    bone, resorption = [], []
    for cells in (CellInputs(), CellInputs(osteoblast_production=1.0 + PARAMS.osteoblast_stimulation_max)):
        state = established_state(np.array([1e-6]), lytic, PARAMS)
        for _ in range(52):
            advance(state, lytic, one, one, 1.0, 1.0, 0.0, 7.0, PARAMS, cells)
        bone.append(float(state.z[0]))
        resorption.append(float(turnover(state, lytic, one, 1.0, PARAMS)[0][0]) / bone[-1])
    out["stimulated_bone"] = bone[1] / bone[0] - 1.0
    out["stimulated_resorption"] = resorption[1] / resorption[0] - 1.0
    return out


# ---------------------------------------------------------------------------------------------- radium-223


@scenario(
    os_placebo=".1f",
    os_radium=".1f",
    os_hr=".2f",
    sse_placebo=".1f",
    sse_radium=".1f",
    sse_hr=".2f",
    bsap_entry=".0f",
    bsap_entry_multiple=".0f",
    bsap_change_placebo="+.1%",
    bsap_change_radium="+.1%",
    bsap_fall_radium=".0%",
    bsap_fall_placebo=".0%",
    neutropenia_placebo=".1%",
    neutropenia_radium=".1%",
    thrombocytopenia_placebo=".1%",
    thrombocytopenia_radium=".1%",
)
def radium_crpc() -> dict[str, float]:
    """ALSYMPCA-like: 1000 CRPC men per arm without visceral metastases on androgen deprivation, 4 years."""
    n = 1000
    cb = replace(reference_cohort(n, "prostate", seed=3), visceral_metastases=np.zeros(n, bool))
    adt: dict[str, Any] = {"systemic_therapy": ["androgen_deprivation"]}
    arms = {
        "placebo": reference_arm(**adt),
        "radium": reference_arm("radium_223", dose_kbq_per_kg=55.0, every_weeks=4.0, doses=6, **adt),
    }
    out: dict[str, float] = {}
    survival, sse = {}, {}
    for name, a in arms.items():
        patients, events, markers = simulate(cb, a, 4 * DAYS_PER_YEAR, Streams(5), marker_weeks=(0, 16))
        survival[name] = (patients["followup_days"], patients["died"].astype(bool))
        sse[name] = _time_to(patients, events, SSE_TYPES)
        out[f"os_{name}"] = _median_months(*survival[name])
        out[f"sse_{name}"] = _median_months(*sse[name])
        pid, week, bsap = markers["patient_id"], markers["week"], markers["bsap_ug_l"]
        base = dict(zip(pid[week == 0].tolist(), bsap[week == 0].tolist()))
        change = np.array([b / base[p] - 1.0 for p, b in zip(pid[week == 16].tolist(), bsap[week == 16].tolist())])
        out[f"bsap_change_{name}"] = float(np.median(change))
        out[f"bsap_fall_{name}"] = float(np.mean(change < 0))
        counts = Counter(events["type"].tolist())
        for marrow in ("neutropenia", "thrombocytopenia"):
            out[f"{marrow}_{name}"] = counts[marrow] / n
        if name == "placebo":
            out["bsap_entry"] = float(np.median(bsap[week == 0]))
            out["bsap_entry_multiple"] = out["bsap_entry"] / PARAMS.bsap_healthy
    out["os_hr"] = _hazard_ratio(survival["placebo"], survival["radium"])
    out["sse_hr"] = _hazard_ratio(sse["placebo"], sse["radium"])
    return out


# ---------------------------------------------------------------------------------------------- schedules

#: The arms of the schedule scenarios (protocol arms; the label rules off unless a scenario is about them).
_ZA: dict[str, Any] = dict(drug="zoledronic_acid", dose_mg=4.0, every_weeks=4.0)
_DMAB: dict[str, Any] = dict(drug="denosumab", dose_mg=120.0, every_weeks=4.0)


def _protocol_arm(name: str, stop_on_onj: bool = False, withhold_on_renal_toxicity: bool = False, **fields: Any) -> Arm:
    return Arm(name=name, stop_on_onj=stop_on_onj, withhold_on_renal_toxicity=withhold_on_renal_toxicity, **fields)


@scenario(
    untx_q4w=".1f",
    untx_q12w=".1f",
    untx_stopped=".1f",
    sre_q4w=".2f",
    sre_q12w=".2f",
    sre_stopped=".2f",
)
def deescalation() -> dict[str, float]:
    """300 breast reference patients after 12 months of monthly zoledronic acid, 1 year of q4w, q12w or none."""
    prior = PriorTreatment(drug="zoledronic_acid", dose_mg=4.0, every_weeks=4.0, months=12.0)
    cb = replace(reference_cohort(300, "breast", seed=5), prior_treatment=prior)
    out: dict[str, float] = {}
    for name, a in (
        ("q4w", _protocol_arm("q4w", **_ZA)),
        ("q12w", _protocol_arm("q12w", **{**_ZA, "every_weeks": 12.0})),
        ("stopped", _protocol_arm("stopped", drug="none")),
    ):
        patients, events, markers = simulate(cb, a, DAYS_PER_YEAR, Streams(6), marker_weeks=(0, 48))
        out[f"untx_{name}"] = _median_marker(markers, "untx_nmol_mmol", 48)
        out[f"sre_{name}"] = _sre_rate(patients, events)
    return out


@scenario(untx_week0=".0f", untx_week25=".0f", untx_week73=".0f", untx_continued=".0f")
def holiday() -> dict[str, float]:
    """200 breast reference patients: denosumab for 6 months then a holiday, against denosumab continued."""
    cb = reference_cohort(200, "breast", seed=8)
    weeks = (0, 25, 73)
    off = simulate(
        cb,
        _protocol_arm("holiday", **_DMAB, then=[dict(after_months=6.0, drug="none")]),
        1.5 * DAYS_PER_YEAR,
        Streams(2),
        marker_weeks=weeks,
    )[2]
    on = simulate(cb, _protocol_arm("continued", **_DMAB), 1.5 * DAYS_PER_YEAR, Streams(2), marker_weeks=weeks)[2]
    out = {f"untx_week{w}": _median_marker(off, "untx_nmol_mmol", w) for w in weeks}
    out["untx_continued"] = _median_marker(on, "untx_nmol_mmol", 73)
    return out


@scenario(untx_switch=".1f", untx_zoledronic_acid=".1f")
def switch() -> dict[str, float]:
    """200 breast reference patients: zoledronic acid switched to denosumab at 6 months, against staying; week 49."""
    cb = reference_cohort(200, "breast", seed=9)
    arms = {
        "zoledronic_acid": _protocol_arm("za", **_ZA),
        "switch": _protocol_arm("switch", **_ZA, then=[dict(after_months=6.0, **_DMAB)]),
    }
    return {
        f"untx_{name}": _median_marker(
            simulate(cb, a, DAYS_PER_YEAR, Streams(3), marker_weeks=(0, 25, 49))[2], "untx_nmol_mmol", 49
        )
        for name, a in arms.items()
    }


@scenario(untx_prior=".1f", untx_naive=".1f")
def prior_treatment() -> dict[str, float]:
    """200 breast reference patients starting zoledronic acid, with or without 12 prior months of it: week-0 uNTx."""
    cb = reference_cohort(200, "breast", seed=10)
    prior = PriorTreatment(drug="zoledronic_acid", dose_mg=4.0, every_weeks=4.0, months=12.0)
    a = _protocol_arm("za", **_ZA)
    return {
        f"untx_{name}": _median_marker(
            simulate(block, a, 0.5 * DAYS_PER_YEAR, Streams(5), marker_weeks=(0, 12))[2], "untx_nmol_mmol", 0
        )
        for name, block in (("naive", cb), ("prior", replace(cb, prior_treatment=prior)))
    }


@scenario(onj_patients="d", untx_rule=".0f", untx_no_rule=".0f")
def onj_rule() -> dict[str, float]:
    """400 breast reference patients on denosumab, 2 years, with and without ``stop_on_onj``: the ONJ patients."""
    cb = reference_cohort(400, "breast", seed=12)
    runs = {
        rule: simulate(
            cb,
            _protocol_arm("d", stop_on_onj=rule, **_DMAB),
            2 * DAYS_PER_YEAR,
            Streams(13),
            marker_weeks=(0, 101),
        )
        for rule in (False, True)
    }
    events = runs[False][1]
    onj = np.unique(events["patient_id"][events["type"] == "osteonecrosis_of_the_jaw"])
    out: dict[str, float] = {"onj_patients": int(onj.size)}
    for rule, key in ((True, "untx_rule"), (False, "untx_no_rule")):
        m = runs[rule][2]
        mine = np.isin(m["patient_id"], onj) & (m["week"] == 101)
        out[key] = float(np.median(m["untx_nmol_mmol"][mine]))
    return out


@scenario(zoledronic_acid="d", denosumab="d", placebo="d")
def label_rules() -> dict[str, float]:
    """600 breast reference patients per arm, 2 years: patients whose events change with both label rules on."""
    cb = reference_cohort(600, "breast", seed=0)
    out: dict[str, float] = {}
    for name, fields in (("zoledronic_acid", _ZA), ("denosumab", _DMAB), ("placebo", {"drug": "none"})):
        off, on = (
            simulate(cb, _protocol_arm(name, rules, rules, **fields), 2 * DAYS_PER_YEAR, Streams(1))[1]
            for rules in (False, True)
        )
        out[name] = sum(
            not all(
                np.array_equal(off[c][off["patient_id"] == p], on[c][on["patient_id"] == p]) for c in ("day", "type")
            )
            for p in cb.patient_id.tolist()
        )
    return out


@scenario(sre_q4w=".2f", sre_q12w=".2f", untx_week0=".0f")
def zoom_protocol() -> dict[str, float]:
    """``protocols/zoledronic-acid-deescalation.toml`` as ``vtrial run`` simulates and analyses it (425 patients)."""
    from vtrial.api import simulate as run_protocol  # the whole trial: engine, analysis

    summary = run_protocol(
        docs.MODEL_DOC.parents[1] / "protocols" / "zoledronic-acid-deescalation.toml", jobs=1
    ).summary
    arms = summary["arms"]
    return {
        "sre_q4w": arms["every_4_weeks"]["sre_rate_per_patient_year"],
        "sre_q12w": arms["every_12_weeks"]["sre_rate_per_patient_year"],
        "untx_week0": arms["every_4_weeks"]["markers"]["0"]["untx_nmol_mmol"],
    }


# ---------------------------------------------------------------------------------------------- the niche, custom targets

_CUSTOM_TARGETS = (
    "tgf_beta_inhibition",
    "homing_inhibition",
    "osteoblast_drive_inhibition",
    "bone_formation_stimulation",
    "il6_inhibition",
)


def _custom_arm(**targets: float) -> SimpleNamespace:
    """A custom arm every 3 weeks (half-life 14 days) with only the given targets (the rest 0)."""
    mechanism = dict(
        rankl_inhibition=0.0,
        osteoclast_inhibition=0.0,
        pthrp_inhibition=0.0,
        tumour_kill=0.0,
        half_life_days=14.0,
        reference_dose_mg=None,
        **dict.fromkeys(_CUSTOM_TARGETS, 0.0),
    )
    return reference_arm("custom", every_weeks=3.0, mechanism=SimpleNamespace(**{**mechanism, **targets}))


@scenario(
    placebo=",d",
    zoledronic_acid=",d",
    denosumab=",d",
    zoledronic_acid_change="+.0%",
    denosumab_change="+.0%",
)
def niche_new_lesions() -> dict[str, float]:
    """2000 breast reference patients, 2 years: new bone lesions on placebo, zoledronic acid and denosumab."""
    cb = reference_cohort(2000, "breast", seed=1)
    out: dict[str, float] = {
        name: int((simulate(cb, a, 2 * DAYS_PER_YEAR, Streams(3))[1]["type"] == "new_lesion").sum())
        for name, a in (
            ("placebo", reference_arm()),
            ("zoledronic_acid", reference_arm("zoledronic_acid", dose_mg=4.0, every_weeks=4.0)),
            ("denosumab", reference_arm("denosumab", dose_mg=120.0, every_weeks=4.0)),
        )
    }
    for drug in ("zoledronic_acid", "denosumab"):
        out[f"{drug}_change"] = out[drug] / out["placebo"] - 1.0
    return out


#: What each custom target's row quotes (``none``: the agent without a target, the reference of every row).
_CUSTOM_QUOTED = {
    "none": ("new_lesions", "fractures", "hypercalcaemia", "radiotherapy", "sres", "bsap", "untx"),
    "tgf_beta": ("sres", "hypercalcaemia", "untx"),
    "homing": ("new_lesions",),
    "osteoblast_drive": ("bsap", "untx", "fractures"),
    "bone_formation": ("bsap", "untx", "fractures"),
    "il6": ("untx", "hypercalcaemia", "radiotherapy"),
}
_CUSTOM_FORMATS = {
    f"{key}_{number}": ".1f" if number in ("bsap", "untx") else "d"
    for key, numbers in _CUSTOM_QUOTED.items()
    for number in numbers
}


def _custom_numbers(primary: str) -> dict[str, float]:
    """One primary's column of the custom-target measurement: 300 reference patients, 2 years, week-13 medians."""
    out: dict[str, float] = {}
    for target in (None, *_CUSTOM_TARGETS):
        arm = _custom_arm() if target is None else _custom_arm(**{target: 0.7})
        _, events, markers = simulate(
            reference_cohort(300, primary, seed=7), arm, 2 * DAYS_PER_YEAR, Streams(11), marker_weeks=(0, 13, 25, 49)
        )
        counts = Counter(events["type"].tolist())
        key = "none" if target is None else target.removesuffix("_inhibition").removesuffix("_stimulation")
        numbers = {
            "new_lesions": counts["new_lesion"],
            "fractures": counts["pathological_fracture"],
            "hypercalcaemia": counts["hypercalcaemia"],
            "radiotherapy": counts["radiation_to_bone"],
            "sres": sum(counts[t] for t in SSE_TYPES),
            "bsap": _median_marker(markers, "bsap_ug_l", 13),
            "untx": _median_marker(markers, "untx_nmol_mmol", 13),
        }
        out.update({f"{key}_{number}": numbers[number] for number in _CUSTOM_QUOTED[key]})
    return out


@scenario(**_CUSTOM_FORMATS)
def custom_targets_breast() -> dict[str, float]:
    """Each custom target alone at 0.7 (3-weekly, half-life 14 d) against none: 300 breast reference patients."""
    return _custom_numbers("breast")


@scenario(**_CUSTOM_FORMATS)
def custom_targets_prostate() -> dict[str, float]:
    """As :func:`custom_targets_breast` in 300 prostate reference patients."""
    return _custom_numbers("prostate")


# ---------------------------------------------------------------------------------------------- local treatment


def _course(dose_gy: float, fractions: int, prophylactic: bool = False) -> SimpleNamespace:
    return SimpleNamespace(dose_gy=dose_gy, fractions=fractions, technique="conventional", prophylactic=prophylactic)


def _retreated_share(events: Mapping) -> float:
    """Share of the lesions irradiated for pain that were irradiated again."""
    _, courses = np.unique(_lesion_keys(events, ["radiation_to_bone"]), return_counts=True)
    return float(np.mean(courses >= 2))


def _retreatment(primary: str, years: float) -> tuple[float, float]:
    """Re-treated share after 8 Gy x 1 and after 30 Gy / 10: 2000 reference patients, the same under both."""
    cb = reference_cohort(2000, primary, seed=7)
    single, multi = (
        _retreated_share(simulate(cb, reference_arm(radiotherapy=c), years * DAYS_PER_YEAR, Streams(5))[1])
        for c in (_course(8.0, 1), _course(30.0, 10))
    )
    return single, multi


@scenario(
    **{
        f"{primary}_{number}": fmt
        for primary in ("prostate", "breast", "lung")
        for number, fmt in (("single", ".1%"), ("multi", ".1%"), ("odds_ratio", ".1f"))
        if (primary, number) != ("breast", "odds_ratio")
    }
)
def retreatment() -> dict[str, float]:
    """Lesions re-irradiated after 8 Gy x 1 vs 30 Gy / 10 and the odds ratio: prostate 3 years, breast and lung 2.

    Breast has no odds ratio: few of its irradiated lesions are re-irradiated in 2 years (none after 30 Gy / 10).
    """
    out: dict[str, float] = {}
    for primary, years in (("prostate", 3.0), ("breast", 2.0), ("lung", 2.0)):
        single, multi = _retreatment(primary, years)
        out[f"{primary}_single"], out[f"{primary}_multi"] = single, multi
        if primary != "breast":
            out[f"{primary}_odds_ratio"] = single / (1 - single) / (multi / (1 - multi))
    return out


def _pain_responses(patients: Mapping, events: Mapping) -> dict[str, float]:
    """Pain response of the lesions irradiated for pain, by intention to treat, and re-treatment by response.

    The lesions and their responses are those of the RT-01/RT-02 statistic
    (:func:`vtrial.analysis.radiotherapy.first_pain_courses`: from the first course, counted if
    the patient was followed to the assessment or died before it); re-treatment by response is
    taken among the lesions assessed alive.
    """
    table = pd.DataFrame({k: events[k] for k in ("patient_id", "lesion", "day", "type")})
    courses = first_pain_courses(table, patients["patient_id"], patients["followup_days"], patients["died"])
    counted = (courses["followed"] | courses["died"]).to_numpy()
    followed, responded = courses["followed"].to_numpy(), courses["responded"].to_numpy()
    retreated = courses["courses"].to_numpy() >= 2
    return {
        "response": float(responded[counted].mean()),
        "complete": float(courses["complete"].to_numpy()[counted].mean()),
        "retreated_responders": float(retreated[followed & responded].mean()),
        "retreated_non_responders": float(retreated[followed & ~responded].mean()),
    }


@scenario(
    **{
        f"{course}_{number}": ".0%"
        for course in ("single", "multi")
        for number in ("response", "complete", "retreated_responders", "retreated_non_responders")
    }
)
def pain_response() -> dict[str, float]:
    """2000 prostate reference patients, 3 years, 8 Gy x 1 vs 30 Gy / 10: pain response and re-treatment by it."""
    cb = reference_cohort(2000, "prostate", seed=7)
    out: dict[str, float] = {}
    for name, course in (("single", _course(8.0, 1)), ("multi", _course(30.0, 10))):
        patients, events, _ = simulate(cb, reference_arm(radiotherapy=course), 3 * DAYS_PER_YEAR, Streams(5))
        out.update({f"{name}_{k}": v for k, v in _pain_responses(patients, events).items()})
    return out


@scenario(
    treated=",d",
    sres_without=",d",
    sres_with=",d",
    sres_change="+.0%",
    sres_change_30_in_10="+.0%",
    patients_with_sre_without=".1%",
    patients_with_sre_with=".1%",
    entry_breast=".1%",
    entry_lung=".1%",
    entry_prostate=".1%",
)
def prophylactic_radiotherapy() -> dict[str, float]:
    """1000 breast reference patients, 2 years, without and with prophylactic 8 Gy x 1 (and 30 Gy / 10).

    Also the share of entry lesions irradiated on day 0 (high-risk at entry) in 1000 breast, lung
    and prostate reference patients.
    """
    horizon = 2 * DAYS_PER_YEAR
    cb = reference_cohort(1000, "breast", seed=7)
    _, standard, _ = simulate(cb, reference_arm(), horizon, Streams(5))
    runs = {
        name: simulate(cb, reference_arm(radiotherapy=_course(dose, n, prophylactic=True)), horizon, Streams(5))[1]
        for name, dose, n in (("single", 8.0, 1), ("multi", 30.0, 10))
    }
    keys = _lesion_keys(runs["single"], ["prophylactic_radiotherapy"])
    sres = {
        name: int(np.isin(_lesion_keys(e, SSE_TYPES), keys).sum())
        for name, e in (("without", standard), ("with", runs["single"]), ("multi", runs["multi"]))
    }
    out: dict[str, float] = {
        "treated": int(keys.size),
        "sres_without": sres["without"],
        "sres_with": sres["with"],
        "sres_change": sres["with"] / sres["without"] - 1.0,
        "sres_change_30_in_10": sres["multi"] / sres["without"] - 1.0,
    }
    for name, e in (("without", standard), ("with", runs["single"])):
        out[f"patients_with_sre_{name}"] = np.unique(e["patient_id"][np.isin(e["type"], SSE_TYPES)]).size / 1000
    for primary in ("breast", "lung", "prostate"):
        block = reference_cohort(1000, primary, seed=7)
        e = simulate(block, reference_arm(radiotherapy=_course(8.0, 1, prophylactic=True)), 7.0, Streams(5))[1]
        day0 = int(np.sum((e["type"] == "prophylactic_radiotherapy") & (e["day"] == 0.0)))
        out[f"entry_{primary}"] = day0 / int(block.lesion_mask.sum())
    return out


@scenario(fixed="d", broken_with="d", broken_without="d", fractures_with=",d", fractures_without=",d")
def prophylactic_fixation() -> dict[str, float]:
    """1000 breast reference patients, 2 years, with the default fixation rule and without it."""
    cb = reference_cohort(1000, "breast", seed=7)
    horizon = 2 * DAYS_PER_YEAR
    _, fix, _ = simulate(cb, reference_arm(), horizon, Streams(5))
    nofix = simulate(cb, reference_arm(surgery=SimpleNamespace(prophylactic_fixation=False)), horizon, Streams(5))[1]

    def at(e: Mapping, types: Sequence[str]) -> set:
        m = np.isin(e["type"], types)
        return set(zip(e["patient_id"][m].tolist(), e["lesion"][m].tolist(), e["day"][m].tolist()))

    causes = ["pathological_fracture", "spinal_cord_compression"]
    fixed = np.array(sorted({100 * p + lesion for p, lesion, _ in at(fix, ["surgery_to_bone"]) - at(fix, causes)}))
    broken = [int(np.isin(_lesion_keys(e, ["pathological_fracture"]), fixed).sum()) for e in (fix, nofix)]
    return {
        "fixed": int(fixed.size),
        "broken_with": broken[0],
        "broken_without": broken[1],
        "fractures_with": int((fix["type"] == "pathological_fracture").sum()),
        "fractures_without": int((nofix["type"] == "pathological_fracture").sum()),
    }


# ---------------------------------------------------------------------------------------------- disease stage


def _chaarted_cohort() -> CohortBlock:
    """1000 patients of ``protocols/prostate-castration-sensitive.toml`` (CHAARTED-like), all entering on day 0."""
    protocol = load_protocol(Path(__file__).resolve().parents[1] / "protocols" / "prostate-castration-sensitive.toml")
    cb = sample_cohort(protocol, np.arange(1000), Streams(5))
    return replace(cb, entry_day=np.zeros(1000), dropout_day=np.full(1000, np.inf))


@scenario(
    sensitive_sre_24=".0%",
    sensitive_sre_median=".1f",
    sensitive_os=".1f",
    resistant_sre_24=".0%",
    resistant_sre_median=".1f",
    resistant_os=".1f",
    resistance_adt=".1f",
    resistance_docetaxel=".1f",
    resistance_abiraterone=".1f",
)
def castration_sensitive() -> dict[str, float]:
    """The CHAARTED-like cohort on ADT, castration-sensitive against resistant (6 years); time to castration resistance."""
    cohort = _chaarted_cohort()
    out: dict[str, float] = {}
    for stage in ("sensitive", "resistant"):
        block = replace(cohort, prostate_stage=f"castration_{stage}")
        patients, events, _ = simulate(
            block, reference_arm(systemic_therapy=["androgen_deprivation"]), 6 * DAYS_PER_YEAR, Streams(8)
        )
        time, event = _time_to(patients, events, SSE_TYPES)
        out[f"{stage}_sre_24"] = _km_risk(time, event, 24 * DAYS_PER_MONTH)
        out[f"{stage}_sre_median"] = _median_months(time, event)
        out[f"{stage}_os"] = _median_months(patients["followup_days"], patients["died"].astype(bool))
    block = replace(cohort, prostate_stage="castration_sensitive")
    for name, therapy in (
        ("adt", ["androgen_deprivation"]),
        ("docetaxel", ["androgen_deprivation", "docetaxel"]),
        ("abiraterone", ["androgen_deprivation", "abiraterone_prednisone"]),
    ):
        patients, events, _ = simulate(block, reference_arm(systemic_therapy=therapy), 3.5 * DAYS_PER_YEAR, Streams(8))
        out[f"resistance_{name}"] = _median_months(*_time_to(patients, events, ["castration_resistance"]))
    return out


@scenario(adt=".1%", none=".1%", adt_from_entry=".1%")
def adt_fractures() -> dict[str, float]:
    """Osteoporotic fracture within 5 years (KM), with and without ADT: 3000 castration-resistant prostate patients
    (castrated for years before entry), and the same men starting ADT at entry (castration-sensitive).

    ECOG 0, no visceral disease and a tenth of the reference burden, so that most live the 5 years.
    """
    ref = reference_cohort(3000, "prostate", seed=3)
    horizon = 5 * DAYS_PER_YEAR
    out: dict[str, float] = {}
    for name, stage, therapy in (
        ("adt", "castration_resistant", ["androgen_deprivation"]),
        ("none", "castration_resistant", []),
        ("adt_from_entry", "castration_sensitive", ["androgen_deprivation"]),
    ):
        cb = replace(
            ref,
            prostate_stage=stage,
            ecog=np.zeros(3000, np.int8),
            visceral_metastases=np.zeros(3000, bool),
            lesion_burden=ref.lesion_burden * 0.1,
        )
        patients, events, _ = simulate(cb, reference_arm(systemic_therapy=therapy), horizon, Streams(4))
        out[name] = _km_risk(*_time_to(patients, events, ["osteoporotic_fracture"]), horizon - 1)
    return out


@scenario(
    alive_none=".1%",
    alive_endocrine=".1%",
    followup_none=".1f",
    followup_endocrine=".1f",
    sre_rate_none=".2f",
    sre_rate_endocrine=".2f",
    sres_none=",d",
    sres_endocrine=",d",
)
def disease_control() -> dict[str, float]:
    """1500 breast reference patients, 5 years, with and without endocrine therapy (the breast usual care)."""
    cb = reference_cohort(1500, "breast", seed=3)
    out: dict[str, float] = {}
    for name, therapy in (("none", ()), ("endocrine", ("endocrine",))):
        patients, events, _ = simulate(
            replace(cb, systemic_therapy={"breast": therapy}), reference_arm(), 5 * DAYS_PER_YEAR, Streams(4)
        )
        out[f"alive_{name}"] = 1.0 - float(patients["died"].mean())
        out[f"followup_{name}"] = float(np.median(patients["followup_days"])) / DAYS_PER_MONTH
        out[f"sre_rate_{name}"] = _sre_rate(patients, events, SRE_TYPES)
        out[f"sres_{name}"] = int(np.isin(events["type"], SRE_TYPES).sum())
    return out


@scenario(
    os_hr_positive=".1f",
    os_her2_positive=".1f",
    os_triple_negative=".1f",
    sre_hr_positive=".1f",
    sre_her2_positive=".1f",
    sre_triple_negative=".1f",
)
def breast_subtypes() -> dict[str, float]:
    """1000 breast reference patients, 5 years, under the breast usual care, as each subtype in turn."""
    n = 1000
    cb = replace(
        reference_cohort(n, "breast", seed=3), systemic_therapy={"breast": ("endocrine", "targeted", "chemotherapy")}
    )
    out: dict[str, float] = {}
    for code, subtype in enumerate(BREAST_SUBTYPES):
        patients, events, _ = simulate(
            replace(cb, breast_subtype=np.full(n, code, np.int8)), reference_arm(), 5 * DAYS_PER_YEAR, Streams(4)
        )
        out[f"os_{subtype}"] = _median_months(patients["followup_days"], patients["died"])
        out[f"sre_{subtype}"] = _median_months(*_time_to(patients, events, SRE_TYPES))
    return out


# ---------------------------------------------------------------------------------------------- the skeleton outside the lesions


def skeleton_path(arm: SimpleNamespace, years: float) -> np.ndarray:
    """Weekly path of one patient's skeleton compartment (CrCl 80) under ``arm``.

    Columns: start day, days, resorption ``R_S``, density, microdamage, density lost per year,
    osteoporotic fracture hazard.
    """
    exposure = Exposure.of_arm(arm, np.array([80.0]), int(years * DAYS_PER_YEAR), PARAMS)
    grid = exposure.step_grid(7)
    w, z, space, damage = np.ones(1), np.ones(1), np.full(1, PARAMS.remodelling_space), np.zeros(1)
    rows = []
    for start, end in zip(grid[:-1].tolist(), grid[1:].tolist()):
        inputs = exposure.inputs(start, end, np.arange(1))
        days = float(end - start)
        before = skeleton.bone_density(z, space, PARAMS)
        r, density, s, d = skeleton.advance(w, z, space, damage, inputs.recruitment_sq, np.ones(1), days, PARAMS)
        loss = skeleton.loss_per_year(before, skeleton.bone_density(z, space, PARAMS), days)
        rows.append((start, days, r[0], density[0], d[0], loss[0], skeleton.fracture_hazard(density, s, PARAMS)[0]))
    return np.array(rows)


def _between(rows: np.ndarray, first_year: float, last_year: float) -> np.ndarray:
    return (rows[:, 0] >= first_year * DAYS_PER_YEAR) & (rows[:, 0] < last_year * DAYS_PER_YEAR)


def _at(rows: np.ndarray, years: float, column: int) -> float:
    """A column of the step running at ``years``."""
    return float(rows[np.searchsorted(rows[:, 0], years * DAYS_PER_YEAR) - 1, column])


def aff_per_10k(rows: np.ndarray, first_year: float, last_year: float) -> float:
    """Mean atypical-fracture hazard over ``[first_year, last_year)`` per 10,000 patient-years."""
    inside = _between(rows, first_year, last_year)
    hazard = PARAMS.atypical_fracture_hazard * rows[inside, 4]
    return float((hazard * rows[inside, 1]).sum() / rows[inside, 1].sum() * DAYS_PER_YEAR * 1e4)


def aff_risk_5_years(rows: np.ndarray) -> float:
    """Probability of an atypical fracture within the first 5 years of a skeleton path."""
    inside = rows[:, 0] < 5 * DAYS_PER_YEAR
    return float(-np.expm1(-(PARAMS.atypical_fracture_hazard * rows[inside, 4] * rows[inside, 1]).sum()))


def _resorption_on(drug: str, dose_mg: float) -> float:
    """Mean resorption of the uninvolved skeleton in the second year of a monthly antiresorptive."""
    rows = skeleton_path(reference_arm(drug, dose_mg=dose_mg, every_weeks=4.0), 2)
    return float(np.average(rows[_between(rows, 1, 2), 2], weights=rows[_between(rows, 1, 2), 1]))


@scenario(
    adt_loss_1y=".1%",
    adt_loss_5y=".1%",
    adt_before_loss_1y=".1%",
    adt_before_loss_5y=".1%",
    za=".2f",
    denosumab=".2f",
    pamidronate=".2f",
    denosumab_seeding=".2f",
)
def skeleton_turnover() -> dict[str, float]:
    """One patient's uninvolved skeleton: density lost on ADT (1 and 5 years) started at entry, and given for years
    before entry (the entry state of castration-resistant disease); resorption ``R_S`` on each drug.

    ``denosumab_seeding`` is the factor of the new-lesion hazard at denosumab's ``R_S`` (``R_S^e``).
    """
    x = 1.0 + PARAMS.androgen_deprivation_rankl_rise
    s0 = PARAMS.remodelling_space
    loss = {}
    for name, (w0, z0, space0) in (("adt", (1.0, 1.0, s0)), ("adt_before", (x * x, 1.0 + s0 * (x - 1.0), s0 * x))):
        w, z, space, damage = np.array([w0]), np.array([z0]), np.array([space0]), np.zeros(1)
        density = []
        for _ in range(5 * 52):
            skeleton.advance(w, z, space, damage, np.ones(1), np.array([x]), 7.0, PARAMS)
            density.append(float(skeleton.bone_density(z, space, PARAMS)[0]))
        loss[f"{name}_loss_1y"], loss[f"{name}_loss_5y"] = 1.0 - density[51], 1.0 - density[259]
    return {
        **loss,
        "za": _resorption_on("zoledronic_acid", 4.0),
        "denosumab": _resorption_on("denosumab", 120.0),
        "pamidronate": _resorption_on("pamidronate", 90.0),
        "denosumab_seeding": _resorption_on("denosumab", 120.0) ** PARAMS.niche_resorption_exponent,
    }


@scenario(
    za_years_1_2=".1f",
    za_year_5=".1f",
    za_risk_5y=".2%",
    za_stopped_years_5_7=".1f",
    za_continued_years_5_7=".1f",
    za_stopped_years_7_9=".1f",
    za_continued_years_7_9=".1f",
    za_stopped_resorption_low=".2f",
    za_stopped_resorption_high=".2f",
    za_yearly_fall=".0%",
    denosumab_years_1_2=".1f",
    denosumab_year_5=".1f",
    denosumab_risk_5y=".2%",
)
def atypical_fractures() -> dict[str, float]:
    """AFF hazard of one patient (CrCl 80) on monthly zoledronic acid (10 years; stopped after 5) and denosumab."""
    on = skeleton_path(reference_arm("zoledronic_acid", dose_mg=4.0, every_weeks=4.0), 10)
    off = skeleton_path(reference_arm("zoledronic_acid", dose_mg=4.0, every_weeks=4.0, stop_after_months=60), 10)
    dmab = skeleton_path(reference_arm("denosumab", dose_mg=120.0, every_weeks=4.0), 5)
    after_stop = off[_between(off, 5, 7), 2]
    return {
        "za_years_1_2": aff_per_10k(on, 0, 2),
        "za_year_5": aff_per_10k(on, 4, 5),
        "za_risk_5y": aff_risk_5_years(on),
        "za_stopped_years_5_7": aff_per_10k(off, 5, 7),
        "za_continued_years_5_7": aff_per_10k(on, 5, 7),
        "za_stopped_years_7_9": aff_per_10k(off, 7, 9),
        "za_continued_years_7_9": aff_per_10k(on, 7, 9),
        "za_stopped_resorption_low": float(after_stop.min()),
        "za_stopped_resorption_high": float(after_stop.max()),
        "za_yearly_fall": 1.0 - _at(off, 9, 4) / _at(off, 8, 4),
        "denosumab_years_1_2": aff_per_10k(dmab, 0, 2),
        "denosumab_year_5": aff_per_10k(dmab, 4, 5),
        "denosumab_risk_5y": aff_risk_5_years(dmab),
    }


def osteoporotic_fractures_from(rows: np.ndarray, from_years: float) -> tuple[float, float]:
    """Osteoporotic fractures per 100 patient-years from ``from_years`` on, and the share with several vertebrae."""
    after = rows[:, 0] >= from_years * DAYS_PER_YEAR
    h = rows[after, 6] * rows[after, 1]
    p = PARAMS.multiple_fracture_share
    odds = p / (1 - p) * np.exp(PARAMS.multiple_fracture_loss_gain * np.maximum(rows[after, 5], 0.0))
    return float(h.sum() / rows[after, 1].sum() * DAYS_PER_YEAR * 100), float((h * odds / (1 + odds)).sum() / h.sum())


@scenario(
    peak=".2f",
    overshoot=".0%",
    peak_months_after_last_dose=".0f",
    gain_3y="+.1%",
    density_3_5y=".3f",
    density_4_5y=".3f",
    continued_4_5y=".3f",
    rate_placebo=".2f",
    rate_continued=".2f",
    rate_stopped=".2f",
    continued_change="+.0%",
    stopped_of_placebo=".0%",
    multiple_stopped=".0%",
    freedom_rate=".2f",
    freedom_of_placebo=".0%",
    freedom_multiple=".0%",
)
def denosumab_rebound() -> dict[str, float]:
    """One patient's skeleton: denosumab 3 years then stopped, against continued and placebo (5 years)."""
    rows = {
        name: skeleton_path(a, 5)
        for name, a in (
            ("placebo", reference_arm()),
            ("continued", reference_arm("denosumab", dose_mg=120.0, every_weeks=4.0)),
            ("stopped", reference_arm("denosumab", dose_mg=120.0, every_weeks=4.0, stop_after_months=36)),
        )
    }
    stopped = rows["stopped"]
    last_dose = float(np.arange(0.0, 36 * DAYS_PER_MONTH, 28.0)[-1])
    rate = {name: osteoporotic_fractures_from(r, 3)[0] for name, r in rows.items()}
    freedom = osteoporotic_fractures_from(stopped, 3.5)
    return {
        "peak": float(stopped[:, 2].max()),
        "overshoot": float(stopped[:, 2].max()) - 1.0,
        "peak_months_after_last_dose": (float(stopped[np.argmax(stopped[:, 2]), 0]) - last_dose) / DAYS_PER_MONTH,
        "gain_3y": _at(rows["continued"], 3, 3) - 1.0,
        "density_3_5y": _at(stopped, 3.5, 3),
        "density_4_5y": _at(stopped, 4.5, 3),
        "continued_4_5y": _at(rows["continued"], 4.5, 3),
        "rate_placebo": rate["placebo"],
        "rate_continued": rate["continued"],
        "rate_stopped": rate["stopped"],
        "continued_change": rate["continued"] / rate["placebo"] - 1.0,
        "stopped_of_placebo": rate["stopped"] / rate["placebo"],
        "multiple_stopped": osteoporotic_fractures_from(stopped, 3)[1],
        "freedom_rate": freedom[0],
        "freedom_of_placebo": freedom[0] / rate["placebo"],
        "freedom_multiple": freedom[1],
    }


@scenario(prostate=".0f", breast=".0f", lung=".0f")
def entry_bsap() -> dict[str, float]:
    """Median BSAP (ug/L) at entry of 1000 reference patients per primary (seed 1)."""
    return {
        primary: _median_marker(
            simulate(reference_cohort(1000, primary, seed=1), reference_arm(), 7.0, Streams(1), marker_weeks=(0,))[2],
            "bsap_ug_l",
            0,
        )
        for primary in ("prostate", "breast", "lung")
    }


# ---------------------------------------------------------------------------------------------- command


def main(names: Sequence[str] = ()) -> None:
    """Re-measure the named scenarios (all without names), store them and re-render ``docs/model.md``.

    The other scenarios keep their stored results (one not stored yet, or stored with other numbers
    than it now declares, is measured); a stored scenario no longer registered is dropped.
    """
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    stored = docs.load_measurements() if docs.MEASUREMENTS_JSON.exists() else {}
    keep = {
        name
        for name, sc in SCENARIOS.items()
        if names and name not in names and set(stored.get(name, ())) == set(sc.formats)
    }
    results = {name: stored[name] if name in keep else measure(name) for name in SCENARIOS}
    atomic_write_json(docs.MEASUREMENTS_JSON, results)
    docs.main()


if __name__ == "__main__":
    main(sys.argv[1:])
