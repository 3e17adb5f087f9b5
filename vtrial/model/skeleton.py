"""The skeleton outside the metastases: turnover and bone density of uninvolved bone, per patient.

Uninvolved bone follows the lesions' RANKL/osteoclast/osteoblast balance without tumour
(:mod:`vtrial.model.lesion`, healthy = 1). Its osteoclast recruitment ``X`` is the drugs'
systemic recruitment input (:class:`vtrial.model.drugs.StepInputs`) times the background
therapy's rise of RANKL (``rankl_factor``, :mod:`vtrial.model.systemic`):

* osteoblasts follow recruitment (coupling): ``dw/dt = 2 beta_B (X**2 F - w)`` with ``w = v**2``
  and ``F`` the osteoblast production (1; raised by an anabolic agent, :class:`vtrial.model.lesion.CellInputs`);
* osteoclasts are quasi-steady: ``u = X**2 / v``;
* bone density, the OpenBoneMin indirect response:
  ``dZ/dt = k_s (v**g_OB - u**g_OC Z)``, steady ``Z = X**(g_OB - g_OC)`` once ``v = u = X``:
  raised resorption (androgen deprivation) loses bone, an antiresorptive gains it.

The fracture hazard of uninvolved bone rises as its density falls: it is multiplied by
``fracture_hr_per_sd`` per standard deviation of density lost since entry (density 1).
"""

from __future__ import annotations

import numpy as np

from vtrial.model.lesion import relax
from vtrial.model.parameters import Parameters


def advance(
    w: np.ndarray, z: np.ndarray, recruitment_sq: np.ndarray, rankl_factor: np.ndarray, days: float,
    params: Parameters, osteoblast_production: float = 1.0,
) -> np.ndarray:
    """Advance osteoblast activity ``w = v**2`` and density ``Z`` by ``days`` in place; return the mean ``Z``.

    ``recruitment_sq`` is the step mean of the square of the drugs' recruitment factor (per
    patient); each state's linear equation is solved exactly over the step with
    its coupling at mid-step (as :func:`vtrial.model.lesion.advance`).
    """
    x2 = np.asarray(recruitment_sq * np.square(rankl_factor), dtype=float)
    v = np.sqrt(relax(w, x2 * osteoblast_production, np.full(w.shape, 2.0 * params.osteoblast_rate), days))
    osteoclast = x2 / v
    resorption = params.systemic_bone_turnover_rate * osteoclast ** params.systemic_resorption_exponent
    formation = params.systemic_bone_turnover_rate * v ** params.systemic_formation_exponent
    return relax(z, formation / resorption, resorption, days)


def fracture_hazard(z: np.ndarray, params: Parameters) -> np.ndarray:
    """Hazard per day of an osteoporotic fracture at bone density ``z`` (entry density 1)."""
    lost_sd = (1.0 - z) / params.bmd_sd_fraction
    return params.osteoporotic_fracture_hazard * params.fracture_hr_per_sd ** lost_sd
