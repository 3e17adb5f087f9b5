"""What the bisphosphonates share: a bone-surface pool acting through an Emax, renal exposure, acute phase.

A dose deposits ``dose x bone fraction`` (per patient) on the bone surface, released with the
agent's pool half-life; the pool ``A(t)`` adds osteoclast loss ``E = Emax A^h / (A^h + EC50^h)``
(recruitment x ``1/(1 + E)``). Each infusion carries an exposure (AUC) relative to the label
dose that drives renal toxicity, and the first infusion an acute-phase reaction.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vtrial.model.agents.base import Administration, Agent, BonePool, Course
from vtrial.model.agents.pk import pool_kernel
from vtrial.model.parameters import Parameter, Parameters

#: Parameters every bisphosphonate shares (part of each one's :attr:`Agent.parameters`).
BISPHOSPHONATE_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "bisphosphonate_hill",
        1.9,
        "-",
        1.0,
        3.0,
        "[seen] Pillai 2004 ibandronate PD (Hill 1.92)",
        "Hill coefficient of the pool effect",
    ),
    Parameter(
        "acute_phase_first_dose",
        0.22,
        "cumulative hazard",
        0.05,
        0.5,
        "[seen] INT-06: 20.2% after ZA in 3 days",
        "acute-phase reaction after the first bisphosphonate infusion",
    ),
)


class Bisphosphonate(Agent):
    """Base of the bisphosphonate agents: subclasses give the pool per patient and its Emax."""

    agent_class = "bisphosphonate"
    #: registry name of the agent's between-patient CV of the amount reaching bone
    exposure_cv_parameter: ClassVar[str]

    def pool(
        self, administration: Administration, creatinine_clearance_ml_min: np.ndarray, params: Parameters
    ) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """Per patient: amount reaching bone per dose and AUC per dose relative to the label; pool
        half-life (days), Emax and EC50 (mg)."""
        raise NotImplementedError

    def course(
        self,
        administration: Administration,
        creatinine_clearance_ml_min: np.ndarray,
        grid: np.ndarray,
        params: Parameters,
    ) -> Course:
        scale, relative_auc, half_life, emax, ec50 = self.pool(administration, creatinine_clearance_ml_min, params)
        kernel = pool_kernel(administration.days, half_life, grid)
        return Course.neutral(
            creatinine_clearance_ml_min.shape[0],
            grid.shape[0],
            pool=BonePool(scale, kernel, emax, ec50, params.bisphosphonate_hill),
            relative_auc=relative_auc,
            acute_phase_first_dose=params.acute_phase_first_dose,
            exposure_cv=getattr(params, self.exposure_cv_parameter),
        )
