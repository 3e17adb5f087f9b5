"""Zoledronic acid: label dose by creatinine clearance; clearance split into bone uptake and renal.

Dose by CrCl (4.0/3.5/3.3/3.0 mg for >60, 50-60, 40-49, 30-39 mL/min; withheld below 30) when
``renal_adjustment``, scaled by ``dose_mg / 4``; clearance ``CL = 3.27 + 0.0372 CrCl`` L/h (the
law the label table implies), whose non-renal part is bone uptake: bone fraction ``3.27 / CL``.
AUC per infusion ``dose / CL`` relative to the label target 0.66 mg h/L.
"""

from __future__ import annotations

import numpy as np

from vtrial.model.agents.base import Administration
from vtrial.model.agents.bisphosphonate import BISPHOSPHONATE_PARAMETERS, Bisphosphonate
from vtrial.model.parameters import Parameter, Parameters

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "zoledronic_acid_nonrenal_clearance_l_h",
        3.27,
        "L/h",
        2.0,
        5.0,
        "[derived] intercept of the label dose table CL = 3.27 + 0.0372 CrCl (research notes 6.3)",
        "non-renal (bone uptake) clearance",
    ),
    Parameter(
        "zoledronic_acid_renal_slope_l_h",
        0.0372,
        "L/h per mL/min",
        0.02,
        0.06,
        "[derived] slope of the label dose table (research notes 6.3)",
        "renal clearance per unit CrCl",
    ),
    Parameter(
        "zoledronic_acid_pool_half_life_days",
        180.0,
        "day",
        60.0,
        720.0,
        "[recalled] research notes section 10 (k_off ~ ln2/180 d)",
        "active bone-surface pool half-life",
    ),
    Parameter(
        "zoledronic_acid_emax",
        4.5,
        "-",
        1.0,
        5.0,
        "[calibrated] with rankl_osteoclast_survival, zoledronic_acid_ec50_mg and denosumab_imax to the uNTx falls "
        "(MK-01..03) and the zoledronic acid trials (docs/calibration.md)",
        "maximal extra osteoclast loss (relative to baseline)",
    ),
    Parameter(
        "zoledronic_acid_ec50_mg",
        1.0,
        "mg",
        0.5,
        8.0,
        "[calibrated] with zoledronic_acid_emax (above); one 5 mg dose then keeps the resorption of healthy bone "
        "~57% down at a year, as markers stay ~60% down for a year after it (HORIZON, recalled)",
        "pool amount of half-maximal effect",
    ),
    Parameter(
        "zoledronic_acid_exposure_cv",
        0.35,
        "-",
        0.25,
        0.45,
        "[recalled] between-patient CV of zoledronic acid AUC ~30-40% (Chen 2002 J Clin Pharmacol 42:1228)",
        "between-patient CV of the amount reaching bone at a given dose and CrCl (log-normal, median 1)",
    ),
)

#: Label dose reduction of zoledronic acid by creatinine clearance (mL/min), Zometa label.
RENAL_BOUNDS = np.array([30.0, 40.0, 50.0, 60.0])
RENAL_DOSE_MG = np.array([0.0, 3.0, 3.3, 3.5, 4.0])
#: Exposure of a dose scaled so the label dose at CrCl 75 gives this AUC.
REFERENCE_AUC_MG_H_L = 0.66


def zoledronic_acid_dose(dose_mg: float, crcl_ml_min: np.ndarray, renal_adjustment: bool) -> np.ndarray:
    """Dose per infusion (mg): the label table by CrCl scaled to ``dose_mg``; withheld below 30."""
    crcl = np.asarray(crcl_ml_min, dtype=float)
    if not renal_adjustment:
        return np.full(crcl.shape, float(dose_mg))
    # bands >60, 50-60, 40-49, 30-39, <30 (the 50-60 band includes 60)
    band = np.searchsorted(RENAL_BOUNDS[:3], crcl, side="right") + (crcl > RENAL_BOUNDS[3])
    return RENAL_DOSE_MG[band] * (dose_mg / 4.0)


def zoledronic_acid_clearance_l_h(crcl_ml_min: np.ndarray, params: Parameters) -> tuple[np.ndarray, np.ndarray]:
    """Non-renal (bone uptake) and renal clearance (L/h); the label dose table implies their sum."""
    renal = params.zoledronic_acid_renal_slope_l_h * np.asarray(crcl_ml_min, dtype=float)
    return np.full(renal.shape, params.zoledronic_acid_nonrenal_clearance_l_h), renal


class ZoledronicAcid(Bisphosphonate):
    """Zoledronic acid (Zometa)."""

    name = "zoledronic_acid"
    parameters = PARAMETERS + BISPHOSPHONATE_PARAMETERS
    label_regimen = "dose_mg = 4.0 and every_weeks = 4.0 (Zometa label)"
    exposure_cv_parameter = "zoledronic_acid_exposure_cv"

    def pool(
        self, administration: Administration, creatinine_clearance_ml_min: np.ndarray, params: Parameters
    ) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        crcl = creatinine_clearance_ml_min
        dose = zoledronic_acid_dose(administration.given_dose(), crcl, bool(administration.renal_adjustment))
        uptake, renal = zoledronic_acid_clearance_l_h(crcl, params)
        return (
            dose * uptake / (uptake + renal),
            dose / (uptake + renal) / REFERENCE_AUC_MG_H_L,
            params.zoledronic_acid_pool_half_life_days,
            params.zoledronic_acid_emax,
            params.zoledronic_acid_ec50_mg,
        )
