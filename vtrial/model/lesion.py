"""The vicious cycle in each bone lesion, vectorised over lesions (any array shape).

States (healthy bone = 1): osteoblast activity ``v`` (carried as ``w = v**2``), tumour burden
``T`` as a fraction of local capacity (carried as ``y = ln T``) and bone mass ``Z``. Osteoclast
activity ``u`` is fast (turnover ~5 days, Komarova 2003 ``beta1 = 0.2/day``) and is taken
quasi-steady: with Komarova's exponents ``g11 = 1/2``, ``g21 = -1/2`` the osteoclast equation
``du/dt = beta_C (X u^g11 v^g21 - u)`` has the root ``u = X**2 / v``.

Algebraic intermediates (per lesion):

* PTHrP ``P = p_l H (1 - pthrp_inhibition) M`` with ``H = T/(T + K)``; ``p_l`` mixes the lytic
  and blastic secretion by the lesion's blastic fraction and scales by the patient's
  ``pthrp_secretion``; ``M`` (a state, healthy 1) is the induction of tumour PTHrP by the
  matrix: TGF-beta and calcium released by resorption (:func:`pthrp_induction`).
* RANKL ``= v (1 + a_P P)(1 - I_RANKL)``, OPG ``= v / (1 + c_P P)``; their ratio relative to
  healthy is ``rho = (1 + a_P P)(1 + c_P P)`` times the drug factor (``v`` cancels).
* Osteoclast recruitment ``X = recruitment * rho * R_B`` (``recruitment`` from :mod:`drugs`),
  ``R_B = 1 + b_R a_B phi H k_D`` the RANKL of the osteoblasts the tumour's blastic drive
  makes (woven bone is resorbed and re-formed: high turnover in blastic lesions). Tumour
  IL-6 carries the share ``s_6`` of the tumour-driven excess ``rho - 1`` (lumped with PTHrP in
  ``rho``): blocking a fraction ``i`` of it gives ``rho_6 = 1 + (rho - 1)(1 - s_6 i)``.
* RANKL keeps osteoclasts alive, so a bisphosphonate's extra osteoclast loss ``E`` (the patient's,
  from the bone pool; ``recruitment`` carries ``1/(1 + E)``) is smaller where the lesion's RANKL is
  high: ``E_L = E / (1 + k_S (rho_6 R_B - 1))`` (``k_S`` = ``rankl_osteoclast_survival``), so the
  lesion's recruitment is ``recruitment (1 + E)/(1 + E_L) rho_6 R_B`` (:func:`_recruitment_factor`).
  Healthy bone (``rho_6 R_B = 1``) keeps the whole loss; RANKL blockade is not opposed by it.
* TGF-beta and calcium released from resorbed matrix ``= u Z`` (healthy 1), feeding tumour
  growth (TGF-beta) and tumour PTHrP (both): the vicious cycle
  ``u Z -> M -> P -> RANKL -> u``, ``dM/dt = k_M (M*(u Z) - M)``.
* Formation rate ``F = v**(3/8) (1 + k_D s a_B phi C)`` (:func:`formation_rate`): the lamellar
  formation of the bone equation laid down faster under the drive of the tumour that covers the
  region's bone surfaces, ``C = T/(T + K_C)`` (woven bone; ``s`` the interface share left by an
  alpha emitter, :func:`interface_share`); read by BSAP (its woven part) and by the uptake of radium-223.

Rates (normalised Komarova/Ayati form, research notes sections 1, 2, 10):

* ``dv/dt = beta_B (u A - v D)`` with osteoblastic drive ``A = (1 + a_B phi H k_D) F`` (blastic;
  ``k_D`` the fraction of the BMP/WNT/endothelin drive left by a drug, ``F`` the osteoblast
  production raised by an anabolic drug, both 1 untreated) and tumour suppression
  ``D = 1 + d_B (1 - phi) H`` (lytic); in ``w = v**2`` this is linear:
  ``dw/dt = 2 beta_B (X**2 A - D w)``.
* ``dT/dt = gamma G S T ln(1/T) - kill T`` (Gompertz; ``gamma`` from the doubling time at the
  detection burden), ``G = 1 + min(a_TGF (tgf_keep u Z - 1)^+, G_max)``, ``S = 1 - s_G i`` the
  share of growth that IL-6 supports in bone, blocked by ``i``; in ``y = ln T``:
  ``dy/dt = -gamma G S y - kill``.
* ``dZ/dt = k_Z (v**(3/8) - u**(1/2) Z)`` (indirect response, OpenBoneMin form). The exponents
  are re-fitted for lesions (the osteoporosis values 0.08/0.14 are too weak): resorption
  exceeds formation in its exponent by 1/8 so an antiresorptive that suppresses turnover 16x
  raises steady bone mass ~1.4x, an untreated lytic lesion loses ~30-50% and a blastic one
  gains. Dyadic exponents make the powers square roots (cheap).

Healthy steady state: ``T = 0`` gives ``u = v = Z = M = 1``. Updates (:func:`advance`) over a step
of ``STEP_DAYS``: each of ``w``, ``y`` and ``Z`` obeys a linear equation once the couplings are
frozen, solved exactly (exponential integrator) with the couplings at mid-step (``M`` the same
way, with a scalar rate); every update
relaxes a state towards a positive target, so no state turns negative and ``T`` stays <= 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from vtrial.model.parameters import Parameters

#: ``ln T`` of a tumour-free lesion slot (T = 0 exactly: Gompertz growth cannot start from it).
EMPTY_LOG_BURDEN = -np.inf
#: Smallest and largest burden a lesion may start from.
BURDEN_FLOOR = 1e-6
BURDEN_CEIL = 1.0 - 1e-6
#: Time step of the lesion states and hazards (days; dose and visit days add step boundaries). The
#: exponential midpoint update (:func:`advance`) keeps the error in ``Z`` and ``T`` at 5 years below
#: 1e-4 even at 28 days (against Radau, rtol 1e-8). Two weeks is where the trials' endpoints have
#: converged: halving it to a week moves no calibration target beyond its sampling noise, while four
#: weeks shifts the laboratory hypocalcaemia and radiotherapy re-treatment (docs/performance.md,
#: "Step size").
STEP_DAYS = 14
#: Most fixed-point iterations of the PTHrP loop of an established lesion (converged to < 1e-6 at the
#: ranges' ends: the induction saturates, so the loop is a contraction; it stops earlier once M stalls).
ESTABLISHED_ITERATIONS = 40
#: Lesion states and traits are float32: their relative rounding (~1e-7 per step) is far below
#: the scheme's error, and float32 exponentials run ~3x faster than float64 ones.
STATE_DTYPE = np.float32


@dataclass
class LesionTraits:
    """Per-lesion constants (arrays of any one shape): what the phenotype and the patient make of the rates."""

    pthrp: np.ndarray
    osteoblast_drive: np.ndarray
    osteoblast_suppression: np.ndarray
    growth_rate: np.ndarray
    blastic_fraction: np.ndarray


@dataclass(frozen=True)
class CellInputs:
    """Step means of the drug inputs at the osteoblasts and the tumour's IL-6 (1 each: no drug).

    Kept apart from the RANKL, PTHrP, TGF-beta and kill inputs of :func:`advance`: they are the
    version-2 targets of a custom agent (``[arm.mechanism]``).
    """

    #: fraction of the blastic osteoblast drive (BMP, WNT, endothelin) left: ``k_D`` (a drug's; in the steps of
    #: :func:`advance` and at visits it may be per lesion, times the interface share :func:`interface_share`)
    osteoblast_drive_keep: float | np.ndarray = 1.0
    #: osteoblast production relative to untreated (anabolic agent): ``F >= 1``
    osteoblast_production: float = 1.0
    #: fraction of the tumour's IL-6 signalling left: ``1 - i``
    il6_keep: float = 1.0

    def growth_keep(self, params: Parameters) -> float:
        """Gompertz rate factor ``S = 1 - s_G i``: IL-6 helps the tumour survive in bone."""
        return 1.0 - params.il6_growth_share * (1.0 - self.il6_keep)


#: The cell inputs of no drug.
NO_CELL_INPUTS = CellInputs()


@dataclass
class LesionState:
    """States of every lesion (arrays of any one shape): ``w = v**2``, ``y = ln T``, ``Z`` and ``M``.

    ``M`` is the matrix-induced PTHrP factor (:func:`pthrp_induction`); left out, it starts at
    its healthy 1 (no induction).
    """

    w: np.ndarray
    y: np.ndarray
    z: np.ndarray
    m: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.m is None:
            self.m = np.ones(np.shape(self.w), STATE_DTYPE)

    @property
    def induction(self) -> np.ndarray:
        """``M``, set by ``__post_init__`` (the typed view of :attr:`m`)."""
        assert self.m is not None
        return self.m

    @property
    def burden(self) -> np.ndarray:
        return np.exp(self.y)

    @property
    def osteoblast(self) -> np.ndarray:
        return np.sqrt(self.w)


#: A float, or an array of them: what a function of one gives back.
FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)


def gompertz_rate(doubling_time_days: FloatOrArray, params: Parameters) -> FloatOrArray:
    """Gompertz rate whose doubling time at the detection burden is ``doubling_time_days``."""
    return np.log(2.0) / (doubling_time_days * np.log(1.0 / params.tumour_detection_burden))


def lesion_traits(
    blastic_fraction: np.ndarray,
    pthrp_secretion: float | np.ndarray,
    osteoblastic_drive: float | np.ndarray,
    growth_rate: float | np.ndarray,
    params: Parameters,
) -> LesionTraits:
    """Per-lesion constants (``STATE_DTYPE``) from the phenotype mix and the patient's multipliers.

    Arguments broadcast against ``blastic_fraction`` (per lesion); ``growth_rate`` is the
    patient's Gompertz rate (primary doubling time x multiplier).
    """
    phi = np.asarray(blastic_fraction, dtype=float)
    pthrp = (params.pthrp_lytic * (1.0 - phi) + params.pthrp_blastic * phi) * pthrp_secretion
    drive = params.osteoblast_drive_blastic * phi * osteoblastic_drive
    suppression = params.osteoblast_suppression_lytic * (1.0 - phi)
    growth = growth_rate if np.shape(growth_rate) == phi.shape else np.broadcast_to(growth_rate, phi.shape)
    return LesionTraits(*(np.array(a, dtype=STATE_DTYPE) for a in (pthrp, drive, suppression, growth, phi)))


def initial_state(burden: np.ndarray, mask: np.ndarray) -> LesionState:
    """Healthy bone (``v = Z = 1``) carrying the entry burden; empty slots hold no tumour (``T = 0``)."""
    y = np.where(mask, np.log(np.clip(burden, BURDEN_FLOOR, BURDEN_CEIL)), EMPTY_LOG_BURDEN).astype(STATE_DTYPE)
    return LesionState(
        w=np.ones(mask.shape, STATE_DTYPE), y=y, z=np.ones(mask.shape, STATE_DTYPE), m=np.ones(mask.shape, STATE_DTYPE)
    )


def established_state(
    burden: np.ndarray,
    traits: LesionTraits,
    params: Parameters,
    recruitment_sq: float | np.ndarray = 1.0,
    pthrp_keep: float | np.ndarray = 1.0,
    cells: CellInputs = NO_CELL_INPUTS,
    tgf_beta_keep: float | np.ndarray = 1.0,
    pool_loss: float | np.ndarray = 0.0,
) -> LesionState:
    """A lesion at detection: its burden, with osteoblasts, bone and PTHrP induction in equilibrium with it and the drug inputs.

    A metastasis grows for months to years before it is found, longer than bone takes to answer
    it (``1/k_Z`` ~ 250 days), and lytic lesions are seen on radiographs only after much of their
    bone is lost, blastic ones once sclerotic. So a lesion starts from the quasi-steady state of
    its signals at the entry burden: ``X**2 = r2 ((1 + a_P P)(1 + c_P P) R_B)**2``,
    ``w = X**2 A / D``, ``u = X**2 / v``, ``Z = v**(3/8) / u**(1/2)`` and ``M = M*(u Z)``, the
    loop through ``P = p_l H M`` solved by fixed-point iteration from ``M = 1`` (a contraction: ``M*``
    saturates), stopped once no lesion's ``M`` changes in float64 (the iterates would repeat exactly)
    or after ``ESTABLISHED_ITERATIONS``.
    The drug inputs (``r2`` the mean squared recruitment, the PTHrP and TGF-beta kept, the
    osteoblast and IL-6 inputs of ``cells``, the bisphosphonate's osteoclast loss ``pool_loss``)
    are those of the bone the lesion lands in: none untreated (entry lesions), the current step's
    for a new lesion that appears on a drug.
    """
    burden = np.clip(np.asarray(burden, dtype=float), BURDEN_FLOOR, BURDEN_CEIL)
    # the terms that do not depend on M, computed once
    drive_keep = cells.osteoblast_drive_keep
    half, pthrp, blastic = _tumour_terms(burden, traits, pthrp_keep, params, drive_keep)
    drive = (1.0 + traits.osteoblast_drive * drive_keep * half) * cells.osteoblast_production
    suppression = 1.0 + traits.osteoblast_suppression * half
    shape = np.broadcast_shapes(
        *(np.shape(a) for a in (burden, traits.pthrp, drive, suppression, recruitment_sq, tgf_beta_keep, pool_loss))
    )
    p_l, r_b, a, d = (_flat(x, shape) for x in (pthrp, blastic, drive, suppression))
    r2, keep, loss = (x if is_scalar(x) else _flat(x, shape) for x in (recruitment_sq, tgf_beta_keep, pool_loss))
    m_now = np.ones(math.prod(shape))
    # lesions are independent and one whose M no longer changes is at a fixed point in float64 (its further
    # iterations repeat it exactly), so the iterated set is cut down, to the lesions that still move, only
    # when they are fewer than half of it; ``rows`` are their indices in the whole arrays (None: all), to
    # which each iteration's w, z and M are written
    rows: np.ndarray | None = None
    for _ in range(ESTABLISHED_ITERATIONS):
        x2 = _recruitment_factor(p_l * m_now, r_b, cells.il6_keep, params, loss)
        np.square(x2, out=x2)
        if _applies(r2):
            x2 *= r2
        w_now = x2 * a
        w_now /= d
        v = np.sqrt(w_now)
        u = np.divide(x2, v, out=x2)
        z_now = np.power(v, 0.375, out=v)
        z_now /= np.sqrt(u)
        m_next = pthrp_induction(np.multiply(u, z_now, out=u), keep, params)
        if rows is None:  # each iteration makes new arrays: the whole ones are this iteration's
            w, z, m = w_now, z_now, m_next
        else:
            w[rows], z[rows], m[rows] = w_now, z_now, m_next
        moved = np.flatnonzero(m_next != m_now)
        if not moved.size:
            break
        if 2 * moved.size < m_next.size:
            rows = moved if rows is None else rows[moved]
            p_l, r_b, a, d = (x[moved] for x in (p_l, r_b, a, d))
            r2, keep, loss = (_rows(x, moved) for x in (r2, keep, loss))
            m_now = m_next[moved]
        else:
            m_now = m_next
    w_out, z_out, m_out = (np.asarray(a, dtype=STATE_DTYPE).reshape(shape) for a in (w, z, m))
    return LesionState(w_out, np.asarray(np.log(burden), dtype=STATE_DTYPE), z_out, m_out)


def _flat(a: float | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` broadcast to ``shape``, flattened (a view when it already has that shape: no broadcast call)."""
    return (a if isinstance(a, np.ndarray) and a.shape == shape else np.broadcast_to(a, shape)).ravel()


def _rows(x: float | np.ndarray, moving: np.ndarray | None) -> float | np.ndarray:
    """The entries of the lesions still iterated (``moving``; None: all); a float is shared by all."""
    return x if moving is None or not isinstance(x, np.ndarray) or x.ndim == 0 else x[moving]


def is_scalar(x: float | np.ndarray) -> bool:
    """``np.ndim(x) == 0`` for a float or an array, without its call (the step's inputs are read many times a step)."""
    return not isinstance(x, np.ndarray) or x.ndim == 0


def _applies(keep: float | np.ndarray) -> bool:
    """Whether a kept share must be multiplied in: any array (per lesion; x 1.0 is exact), or a scalar other than 1."""
    return not is_scalar(keep) or keep != 1.0


def pthrp_induction(resorbed: np.ndarray, tgf_beta_keep: float | np.ndarray, params: Parameters) -> np.ndarray:
    """Target ``M* = 1 + M_max E / (1 + E)`` of the matrix-induced tumour PTHrP factor (new array).

    ``E = a_T (k_T u Z - 1)^+ + a_Ca (u Z - 1)^+``: TGF-beta (Smad signalling, the share
    ``k_T`` = ``tgf_beta_keep`` left by an inhibitor) and calcium (the calcium-sensing
    receptor) released by resorption above healthy bone raise the tumour's PTHrP secretion,
    saturating at ``1 + M_max``. Healthy or suppressed resorption (``u Z <= 1``): 1.
    """
    above = resorbed - 1.0
    np.maximum(above, 0.0, out=above)
    excess = above * params.calcium_pthrp_gain
    if _applies(tgf_beta_keep):
        above = resorbed * tgf_beta_keep
        above -= 1.0
        np.maximum(above, 0.0, out=above)
    above *= params.tgf_beta_pthrp_gain
    excess += above
    saturation = excess + 1.0
    excess *= params.cycle_pthrp_max
    excess /= saturation
    excess += 1.0
    return excess


@dataclass
class Signals:
    """Mid-step values of a step (arrays like the states), reused by the event hazards and sums."""

    burden: np.ndarray
    pthrp: np.ndarray
    osteoclast: np.ndarray
    tgf_beta: np.ndarray
    bone: np.ndarray


def osteoclast_activity(
    w: np.ndarray,
    y: np.ndarray,
    m: np.ndarray,
    traits: LesionTraits,
    recruitment: float | np.ndarray,
    pthrp_keep: float | np.ndarray,
    params: Parameters,
    cells: CellInputs = NO_CELL_INPUTS,
    pool_loss: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Osteoclast recruitment ``X`` and quasi-steady activity ``u = X**2 / v`` (for reference solvers)."""
    _, _, factor = _signals(
        np.exp(y), traits, pthrp_keep, params, cells.il6_keep, m, cells.osteoblast_drive_keep, pool_loss
    )
    x = recruitment * factor
    return x, x**2 / np.sqrt(w)


def rates(
    w: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    m: np.ndarray,
    traits: LesionTraits,
    recruitment: float | np.ndarray,
    pthrp_keep: float | np.ndarray,
    tgf_beta_keep: float | np.ndarray,
    kill: float | np.ndarray,
    params: Parameters,
    cells: CellInputs = NO_CELL_INPUTS,
    pool_loss: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Right-hand side ``(dw/dt, dy/dt, dZ/dt, dM/dt)`` of the lesion equations (for reference solvers)."""
    burden = np.exp(y)
    half = burden / (burden + params.tumour_signal_half_burden)
    x, osteoclast = osteoclast_activity(w, y, m, traits, recruitment, pthrp_keep, params, cells, pool_loss)
    v = np.sqrt(w)
    b = params.osteoblast_rate
    drive = (1.0 + traits.osteoblast_drive * cells.osteoblast_drive_keep * half) * cells.osteoblast_production
    dw = 2.0 * b * (x**2 * drive - (1.0 + traits.osteoblast_suppression * half) * w)
    dz = params.bone_turnover_rate * (v**0.375 - np.sqrt(osteoclast) * z)
    dm = params.pthrp_induction_rate * (pthrp_induction(osteoclast * z, tgf_beta_keep, params) - m)
    excess = np.maximum(tgf_beta_keep * osteoclast * z - 1.0, 0.0)
    gain = 1.0 + np.minimum(params.tgf_beta_growth_gain * excess, params.tgf_beta_growth_max)
    dy = -traits.growth_rate * cells.growth_keep(params) * gain * y - kill
    return dw, dy, dz, dm


def turnover(
    state: LesionState,
    traits: LesionTraits,
    recruitment: float | np.ndarray,
    pthrp_keep: float | np.ndarray,
    params: Parameters,
    il6_keep: float = 1.0,
    drive_keep: float | np.ndarray = 1.0,
    pool_loss: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Resorbed matrix ``u Z``, bone fluxes ``u**(1/2) Z`` and ``v**(3/8)``, formation rate and PTHrP ``P`` now.

    ``u Z`` is osteoclast activity times the bone there is to resorb: the resorption that releases
    TGF-beta and calcium (and, in the hazards, PTHrP-driven calcium and the osteoclasts' acid). The fluxes are the
    resorption and formation terms of ``dZ/dt = k_Z (v**(3/8) - u**(1/2) Z)``, equal at a
    lesion's equilibrium; the formation rate is :func:`formation_rate`. Osteoclasts are
    quasi-steady, ``u = X**2 / v``, for the given osteoclast recruitment by the drug (per lesion),
    the IL-6 signalling and the blastic drive left (``il6_keep``, ``drive_keep``) and the bisphosphonate's
    osteoclast loss (``pool_loss``). Healthy bone: 1 each.
    Bone markers are read from them.
    """
    _, pthrp, factor = _signals(state.burden, traits, pthrp_keep, params, il6_keep, state.m, drive_keep, pool_loss)
    v = state.osteoblast
    factor *= recruitment
    root_u = factor / np.sqrt(v)
    resorption_flux = root_u * state.z
    formation = formation_rate(state.w, state.y, traits, params, drive_keep)
    return resorption_flux * root_u, resorption_flux, v**0.375, formation, pthrp


def formation_rate(
    w: np.ndarray, y: np.ndarray, traits: LesionTraits, params: Parameters, drive_keep: float | np.ndarray = 1.0
) -> np.ndarray:
    """Bone formation rate of each lesion (healthy bone 1): the mineralising activity read by BSAP and radium.

    ``v**(3/8) (1 + k_D a_B phi C)``: the coupled (lamellar) formation of the bone equation, ``v**(3/8)``,
    laid down faster where the tumour drives osteoblasts to form woven bone. The drive is that of the
    tumour in contact with the bone surfaces, ``C = T/(T + K_C)`` (``K_C`` = ``interface_half_burden``,
    0.01: metastases start on the endosteal surface and cover it before they are detected), not the
    lesion-wide ``H`` of the osteoblast equation, which sets how many osteoblasts there are; ``k_D`` =
    ``drive_keep``, the share a drug leaves of it (per lesion, times the interface share ``s`` of
    :func:`interface_share`). Osteoblasts on this mineralising surface make bone-specific alkaline
    phosphatase, and the new mineral takes up calcium mimetics (radium-223), so both read this one rate:
    1.3-2.1 in lytic lesions (phi 0.1) and 3.3-7.4 in blastic ones (phi 0.9) at burdens 0.02-0.8, as bone
    scans show several-fold uptake in osteoblastic metastases. The lasting bone mass keeps the lamellar
    law (woven bone is remodelled fast), so the bone equation and the events do not change with it.
    """
    burden = np.exp(y)
    covered = burden / (burden + params.interface_half_burden)
    return np.sqrt(w) ** 0.375 * (1.0 + drive_keep * traits.osteoblast_drive * covered)


def effective_bone(z: np.ndarray, params: Parameters) -> np.ndarray:
    """Bone mass that counts for strength: woven bone above healthy mass counts only in part."""
    excess = np.maximum(z - 1.0, 0.0)
    return z - (1.0 - params.woven_bone_strength) * excess


def strength(z: np.ndarray, burden: np.ndarray, params: Parameters) -> np.ndarray:
    """Relative strength ``s = Z_eff**2 (1 - c T)`` (density-squared law; tumour replaces bone)."""
    return np.square(effective_bone(z, params)) * (1.0 - params.strength_tumour_loss * burden)


def _signals(
    burden: np.ndarray,
    traits: LesionTraits,
    pthrp_keep: float | np.ndarray,
    params: Parameters,
    il6_keep: float = 1.0,
    feedback: np.ndarray | None = None,
    drive_keep: float | np.ndarray = 1.0,
    pool_loss: float | np.ndarray = 0.0,
):
    """Tumour signal ``H``, PTHrP ``P`` and the tumour's recruitment factor ``rho R_B``.

    ``P = p_l H k_P M`` (``M`` = ``feedback``, the matrix-induced PTHrP factor; None: 1),
    ``rho = (1 + a_P P)(1 + c_P P)``. With IL-6 blocked (``il6_keep < 1``) ``rho`` becomes
    ``1 + (rho - 1)(1 - s_6 (1 - il6_keep))``: IL-6 carries the share ``s_6`` of the
    tumour-driven excess. ``R_B = 1 + b_R a_B phi H k_D`` is the RANKL of the osteoblasts the
    blastic drive makes (``k_D`` = ``drive_keep``). Under a bisphosphonate (``pool_loss`` ``E`` > 0)
    the factor also carries the share of its osteoclast loss that RANKL offsets
    (:func:`_recruitment_factor`).
    """
    half, pthrp, blastic = _tumour_terms(burden, traits, pthrp_keep, params, drive_keep)
    if feedback is not None:
        pthrp *= feedback
    return half, pthrp, _recruitment_factor(pthrp, blastic, il6_keep, params, pool_loss)


def _tumour_terms(
    burden: np.ndarray,
    traits: LesionTraits,
    pthrp_keep: float | np.ndarray,
    params: Parameters,
    drive_keep: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parts of :func:`_signals` without the induction ``M``: ``H``, ``p_l H k_P`` and ``R_B`` (new arrays)."""
    half = burden + params.tumour_signal_half_burden
    np.divide(burden, half, out=half)
    pthrp = traits.pthrp * half
    if _applies(pthrp_keep):
        pthrp *= pthrp_keep
    blastic = traits.osteoblast_drive * half
    blastic *= params.osteoblast_rankl_blastic * drive_keep
    blastic += 1.0
    return half, pthrp, blastic


def _recruitment_factor(
    pthrp: np.ndarray,
    blastic: np.ndarray,
    il6_keep: float,
    params: Parameters,
    pool_loss: float | np.ndarray = 0.0,
) -> np.ndarray:
    """The tumour's recruitment factor ``rho R_B`` of :func:`_signals` from ``P`` and ``R_B`` (new array).

    With a bisphosphonate's osteoclast loss ``E`` (``pool_loss``, per lesion; 0 without one) it is
    ``rho R_B (1 + E)/(1 + E_L)``, ``E_L = E / (1 + k_S (rho R_B - 1))``: RANKL, an osteoclast survival
    signal, offsets part of the loss where the tumour raised it (the drug's ``1/(1 + E)`` is in the
    recruitment the caller multiplies by).
    """
    factor = params.rankl_per_pthrp * pthrp
    factor += 1.0
    opg = params.opg_per_pthrp * pthrp
    opg += 1.0
    factor *= opg
    if il6_keep != 1.0:
        factor -= 1.0
        factor *= 1.0 - params.il6_recruitment_share * (1.0 - il6_keep)
        factor += 1.0
    factor *= blastic
    if not is_scalar(pool_loss) or pool_loss:
        kept = factor - 1.0
        kept *= params.rankl_osteoclast_survival
        kept += 1.0
        np.divide(pool_loss, kept, out=kept)  # E_L
        kept += 1.0
        np.divide(1.0 + pool_loss, kept, out=kept)
        factor *= kept
    return factor


def _growth_gain(tgf_beta: np.ndarray, tgf_beta_keep: float | np.ndarray, params: Parameters) -> np.ndarray:
    """Gompertz rate multiplier ``G = 1 + min(a (TGF keep - 1)^+, G_max)`` (new array)."""
    gain = tgf_beta * tgf_beta_keep if _applies(tgf_beta_keep) else tgf_beta.copy()
    gain -= 1.0
    np.maximum(gain, 0.0, out=gain)
    gain *= params.tgf_beta_growth_gain
    np.minimum(gain, params.tgf_beta_growth_max, out=gain)
    gain += 1.0
    return gain


def relax(x: np.ndarray, target: np.ndarray, rate: np.ndarray | float, days: float) -> np.ndarray:
    """Exact update of ``x' = rate (target - x)`` over ``days`` in place; return the mean of ``x`` over them.

    ``rate`` per element, or one float for all: its decay is then computed once, by ``np.exp`` of a
    one-element array (the value ``np.exp`` gives each element of an array, so the same numbers).
    """
    if is_scalar(rate):
        decay = np.exp(np.array([rate * -days]))[0]
    else:
        decay = np.multiply(rate, -days)
        np.exp(decay, out=decay)
    x -= target
    mean = 1.0 - decay
    mean /= rate
    mean *= x
    mean *= 1.0 / days
    mean += target
    x *= decay
    x += target
    return mean


def interface_share(share: np.ndarray, kill: np.ndarray, days: float, params: Parameters) -> np.ndarray:
    """Update the interface share ``s`` of each lesion over ``days`` in place; return its mean over them.

    ``s`` is the tumour within alpha range (< 100 um) of the forming bone surface, relative to
    its untreated share (1): the cells that drive the osteoblasts (endothelin-1, BMPs, Wnt) and
    that a bone-seeking alpha emitter irradiates. ``kill`` is the lesion-average kill of the
    emitter (``kappa A(t) F_L``, 1/day); the interface takes ``q`` times it
    (``radium_interface_kill_ratio``: the whole tumour is irradiated only where it is within
    range) and is repopulated from the rest of the lesion at ``r`` (``radium_interface_repopulation_rate``):
    ``ds/dt = r (1 - s) - q kill s``, exact for a kill frozen over the step (:func:`relax`).
    The osteoblast drive and its RANKL read ``H s``, the woven formation ``C s`` (``drive_keep``), so
    the drive falls within a week of an injection while the lesion's burden ``T`` falls much less.
    """
    rate = kill * params.radium_interface_kill_ratio
    rate += params.radium_interface_repopulation_rate
    target = np.divide(params.radium_interface_repopulation_rate, rate, dtype=STATE_DTYPE)
    return relax(share, target, rate, days)


def _gompertz(y: np.ndarray, rate: np.ndarray, kill: float | np.ndarray, days: float) -> np.ndarray:
    """``ln T`` after ``days`` of ``y' = -rate y - kill`` with the rate frozen (exact; new array).

    ``kill`` is a scalar or an array like ``y`` (per-lesion kill, e.g. background therapy).
    """
    decay = rate * -days
    np.exp(decay, out=decay)
    if is_scalar(kill) and kill == 0.0:
        return np.multiply(y, decay, out=decay)
    target = -kill / rate
    out = y - target
    out *= decay
    out += target
    return out


def advance(
    state: LesionState,
    traits: LesionTraits,
    recruitment: np.ndarray,
    recruitment_sq: np.ndarray,
    pthrp_keep: float | np.ndarray,
    tgf_beta_keep: float | np.ndarray,
    kill: float | np.ndarray,
    days: float,
    params: Parameters,
    cells: CellInputs = NO_CELL_INPUTS,
    pool_loss: float | np.ndarray = 0.0,
) -> Signals:
    """Advance every lesion by ``days`` in place; return the step's mid-point signals.

    Exponential midpoint scheme: each state's linear equation is solved exactly over the step
    with its coefficients frozen at mid-step, where the tumour and the PTHrP induction ``M`` are
    predicted by a half step with the start-of-step growth gain and induction target (second
    order in the step; ``days`` = 7 keeps the error in ``Z`` and ``T`` far below 1% over 5
    years). ``recruitment`` and ``recruitment_sq`` are the step means of the drug recruitment
    factor and of its square, per lesion; the other drug inputs are scalars (step means), except
    ``kill``, which may also be per lesion (the drug's kill plus the background therapy's);
    ``cells`` holds the step means of the osteoblast and IL-6 inputs, ``pool_loss`` the
    bisphosphonate's osteoclast loss ``E`` per lesion (its patient's; 0 without one).
    """
    w, y, z, m = state.w, state.y, state.z, state.m
    b, k = params.osteoblast_rate, params.bone_turnover_rate
    drive_keep = cells.osteoblast_drive_keep
    # start of step: growth gain and PTHrP induction target from u0 Z0 = X0^2 Z0 / v0
    il6_keep = cells.il6_keep
    growth_keep = cells.growth_keep(params)
    _, _, factor = _signals(np.exp(y), traits, pthrp_keep, params, il6_keep, m, drive_keep, pool_loss)
    np.square(factor, out=factor)
    factor *= recruitment_sq
    factor *= z
    factor /= np.sqrt(w)
    gain = _growth_gain(factor, tgf_beta_keep, params)
    gain *= traits.growth_rate
    if growth_keep != 1.0:
        gain *= growth_keep
    # mid-step tumour, PTHrP induction and their signals
    burden = np.exp(_gompertz(y, gain, kill, 0.5 * days))
    induction = pthrp_induction(factor, tgf_beta_keep, params)
    keep = math.exp(-params.pthrp_induction_rate * days)  # M relaxes at a scalar rate: a scalar decay
    m_mid = m + (1.0 - math.sqrt(keep)) * (induction - m)
    half, pthrp, factor = _signals(burden, traits, pthrp_keep, params, il6_keep, m_mid, drive_keep, pool_loss)
    x2 = np.square(factor)
    x2 *= recruitment_sq  # mean X^2
    factor *= recruitment  # mean X
    # osteoblasts: w' = 2 bB D (X^2 A / D - w), A = (1 + a_B phi H k_D) F
    rate = traits.osteoblast_suppression * half
    rate += 1.0
    target = traits.osteoblast_drive * half
    if _applies(drive_keep):
        target *= drive_keep
    target += 1.0
    if cells.osteoblast_production != 1.0:
        target *= cells.osteoblast_production
    target *= x2
    target /= rate
    rate *= 2.0 * b
    v = relax(w, target, rate, days)
    # osteoclasts (quasi-steady) u = X^2 / v; bone Z' = kZ R (F / R - Z), R = X / v^(1/2), F = v^(3/8)
    np.sqrt(v, out=v)
    osteoclast = np.divide(x2, v, out=x2)
    np.sqrt(v, out=v)
    resorption = np.divide(factor, v, out=factor)
    np.sqrt(v, out=v)
    formation = np.sqrt(v)
    formation *= v
    formation /= resorption
    resorption *= k
    bone = relax(z, formation, resorption, days)
    # TGF-beta and calcium from resorbed matrix: PTHrP induction and the tumour over the whole step
    tgf = np.multiply(osteoclast, bone, out=formation)
    induction = pthrp_induction(tgf, tgf_beta_keep, params)
    m -= induction
    m *= keep
    m += induction
    gain = _growth_gain(tgf, tgf_beta_keep, params)
    gain *= traits.growth_rate
    if growth_keep != 1.0:
        gain *= growth_keep
    y[...] = _gompertz(y, gain, kill, days)
    return Signals(burden=burden, pthrp=pthrp, osteoclast=osteoclast, tgf_beta=tgf, bone=bone)
