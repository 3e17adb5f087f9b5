"""Denosumab: anti-RANKL antibody, one-compartment linear SC PK and an Imax on RANKL (Doshi 2012).

Serum concentration ``C(t) = dose F ka / (V (ka - ke)) sum_k (e^{-ke t_k} - e^{-ka t_k})`` over
doses (``t_k`` since dose k); RANKL inhibition ``I = Imax C / (C + IC50)``. Its stopping
rebound is model-wide (the precursor reserve of :mod:`vtrial.model.drugs`), since it follows
any RANKL blockade.
"""

from __future__ import annotations

import numpy as np

from vtrial.model.agents.base import Administration, Agent, Course
from vtrial.model.agents.pk import first_order_absorption_kernel
from vtrial.model.parameters import Parameter, Parameters

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "denosumab_bioavailability",
        0.62,
        "-",
        0.5,
        0.75,
        "[seen] Xgeva SmPC (62%); Gibiansky 2012 (61%)",
        "SC bioavailability F",
    ),
    Parameter(
        "denosumab_absorption_rate",
        0.257,
        "1/day",
        0.15,
        0.4,
        "[seen] Gibiansky 2012 (absorption t1/2 2.7 d)",
        "first-order absorption rate k_a",
    ),
    Parameter(
        "denosumab_half_life_days",
        28.0,
        "day",
        14.0,
        55.0,
        "[seen] Xgeva SmPC mean t1/2 28 d (14-55)",
        "elimination half-life (linear surrogate of the TMDD model)",
    ),
    Parameter(
        "denosumab_volume_l",
        3.5,
        "L",
        2.5,
        5.0,
        "[derived] chosen so 120 mg q4w gives the label trough ~20.6 ug/mL (Xgeva SmPC)",
        "apparent volume of distribution",
    ),
    Parameter(
        "denosumab_imax",
        0.9,
        "-",
        0.8,
        0.99,
        "[calibrated] to the uNTx falls of MK-01..03 (-73 to -75% at weeks 13 and 25) with the bisphosphonate "
        "parameters; the range is around Doshi 2012's population Imax of uNTx, 93.7% (seen), an asymptote above "
        "the trials' medians",
        "maximal inhibition of RANKL signalling",
    ),
    Parameter(
        "denosumab_ic50_mg_l",
        0.0318,
        "mg/L",
        0.005,
        0.2,
        "[seen] Doshi 2012 (IC50 31.8 ng/mL)",
        "serum concentration of half-maximal inhibition",
    ),
    Parameter(
        "denosumab_exposure_cv",
        0.45,
        "-",
        0.3,
        0.6,
        "[recalled] between-subject variability of denosumab exposure ~40-50% (population PK, Sutjandra 2011 "
        "Clin Pharmacokinet 50:793; Gibiansky 2012)",
        "between-patient CV of the serum concentration at a given dose (log-normal, median 1)",
    ),
    Parameter(
        "acute_phase_first_dose_denosumab",
        0.09,
        "cumulative hazard",
        0.0,
        0.3,
        "[seen] INT-06: 8.7% on denosumab",
        "acute-phase reaction after the first denosumab injection",
    ),
)


def denosumab_concentration(days: np.ndarray, dose_mg: float, grid: np.ndarray, params: Parameters) -> np.ndarray:
    """Serum denosumab (mg/L) on ``grid``: superposed 1-compartment first-order-absorption doses."""
    ka = params.denosumab_absorption_rate
    ke = np.log(2.0) / params.denosumab_half_life_days
    scale = dose_mg * params.denosumab_bioavailability * ka / (params.denosumab_volume_l * (ka - ke))
    return scale * first_order_absorption_kernel(days, ka, ke, grid)


class Denosumab(Agent):
    """Denosumab (Xgeva): RANKL inhibition from its serum concentration."""

    name = "denosumab"
    agent_class = "anti-RANKL"
    parameters = PARAMETERS
    label_regimen = "dose_mg = 120.0 and every_weeks = 4.0 (Xgeva label)"

    def course(
        self,
        administration: Administration,
        creatinine_clearance_ml_min: np.ndarray,
        grid: np.ndarray,
        params: Parameters,
    ) -> Course:
        conc = denosumab_concentration(administration.days, administration.given_dose(), grid, params)
        return Course.neutral(
            creatinine_clearance_ml_min.shape[0],
            grid.shape[0],
            rankl_inhibition=params.denosumab_imax * conc / (conc + params.denosumab_ic50_mg_l),
            acute_phase_first_dose=params.acute_phase_first_dose_denosumab,
            exposure_cv=params.denosumab_exposure_cv,
            rankl_imax=params.denosumab_imax,
        )
