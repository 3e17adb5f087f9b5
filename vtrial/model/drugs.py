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

Between-patient variability (PK and PD): patient ``i`` has a potency ``k_i = exp(s_PK z_1 + s_PD z_2)``
(log-normal, median 1; ``s = sqrt(ln(1 + CV**2))`` of the agent's ``Course.exposure_cv`` and of
``drug_sensitivity_cv``; ``z`` standard normal draws of the ``heterogeneity`` stream purpose).
It multiplies the bone pool reaching the Emax (exact: the pool is linear in the dose, and a
lower EC50 is a larger pool), and it scales the concentration behind RANKL inhibition: the
shared step mean ``I`` (Imax law ``I = Imax c/(1 + c)``, ``c`` the concentration over IC50) gives
``c = I/(Imax - I)`` and the patient's ``I_i = Imax k_i c/(1 + k_i c)``, so its recruitment is the
shared one times ``(1 - I_i)/(1 - I)``. The shared daily arrays and the precursor reserve stay
shared; the factors cost O(patients) per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import reduce
from typing import Any, overload

import numpy as np

from vtrial.model.agents import AGENTS, Administration, Course
from vtrial.model.agents.base import BonePool
from vtrial.model.agents.pk import emax_effect
from vtrial.model.lesion import NO_CELL_INPUTS, CellInputs
from vtrial.model.parameters import Parameters, log_sd
from vtrial.model.types import ArmLike, Scheduled
from vtrial.protocol import DOSE_FIELDS
from vtrial.vocabulary import DAYS_PER_MONTH


@dataclass(frozen=True)
class StepInputs:
    """Patient-level inputs of the lesion model, means over a step (arrays ``[n]`` or scalars).

    ``pthrp_keep``, ``tgf_beta_keep`` and ``kill`` are shared floats, or arrays ``[n]`` when some
    patients missed doses (:meth:`Exposure.withhold`).
    """

    recruitment: np.ndarray
    recruitment_sq: np.ndarray
    pthrp_keep: float | np.ndarray
    tgf_beta_keep: float | np.ndarray
    kill: float | np.ndarray
    suppression: np.ndarray
    formation_kill: float
    marrow_dose_rate: float
    #: version-2 nodes: homing to bone left (seeding), osteoblast and IL-6 inputs of the lesion model
    homing_keep: float = 1.0
    cells: CellInputs = NO_CELL_INPUTS
    #: the bone pools' extra osteoclast loss ``E`` per patient (0: no bisphosphonate), already in ``recruitment``
    #: as ``1/(1 + E)``: the lesions' RANKL offsets part of it (:func:`vtrial.model.lesion.advance`)
    pool_loss: float | np.ndarray = 0.0


@dataclass(frozen=True)
class DoseImpulses:
    """What the doses given on one day bring to the adverse-event hazards."""

    #: exposure (AUC) relative to the label, summed over that day's doses, per patient (renal toxicity)
    relative_auc: np.ndarray
    #: cumulative hazard of an acute-phase reaction (per patient when some missed the dose)
    acute_phase: float | np.ndarray


def dosing_days(arm: ArmLike, n_days: int) -> np.ndarray:
    """Days of administration: every ``every_weeks`` from day 0, until ``stop_after_months``, at most ``doses``."""
    if not AGENTS[arm.drug].dosed or not arm.every_weeks:
        return np.empty(0)
    stop = n_days if arm.stop_after_months is None else min(n_days, arm.stop_after_months * DAYS_PER_MONTH)
    return np.arange(0.0, stop, 7.0 * arm.every_weeks)[: getattr(arm, "doses", None)]


