"""A custom agent, described by where it acts (``[arm.mechanism]``) rather than by a drug label.

Exposure ``e(t) = 2^{-(t - last dose) / half_life_days}``: full at each dose, halving since the
last one. At full exposure the mechanism's fractions act at RANKL (``I``), osteoclast loss
(recruitment x ``1 - f``), PTHrP and TGF-beta signalling (x ``1 - fraction``) and tumour kill
(the fraction of the burden removed per 28 days); the version-2 fractions act at homing to bone
(new-lesion seeding), the blastic osteoblast drive, osteoblast production (a bone-formation
stimulation ``s`` raises it by ``1 + g s``) and tumour IL-6 (docs/model.md).

Dose law: the fractions are those of the mechanism's ``reference_dose_mg``. A dose ``d`` acts as
``x = d / reference_dose_mg`` reference doses given together, each acting independently, so a
fraction ``f(t) = fraction e(t)`` becomes ``1 - (1 - f(t))^x`` and the kill rate is ``x`` times
its reference: monotone in dose, no effect at no dose, saturating at full removal (RANKL and
osteoclast fractions stay capped at 0.99), and two half doses act as one dose (the combination
rule of :class:`vtrial.model.drugs.Exposure`). Without ``dose_mg`` the arm gives the reference
dose: the fractions act as given.
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

    def course(
        self,
        administration: Administration,
        creatinine_clearance_ml_min: np.ndarray,
        grid: np.ndarray,
        params: Parameters,
    ) -> Course:
        m = administration.mechanism
        if m is None:
            raise ValueError("the custom agent needs the arm's [arm.mechanism] table")
        e = last_dose_decay(administration.days, float(m.half_life_days), grid)
        if administration.dose_mg is None:
            doses = None
        elif m.reference_dose_mg is None:
            raise ValueError("a custom agent given at dose_mg needs the mechanism's reference_dose_mg")
        else:
            doses = administration.dose_mg / m.reference_dose_mg
        kill = -np.log1p(-min(float(m.tumour_kill), FRACTION_CAP)) / KILL_PERIOD_DAYS * e
        return Course.neutral(
            creatinine_clearance_ml_min.shape[0],
            grid.shape[0],
            rankl_inhibition=np.minimum(at_dose(min(float(m.rankl_inhibition), FRACTION_CAP) * e, doses), FRACTION_CAP),
            osteoclast_fraction=np.minimum(
                at_dose(min(float(m.osteoclast_inhibition), FRACTION_CAP) * e, doses), FRACTION_CAP
            ),
            pthrp_keep=1.0 - at_dose(min(float(m.pthrp_inhibition), 1.0) * e, doses),
            tgf_beta_keep=1.0 - at_dose(min(float(m.tgf_beta_inhibition), 1.0) * e, doses),
            kill=kill if doses is None else kill * doses,
            homing_inhibition=at_dose(min(float(m.homing_inhibition), 1.0) * e, doses),
            osteoblast_drive_inhibition=at_dose(min(float(m.osteoblast_drive_inhibition), 1.0) * e, doses),
            formation_stimulation=at_dose(min(float(m.bone_formation_stimulation), 1.0) * e, doses),
            il6_inhibition=at_dose(min(float(m.il6_inhibition), 1.0) * e, doses),
        )


def at_dose(fraction: np.ndarray, doses: float | None) -> np.ndarray:
    """Fraction removed by ``doses`` reference doses acting independently: ``1 - (1 - f)^doses``.

    ``None`` (no ``dose_mg``): the reference dose, the fraction as given.
    """
    return fraction if doses is None else 1.0 - (1.0 - fraction) ** doses
