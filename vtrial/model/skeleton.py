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
* bone volume, the OpenBoneMin indirect response at the pace of turnover:
  ``dZ/dt = k_s u (v**g_OB u**-g_OC - Z)``, steady ``Z = X**(g_OB - g_OC)`` once ``v = u = X``
  (bone changes only where it is remodelled, so a suppressed skeleton gains slowly and a
  rebounding one loses fast);
* remodelling space ``S`` (resorption cavities not yet refilled, Heaney 1994):
  ``dS/dt = (s_0 u - S)/tau`` (``s_0`` = ``remodelling_space``, ``tau`` = ``remodelling_period_days``),
  closed within months by an antiresorptive and reopened when resorption rises; the **density**
  is ``Z - S + s_0`` (:func:`bone_density`, 1 at entry): raised resorption (androgen deprivation,
  the rebound of the precursor reserve after denosumab) loses bone, an antiresorptive gains it;
* microdamage ``D`` (days of full suppression): remodelling below the threshold ``theta``
  (``aff_turnover_threshold``) leaves damage unrepaired, ``s = (1 - R/theta)^+``, and the
  remodelling there is repairs it in proportion, ``dD/dt = s - r (R/theta) D`` (``r`` =
  ``microdamage_repair_rate`` at the threshold; targeted remodelling removes damaged bone at the
  pace of turnover, faster above the threshold). It grows over years of deep suppression by any
  antiresorptive and falls once turnover returns: the atypical femoral fracture hazard is ``h_AFF D``.

The osteoporotic fracture hazard rises as density falls: it is multiplied by
``fracture_hr_per_sd`` per standard deviation of density lost since entry (density 1), and by
``(S/s_0)**c`` for the resorption cavities open (stress risers: high turnover predicts fractures
beyond density, an antiresorptive prevents more fractures than its density gain explains). A
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
    w: np.ndarray,
    z: np.ndarray,
    space: np.ndarray,
    damage: np.ndarray,
    recruitment_sq: np.ndarray,
    rankl_factor: np.ndarray,
    days: float,
    params: Parameters,
    osteoblast_production: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Advance ``w = v**2``, bone volume ``Z``, remodelling space ``S`` and microdamage ``D`` by ``days`` in place.

    ``recruitment_sq`` is the step mean of the square of the drugs' recruitment factor (per
    patient); each state's linear equation is solved exactly over the step with its coupling
    at mid-step (as :func:`vtrial.model.lesion.advance`).

    Returns
    -------
    resorption, density, space, damage : arrays ``[n]``
        Step means of the systemic resorption ``u`` (healthy 1), of the density
        :func:`bone_density`, of ``S`` and of ``D``.
    """
    x2 = np.asarray(recruitment_sq * np.square(rankl_factor), dtype=float)
    log_w = np.log(relax(w, x2 * osteoblast_production, 2.0 * params.osteoblast_rate, days))
    log_u = np.log(x2) - 0.5 * log_w  # u = X**2 / v, v = w**(1/2); powers as exp(log): cheaper than **
    osteoclast = np.exp(log_u)
    target = np.exp(0.5 * params.systemic_formation_exponent * log_w - params.systemic_resorption_exponent * log_u)
    volume = relax(z, target, params.systemic_bone_turnover_rate * osteoclast, days)
    opened = relax(space, params.remodelling_space * osteoclast, 1.0 / params.remodelling_period_days, days)
    remodelled = osteoclast * (1.0 / params.aff_turnover_threshold)  # turnover relative to the threshold
    unrepaired = np.maximum(1.0 - remodelled, 0.0)  # s
    damage_mean = _accumulate(damage, unrepaired, params.microdamage_repair_rate * remodelled, days)
    return osteoclast, bone_density(volume, opened, params), opened, damage_mean


def bone_density(z: np.ndarray, space: np.ndarray, params: Parameters) -> np.ndarray:
    """Bone density (entry 1): the bone volume ``Z`` less the remodelling space ``S`` open beyond the healthy one."""
    return z - space + params.remodelling_space


def _accumulate(x: np.ndarray, gain: np.ndarray, rate: np.ndarray, days: float) -> np.ndarray:
    """Exact update of ``x' = gain - rate x`` over ``days`` in place (``rate >= 0``); return its mean over the step.

    ``rate * days`` is floored at 1e-8 (no repair at all only under a total blockade of resorption),
    where the exact factors below are within 1e-8 of their limits ``days`` and ``days/2``.
    """
    rt = np.maximum(rate * days, 1e-8)
    grown = -np.expm1(-rt)
    grown /= rt  # share of the step's gain still present at its end
    mean = 1.0 - grown
    mean /= rt  # mean share over the step
    mean *= gain * days
    mean += x * grown
    x -= x * rt * grown  # x e^-rt = x (1 - rt grown)
    x += gain * days * grown
    return mean


def fracture_hazard(z: np.ndarray, space: np.ndarray, params: Parameters) -> np.ndarray:
    """Hazard per day of an osteoporotic fracture at bone density ``z`` (entry density 1) and remodelling space ``S``.

    Open resorption cavities concentrate stress beyond the bone they remove: the hazard is
    multiplied by ``(S/s_0)**c`` (``c`` = ``remodelling_space_fracture_exponent``).
    """
    lost_sd = (1.0 - z) * (np.log(params.fracture_hr_per_sd) / params.bmd_sd_fraction)
    lost_sd += params.remodelling_space_fracture_exponent * np.log(space * (1.0 / params.remodelling_space))
    return params.osteoporotic_fracture_hazard * np.exp(lost_sd)


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
