"""Pharmacokinetics at the patient and pharmacodynamic inputs of the lesion model.

Every patient of an arm follows the same schedule from randomisation (day 0), so exposure is a
function of the day since randomisation shared by the arm, times a per-patient scale where a
covariate matters (the bisphosphonate dose and bone uptake depend on creatinine clearance).
Exposure is precomputed once per schedule on the daily grid by closed-form superposition of
single-dose kernels, evaluated at mid-day, and kept as running sums so that the mean over any
step is one subtraction (the lesion step holds its inputs at their step means).

The lesion model receives these patient-level inputs per step (:class:`StepInputs`):

* ``recruitment``: the osteoclast-recruitment factor ``(1 + Q)(1 - I_RANKL)/(1 + E_OC)``,
  and the mean of its square, where ``I_RANKL`` is RANKL inhibition (denosumab Emax, Doshi 2012), ``E_OC`` extra
  osteoclast loss (bisphosphonate Emax of the bone-surface pool) and ``Q`` the precursor
  reserve that accumulates under RANKL blockade and is released when it ends — the clinical
  rebound of resorption above baseline after stopping denosumab (bone-turnover markers
  overshoot baseline within months of the missed dose; multiple vertebral fractures after
  discontinuation, Cummings 2018; osteoclasts recycle via osteomorphs, McDonald 2021).
* ``pthrp_keep``, ``tgf_beta_keep``: fractions of tumour PTHrP and matrix TGF-beta signalling
  left by a custom agent; ``kill``: its tumour kill rate (1/day).
* ``suppression``: systemic resorption suppression ``1 - (1 - I_RANKL)/(1 + E_OC)`` in [0, 1)
  used by the adverse-event and seeding hazards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrial.model.parameters import Parameters
from vtrial.vocabulary import DAYS_PER_MONTH

#: Label dose reduction of zoledronic acid by creatinine clearance (mL/min), Zometa label.
ZA_RENAL_BOUNDS = np.array([30.0, 40.0, 50.0, 60.0])
ZA_RENAL_DOSE_MG = np.array([0.0, 3.0, 3.3, 3.5, 4.0])
#: Exposure of a zoledronic acid dose scaled so the label dose at CrCl 75 gives this AUC.
ZA_REFERENCE_AUC_MG_H_L = 0.66
CUSTOM_FRACTION_CAP = 0.99


@dataclass(frozen=True)
class StepInputs:
    """Patient-level inputs of the lesion model, means over a step (arrays ``[n]`` or scalars)."""

    recruitment: np.ndarray
    recruitment_sq: np.ndarray
    pthrp_keep: float
    tgf_beta_keep: float
    kill: float
    suppression: np.ndarray


def dosing_days(arm: Any, n_days: int) -> np.ndarray:
    """Days of administration: every ``every_weeks`` from day 0, until ``stop_after_months``."""
    if arm.drug == "none" or not arm.every_weeks:
        return np.empty(0)
    stop = n_days if arm.stop_after_months is None else min(n_days, arm.stop_after_months * DAYS_PER_MONTH)
    return np.arange(0.0, stop, 7.0 * arm.every_weeks)


def zoledronic_acid_dose(dose_mg: float, crcl_ml_min: np.ndarray, renal_adjustment: bool) -> np.ndarray:
    """Dose per infusion (mg): the label table by CrCl scaled to ``dose_mg``; withheld below 30."""
    crcl = np.asarray(crcl_ml_min, dtype=float)
    if not renal_adjustment:
        return np.full(crcl.shape, float(dose_mg))
    # bands >60, 50-60, 40-49, 30-39, <30 (the 50-60 band includes 60)
    band = np.searchsorted(ZA_RENAL_BOUNDS[:3], crcl, side="right") + (crcl > ZA_RENAL_BOUNDS[3])
    return ZA_RENAL_DOSE_MG[band] * (dose_mg / 4.0)


def zoledronic_acid_clearance_l_h(crcl_ml_min: np.ndarray, params: Parameters) -> tuple[np.ndarray, np.ndarray]:
    """Non-renal (bone uptake) and renal clearance (L/h); the label dose table implies their sum."""
    renal = params.zoledronic_acid_renal_slope_l_h * np.asarray(crcl_ml_min, dtype=float)
    return np.full(renal.shape, params.zoledronic_acid_nonrenal_clearance_l_h), renal


def denosumab_concentration(days: np.ndarray, dose_mg: float, grid: np.ndarray, params: Parameters) -> np.ndarray:
    """Serum denosumab (mg/L) on ``grid``: superposed 1-compartment first-order-absorption doses."""
    ka = params.denosumab_absorption_rate
    ke = np.log(2.0) / params.denosumab_half_life_days
    scale = dose_mg * params.denosumab_bioavailability * ka / (params.denosumab_volume_l * (ka - ke))
    since = grid[None, :] - days[:, None]
    after = since > 0
    since = np.where(after, since, 0.0)
    return scale * np.sum(np.where(after, np.exp(-ke * since) - np.exp(-ka * since), 0.0), axis=0)


def pool_kernel(days: np.ndarray, half_life_days: float, grid: np.ndarray) -> np.ndarray:
    """Bone-surface pool per unit deposited dose on ``grid``: superposed first-order release."""
    since = grid[None, :] - days[:, None]
    decay = np.exp(-np.log(2.0) / half_life_days * np.maximum(since, 0.0))
    return np.sum(np.where(since > 0, decay, 0.0), axis=0)


def emax_effect(amount: np.ndarray, emax: float, ec50: float, hill: float) -> np.ndarray:
    """Sigmoid Emax of a pool amount."""
    a = np.power(np.maximum(amount, 0.0) / ec50, hill)
    return emax * a / (1.0 + a)


def custom_exposure(days: np.ndarray, half_life_days: float, grid: np.ndarray) -> np.ndarray:
    """Exposure in [0, 1] of a custom agent: full at each dose, halving every ``half_life_days``."""
    if days.size == 0:
        return np.zeros(grid.shape)
    last = np.searchsorted(days, grid, side="right") - 1
    since = grid - days[np.maximum(last, 0)]
    return np.where(last >= 0, np.exp(-np.log(2.0) / half_life_days * since), 0.0)


def precursor_reserve(rankl_inhibition: np.ndarray, params: Parameters) -> np.ndarray:
    """Osteoclast-precursor reserve ``Q`` under a RANKL-inhibition time course (exact per day).

    ``dQ/dt = a I (1 - Q/Qmax) - r (1 - I) Q``: it fills while RANKL is blocked and empties
    into osteoclast recruitment when signalling returns (the post-denosumab rebound).
    """
    qmax = params.precursor_reserve_max
    reserve = np.zeros(rankl_inhibition.shape)
    if qmax == 0.0:
        return reserve
    a, r = params.precursor_accumulation_rate, params.precursor_release_rate
    q = 0.0
    for day, inhibition in enumerate(rankl_inhibition):
        rate = a * inhibition / qmax + r * (1.0 - inhibition)
        target = a * inhibition / rate
        q = target + (q - target) * np.exp(-rate)
        reserve[day] = q
    return reserve


class Exposure:
    """Drug exposure of one arm for one block of patients on the daily grid.

    Parameters
    ----------
    arm : protocol arm (duck-typed: ``drug, dose_mg, every_weeks, stop_after_months,
        renal_adjustment, mechanism``)
    creatinine_clearance_ml_min : float array [n]
    n_days : int
        Length of the daily grid (days since randomisation); values on a day do not depend on it.
    params : Parameters
    """

    def __init__(self, arm: Any, creatinine_clearance_ml_min: np.ndarray, n_days: int, params: Parameters) -> None:
        self.drug = arm.drug
        n = creatinine_clearance_ml_min.shape[0]
        grid = np.arange(n_days) + 0.5
        self.dose_days = dosing_days(arm, n_days)
        self.n_days = n_days
        #: shared time courses [n_days]
        self.rankl_inhibition = np.zeros(n_days)
        self._oc_kernel = np.zeros(n_days)
        self._oc_fraction = np.zeros(n_days)
        self._pthrp_keep = np.ones(n_days)
        self._tgf_keep = np.ones(n_days)
        self._kill = np.zeros(n_days)
        #: per-patient scale of the bone pool and exposure per infusion (AUC relative to label)
        self._pool_scale = np.zeros(n)
        self.relative_auc = np.zeros(n)
        self._emax = self._ec50 = 0.0
        crcl = creatinine_clearance_ml_min
        if self.drug == "denosumab":
            conc = denosumab_concentration(self.dose_days, float(arm.dose_mg), grid, params)
            self.rankl_inhibition = params.denosumab_imax * conc / (conc + params.denosumab_ic50_mg_l)
        elif self.drug == "zoledronic_acid":
            dose = zoledronic_acid_dose(float(arm.dose_mg), crcl, bool(arm.renal_adjustment))
            uptake, renal = zoledronic_acid_clearance_l_h(crcl, params)
            self._pool_scale = dose * uptake / (uptake + renal)
            self.relative_auc = dose / (uptake + renal) / ZA_REFERENCE_AUC_MG_H_L
            self._oc_kernel = pool_kernel(self.dose_days, params.zoledronic_acid_pool_half_life_days, grid)
            self._emax, self._ec50 = params.zoledronic_acid_emax, params.zoledronic_acid_ec50_mg
        elif self.drug == "pamidronate":
            dose = np.full(n, float(arm.dose_mg))
            self._pool_scale = dose * params.pamidronate_bone_fraction
            clearance = params.pamidronate_clearance_l_h * np.maximum(crcl, 1.0) / 75.0
            self.relative_auc = dose / clearance / (90.0 / params.pamidronate_clearance_l_h)
            self._oc_kernel = pool_kernel(self.dose_days, params.pamidronate_pool_half_life_days, grid)
            self._emax, self._ec50 = params.pamidronate_emax, params.pamidronate_ec50_mg
        elif self.drug == "custom":
            m = arm.mechanism
            e = custom_exposure(self.dose_days, float(m.half_life_days), grid)
            cap = CUSTOM_FRACTION_CAP
            self.rankl_inhibition = min(float(m.rankl_inhibition), cap) * e
            self._oc_fraction = min(float(m.osteoclast_inhibition), cap) * e
            self._pthrp_keep = 1.0 - min(float(m.pthrp_inhibition), 1.0) * e
            self._tgf_keep = 1.0 - min(float(m.tgf_beta_inhibition), 1.0) * e
            # tumour_kill: fraction of the burden removed per 28 days at full exposure
            self._kill = -np.log1p(-min(float(m.tumour_kill), cap)) / 28.0 * e
        elif self.drug != "none":
            raise ValueError(f"unknown drug {self.drug!r}")
        self._hill = params.bisphosphonate_hill
        self.reserve = precursor_reserve(self.rankl_inhibition, params)
        day_of_dose = np.floor(self.dose_days).astype(np.int64)
        #: dose number given on each day (-1 on days without a dose)
        self.dose_number = np.full(n_days, -1, dtype=np.int64)
        self.dose_number[day_of_dose[day_of_dose < n_days]] = np.arange(day_of_dose.size)
        # shared recruitment (1 + Q)(1 - I)(1 - f), its square, (1 - I)(1 - f), custom inputs and the
        # pool kernel as running sums over the daily grid: the mean over any days is a difference
        free = (1.0 - self.rankl_inhibition) * (1.0 - self._oc_fraction)
        shared = (1.0 + self.reserve) * free
        daily = np.stack([shared, shared**2, free, self._pthrp_keep, self._tgf_keep, self._kill, self._oc_kernel])
        self._running = np.concatenate([np.zeros((daily.shape[0], 1)), np.cumsum(daily, axis=1)], axis=1)

    def step_grid(self, step_days: int) -> np.ndarray:
        """Step boundaries (days): every ``step_days`` from day 0, every dose day, and the last day."""
        regular = np.arange(0, self.n_days, step_days)
        doses = np.flatnonzero(self.dose_number >= 0)
        return np.union1d(np.union1d(regular, doses), [self.n_days])

    def inputs(self, start: int, end: int, patients: np.ndarray) -> StepInputs:
        """Mean inputs of the lesion model over days ``start .. end - 1`` for the given patient indices.

        Shared time courses are averaged exactly; the bisphosphonate effect is that of the
        step's mean pool (the pool decays with a half-life of months, and doses fall on step starts).
        """
        mean = (self._running[:, end] - self._running[:, start]) / (end - start)
        shared, shared_sq, free, pthrp_keep, tgf_keep, kill, kernel = mean
        if self._emax:
            keep = 1.0 / (1.0 + emax_effect(self._pool_scale[patients] * kernel, self._emax, self._ec50, self._hill))
        else:
            keep = np.ones(patients.shape)
        return StepInputs(
            recruitment=shared * keep,
            recruitment_sq=shared_sq * np.square(keep),
            pthrp_keep=float(pthrp_keep),
            tgf_beta_keep=float(tgf_keep),
            kill=float(kill),
            suppression=1.0 - free * keep,
        )

