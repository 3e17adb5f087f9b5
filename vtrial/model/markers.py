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
  each lesion adds its formation rate ``F_L = v_L**(3/8) A_L`` (:func:`vtrial.model.lesion.formation_rate`,
  the same rate that takes up radium-223; ``A_L`` the tumour's osteoblastic drive), weighted by
  ``g_B`` = ``bsap_lesion_weight`` (a lesion's share of the skeleton's formation).
* **uNTx/Cr** ``= untx_healthy R``, **BSAP** ``= bsap_healthy F``.
* **Albumin-corrected calcium** ``= Ca_0 + c_N N K + c_P sum_L T_L P_L`` with the net bone
  calcium release ``N = X - v_S**(3/8) + g_Ca sum_L (u_L**(1/2) Z_L - v_L**(3/8))`` (the bone
  equation's fluxes: 0 in balance, negative while formation outlasts blocked resorption — the
  hypocalcaemia of antiresorptives, larger with much blastic bone), ``K = (60/CrCl)**e`` (poor
  renal function: less excretion of excess calcium, less calcitriol), and for an uptake
  (``N < 0``) the gains of vitamin D deficiency and of no calcium/vitamin D supplements; plus
  the humoral effect of the tumour's PTHrP on renal tubular reabsorption.

Each value carries multiplicative log-normal measurement noise with the registry's CV, drawn
from the ``markers`` stream (per patient and visit, the same under every arm).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtrial.model.parameters import Parameters
from vtrial.streams import Streams

#: Value columns of ``markers.parquet``, in the order of the noise axis.
MARKER_COLUMNS: tuple[str, ...] = ("untx_nmol_mmol", "bsap_ug_l", "calcium_mmol_l")
#: Creatinine clearance (mL/min) at which renal function neither raises nor lowers the calcium response.
CALCIUM_REFERENCE_CRCL = 60.0


def visit_weeks(marker_weeks: Sequence[int]) -> tuple[int, ...]:
    """Week 0 and the protocol's ``[analysis] marker_weeks`` (validated there), or ``()`` when none are requested."""
    return (0, *marker_weeks) if marker_weeks else ()


def draw_noise(streams: Streams, patient_ids: np.ndarray, n_visits: int) -> np.ndarray:
    """Standard normal draws ``[n, n_visits, len(MARKER_COLUMNS)]`` of the measurement noise."""
    return streams.draws("markers", patient_ids).standard_normal((n_visits, len(MARKER_COLUMNS)))


def measure(
    owner: np.ndarray,
    resorbed: np.ndarray,
    resorption_flux: np.ndarray,
    formation_flux: np.ndarray,
    formation_rate: np.ndarray,
    pthrp_load: np.ndarray,
    recruitment: np.ndarray,
    skeleton_w: np.ndarray,
    crcl_ml_min: np.ndarray,
    vitamin_d_deficient: np.ndarray,
    supplemented: bool,
    noise: np.ndarray,
    params: Parameters,
) -> np.ndarray:
    """Measured uNTx/Cr, BSAP and calcium ``[n, 3]`` of ``n`` patients (columns as :data:`MARKER_COLUMNS`).

    ``owner`` maps each lesion to its patient row; ``resorbed`` (``u Z``), the two bone fluxes,
    the formation rate and ``pthrp_load`` (``T P``) are per lesion (:func:`vtrial.model.lesion.turnover`);
    ``recruitment`` (the osteoclast recruitment of tumour-free bone on the visit day),
    ``skeleton_w`` and the covariates are per patient; ``noise`` holds standard normal draws ``[n, 3]``.
    """
    rows = recruitment.size
    skeleton_formation = skeleton_w**0.1875
    # each lesion's region adds its turnover to that of the skeleton (the healthy bone it replaced is
    # a negligible share of the skeleton), so the markers stay positive at any number of lesions
    resorption = recruitment + params.lesion_turnover_weight * np.bincount(owner, resorbed, rows)
    formation = skeleton_formation + params.bsap_lesion_weight * np.bincount(owner, formation_rate, rows)
    release = recruitment - skeleton_formation + params.calcium_lesion_weight * np.bincount(
        owner, resorption_flux - formation_flux, rows)
    gain = (CALCIUM_REFERENCE_CRCL / np.maximum(crcl_ml_min, 5.0)) ** params.calcium_renal_exponent
    uptake_gain = np.where(vitamin_d_deficient, params.calcium_vitamin_d_gain, 1.0)
    if not supplemented:
        uptake_gain = uptake_gain * params.calcium_no_supplement_gain
    gain = np.where(release < 0.0, gain * uptake_gain, gain)
    calcium = (params.calcium_healthy + params.calcium_per_release * release * gain
               + params.calcium_per_pthrp * np.bincount(owner, pthrp_load, rows))
    truth = np.stack([params.untx_healthy * resorption, params.bsap_healthy * formation, calcium], axis=1)
    cv = np.array([params.untx_cv, params.bsap_cv, params.calcium_cv])
    return truth * np.exp(np.sqrt(np.log1p(cv**2)) * noise)
