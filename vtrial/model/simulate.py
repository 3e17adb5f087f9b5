"""Simulate one block of patients under one arm: daily lesion biology, hazards and events.

The only Python loop is over days since randomisation (all patients of an arm share the
dosing schedule in their own time). Patients whose follow-up has ended leave the working
arrays every ``COMPACT_EVERY_DAYS`` days, so the cost follows the number still at risk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vtrial.cohort import CohortBlock
from vtrial.model import events as ev
from vtrial.model.drugs import Exposure
from vtrial.model.lesion import LesionState, LesionTraits, gompertz_rate, initial_state, lesion_traits, step, strength
from vtrial.model.parameters import Parameters
from vtrial.streams import Streams
from vtrial.vocabulary import EVENT_TYPES, PRIMARIES, SITES

COMPACT_EVERY_DAYS = 14
#: Spare lesion slots added to the block's widest patient (grown further when needed).
SPARE_SLOTS = 2
#: An SRE raises the death hazard for this long.
RECENT_SRE_DAYS = 90.0
_TYPE_CODE = {name: i for i, name in enumerate(EVENT_TYPES)}
_FRACTURE, _COMPRESSION, _RADIATION, _SURGERY = range(4)
_HCM, _NEW, _DEATH, _ONJ, _HYPO, _RENAL, _APR, _AFF = range(8)
_LESION_TYPE = np.array([_TYPE_CODE[t] for t in ev.LESION_EVENTS])
_PATIENT_TYPE = np.array([_TYPE_CODE[t] for t in ev.PATIENT_EVENTS])
_SURGERY_CODE = _TYPE_CODE["surgery_to_bone"]


class _Block:
    """Working arrays of the patients still followed (rows) and their lesion slots (columns)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.__dict__.update(arrays)

    def keep(self, rows: np.ndarray) -> None:
        for name, value in list(self.__dict__.items()):
            if isinstance(value, np.ndarray):
                self.__dict__[name] = value[:, rows] if name in ("weights", "remaining") else value[rows]

    def widen(self, extra: int) -> None:
        """Append ``extra`` empty lesion slots."""
        for name, value in list(self.__dict__.items()):
            if isinstance(value, np.ndarray) and name in _LESION_FILL:
                axis = 2 if name in ("weights", "remaining") else 1
                pad_shape = list(value.shape)
                pad_shape[axis] = extra
                self.__dict__[name] = np.concatenate([value, np.full(pad_shape, _LESION_FILL[name], value.dtype)], axis)


#: Fill value of an empty lesion slot, per lesion array.
_LESION_FILL = {
    "w": 1.0, "y": -np.inf, "z": 1.0, "pthrp": 0.0, "drive": 0.0, "suppression": 0.0, "growth": 0.0,
    "phi": 0.0, "mask": False, "site": 0, "weights": 0.0, "remaining": np.inf, "count": 0,
}


