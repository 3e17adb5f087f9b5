"""Bone turnover markers and serum calcium read from the simulated state at study visits.

Markers are outputs of the mechanism, never inputs to it: no event depends on them, and no
treatment enters them except through the nodes the drugs act on (osteoclast recruitment,
hence resorption, then formation through coupling).

Per patient at a visit (healthy skeleton turnover = 1; ``g`` = ``lesion_turnover_weight``, one
lesion's region's resorption relative to the whole skeleton; lesion quantities from
:func:`vtrial.model.lesion.turnover`):

* **Resorption** ``R = X + g sum_L (u_L Z_L - X)``: the uninvolved skeleton resorbs at its
  osteoclast recruitment on the day, ``X = (1 + Q)(1 - I_RANKL)/(1 + E_OC) r`` (1 untreated; it
  is ``1 - suppression`` without the precursor reserve, which adds the rebound after
  denosumab; ``r`` the background therapy's rise of RANKL); each lesion's region resorbs at
  osteoclast activity times bone, ``u Z``.
* **Formation** ``F = v_S**(3/8) + g_B sum_L F_L``: the osteoblasts ``v_S`` of the skeleton outside
  the lesions (:mod:`vtrial.model.skeleton`, the compartment of the osteoporotic and atypical
  fractures) follow its osteoclasts as in a lesion without tumour,
  ``d(v_S**2)/dt = 2 beta_B (X**2 F - v_S**2)`` (``F`` the osteoblast production, 1 unless an
  anabolic agent raises it), so formation falls weeks after resorption under an antiresorptive;
  each lesion adds the woven part of its formation rate, ``F_L - v_L**(3/8)``
  (:func:`vtrial.model.lesion.formation_rate`, the same rate that takes up radium-223), weighted by
  ``g_B`` = ``bsap_lesion_weight``: the lamellar remodelling of a lesion's region is a negligible share
  of the skeleton's, the woven bone its tumour drives is not (and it goes when the tumour at the bone
  surface goes, as under radium-223).
* **uNTx/Cr** ``= untx_healthy ((1 - f_N) R + f_N)``, **BSAP** ``= bsap_healthy F``. ``f_N`` =
  ``untx_nonosteoclastic_share`` is the part of a healthy skeleton's uNTx/Cr that osteoclastic resorption does
  not make (type I collagen of other tissues, the assay's floor): no antiresorptive removes it, so uNTx falls
  less than the osteoclasts' recruitment (at most ``1 - ((1 - f_N)(1 - Imax) + f_N)`` = 84% from a healthy level
  under denosumab, as in postmenopausal women), while the events, which read the osteoclasts, do not see it.
* **Albumin-corrected calcium** ``= Ca_i + c_N N K + c_P sum_L T_L P_L`` (:func:`calcium`; ``Ca_i`` the
  patient's set-point, ``calcium_healthy`` times a log-normal factor of CV ``calcium_setpoint_cv``) with the net bone
  calcium release ``N = X - v_S**(3/8) + g_Ca sum_L (u_L**(1/2) Z_L - v_L**(3/8))`` (the bone
  equation's fluxes: 0 in balance, negative while formation outlasts blocked resorption — the
  hypocalcaemia of antiresorptives, larger with much blastic bone), ``K = (60/CrCl)**e`` (poor
  renal function: less excretion of excess calcium, less calcitriol), and for an uptake
  (``N < 0``) the gains of vitamin D deficiency and of no calcium/vitamin D supplements; plus
  the humoral effect of the tumour's PTHrP on renal tubular reabsorption.

Each value carries multiplicative log-normal measurement noise with the registry's CV, drawn
from the ``markers`` stream (per patient and visit, the same under every arm).

The same calcium law runs every model step (:func:`calcium`, with the bone fluxes of the step):
the simulation records ``hypocalcaemia`` when the patient's calcium, with its day-to-day
variation, falls below :data:`HYPOCALCAEMIA_GRADE_2_MMOL_L` (CTCAE grade >= 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtrial.model.parameters import Parameters, log_sd
from vtrial.streams import Streams

#: Value columns of ``markers.parquet``, in the order of the noise axis.
MARKER_COLUMNS: tuple[str, ...] = ("untx_nmol_mmol", "bsap_ug_l", "calcium_mmol_l")
#: Creatinine clearance (mL/min) at which renal function neither raises nor lowers the calcium response.
CALCIUM_REFERENCE_CRCL = 60.0
#: CTCAE v5 grade >= 2 hypocalcaemia: albumin-corrected serum calcium below 8.0 mg/dL = 2.0 mmol/L.
HYPOCALCAEMIA_GRADE_2_MMOL_L = 2.0
#: Lowest albumin-corrected calcium the law gives (mmol/L): its linear response holds near the set point, and
#: below grade 4 (< 1.5 mmol/L, life-threatening, treated with intravenous calcium) it would go on to values no
#: patient has (negative ones, for extreme biology); reached only far in the tails of the cohort's spread.
CALCIUM_FLOOR_MMOL_L = 1.0


def visit_weeks(marker_weeks: Sequence[int] | None) -> tuple[int, ...]:
    """Week 0 and the protocol's ``[analysis] marker_weeks`` (validated there), or ``()`` when none are requested."""
    return (0, *marker_weeks) if marker_weeks else ()


