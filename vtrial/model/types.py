"""Structural types of what the model reads from a protocol: an arm, its mechanism, a schedule.

The model takes any object that has these attributes (:class:`typing.Protocol`, checked by
mypy, not at run time): the protocol's pydantic :class:`vtrial.protocol.Arm` satisfies them;
the model's tests pass lighter stand-ins with what the code under test reads. Attributes the model reads with a default
when they are absent are listed in each docstring rather than declared, since a
:class:`typing.Protocol` cannot declare an optional member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vtrial.protocol import DosingPhase


class MechanismLike(Protocol):
    """``[arm.mechanism]``: where a custom agent acts, read by :mod:`vtrial.model.agents.custom`.

    The fractions are effects at full exposure of ``reference_dose_mg`` (``None``: the arm gives
    no dose, the fractions as given).
    """

    @property
    def rankl_inhibition(self) -> float: ...
    @property
    def osteoclast_inhibition(self) -> float: ...
    @property
    def tgf_beta_inhibition(self) -> float: ...
    @property
    def pthrp_inhibition(self) -> float: ...
    @property
    def tumour_kill(self) -> float: ...
    @property
    def homing_inhibition(self) -> float: ...
    @property
    def osteoblast_drive_inhibition(self) -> float: ...
    @property
    def bone_formation_stimulation(self) -> float: ...
    @property
    def il6_inhibition(self) -> float: ...
    @property
    def half_life_days(self) -> float: ...
    @property
    def reference_dose_mg(self) -> float | None: ...


class Scheduled(Protocol):
    """A treatment given on a dosing plan (:class:`vtrial.protocol.PriorTreatment`, an arm)."""

    def dosing_plan(self) -> Sequence[DosingPhase]: ...


class ArmLike(Protocol):
    """One treatment arm, as the model reads it (:class:`vtrial.protocol.Arm` is one).

    Read with a default when absent: ``dosing_plan()`` (see :class:`Scheduled`; without it the
    arm is its one ``drug`` from day 0), ``dose_mg`` or ``dose_kbq_per_kg`` (the drug's dose
    field; no dose), ``doses`` (no cap), ``systemic_therapy`` (the cohort's per-primary lists),
    ``radiotherapy`` and ``surgery`` (the default course and fixation).
    """

    @property
    def name(self) -> str: ...
    @property
    def drug(self) -> str: ...
    @property
    def every_weeks(self) -> float | None: ...
    @property
    def stop_after_months(self) -> float | None: ...
    @property
    def renal_adjustment(self) -> bool: ...
    @property
    def calcium_vitamin_d(self) -> bool: ...
    @property
    def mechanism(self) -> MechanismLike | None: ...