def simulate(
    cohort_block: CohortBlock,
    arm: Any,
    horizon_days: float,
    streams: Streams,
    parameters: Mapping[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Simulate a block of patients under one arm up to the data cut-off.

    Parameters
    ----------
    cohort_block : CohortBlock
    arm : protocol arm (duck-typed; see :class:`vtrial.model.drugs.Exposure`)
    horizon_days : float
        Data cut-off in days after the first randomisation; patient ``i`` is followed to death,
        dropout or ``horizon_days - entry_day[i]``.
    streams : Streams
        Event thresholds come from its ``events`` purpose, keyed to the patients.
    parameters : mapping, optional
        Overrides of :data:`vtrial.model.parameters.REGISTRY` values (calibration).

    Returns
    -------
    patients, events : dict of numpy arrays
        One row per patient, and one row per event sorted by (patient_id, day).
    """
    params = Parameters(parameters)
    cb = cohort_block
    n = cb.n_patients
    if cb.lesion_mask.shape[1] > ev.MAX_LESION_SLOTS:
        raise ValueError(f"at most {ev.MAX_LESION_SLOTS} lesions per patient are supported")
    admin_end = np.maximum(horizon_days - cb.entry_day, 0.0)
    dropped = cb.dropout_day < admin_end
    stop = np.where(dropped, cb.dropout_day, admin_end)
    n_days = int(np.ceil(stop.max())) if n else 0
    exposure = Exposure(arm, cb.creatinine_clearance_ml_min, n_days, params)
    thresholds = ev.draw_thresholds(streams, cb.patient_id)
    primary = cb.primary.astype(np.int64)
    growth = gompertz_rate(params.by_primary("doubling_time_days")[primary], params) * cb.biology["tumour_growth_rate"]
    mask = np.concatenate([cb.lesion_mask, np.zeros((n, SPARE_SLOTS), bool)], axis=1)
    width = mask.shape[1]
    pad = ((0, 0), (0, SPARE_SLOTS))
    phi = np.pad(cb.lesion_blastic_fraction.astype(float), pad)
    site = np.pad(cb.lesion_site.astype(np.int8), pad)
    traits = lesion_traits(phi, cb.biology["pthrp_secretion"], cb.biology["osteoblastic_drive"], growth, params)
    state = initial_state(np.pad(cb.lesion_burden.astype(float), pad), mask)
    jaw_lesion = (ev.JAW[site.astype(np.int64)] & mask).any(axis=1)
    risk = ev.patient_risk(
        primary, cb.ecog.astype(float), cb.visceral_metastases, cb.age_years, cb.creatinine_clearance_ml_min,
        cb.dental_risk, cb.vitamin_d_deficient, jaw_lesion, exposure.relative_auc,
        bool(arm.calcium_vitamin_d), arm.drug in ("zoledronic_acid", "pamidronate"), params,
    )
    n_entry = np.maximum(cb.lesion_mask.sum(axis=1), 1)
    b = _Block(dict(
        index=np.arange(n), w=state.w, y=state.y, z=state.z, pthrp=traits.pthrp, drive=traits.osteoblast_drive,
        suppression=traits.osteoblast_suppression, growth=traits.growth_rate, phi=phi, mask=mask, site=site,
        weights=ev.lesion_hazard_weights(site, mask, params),
        remaining=np.where(mask[None], np.moveaxis(thresholds.lesion[:, :width, :, 0], 2, 0), np.inf),
        count=np.zeros((n, width, 4), np.int8),
        p_remaining=thresholds.patient[:, :, 0].copy(), p_count=np.zeros((n, 8), np.int64),
        stop=stop, last_sre=np.full(n, -np.inf), cum_suppression=np.zeros(n), deep_days=np.zeros(n),
        death=risk.death, hcm=risk.hypercalcaemia, onj=risk.onj, hypo=risk.hypocalcaemia,
        renal_bg=risk.renal_background, renal_inf=risk.renal_infusion,
        mean_phi=(cb.lesion_blastic_fraction * cb.lesion_mask).sum(axis=1) / n_entry,
        pthrp_secretion=cb.biology["pthrp_secretion"], drive_mult=cb.biology["osteoblastic_drive"], growth_p=growth,
    ))
    end_day = stop.copy()
    died = np.zeros(n, bool)
    log_records: list[tuple[np.ndarray, ...]] = []
    log_rt = ev.radiation_log_survival(params)
    apr_first = {"zoledronic_acid": params.acute_phase_first_dose, "pamidronate": params.acute_phase_first_dose,
                 "denosumab": params.acute_phase_first_dose_denosumab}.get(arm.drug, 0.0)

    def record(rows: np.ndarray, day: np.ndarray, code: np.ndarray | int, lesion: np.ndarray, site_code: np.ndarray) -> None:
        log_records.append((b.index[rows], day, np.broadcast_to(code, rows.shape), lesion, site_code))

    for day in range(n_days):
        if day % COMPACT_EVERY_DAYS == 0:
            b.keep(np.flatnonzero(b.stop > day))
            if b.index.size == 0:
                break
        inputs = exposure.daily(day, b.index)
        lesion_state = LesionState(b.w, b.y, b.z)
        sig = step(
            lesion_state, _traits(b), inputs.recruitment[:, None],
            inputs.pthrp_keep, inputs.tgf_beta_keep, inputs.kill, params,
        )
        # --- local events ---------------------------------------------------------------------
        hazard = ev.lesion_hazards(b.weights, strength(b.z, sig.burden, params), sig.burden, sig.tgf_beta, params)
        b.remaining -= hazard
        for kind in np.flatnonzero((b.remaining <= 0.0).any(axis=(1, 2))):
            rows, cols = np.nonzero(b.remaining[kind] <= 0.0)
            t = day + _fraction_of_day(b.remaining[kind, rows, cols], hazard[kind, rows, cols])
            k = b.count[rows, cols, kind].astype(np.int64)
            record(rows, t, _LESION_TYPE[kind], cols, b.site[rows, cols])
            _next_lesion_threshold(b, thresholds, kind, rows, cols, k)
            b.last_sre[rows] = t
            long_bone = ev.LONG_BONE[b.site[rows, cols].astype(np.int64)]
            if kind == _FRACTURE:
                b.weights[_FRACTURE, rows, cols] *= params.fracture_after_fracture
                p = np.where(long_bone, params.surgery_after_fracture_long_bone, params.surgery_after_fracture_other)
                operate = thresholds.surgery[b.index[rows], cols, 0, np.minimum(k, ev.LESION_THRESHOLDS - 1)] < p
            elif kind == _COMPRESSION:
                b.y[rows, cols] += log_rt  # decompressive radiotherapy
                operate = thresholds.surgery[b.index[rows], cols, 1, np.minimum(k, ev.LESION_THRESHOLDS - 1)] < (
                    params.surgery_after_compression)
            elif kind == _RADIATION:
                b.y[rows, cols] += log_rt
                operate = np.zeros(rows.size, bool)
            else:  # prophylactic fixation
                b.weights[_FRACTURE, rows, cols] *= params.fracture_after_fracture
                b.weights[_SURGERY, rows, cols] = 0.0
                operate = np.zeros(rows.size, bool)
            if operate.any():
                r, c = rows[operate], cols[operate]
                record(r, t[operate], _SURGERY_CODE, c, b.site[r, c])
                b.weights[_SURGERY, r, c] = 0.0
        # --- patient-level events -------------------------------------------------------------
        supp = inputs.suppression
        b.cum_suppression += supp
        b.deep_days += supp > params.deep_suppression
        total = _row_sum(sig.burden)
        load = _row_sum(sig.burden * (sig.pthrp + sig.tgf_beta))
        blastic = _row_sum(sig.burden * b.phi)
        dose = exposure.dose_number[day]
        recent = (day - b.last_sre) < RECENT_SRE_DAYS
        p_hazard = np.stack([
            b.hcm * load,
            params.seeding_hazard * total * (1.0 - params.seeding_suppression * supp),
            b.death * np.exp(params.death_log_hr_burden * total) * np.where(recent, params.death_hr_recent_sre, 1.0),
            b.onj * supp * b.cum_suppression / (b.cum_suppression + params.onj_exposure_half_days),
            b.hypo * supp**2 * (1.0 + params.hypocalcaemia_blastic_gain * blastic),
            b.renal_bg + (b.renal_inf if dose >= 0 else 0.0),
            np.full(b.index.size, apr_first * (1.0 if dose == 0 else params.acute_phase_later_ratio) if dose >= 0 else 0.0),
            params.atypical_fracture_hazard * b.deep_days,
        ], axis=1)
        b.p_remaining -= p_hazard
        hit_rows, hit_kinds = np.nonzero(b.p_remaining <= 0.0)
        if hit_rows.size:
            t = day + _fraction_of_day(b.p_remaining[hit_rows, hit_kinds], p_hazard[hit_rows, hit_kinds])
            _handle_patient_events(b, thresholds, hit_rows, hit_kinds, t, record, params)
            dead = (hit_kinds == _DEATH) & (t <= b.stop[hit_rows])
            if dead.any():
                r = hit_rows[dead]
                died[b.index[r]] = True
                end_day[b.index[r]] = t[dead]
                b.stop[r] = np.minimum(b.stop[r], t[dead])
    return _tables(cb, arm, log_records, end_day, died, dropped, stop)


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Sum over lesion slots in slot order, so the result does not depend on the block's padding.

    (numpy's pairwise/SIMD reductions group terms by array width; adding the slots one by one
    keeps a patient's sums, hence its event times, bit-identical in any block.)
    """
    out = a[:, 0].copy()
    for column in range(1, a.shape[1]):
        out += a[:, column]
    return out


def _fraction_of_day(remaining: np.ndarray, hazard: np.ndarray) -> np.ndarray:
    """Time within the day at which the (constant) hazard crossed the threshold."""
    safe = np.where(hazard > 0.0, hazard, 1.0)
    return np.clip(np.where(hazard > 0.0, 1.0 + remaining / safe, 0.0), 0.0, 1.0)


def _traits(b: _Block) -> LesionTraits:
    return LesionTraits(b.pthrp, b.drive, b.suppression, b.growth, b.phi)


def _next_lesion_threshold(b: _Block, thresholds: ev.Thresholds, kind: int, rows, cols, k) -> None:
    """Apply the next pre-drawn threshold of the lesion and event type (none left: never again)."""
    nxt = k + 1
    b.count[rows, cols, kind] = np.minimum(nxt, 127)
    more = nxt < ev.LESION_THRESHOLDS
    value = np.full(rows.size, np.inf)
    value[more] = thresholds.lesion[b.index[rows[more]], cols[more], kind, nxt[more]]
    b.remaining[kind, rows, cols] += value


def _handle_patient_events(b, thresholds, rows, kinds, t, record, params) -> None:
    """Record patient-level events, draw next thresholds and seed new lesions."""
    k = b.p_count[rows, kinds]
    nxt = k + 1
    b.p_count[rows, kinds] = nxt
    value = np.full(rows.size, np.inf)
    more = nxt < ev.PATIENT_THRESHOLDS
    value[more] = thresholds.patient[b.index[rows[more]], kinds[more], nxt[more]]
    b.p_remaining[rows, kinds] += value
    none = np.full(rows.size, -1)
    site = np.full(rows.size, -1)
    site[kinds == _AFF] = ev.FEMUR
    site[kinds == _ONJ] = SITES.index("mandible_maxilla")
    new = np.flatnonzero(kinds == _NEW)
    lesion = none.copy()
    if new.size:
        u = thresholds.new_site[b.index[rows[new]], np.minimum(k[new], ev.PATIENT_THRESHOLDS - 1)]
        site[new] = np.searchsorted(np.cumsum(ev.SEEDING_SITE_SHARE), u * ev.SEEDING_SITE_SHARE.sum(), side="right")
        lesion[new] = _seed(b, thresholds, rows[new], site[new], params)
    b.last_sre[rows[kinds == _HCM]] = t[kinds == _HCM]
    record(rows, t, _PATIENT_TYPE[kinds], lesion, site)


def _seed(b: _Block, thresholds: ev.Thresholds, rows: np.ndarray, site: np.ndarray, params: Parameters) -> np.ndarray:
    """Place new lesions in the first free slot of each patient; return their slots (-1: none left)."""
    slots = np.full(rows.size, -1)
    for i, (r, s) in enumerate(zip(rows, site)):  # new lesions are rare events, not the hot path
        free = np.flatnonzero(~b.mask[r])
        if free.size == 0:
            if b.mask.shape[1] >= ev.MAX_LESION_SLOTS:
                continue
            b.widen(min(SPARE_SLOTS, ev.MAX_LESION_SLOTS - b.mask.shape[1]))
            free = np.flatnonzero(~b.mask[r])
        c = free[0]
        slots[i] = c
        phi = b.mean_phi[r]
        b.mask[r, c], b.site[r, c], b.phi[r, c] = True, s, phi
        b.y[r, c] = np.log(params.new_lesion_burden)
        b.w[r, c] = b.z[r, c] = 1.0
        b.pthrp[r, c] = (params.pthrp_lytic * (1.0 - phi) + params.pthrp_blastic * phi) * b.pthrp_secretion[r]
        b.drive[r, c] = params.osteoblast_drive_blastic * phi * b.drive_mult[r]
        b.suppression[r, c] = params.osteoblast_suppression_lytic * (1.0 - phi)
        b.growth[r, c] = b.growth_p[r]
        b.weights[:, r, c] = ev.lesion_hazard_weights(np.array([[s]]), np.array([[True]]), params)[:, 0, 0]
        b.remaining[:, r, c] = thresholds.lesion[b.index[r], c, :, 0]
        b.count[r, c] = 0
    return slots


def _tables(cb: CohortBlock, arm: Any, records, end_day, died, dropped, stop):
    """Assemble the patient and event tables."""
    n = cb.n_patients
    if records:
        idx, day, code, lesion, site = (np.concatenate(parts) for parts in zip(*records))
    else:
        idx, day, code, lesion, site = (np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64),
                                        np.empty(0, np.int64), np.empty(0, np.int64))
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