def draw_noise(streams: Streams, patient_ids: np.ndarray, n_visits: int) -> np.ndarray:
    """Standard normal draws ``[n, n_visits, len(MARKER_COLUMNS)]`` of the measurement noise."""
    return streams.draws("markers", patient_ids).standard_normal((n_visits, len(MARKER_COLUMNS)))


def calcium_gains(
    crcl_ml_min: np.ndarray, vitamin_d_deficient: np.ndarray, supplemented: bool, params: Parameters
) -> np.ndarray:
    """Per patient ``[2, n]``: the renal gain ``(60/CrCl)**e`` of the net release, and its extra gain on an uptake.

    The uptake gain (vitamin D deficiency, no calcium/vitamin D supplements) applies while bone takes
    calcium up (``N < 0``): constants of the patient and arm, computed once.
    """
    renal = (CALCIUM_REFERENCE_CRCL / np.maximum(crcl_ml_min, 5.0)) ** params.calcium_renal_exponent
    uptake = np.where(vitamin_d_deficient, params.calcium_vitamin_d_gain, 1.0)
    if not supplemented:
        uptake = uptake * params.calcium_no_supplement_gain
    return np.stack([renal, renal * uptake])


def calcium(
    recruitment: np.ndarray,
    skeleton_w: np.ndarray,
    lesion_release: np.ndarray,
    pthrp_load: np.ndarray,
    setpoint: np.ndarray,
    gains: np.ndarray,
    params: Parameters,
) -> np.ndarray:
    """Albumin-corrected serum calcium (mmol/L) per patient, without day-to-day or assay variation.

    ``Ca_0 s + c_N N g + c_P sum T P`` with the net bone release
    ``N = X - v_S**(3/8) + g_Ca sum_L (u_L**(1/2) Z_L - v_L**(3/8))``: ``recruitment`` is ``X``,
    ``lesion_release`` and ``pthrp_load`` the per-patient sums of the lesions' release and ``T P``,
    ``setpoint`` the patient's factor ``s`` and ``gains`` from :func:`calcium_gains`; never below
    :data:`CALCIUM_FLOOR_MMOL_L`.
    """
    release = recruitment - skeleton_w**0.1875 + params.calcium_lesion_weight * lesion_release
    gain = np.where(release < 0.0, gains[1], gains[0])
    serum = (
        params.calcium_healthy * setpoint
        + params.calcium_per_release * release * gain
        + params.calcium_per_pthrp * pthrp_load
    )
    return np.maximum(serum, CALCIUM_FLOOR_MMOL_L)


def true_values(
    owner: np.ndarray,
    resorbed: np.ndarray,
    burden: np.ndarray,
    resorption_flux: np.ndarray,
    formation_flux: np.ndarray,
    formation_rate: np.ndarray,
    pthrp_load: np.ndarray,
    recruitment: np.ndarray,
    skeleton_w: np.ndarray,
    setpoint: np.ndarray,
    gains: np.ndarray,
    params: Parameters,
) -> np.ndarray:
    """True uNTx/Cr, BSAP and calcium ``[n, 3]`` of ``n`` patients (columns as :data:`MARKER_COLUMNS`).

    ``owner`` maps each lesion to its patient row; ``resorbed`` (``u Z``), the tumour ``burden`` ``T``, the two bone fluxes,
    the formation rate and ``pthrp_load`` (``T P``) are per lesion (:func:`vtrial.model.lesion.turnover`);
    ``recruitment`` (the osteoclast recruitment of tumour-free bone on the visit day),
    ``skeleton_w``, the calcium ``setpoint`` and ``gains`` (:func:`calcium`) are per patient.
    """
    rows = recruitment.size
    # each lesion's region adds its turnover to that of the skeleton (the healthy bone it replaced is
    # a negligible share of the skeleton), so the markers stay positive at any number of lesions
    region = (burden * (1.0 / params.tumour_detection_burden)) ** params.lesion_resorption_burden_exponent
    resorption = recruitment + params.lesion_turnover_weight * np.bincount(owner, resorbed * region, rows)
    # a lesion adds its woven formation F_L - v**(3/8): its region's lamellar remodelling is a negligible share
    formation = skeleton_w**0.1875 + params.bsap_lesion_weight * np.bincount(
        owner, formation_rate - formation_flux, rows
    )
    serum = calcium(
        recruitment,
        skeleton_w,
        np.bincount(owner, resorption_flux - formation_flux, rows),
        np.bincount(owner, pthrp_load, rows),
        setpoint,
        gains,
        params,
    )
    share = params.untx_nonosteoclastic_share
    untx = params.untx_healthy * ((1.0 - share) * resorption + share)
    return np.stack([untx, params.bsap_healthy * formation, serum], axis=1)


def with_noise(truth: np.ndarray, noise: np.ndarray, params: Parameters) -> np.ndarray:
    """The measured values of the true ``[n, 3]`` markers: log-normal measurement noise with the markers' CVs.

    ``noise`` holds standard normal draws ``[n, 3]``; a zero draw measures the true value.
    """
    sd = np.array([log_sd(params.untx_cv), log_sd(params.bsap_cv), log_sd(params.calcium_cv)])
    return truth * np.exp(sd * noise)
