"""The one interface between a bone-targeted agent and the simulation: :class:`Agent`.

An agent module (one file in this package) defines a subclass of :class:`Agent` with its name,
class, parameters and label-regimen hint, and :meth:`Agent.course`, which turns one
:class:`Administration` (the agent on a dosing schedule) into the daily time courses of its
node effects (:class:`Course`). :class:`vtrial.model.drugs.Exposure` combines the courses of a
list of administrations; nothing else in the model looks at an agent's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from vtrial.model.parameters import Parameter

if TYPE_CHECKING:
    from vtrial.model.parameters import Parameters
    from vtrial.model.types import MechanismLike


@dataclass(frozen=True)
class Administration:
    """One agent given on a schedule: an arm's exposure combines a list of these.

    ``days`` are dose times (days since randomisation, sorted); ``dose_mg`` is the dose in the
    agent's ``dose_unit`` (mg; kBq/kg for radium-223), ``None`` where the protocol gave none; ``renal_adjustment`` and ``mechanism`` are the arm's fields of that name.
    """

    agent: Agent
    days: np.ndarray
    dose_mg: float | None = None
    renal_adjustment: bool = True
    mechanism: MechanismLike | None = None

    def given_dose(self) -> float:
        """``dose_mg`` of an agent that needs a dose (the protocol requires one: ``Agent.needs_dose``)."""
        if self.dose_mg is None:
            raise ValueError(f"{self.agent.name} needs a dose: {self.agent.label_regimen}")
        return float(self.dose_mg)


@dataclass(frozen=True)
class BonePool:
    """Drug bound to the bone surface: ``scale[i] * kernel(t)``, acting through an Emax.

    The extra osteoclast loss ``E = Emax(pool)`` enters recruitment as ``1 / (1 + E)``; the
    Emax is applied to the pool's mean over a step, per patient.
    """

    scale: np.ndarray  # [n] amount per unit kernel (dose reaching bone)
    kernel: np.ndarray  # [n_days] superposed release kernel
    emax: float
    ec50: float
    hill: float


@dataclass(frozen=True)
class Course:
    """Daily time courses of one administration's effects on the model's nodes.

    Shared courses are arrays ``[n_days]`` (all patients of an arm share the schedule);
    per-patient constants are arrays ``[n]``.
    """

    #: fraction of RANKL signalling blocked (osteoclast recruitment x ``1 - I``)
    rankl_inhibition: np.ndarray
    #: fraction of osteoclast recruitment removed outside RANKL (x ``1 - f``)
    osteoclast_fraction: np.ndarray
    #: fractions of tumour PTHrP and matrix TGF-beta signalling left
    pthrp_keep: np.ndarray
    tgf_beta_keep: np.ndarray
    #: tumour kill rate (1/day)
    kill: np.ndarray
    #: exposure per dose relative to the label (AUC), per patient: drives renal toxicity (0: not nephrotoxic)
    relative_auc: np.ndarray
    #: cumulative hazard of an acute-phase reaction after the first dose (later doses x a ratio)
    acute_phase_first_dose: float = 0.0
    #: bone-surface pool acting through an Emax (bisphosphonates), if any
    pool: BonePool | None = field(default=None)
    #: tumour kill rate (1/day) in a lesion forming bone as healthy bone does; the simulation
    #: multiplies it by each lesion's bone formation (a bone-seeking agent taken up where bone forms)
    formation_kill: np.ndarray | None = None
    #: dose rate to the bone marrow [n_days] (activity in bone, kBq/kg): drives haematological toxicity
    marrow_dose_rate: np.ndarray | None = None
    # version-2 nodes (docs/model.md), fractions in [0, 1]: shared courses [n_days] or 0 (no effect)
    #: tumour-cell homing to bone blocked (CXCL12-CXCR4, integrin alpha4beta1-VCAM-1): new-lesion seeding x ``1 - h``
    homing_inhibition: np.ndarray | float = 0.0
    #: blastic osteoblast drive (BMP, WNT, endothelin) blocked: drive x ``1 - d``
    osteoblast_drive_inhibition: np.ndarray | float = 0.0
    #: bone-formation stimulation, share of the maximal anabolic effect: osteoblast production x ``1 + g s``
    formation_stimulation: np.ndarray | float = 0.0
    #: tumour IL-6 signalling blocked (osteoclast recruitment, tumour survival in bone)
    il6_inhibition: np.ndarray | float = 0.0
    #: between-patient CV of the exposure (concentration or bone pool) behind ``rankl_inhibition`` and
    #: ``pool``: :class:`vtrial.model.drugs.Exposure` scales each patient's potency by it (0: none)
    exposure_cv: float = 0.0
    #: Imax of ``rankl_inhibition = Imax c/(1 + c)`` (``c`` concentration over IC50), which lets a
    #: patient's potency rescale ``c``; 0: the course declares no such law (no between-patient potency)
    rankl_imax: float = 0.0

    @classmethod
    def neutral(cls, n_patients: int, n_days: int, **effects: Any) -> Course:
        """A course without effect, except the given ones."""
        values: dict[str, Any] = dict(
            rankl_inhibition=np.zeros(n_days),
            osteoclast_fraction=np.zeros(n_days),
            pthrp_keep=np.ones(n_days),
            tgf_beta_keep=np.ones(n_days),
            kill=np.zeros(n_days),
            relative_auc=np.zeros(n_patients),
        )
        return cls(**{**values, **effects})


class Agent:
    """A bone-targeted agent: what the protocol, the parameter registry and the model need of it.

    Subclasses set the class attributes and implement :meth:`course`. A subclass defined in a
    module of :mod:`vtrial.model.agents` is found and registered by name at import.
    """

    #: drug name in the protocol (``[[arm]] drug``)
    name: ClassVar[str]
    #: pharmacological class ("bisphosphonate", "anti-RANKL", "placebo", "custom", ...); what the
    #: adverse-event code needs of the class it reads from the :class:`Course` (AUC, acute phase)
    agent_class: ClassVar[str]
    #: its model parameters (registered into :data:`vtrial.model.parameters.REGISTRY`)
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    #: the protocol fields of its label regimen, for error messages ("dose_mg = 4.0 and every_weeks = 4.0")
    label_regimen: ClassVar[str] = ""
    #: unit of its dose: "mg" (``dose_mg``) or "kBq/kg" (activity per body weight, ``dose_kbq_per_kg``)
    dose_unit: ClassVar[str] = "mg"
    #: whether it is given at all (placebo: no schedule, no dosing interval needed)
    dosed: ClassVar[bool] = True
    #: whether an arm must give ``dose_mg``
    needs_dose: ClassVar[bool] = True
    #: whether an arm describes it by an ``[arm.mechanism]`` table (and must)
    takes_mechanism: ClassVar[bool] = False

    def course(
        self,
        administration: Administration,
        creatinine_clearance_ml_min: np.ndarray,
        grid: np.ndarray,
        params: Parameters,
    ) -> Course:
        """Daily effects of ``administration`` on ``grid`` (mid-day times) for patients of the given CrCl."""
        raise NotImplementedError
