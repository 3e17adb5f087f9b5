"""Pamidronate: a fixed fraction of each dose to bone; renal clearance proportional to CrCl.

AUC per infusion ``dose / CL`` with ``CL = CL_75 CrCl / 75``, relative to 90 mg at CrCl 75.
"""

from __future__ import annotations

import numpy as np

from vtrial.model.agents.base import Administration
from vtrial.model.agents.bisphosphonate import BISPHOSPHONATE_PARAMETERS, Bisphosphonate
from vtrial.model.parameters import Parameter, Parameters

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "pamidronate_bone_fraction",
        0.5,
        "-",
        0.3,
        0.7,
        "[seen] ~50% of a dose retained in bone",
        "fraction of a pamidronate dose taken up by bone",
    ),
    Parameter(
        "pamidronate_pool_half_life_days",
        120.0,
        "day",
        30.0,
        300.0,
        "[recalled] bone t1/2 ~300 d, active surface fraction shorter",
        "active bone-surface pool half-life",
    ),
    Parameter(
        "pamidronate_emax",
        1.3,
        "-",
        0.5,
        3.0,
        "[calibrated] with the zoledronic acid parameters (docs/calibration.md): the pamidronate trials",
        "maximal extra osteoclast loss",
    ),
    Parameter(
        "pamidronate_ec50_mg",
        60.0,
        "mg",
        20.0,
        200.0,
        "[calibrated] 90 mg q3-4w near ZA 4 mg clinically",
        "pool amount of half-maximal effect",
    ),
    Parameter(
        "pamidronate_clearance_l_h",
        5.0,
        "L/h",
        2.0,
        10.0,
        "[recalled] renal CL proportional to CrCl",
        "total clearance at CrCl 75 mL/min (scaled by CrCl/75 for the AUC)",
    ),
    Parameter(
        "pamidronate_exposure_cv",
        0.4,
        "-",
        0.2,
        0.6,
        "[recalled] pamidronate exposure varies widely between patients at one dose and CrCl (Berenson 1997 "
        "J Clin Pharmacol 37:285); assumed as zoledronic acid's upper end",
        "between-patient CV of the amount reaching bone at a given dose and CrCl (log-normal, median 1)",
    ),
)

#: Label dose (mg), the reference of the relative AUC.
LABEL_DOSE_MG = 90.0


class Pamidronate(Bisphosphonate):
    """Pamidronate (Aredia)."""

    name = "pamidronate"
    parameters = PARAMETERS + BISPHOSPHONATE_PARAMETERS
    label_regimen = "dose_mg = 90.0 and every_weeks = 4.0 (label: 90 mg every 3-4 weeks)"
    exposure_cv_parameter = "pamidronate_exposure_cv"

    def pool(
        self, administration: Administration, creatinine_clearance_ml_min: np.ndarray, params: Parameters
    ) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        crcl = creatinine_clearance_ml_min
        dose = np.full(crcl.shape[0], administration.given_dose())
        clearance = params.pamidronate_clearance_l_h * np.maximum(crcl, 1.0) / 75.0
        return (
            dose * params.pamidronate_bone_fraction,
            dose / clearance / (LABEL_DOSE_MG / params.pamidronate_clearance_l_h),
            params.pamidronate_pool_half_life_days,
            params.pamidronate_emax,
            params.pamidronate_ec50_mg,
        )
