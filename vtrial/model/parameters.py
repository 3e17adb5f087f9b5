"""Every parameter of the lesion model, the drugs and the event hazards: value, unit, range, source.

Parameters are registered once in :data:`REGISTRY`: the model-wide ones below, each agent's in
its own module of :mod:`vtrial.model.agents` (registered when that package is imported, which
``vtrial.model`` does first). Model code reads them through a
:class:`Parameters` object (attribute access, validated overrides), so calibration changes
values without touching the equations. Per-primary parameters are registered once per primary
as ``name.primary`` and read as an array indexed by primary code (:meth:`Parameters.by_primary`).

Source tags: ``[seen]`` read in the cited source, ``[recalled]`` general knowledge of the field,
``[derived]`` algebra on seen values, ``[calibrated]`` chosen so the untreated simulator lands in
the range of the published targets (``calibration/targets.csv``) — to be refined by fitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vtrial.vocabulary import PRIMARIES


@dataclass(frozen=True)
class Parameter:
    """One model parameter with its unit, plausible range and source."""

    name: str
    value: float
    unit: str
    low: float
    high: float
    source: str
    meaning: str

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            object.__setattr__(self, name, float(getattr(self, name)))


_CAL = "[calibrated] to calibration/targets.csv"

_PARAMETERS: list[Parameter] = [
    # --- bone remodelling (Komarova 2003 normalised; osteoclasts quasi-steady) -------------
    Parameter("osteoblast_rate", 0.02, "1/day", 0.01, 0.05, "[seen] Komarova 2003 beta2 (BIOMD0000000148)",
       "osteoblast activity turnover rate beta_B"),
    Parameter("bone_turnover_rate", 0.004, "1/day", 0.001, 0.01,
       "[calibrated] lytic lesion loses 30-50% of its mass in 6-12 months (research notes section 10)",
       "bone mass indirect-response rate k_Z"),
    Parameter("woven_bone_strength", 0.3, "-", 0.0, 1.0,
       "[recalled] woven bone is weaker than lamellar; bone above healthy mass in blastic lesions",
       "share of bone mass above healthy that counts for strength"),
    # --- vicious cycle -----------------------------------------------------------------------
    Parameter("tumour_signal_half_burden", 0.1, "fraction of capacity", 0.02, 0.5, "[calibrated]",
       "burden at which tumour-derived signals (PTHrP, osteoblast drive/suppression) are half-maximal"),
    Parameter("pthrp_lytic", 1.0, "-", 0.2, 3.0, "[calibrated] TIBD k_PTHrP structure (Harris 2024, seen)",
       "PTHrP secretion of a purely lytic lesion at saturating burden"),
    Parameter("pthrp_blastic", 0.2, "-", 0.0, 1.0, "[calibrated] blastic lesions secrete less PTHrP",
       "PTHrP secretion of a purely blastic lesion at saturating burden"),
    Parameter("rankl_per_pthrp", 1.0, "-", 0.2, 3.0, "[calibrated] Lemaire 2004 pi_P -> RANKL (seen)",
       "relative rise of osteoblastic RANKL per unit PTHrP"),
    Parameter("opg_per_pthrp", 0.5, "-", 0.0, 2.0, "[calibrated] PTH represses OPG (Pivonka 2008, seen)",
       "relative fall of OPG per unit PTHrP"),
    Parameter("osteoblast_suppression_lytic", 2.0, "-", 0.0, 5.0,
       "[calibrated] Ayati 2010 r22 / TIBD k_T,OB (seen)", "extra osteoblast loss in lytic lesions"),
    Parameter("osteoblast_drive_blastic", 3.0, "-", 0.0, 8.0,
       "[calibrated] ET-1/BMP/WNT drive of blastic lesions (research notes section 10)",
       "extra osteoblast recruitment in blastic lesions"),
    Parameter("tgf_beta_growth_gain", 0.0753, "-", 0.05, 2.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); prior: TIBD k_div,TGF (Harris 2024, seen)",
       "relative tumour-growth gain per unit matrix TGF-beta above healthy"),
    Parameter("tgf_beta_growth_max", 2.0, "-", 0.5, 5.0, "[calibrated] receptor saturation",
       "ceiling of the TGF-beta tumour-growth gain"),
    Parameter("tumour_detection_burden", 0.05, "fraction of capacity", 0.01, 0.2,
       "[recalled] research notes section 8: doubling time quoted at T/K of 1-5%",
       "burden at which the quoted doubling time applies (sets the Gompertz rate)"),
    # --- per-primary tumour doubling times (research notes section 8, recalled) --------------
    Parameter("doubling_time_days.breast", 148, "day", 50.0, 150.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); prior: [recalled] research notes section 8",
       "volume doubling time of breast bone metastases at detection"),
    Parameter("doubling_time_days.prostate", 102, "day", 100.0, 300.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "volume doubling time of prostate (mCRPC) bone metastases at detection"),
    Parameter("doubling_time_days.lung", 31.4, "day", 30.0, 200.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "volume doubling time of lung bone metastases at detection"),
    Parameter("doubling_time_days.head_and_neck", 75.0, "day", 50.0, 100.0, "[recalled] research notes section 8",
       "volume doubling time of head-and-neck bone metastases at detection"),
    # --- rebound after RANKL blockade (any agent that inhibits RANKL) -------------------
    Parameter("precursor_reserve_max", 1.0, "-", 0.0, 1.5,
       "[calibrated] CTX overshoot ~+50-100% after stopping denosumab (Bone 2011 JCEM; Cummings 2018 JBMR, recalled)",
       "maximal extra osteoclast recruitment from precursors accumulated under RANKL blockade"),
    Parameter("precursor_accumulation_rate", 1.0 / 180.0, "1/day", 1.0 / 720.0, 1.0 / 30.0,
       "[recalled] osteomorph/precursor accumulation under RANKL inhibition (McDonald 2021 Cell)",
       "rate of precursor accumulation at full RANKL blockade"),
    Parameter("precursor_release_rate", 1.0 / 120.0, "1/day", 1.0 / 365.0, 1.0 / 14.0,
       "[recalled] rebound peaks months after the last dose and fades within ~1-2 years",
       "rate of precursor release once RANKL signalling returns"),
    # --- radiotherapy ------------------------------------------------------------------------
    Parameter("radiation_alpha_per_gy", 0.3, "1/Gy", 0.1, 0.4, "[recalled] LQ model, research notes 6.5",
       "LQ alpha of tumour"),
    Parameter("radiation_alpha_beta_gy", 10.0, "Gy", 5.0, 15.0, "[recalled] research notes 6.5", "tumour alpha/beta"),
    Parameter("radiation_dose_gy", 8.0, "Gy", 4.0, 10.0, "[recalled] single 8 Gy ~ 5x4 Gy for pain",
       "single palliative fraction"),
    # --- skeletal events ---------------------------------------------------------------------
    Parameter("strength_tumour_loss", 0.832, "-", 0.2, 0.9,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: [recalled] CTRA: rigidity loss from cortical/trabecular replacement", "strength lost per unit burden"),
    Parameter("fracture_base_hazard", 0.000114, "1/day", 2.0e-5, 2.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "fracture hazard of a lesion at full strength at a weight-bearing site"),
    Parameter("fracture_strength_slope", 1.16, "-", 1.0, 8.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: Mirels 8 -> ~15%, 9 -> ~33% fracture in ~6 months (research notes 7.1)",
       "steepness: hazard x (1 + slope (1-s))^4"),
    Parameter("fracture_after_fracture", 0.3, "-", 0.05, 1.0, "[recalled] fixation/post-fracture RT",
       "multiplier of a lesion's fracture hazard after it fractured"),
    Parameter("cord_compression_hazard", 5.0e-4, "1/day", 3.0e-4, 3.0e-2, _CAL,
       "cord-compression hazard of a spinal lesion per unit burden above the epidural threshold"),
    Parameter("cord_compression_burden", 0.2, "fraction of capacity", 0.05, 0.5,
       "[recalled] SINS: epidural extension needs a large vertebral lesion", "burden threshold for epidural extension"),
    Parameter("cord_compression_collapse", 3.0, "-", 0.0, 10.0, "[recalled] SINS collapse item",
       "multiplier per unit strength loss (vertebral collapse)"),
    Parameter("radiation_hazard", 0.000296, "1/day", 1.0e-4, 1.0e-2,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "radiotherapy-for-pain hazard of a lesion per unit burden"),
    Parameter("pain_blastic_gain", 1.71, "-", 0.05, 5.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: [recalled] osteoblastic prostate lesions are painful (sensory-nerve sprouting in tumour-bearing bone); "
       "radiotherapy is the commonest SRE of prostate trials (FIZ-05)",
       "relative rise of the radiotherapy hazard of a purely blastic lesion"),
    Parameter("pain_growth_exponent", 0.493, "-", 0.05, 2.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: [recalled] fast-growing lesions distend the periosteum and turn painful sooner",
       "exponent of the lesion growth rate (relative to a 100-day doubling) in the radiotherapy hazard"),
    Parameter("pain_resorption_gain", 2.63, "-", 0.05, 3.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: [recalled] osteoclastic acidosis sensitises bone nociceptors (TRPV1/ASIC3); "
       "antiresorptives relieve bone pain",
       "pain per unit osteoclastic resorption (healthy resorption = 1)"),
    Parameter("prophylactic_surgery_hazard", 0.02, "1/day", 0.001, 0.1,
       "[recalled] Mirels >= 9 -> prophylactic fixation", "surgery hazard per unit strength below threshold"),
    Parameter("impending_fracture_strength", 0.5, "-", 0.3, 0.8,
       "[recalled] CTRA rigidity loss >35%; Mirels >= 9", "long-bone strength below which fixation is offered"),
    Parameter("surgery_after_fracture_long_bone", 0.6, "-", 0.2, 0.9, "[recalled] femoral fractures are fixed",
       "probability of surgery after a long-bone fracture"),
    Parameter("surgery_after_fracture_other", 0.03, "-", 0.0, 0.2,
       "[calibrated] surgery is ~1% of first SREs (STO-08, FIZ-07)", "probability of surgery after another fracture"),
    Parameter("surgery_after_compression", 0.2, "-", 0.05, 0.5, "[recalled] decompression in selected patients",
       "probability of surgery after cord compression"),
    Parameter("hypercalcaemia_hazard", 0.00319, "1/day", 4.0e-5, 4.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "hypercalcaemia hazard per unit of PTHrP-driven resorption (sum of T P uZ)"),
    Parameter("hypercalcaemia_factor.breast", 1.0, "-", 0.3, 3.0, "[recalled] common in breast", "primary factor"),
    Parameter("hypercalcaemia_factor.prostate", 0.1, "-", 0.0, 0.5, "[recalled] rare in prostate", "primary factor"),
    Parameter("hypercalcaemia_factor.lung", 2.0, "-", 0.5, 5.0, "[recalled] squamous lung most common", "primary factor"),
    Parameter("hypercalcaemia_factor.head_and_neck", 2.0, "-", 0.5, 5.0, "[recalled] squamous carcinomas", "primary factor"),
    Parameter("seeding_hazard", 1.5e-3, "1/day", 1.0e-4, 1.0e-2, _CAL,
       "new-bone-lesion hazard per unit total bone tumour burden"),
    Parameter("seeding_suppression", 0.3, "-", 0.0, 0.8,
       "[recalled] denosumab delays bone metastasis modestly (Smith 2012, HR ~0.85)",
       "fraction of seeding removed at full resorption suppression"),
    Parameter("new_lesion_burden", 0.02, "fraction of capacity", 0.005, 0.1, "[recalled] detection on bone scan",
       "burden of a new lesion when it is detected"),
    # --- death -------------------------------------------------------------------------------
    Parameter("death_hazard.breast", 0.000423, "1/day", 2.0e-4, 3.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "baseline death hazard of a reference patient"),
    Parameter("death_hazard.prostate", 0.000421, "1/day", 2.0e-4, 3.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "baseline death hazard of a reference patient"),
    Parameter("death_hazard.lung", 0.00107, "1/day", 1.0e-3, 8.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "baseline death hazard of a reference patient"),
    Parameter("death_hazard.head_and_neck", 0.00129, "1/day", 1.0e-3, 8.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "baseline death hazard of a reference patient"),
    Parameter("death_log_hr_ecog", 0.787, "per ECOG point", 0.2, 0.8,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "log hazard ratio per ECOG point"),
    Parameter("death_log_hr_visceral", 0.136, "-", 0.1, 0.8,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "log hazard ratio of visceral metastases"),
    Parameter("death_growth_exponent", 0.278, "-", 0.05, 2.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: [recalled] the tumour growth-rate constant predicts overall survival (Stein 2011 Clin Cancer Res; "
       "Wilkerson 2017 Lancet Oncol)",
       "exponent of the patient's tumour growth multiplier in the death hazard"),
    Parameter("death_log_hr_age_decade", 0.1, "per decade", 0.0, 0.3, "[recalled]", "log hazard ratio per decade above 65"),
    Parameter("death_log_hr_burden", 0.772, "per unit total burden", 0.02, 1.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
       "log hazard ratio per unit of summed bone tumour burden"),
    Parameter("death_hr_recent_sre", 1.5, "-", 1.0, 3.0, "[seen] Norgaard 2010: 1-y survival 40% vs 47% with SRE",
       "hazard ratio within 90 days of an SRE"),
    # --- adverse events ----------------------------------------------------------------------
    Parameter("onj_hazard", 5.0e-5, "1/day", 2.0e-6, 2.0e-4, _CAL + " (ONJ-01: 1.8% vs 1.3%)",
       "ONJ hazard at full suppression and saturated cumulative exposure"),
    Parameter("onj_exposure_half_days", 365.0, "day", 60.0, 1000.0,
       "[seen] Limones 2020: incidence rises over 1-3 years", "suppression-days of half-maximal ONJ risk"),
    Parameter("onj_dental_risk_hr", 14.6, "-", 2.0, 40.0,
       "[calibrated] closed form for ONJ-03: HR = s (1 - p) / (p (1 - s)) with s = 0.618 of ONJ cases with an "
       "extraction and p = 0.10 dental-risk prevalence (docs/calibration.md); extraction OR ~16 (Kyrgidis 2008 JCO, "
       "recalled)",
       "hazard ratio of poor dental health / extraction"),
    Parameter("onj_jaw_hr", 3.0, "-", 1.0, 10.0, "[recalled] jaw lesions and head-and-neck radiotherapy",
       "hazard ratio of a jaw lesion or a head-and-neck primary"),
    Parameter("hypocalcaemia_hazard", 0.000169, "1/day", 2.0e-5, 1.0e-3,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); INT-07, FIZ-09",
       "hypocalcaemia hazard at full suppression with supplementation and vitamin D"),
    Parameter("hypocalcaemia_blastic_gain", 0.905, "per unit blastic burden", 0.1, 10.0,
       "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
       "prior: [recalled] hungry bone in osteoblastic disease (FIZ-09)", "relative rise per unit blastic burden"),
    Parameter("hypocalcaemia_vitamin_d_hr", 2.0, "-", 1.0, 5.0, "[recalled]", "hazard ratio of vitamin D deficiency"),
    Parameter("hypocalcaemia_no_supplement_hr", 2.5, "-", 1.0, 5.0, "[recalled] label requires Ca + vitamin D",
       "hazard ratio without calcium/vitamin D supplementation"),
    Parameter("renal_background_hazard", 1.0e-4, "1/day", 1.0e-5, 1.0e-3,
       "[seen] placebo renal deterioration 7.7-9% (research notes 7.4)", "background renal deterioration at CrCl 60"),
    Parameter("renal_infusion_hazard", 0.004, "per infusion", 0.001, 0.1,
       "[calibrated] ZA vs placebo at CrCl 30-49: 32.1% vs 7.7% (research notes 7.4)",
       "renal-toxicity cumulative hazard per infusion at reference AUC and CrCl 60"),
    Parameter("renal_crcl_exponent", 2.0, "-", 0.5, 4.0, "[calibrated]", "hazard ~ (60/CrCl)^exponent"),
    Parameter("acute_phase_later_ratio", 0.005, "-", 0.0, 0.5, "[recalled] mostly after the first infusion",
       "later doses relative to the first"),
    Parameter("atypical_fracture_hazard", 5.0e-9, "1/day^2", 1.0e-10, 1.0e-7,
       "[seen] very rare, rises with years of exposure (SE-01)", "hazard per day of deep suppression"),
    Parameter("deep_suppression", 0.8, "-", 0.5, 0.95, "[recalled]", "suppression level counted as deep"),
]

#: The registry: every model parameter, by name (the agents' are added by :func:`register`).
REGISTRY: dict[str, Parameter] = {p.name: p for p in _PARAMETERS}


def register(parameters: tuple[Parameter, ...]) -> None:
    """Add parameters to :data:`REGISTRY`; a name may be registered once (again only as the same row)."""
    for p in parameters:
        if REGISTRY.setdefault(p.name, p) != p:
            raise ValueError(f"model parameter {p.name!r} is registered twice with different rows")


class Parameters:
    """Values of the model parameters (defaults from :data:`REGISTRY`, optionally overridden).

    Attribute access by name (``params.osteoblast_rate``); per-primary parameters through
    :meth:`by_primary`. Overrides must name registered parameters and lie in their range.
    """

    def __init__(self, overrides: Mapping[str, float] | None = None) -> None:
        values = {name: p.value for name, p in REGISTRY.items()}
        for name, value in (overrides or {}).items():
            if name not in REGISTRY:
                raise KeyError(f"unknown model parameter {name!r}")
            p = REGISTRY[name]
            if not p.low <= value <= p.high:
                raise ValueError(f"{name} = {value} outside its plausible range [{p.low}, {p.high}]")
            values[name] = float(value)
        self._values = values

    def __getattr__(self, name: str) -> float:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def by_primary(self, name: str) -> np.ndarray:
        """Values of a per-primary parameter, indexed by primary code."""
        return np.array([self._values[f"{name}.{primary}"] for primary in PRIMARIES])

    def as_dict(self) -> dict[str, float]:
        """All values by name."""
        return dict(self._values)


def markdown_table() -> str:
    """The parameter table of ``docs/model.md`` (a test keeps the document equal to it)."""
    rows = ["| name | value | unit | range | source |", "|---|---|---|---|---|"]
    rows += [
        f"| `{p.name}` | {p.value:.4g} | {p.unit} | {p.low:.4g} – {p.high:.4g} | {p.source} |"
        for p in REGISTRY.values()
    ]
    return "\n".join(rows)
