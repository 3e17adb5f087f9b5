"""Event hazards from the model state, and the cumulative-hazard thresholds that turn them into events.

Each patient draws, in a fixed order and fixed shapes, unit-exponential thresholds for every
event type: per lesion slot (local types x ``LESION_THRESHOLDS`` successive thresholds) and per
patient (patient types x ``PATIENT_THRESHOLDS``), plus the uniforms of the decisions that follow
events (surgery after a fracture or a cord compression, per lesion slot; the site of a new
lesion). The first ``DRAWN_SLOTS`` lesion slots of every patient come from
``streams.draws("events", patient_ids)``; the few patients who use a slot beyond them (>99% use
fewer) draw the thresholds and uniforms of their slots ``DRAWN_SLOTS .. MAX_LESION_SLOTS - 1`` from
a generator of their own (stream purpose ``lesion_slots``, keyed to the patient id), when first
needed. Every draw depends only on the patient: the same patient under two arms or in any block
meets the same thresholds (common random numbers), so its events move only because its biology moved.

An event happens when the hazard integrated since the previous event of that type crosses the
current threshold; the next threshold then applies. Within a step the hazard is held at its
mid-step value, and the event time is interpolated inside the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vtrial.model.lesion import gompertz_rate
from vtrial.model.parameters import Parameters
from vtrial.streams import Streams
from vtrial.vocabulary import JAW_SITES, LONG_BONE_SITES, PRIMARIES, SITES, SPINAL_SITES

#: Lesion slots a patient may ever use (entry lesions plus new ones).
MAX_LESION_SLOTS = 64
#: Lesion slots whose thresholds every patient draws up front (the first slots; >99% of the patient-arms
#: of the protocols in ``protocols/`` use no more, measured in docs/performance.md); the rest are drawn
#: per patient, only for a patient that uses one.
DRAWN_SLOTS = 24
LESION_THRESHOLDS = 3
PATIENT_THRESHOLDS = 8

#: Local events, in the order of the threshold axis. Surgery here is prophylactic fixation.
LESION_EVENTS: tuple[str, ...] = (
    "pathological_fracture",
    "spinal_cord_compression",
    "radiation_to_bone",
    "surgery_to_bone",
)
#: Patient-level events, in the order of the threshold axis.
PATIENT_EVENTS: tuple[str, ...] = (
    "hypercalcaemia",
    "new_lesion",
    "death",
    "osteonecrosis_of_the_jaw",
    "hypocalcaemia",
    "renal_toxicity",
    "acute_phase_reaction",
    "atypical_femoral_fracture",
)

#: Relative fracture hazard by site (SITES order). Weight-bearing sites carry the full hazard;
#: rib and humerus fractures count as pathological fractures in the trials at a lower rate.
FRACTURE_SITE_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.05, 0.2, 1.0, 0.5, 0.3])
#: Red-marrow sites where new lesions home, with their shares (SITES order).
SEEDING_SITE_SHARE = np.array([0.05, 0.25, 0.2, 0.2, 0.15, 0.0, 0.0, 0.15, 0.0, 0.0])
SPINAL = np.array([s in SPINAL_SITES for s in SITES])
LONG_BONE = np.array([s in LONG_BONE_SITES for s in SITES])
JAW = np.array([s in JAW_SITES for s in SITES])
FEMUR = SITES.index("femur")
#: Share of patients with a skeletal event before randomisation in the trials the lesion hazards were
#: calibrated on (Stopeck 2010 36.6%, Fizazi 2011 24%, Henry 2011 ~50%): the skeletal frailty is 1 on
#: average over such a population, so the calibrated base hazards keep their meaning.
PRIOR_SRE_REFERENCE_SHARE = 0.37
#: Doubling time (days) of the tumour whose lesions carry the unscaled radiotherapy hazard.
PAIN_REFERENCE_DOUBLING_DAYS = 100.0


@dataclass(frozen=True)
class Thresholds:
    """Pre-drawn thresholds and decision uniforms of a block of patients (rows = patients).

    ``lesion`` and ``surgery`` hold the first :data:`DRAWN_SLOTS` lesion slots; read a lesion's
    with :meth:`lesion_at` and :meth:`surgery_at`, which draw a patient's later slots when first asked.
    """

    lesion: np.ndarray  # [n, DRAWN_SLOTS, len(LESION_EVENTS), LESION_THRESHOLDS]
    patient: np.ndarray  # [n, len(PATIENT_EVENTS), PATIENT_THRESHOLDS]
    surgery: np.ndarray  # [n, DRAWN_SLOTS, 2 (after fracture, after compression), LESION_THRESHOLDS]
    new_site: np.ndarray  # [n, PATIENT_THRESHOLDS]
    streams: Streams
    patient_ids: np.ndarray  # [n]
    #: the later slots' (lesion, surgery) draws of the rows that asked for one
    _later: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    def lesion_at(self, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Thresholds ``[m, len(LESION_EVENTS), LESION_THRESHOLDS]`` of the lesions at ``slots`` of the patient ``rows``."""
        return self._at(rows, slots, self.lesion, 0)

    def surgery_at(self, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Surgery-decision uniforms ``[m, 2, LESION_THRESHOLDS]`` of the lesions at ``slots`` of the patient ``rows``."""
        return self._at(rows, slots, self.surgery, 1)

    def _at(self, rows: np.ndarray, slots: np.ndarray, drawn: np.ndarray, which: int) -> np.ndarray:
        later = slots >= DRAWN_SLOTS
        if not later.any():
            return drawn[rows, slots]
        out = np.empty((rows.size, *drawn.shape[2:]))
        out[~later] = drawn[rows[~later], slots[~later]]
        for j in np.flatnonzero(later).tolist():  # a lesion beyond the drawn slots: rare
            out[j] = self._later_slots(int(rows[j]))[which][slots[j] - DRAWN_SLOTS]
        return out

    def _later_slots(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """The lesion thresholds and surgery uniforms of slots ``DRAWN_SLOTS ..`` of one patient, from its own generator."""
        if row not in self._later:
            g = self.streams.generator("lesion_slots", int(self.patient_ids[row]))
            n = MAX_LESION_SLOTS - DRAWN_SLOTS
            lesion = g.standard_exponential((n, len(LESION_EVENTS), LESION_THRESHOLDS))
            self._later[row] = (lesion, g.random((n, 2, LESION_THRESHOLDS)))
        return self._later[row]


def draw_thresholds(streams: Streams, patient_ids: np.ndarray) -> Thresholds:
    """Draw every patient's thresholds in a fixed order and fixed shapes (independent of arm and block)."""
    draws = streams.draws("events", patient_ids)
    lesion = draws.exponential((DRAWN_SLOTS, len(LESION_EVENTS), LESION_THRESHOLDS))
    patient = draws.exponential((len(PATIENT_EVENTS), PATIENT_THRESHOLDS))
    surgery = draws.random((DRAWN_SLOTS, 2, LESION_THRESHOLDS))
    new_site = draws.random((PATIENT_THRESHOLDS,))
    return Thresholds(lesion, patient, surgery, new_site, streams, np.asarray(patient_ids, dtype=np.int64))


def lesion_hazard_weights(
    site: np.ndarray, blastic_fraction: np.ndarray, growth_rate: np.ndarray, params: Parameters
) -> np.ndarray:
    """Per-lesion base hazards ``[4, *site.shape]`` (fracture, compression, radiation, prophylactic surgery).

    The radiotherapy (pain) weight of a lesion grows with its blastic fraction (painful
    osteoblastic lesions) and with its tumour's growth rate relative to a tumour doubling in
    :data:`PAIN_REFERENCE_DOUBLING_DAYS` (fast-growing lesions turn painful sooner).
    """
    site = site.astype(np.int64)
    reference = gompertz_rate(np.float64(PAIN_REFERENCE_DOUBLING_DAYS), params)
    pain = (1.0 + params.pain_blastic_gain * blastic_fraction) * (
        growth_rate / reference
    ) ** params.pain_growth_exponent
    out = np.empty((4, *site.shape), np.result_type(pain, float))  # the rows filled in place: no stack
    np.multiply(params.fracture_base_hazard, FRACTURE_SITE_WEIGHT[site], out=out[0])
    np.multiply(params.cord_compression_hazard, SPINAL[site], out=out[1])
    np.multiply(params.radiation_hazard, pain, out=out[2])
    np.multiply(params.prophylactic_surgery_hazard, LONG_BONE[site], out=out[3])
    return out


def lesion_hazards(
    weights: np.ndarray,
    strength: np.ndarray,
    burden: np.ndarray,
    resorbed: np.ndarray,
    params: Parameters,
    pain: np.ndarray | None = None,
) -> np.ndarray:
    """Hazards per day ``[4, *strength.shape]`` of the local events (dtype of ``weights``).

    * fracture: ``h0 (1 + k (1 - s)^+)^4`` — rises ~100x as strength falls to a third;
    * cord compression (spinal): ``h0 (T - T_epi)^+ (1 + c (1 - s)^+)`` — burden and collapse;
    * radiation for pain: ``h0`` times the lesion's ``pain`` (:func:`lesion_pain`; not given: its
      pain drive :func:`pain_drive`, the pain of a lesion whose drive never fell);
    * prophylactic fixation (long bones): ``h0 (s_imp - s)^+`` — impending fracture.
    """
    deficit = np.maximum(1.0 - strength, 0.0)
    out = np.empty_like(weights)
    q = params.fracture_strength_slope * deficit
    q += 1.0
    np.square(q, out=q)
    np.square(q, out=out[0])
    out[0] *= weights[0]
    np.subtract(burden, params.cord_compression_burden, out=out[1])
    np.maximum(out[1], 0.0, out=out[1])
    deficit *= params.cord_compression_collapse
    deficit += 1.0
    out[1] *= deficit
    out[1] *= weights[1]
    out[2] = pain_drive(burden, resorbed, params) if pain is None else pain
    out[2] *= weights[2]
    np.subtract(params.impending_fracture_strength, strength, out=out[3])
    np.maximum(out[3], 0.0, out=out[3])
    out[3] *= weights[3]
    return out


def pain_drive(burden: np.ndarray, resorbed: np.ndarray, params: Parameters) -> np.ndarray:
    """Pain drive of each lesion ``T^a (1 + c_acid uZ)`` (new array; the tumour's own pain per unit burden = 1).

    Tumour: nerve fibres sprouting into and compressed by the tumour-bearing bone, ``T^a``;
    acid: osteoclasts resorbing bone (``uZ``, healthy 1) acidify it and excite the TRPV1/ASIC3
    nociceptors, in proportion to the tumour's nerves. An anti-resorptive lowers ``uZ``, a
    radiotherapy course lowers ``T`` at once and ``uZ`` with the PTHrP and RANKL it removes:
    both lower the drive.
    """
    acid = np.maximum(resorbed, 0.0)  # a float32 step mean of extreme states may round below 0
    acid *= params.pain_acid_gain
    acid += 1.0
    acid *= burden if params.pain_burden_exponent == 1.0 else burden**params.pain_burden_exponent
    return acid


def lesion_pain(
    drive: np.ndarray, sensitised: np.ndarray, share: np.ndarray, days: float, params: Parameters
) -> np.ndarray:
    """Pain of each lesion over a step ``(1 - q) P + q N``; advance its nerve sensitisation ``N`` in place.

    ``drive`` is the step's pain drive ``P`` (:func:`pain_drive`), ``sensitised`` the state ``N`` at the
    step's start (in units of the drive) and ``share`` the lesion's sensitised share ``q``. The
    sensory fibres that sprout into tumour-bearing bone are sensitised as the drive rises, within
    days to weeks (faster than a tumour grows: ``N`` follows ``P`` up at once), and lose that
    sensitisation over months once the drive has fallen (decay time ``pain_sensitisation_days``):
    ``N = max(P, N e^(-t/tau))``. While the drive rises or holds, ``N = P`` and the pain is the
    drive itself (the radiotherapy hazard calibrated on it is unchanged); after a course removes
    the tumour and its acid, the pain keeps ``q N``, so a lesion with a high sensitised share is
    still painful months later (a non-responder). Midpoint rule: ``N`` at mid-step for the pain,
    at the step's end for the state. Returns a new array.
    """
    keep = float(np.exp(-0.5 * days / params.pain_sensitisation_days))
    held = np.maximum(drive, sensitised * keep)
    np.maximum(drive, sensitised * keep**2, out=sensitised)
    held -= drive
    held *= share
    held += drive
    return held


@dataclass
class PatientRisk:
    """Per-patient constants of the patient-level hazards (arrays ``[n]``)."""

    death: np.ndarray
    hypercalcaemia: np.ndarray
    onj: np.ndarray
    renal_background: np.ndarray
    #: renal sensitivity ``(60/CrCl)^k``: scales the background and the per-infusion renal hazards
    kidney: np.ndarray
    #: skeletal frailty: multiplies every lesion's local-event weights (prior SRE: ``sre_hr_prior_sre``)
    skeletal_frailty: np.ndarray


def patient_risk(
    primary: np.ndarray,
    ecog: np.ndarray,
    visceral: np.ndarray,
    age_years: np.ndarray,
    crcl: np.ndarray,
    dental_risk: np.ndarray,
    jaw_lesion: np.ndarray,
    growth_multiplier: np.ndarray,
    prior_sre: np.ndarray,
    params: Parameters,
) -> PatientRisk:
    """Covariate effects on the patient-level hazards, and the patient's skeletal frailty.

    Death also rises with the patient's tumour growth multiplier (``growth_multiplier ** k``):
    aggressive disease kills sooner and indolent disease makes the long survivors. A skeletal
    event before randomisation marks a fragile skeleton: the skeletal frailty
    ``sre_hr_prior_sre`` (relative to a patient without one; scaled to average 1 at
    :data:`PRIOR_SRE_REFERENCE_SHARE`) multiplies the fracture, cord-compression, radiotherapy and
    fixation weights of each of the patient's lesions (:func:`lesion_hazard_weights`), so the SRE
    hazard rises through the lesions, for any treatment. ECOG and visceral disease act on death only
    (no sourced effect on skeletal events).
    """
    log_hr = (
        params.death_growth_exponent * np.log(growth_multiplier)
        + params.death_log_hr_ecog * ecog
        + params.death_log_hr_visceral * visceral
        + params.death_log_hr_age_decade * (age_years - 65.0) / 10.0
    )
    death = params.by_primary("death_hazard")[primary] * np.exp(log_hr)
    hcm = params.hypercalcaemia_hazard * params.by_primary("hypercalcaemia_factor")[primary]
    head_and_neck = primary == PRIMARIES.index("head_and_neck")
    onj = params.onj_hazard * np.where(dental_risk, params.onj_dental_risk_hr, 1.0)
    onj = onj * np.where(jaw_lesion | head_and_neck, params.onj_jaw_hr, 1.0)
    kidney = (60.0 / np.maximum(crcl, 5.0)) ** params.renal_crcl_exponent
    hr = params.sre_hr_prior_sre
    frailty = np.where(prior_sre, hr, 1.0) / (1.0 + (hr - 1.0) * PRIOR_SRE_REFERENCE_SHARE)
    return PatientRisk(death, hcm, onj, params.renal_background_hazard * kidney, kidney, frailty)
