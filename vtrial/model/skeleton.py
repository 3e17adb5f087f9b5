"""The skeleton outside the metastases: turnover, density and microdamage of uninvolved bone, per patient.

One compartment per patient, for every protocol, advanced every step (O(patients)). Uninvolved
bone follows the lesions' RANKL/osteoclast/osteoblast balance without tumour
(:mod:`vtrial.model.lesion`, healthy = 1). Its osteoclast recruitment ``X`` is the drugs'
systemic recruitment input (:class:`vtrial.model.drugs.StepInputs`: RANKL inhibition, osteoclast
loss and the rebound of the precursor reserve) times the background therapy's rise of RANKL
(``rankl_factor``, :mod:`vtrial.model.systemic`; 1 without one):

* osteoblasts follow recruitment (coupling): ``dw/dt = 2 beta_B (X**2 F - w)`` with ``w = v**2``
  and ``F`` the osteoblast production (1; raised by an anabolic agent, :class:`vtrial.model.lesion.CellInputs`);
* osteoclasts are quasi-steady: ``u = X**2 / v``, the **systemic resorption** ``R`` (step mean;
  healthy 1) read by the pre-metastatic niche (seeding of new lesions) and the microdamage;
* bone density, the OpenBoneMin indirect response:
  ``dZ/dt = k_s (v**g_OB - u**g_OC Z)``, steady ``Z = X**(g_OB - g_OC)`` once ``v = u = X``:
  raised resorption (androgen deprivation, the rebound after denosumab) loses bone, an
  antiresorptive gains it;
* microdamage ``D`` (days of full suppression): remodelling below the threshold ``theta``
  (``aff_turnover_threshold``) leaves damage unrepaired, ``s = (1 - R/theta)^+``, and what
  remodelling is left repairs it, ``dD/dt = s - r (1 - s) D`` (``r`` =
  ``microdamage_repair_rate``). It grows over years of deep suppression by any antiresorptive
  and falls once turnover returns: the atypical femoral fracture hazard is ``h_AFF D``.

The osteoporotic fracture hazard rises as density falls: it is multiplied by
``fracture_hr_per_sd`` per standard deviation of density lost since entry (density 1). A
fracture is a cluster of ``n`` vertebrae: ``P(n >= j + 1) = p**j`` (up to :data:`MAX_VERTEBRAE`),
with the odds of ``p`` equal to those of ``multiple_fracture_share`` at stable density, raised
by ``exp(kappa L)`` while density is lost fast (``L`` the loss per year as a fraction): the
multiple vertebral fractures of the rebound after denosumab stops.
"""

from __future__ import annotations

import numpy as np

from vtrial.model.lesion import relax
from vtrial.model.parameters import Parameters
from vtrial.vocabulary import DAYS_PER_YEAR

#: Most vertebrae one osteoporotic fracture (a clinical episode) may involve.
MAX_VERTEBRAE = 5


def advance(
    w: np.ndarray, z: np.ndarray, damage: np.ndarray, recruitment_sq: np.ndarray, rankl_factor: np.ndarray,
    days: float, params: Parameters, osteoblast_production: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Advance ``w = v**2``, density ``Z`` and microdamage ``D`` by ``days`` in place.

    ``recruitment_sq`` is the step mean of the square of the drugs' recruitment factor (per
    patient); each state's linear equation is solved exactly over the step with its coupling
    at mid-step (as :func:`vtrial.model.lesion.advance`).

    Returns
    -------
    resorption, density, damage : arrays ``[n]``
        Step means of the systemic resorption ``u`` (healthy 1), of ``Z`` and of ``D``.
    """
    x2 = np.asarray(recruitment_sq * np.square(rankl_factor), dtype=float)
    v = np.sqrt(relax(w, x2 * osteoblast_production, np.full(w.shape, 2.0 * params.osteoblast_rate), days))
    osteoclast = x2 / v
    resorption = params.systemic_bone_turnover_rate * osteoclast ** params.systemic_resorption_exponent
    formation = params.systemic_bone_turnover_rate * v ** params.systemic_formation_exponent
    density = relax(z, formation / resorption, resorption, days)
    left = np.minimum(osteoclast / params.aff_turnover_threshold, 1.0)  # 1 - s
    return osteoclast, density, _accumulate(damage, 1.0 - left, params.microdamage_repair_rate * left, days)


def _accumulate(x: np.ndarray, gain: np.ndarray, rate: np.ndarray, days: float) -> np.ndarray:
    """Exact update of ``x' = gain - rate x`` over ``days`` in place (``rate >= 0``, 0 allowed); return its mean."""
    rt = rate * days
    kept = np.exp(-rt)
    # share of the step's gain still present at its end, and its mean over the step; t and t/2 at rate 0
    safe = np.where(rt > 0.0, rt, 1.0)
    grown = np.where(rt > 0.0, -np.expm1(-rt) / safe, 1.0)
    grown_mean = np.where(rt > 0.0, (1.0 - grown) / safe, 0.5)
    mean = x * grown + gain * days * grown_mean
    x *= kept
    x += gain * days * grown
    return mean


def fracture_hazard(z: np.ndarray, params: Parameters) -> np.ndarray:
    """Hazard per day of an osteoporotic fracture at bone density ``z`` (entry density 1)."""
    lost_sd = (1.0 - z) / params.bmd_sd_fraction
    return params.osteoporotic_fracture_hazard * params.fracture_hr_per_sd ** lost_sd


def vertebrae(loss_per_year: np.ndarray, uniform: np.ndarray, params: Parameters) -> np.ndarray:
    """Number of vertebrae of each fracture, from the density lost per year and a uniform draw in ``[0, 1)``."""
    odds0 = params.multiple_fracture_share / (1.0 - params.multiple_fracture_share)
    odds = odds0 * np.exp(params.multiple_fracture_loss_gain * np.maximum(loss_per_year, 0.0))
    share = odds / (1.0 + odds)
    more = np.arange(1, MAX_VERTEBRAE)
    return 1 + ((1.0 - uniform)[:, None] < share[:, None] ** more).sum(axis=1)


def loss_per_year(before: np.ndarray, after: np.ndarray, days: float) -> np.ndarray:
    """Fraction of density lost per year over a step from ``before`` to ``after`` (negative: gained)."""
    return (before - after) / before * (DAYS_PER_YEAR / days)
