"""Placebo (protocol drug ``"none"``): no dose, no effect."""

from __future__ import annotations

import numpy as np

from vtrial.model.agents.base import Administration, Agent, Course
from vtrial.model.parameters import Parameters


class Placebo(Agent):
    """No bone-targeted agent: every course is neutral."""

    name = "none"
    agent_class = "placebo"
    dosed = False
    needs_dose = False

    def course(
        self,
        administration: Administration,
        creatinine_clearance_ml_min: np.ndarray,
        grid: np.ndarray,
        params: Parameters,
    ) -> Course:
        return Course.neutral(creatinine_clearance_ml_min.shape[0], grid.shape[0])
