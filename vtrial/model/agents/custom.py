"""A custom agent, described by where it acts (``[arm.mechanism]``) rather than by a drug label.

Exposure ``e(t) = 2^{-(t - last dose) / half_life_days}``: full at each dose, halving since the
last one. At full exposure the mechanism's fractions act at RANKL (``I``), osteoclast loss
(recruitment x ``1 - f``), PTHrP and TGF-beta signalling (x ``1 - fraction``) and tumour kill
(the fraction of the burden removed per 28 days).
"""

from __future__ import annotations

import numpy as np

from vtrial.model.agents.base import Administration, Agent, Course
from vtrial.model.agents.pk import last_dose_decay
from vtrial.model.parameters import Parameters

#: Largest fraction of RANKL signalling, osteoclast recruitment or burden per 28 days an agent removes.
FRACTION_CAP = 0.99
#: Days over which ``tumour_kill`` is the fraction of the burden removed.
KILL_PERIOD_DAYS = 28.0


class Custom(Agent):
    """An agent defined by its mechanism fractions and exposure half-life."""

    name = "custom"
    agent_class = "custom"
    label_regimen = "every_weeks, e.g. every_weeks = 3.0"
    needs_dose = False
    takes_mechanism = True

    def course(self, administration: Administration, creatinine_clearance_ml_min: np.ndarray, grid: np.ndarray,
               params: Parameters) -> Course:
        m = administration.mechanism
        e = last_dose_decay(administration.days, float(m.half_life_days), grid)
        return Course.neutral(
            creatinine_clearance_ml_min.shape[0], grid.shape[0],
            rankl_inhibition=min(float(m.rankl_inhibition), FRACTION_CAP) * e,
            osteoclast_fraction=min(float(m.osteoclast_inhibition), FRACTION_CAP) * e,
            pthrp_keep=1.0 - min(float(m.pthrp_inhibition), 1.0) * e,
            tgf_beta_keep=1.0 - min(float(m.tgf_beta_inhibition), 1.0) * e,
            kill=-np.log1p(-min(float(m.tumour_kill), FRACTION_CAP)) / KILL_PERIOD_DAYS * e,
        )