def arm_administrations(arm: ArmLike, n_days: int, prior: Scheduled | None = None) -> list[Administration]:
    """The administrations of a protocol arm, after those of a prior treatment (days before 0).

    The schedule is ``arm.dosing_plan()`` (phases, holidays, concurrent agents; an arm without
    it, duck-typed ``drug, dose_mg, every_weeks, stop_after_months``, is its one drug) and
    ``prior.dosing_plan()``. Phases of one agent at one dose form one administration (a
    de-escalation, a restart, the prior course continued on study), so its doses superpose in
    one exposure; ``renal_adjustment`` and ``mechanism`` are the arm's.
    """
    if hasattr(arm, "dosing_plan"):
        plan = [(p.agent, p.dose, p.administration_days(n_days)) for p in arm.dosing_plan()]
    else:
        plan = [(arm.drug, getattr(arm, DOSE_FIELDS[AGENTS[arm.drug].dose_unit], None), dosing_days(arm, n_days))]
    if prior is not None:
        plan = [(p.agent, p.dose, p.administration_days(n_days)) for p in prior.dosing_plan()] + plan
    days: dict[tuple[str, float | None], list[np.ndarray]] = {}
    for agent, dose, given in plan:
        days.setdefault((agent, dose), []).append(given)
    return [
        Administration(AGENTS[agent], np.sort(np.concatenate(given)), dose, bool(arm.renal_adjustment), arm.mechanism)
        for (agent, dose), given in days.items()
    ]


