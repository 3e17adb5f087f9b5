"""Drug exposure of an arm: the combination of its agents' time courses, and the lesion model's inputs.

Every patient of an arm follows the same schedule from randomisation (day 0), so exposure is a
function of the day since randomisation shared by the arm, times a per-patient scale where a
covariate matters (the bisphosphonate dose and bone uptake depend on creatinine clearance).
An arm's exposure is a list of :class:`~vtrial.model.agents.Administration` (an agent on a
dosing schedule at a dose; one per arm today): each agent module turns its administration into
daily time courses (:meth:`~vtrial.model.agents.Agent.course`, closed-form superposition of
single-dose kernels at mid-day), and :class:`Exposure` combines them here, once per arm and
block, into running sums so that the mean over any step is one subtraction (the lesion step
holds its inputs at their step means).

Combination: independent action for the fractions removed (RANKL inhibition ``1 - prod(1 - I_a)``,
osteoclast fraction likewise), products for the signalling kept, sums for the kill rates and for
the extra osteoclast loss of the bone pools (``1/(1 + sum E_a)``); dose-day impulses (renal
exposure, acute phase) add per day. With one administration each is that agent's own course.

The lesion model receives these patient-level inputs per step (:class:`StepInputs`):

* ``recruitment``: the osteoclast-recruitment factor ``(1 + Q)(1 - I_RANKL)(1 - f)/(1 + E_OC)``,
  and the mean of its square, where ``I_RANKL`` is RANKL inhibition (denosumab Emax, Doshi 2012),
  ``f`` a custom agent's osteoclast fraction, ``E_OC`` extra osteoclast loss (bisphosphonate Emax
  of the bone-surface pool) and ``Q`` the precursor reserve that accumulates under RANKL blockade
  and is released when it ends — the clinical rebound of resorption above baseline after stopping
  denosumab (bone-turnover markers overshoot baseline within months of the missed dose; multiple
  vertebral fractures after discontinuation, Cummings 2018; osteoclasts recycle via osteomorphs,
  McDonald 2021).
* ``pthrp_keep``, ``tgf_beta_keep``: fractions of tumour PTHrP and matrix TGF-beta signalling
  left by a custom agent; ``kill``: its tumour kill rate (1/day).
* ``formation_kill``: tumour kill rate (1/day) of bone-seeking agents (radium-223) at healthy bone
  formation; the simulation scales it by each lesion's formation. ``marrow_dose_rate``: their
  dose rate to the marrow (activity in bone, kBq/kg), for haematological toxicity.
* ``suppression``: systemic resorption suppression ``1 - (1 - I_RANKL)(1 - f)/(1 + E_OC)`` in [0, 1)
  used by the adverse-event and seeding hazards.
* ``homing_keep``: fraction of tumour-cell homing to bone left, ``prod(1 - h_a)``: the new-lesion
  seeding hazard's homing node (1 untreated).
* ``cells`` (:class:`~vtrial.model.lesion.CellInputs`): fractions of the blastic osteoblast drive
  and of tumour IL-6 signalling left (products of ``1 - fraction``), and the osteoblast production
  ``1 + g (1 - prod(1 - s_a))`` of bone-formation stimulation ``s`` (``g`` =
  ``osteoblast_stimulation_max``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from vtrial.model.agents import AGENTS, Administration, Course
from vtrial.model.agents.pk import emax_effect
from vtrial.model.lesion import NO_CELL_INPUTS, CellInputs
from vtrial.model.parameters import Parameters
from vtrial.protocol import DOSE_FIELDS
from vtrial.vocabulary import DAYS_PER_MONTH


@dataclass(frozen=True)
class StepInputs:
    """Patient-level inputs of the lesion model, means over a step (arrays ``[n]`` or scalars)."""

    recruitment: np.ndarray
    recruitment_sq: np.ndarray
    pthrp_keep: float
    tgf_beta_keep: float
    kill: float
    suppression: np.ndarray
    formation_kill: float
    marrow_dose_rate: float
    #: version-2 nodes: homing to bone left (seeding), osteoblast and IL-6 inputs of the lesion model
    homing_keep: float = 1.0
    cells: CellInputs = NO_CELL_INPUTS


@dataclass(frozen=True)
class DoseImpulses:
    """What the doses given on one day bring to the adverse-event hazards."""

    #: exposure (AUC) relative to the label, summed over that day's doses, per patient (renal toxicity)
    relative_auc: np.ndarray
    #: cumulative hazard of an acute-phase reaction
    acute_phase: float


def dosing_days(arm: Any, n_days: int) -> np.ndarray:
    """Days of administration: every ``every_weeks`` from day 0, until ``stop_after_months``, at most ``doses``."""
    if not AGENTS[arm.drug].dosed or not arm.every_weeks:
        return np.empty(0)
    stop = n_days if arm.stop_after_months is None else min(n_days, arm.stop_after_months * DAYS_PER_MONTH)
    return np.arange(0.0, stop, 7.0 * arm.every_weeks)[: getattr(arm, "doses", None)]


def arm_administrations(arm: Any, n_days: int) -> list[Administration]:
    """The administrations of a protocol arm (duck-typed: ``drug, dose_mg, every_weeks,
    stop_after_months, renal_adjustment, mechanism``, optionally ``doses`` and ``dose_kbq_per_kg``):
    its one agent on its schedule, at the dose of the agent's unit."""
    agent = AGENTS[arm.drug]
    dose = getattr(arm, DOSE_FIELDS[agent.dose_unit], None)
    return [Administration(agent, dosing_days(arm, n_days), dose, bool(arm.renal_adjustment), arm.mechanism)]


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


