"""Simulate one block of patients under one arm: lesion biology, hazards and events, step by step.

The only Python loop is over time steps (``STEP_DAYS`` days, plus a step boundary at every
dose day; all patients of an arm share the dosing schedule in their own time). Lesions live in
one flat array (only real lesions, new ones appended; ``owner`` is the patient row), so the
cost follows the number of real lesions, and per-patient sums are ``np.bincount`` over it,
which adds each patient's lesions in their fixed order (bit-identical in any block). Patients
whose follow-up has ended leave the working arrays once they are ``COMPACT_SHARE`` of them.

Hazards are evaluated at mid-step and integrated over the step; an event happens where the
integrated hazard crosses the patient's pre-drawn threshold, at the time interpolated inside
the step (exact for a hazard constant over the step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, overload

import numpy as np

from vtrial.cohort import CohortBlock
from vtrial.errors import ModelInvariantError
from vtrial.model import events as ev
from vtrial.model import markers as mk
from vtrial.model import skeleton, systemic
from vtrial.model.drugs import Exposure, StepInputs
from vtrial.model.lesion import (
    NO_CELL_INPUTS,
    STATE_DTYPE,
    STEP_DAYS,
    LesionState,
    LesionTraits,
    advance,
    established_state,
    formation_rate,
    gompertz_rate,
    interface_share,
    is_scalar,
    lesion_traits,
    strength,
    turnover,
)
from vtrial.model.local_therapy import LocalTherapy, high_risk_hazard, pain_response_ratios
from vtrial.model.parameters import Parameters, log_sd
from vtrial.model.types import ArmLike
from vtrial.streams import Streams
from vtrial.vocabulary import DAYS_PER_WEEK, EVENT_TYPES, PAIN_ASSESSMENT_DAYS, PRIMARIES, SITES

#: Compact the working arrays once this share of their patients has ended follow-up.
COMPACT_SHARE = 0.1
#: Model steps whose day-to-day calcium variation is drawn in one call of the ``calcium`` stream purpose.
CALCIUM_DRAW_STEPS = 64
#: An SRE raises the death hazard for this long.
RECENT_SRE_DAYS = 90.0
#: Days between the scheduled laboratory visits at which calcium is measured (hypocalcaemia events):
#: the phase 3 trials of the antiresorptives measured serum chemistry at every 4-weekly visit
#: (Stopeck 2010, Fizazi 2011, Henry 2011).
LAB_VISIT_DAYS = 28
_TYPE_CODE = {name: i for i, name in enumerate(EVENT_TYPES)}
_FRACTURE, _COMPRESSION, _RADIATION, _SURGERY = range(4)
_HCM, _NEW, _DEATH, _ONJ, _HYPO, _RENAL, _APR, _AFF = range(8)
_LESION_TYPE = np.array([_TYPE_CODE[t] for t in ev.LESION_EVENTS])
_PATIENT_TYPE = np.array([_TYPE_CODE[t] for t in ev.PATIENT_EVENTS])
_SURGERY_CODE = _TYPE_CODE["surgery_to_bone"]
_PROPHYLACTIC_RT_CODE = _TYPE_CODE["prophylactic_radiotherapy"]
_PAIN_RESPONSE_CODES = np.array([_TYPE_CODE["partial_pain_response"], _TYPE_CODE["complete_pain_response"]])
_CASTRATION_CODE = _TYPE_CODE["castration_resistance"]
_OSTEOPOROTIC_CODE = _TYPE_CODE["osteoporotic_fracture"]
#: Haematological toxicity, in the order of its threshold axis (first occurrence per patient).
_MARROW_TYPE = np.array([_TYPE_CODE["neutropenia"], _TYPE_CODE["thrombocytopenia"]])
#: Where a new lesion's uniform falls: the cumulative seeding shares and their total (computed once).
_SEEDING_CDF, _SEEDING_TOTAL = np.cumsum(ev.SEEDING_SITE_SHARE), ev.SEEDING_SITE_SHARE.sum()


class _Rows:
    """Working arrays whose last axis is a set of rows (patients or lesions), with spare capacity.

    Each array is an attribute holding the used part (a view, refreshed whenever the rows change,
    so that reading it is a plain attribute lookup); :meth:`keep` compacts in place and
    :meth:`append` adds rows, growing the capacity geometrically. ``fixed`` arrays are attributes
    too but keep the rows they were given (the block's patients): read at the rows' ``index``, for
    constants read seldom and too wide to copy at every compaction.
    """

    if TYPE_CHECKING:  # the arrays are set as attributes by name (:meth:`_views`)

        def __getattr__(self, name: str) -> np.ndarray: ...

    def __init__(self, arrays: dict[str, np.ndarray], fixed: dict[str, np.ndarray] | None = None) -> None:
        self._arrays = {name: np.array(a) for name, a in arrays.items()}  # own copies: compacted in place
        self.size = next(iter(arrays.values())).shape[-1]
        self._views()
        for name, a in (fixed or {}).items():
            setattr(self, name, a)

    def _views(self) -> None:
        for name, a in self._arrays.items():
            setattr(self, name, a[..., : self.size])

    def keep(self, rows: np.ndarray) -> None:
        """Keep the given rows (boolean mask or sorted indices), in their order."""
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)  # once, not per array
        for a in self._arrays.values():
            kept = np.take(a[..., : self.size], rows, axis=-1, mode="wrap")  # see _per_lesion
            a[..., : kept.shape[-1]] = kept
        self.size = kept.shape[-1]
        self._views()

    def append(self, values: dict[str, np.ndarray]) -> None:
        """Add rows after the last one (``values`` has every array's name)."""
        extra = next(iter(values.values())).shape[-1]
        if self.size + extra > next(iter(self._arrays.values())).shape[-1]:
            capacity = 2 * (self.size + extra)
            for name, a in self._arrays.items():
                grown = np.empty((*a.shape[:-1], capacity), a.dtype)
                grown[..., : self.size] = a[..., : self.size]
                self._arrays[name] = grown
        for name, a in self._arrays.items():
            a[..., self.size : self.size + extra] = values[name]
        self.size += extra
        self._views()


def simulate(
    cohort_block: CohortBlock,
    arm: ArmLike,
    horizon_days: float,
    streams: Streams,
    parameters: Mapping[str, float] | None = None,
    marker_weeks: Sequence[int] = (),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Simulate a block of patients under one arm up to the data cut-off.

    Parameters
    ----------
    cohort_block : CohortBlock
    arm : ArmLike
        A protocol arm (:class:`vtrial.model.types.ArmLike`; the optional
        ``radiotherapy`` and ``surgery`` tables are read by :class:`vtrial.model.local_therapy.LocalTherapy`)
    horizon_days : float
        Data cut-off in days after the first randomisation; patient ``i`` is followed to death,
        dropout or ``horizon_days - entry_day[i]``.
    streams : Streams
        Event thresholds come from its ``events`` purpose, keyed to the patients.
    parameters : mapping, optional
        Overrides of :data:`vtrial.model.parameters.REGISTRY` values (calibration).
    marker_weeks : sequence of int
        Visit weeks at which bone markers are measured (:func:`vtrial.model.markers.marker_weeks`:
        week 0 first); empty: no markers, at no cost.

    Returns
    -------
    patients, events, markers : dict of numpy arrays
        One row per patient; one row per event sorted by (patient_id, day); one row per visit of
        a patient on study, sorted by (patient_id, week).
    """
    params = Parameters(parameters)
    cb = cohort_block
    n = cb.n_patients
    if cb.lesion_mask.shape[1] > ev.MAX_LESION_SLOTS:
        raise ValueError(f"at most {ev.MAX_LESION_SLOTS} lesions per patient are supported")
    admin_end = np.maximum(horizon_days - cb.entry_day, 0.0)
    dropped = cb.dropout_day < admin_end
    stop = np.where(dropped, cb.dropout_day, admin_end)
    # whole steps, so that the step grid (hence every patient's numbers) does not depend on the block
    n_days = int(np.ceil(stop.max() / STEP_DAYS)) * STEP_DAYS if n else 0
    spread = _heterogeneity(streams, cb.patient_id, params)
    exposure = Exposure.of_arm(
        arm, cb.creatinine_clearance_ml_min, n_days, params, cb.prior_treatment, spread["potency_z"]
    )
    local = LocalTherapy.from_arm(arm, params)
    thresholds = ev.draw_thresholds(streams, cb.patient_id)
    visit_weeks = np.asarray(marker_weeks, dtype=np.int64)
    noise = mk.draw_noise(streams, cb.patient_id, visit_weeks.size) if visit_weeks.size else None
    visit_days = {int(w) * DAYS_PER_WEEK: k for k, w in enumerate(visit_weeks)}
    primary = cb.primary.astype(np.int64)
    growth_multiplier = cb.biology["tumour_growth_rate"] * systemic.subtype_growth(cb.breast_subtype, params)
    growth = gompertz_rate(params.by_primary("doubling_time_days")[primary], params) * growth_multiplier
    mask = cb.lesion_mask
    owner, slot = np.nonzero(mask)  # row-major: each patient's lesions in slot order
    site = cb.lesion_site[mask].astype(np.int8)
    jaw_lesion = np.zeros(n, bool)
    jaw_lesion[owner[ev.JAW[site]]] = True
    risk = ev.patient_risk(
        primary,
        cb.ecog.astype(float),
        cb.visceral_metastases,
        cb.age_years,
        cb.creatinine_clearance_ml_min,
        cb.dental_risk,
        jaw_lesion,
        growth_multiplier,
        cb.prior_sre,
        params,
    )
    calcium_noise = streams.draws("calcium", cb.patient_id)
    n_entry = np.maximum(mask.sum(axis=1), 1)
    mean_phi = (cb.lesion_blastic_fraction * mask).sum(axis=1) / n_entry
    biology = (cb.biology["pthrp_secretion"], cb.biology["osteoblastic_drive"])
    seed = dict(seed_state=_untreated_seed_state(mean_phi, *biology, growth, params)) if exposure.untreated else {}
    background = systemic.background(
        cb, arm, params
    )  # None only for a bare cohort block (model tests): protocols resolve a usual care per primary
    stage = {} if background is None else _background_arrays(background, cb, streams)
    control = _control_arrays(background, cb, streams, growth, params)
    bone, bone_draws = _skeleton_arrays(
        cb,
        streams,
        stage.pop("fracture_thresholds", None),
        np.ones(n) if background is None else background.rankl_factor,
        np.ones(n) if background is None else background.entry_rankl_factor,
        params,
    )
    p = _Rows(
        dict(
            index=np.arange(n),
            stop=stop.copy(),
            last_sre=np.full(n, -np.inf),
            cum_suppression=np.zeros(n),
            remaining=thresholds.patient[:, :, 0].T.copy(),
            count=np.zeros((8, n), np.int64),
            next_slot=np.where(mask.any(axis=1), mask.shape[1] - np.argmax(mask[:, ::-1], axis=1), 0),
            death=risk.death,
            hcm=risk.hypercalcaemia,
            onj=risk.onj,
            renal_bg=risk.renal_background,
            kidney=risk.kidney,
            calcium_setpoint=spread["calcium_setpoint"],
            calcium_gains=mk.calcium_gains(
                cb.creatinine_clearance_ml_min, cb.vitamin_d_deficient, bool(arm.calcium_vitamin_d), params
            ),
            calcium_low=np.zeros(n, bool),
            **stage,
            **control,
            **bone,
            marrow_remaining=_marrow_thresholds(streams, cb.patient_id, exposure, background),
        ),
        # read only when a lesion is seeded
        fixed=dict(
            lesion_growth=spread["lesion_growth"],  # [MAX_LESION_SLOTS, n]
            pain_z=spread["pain_z"],  # [MAX_LESION_SLOTS, n]
            frailty=risk.skeletal_frailty,
            mean_phi=mean_phi,
            pthrp_secretion=biology[0],
            drive_mult=biology[1],
            growth=growth,
            **seed,
        ),
    )
    lesions = _Rows(
        _new_lesions(
            p, owner, slot, site, cb.lesion_blastic_fraction[mask], cb.lesion_burden[mask], thresholds, local, params
        )
    )
    if exposure.history_days:
        _prior_history(p, lesions, exposure, params)
    log: list[tuple[np.ndarray, ...]] = []
    if local.course.at_entry:
        _entry_radiotherapy(p, lesions, exposure, log, local, params)
    stop_on_onj = bool(getattr(arm, "stop_on_onj", False))
    recovery = (
        _renal_recovery_days(streams, cb.patient_id, params)
        if getattr(arm, "withhold_on_renal_toxicity", False)
        else None
    )
    end_day = stop.copy()
    # castration resistance needs castration-sensitive disease under hormonal therapy; a patient never becomes
    # sensitive again, so without one at entry the resistant clone and its hazard cannot matter
    staged = background is not None and bool((p.sensitive & p.hormonal).any())
    # a background therapy that kills no patient of the block adds zeros to the kill (x + 0.0 is x): left out
    kills = background is not None and any(
        bool(np.any(k)) for k in (background.kill_sensitive, background.kill_resistant, background.course_kill)
    )
    died = np.zeros(n, bool)
    irradiated = False  # whether a bone-seeking agent was given: the interface shares then evolve every step
    visits: list[tuple[np.ndarray, ...]] = []
    grid = exposure.step_grid(STEP_DAYS) if n else np.zeros(1, np.int64)
    pending: _Visit | None = None  # a visit inside the step just taken, waiting for the step's end
    lagging = False  # whether lesions had events in the last step (their rest of it is counted at the next rate)
    assessing = local.course.at_entry  # whether a lesion has had a course (a pain assessment may be pending)
    response_ratios = pain_response_ratios(params)
    for step, (start, end) in enumerate(zip(grid[:-1].tolist(), grid[1:].tolist())):
        if step % CALCIUM_DRAW_STEPS == 0:  # the same calls in any block: a patient's draws do not depend on it
            calcium_draws = calcium_noise.standard_normal((CALCIUM_DRAW_STEPS,))
        if pending is not None:
            pending.record(p, lesions, exposure, start, visits, params)
            pending = None
        ended = p.stop <= start
        n_ended = np.count_nonzero(ended)
        if n_ended == p.size:
            break
        if n_ended >= COMPACT_SHARE * p.size:
            _compact(p, lesions, ~ended)
        if noise is not None:
            pending = _Visit.due(visit_days, visit_weeks, noise, p, lesions, exposure, start, end, visits, params)
        days = float(end - start)
        inputs = exposure.inputs(start, end, p.index)
        L = lesions
        if local.course.prophylactic:
            _prophylactic_radiotherapy(p, L, start, log, local, params)
        state = LesionState(L.w, L.y, L.z, L.m)
        kill = inputs.kill
        if staged and background is not None:
            kill_resistant = systemic.kill(
                np.zeros(p.size, bool),
                p.kill_sensitive,
                p.kill_resistant,
                p.course_kill,
                background.course_days,
                start,
                end,
            )
        if kills and background is not None:
            kill_now = systemic.kill(
                p.sensitive, p.kill_sensitive, p.kill_resistant, p.course_kill, background.course_days, start, end
            )
            kill = kill + kill_now
        controlled: np.ndarray | float = 0.0
        if control:
            controlled = systemic.controlled_share(p.control_start, p.control_end, start, end)
            kill = kill + p.control_kill * controlled
        kill = _per_lesion(kill, L.owner)
        traits = LesionTraits(L.pthrp, L.drive, L.suppression, L.growth, L.phi)
        cells = inputs.cells
        if inputs.formation_kill or irradiated:
            # a bone-seeking agent kills where it was taken up: in proportion to each lesion's formation rate,
            # most at the bone interface, whose tumour drives the osteoblasts (its share recovers after the agent)
            irradiated = True
            drive_keep = cells.osteoblast_drive_keep
            uptake = inputs.formation_kill * formation_rate(L.w, L.y, traits, params, drive_keep * L.interface)
            uptake = uptake.astype(STATE_DTYPE)
            kill = kill + uptake
            share = interface_share(L.interface, uptake, days, params)  # step mean; L.interface moves to its end
            cells = replace(cells, osteoblast_drive_keep=drive_keep * share)
        sig = advance(
            state,
            traits,
            _per_lesion(inputs.recruitment, L.owner),
            _per_lesion(inputs.recruitment_sq, L.owner),
            _per_lesion(inputs.pthrp_keep, L.owner),
            _per_lesion(inputs.tgf_beta_keep, L.owner),
            kill,
            days,
            params,
            cells,
            _per_lesion(inputs.pool_loss, L.owner),
        )
        # --- local events ---------------------------------------------------------------------
        pain = ev.lesion_pain(ev.pain_drive(sig.burden, sig.tgf_beta, params), L.sensitised, L.pain_share, days, params)
        rate = ev.lesion_hazards(
            L.weights, strength(sig.bone, sig.burden, params), sig.burden, sig.tgf_beta, params, pain
        )
        _check_invariants(cb, p, L, rate, start)
        if assessing and L.assess_day.min() < end:
            _pain_assessment(p, L, pain, end, log, response_ratios)
        remaining = L.remaining
        remaining -= days * rate
        if lagging:  # the rest of the last step after a lesion's event, at the rate after the event's effect
            remaining -= L.lag * rate
            L.lag[:] = 0.0
            lagging = False
        kinds, hit = _nonzero(remaining <= 0.0)
        if hit.size:
            t = start + _crossing(remaining[kinds, hit], rate[kinds, hit].astype(float), 0.0, days)
            # an event's effect (a course, a fixation) acts from the step's end: the rest of the step after a
            # lesion's first event is taken back from its cumulative hazards and counted at the next step's rate
            # (after the effect), not at the rate before it (at two weeks that overcounted re-treated lesions)
            first = np.full(L.size, float(end))
            np.minimum.at(first, hit, t)
            touched = np.unique(hit)
            tail = end - first[touched]
            remaining[:, touched] += rate[:, touched] * tail
            L.lag[touched] = tail
            lagging = True
            _lesion_events(p, lesions, thresholds, kinds, hit, t, log, local, params, pain)
            assessing = True
        # --- patient-level events -------------------------------------------------------------
        rows = p.size
        owner = L.owner
        total = np.bincount(owner, sig.burden, rows)
        load = np.bincount(owner, sig.burden * sig.pthrp * sig.tgf_beta, rows)  # PTHrP-driven resorption
        supp = inputs.suppression
        exposure_mid = p.cum_suppression + 0.5 * days * supp
        p.cum_suppression[:] += days * supp
        resorption, damage = _skeleton_events(p, inputs, bone_draws, start, days, log, params)
        doses = exposure.impulses(start, p.index)
        recent = np.clip(np.minimum(p.last_sre + RECENT_SRE_DAYS, end) - np.maximum(p.last_sre, start), 0.0, days)
        # mean hazard per day over the step, and the dose-day impulses (spread over the dose day)
        p_rate = np.stack(
            [
                p.hcm * load,
                params.seeding_hazard * total * resorption**params.niche_resorption_exponent * inputs.homing_keep,
                _non_skeletal_death(p, background, controlled, params)
                * np.exp(params.death_log_hr_burden * total)
                * (1.0 + (params.death_hr_recent_sre - 1.0) * recent / days),
                p.onj * supp * exposure_mid / (exposure_mid + params.onj_exposure_half_days),
                np.zeros(rows),  # hypocalcaemia: from the calcium (_hypocalcaemia), not a hazard
                p.renal_bg,
                np.zeros(rows),
                params.atypical_fracture_hazard * damage,
            ]
        )
        impulse = np.zeros((8, 1 if doses is None else rows))
        if doses is not None:
            impulse[_RENAL] = params.renal_infusion_hazard * doses.relative_auc * p.kidney
            impulse[_APR] = doses.acute_phase
        if staged:
            _stage_events(p, kill_resistant, start, days, log, params)
        _marrow_events(p, inputs.marrow_dose_rate, background is not None, start, days, log, params)
        p_remaining = p.remaining
        p_remaining -= days * p_rate + impulse
        kinds, hit = _nonzero(p_remaining <= 0.0)
        if hit.size:
            pulse = impulse[kinds, np.minimum(hit, impulse.shape[1] - 1)]
            t = start + _crossing(p_remaining[kinds, hit], p_rate[kinds, hit], pulse, days)
            _patient_events(p, lesions, thresholds, kinds, hit, t, log, local, params, inputs)
            _label_rules(exposure, p, kinds, hit, t, stop_on_onj, recovery)
            dead = (kinds == _DEATH) & (t <= p.stop[hit])
            if dead.any():
                r = hit[dead]
                died[p.index[r]] = True
                end_day[p.index[r]] = t[dead]
                p.stop[r] = np.minimum(p.stop[r], t[dead])
        if end % LAB_VISIT_DAYS == 0:  # a laboratory visit on the step's last day (before that day's dose)
            _hypocalcaemia(p, lesions, exposure, end, calcium_draws[:, step % CALCIUM_DRAW_STEPS], log, params)
    if pending is not None:
        pending.record(p, lesions, exposure, int(grid[-1]), visits, params)
    return (*_tables(cb, arm, log, end_day, died, dropped, stop), _marker_table(cb, arm, visits))


def _skeleton_step(
    p: _Rows, inputs: StepInputs, days: float, params: Parameters
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Advance each patient's skeleton outside the lesions over one step (:func:`~vtrial.model.skeleton.advance`)."""
    return skeleton.advance(
        p.skeleton_w,
        p.skeleton_z,
        p.skeleton_s,
        p.microdamage,
        inputs.recruitment_sq,
        p.rankl_factor,
        days,
        params,
        inputs.cells.osteoblast_production,
    )


def _skeleton_events(
    p: _Rows, inputs: StepInputs, draws: tuple[np.ndarray, np.ndarray], start: int, days: float, log, params: Parameters
):
    """Step the skeleton outside the lesions and record its osteoporotic fractures; return the step means of its
    resorption (healthy 1) and microdamage (per patient). ``draws``: see :func:`_skeleton_arrays`.

    A fracture is recorded once per vertebra it involves (:func:`~vtrial.model.skeleton.vertebrae`:
    several events on one day while density is lost fast) and uses one threshold.
    """
    before = skeleton.bone_density(p.skeleton_z, p.skeleton_s, params)
    resorption, density, space, damage = _skeleton_step(p, inputs, days, params)
    rate = skeleton.fracture_hazard(density, space, params)
    remaining = p.fracture_remaining
    remaining -= days * rate
    broke = np.flatnonzero(remaining <= 0.0)
    if broke.size:
        t = start + _crossing(remaining[broke], rate[broke], 0.0, days)
        k = p.fracture_count[broke]
        thresholds, uniforms = draws
        patient = p.index[broke]
        n = skeleton.vertebrae(
            skeleton.loss_per_year(
                before[broke], skeleton.bone_density(p.skeleton_z[broke], p.skeleton_s[broke], params), days
            ),
            uniforms[patient, k],
            params,
        )
        rows = np.repeat(broke, n)
        _record(log, p, rows, np.repeat(t, n), _OSTEOPOROTIC_CODE, np.full(rows.size, -1), np.full(rows.size, -1))
        p.fracture_count[broke] += 1
        more = k + 1 < ev.PATIENT_THRESHOLDS
        value = np.full(broke.size, np.inf)
        value[more] = thresholds[patient[more], k[more] + 1]
        remaining[broke] += value
    return resorption, damage


@dataclass
class _Visit:
    """A marker visit on ``day``: the true values at the start of its step (``start``), the visit's noise.

    Visits are not step boundaries, so that the markers stay outputs (a run without visits steps,
    hence draws its events, the same way). A visit on a step's first day is measured there; one
    inside a step is measured once the step is taken, between the true values at its two ends,
    geometrically in time (each state relaxes exponentially over a step: :func:`~vtrial.model.lesion.advance`).
    Either way the drug inputs are those of the day before the visit (the sample is taken before
    that day's dose; at week 0 those of a prior treatment, none without one), and the patients
    measured are those on study on the visit day.
    """

    day: int
    week: int
    start: int
    truth: np.ndarray
    noise: np.ndarray

    @classmethod
    def due(
        cls,
        visit_days: Mapping[int, int],
        visit_weeks: np.ndarray,
        noise: np.ndarray,
        p: _Rows,
        lesions: _Rows,
        exposure: Exposure,
        start: int,
        end: int,
        visits: list,
        params: Parameters,
    ) -> _Visit | None:
        """The visit of the step ``[start, end)``, if any: measured now when on ``start``, else returned pending."""
        day = next((d for d in visit_days if start <= d < end), None)
        if day is None:
            return None
        k = visit_days[day]
        visit = cls(day, int(visit_weeks[k]), start, _marker_truth(p, lesions, exposure, day, params), noise[:, k])
        if day == start:
            visit.record(p, lesions, exposure, start, visits, params)
            return None
        return visit

    def record(self, p: _Rows, lesions: _Rows, exposure: Exposure, end: int, visits: list, params: Parameters) -> None:
        """Append the measured markers of the patients on study on the visit day (states now at ``end``)."""
        on_study = p.stop > self.day
        if not on_study.any():
            return
        truth = self.truth
        if end > self.day:
            after = _marker_truth(p, lesions, exposure, self.day, params)
            share = (self.day - self.start) / (end - self.start)
            truth = truth ** (1.0 - share) * after**share
        idx = p.index
        values = mk.with_noise(truth, self.noise[idx], params)
        visits.append((idx[on_study], np.full(int(on_study.sum()), self.week), values[on_study]))


def _turnover_on(
    p: _Rows, lesions: _Rows, exposure: Exposure, day: int, params: Parameters
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The patients' osteoclast recruitment and the lesions' :func:`~vtrial.model.lesion.turnover` now, with the
    drug inputs of the day before ``day`` (none on day 0 without a prior treatment, the prior drug's with one)."""
    pthrp_keep: float | np.ndarray
    loss: float | np.ndarray = 0.0
    if day == 0 and not exposure.history_days:
        recruitment, pthrp_keep, cells = np.ones(p.size), 1.0, NO_CELL_INPUTS
    else:
        before = exposure.inputs(day - 1, day, p.index)
        recruitment, pthrp_keep, cells = before.recruitment, before.pthrp_keep, before.cells
        loss = before.pool_loss
    L = lesions
    return recruitment, turnover(
        LesionState(L.w, L.y, L.z, L.m),
        LesionTraits(L.pthrp, L.drive, L.suppression, L.growth, L.phi),
        recruitment[L.owner],
        _per_lesion(pthrp_keep, L.owner),
        params,
        cells.il6_keep,
        cells.osteoblast_drive_keep * L.interface,
        _per_lesion(loss, L.owner),
    )


def _marker_truth(p: _Rows, lesions: _Rows, exposure: Exposure, day: int, params: Parameters) -> np.ndarray:
    """True markers ``[rows, 3]`` (:func:`vtrial.model.markers.true_values`) of the current states with the drug
    inputs of the day before ``day``."""
    L = lesions
    recruitment, (resorbed, resorption, formation, forming, pthrp) = _turnover_on(p, L, exposure, day, params)
    burden = np.exp(L.y)
    return mk.true_values(
        L.owner,
        resorbed,
        burden,
        resorption,
        formation,
        forming,
        burden * pthrp,
        recruitment * p.rankl_factor,
        p.skeleton_w,
        p.calcium_setpoint,
        p.calcium_gains,
        params,
    )


@overload
def _per_lesion(value: float, owner: np.ndarray) -> float: ...
@overload
def _per_lesion(value: np.ndarray, owner: np.ndarray) -> np.ndarray: ...
@overload
def _per_lesion(value: float | np.ndarray, owner: np.ndarray) -> float | np.ndarray: ...
def _per_lesion(value: float | np.ndarray, owner: np.ndarray) -> float | np.ndarray:
    """A drug input for the lesions: a shared float as it is, a per-patient array taken at each lesion's owner.

    ``np.take`` gathers the same elements as indexing, ~2.5x faster on the lesion arrays; its mode ``wrap``
    (the indices are valid, so they are not changed) skips the bounds check of the default mode: ~15-25% faster.
    """
    return value if is_scalar(value) else np.take(np.asarray(value, dtype=STATE_DTYPE), owner, mode="wrap")


def _prior_history(p: _Rows, lesions: _Rows, exposure: Exposure, params: Parameters) -> None:
    """Carry the patients through the exposure history before randomisation (a prior treatment).

    Entry lesions start untreated (:func:`~vtrial.model.lesion.established_state`) and keep their
    entry burden, the one seen at randomisation, while their osteoblasts and bone follow the prior
    drug step by step; the skeleton outside the lesions (turnover, density, microdamage: markers,
    osteoporotic and atypical fractures) and the cumulative suppression (ONJ) take the history too,
    without events.
    """
    L = lesions
    burden = L.y.copy()
    grid = exposure.step_grid(STEP_DAYS, history=True)
    for start, end in zip(grid[:-1].tolist(), grid[1:].tolist()):
        days = float(end - start)
        inputs = exposure.inputs(start, end, p.index)
        advance(
            LesionState(L.w, L.y, L.z, L.m),
            LesionTraits(L.pthrp, L.drive, L.suppression, L.growth, L.phi),
            _per_lesion(inputs.recruitment, L.owner),
            _per_lesion(inputs.recruitment_sq, L.owner),
            _per_lesion(inputs.pthrp_keep, L.owner),
            _per_lesion(inputs.tgf_beta_keep, L.owner),
            _per_lesion(inputs.kill, L.owner),
            days,
            params,
            inputs.cells,
            _per_lesion(inputs.pool_loss, L.owner),
        )
        L.y[:] = burden
        _skeleton_step(p, inputs, days, params)
        p.cum_suppression[:] += days * inputs.suppression


def _renal_recovery_days(streams: Streams, patient_id: np.ndarray, params: Parameters) -> np.ndarray:
    """Days from each renal deterioration to creatinine back within 10% of baseline, ``[n, PATIENT_THRESHOLDS]``.

    Exponential with median ``renal_recovery_median_days``, from the stream purpose ``label_rules``
    (the k-th deterioration of a patient takes column k).
    """
    draws = streams.draws("label_rules", patient_id).exponential((ev.PATIENT_THRESHOLDS,))
    return draws * params.renal_recovery_median_days / np.log(2.0)


def _label_rules(
    exposure: Exposure,
    p: _Rows,
    kinds: np.ndarray,
    rows: np.ndarray,
    t: np.ndarray,
    stop_on_onj: bool,
    recovery: np.ndarray | None,
) -> None:
    """Apply the arm's label rules to the patients with an event: they miss the doses the rule withholds.

    ``stop_on_onj``: after osteonecrosis of the jaw the antiresorptive agents stop for good;
    ``recovery`` (``withhold_on_renal_toxicity``): after a renal deterioration the nephrotoxic
    agents are held until creatinine recovers, that many days later.
    """
    onj = np.flatnonzero(kinds == _ONJ)
    if stop_on_onj:
        for r, day in zip(rows[onj].tolist(), t[onj].tolist()):
            exposure.withhold(p.index[r], day, np.inf, nephrotoxic=False)
    renal = np.flatnonzero(kinds == _RENAL)
    if recovery is not None:
        for r, day in zip(rows[renal].tolist(), t[renal].tolist()):
            k = min(int(p.count[_RENAL, r]) - 1, ev.PATIENT_THRESHOLDS - 1)
            exposure.withhold(p.index[r], day, day + recovery[p.index[r], k], nephrotoxic=True)


def _marker_table(cb: CohortBlock, arm: ArmLike, visits: list) -> dict[str, np.ndarray]:
    """The markers table: one row per patient on study and visit, sorted by (patient_id, week)."""
    if visits:
        idx, week, values = (np.concatenate(parts) for parts in zip(*visits))
    else:
        idx, week, values = np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, len(mk.MARKER_COLUMNS)))
    pid = cb.patient_id[idx]
    order = np.lexsort((week, pid))
    table = {
        "patient_id": pid[order].astype(np.int64),
        "arm": np.full(order.size, arm.name, dtype=object),
        "week": week[order].astype(np.int64),
    }
    table.update({name: values[order, k].astype(float) for k, name in enumerate(mk.MARKER_COLUMNS)})
    return table


def _non_skeletal_death(
    p: _Rows, background: systemic.Background | None, controlled: np.ndarray | float, params: Parameters
) -> np.ndarray:
    """The death hazard's part that does not come from bone burden or recent SREs (per patient).

    Castration-sensitive disease under hormonal therapy responds outside bone too (nodes, prostate,
    viscera), which the model carries no state for: its non-skeletal hazard is lowered by
    ``death_hr_castration_sensitive`` until the disease becomes resistant. Likewise disease under
    control by the usual care (``controlled``: the share of the step under control,
    :func:`~vtrial.model.systemic.controlled_share`) has its non-skeletal hazard lowered by
    ``death_hr_disease_control``.
    """
    if background is None:
        return p.death
    death = p.death * np.where(p.sensitive & p.hormonal, params.death_hr_castration_sensitive, 1.0)
    if np.ndim(controlled):
        death = death * (1.0 + (params.death_hr_disease_control - 1.0) * controlled)
    return death


def _heterogeneity(streams: Streams, patient_id: np.ndarray, params: Parameters) -> dict[str, np.ndarray]:
    """Per-patient draws of the ``heterogeneity`` stream purpose, in a fixed order.

    ``potency_z`` ``[n, 2]``: standard normals of the drug exposure and sensitivity
    (:class:`~vtrial.model.drugs.Exposure`); ``calcium_setpoint`` ``[n]``: the serum-calcium set-point
    factor (log-normal, CV ``calcium_setpoint_cv``); ``lesion_growth`` ``[MAX_LESION_SLOTS, n]``: each
    lesion slot's growth-rate factor around the patient's (log-normal, mean 1, CV
    ``lesion_growth_cv``), for entry and new lesions alike; ``pain_z`` ``[MAX_LESION_SLOTS, n]``: each
    lesion slot's standard normal of its sensitised share (:func:`_sensitised_share`; drawn after the
    others: their numbers do not move).
    """
    draws = streams.draws("heterogeneity", patient_id)
    potency_z = draws.standard_normal((2,))
    setpoint = draws.standard_normal()
    lesion = draws.standard_normal((ev.MAX_LESION_SLOTS,))
    pain = draws.standard_normal((ev.MAX_LESION_SLOTS,))
    return dict(
        potency_z=potency_z,
        calcium_setpoint=np.exp(log_sd(params.calcium_setpoint_cv) * setpoint),
        lesion_growth=np.exp(log_sd(params.lesion_growth_cv) * lesion - 0.5 * log_sd(params.lesion_growth_cv) ** 2).T,
        pain_z=pain.T,
    )


def _sensitised_share(z: np.ndarray, params: Parameters) -> np.ndarray:
    """Sensitised share ``q`` of a lesion's pain from its standard normal ``z`` (:func:`~vtrial.model.events.lesion_pain`).

    Logit-normal: ``logit q = logit(pain_sensitised_share) + pain_sensitised_spread z``.
    """
    median = params.pain_sensitised_share
    logit = math.log(median / (1.0 - median)) + params.pain_sensitised_spread * z
    return (1.0 / (1.0 + np.exp(-logit))).astype(STATE_DTYPE)


def _hypocalcaemia(
    p: _Rows, lesions: _Rows, exposure: Exposure, day: int, noise: np.ndarray, log, params: Parameters
) -> None:
    """Serum calcium at a laboratory visit on ``day``; record ``hypocalcaemia`` where it is below grade 2 (CTCAE >= 2).

    Called at the end of the steps that end on a scheduled visit (every :data:`LAB_VISIT_DAYS` from
    randomisation): hypocalcaemia is an adverse event as the trials found it, at their laboratory
    visits, not every dip of the true calcium between them. The calcium is that of the marker
    visits (:func:`_marker_truth`: the states on the visit day, the drug inputs of the day before,
    as the sample precedes that day's dose), so it does not depend on the step. Day-to-day
    variation: log-normal with CV ``calcium_cv``, from the ``calcium`` stream purpose (one draw per
    patient and step). Only patients on study on the visit day are measured; one event per episode,
    on the visit day: a patient is recorded again only after its calcium came back to grade 0-1 at
    a later visit.
    """
    serum = _marker_truth(p, lesions, exposure, day, params)[:, 2]
    serum *= np.exp(log_sd(params.calcium_cv) * noise[p.index])
    low = (serum < mk.HYPOCALCAEMIA_GRADE_2_MMOL_L) & (p.stop > day)
    onset = np.flatnonzero(low & ~p.calcium_low)
    p.calcium_low[:] = low
    if onset.size:
        none = np.full(onset.size, -1)
        _record(log, p, onset, np.full(onset.size, float(day)), _TYPE_CODE["hypocalcaemia"], none, none)


def _background_arrays(background: systemic.Background, cb: CohortBlock, streams: Streams):
    """Per-patient rows of the stage and the background therapy.

    Thresholds come from the ``systemic`` stream purpose, in a fixed order: castration resistance,
    then ``PATIENT_THRESHOLDS`` successive osteoporotic fractures (``fracture_thresholds``, for
    :func:`_skeleton_arrays`).
    """
    draws = streams.draws("systemic", cb.patient_id)
    castration = draws.exponential()
    return dict(
        sensitive=background.castration_sensitive.copy(),
        hormonal=background.hormonal,
        clone=(cb.lesion_burden * cb.lesion_mask).sum(axis=1),
        kill_sensitive=background.kill_sensitive,
        kill_resistant=background.kill_resistant,
        course_kill=background.course_kill,
        castration_remaining=castration,
        fracture_thresholds=draws.exponential((ev.PATIENT_THRESHOLDS,)).T,
    )


def _control_arrays(
    background: systemic.Background | None, cb: CohortBlock, streams: Streams, growth: np.ndarray, params: Parameters
) -> dict[str, np.ndarray]:
    """Per-patient rows of disease control by the usual care (:func:`~vtrial.model.systemic.control_schedule`).

    Empty when no patient of the block receives a controlling therapy; otherwise the line
    durations come from the stream purpose ``disease_control`` (``CONTROL_LINES`` unit
    exponentials per patient), and ``control_kill`` is the Norton-Simon log-kill per day under
    control: ``disease_control_kill`` times the patient's growth rate at the detection burden.
    """
    if background is None or not background.control_days.any():
        return {}
    draws = streams.draws("disease_control", cb.patient_id).exponential((systemic.CONTROL_LINES,))
    start, end = systemic.control_schedule(background.control_days, cb.visceral_metastases, draws, params)
    at_detection = np.log(1.0 / params.tumour_detection_burden)
    return dict(
        control_start=start,
        control_end=end,
        control_kill=params.disease_control_kill * at_detection * growth,  # no control: zero-length lines
    )


def _skeleton_arrays(
    cb: CohortBlock,
    streams: Streams,
    fracture_thresholds: np.ndarray | None,
    rankl_factor: np.ndarray,
    entry_rankl_factor: np.ndarray,
    params: Parameters,
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per-patient rows of the skeleton outside the lesions (undamaged, density 1 at entry), and its draws.

    The skeleton enters at the steady turnover of the systemic recruitment ``X`` already given
    before entry (``entry_rankl_factor``, 1 for most: healthy): osteoblasts ``w = X**2``, osteoclasts
    ``u = X``, remodelling space ``S = s_0 X``, and bone volume ``Z = 1 + S - s_0`` so that the
    density (:func:`~vtrial.model.skeleton.bone_density`) is 1 at entry.

    The stream purpose ``skeleton`` gives, in a fixed order, ``PATIENT_THRESHOLDS`` successive
    osteoporotic-fracture thresholds and as many uniforms for the number of vertebrae of each
    fracture (the draws, ``[n, PATIENT_THRESHOLDS]`` each, indexed by block row). Version-2 protocols
    keep the fracture thresholds they drew from ``systemic`` before every protocol had the
    compartment (``fracture_thresholds``), so their fractures move only with the model.
    """
    draws = streams.draws("skeleton", cb.patient_id)
    own = draws.exponential((ev.PATIENT_THRESHOLDS,))
    fracture = own if fracture_thresholds is None else fracture_thresholds.T
    n = cb.n_patients
    rows = dict(
        skeleton_w=np.square(entry_rankl_factor),
        skeleton_z=1.0 + params.remodelling_space * (entry_rankl_factor - 1.0),
        skeleton_s=params.remodelling_space * entry_rankl_factor,
        microdamage=np.zeros(n),
        rankl_factor=rankl_factor,
        fracture_remaining=fracture[:, 0].copy(),
        fracture_count=np.zeros(n, np.int64),
    )
    return rows, (fracture, draws.random((ev.PATIENT_THRESHOLDS,)))


def _stage_events(p: _Rows, kill_resistant: np.ndarray, start: int, days: float, log, params) -> None:
    """Step the resistant clone; record castration resistance."""
    clone = systemic.resistant_clone(p.clone, kill_resistant, days, params)
    rate = systemic.resistance_hazard(clone, p.sensitive & p.hormonal, params)
    remaining = p.castration_remaining
    remaining -= days * rate
    rows = np.flatnonzero(remaining <= 0.0)
    if not rows.size:
        return
    t = start + _crossing(remaining[rows], rate[rows], 0.0, days)
    _record(log, p, rows, t, _CASTRATION_CODE, np.full(rows.size, -1), np.full(rows.size, -1))
    p.sensitive[rows] = False
    remaining[rows] = np.inf


def _marrow_thresholds(
    streams: Streams, patient_id: np.ndarray, exposure: Exposure, background: systemic.Background | None
) -> np.ndarray:
    """Thresholds ``[2, n]`` of neutropenia and thrombocytopenia; infinite (not drawn) when no hazard can arise.

    The hazard needs a marrow dose (:attr:`Exposure.marrow_dosed`) or a background therapy (every
    protocol has one; a bare cohort block does not); the ``marrow`` stream is drawn only then (other
    purposes are unaffected).
    """
    if background is None and not exposure.marrow_dosed:
        return np.full((2, patient_id.size), np.inf)
    return streams.draws("marrow", patient_id).exponential((2,)).T.copy()


def _marrow_events(p: _Rows, dose_rate: float, background: bool, start: int, days: float, log, params) -> None:
    """Record grade 3-4 neutropenia and thrombocytopenia (first occurrence) over the step.

    Hazard ``h_0 + k D'``: the marrow dose rate ``D'`` of the arm's agents (radium-223: its
    activity in bone) times the per-dose hazard, plus, with a background therapy (every protocol), the
    background hazard of the advanced disease. Thresholds come from the ``marrow`` stream purpose.
    """
    base = (params.neutropenia_background_hazard, params.thrombocytopenia_background_hazard) if background else (0, 0)
    rate = np.array(
        [
            base[0] + params.neutropenia_per_marrow_dose * dose_rate,
            base[1] + params.thrombocytopenia_per_marrow_dose * dose_rate,
        ]
    )
    if not rate.any():
        return
    remaining = p.marrow_remaining
    remaining -= days * rate[:, None]
    kinds, rows = _nonzero(remaining <= 0.0)
    if not rows.size:
        return
    t = start + _crossing(remaining[kinds, rows], rate[kinds], 0.0, days)
    _record(log, p, rows, t, _MARROW_TYPE[kinds], np.full(rows.size, -1), np.full(rows.size, -1))
    remaining[kinds, rows] = np.inf


def _check_invariants(cb: CohortBlock, p: _Rows, lesions: _Rows, rate: np.ndarray, day: int) -> None:
    """Fail loudly, naming the patient, if a lesion state or hazard left its valid range.

    Valid: osteoblast activity (as w) positive and finite, bone mass finite and non-negative,
    log tumour burden not NaN and at most 0 (burden <= capacity), hazards finite and >= 0.
    """
    w, z, y = lesions.w, lesions.z, lesions.y
    if not w.size or (
        w.min() > 0
        and w.max() < np.inf
        and z.min() >= 0
        and z.max() < np.inf
        and y.max() <= 0
        and rate.min() >= 0
        and rate.max() < np.inf
    ):
        return  # reductions propagate NaN, which fails every comparison
    ok = (
        np.isfinite(w)
        & (w > 0)
        & np.isfinite(z)
        & (z >= 0)
        & ~np.isnan(y)
        & (y <= 0)
        & np.isfinite(rate).all(axis=0)
        & (rate >= 0).all(axis=0)
    )
    j = int(np.flatnonzero(~ok)[0])
    i = int(p.index[lesions.owner[j]])
    biology = ", ".join(f"{k} x{v[i]:.4g}" for k, v in cb.biology.items())
    raise ModelInvariantError(
        f"the lesion model left its valid range on day {day} for patient {int(cb.patient_id[i])} "
        f"({PRIMARIES[int(cb.primary[i])]}, {biology}; lesion at {SITES[int(lesions.site[j])]}, "
        f"blastic fraction {float(lesions.phi[j]):.3g}): osteoblast activity^2 {float(lesions.w[j]):.4g}, "
        f"bone mass {float(lesions.z[j]):.4g}, log burden {float(lesions.y[j]):.4g}, "
        f"hazards {np.array2string(rate[:, j], precision=4)}"
    )


def _new_lesions(
    p: _Rows,
    owner,
    slot,
    site,
    phi,
    burden,
    thresholds: ev.Thresholds,
    local: LocalTherapy,
    params: Parameters,
    inputs: StepInputs | None = None,
):
    """Arrays of new lesion rows: the given burden on bone in equilibrium with it, traits and thresholds.

    The bone is in equilibrium with the drug ``inputs`` of the step in which the lesion appears
    (a lesion seeded on an antiresorptive starts with suppressed turnover); ``None``: untreated
    (entry lesions). A lesion's Gompertz rate is its patient's times the lesion slot's own
    log-normal factor (``p.lesion_growth``, :func:`_heterogeneity`); its local-event weights carry
    the patient's skeletal frailty. Without prophylactic fixation in the arm, the lesion's fixation
    hazard is zero. New lesions (``inputs`` given) carry ``new_lesion_burden``; in an arm without a
    dosed agent (placebo) their state is their patient's, computed once (:func:`_untreated_seed_state`).
    """
    patient = p.index[owner]  # the block rows of the patient constants read here (fixed by _Rows)
    growth = p.growth[patient] * p.lesion_growth[slot, patient]
    traits = lesion_traits(phi, p.pthrp_secretion[patient], p.drive_mult[patient], growth, params)
    untreated = getattr(p, "seed_state", None)
    if inputs is None:
        state = established_state(burden, traits, params)
    elif untreated is not None:
        state = LesionState(*untreated[:, patient])
    else:
        state = established_state(
            burden,
            traits,
            params,
            inputs.recruitment_sq[owner],
            _per_lesion(inputs.pthrp_keep, owner),
            inputs.cells,
            _per_lesion(inputs.tgf_beta_keep, owner),
            _per_lesion(inputs.pool_loss, owner),
        )
    weights = ev.lesion_hazard_weights(site, traits.blastic_fraction, traits.growth_rate, params)
    weights = (weights * p.frailty[patient]).astype(STATE_DTYPE)
    if not local.prophylactic_fixation:
        weights[_SURGERY] = 0.0
    return dict(
        owner=owner.astype(np.int64),
        slot=slot.astype(np.int64),
        site=site.astype(np.int8),
        w=state.w,
        y=state.y,
        z=state.z,
        m=state.m,
        pthrp=traits.pthrp,
        drive=traits.osteoblast_drive,
        suppression=traits.osteoblast_suppression,
        growth=traits.growth_rate,
        phi=traits.blastic_fraction,
        weights=weights,
        remaining=thresholds.lesion_at(p.index[owner], slot)[:, :, 0].T.copy(),
        count=np.zeros((4, owner.size), np.int8),
        prophylaxed=np.zeros(owner.size, bool),
        interface=np.ones(owner.size, STATE_DTYPE),
        lag=np.zeros(owner.size),
        sensitised=np.zeros(owner.size, STATE_DTYPE),  # follows the drive up at the first step
        pain_share=_sensitised_share(p.pain_z[slot, patient], params),
        room=np.ones(owner.size, STATE_DTYPE),  # share of the re-irradiation room left
        assess_day=np.full(owner.size, np.inf),  # day of the pending pain assessment
        pain_at_course=np.zeros(owner.size, STATE_DTYPE),
    )


def _untreated_seed_state(
    mean_phi: np.ndarray, pthrp_secretion: np.ndarray, drive_mult: np.ndarray, growth: np.ndarray, params: Parameters
) -> np.ndarray:
    """State ``[w, y, z, m]`` (``[4, n]``) of a new lesion of each patient, seeded in bone no drug acts on.

    Without a dosed agent (:attr:`Exposure.untreated`) every step's drug inputs are exactly those of
    no drug (1), and
    :func:`~vtrial.model.lesion.established_state` works lesion by lesion, so a new lesion's state
    depends on its patient only (its phenotype is the patient's mean): the same numbers once per
    block instead of once per step with a new lesion.
    """
    traits = lesion_traits(mean_phi, pthrp_secretion, drive_mult, growth, params)
    state = established_state(np.full(mean_phi.shape, params.new_lesion_burden), traits, params)
    return np.stack([state.w, state.y, state.z, state.induction])


def _prophylactic_radiotherapy(p: _Rows, lesions: _Rows, day: int, log, local: LocalTherapy, params) -> None:
    """Irradiate, on ``day``, every asymptomatic lesion that is high-risk at that moment, once per lesion.

    High-risk: the lesion's fracture + cord-compression hazard, from its state on ``day``, is at
    least :func:`~vtrial.model.local_therapy.high_risk_hazard`. Asymptomatic: no local event
    (fracture, compression, radiotherapy, surgery) at that lesion so far, and never irradiated
    prophylactically before. The course kills tumour as every course of the arm does.
    """
    L = lesions
    burden = np.exp(L.y)
    rate = ev.lesion_hazards(L.weights, strength(L.z, burden, params), burden, burden, params)
    due = rate[_FRACTURE] + rate[_COMPRESSION] >= high_risk_hazard(params)
    due &= ~L.prophylaxed & ~L.count.any(axis=0) & (p.stop[L.owner] > day)
    hit = np.flatnonzero(due)
    if hit.size:
        _irradiate(L, hit, local)
        L.prophylaxed[hit] = True
        _record(log, p, L.owner[hit], np.full(hit.size, float(day)), _PROPHYLACTIC_RT_CODE, L.slot[hit], L.site[hit])


def _entry_radiotherapy(
    p: _Rows, lesions: _Rows, exposure: Exposure, log, local: LocalTherapy, params: Parameters
) -> None:
    """Give each patient's most painful lesion the arm's course for pain on day 0 (``at_entry``).

    Most painful: the highest radiotherapy hazard, from the lesion's pain drive on day 0 (its resorption
    under no drug, or under the prior treatment's; an entry lesion's nerves are sensitised to its drive,
    so its pain is the drive).
    The course is recorded as ``entry_radiotherapy`` (protocol treatment, not an SRE) and counted
    as the lesion's first (its cumulative hazard goes on: a later ``radiation_to_bone`` is a
    re-treatment); its pain is assessed
    :data:`PAIN_ASSESSMENT_DAYS` later. Lesions are in patient order, so the first lesion of each
    patient at its maximum is the one treated (the lowest slot on a tie).
    """
    L = lesions
    drive = ev.pain_drive(np.exp(L.y), _turnover_on(p, L, exposure, 0, params)[1][0], params)
    hazard = drive * L.weights[_RADIATION]
    best = np.full(p.size, -np.inf)
    np.maximum.at(best, L.owner, hazard)
    top = np.flatnonzero((hazard == best[L.owner]) & (p.stop[L.owner] > 0.0))
    _, first = np.unique(L.owner[top], return_index=True)
    hit = top[first]
    _irradiate(L, hit, local)
    L.count[_RADIATION, hit] = 1
    L.sensitised[hit] = drive[hit]
    _assess_later(L, hit, np.zeros(hit.size), drive[hit])
    _record(log, p, L.owner[hit], np.zeros(hit.size), _TYPE_CODE["entry_radiotherapy"], L.slot[hit], L.site[hit])


def _compact(p: _Rows, lesions: _Rows, alive: np.ndarray) -> None:
    """Drop the patients whose follow-up ended, and their lesions (order kept)."""
    row = np.cumsum(alive) - 1
    keep = np.take(alive, lesions.owner, mode="wrap")
    lesions.keep(keep)
    lesions.owner[:] = np.take(row, lesions.owner, mode="wrap")
    p.keep(alive)


def _crossing(left: np.ndarray, rate: np.ndarray, impulse: np.ndarray | float, days: float) -> np.ndarray:
    """Time into the step at which the integrated hazard crossed the threshold.

    ``left`` is the threshold left after the step (<= 0), ``rate`` the constant hazard per day
    and ``impulse`` a cumulative hazard spread over the step's first day (a dose).
    """
    before = left + days * rate + impulse  # threshold left at the start of the step
    first_day = impulse + rate
    within = before / np.where(first_day > 0.0, first_day, 1.0)
    later = 1.0 + (before - first_day) / np.where(rate > 0.0, rate, 1.0)
    t = np.where(before <= first_day, within, later)
    return np.clip(t, 0.0, days)


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the true entries of a 2-D mask in row-major order: ``np.nonzero``, ~5x faster."""
    flat = np.flatnonzero(mask)
    if not mask.shape[1]:
        return flat, flat
    return np.divmod(flat, mask.shape[1])


def _record(log, p: _Rows, rows, day, code, lesion, site) -> None:
    """Log events of the given rows; ``code`` is one event type for all or one per row."""
    log.append((p.index[rows], day, np.full(rows.shape, code) if np.ndim(code) == 0 else code, lesion, site))


def _lesion_events(
    p: _Rows, lesions: _Rows, thresholds, kinds, hit, t, log, local: LocalTherapy, params, pain: np.ndarray
) -> None:
    """Record the local events of a step (all types at once), apply their consequences and the next thresholds.

    ``kinds`` and ``hit`` (lesion rows) are ordered by type, then lesion; a lesion may have events
    of several types in one step, and their consequences add up in the order of the types. A
    lesion's first course for pain sets its pain assessment :data:`PAIN_ASSESSMENT_DAYS` later,
    against its ``pain`` of the step; a further course before it cancels it (a re-treatment is no
    response).
    """
    L = lesions
    rows, cols, site = L.owner[hit], L.slot[hit], L.site[hit]
    k = L.count[kinds, hit].astype(np.int64)
    _record(log, p, rows, t, _LESION_TYPE[kinds], cols, site)
    nxt = k + 1
    L.count[kinds, hit] = np.minimum(nxt, 127)
    more = nxt < ev.LESION_THRESHOLDS
    value = np.full(hit.size, np.inf)
    value[more] = thresholds.lesion_at(p.index[rows[more]], cols[more])[np.arange(more.sum()), kinds[more], nxt[more]]
    L.remaining[kinds, hit] += value
    p.last_sre[rows] = t
    decision = thresholds.surgery_at(p.index[rows], cols)[
        np.arange(hit.size), :, np.minimum(k, ev.LESION_THRESHOLDS - 1)
    ]
    chance = np.where(ev.LONG_BONE[site], params.surgery_after_fracture_long_bone, params.surgery_after_fracture_other)
    fracture, compression, radiation, fixation = (kinds == kind for kind in range(4))
    operate = (fracture & (decision[:, 0] < chance)) | (
        compression & (decision[:, 1] < params.surgery_after_compression)
    )
    L.weights[_FRACTURE, hit[fracture]] *= params.fracture_after_fracture
    _irradiate(L, hit[compression], local)  # decompressive radiotherapy
    irradiated = hit[radiation]
    _irradiate(L, irradiated, local)
    L.assess_day[irradiated] = np.inf  # a re-treatment before the assessment cancels it
    first = irradiated[k[radiation] == 0]
    _assess_later(L, first, t[radiation][k[radiation] == 0], pain[first])
    L.weights[_FRACTURE, hit[fixation]] *= params.fracture_after_fracture  # prophylactic fixation
    L.weights[_SURGERY, hit[fixation]] = 0.0
    if operate.any():
        _record(log, p, rows[operate], t[operate], _SURGERY_CODE, cols[operate], site[operate])
        L.weights[_SURGERY, hit[operate]] = 0.0


def _irradiate(lesions: _Rows, hit: np.ndarray, local: LocalTherapy) -> None:
    """Give the lesions ``hit`` (distinct) the arm's course: its tumour kill, and its normal-tissue dose (their
    radiotherapy hazard keeps the room left)."""
    if not hit.size:
        return
    lesions.y[hit] += local.log_survival
    room = lesions.room[hit]
    left = np.maximum(room - local.normal_tissue_share, 0.0)
    lesions.weights[_RADIATION, hit] *= np.divide(left, room, out=np.zeros_like(left), where=room > 0.0)
    lesions.room[hit] = left


def _assess_later(lesions: _Rows, hit: np.ndarray, day: np.ndarray, pain: np.ndarray) -> None:
    """Set the pain assessment of the lesions ``hit`` after their first course for pain on ``day``, against ``pain``."""
    lesions.assess_day[hit] = day + PAIN_ASSESSMENT_DAYS
    lesions.pain_at_course[hit] = pain


def _pain_assessment(p: _Rows, lesions: _Rows, pain: np.ndarray, end: int, log, ratios: tuple[float, float]) -> None:
    """Assess the pain of the lesions whose assessment falls in the step ending on ``end``.

    The pain of the step against the pain at the course: at most ``ratios[0]`` of it is a partial
    response, at most ``ratios[1]`` a complete one (:func:`~vtrial.model.local_therapy.pain_response_ratios`),
    recorded as ``partial_pain_response`` or ``complete_pain_response`` on the assessment day; no
    event is no response. A patient who died or left before that day has no event (the event
    tables keep events up to the end of follow-up): a non-responder by intention to treat.
    """
    L = lesions
    due = np.flatnonzero(L.assess_day < end)
    ratio = pain[due] / L.pain_at_course[due]
    partial, complete = ratio <= ratios[0], ratio <= ratios[1]
    rows = due[partial]
    _record(
        log,
        p,
        L.owner[rows],
        L.assess_day[rows],
        _PAIN_RESPONSE_CODES[complete[partial].astype(np.int64)],
        L.slot[rows],
        L.site[rows],
    )
    L.assess_day[due] = np.inf


def _patient_events(
    p: _Rows, lesions: _Rows, thresholds, kinds, rows, t, log, local: LocalTherapy, params, inputs: StepInputs
) -> None:
    """Record patient-level events, apply the next thresholds and seed new lesions (in the bone of ``inputs``)."""
    k = p.count[kinds, rows]
    nxt = k + 1
    p.count[kinds, rows] = nxt
    value = np.full(rows.size, np.inf)
    more = nxt < ev.PATIENT_THRESHOLDS
    value[more] = thresholds.patient[p.index[rows[more]], kinds[more], nxt[more]]
    p.remaining[kinds, rows] += value
    site = np.full(rows.size, -1)
    site[kinds == _AFF] = ev.FEMUR
    site[kinds == _ONJ] = SITES.index("mandible_maxilla")
    lesion = np.full(rows.size, -1)
    new = np.flatnonzero(kinds == _NEW)
    if new.size:
        u = thresholds.new_site[p.index[rows[new]], np.minimum(k[new], ev.PATIENT_THRESHOLDS - 1)]
        site[new] = np.searchsorted(_SEEDING_CDF, u * _SEEDING_TOTAL, side="right")
        slot = p.next_slot[rows[new]]
        room = slot < ev.MAX_LESION_SLOTS
        lesion[new[room]] = slot[room]
        seeded = rows[new[room]]
        if seeded.size:
            p.next_slot[seeded] += 1
            lesions.append(
                _new_lesions(
                    p,
                    seeded,
                    slot[room],
                    site[new[room]].astype(np.int8),
                    p.mean_phi[p.index[seeded]],
                    np.full(seeded.size, params.new_lesion_burden),
                    thresholds,
                    local,
                    params,
                    inputs,
                )
            )
    p.last_sre[rows[kinds == _HCM]] = t[kinds == _HCM]
    _record(log, p, rows, t, _PATIENT_TYPE[kinds], lesion, site)


def _tables(cb: CohortBlock, arm: ArmLike, records, end_day, died, dropped, stop):
    """Assemble the patient and event tables."""
    n = cb.n_patients
    if records:
        idx, day, code, lesion, site = (np.concatenate(parts) for parts in zip(*records))
    else:
        idx, day, code, lesion, site = (
            np.empty(0, np.int64),
            np.empty(0),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
        )
    keep = day <= end_day[idx]
    idx, day, code, lesion, site = idx[keep], day[keep], code[keep], lesion[keep], site[keep]
    out = dropped & ~died
    idx = np.concatenate([idx, np.flatnonzero(out)])
    day = np.concatenate([day, stop[out]])
    code = np.concatenate([code, np.full(out.sum(), _TYPE_CODE["dropout"])])
    lesion = np.concatenate([lesion, np.full(out.sum(), -1)])
    site = np.concatenate([site, np.full(out.sum(), -1)])
    pid = cb.patient_id[idx]
    order = np.lexsort((code, day, pid))
    site_names = np.array(SITES + ("",), dtype=object)
    events = {
        "patient_id": pid[order].astype(np.int64),
        "arm": np.full(order.size, arm.name, dtype=object),
        "day": day[order].astype(float),
        "type": np.array(EVENT_TYPES, dtype=object)[code[order].astype(np.int64)],
        "site": site_names[site[order].astype(np.int64)],
        "lesion": lesion[order].astype(np.int64),
    }
    patients = {
        "patient_id": cb.patient_id.astype(np.int64),
        "arm": np.full(n, arm.name, dtype=object),
        "primary": np.array(PRIMARIES, dtype=object)[cb.primary.astype(np.int64)],
        "age_years": cb.age_years.astype(float),
        "sex": np.where(cb.female, "female", "male").astype(object),
        "ecog": cb.ecog.astype(np.int64),
        "creatinine_clearance_ml_min": cb.creatinine_clearance_ml_min.astype(float),
        "n_lesions": cb.lesion_mask.sum(axis=1).astype(np.int64),
        "visceral_metastases": cb.visceral_metastases.astype(bool),
        "prior_sre": cb.prior_sre.astype(bool),
        "entry_day": cb.entry_day.astype(float),
        "followup_days": np.minimum(end_day, stop).astype(float),
        "died": died,
        "dropped_out": dropped & ~died,
    }
    return patients, events