def precursor_reserve(
    rankl_inhibition: np.ndarray, params: Parameters, known: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Osteoclast-precursor reserve ``Q`` under a RANKL-inhibition time course (exact per day).

    ``dQ/dt = a I (1 - Q/Qmax) - r (1 - I) Q``: it fills while RANKL is blocked and empties
    into osteoclast recruitment when signalling returns (the post-denosumab rebound).
    ``known`` is another course ``(inhibition, reserve)`` on the same grid (the arm's, for a
    patient who missed doses): the days before the courses differ are copied from it, and the
    day-by-day recurrence runs from the first day they differ only.
    """
    qmax = params.precursor_reserve_max
    reserve = np.zeros(rankl_inhibition.shape)
    if qmax == 0.0 or not rankl_inhibition.any():
        return reserve  # no blockade: the reserve stays empty
    first = 0
    if known is not None:
        differ = np.flatnonzero(rankl_inhibition != known[0])
        if differ.size == 0:
            return known[1]
        first = int(differ[0])
        reserve[:first] = known[1][:first]
    a, r = params.precursor_accumulation_rate, params.precursor_release_rate
    q = float(reserve[first - 1]) if first else 0.0
    # the rates, targets and decays of the days at once (the same float64 operations as day by day); the
    # recurrence itself runs over the days
    inhibition = rankl_inhibition[first:]
    rate = a * inhibition / qmax + r * (1.0 - inhibition)
    target = a * inhibition / rate
    decay = np.exp(-rate)
    values = []
    for aim, keep in zip(target.tolist(), decay.tolist()):
        q = aim + (q - aim) * keep
        values.append(q)
    reserve[first:] = values
    return reserve


def _running_sums(daily: np.ndarray) -> np.ndarray:
    """Running sums ``[rows, n_days + 1]`` of daily rows (0 first): the mean over any days is one difference."""
    return np.concatenate([np.zeros((daily.shape[0], 1)), np.cumsum(daily, axis=1)], axis=1)


def _independent(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction removed by two independent actions: ``1 - (1 - a)(1 - b)``."""
    return a + b - a * b


class Exposure:
    """Drug exposure of one arm for one block of patients on the daily grid.

    The grid starts ``history_days`` before randomisation when an administration has doses
    before day 0 (a prior treatment), so that pools, concentrations and the precursor reserve
    enter day 0 with their history; every method takes days since randomisation.

    Per-patient dose masks (:meth:`withhold`: the label rules after osteonecrosis of the jaw or
    renal deterioration) give a patient a *variant* of the arm's courses: the same
    administrations without the doses it missed, computed by the agents like the arm's own
    (exact for any kernel, linear or not) once per distinct set of missed doses and shared by
    the patients who missed the same doses. Before its first missed dose a variant equals the
    arm's course, so a patient switches variant at no discontinuity.

    Parameters
    ----------
    administrations : sequence of Administration
        The agents given and their schedules (see :func:`arm_administrations`).
    creatinine_clearance_ml_min : float array [n]
    n_days : int
        Length of the daily grid after randomisation; values on a day do not depend on it.
    params : Parameters
    potency_z : float array [n, 2], optional
        Standard normal draws of the patients' exposure and sensitivity (see the module docstring);
        ``None``: every patient has the typical potency.
    """

    def __init__(
        self,
        administrations: Sequence[Administration],
        creatinine_clearance_ml_min: np.ndarray,
        n_days: int,
        params: Parameters,
        potency_z: np.ndarray | None = None,
    ) -> None:
        n = creatinine_clearance_ml_min.shape[0]
        first_days = [float(a.days[0]) for a in administrations if a.days.size]
        #: days of exposure history before randomisation on the grid
        self.history_days = int(np.ceil(max(0.0, -min(first_days, default=0.0))))
        self.n_days = n_days
        self._grid = np.arange(-self.history_days, n_days) + 0.5
        self._administrations = list(administrations)
        #: no administration gives a drug (placebo): every step's inputs are exactly those of no drug (means of 1)
        self.untreated = not any(a.agent.dosed for a in self._administrations)
        self._crcl, self._params = creatinine_clearance_ml_min, params
        courses = self._courses(self._administrations)
        self._arm_courses = courses
        #: per administration: whether it suppresses resorption (stopped after ONJ) / is nephrotoxic (held)
        self._antiresorptive = [
            c.pool is not None or bool(c.rankl_inhibition.any() or c.osteoclast_fraction.any()) for c in courses
        ]
        self._nephrotoxic = [bool(np.any(c.relative_auc > 0.0)) for c in courses]
        self._pools = [
            (a.agent.name, c.pool, _potency(potency_z, c.exposure_cv, params))
            for a, c in zip(self._administrations, courses)
            if c.pool is not None
        ]
        rankl = [c for c in courses if c.rankl_imax > 0.0]
        #: per patient: RANKL-inhibition potency and the Imax it acts under (None: no Imax agent)
        self._rankl = (
            None
            if not rankl or potency_z is None
            else (_potency(potency_z, max(c.exposure_cv for c in rankl), params), max(c.rankl_imax for c in rankl))
        )
        #: shared RANKL inhibition and precursor reserve on the grid (from ``-history_days``)
        self.rankl_inhibition, self.reserve, running = self._combine(courses)
        # variants: running sums, and per administration the doses given (None: all); 0 is the arm's
        self._running = running[None]  # [variant, input, grid day]; spare capacity for more variants
        self._n_variants = 1
        self._given: list[list[np.ndarray] | None] = [None]
        self._variant_key = {self._key([np.ones(a.days.size, bool) for a in self._administrations]): 0}
        self._variant_of = np.zeros(n, np.int64)
        self._later_ratio = params.acute_phase_later_ratio
        # per administration: dose number of the agent given on each day (-1 on days without one;
        # counted over the agent's administrations, so a prior course makes day 0 a later dose),
        # first number, AUC, acute phase
        self._doses = []
        counted: dict[str, int] = {}
        n_grid = self._grid.shape[0]
        for a, c in zip(self._administrations, courses):
            day_of_dose = np.floor(a.days).astype(np.int64) + self.history_days
            number = np.full(n_grid, -1, dtype=np.int64)
            offset = counted.get(a.agent.name, 0)
            number[day_of_dose[day_of_dose < n_grid]] = offset + np.arange(day_of_dose.size)[day_of_dose < n_grid]
            counted[a.agent.name] = offset + day_of_dose.size
            self._doses.append((number, offset, c.relative_auc, c.acute_phase_first_dose))
        any_dose = reduce(np.logical_or, [d[0] >= 0 for d in self._doses], np.zeros(n_grid, bool))
        #: days of the grid on which some administration gives a dose (before day 0 negative)
        self.dose_days = np.flatnonzero(any_dose) - self.history_days
        # the nodes the label rules do not touch, on the arm's schedule: a bone-seeking agent's kill
        # at healthy formation and marrow dose rate, and the version-2 nodes kept (homing to bone,
        # blastic osteoblast drive, osteoblast production, tumour IL-6)
        n_grid_days = self._grid.shape[0]
        formation_kill = sum((c.formation_kill for c in courses if c.formation_kill is not None), np.zeros(n_grid_days))
        marrow = sum((c.marrow_dose_rate for c in courses if c.marrow_dose_rate is not None), np.zeros(n_grid_days))
        kept = [
            reduce(np.multiply, [1.0 - np.broadcast_to(getattr(c, name), n_grid_days) for c in courses])
            for name in ("homing_inhibition", "osteoblast_drive_inhibition", "formation_stimulation", "il6_inhibition")
        ]
        kept[2] = 1.0 + params.osteoblast_stimulation_max * (1.0 - kept[2])
        self._node_running = _running_sums(np.stack([formation_kill, marrow, *kept]))
        #: whether an agent of the arm doses the marrow (haematological toxicity can arise)
        self.marrow_dosed = bool(np.any(marrow > 0.0))

    def _courses(self, administrations: Sequence[Administration]) -> list[Course]:
        """The agents' daily courses of the administrations on the grid."""
        courses = [a.agent.course(a, self._crcl, self._grid, self._params) for a in administrations]
        return courses or [Course.neutral(self._crcl.shape[0], self._grid.shape[0])]

    def _combine(
        self, courses: Sequence[Course], first: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RANKL inhibition, precursor reserve and the running sums of the combined daily inputs.

        Running sums over the grid of the shared recruitment ``(1 + Q)(1 - I)(1 - f)``, its
        square, ``(1 - I)(1 - f)``, the custom inputs and the pool kernels: the mean over any
        days is a difference.

        ``first`` (a variant): the courses start at grid day ``first``, before which the variant's
        inputs are the arm's; the inhibition and reserve returned are those from ``first`` on, the
        running sums cover the whole grid (the arm's up to ``first``, continued by the same
        sequential additions: the bits of a sum over the whole variant).
        """
        rankl_inhibition = reduce(_independent, [c.rankl_inhibition for c in courses])
        oc_fraction = reduce(_independent, [c.osteoclast_fraction for c in courses])
        pthrp_keep = reduce(np.multiply, [c.pthrp_keep for c in courses])
        tgf_keep = reduce(np.multiply, [c.tgf_beta_keep for c in courses])
        kill = reduce(np.add, [c.kill for c in courses])
        if first is None:
            reserve = precursor_reserve(rankl_inhibition, self._params)
        else:  # the recurrence runs from the first day the inhibition differs from the arm's
            whole = np.concatenate([self.rankl_inhibition[:first], rankl_inhibition])
            reserve = precursor_reserve(whole, self._params, (self.rankl_inhibition, self.reserve))[first:]
        free = (1.0 - rankl_inhibition) * (1.0 - oc_fraction)
        shared = (1.0 + reserve) * free
        daily = np.stack(
            [shared, shared**2, free, pthrp_keep, tgf_keep, kill, rankl_inhibition]
            + [c.pool.kernel for c in courses if c.pool is not None]
        )
        if first is None:
            return rankl_inhibition, reserve, _running_sums(daily)
        arm = self._running[0]
        tail = np.cumsum(np.concatenate([arm[:, first : first + 1], daily], axis=1), axis=1)
        return rankl_inhibition, reserve, np.concatenate([arm[:, :first], tail], axis=1)

    @staticmethod
    def _key(given: list[np.ndarray]) -> bytes:
        return b"|".join(m.tobytes() for m in given)

    def step_grid(self, step_days: int, history: bool = False) -> np.ndarray:
        """Step boundaries (days): every ``step_days`` from day 0, every dose day, and the last day.

        With ``history``, those of the exposure history instead: from ``-history_days`` to day 0.
        """
        if history:
            regular = np.arange(-self.history_days, 0, step_days)
            return np.union1d(np.union1d(regular, self.dose_days[self.dose_days < 0]), [0])
        regular = np.arange(0, self.n_days, step_days)
        return np.union1d(np.union1d(regular, self.dose_days[self.dose_days >= 0]), [self.n_days])

    def withhold(self, patients: np.ndarray, after_day: float, until_day: float, nephrotoxic: bool) -> None:
        """The given patients (block indices) miss the doses after ``after_day`` up to ``until_day``.

        Of the antiresorptive administrations (``nephrotoxic=False``: the agent stops after ONJ)
        or of the nephrotoxic ones (True: held after renal deterioration until recovery).
        """
        which = self._nephrotoxic if nephrotoxic else self._antiresorptive
        if not any(which):
            return
        for i in np.atleast_1d(patients):
            current = self._given[self._variant_of[i]]
            given = [
                np.ones(a.days.size, bool) if current is None else current[j].copy()
                for j, a in enumerate(self._administrations)
            ]
            for j, a in enumerate(self._administrations):
                if which[j]:
                    given[j] &= ~((a.days > after_day) & (a.days <= until_day))
            key = self._key(given)
            if key not in self._variant_key:
                self._variant_key[key] = len(self._given)
                self._given.append(given)
                self._add_running(self._variant_running(given))
            self._variant_of[i] = self._variant_key[key]

    def _add_running(self, running: np.ndarray) -> None:
        """Store a new variant's running sums (capacity doubles when full: one array for every variant's step means)."""
        if self._n_variants == self._running.shape[0]:
            grown = np.empty((2 * self._n_variants, *self._running.shape[1:]))
            grown[: self._n_variants] = self._running
            self._running = grown
        self._running[self._n_variants] = running
        self._n_variants += 1

    def _variant_running(self, given: list[np.ndarray]) -> np.ndarray:
        """The running sums of the arm's administrations without the doses not ``given``.

        Only what a variant changes is computed: the inputs from the grid day of its first missed
        dose on (before it the arm's values hold), the administrations that miss a dose by their
        agent for one patient (a variant's shared courses do not depend on the patient; per-patient
        constants stay the arm's), the others taken from the arm's courses. The agents evaluate
        courses pointwise on the grid, so the values are those of the full computation, at a
        fraction of its cost.
        """
        changed = [(a, m) for a, m in zip(self._administrations, given) if not m.all()]
        first = min(int(np.floor(a.days[~m][0])) + self.history_days for a, m in changed)
        grid = self._grid[first:]
        courses = [
            _from_day(c, first)
            if m.all()
            else a.agent.course(replace(a, days=a.days[m]), self._crcl[:1], grid, self._params)
            for a, m, c in zip(self._administrations, given, self._arm_courses)
        ]
        return self._combine(courses, first)[2]

    def _dose_given(self, j: int, k: int, patients: np.ndarray) -> np.ndarray | None:
        """Whether the given patients receive dose ``k`` of administration ``j`` (None: all do)."""
        variants = self._variant_of[patients]
        if not variants.any():
            return None
        return np.array([m is None or bool(m[j][k]) for m in self._given])[variants]

    def impulses(self, day: int, patients: np.ndarray) -> DoseImpulses | None:
        """What the doses of ``day`` bring to the given patients' adverse-event hazards (None: no dose)."""
        at = day + self.history_days
        given = [
            (int(number[at]), self._dose_given(j, int(number[at]) - offset, patients), auc, first)
            for j, (number, offset, auc, first) in enumerate(self._doses)
            if number[at] >= 0
        ]
        if not given:
            return None
        return DoseImpulses(
            relative_auc=sum(auc[patients] if g is None else auc[patients] * g for _, g, auc, _ in given),
            acute_phase=sum(
                first * (1.0 if k == 0 else self._later_ratio) * (1.0 if g is None else g) for k, g, _, first in given
            ),
        )

    def inputs(self, start: int, end: int, patients: np.ndarray) -> StepInputs:
        """Mean inputs of the lesion model over days ``start .. end - 1`` for the given patient indices.

        Shared time courses are averaged exactly; a bone pool's effect is that of the step's mean
        pool (the pool decays with a half-life of months, and doses fall on step starts). The
        pools of one agent add up before its Emax (one drug on one bone surface); the effects of
        different agents add (``1/(1 + sum E)``). Patients on a variant (missed doses) get its
        means: then every input is an array over the patients.
        """
        first, last = start + self.history_days, end + self.history_days
        variants = self._variant_of[patients]
        if not variants.any():
            mean = (self._running[0, :, last] - self._running[0, :, first]) / (end - start)
        else:
            used = self._running[: self._n_variants]
            mean = np.take(((used[:, :, last] - used[:, :, first]) / (end - start)).T, variants, axis=1)
        shared, shared_sq, free, pthrp_keep, tgf_keep, kill, rankl = mean[:7]
        if self._rankl is not None:
            ratio = _rankl_free_ratio(rankl, self._rankl[0][patients], self._rankl[1])
            shared, shared_sq, free = shared * ratio, shared_sq * np.square(ratio), free * ratio
        formation_kill, marrow, homing, drive_keep, production, il6_keep = (
            self._node_running[:, last] - self._node_running[:, first]
        ) / (end - start)
        extra_loss: float | np.ndarray = 0.0
        keep = np.ones(patients.shape)
        if self._pools:
            amounts: dict[str, tuple[BonePool, list[np.ndarray]]] = {}
            for (name, pool, potency), kernel in zip(self._pools, mean[7:]):
                amount = pool.scale[patients] * kernel
                amounts.setdefault(name, (pool, []))[1].append(
                    amount if potency is None else amount * potency[patients]
                )
            extra_loss = reduce(
                np.add,
                [
                    emax_effect(reduce(np.add, amount), pool.emax, pool.ec50, pool.hill)
                    for pool, amount in amounts.values()
                ],
            )
            keep = 1.0 / (1.0 + extra_loss)
        return StepInputs(
            recruitment=shared * keep,
            recruitment_sq=shared_sq * np.square(keep),
            pthrp_keep=_value(pthrp_keep),
            tgf_beta_keep=_value(tgf_keep),
            kill=_value(kill),
            suppression=1.0 - free * keep,
            formation_kill=float(formation_kill),
            marrow_dose_rate=float(marrow),
            homing_keep=float(homing),
            cells=CellInputs(float(drive_keep), float(production), float(il6_keep)),
            pool_loss=extra_loss,
        )

    @classmethod
    def of_arm(
        cls,
        arm: ArmLike,
        creatinine_clearance_ml_min: np.ndarray,
        n_days: int,
        params: Parameters,
        prior: Scheduled | None = None,
        potency_z: np.ndarray | None = None,
    ) -> Exposure:
        """The exposure of a protocol arm after a prior treatment, if any (see :func:`arm_administrations`)."""
        return cls(arm_administrations(arm, n_days, prior), creatinine_clearance_ml_min, n_days, params, potency_z)


@overload
def _potency(potency_z: np.ndarray, exposure_cv: float, params: Parameters) -> np.ndarray: ...
@overload
def _potency(potency_z: None, exposure_cv: float, params: Parameters) -> None: ...
def _potency(potency_z: np.ndarray | None, exposure_cv: float, params: Parameters) -> np.ndarray | None:
    """Per-patient potency ``exp(s_PK z_1 + s_PD z_2)`` (log-normal, median 1); None without draws (1)."""
    if potency_z is None:
        return None
    return np.exp(log_sd(exposure_cv) * potency_z[:, 0] + log_sd(params.drug_sensitivity_cv) * potency_z[:, 1])


def _rankl_free_ratio(inhibition: np.ndarray, potency: np.ndarray, imax: float) -> np.ndarray:
    """``(1 - I_i)/(1 - I)``: RANKL signalling left at potency ``k`` against the typical patient's.

    ``I = Imax c/(1 + c)`` gives ``c = I/(Imax - I)`` and ``I_i = Imax k c/(1 + k c)``.
    """
    inhibition = np.minimum(inhibition, imax * (1.0 - 1e-9))
    c = potency * (inhibition / (imax - inhibition))
    return (1.0 - imax * c / (1.0 + c)) / (1.0 - inhibition)


def _from_day(course: Course, first: int) -> Course:
    """``course`` with its shared time courses (those a variant's inputs read) from grid day ``first`` on."""
    pool = None if course.pool is None else replace(course.pool, kernel=course.pool.kernel[first:])
    sliced: dict[str, Any] = {
        name: getattr(course, name)[first:]
        for name in ("rankl_inhibition", "osteoclast_fraction", "pthrp_keep", "tgf_beta_keep", "kill")
    }
    return replace(course, pool=pool, **sliced)


def _value(mean: np.ndarray) -> float | np.ndarray:
    """A step mean shared by the patients as a float; per patient (variants) as the array.

    Variants that all have the same value (a node no withheld dose changes: the PTHrP and TGF-beta kept
    and the kill of a version-1 arm) give it as the float when float32 holds it exactly: the lesions
    read these inputs in float32, so the float acts as the array would (and 1.0 or 0.0 as no-ops).
    """
    if np.ndim(mean) == 0:
        return float(mean)
    shared = float(mean[0]) if mean.size else np.nan
    return shared if float(np.float32(shared)) == shared and bool((mean == shared).all()) else mean
