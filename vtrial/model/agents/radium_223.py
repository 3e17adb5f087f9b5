"""Radium-223 dichloride (Xofigo): an alpha emitter taken up where bone is formed.

Radium is a calcium mimetic: of each injected activity a fraction ``f_bone`` is incorporated
into newly forming bone within hours (Carrasquillo 2013: 44-77% of the activity in bone at 4 h;
the rest is excreted through the gut), where it stays and decays with its physical half-life
``T = 11.4`` days. The activity in bone per kg of body weight is

``A(t) = f_bone sum_k d_k 2^{-(t - t_k)/T}`` (kBq/kg; ``d_k`` the dose of injection k).

Its alpha particles travel < 100 um, so they kill the tumour cells next to the forming bone
that took the activity up: a lesion's tumour kill rate is ``kappa A(t) F_L``, where ``F_L`` is
the lesion's bone formation rate relative to healthy bone (:func:`vtrial.model.lesion.formation_rate`,
the rate BSAP reads too, computed by the simulation from the lesion's state each step: 3.3-7.4
in blastic lesions, 1.3-2.1 in lytic ones, like the several-fold uptake of bone scans in
osteoblastic metastases; ``kappa`` is the kill per unit activity at healthy formation). The tumour within
alpha range of the bone surface, which drives the osteoblasts, takes ``q`` times that kill and is
repopulated from the rest of the lesion (:func:`vtrial.model.lesion.interface_share`), so the
osteoblastic drive, formation and BSAP fall within weeks, far more than the tumour. The same activity
irradiates the marrow next to the bone surfaces: the marrow dose rate is ``A(t)``, whose time
integral drives neutropenia and thrombocytopenia (:mod:`vtrial.model.simulate`).
"""

from __future__ import annotations

import numpy as np

from vtrial.model.agents.base import Administration, Agent, Course
from vtrial.model.agents.pk import pool_kernel
from vtrial.model.parameters import Parameter, Parameters

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "radium_half_life_days",
        11.4,
        "day",
        11.3,
        11.5,
        "[seen] physical half-life of Ra-223 (Xofigo SmPC)",
        "decay half-life of the activity in bone (biological release from bone is slower, neglected)",
    ),
    Parameter(
        "radium_bone_uptake",
        0.61,
        "-",
        0.44,
        0.77,
        "[seen] Carrasquillo 2013 Eur J Nucl Med Mol Imaging 40:1384 (bone 61% at 4 h, 44-77%)",
        "fraction of the injected activity incorporated into bone",
    ),
    Parameter(
        "radium_kill_per_activity",
        0.0004,
        "1/day per kBq/kg",
        0.0001,
        0.003,
        "[calibrated] ALSYMPCA (Parker 2013 NEJM 369:213) median OS 11.3 vs 14.9 months, HR 0.70; raised by hand "
        "0.0003 -> 0.0004 with the bone-interface node (issue 13)",
        "tumour kill rate per kBq/kg of activity in bone, at healthy bone formation",
    ),
    Parameter(
        "radium_interface_kill_ratio",
        20.0,
        "-",
        5.0,
        100.0,
        "[derived] alpha range 50-100 um, 2-10 cell diameters (Henriksen 2002 Cancer Res 62:3120; recalled) against a "
        "mean depth of a detected lesion's tumour from the nearest bone surface of ~1-2 mm ([assumed], 0.3-5 mm)",
        "kill of the tumour at the bone interface (within alpha range) relative to the lesion-average radium kill",
    ),
    Parameter(
        "radium_interface_repopulation_rate",
        0.017,
        "1/day",
        0.006,
        0.07,
        "[derived] potential doubling time of prostate cancer ~40 days (10-120; Haustermans 1997 Int J Radiat Oncol "
        "Biol Phys 37:1067; recalled): ln 2 / 40 days",
        "rate at which the lesion's tumour repopulates its bone interface after an alpha kill",
    ),
    Parameter(
        "neutropenia_per_marrow_dose",
        4.6e-6,
        "1/(kBq/kg day)",
        1e-6,
        2e-5,
        "[derived] ALSYMPCA grade 3-4 neutropenia 2.2% vs 0.7% placebo over 6 x 55 kBq/kg (Parker 2013)",
        "cumulative hazard of grade 3-4 neutropenia per unit time-integrated activity in bone",
    ),
    Parameter(
        "thrombocytopenia_per_marrow_dose",
        1.3e-5,
        "1/(kBq/kg day)",
        3e-6,
        5e-5,
        "[derived] ALSYMPCA grade 3-4 thrombocytopenia 6.3% vs 2.0% placebo (Parker 2013)",
        "cumulative hazard of grade 3-4 thrombocytopenia per unit time-integrated activity in bone",
    ),
)


class Radium223(Agent):
    """Radium-223 (Xofigo): formation-weighted alpha kill of tumour in bone (most at its interface), and marrow dose."""

    name = "radium_223"
    agent_class = "radiopharmaceutical"
    parameters = PARAMETERS
    label_regimen = "dose_kbq_per_kg = 55.0, every_weeks = 4.0 and doses = 6 (Xofigo label)"
    dose_unit = "kBq/kg"

    def course(
        self,
        administration: Administration,
        creatinine_clearance_ml_min: np.ndarray,
        grid: np.ndarray,
        params: Parameters,
    ) -> Course:
        activity = (
            params.radium_bone_uptake
            * administration.given_dose()
            * pool_kernel(administration.days, params.radium_half_life_days, grid)
        )
        return Course.neutral(
            creatinine_clearance_ml_min.shape[0],
            grid.shape[0],
            formation_kill=params.radium_kill_per_activity * activity,
            marrow_dose_rate=activity,
        )
