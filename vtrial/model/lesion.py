"""The vicious cycle in each bone lesion, vectorised over ``[patients, lesions]``.

States (healthy bone = 1): osteoblast activity ``v`` (carried as ``w = v**2``), tumour burden
``T`` as a fraction of local capacity (carried as ``y = ln T``) and bone mass ``Z``. Osteoclast
activity ``u`` is fast (turnover ~5 days, Komarova 2003 ``beta1 = 0.2/day``) and is taken
quasi-steady: with Komarova's exponents ``g11 = 1/2``, ``g21 = -1/2`` the osteoclast equation
``du/dt = beta_C (X u^g11 v^g21 - u)`` has the root ``u = X**2 / v``.

Algebraic intermediates (per lesion, per day):

* PTHrP ``P = p_l H (1 - pthrp_inhibition)`` with ``H = T/(T + K)``; ``p_l`` mixes the lytic
  and blastic secretion by the lesion's blastic fraction and scales by the patient's
  ``pthrp_secretion``.
* RANKL ``= v (1 + a_P P)(1 - I_RANKL)``, OPG ``= v / (1 + c_P P)``; their ratio relative to
  healthy is ``rho = (1 + a_P P)(1 + c_P P)`` times the drug factor (``v`` cancels).
* Osteoclast recruitment ``X = recruitment * rho`` (``recruitment`` from :mod:`drugs`).
* TGF-beta released from resorbed matrix ``= u Z`` (healthy 1), feeding tumour growth.

Rates (normalised Komarova/Ayati form, research notes sections 1, 2, 10):

* ``dv/dt = beta_B (u A - v D)`` with osteoblastic drive ``A = 1 + a_B phi H`` (blastic) and
  tumour suppression ``D = 1 + d_B (1 - phi) H`` (lytic); in ``w = v**2`` this is linear:
  ``dw/dt = 2 beta_B (X**2 A - D w)``.
* ``dT/dt = gamma G T ln(1/T) - kill T`` (Gompertz; ``gamma`` from the doubling time at the
  detection burden), ``G = 1 + min(a_TGF (tgf_keep u Z - 1)^+, G_max)``; in ``y = ln T``:
  ``dy/dt = -gamma G y - kill``.
* ``dZ/dt = k_Z (v**(3/8) - u**(1/2) Z)`` (indirect response, OpenBoneMin form). The exponents
  are re-fitted for lesions (the osteoporosis values 0.08/0.14 are too weak): resorption
  exceeds formation in its exponent by 1/8 so an antiresorptive that suppresses turnover 16x
  raises steady bone mass ~1.4x, an untreated lytic lesion loses ~30-50% and a blastic one
  gains. Dyadic exponents make the powers square roots (cheap).

Healthy steady state: ``T = 0`` gives ``u = v = Z = 1``. Updates on a daily step: ``w``, ``y``
and ``Z`` by the trapezoidal (Crank-Nicolson) rule on their linear terms with the coupling
frozen at the start of the day (``w``) or at mid-day (``y``, ``Z``); every update is a ratio of
positive terms, so no state turns negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vtrial.model.parameters import Parameters

#: ``ln T`` of a tumour-free lesion slot (T = 0 exactly: Gompertz growth cannot start from it).
EMPTY_LOG_BURDEN = -np.inf
#: Smallest and largest burden a lesion may start from.
BURDEN_FLOOR = 1e-6
BURDEN_CEIL = 1.0 - 1e-6


@dataclass
class LesionTraits:
    """Per-lesion constants (arrays ``[n, L]``): what the phenotype and the patient make of the rates."""

    pthrp: np.ndarray
    osteoblast_drive: np.ndarray
    osteoblast_suppression: np.ndarray
    growth_rate: np.ndarray
    blastic_fraction: np.ndarray


@dataclass
class LesionState:
    """States of every lesion slot (arrays ``[n, L]``): ``w = v**2``, ``y = ln T`` and ``Z``."""

    w: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def burden(self) -> np.ndarray:
        return np.exp(self.y)

    @property
    def osteoblast(self) -> np.ndarray:
        return np.sqrt(self.w)


def gompertz_rate(doubling_time_days: np.ndarray, params: Parameters) -> np.ndarray:
    """Gompertz rate whose doubling time at the detection burden is ``doubling_time_days``."""
    return np.log(2.0) / (doubling_time_days * np.log(1.0 / params.tumour_detection_burden))


def lesion_traits(
    blastic_fraction: np.ndarray,
    pthrp_secretion: np.ndarray,
    osteoblastic_drive: np.ndarray,
    growth_rate: np.ndarray,
    params: Parameters,
) -> LesionTraits:
    """Per-lesion constants from the phenotype mix ``[n, L]`` and per-patient multipliers ``[n]``.

    ``growth_rate`` is the Gompertz rate per patient (primary doubling time x multiplier).
    """
    phi = np.asarray(blastic_fraction, dtype=float)
    pthrp = (params.pthrp_lytic * (1.0 - phi) + params.pthrp_blastic * phi) * pthrp_secretion[:, None]
    drive = params.osteoblast_drive_blastic * phi * osteoblastic_drive[:, None]
    suppression = params.osteoblast_suppression_lytic * (1.0 - phi)
    return LesionTraits(pthrp, drive, suppression, np.broadcast_to(growth_rate[:, None], phi.shape).copy(), phi)


def initial_state(burden: np.ndarray, mask: np.ndarray) -> LesionState:
    """Healthy bone (``v = Z = 1``) carrying the entry burden; empty slots hold no tumour (``T = 0``)."""
    y = np.where(mask, np.log(np.clip(burden, BURDEN_FLOOR, BURDEN_CEIL)), EMPTY_LOG_BURDEN)
    return LesionState(w=np.ones(mask.shape), y=y, z=np.ones(mask.shape))


@dataclass
class Signals:
    """Algebraic intermediates of one day (arrays ``[n, L]``), reused by the event hazards."""

    burden: np.ndarray
    pthrp: np.ndarray
    osteoclast: np.ndarray
    tgf_beta: np.ndarray


def step(
    state: LesionState,
    traits: LesionTraits,
    recruitment: np.ndarray,
    pthrp_keep: float | np.ndarray,
    tgf_beta_keep: float | np.ndarray,
    kill: float | np.ndarray,
    params: Parameters,
) -> Signals:
    """Advance every lesion by one day in place; return the day's intermediates.

    ``recruitment`` is ``[n, 1]`` (patient-level drug factor); ``pthrp_keep``,
    ``tgf_beta_keep`` and ``kill`` are scalars or ``[n, 1]``.
    """
    w, y, z = state.w, state.y, state.z
    burden = np.exp(y)
    half = burden + params.tumour_signal_half_burden
    np.divide(burden, half, out=half)  # H = T/(T+K)
    pthrp = traits.pthrp * half
    if not (np.isscalar(pthrp_keep) and pthrp_keep == 1.0):
        pthrp *= pthrp_keep
    # X = recruitment (1 + a_P P)(1 + c_P P); x2 = X**2
    x = params.rankl_per_pthrp * pthrp
    x += 1.0
    tmp = params.opg_per_pthrp * pthrp
    tmp += 1.0
    x *= tmp
    x *= recruitment
    x2 = np.square(x)
    # osteoblasts: w' = 2 bB (X^2 A - D w), trapezoidal on D w with X^2 A frozen
    b = params.osteoblast_rate
    np.multiply(traits.osteoblast_drive, half, out=tmp)
    tmp += 1.0
    tmp *= x2
    tmp *= 2.0 * b  # production 2 bB X^2 A
    loss = traits.osteoblast_suppression * half
    loss += 1.0
    loss *= b  # half of 2 bB D
    w_old = w.copy()
    w *= 1.0 - loss
    w += tmp
    loss += 1.0
    w /= loss
    # mid-day osteoblast powers: v = sqrt(w), v^(1/2), v^(3/8)
    w_old += w
    w_old *= 0.5
    v = np.sqrt(w_old, out=w_old)
    v_half = np.sqrt(v)
    v_quarter = np.sqrt(v_half)
    formation = np.sqrt(v_quarter)
    formation *= v_quarter  # v^(3/8)
    # osteoclasts (quasi-steady): u = X^2 / v ; resorption rate u^(1/2) = X / v^(1/2)
    osteoclast = np.divide(x2, v, out=x2)
    resorption = np.divide(x, v_half, out=x)
    # bone: Z' = kZ (F - R Z), trapezoidal
    k = params.bone_turnover_rate
    resorption *= 0.5 * k
    z_old = z.copy()
    z *= 1.0 - resorption
    formation *= k
    z += formation
    resorption += 1.0
    z /= resorption
    # TGF-beta from resorbed matrix (mid-day), tumour growth gain
    z_old += z
    z_old *= 0.5
    tgf = np.multiply(osteoclast, z_old, out=z_old)
    gain = tgf * tgf_beta_keep if not (np.isscalar(tgf_beta_keep) and tgf_beta_keep == 1.0) else tgf.copy()
    gain -= 1.0
    np.maximum(gain, 0.0, out=gain)
    gain *= params.tgf_beta_growth_gain
    np.minimum(gain, params.tgf_beta_growth_max, out=gain)
    gain += 1.0
    # tumour: y' = -gamma G y - kill, trapezoidal
    gain *= traits.growth_rate
    gain *= 0.5
    y *= 1.0 - gain
    if not (np.isscalar(kill) and kill == 0.0):
        y -= kill
    gain += 1.0
    y /= gain
    return Signals(burden=burden, pthrp=pthrp, osteoclast=osteoclast, tgf_beta=tgf)


def rates(
    w: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    traits: LesionTraits,
    recruitment: np.ndarray,
    pthrp_keep: float,
    tgf_beta_keep: float,
    kill: float,
    params: Parameters,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-hand side ``(dw/dt, dy/dt, dZ/dt)`` of the lesion equations (for reference solvers)."""
    burden = np.exp(y)
    half = burden / (burden + params.tumour_signal_half_burden)
    pthrp = traits.pthrp * half * pthrp_keep
    x = recruitment * (1.0 + params.rankl_per_pthrp * pthrp) * (1.0 + params.opg_per_pthrp * pthrp)
    v = np.sqrt(w)
    osteoclast = x**2 / v
    b = params.osteoblast_rate
    dw = 2.0 * b * (x**2 * (1.0 + traits.osteoblast_drive * half) - (1.0 + traits.osteoblast_suppression * half) * w)
    dz = params.bone_turnover_rate * (v**0.375 - np.sqrt(osteoclast) * z)
    excess = np.maximum(tgf_beta_keep * osteoclast * z - 1.0, 0.0)
    gain = 1.0 + np.minimum(params.tgf_beta_growth_gain * excess, params.tgf_beta_growth_max)
    dy = -traits.growth_rate * gain * y - kill
    return dw, dy, dz


def effective_bone(z: np.ndarray, params: Parameters) -> np.ndarray:
    """Bone mass that counts for strength: woven bone above healthy mass counts only in part."""
    excess = np.maximum(z - 1.0, 0.0)
    return z - (1.0 - params.woven_bone_strength) * excess


def strength(z: np.ndarray, burden: np.ndarray, params: Parameters) -> np.ndarray:
    """Relative strength ``s = Z_eff**2 (1 - c T)`` (density-squared law; tumour replaces bone)."""
    return np.square(effective_bone(z, params)) * (1.0 - params.strength_tumour_loss * burden)
