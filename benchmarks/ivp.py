"""The ``solve_ivp`` baseline of benchmark c: one patient the way a Python user would write it.

:func:`solve_ivp_patient` integrates, with ``scipy.integrate.solve_ivp`` (RK45, rtol 1e-6, atol
1e-9) restarted at every dose day, the same equations as :func:`vtrial.model.simulate.simulate`
for a version-1 arm without a background therapy (the bare cohort block of the benchmark): every
lesion's ``(w, y, Z, M)`` and four local cumulative hazards; the skeleton outside the lesions
``(w_S, Z_S, S, D)``; the osteoclast-precursor reserve ``Q``; the cumulative suppression ``E``
(osteonecrosis of the jaw); and the cumulative hazards of hypercalcaemia, new lesions, death,
ONJ, renal toxicity, atypical femoral and osteoporotic fractures. The drug's daily inputs come
from the model's :class:`~vtrial.model.drugs.Exposure` (closed-form PK, no ODE state), the rates
from the model's own functions; the skeleton and the reserve, which the model advances by exact
steps only, have their derivatives here (:func:`skeleton_rates`, :func:`reserve_rate`, checked
against the model's steps in ``tests/test_benchmark_baseline.py``).

Events are checked at the end of each segment (dose days and every ``LAB_VISIT_DAYS``): a crossed
cumulative hazard is reset and the next threshold applies; radiotherapy and cord compression cut
the tumour, a fracture or a fixation raises the lesion's fracture weight, surgery may follow a
fracture or a compression (the model's decision draws), an SRE raises the death hazard for
``RECENT_SRE_DAYS``, a new lesion joins the state vector, death ends the patient; serum calcium
is read at the laboratory visits (hypocalcaemia is a threshold of the calcium, not a hazard).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
from scipy.integrate import solve_ivp

from vtrial.cohort import CohortBlock
from vtrial.model import events as ev
from vtrial.model import markers as mk
from vtrial.model import skeleton
from vtrial.model.drugs import Exposure, StepInputs
from vtrial.model.lesion import (
    LesionState,
    LesionTraits,
    established_state,
    gompertz_rate,
    lesion_traits,
    rates,
    strength,
    turnover,
)
from vtrial.model.local_therapy import LocalTherapy
from vtrial.model.parameters import Parameters, log_sd
from vtrial.model.simulate import LAB_VISIT_DAYS, RECENT_SRE_DAYS, _heterogeneity
from vtrial.model.types import ArmLike
from vtrial.streams import Streams

#: Patient-level cumulative hazards integrated as ODE states, in this order.
PATIENT_HAZARDS = ("hypercalcaemia", "new_lesion", "death", "osteonecrosis_of_the_jaw", "renal_toxicity")
#: Their rows in the model's patient thresholds (``events.PATIENT_EVENTS``).
_THRESHOLD_ROW = [ev.PATIENT_EVENTS.index(name) for name in PATIENT_HAZARDS]
_AFF_ROW = ev.PATIENT_EVENTS.index("atypical_femoral_fracture")
_APR_ROW = ev.PATIENT_EVENTS.index("acute_phase_reaction")


@dataclass(frozen=True)
class CohortDraws:
    """The random draws of a block that :func:`solve_ivp_patient` uses, from the model's stream purposes."""

    thresholds: ev.Thresholds
    #: osteoporotic-fracture thresholds ``[n, PATIENT_THRESHOLDS]`` (stream purpose ``skeleton``)
    fracture: np.ndarray
    #: the ``heterogeneity`` draws (drug potency, calcium set-point, lesion growth factors)
    spread: dict[str, np.ndarray]
    #: one standard normal per patient and laboratory visit: day-to-day calcium variation
    calcium: np.ndarray

    @classmethod
    def of(cls, cohort: CohortBlock, streams: Streams, days: int, params: Parameters) -> CohortDraws:
        """Draw them for ``days`` of follow-up."""
        ids = cohort.patient_id
        return cls(
            ev.draw_thresholds(streams, ids),
            streams.draws("skeleton", ids).exponential((ev.PATIENT_THRESHOLDS,)),
            _heterogeneity(streams, ids, params),
            streams.draws("calcium", ids).standard_normal((days // LAB_VISIT_DAYS + 1,)),
        )


def skeleton_rates(
    w: float, z: float, space: float, damage: float, x2: float, params: Parameters, production: float = 1.0
) -> tuple[float, float, float, float, float]:
    """``(dw/dt, dZ/dt, dS/dt, dD/dt)`` of the skeleton outside the lesions, and its resorption ``u``.

    docs/model.md (:mod:`vtrial.model.skeleton`): ``dw/dt = 2 beta_B (X**2 F - w)``, ``u = X**2/v``,
    ``dZ/dt = k_s u (v**g_OB u**-g_OC - Z)``, ``dS/dt = (s_0 u - S)/tau``,
    ``dD/dt = (1 - u/theta)^+ - r (u/theta) D``; ``x2`` is ``X**2``.
    """
    v = np.sqrt(w)
    u = x2 / v
    target = v**params.systemic_formation_exponent * u**-params.systemic_resorption_exponent
    remodelled = u / params.aff_turnover_threshold
    return (
        2.0 * params.osteoblast_rate * (x2 * production - w),
        params.systemic_bone_turnover_rate * u * (target - z),
        (params.remodelling_space * u - space) / params.remodelling_period_days,
        max(1.0 - remodelled, 0.0) - params.microdamage_repair_rate * remodelled * damage,
        u,
    )


def reserve_rate(q: float, inhibition: float, params: Parameters) -> float:
    """``dQ/dt = a I (1 - Q/Qmax) - r (1 - I) Q`` of the osteoclast-precursor reserve (:mod:`vtrial.model.drugs`)."""
    a, r = params.precursor_accumulation_rate, params.precursor_release_rate
    return a * inhibition * (1.0 - q / params.precursor_reserve_max) - r * (1.0 - inhibition) * q


@dataclass
class IvpResult:
    """What :func:`solve_ivp_patient` ends with: events, follow-up and the final states."""

    n_events: int
    followup_days: float
    #: lesion states ``(w, y, Z, M)`` in slot order ``[4, lesions]``
    lesions: np.ndarray
    #: skeleton ``(w_S, Z_S, S, D)``, reserve ``Q`` and cumulative suppression ``E``
    patient: np.ndarray


def solve_ivp_patient(
    cohort: CohortBlock, i: int, arm: ArmLike, days: int, draws: CohortDraws, params: Parameters
) -> IvpResult:
    """Simulate patient ``i`` of ``cohort`` under ``arm`` for ``days`` with ``solve_ivp`` between dose days.

    State vector: ``4 m`` lesion states ``(w, y, Z, M)`` and ``4 m`` local cumulative hazards
    (``m`` lesions, growing with new ones), then ``w_S, Z_S, S, D, Q, E``, then the cumulative
    hazards of :data:`PATIENT_HAZARDS`, the atypical femoral and the osteoporotic fracture.
    """
    primary = int(cohort.primary[i])
    mask = cohort.lesion_mask[i]
    slots = np.flatnonzero(mask)
    growth = gompertz_rate(params.by_primary("doubling_time_days")[primary], params)
    growth = growth * cohort.biology["tumour_growth_rate"][i]
    mean_phi = float(cohort.lesion_blastic_fraction[i, mask].mean())
    site = cohort.lesion_site[i, mask].astype(np.int64)
    phi = cohort.lesion_blastic_fraction[i, mask]
    risk = ev.patient_risk(
        cohort.primary[i : i + 1].astype(np.int64),
        cohort.ecog[i : i + 1].astype(float),
        cohort.visceral_metastases[i : i + 1],
        cohort.age_years[i : i + 1],
        cohort.creatinine_clearance_ml_min[i : i + 1],
        cohort.dental_risk[i : i + 1],
        np.array([bool(ev.JAW[site].any())]),
        cohort.biology["tumour_growth_rate"][i : i + 1],
        cohort.prior_sre[i : i + 1],
        params,
    )
    local = LocalTherapy.from_arm(arm, params)
    spread = draws.spread
    exposure = Exposure.of_arm(
        arm, cohort.creatinine_clearance_ml_min[i : i + 1], days, params, None, spread["potency_z"][i : i + 1]
    )
    one = np.zeros(1, np.int64)
    daily: list[StepInputs] = []  # the drug's inputs of each day, filled segment by segment (up to death)
    suppression = np.zeros(days)
    inhibition = exposure.rankl_inhibition[exposure.history_days :]
    gains = mk.calcium_gains(
        cohort.creatinine_clearance_ml_min[i : i + 1],
        cohort.vitamin_d_deficient[i : i + 1],
        bool(arm.calcium_vitamin_d),
        params,
    )

    def new_traits(slot: np.ndarray, blastic: np.ndarray):
        traits = lesion_traits(
            blastic,
            cohort.biology["pthrp_secretion"][i],
            cohort.biology["osteoblastic_drive"][i],
            growth * spread["lesion_growth"][slot, i],
            params,
        )
        weights = ev.lesion_hazard_weights(site_of[slot], traits.blastic_fraction, traits.growth_rate, params)
        weights = weights * risk.skeletal_frailty[0]
        if not local.prophylactic_fixation:
            weights[3] = 0.0
        return traits, weights

    site_of = np.zeros(ev.MAX_LESION_SLOTS, np.int64)
    site_of[slots] = site
    traits, weights = new_traits(slots, phi)
    state = established_state(cohort.lesion_burden[i, mask], traits, params)
    lesions = np.stack([state.w, state.y, state.z, state.induction]).astype(float)
    patient = np.array([1.0, 1.0, params.remodelling_space, 0.0, 0.0, 0.0])
    hazards = np.zeros(len(PATIENT_HAZARDS) + 2)
    local_hazards = np.zeros((4, slots.size))
    lesion_count = np.zeros((4, slots.size), np.int64)
    patient_count = np.zeros(hazards.size, np.int64)
    patient_left = np.append(draws.thresholds.patient[i, _THRESHOLD_ROW + [_AFF_ROW], 0], draws.fracture[i, 0])
    patient_rows = _THRESHOLD_ROW + [_AFF_ROW]
    apr, apr_count = 0.0, 0
    last_sre = -np.inf
    calcium_low, n_events, visit = False, 0, 0

    def rhs(t: float, s: np.ndarray, m: int, traits: LesionTraits, weights: np.ndarray, last_sre: float) -> np.ndarray:
        """The derivatives of the state vector (``m`` lesions; SREs raise the death hazard after ``last_sre``)."""
        d = min(int(t), days - 1)
        inp = daily[d]
        w, y, z, ind = s[:m], s[m : 2 * m], s[2 * m : 3 * m], s[3 * m : 4 * m]
        sw, sz, ss, sd, q, _ = s[8 * m : 8 * m + 6]
        recruitment = (1.0 + q) * (1.0 - suppression[d])
        lesion_rates = rates(
            w, y, z, ind, traits, recruitment, inp.pthrp_keep, inp.tgf_beta_keep, inp.kill, params, inp.cells
        )
        resorbed, _, _, _, pthrp = turnover(
            LesionState(w, y, z, ind),
            traits,
            recruitment,
            inp.pthrp_keep,
            params,
            inp.cells.il6_keep,
            inp.cells.osteoblast_drive_keep,
        )
        burden = np.exp(y)
        local_rate = ev.lesion_hazards(weights, strength(z, burden, params), burden, resorbed, params)
        *bone, resorption = skeleton_rates(sw, sz, ss, sd, recruitment**2, params, inp.cells.osteoblast_production)
        total = burden.sum()
        exposed = s[8 * m + 5]
        recent = last_sre <= t < last_sre + RECENT_SRE_DAYS
        patient_rate = [
            risk.hypercalcaemia[0] * (burden * pthrp * resorbed).sum(),
            params.seeding_hazard * total * resorption**params.niche_resorption_exponent * inp.homing_keep,
            risk.death[0]
            * np.exp(params.death_log_hr_burden * total)
            * (params.death_hr_recent_sre if recent else 1.0),
            risk.onj[0] * suppression[d] * exposed / (exposed + params.onj_exposure_half_days),
            risk.renal_background[0],
            params.atypical_fracture_hazard * sd,
            skeleton.fracture_hazard(skeleton.bone_density(sz, ss, params), ss, params),
        ]
        return np.concatenate(
            [
                *lesion_rates,
                local_rate.ravel(),
                bone,
                [reserve_rate(q, inhibition[d], params), suppression[d]],
                patient_rate,
            ]
        )

    cuts = exposure.step_grid(LAB_VISIT_DAYS)  # every dose day, and every laboratory visit
    for start, end in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        doses = exposure.impulses(int(start), one)
        if doses is not None:
            hazards[4] += params.renal_infusion_hazard * float(doses.relative_auc[0]) * risk.kidney[0]
            apr += float(np.asarray(doses.acute_phase).ravel()[0])
        for day in range(len(daily), min(end + 1, days)):  # the segment's days, and the next (a lesion born at its end)
            daily.append(exposure.inputs(day, day + 1, one))
            suppression[day] = daily[day].suppression[0]
        m = slots.size
        x = np.concatenate([lesions.ravel(), local_hazards.ravel(), patient, hazards])
        x = solve_ivp(rhs, (start, end), x, rtol=1e-6, atol=1e-9, args=(m, traits, weights, last_sre)).y[:, -1]
        lesions = x[: 4 * m].reshape(4, m)
        local_hazards = x[4 * m : 8 * m].reshape(4, m)
        patient, hazards = x[8 * m : 8 * m + 6], x[8 * m + 6 :]
        # --- events at the end of the segment ---------------------------------------------------
        left = draws.thresholds.lesion[i, slots[None, :], np.arange(4)[:, None], np.minimum(lesion_count, 2)]
        kinds, hit = np.nonzero(local_hazards >= np.where(lesion_count < ev.LESION_THRESHOLDS, left, np.inf))
        if hit.size:  # fracture, cord compression, radiotherapy, prophylactic fixation
            last_sre = end
            local_hazards[kinds, hit] = 0.0
            decision = draws.thresholds.surgery[i, slots[hit], :, np.minimum(lesion_count[kinds, hit], 2)]
            lesion_count[kinds, hit] += 1
            lesions[1, hit[(kinds == 1) | (kinds == 2)]] += local.log_survival  # (decompressive) radiotherapy
            weights[0, hit[(kinds == 0) | (kinds == 3)]] *= params.fracture_after_fracture
            long_bone = ev.LONG_BONE[site_of[slots[hit]]]
            chance = np.where(long_bone, params.surgery_after_fracture_long_bone, params.surgery_after_fracture_other)
            operate = ((kinds == 0) & (decision[:, 0] < chance)) | (
                (kinds == 1) & (decision[:, 1] < params.surgery_after_compression)
            )
            weights[3, hit[operate | (kinds == 3)]] = 0.0  # a fixed bone is not fixed again
            n_events += hit.size + int(operate.sum())
        if apr_count < ev.PATIENT_THRESHOLDS and apr >= draws.thresholds.patient[i, _APR_ROW, apr_count]:
            n_events, apr, apr_count = n_events + 1, 0.0, apr_count + 1
        crossed = np.flatnonzero(hazards >= patient_left)
        if crossed.size:
            n_events += crossed.size
            hazards[crossed] = 0.0
            patient_count[crossed] += 1
            for k in crossed.tolist():
                more = patient_count[k] < ev.PATIENT_THRESHOLDS
                row = draws.fracture[i] if k == len(patient_rows) else draws.thresholds.patient[i, patient_rows[k]]
                patient_left[k] = row[patient_count[k]] if more else np.inf
            if 2 in crossed:  # death
                return IvpResult(n_events, end, lesions, patient)
            if 0 in crossed:  # hypercalcaemia is an SRE
                last_sre = end
            if 1 in crossed and slots.size < ev.MAX_LESION_SLOTS:  # a new lesion, in the bone of the day
                slot = np.array([int(slots.max()) + 1])
                u = draws.thresholds.new_site[i, min(patient_count[1] - 1, ev.PATIENT_THRESHOLDS - 1)]
                share = np.cumsum(ev.SEEDING_SITE_SHARE)
                site_of[slot] = np.searchsorted(share, u * ev.SEEDING_SITE_SHARE.sum(), side="right")
                slots = np.append(slots, slot)
                traits_new, weights_new = new_traits(slots, np.append(traits.blastic_fraction, mean_phi))
                weights_new[:, :-1] = weights  # the lesions' weights as their events left them
                traits, weights = traits_new, weights_new
                day = min(int(end), days - 1)
                born = established_state(
                    np.full(1, params.new_lesion_burden),
                    LesionTraits(*(a[-1:] for a in astuple(traits))),
                    params,
                    ((1.0 + patient[4]) * (1.0 - suppression[day])) ** 2,
                    daily[day].pthrp_keep,
                    daily[day].cells,
                    daily[day].tgf_beta_keep,
                )
                lesions = np.column_stack([lesions, [born.w[0], born.y[0], born.z[0], born.induction[0]]])
                local_hazards = np.column_stack([local_hazards, np.zeros(4)])
                lesion_count = np.column_stack([lesion_count, np.zeros(4, np.int64)])
        if end % LAB_VISIT_DAYS == 0:  # serum calcium at the laboratory visit, before the day's dose
            d = min(int(end), days) - 1
            recruitment = (1.0 + patient[4]) * (1.0 - suppression[d])
            cells = daily[d].cells
            _, resorbed_flux, formed_flux, _, pthrp = turnover(
                LesionState(*lesions),
                traits,
                recruitment,
                daily[d].pthrp_keep,
                params,
                cells.il6_keep,
                cells.osteoblast_drive_keep,
            )
            serum = mk.calcium(
                np.array([recruitment]),
                patient[:1],
                np.array([(resorbed_flux - formed_flux).sum()]),
                np.array([(np.exp(lesions[1]) * pthrp).sum()]),
                spread["calcium_setpoint"][i : i + 1],
                gains,
                params,
            )[0] * np.exp(log_sd(params.calcium_cv) * draws.calcium[i, visit])
            visit += 1
            low = serum < mk.HYPOCALCAEMIA_GRADE_2_MMOL_L
            n_events += int(low and not calcium_low)
            calcium_low = low
    return IvpResult(n_events, float(days), lesions, patient)
