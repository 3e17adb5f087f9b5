"""The ``solve_ivp`` baseline of benchmark c: one patient the way a Python user would write it.

:func:`solve_ivp_patient` integrates, with ``scipy.integrate.solve_ivp`` (RK45, rtol 1e-6, atol
1e-9) restarted at every dose day, the same equations as :func:`vtrial.model.simulate.simulate`
for a version-1 arm of one agent (docs/performance.md, "Target c"): every lesion's ``(w, y, Z, M)``
and four local cumulative hazards; the skeleton outside the lesions ``(w_S, Z_S, S, D)``; the
osteoclast-precursor reserve ``Q``; the cumulative suppression ``E`` (osteonecrosis of the jaw);
and the cumulative hazards of hypercalcaemia, new lesions, death, ONJ, renal toxicity, atypical
femoral and osteoporotic fractures, neutropenia and thrombocytopenia. The usual care of the
patient's primary (``cohort.systemic_therapy``: disease control by lines of therapy, a rise of
RANKL) acts as in the model. The drug's daily inputs come from the model's
:class:`~vtrial.model.drugs.Exposure` (closed-form PK, no ODE state), the rates from the model's
own functions; the skeleton and the reserve, which the model advances by exact steps only, have
their derivatives here (:func:`skeleton_rates`, :func:`reserve_rate`, checked against the model's
steps in ``tests/test_benchmark_baseline.py``).

Events are checked at the end of each segment (dose days, every ``LAB_VISIT_DAYS``, the start and
end of each line's disease control): a crossed cumulative hazard is reset and the next threshold
applies; radiotherapy and cord compression cut the tumour, a fracture or a fixation raises the
lesion's fracture weight, surgery may follow a fracture or a compression (the model's decision
draws), an SRE raises the death hazard for ``RECENT_SRE_DAYS``, a new lesion joins the state
vector, ONJ stops the drug (``stop_on_onj``: the exposure is recomputed with the doses given),
death ends the patient; serum calcium is read at the laboratory visits (hypocalcaemia is a
threshold of the calcium, not a hazard). Not covered (``ValueError``): a prior treatment, the
castration-resistance stage and background tumour kill of prostate cancer, the renal withholding
of a nephrotoxic agent.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from types import SimpleNamespace

import numpy as np
from scipy.integrate import solve_ivp

from vtrial.cohort import CohortBlock
from vtrial.model import events as ev
from vtrial.model import markers as mk
from vtrial.model import skeleton, systemic
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
from vtrial.model.simulate import (
    LAB_VISIT_DAYS,
    RECENT_SRE_DAYS,
    _background_arrays,
    _control_arrays,
    _heterogeneity,
    _skeleton_arrays,
)
from vtrial.model.types import ArmLike
from vtrial.streams import Streams

#: Patient-level cumulative hazards integrated as ODE states, in this order.
PATIENT_HAZARDS = (
    "hypercalcaemia",
    "new_lesion",
    "death",
    "osteonecrosis_of_the_jaw",
    "renal_toxicity",
    "atypical_femoral_fracture",
    "osteoporotic_fracture",
    "neutropenia",
    "thrombocytopenia",
)
#: Rows of the first six in the model's patient thresholds (``events.PATIENT_EVENTS``).
_THRESHOLD_ROWS = [ev.PATIENT_EVENTS.index(name) for name in PATIENT_HAZARDS[:6]]
_APR_ROW = ev.PATIENT_EVENTS.index("acute_phase_reaction")


@dataclass(frozen=True)
class CohortDraws:
    """The random draws and usual care of a block that :func:`solve_ivp_patient` uses, as the model draws them."""

    thresholds: ev.Thresholds
    #: osteoporotic-fracture thresholds ``[n, PATIENT_THRESHOLDS]``
    fracture: np.ndarray
    #: neutropenia and thrombocytopenia thresholds ``[n, 2]`` (stream purpose ``marrow``)
    marrow: np.ndarray
    #: the ``heterogeneity`` draws (drug potency, calcium set-point, lesion growth factors)
    spread: dict[str, np.ndarray]
    #: one standard normal per patient and laboratory visit: day-to-day calcium variation
    calcium: np.ndarray
    #: the usual care (None: a bare block) and its disease control (``control_start``, ``control_end``,
    #: ``control_kill``; empty without control)
    background: systemic.Background | None
    control: dict[str, np.ndarray]

    @classmethod
    def of(cls, cohort: CohortBlock, arm: ArmLike, streams: Streams, days: int, params: Parameters) -> CohortDraws:
        """Draw them for ``days`` of follow-up under ``arm``."""
        ids = cohort.patient_id
        background = systemic.background(cohort, arm, params)
        stage = {} if background is None else _background_arrays(background, cohort, streams)
        growth = gompertz_rate(params.by_primary("doubling_time_days")[cohort.primary.astype(np.int64)], params)
        rankl = np.ones(ids.size) if background is None else background.rankl_factor
        entry = np.ones(ids.size) if background is None else background.entry_rankl_factor
        _, (fracture, _) = _skeleton_arrays(cohort, streams, stage.get("fracture_thresholds"), rankl, entry, params)
        return cls(
            ev.draw_thresholds(streams, ids),
            fracture,
            streams.draws("marrow", ids).exponential((2,)),
            _heterogeneity(streams, ids, params),
            streams.draws("calcium", ids).standard_normal((days // LAB_VISIT_DAYS + 1,)),
            background,
            _control_arrays(background, cohort, streams, growth * cohort.biology["tumour_growth_rate"], params),
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


def _with_doses(arm: ArmLike, doses: int) -> SimpleNamespace:
    """``arm`` (one agent, duck-typed) giving only its first ``doses`` doses: the drug stopped after them."""
    fields = ("name", "drug", "dose_mg", "dose_kbq_per_kg", "every_weeks", "stop_after_months", "renal_adjustment")
    plain = {name: getattr(arm, name, None) for name in fields + ("mechanism",)}
    return SimpleNamespace(**plain, doses=doses)


def solve_ivp_patient(
    cohort: CohortBlock, i: int, arm: ArmLike, days: int, draws: CohortDraws, params: Parameters
) -> IvpResult:
    """Simulate patient ``i`` of ``cohort`` under ``arm`` for ``days`` with ``solve_ivp`` between dose days.

    State vector: ``4 m`` lesion states ``(w, y, Z, M)`` and ``4 m`` local cumulative hazards
    (``m`` lesions, growing with new ones), then ``w_S, Z_S, S, D, Q, E``, then the cumulative
    hazards of :data:`PATIENT_HAZARDS`.
    """
    background = draws.background
    if cohort.prior_treatment is not None or (
        background is not None
        and (
            background.castration_sensitive[i]
            or background.kill_sensitive[i]
            or background.kill_resistant[i]
            or background.course_kill[i]
        )
    ):
        raise ValueError("the baseline covers no prior treatment and no prostate-cancer stage or background kill")
    primary = int(cohort.primary[i])
    mask = cohort.lesion_mask[i]
    slots = np.flatnonzero(mask)
    growth = gompertz_rate(params.by_primary("doubling_time_days")[primary], params)
    growth = growth * cohort.biology["tumour_growth_rate"][i]
    mean_phi = float(cohort.lesion_blastic_fraction[i, mask].mean())
    site_of = np.zeros(ev.MAX_LESION_SLOTS, np.int64)
    site_of[slots] = cohort.lesion_site[i, mask]
    one = slice(i, i + 1)
    risk = ev.patient_risk(
        cohort.primary[one].astype(np.int64),
        cohort.ecog[one].astype(float),
        cohort.visceral_metastases[one],
        cohort.age_years[one],
        cohort.creatinine_clearance_ml_min[one],
        cohort.dental_risk[one],
        np.array([bool(ev.JAW[site_of[slots]].any())]),
        cohort.biology["tumour_growth_rate"][one],
        cohort.prior_sre[one],
        params,
    )
    local = LocalTherapy.from_arm(arm, params)
    spread = draws.spread
    potency = spread["potency_z"][one]
    exposure = Exposure.of_arm(arm, cohort.creatinine_clearance_ml_min[one], days, params, None, potency)
    first = np.zeros(1, np.int64)  # the patient's row in its exposure
    doses = exposure.dose_days[exposure.dose_days >= 0]
    first_dose = exposure.impulses(int(doses[0]), first) if doses.size else None
    if getattr(arm, "withhold_on_renal_toxicity", False) and first_dose is not None:
        if first_dose.relative_auc[0] > 0.0:
            raise ValueError("the baseline does not withhold a nephrotoxic agent after renal deterioration")
    daily: list[StepInputs] = []  # the drug's inputs of each day, filled segment by segment (up to death)
    suppression = np.zeros(days)
    inhibition = exposure.rankl_inhibition[exposure.history_days :]
    rankl = 1.0 if background is None else float(background.rankl_factor[i])
    control = draws.control
    line_start, line_end = (control["control_start"][:, i], control["control_end"][:, i]) if control else ((), ())
    control_kill = float(control["control_kill"][i]) if control else 0.0
    gains = mk.calcium_gains(
        cohort.creatinine_clearance_ml_min[one], cohort.vitamin_d_deficient[one], bool(arm.calcium_vitamin_d), params
    )
    marrow_base = (
        (params.neutropenia_background_hazard, params.thrombocytopenia_background_hazard)
        if background is not None
        else (0.0, 0.0)
    )

    def new_traits(slot: np.ndarray, blastic: np.ndarray) -> tuple[LesionTraits, np.ndarray]:
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

    def controlled(t: float) -> float:
        """1 while a line of the usual care controls the disease, else 0."""
        return float(any(a <= t < b for a, b in zip(line_start, line_end)))

    def recruitment(q: float, d: int) -> float:
        """The drug's osteoclast recruitment ``(1 + Q)(1 - suppression)`` on day ``d`` (the skeleton's: times ``rankl``)."""
        return (1.0 + q) * (1.0 - suppression[d])

    traits, weights = new_traits(slots, cohort.lesion_blastic_fraction[i, mask])
    state = established_state(cohort.lesion_burden[i, mask], traits, params)
    lesions = np.stack([state.w, state.y, state.z, state.induction]).astype(float)
    # the skeleton at the steady turnover of a therapy given before entry (1: healthy), density 1
    x0 = 1.0 if draws.background is None else float(draws.background.entry_rankl_factor[i])
    s0 = params.remodelling_space
    patient = np.array([x0 * x0, 1.0 + s0 * (x0 - 1.0), s0 * x0, 0.0, 0.0, 0.0])
    hazards = np.zeros(len(PATIENT_HAZARDS))
    local_hazards = np.zeros((4, slots.size))
    lesion_count = np.zeros((4, slots.size), np.int64)
    patient_count = np.zeros(hazards.size, np.int64)
    patient_thresholds = np.concatenate(
        [
            draws.thresholds.patient[i, _THRESHOLD_ROWS],
            draws.fracture[i][None],
            np.full((2, ev.PATIENT_THRESHOLDS), np.inf),
        ]
    )
    patient_thresholds[-2:, 0] = draws.marrow[i]  # first occurrence only
    apr, apr_count = 0.0, 0
    last_sre = -np.inf
    calcium_low, n_events, visit = False, 0, 0

    def rhs(t: float, s: np.ndarray, m: int, traits: LesionTraits, weights: np.ndarray, last_sre: float) -> np.ndarray:
        """The derivatives of the state vector (``m`` lesions; SREs raise the death hazard after ``last_sre``)."""
        d = min(int(t), days - 1)
        inp = daily[d]
        w, y, z, ind = s[:m], s[m : 2 * m], s[2 * m : 3 * m], s[3 * m : 4 * m]
        sw, sz, ss, sd, q, exposed = s[8 * m : 8 * m + 6]
        on_control = controlled(t)
        x = recruitment(q, d)
        lesion_rates = rates(
            w,
            y,
            z,
            ind,
            traits,
            x,
            inp.pthrp_keep,
            inp.tgf_beta_keep,
            inp.kill + control_kill * on_control,
            params,
            inp.cells,
        )
        resorbed, _, _, _, pthrp = turnover(
            LesionState(w, y, z, ind),
            traits,
            x,
            inp.pthrp_keep,
            params,
            inp.cells.il6_keep,
            inp.cells.osteoblast_drive_keep,
        )
        burden = np.exp(y)
        local_rate = ev.lesion_hazards(weights, strength(z, burden, params), burden, resorbed, params)
        *bone, resorption = skeleton_rates(sw, sz, ss, sd, (x * rankl) ** 2, params, inp.cells.osteoblast_production)
        total = burden.sum()
        recent = last_sre <= t < last_sre + RECENT_SRE_DAYS
        patient_rate = [
            risk.hypercalcaemia[0] * (burden * pthrp * resorbed).sum(),
            params.seeding_hazard * total * resorption**params.niche_resorption_exponent * inp.homing_keep,
            risk.death[0]
            * (1.0 + (params.death_hr_disease_control - 1.0) * on_control)
            * np.exp(params.death_log_hr_burden * total)
            * (params.death_hr_recent_sre if recent else 1.0),
            risk.onj[0] * suppression[d] * exposed / (exposed + params.onj_exposure_half_days),
            risk.renal_background[0],
            params.atypical_fracture_hazard * sd,
            skeleton.fracture_hazard(skeleton.bone_density(sz, ss, params), ss, params),
            marrow_base[0] + params.neutropenia_per_marrow_dose * inp.marrow_dose_rate,
            marrow_base[1] + params.thrombocytopenia_per_marrow_dose * inp.marrow_dose_rate,
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

    # segments: every dose day and laboratory visit (the exposure's grid), and each line's start and end of control
    switches = [t for t in (*line_start, *line_end) if 0.0 < t < days]
    cuts = np.union1d(exposure.step_grid(LAB_VISIT_DAYS), switches)
    for start, end in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        if start in doses:
            given = exposure.impulses(int(start), first)
            if given is not None:
                hazards[4] += params.renal_infusion_hazard * float(given.relative_auc[0]) * risk.kidney[0]
                apr += float(np.ravel(given.acute_phase)[0])
        for day in range(len(daily), min(int(end) + 1, days)):  # the segment's days and the next (a lesion born then)
            daily.append(exposure.inputs(day, day + 1, first))
            suppression[day] = daily[day].suppression[0]
        m = slots.size
        x = np.concatenate([lesions.ravel(), local_hazards.ravel(), patient, hazards])
        x = solve_ivp(rhs, (start, end), x, rtol=1e-6, atol=1e-9, args=(m, traits, weights, last_sre)).y[:, -1]
        lesions = x[: 4 * m].reshape(4, m)
        local_hazards = x[4 * m : 8 * m].reshape(4, m)
        patient, hazards = x[8 * m : 8 * m + 6], x[8 * m + 6 :]
        # --- events at the end of the segment ---------------------------------------------------
        drawn = draws.thresholds.lesion_at(np.full(m, i), slots)
        left = drawn[np.arange(m)[None, :], np.arange(4)[:, None], np.minimum(lesion_count, 2)]
        kinds, hit = np.nonzero(local_hazards >= np.where(lesion_count < ev.LESION_THRESHOLDS, left, np.inf))
        if hit.size:  # fracture, cord compression, radiotherapy, prophylactic fixation
            last_sre = end
            local_hazards[kinds, hit] = 0.0
            uniforms = draws.thresholds.surgery_at(np.full(hit.size, i), slots[hit])
            decision = uniforms[np.arange(hit.size), :, np.minimum(lesion_count[kinds, hit], 2)]
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
        crossed = np.flatnonzero(hazards >= patient_thresholds[np.arange(hazards.size), np.minimum(patient_count, 7)])
        crossed = crossed[patient_count[crossed] < ev.PATIENT_THRESHOLDS]
        if crossed.size:
            n_events += crossed.size
            hazards[crossed] = 0.0
            patient_count[crossed] += 1
            if 2 in crossed:  # death
                return IvpResult(n_events, end, lesions, patient)
            if 0 in crossed:  # hypercalcaemia is an SRE
                last_sre = end
            if 3 in crossed and getattr(arm, "stop_on_onj", False):  # the drug stops after ONJ: doses before it only
                exposure = Exposure.of_arm(
                    _with_doses(arm, int((doses < end).sum())),
                    cohort.creatinine_clearance_ml_min[one],
                    days,
                    params,
                    None,
                    potency,
                )
                doses, inhibition = doses[doses < end], exposure.rankl_inhibition[exposure.history_days :]
                del daily[int(end) :]
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
                if day >= len(daily):
                    daily.append(exposure.inputs(day, day + 1, first))
                    suppression[day] = daily[day].suppression[0]
                born = established_state(
                    np.full(1, params.new_lesion_burden),
                    LesionTraits(*(a[-1:] for a in astuple(traits))),
                    params,
                    recruitment(patient[4], day) ** 2,
                    daily[day].pthrp_keep,
                    daily[day].cells,
                    daily[day].tgf_beta_keep,
                )
                lesions = np.column_stack([lesions, [born.w[0], born.y[0], born.z[0], born.induction[0]]])
                local_hazards = np.column_stack([local_hazards, np.zeros(4)])
                lesion_count = np.column_stack([lesion_count, np.zeros(4, np.int64)])
        if end % LAB_VISIT_DAYS == 0:  # serum calcium at the laboratory visit, before the day's dose
            d = min(int(end), days) - 1
            cells = daily[d].cells
            _, resorbed_flux, formed_flux, _, pthrp = turnover(
                LesionState(*lesions),
                traits,
                recruitment(patient[4], d),
                daily[d].pthrp_keep,
                params,
                cells.il6_keep,
                cells.osteoblast_drive_keep,
            )
            serum = mk.calcium(
                np.array([recruitment(patient[4], d) * rankl]),
                patient[:1],
                np.array([(resorbed_flux - formed_flux).sum()]),
                np.array([(np.exp(lesions[1]) * pthrp).sum()]),
                spread["calcium_setpoint"][one],
                gains,
                params,
            )[0] * np.exp(log_sd(params.calcium_cv) * draws.calcium[i, visit])
            visit += 1
            low = serum < mk.HYPOCALCAEMIA_GRADE_2_MMOL_L
            n_events += int(low and not calcium_low)
            calcium_low = low
    return IvpResult(n_events, float(days), lesions, patient)