def _running_sums(daily: np.ndarray) -> np.ndarray:
    """Running sums ``[rows, n_days + 1]`` of daily rows (0 first): the mean over any days is one difference."""
    return np.concatenate([np.zeros((daily.shape[0], 1)), np.cumsum(daily, axis=1)], axis=1)


def _independent(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction removed by two independent actions: ``1 - (1 - a)(1 - b)``."""
    return a + b - a * b


class Exposure:
    """Drug exposure of one arm for one block of patients on the daily grid.

    Parameters
    ----------
    administrations : sequence of Administration
        The agents given and their schedules (see :func:`arm_administrations`).
    creatinine_clearance_ml_min : float array [n]
    n_days : int
        Length of the daily grid (days since randomisation); values on a day do not depend on it.
    params : Parameters
    """

    def __init__(self, administrations: Sequence[Administration], creatinine_clearance_ml_min: np.ndarray,
                 n_days: int, params: Parameters) -> None:
        n = creatinine_clearance_ml_min.shape[0]
        grid = np.arange(n_days) + 0.5
        self.n_days = n_days
        courses = [a.agent.course(a, creatinine_clearance_ml_min, grid, params) for a in administrations]
        courses = courses or [Course.neutral(n, n_days)]
        #: shared RANKL inhibition [n_days]
        self.rankl_inhibition = reduce(_independent, [c.rankl_inhibition for c in courses])
        oc_fraction = reduce(_independent, [c.osteoclast_fraction for c in courses])
        pthrp_keep = reduce(np.multiply, [c.pthrp_keep for c in courses])
        tgf_keep = reduce(np.multiply, [c.tgf_beta_keep for c in courses])
        kill = reduce(np.add, [c.kill for c in courses])
        formation_kill = sum((c.formation_kill for c in courses if c.formation_kill is not None), np.zeros(n_days))
        marrow = sum((c.marrow_dose_rate for c in courses if c.marrow_dose_rate is not None), np.zeros(n_days))
        self._pools = [c.pool for c in courses if c.pool is not None]
        self.reserve = precursor_reserve(self.rankl_inhibition, params)
        self._later_ratio = params.acute_phase_later_ratio
        # per administration: dose number given on each day (-1 on days without one), AUC, acute phase
        self._doses = []
        for a, c in zip(administrations, courses):
            day_of_dose = np.floor(a.days).astype(np.int64)
            number = np.full(n_days, -1, dtype=np.int64)
            number[day_of_dose[day_of_dose < n_days]] = np.arange(day_of_dose.size)
            self._doses.append((number, c.relative_auc, c.acute_phase_first_dose))
        #: days of the grid on which some administration gives a dose
        self.dose_days = np.flatnonzero(reduce(np.logical_or, [d[0] >= 0 for d in self._doses], np.zeros(n_days, bool)))
        # shared recruitment (1 + Q)(1 - I)(1 - f), its square, (1 - I)(1 - f), custom inputs and the
        # pool kernels as running sums over the daily grid: the mean over any days is a difference
        free = (1.0 - self.rankl_inhibition) * (1.0 - oc_fraction)
        shared = (1.0 + self.reserve) * free
        daily = np.stack([shared, shared**2, free, pthrp_keep, tgf_keep, kill, formation_kill, marrow]
                         + [p.kernel for p in self._pools])
        self._running = _running_sums(daily)
        # version-2 nodes, kept: homing, osteoblast drive, osteoblast production, IL-6
        kept = [reduce(np.multiply, [1.0 - np.broadcast_to(getattr(c, name), n_days) for c in courses])
                for name in ("homing_inhibition", "osteoblast_drive_inhibition", "formation_stimulation",
                             "il6_inhibition")]
        kept[2] = 1.0 + params.osteoblast_stimulation_max * (1.0 - kept[2])
        self._cells_running = _running_sums(np.stack(kept))

    def step_grid(self, step_days: int) -> np.ndarray:
        """Step boundaries (days): every ``step_days`` from day 0, every dose day, and the last day."""
        regular = np.arange(0, self.n_days, step_days)
        return np.union1d(np.union1d(regular, self.dose_days), [self.n_days])

    def impulses(self, day: int, patients: np.ndarray) -> DoseImpulses | None:
        """What the doses of ``day`` bring to the given patients' adverse-event hazards (None: no dose)."""
        given = [(int(number[day]), auc, first) for number, auc, first in self._doses if number[day] >= 0]
        if not given:
            return None
        return DoseImpulses(
            relative_auc=sum(auc[patients] for _, auc, _ in given),
            acute_phase=sum(first * (1.0 if k == 0 else self._later_ratio) for k, _, first in given),
        )

    def inputs(self, start: int, end: int, patients: np.ndarray) -> StepInputs:
        """Mean inputs of the lesion model over days ``start .. end - 1`` for the given patient indices.

        Shared time courses are averaged exactly; a bone pool's effect is that of the step's mean
        pool (the pool decays with a half-life of months, and doses fall on step starts).
        """
        mean = (self._running[:, end] - self._running[:, start]) / (end - start)
        shared, shared_sq, free, pthrp_keep, tgf_keep, kill, formation_kill, marrow = mean[:8]
        homing, drive_keep, production, il6_keep = (
            self._cells_running[:, end] - self._cells_running[:, start]) / (end - start)
        if self._pools:
            extra_loss = reduce(np.add, [
                emax_effect(pool.scale[patients] * kernel, pool.emax, pool.ec50, pool.hill)
                for pool, kernel in zip(self._pools, mean[8:])
            ])
            keep = 1.0 / (1.0 + extra_loss)
        else:
            keep = np.ones(patients.shape)
        return StepInputs(
            recruitment=shared * keep,
            recruitment_sq=shared_sq * np.square(keep),
            pthrp_keep=float(pthrp_keep),
            tgf_beta_keep=float(tgf_keep),
            kill=float(kill),
            suppression=1.0 - free * keep,
            formation_kill=float(formation_kill),
            marrow_dose_rate=float(marrow),
            homing_keep=float(homing),
            cells=CellInputs(float(drive_keep), float(production), float(il6_keep)),
        )

    @classmethod
    def of_arm(cls, arm: Any, creatinine_clearance_ml_min: np.ndarray, n_days: int, params: Parameters) -> Exposure:
        """The exposure of a protocol arm (see :func:`arm_administrations`)."""
        return cls(arm_administrations(arm, n_days), creatinine_clearance_ml_min, n_days, params)
