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
    Parameter(
        "osteoblast_rate",
        0.02,
        "1/day",
        0.01,
        0.05,
        "[seen] Komarova 2003 beta2 (BIOMD0000000148)",
        "osteoblast activity turnover rate beta_B",
    ),
    Parameter(
        "bone_turnover_rate",
        0.004,
        "1/day",
        0.001,
        0.01,
        "[calibrated] lytic lesion loses 30-50% of its mass in 6-12 months (research notes section 10)",
        "bone mass indirect-response rate k_Z",
    ),
    Parameter(
        "woven_bone_strength",
        0.3,
        "-",
        0.0,
        1.0,
        "[recalled] woven bone is weaker than lamellar; bone above healthy mass in blastic lesions",
        "share of bone mass above healthy that counts for strength",
    ),
    # --- vicious cycle -----------------------------------------------------------------------
    Parameter(
        "tumour_signal_half_burden",
        0.1,
        "fraction of capacity",
        0.02,
        0.5,
        "[calibrated]",
        "burden at which tumour-derived signals (PTHrP, osteoblast drive/suppression) are half-maximal",
    ),
    Parameter(
        "interface_half_burden",
        0.01,
        "fraction of capacity",
        0.002,
        0.05,
        "[assumed] metastases start on the endosteal surface and cover the bone surfaces of their region before "
        "they are detected (T ~0.05): bone scans are positive from the first visible lesions",
        "burden at which the bone surfaces of a lesion's region are half covered by tumour in contact with them, "
        "the tumour whose drive sets the woven formation rate (BSAP, radium-223 uptake)",
    ),
    Parameter(
        "pthrp_lytic",
        1.0,
        "-",
        0.2,
        3.0,
        "[calibrated] TIBD k_PTHrP structure (Harris 2024, seen)",
        "PTHrP secretion of a purely lytic lesion at saturating burden",
    ),
    Parameter(
        "pthrp_blastic",
        0.2,
        "-",
        0.0,
        1.0,
        "[calibrated] blastic lesions secrete less PTHrP",
        "PTHrP secretion of a purely blastic lesion at saturating burden",
    ),
    Parameter(
        "rankl_per_pthrp",
        1.0,
        "-",
        0.2,
        3.0,
        "[calibrated] Lemaire 2004 pi_P -> RANKL (seen)",
        "relative rise of osteoblastic RANKL per unit PTHrP",
    ),
    Parameter(
        "opg_per_pthrp",
        0.5,
        "-",
        0.0,
        2.0,
        "[calibrated] PTH represses OPG (Pivonka 2008, seen)",
        "relative fall of OPG per unit PTHrP",
    ),
    Parameter(
        "rankl_osteoclast_survival",
        0.4,
        "-",
        0.1,
        1.0,
        "[calibrated] RANKL is an osteoclast survival signal and OPG raises osteoclast apoptosis (Lacey 2000 "
        "Am J Pathol 157:435, recalled); that it offsets a bisphosphonate's osteoclast loss in proportion to the "
        "lesion's RANKL excess is this model's law, fitted with the bisphosphonate emax and EC50 and "
        "denosumab_imax to the uNTx falls of MK-01..03 and the bisphosphonate trials (docs/calibration.md)",
        "division of a bisphosphonate's osteoclast loss per unit of the lesion's RANKL/OPG excess, E / (1 + k (rho - 1))",
    ),
    Parameter(
        "osteoblast_suppression_lytic",
        2.0,
        "-",
        0.0,
        5.0,
        "[calibrated] Ayati 2010 r22 / TIBD k_T,OB (seen)",
        "extra osteoblast loss in lytic lesions",
    ),
    Parameter(
        "osteoblast_drive_blastic",
        3.0,
        "-",
        0.0,
        8.0,
        "[calibrated] ET-1/BMP/WNT drive of blastic lesions (research notes section 10)",
        "extra osteoblast recruitment in blastic lesions",
    ),
    Parameter(
        "tgf_beta_growth_gain",
        0.0581,
        "-",
        0.05,
        2.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); prior: TIBD k_div,TGF (Harris 2024, seen)",
        "relative tumour-growth gain per unit matrix TGF-beta above healthy",
    ),
    Parameter(
        "tgf_beta_growth_max",
        2.0,
        "-",
        0.5,
        5.0,
        "[calibrated] receptor saturation",
        "ceiling of the TGF-beta tumour-growth gain",
    ),
    Parameter(
        "tgf_beta_pthrp_gain",
        1.0,
        "-",
        0.2,
        3.0,
        "[recalled] TGF-beta raises PTHrP secretion of MDA-MB-231 breast cancer cells (Guise 1996 J Clin Invest "
        "98:1544); a dominant-negative TGF-beta type II receptor lowers their PTHrP and osteolysis in bone, a "
        "constitutively active type I receptor raises both (Yin 1999 J Clin Invest 103:197)",
        "PTHrP induction signal per unit matrix TGF-beta released above healthy resorption",
    ),
    Parameter(
        "calcium_pthrp_gain",
        0.5,
        "-",
        0.0,
        2.0,
        "[recalled] extracellular calcium raises PTHrP secretion of breast cancer cells through the calcium-sensing "
        "receptor (Sanders 2000 Endocrinology 141:4357); resorption lacunae hold millimolar calcium",
        "PTHrP induction signal per unit matrix calcium released above healthy resorption",
    ),
    Parameter(
        "cycle_pthrp_max",
        1.0,
        "-",
        0.3,
        3.0,
        "[recalled] TGF-beta raises PTHrP of tumour cells about two-fold at saturating doses in vitro "
        "(Guise 1996 J Clin Invest 98:1544); receptor saturation keeps the loop bounded",
        "maximal relative rise of tumour PTHrP from matrix TGF-beta and calcium",
    ),
    Parameter(
        "pthrp_induction_rate",
        0.5,
        "1/day",
        0.1,
        2.0,
        "[recalled] PTHrP mRNA and secretion rise within 24-48 h of TGF-beta (Guise 1996 J Clin Invest 98:1544)",
        "rate at which tumour PTHrP follows the matrix signals",
    ),
    Parameter(
        "osteoblast_rankl_blastic",
        0.5,
        "-",
        0.0,
        1.0,
        "[recalled] osteoblasts of osteoblastic prostate metastases express RANKL (Chen 2006 Cancer 107:289); "
        "resorption markers are high in prostate bone disease (uNTx, Brown 2005 JNCI 97:59; Coleman 2005 "
        "JCO 23:4925): woven bone is resorbed and re-formed",
        "relative rise of osteoclast recruitment (RANKL) per unit of the blastic osteoblast drive",
    ),
    # --- heterogeneity between lesions and between patients (simulate.py, drugs.py) ------------
    Parameter(
        "lesion_growth_cv",
        0.3,
        "-",
        0.1,
        0.6,
        "[recalled] lesions of one patient respond and progress unequally on imaging (lesion-level NaF-PET "
        "response heterogeneity within patients with mCRPC, Harmon 2017 Eur J Nucl Med Mol Imaging 44:1820); "
        "smaller than the between-patient spread of tumour growth rates (log-normal CV ~50-100%, Mehrara 2007 "
        "Cancer Res 67:3970)",
        "CV of a lesion's Gompertz rate around its patient's (log-normal, mean the patient's rate)",
    ),
    Parameter(
        "drug_sensitivity_cv",
        0.3,
        "-",
        0.1,
        0.6,
        "[recalled] the population PK/PD models of the antiresorptives carry between-subject variability on the "
        "potency of the marker response (denosumab uNTx IC50, Gibiansky 2012 Clin Pharmacokinet 51:247; "
        "ibandronate CTX EC50, Pillai 2004 J Clin Pharmacol 44:655) of this order",
        "between-patient CV of the drug concentration (or bone pool) of half-maximal effect (log-normal, median 1)",
    ),
    # --- version-2 nodes a custom agent may act on (docs/model.md) --------------------------
    Parameter(
        "il6_recruitment_share",
        0.3,
        "-",
        0.1,
        0.6,
        "[recalled] IL-6 enhances PTHrP-driven bone resorption and hypercalcaemia in vivo, and an anti-IL-6 "
        "antibody lowers both in part (de la Mata 1995 J Clin Invest 95:2846)",
        "share of the tumour-driven excess of osteoclast recruitment carried by tumour IL-6",
    ),
    Parameter(
        "il6_growth_share",
        0.1,
        "-",
        0.0,
        0.3,
        "[recalled] IL-6/STAT3 is an autocrine survival signal of tumour cells in bone (Ara & DeClerck 2010 "
        "Eur J Cancer 46:1223), but siltuximab alone barely slowed castration-resistant prostate cancer "
        "(PSA response 3.8%, Dorff 2010 Clin Cancer Res 16:3028): a small share",
        "share of the Gompertz growth rate in bone that tumour IL-6 supports",
    ),
    Parameter(
        "osteoblast_stimulation_max",
        0.47,
        "-",
        0.2,
        1.5,
        "[calibrated] romosozumab 210 mg monthly raised lumbar-spine BMD 13.3% in 12 months (FRAME, Cosman 2016 "
        "NEJM 375:1532); tumour-free bone at full stimulation gains 13% in 12 months with this value",
        "maximal relative rise of osteoblast production at full bone-formation stimulation",
    ),
    Parameter(
        "tumour_detection_burden",
        0.05,
        "fraction of capacity",
        0.01,
        0.2,
        "[recalled] research notes section 8: doubling time quoted at T/K of 1-5%",
        "burden at which the quoted doubling time applies (sets the Gompertz rate)",
    ),
    # --- per-primary tumour doubling times (research notes section 8, recalled) --------------
    Parameter(
        "doubling_time_days.breast",
        188.0,
        "day",
        50.0,
        300.0,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md); range: "
        "[recalled] volume doubling times of hormone-receptor-positive breast cancers on serial imaging of about "
        "100-300 days, the slowest of the subtypes (Ryu 2014 Eur Radiol 24:2227)",
        "volume doubling time of hormone-receptor-positive breast bone metastases at detection (the other subtypes "
        "grow faster: her2_positive_growth_factor, triple_negative_growth_factor)",
    ),
    Parameter(
        "doubling_time_days.prostate",
        102.0,
        "day",
        100.0,
        300.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
        "volume doubling time of prostate (mCRPC) bone metastases at detection",
    ),
    Parameter(
        "doubling_time_days.lung",
        31.1,
        "day",
        30.0,
        200.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md)",
        "volume doubling time of lung bone metastases at detection",
    ),
    Parameter(
        "doubling_time_days.head_and_neck",
        75.0,
        "day",
        50.0,
        100.0,
        "[recalled] research notes section 8",
        "volume doubling time of head-and-neck bone metastases at detection",
    ),
    # --- rebound after RANKL blockade (any agent that inhibits RANKL) -------------------
    Parameter(
        "precursor_reserve_max",
        1.3,
        "-",
        0.0,
        1.5,
        "[calibrated] CTX overshoot ~+50-100% after stopping denosumab (Bone 2011 JCEM; Cummings 2018 JBMR, recalled): "
        "the uninvolved skeleton's resorption peaks at 1.53 a year after the last 120 mg dose",
        "maximal extra osteoclast recruitment from precursors accumulated under RANKL blockade",
    ),
    Parameter(
        "precursor_accumulation_rate",
        1.0 / 180.0,
        "1/day",
        1.0 / 720.0,
        1.0 / 30.0,
        "[recalled] osteomorph/precursor accumulation under RANKL inhibition (McDonald 2021 Cell)",
        "rate of precursor accumulation at full RANKL blockade",
    ),
    Parameter(
        "precursor_release_rate",
        1.0 / 120.0,
        "1/day",
        1.0 / 365.0,
        1.0 / 14.0,
        "[recalled] rebound peaks months after the last dose and fades within ~1-2 years",
        "rate of precursor release once RANKL signalling returns",
    ),
    # --- radiotherapy ------------------------------------------------------------------------
    Parameter(
        "radiation_alpha_per_gy",
        0.3,
        "1/Gy",
        0.1,
        0.4,
        "[recalled] LQ model, tumour alpha 0.2-0.35/Gy (Fowler 1989 Br J Radiol 62:679); "
        "8 Gy x 1 then kills ln S = -4.32, today's value",
        "LQ alpha of tumour: a course kills ln S = -alpha BED",
    ),
    Parameter(
        "radiation_alpha_beta_gy",
        10.0,
        "Gy",
        5.0,
        15.0,
        "[recalled] tumour alpha/beta ~10 Gy (Fowler 1989 Br J Radiol 62:679)",
        "tumour alpha/beta of the BED of a course",
    ),
    Parameter(
        "prophylactic_rt_risk",
        0.15,
        "probability in 6 months",
        0.04,
        0.33,
        "[recalled] Mirels 1989 Clin Orthop 249:256: score 8 (impending, clinical judgement) ~15% fracture "
        "in ~6 months; high-risk lesions irradiated in Gillespie 2024 JCO 42:38",
        "fracture + cord-compression risk above which an asymptomatic lesion is high-risk",
    ),
    # --- skeletal events ---------------------------------------------------------------------
    Parameter(
        "strength_tumour_loss",
        0.845,
        "-",
        0.2,
        0.9,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
        "prior: [recalled] CTRA: rigidity loss from cortical/trabecular replacement",
        "strength lost per unit burden",
    ),
    Parameter(
        "fracture_base_hazard",
        0.000116,
        "1/day",
        2.0e-5,
        2.0e-3,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md)",
        "fracture hazard of a lesion at full strength at a weight-bearing site",
    ),
    Parameter(
        "fracture_strength_slope",
        1.11,
        "-",
        1.0,
        8.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
        "prior: Mirels 8 -> ~15%, 9 -> ~33% fracture in ~6 months (research notes 7.1)",
        "steepness: hazard x (1 + slope (1-s))^4",
    ),
    Parameter(
        "fracture_after_fracture",
        0.3,
        "-",
        0.05,
        1.0,
        "[recalled] fixation/post-fracture RT",
        "multiplier of a lesion's fracture hazard after it fractured",
    ),
    Parameter(
        "cord_compression_hazard",
        5.0e-4,
        "1/day",
        3.0e-4,
        3.0e-2,
        _CAL,
        "cord-compression hazard of a spinal lesion per unit burden above the epidural threshold",
    ),
    Parameter(
        "cord_compression_burden",
        0.2,
        "fraction of capacity",
        0.05,
        0.5,
        "[recalled] SINS: epidural extension needs a large vertebral lesion",
        "burden threshold for epidural extension",
    ),
    Parameter(
        "cord_compression_collapse",
        3.0,
        "-",
        0.0,
        10.0,
        "[recalled] SINS collapse item",
        "multiplier per unit strength loss (vertebral collapse)",
    ),
    Parameter(
        "radiation_hazard",
        0.000731,
        "1/day",
        1.0e-4,
        1.0e-2,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md)",
        "radiotherapy-for-pain hazard of a lesion per unit burden",
    ),
    Parameter(
        "pain_blastic_gain",
        0.927,
        "-",
        0.05,
        5.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
        "prior: [recalled] osteoblastic prostate lesions are painful (sensory-nerve sprouting in tumour-bearing bone); "
        "radiotherapy is the commonest SRE of prostate trials (FIZ-05)",
        "relative rise of the radiotherapy hazard of a purely blastic lesion",
    ),
    Parameter(
        "pain_growth_exponent",
        0.729,
        "-",
        0.05,
        2.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); "
        "prior: [recalled] fast-growing lesions distend the periosteum and turn painful sooner",
        "exponent of the lesion growth rate (relative to a 100-day doubling) in the radiotherapy hazard",
    ),
    Parameter(
        "pain_acid_gain",
        0.982,
        "-",
        0.1,
        2.0,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md; at 0.982 acid is 70% of the drive of an "
        "untreated lytic lesion, above the prior's half); prior: [recalled] osteoclast acid excites bone "
        "nociceptors through TRPV1 and ASIC3 (Nagae 2007 Bone 41:205; "
        "Yoneda 2011 Bone 48:100); blocking osteoclasts (OPG, bisphosphonates) roughly halves pain behaviour in "
        "mice with bone tumours (Honore 2000 Nat Med 6:521): acid ~ half the pain of an untreated lytic lesion "
        "(resorption ~2x healthy)",
        "pain drive per unit osteoclastic resorption (healthy = 1), relative to the tumour's own pain",
    ),
    Parameter(
        "pain_burden_exponent",
        1.0,
        "-",
        0.5,
        1.5,
        "[recalled] sensory nerve fibres sprout through tumour-bearing bone and are injured by the growing tumour "
        "(Jimenez-Andrade 2010 J Neurosci 30:14649; Mantyh 2014 Eur J Neurosci 39:508); taken proportional to "
        "the tumour mass (the previous law), not fitted",
        "exponent of the lesion burden in its pain drive",
    ),
    Parameter(
        "pain_sensitisation_days",
        390.0,
        "days",
        90.0,
        730.0,
        "[recalled] sensory fibres sprouted into tumour-bearing bone and sensitised by it persist after the "
        "tumour (Mantyh 2014 Eur J Neurosci 39:508), a neuropathic component that resolves over months to "
        "years; reference: about half of the neuropathic pain present 3 months after herpes zoster is gone by "
        "12 months (post-herpetic neuralgia, Helgason 2000 BMJ 321:794): 270 days / ln 2 = 390 days",
        "decay time of a lesion's nerve sensitisation once its pain drive has fallen below it",
    ),
    Parameter(
        "pain_sensitised_share",
        0.25,
        "-",
        0.05,
        0.95,
        "[set] with pain_sensitised_spread from Chow 2007 (J Clin Oncol 25:1423, evaluable patients, [recalled]): "
        "pain gone (complete response) in ~28% and a response in ~72% after either schedule; check: 36% of "
        "lesions then have pain mostly from sensitisation, against a neuropathic mechanism in 39% of patients "
        "with cancer pain (19% pure, 20% mixed: Bennett 2012 Pain 153:359, [recalled])",
        "median share of a lesion's pain held by its nerve sensitisation (logit-normal across lesions)",
    ),
    Parameter(
        "pain_sensitised_spread",
        3.0,
        "-",
        0.5,
        6.0,
        "[set] with pain_sensitised_share from Chow 2007 (evaluable patients): ~28% complete and ~28% no "
        "response need lesions whose pain is mostly tumour and lesions whose pain is mostly sensitisation "
        "(docs/calibration.md)",
        "SD of the logit of the sensitised share across lesions",
    ),
    Parameter(
        "pain_baseline_score",
        6.0,
        "points of 10",
        4.0,
        8.0,
        "[recalled] worst pain ~6 of 10 at entry in the palliative radiotherapy trials (Dutch Bone Metastasis "
        "Study, Steenland 1999 Radiother Oncol 52:101; RTOG 97-14, Hartsell 2005 J Natl Cancer Inst 97:798); "
        "response categories of the international consensus (Chow 2012 Int J Radiat Oncol Biol Phys 82:1730): "
        "partial >= 2 points less, complete 0",
        "pain score of an irradiated lesion at its course (the pain scale of the response categories)",
    ),
    Parameter(
        "reirradiation_tolerance_bed2_gy",
        135.0,
        "Gy2",
        100.0,
        150.0,
        "[recalled] no myelopathy below a cumulative spinal-cord BED of 135.5 Gy2 after re-irradiation "
        "(Nieder 2006 Int J Radiat Oncol Biol Phys 66:1446)",
        "cumulative normal-tissue BED (alpha/beta 2 Gy) that leaves no room for a further course",
    ),
    Parameter(
        "prophylactic_surgery_hazard",
        0.02,
        "1/day",
        0.001,
        0.1,
        "[recalled] Mirels >= 9 -> prophylactic fixation",
        "surgery hazard per unit strength below threshold",
    ),
    Parameter(
        "impending_fracture_strength",
        0.5,
        "-",
        0.3,
        0.8,
        "[recalled] CTRA rigidity loss >35%; Mirels >= 9",
        "long-bone strength below which fixation is offered",
    ),
    Parameter(
        "surgery_after_fracture_long_bone",
        0.6,
        "-",
        0.2,
        0.9,
        "[recalled] femoral fractures are fixed",
        "probability of surgery after a long-bone fracture",
    ),
    Parameter(
        "surgery_after_fracture_other",
        0.03,
        "-",
        0.0,
        0.2,
        "[calibrated] surgery is ~1% of first SREs (STO-08, FIZ-07)",
        "probability of surgery after another fracture",
    ),
    Parameter(
        "surgery_after_compression",
        0.2,
        "-",
        0.05,
        0.5,
        "[recalled] decompression in selected patients",
        "probability of surgery after cord compression",
    ),
    Parameter(
        "hypercalcaemia_hazard",
        0.00164,
        "1/day",
        4.0e-5,
        4.0e-3,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md) as 3.19e-3 before the matrix induction of "
        "PTHrP; x0.3 so untreated breast reference cohorts keep their hypercalcaemia count",
        "hypercalcaemia hazard per unit of PTHrP-driven resorption (sum of T P uZ)",
    ),
    Parameter("hypercalcaemia_factor.breast", 1.0, "-", 0.3, 3.0, "[recalled] common in breast", "primary factor"),
    Parameter("hypercalcaemia_factor.prostate", 0.1, "-", 0.0, 0.5, "[recalled] rare in prostate", "primary factor"),
    Parameter(
        "hypercalcaemia_factor.lung", 2.0, "-", 0.5, 5.0, "[recalled] squamous lung most common", "primary factor"
    ),
    Parameter(
        "hypercalcaemia_factor.head_and_neck", 2.0, "-", 0.5, 5.0, "[recalled] squamous carcinomas", "primary factor"
    ),
    Parameter(
        "seeding_hazard",
        1.5e-3,
        "1/day",
        1.0e-4,
        1.0e-2,
        _CAL,
        "new-bone-lesion hazard per unit total bone tumour burden at healthy turnover",
    ),
    Parameter(
        "niche_resorption_exponent",
        0.18,
        "-",
        0.0,
        0.5,
        "[recalled] the pre-metastatic niche: tumour cells seed and grow where bone is remodelled (Kaplan 2005 "
        "Nature 438:820); antiresorptives lower bone recurrence modestly: denosumab bone-metastasis-free survival "
        "HR 0.85 (Smith 2012 Lancet 379:39), adjuvant bisphosphonates RR 0.83 (EBCTCG 2015 Lancet 386:1353); "
        "0.18 keeps the previous seeding on zoledronic acid (x0.77)",
        "new-lesion seeding ~ (systemic resorption)^exponent",
    ),
    Parameter(
        "new_lesion_burden",
        0.02,
        "fraction of capacity",
        0.005,
        0.1,
        "[recalled] detection on bone scan",
        "burden of a new lesion when it is detected",
    ),
    # --- death -------------------------------------------------------------------------------
    Parameter(
        "death_hazard.breast",
        0.000773,
        "1/day",
        2.0e-4,
        3.0e-3,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md)",
        "baseline death hazard of a reference patient",
    ),
    Parameter(
        "death_hazard.prostate",
        5.60e-4,
        "1/day",
        2.0e-4,
        3.0e-3,
        "[calibrated] fitted by `vtrial calibrate` after the disease control of the usual care (docs/calibration.md)",
        "baseline death hazard of a reference patient",
    ),
    Parameter(
        "death_hazard.lung",
        0.00249,
        "1/day",
        1.0e-3,
        8.0e-3,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md)",
        "baseline death hazard of a reference patient",
    ),
    Parameter(
        "death_hazard.head_and_neck",
        0.00275,
        "1/day",
        1.0e-3,
        8.0e-3,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md)",
        "baseline death hazard of a reference patient",
    ),
    Parameter(
        "death_log_hr_ecog",
        0.743,
        "per ECOG point",
        0.2,
        0.8,
        "[calibrated] fitted by `vtrial calibrate` after the disease control of the usual care (docs/calibration.md)",
        "log hazard ratio per ECOG point",
    ),
    Parameter(
        "death_log_hr_visceral",
        0.738,
        "-",
        0.1,
        0.8,
        "[calibrated] fitted by `vtrial calibrate` after the disease control of the usual care (docs/calibration.md)",
        "log hazard ratio of visceral metastases",
    ),
    Parameter(
        "death_growth_exponent",
        0.655,
        "-",
        0.05,
        2.0,
        "[calibrated] fitted by `vtrial calibrate` after the disease control of the usual care (docs/calibration.md); "
        "prior: [recalled] the tumour growth-rate constant predicts overall survival (Stein 2011 Clin Cancer Res; "
        "Wilkerson 2017 Lancet Oncol)",
        "exponent of the patient's tumour growth multiplier in the death hazard",
    ),
    Parameter(
        "death_log_hr_age_decade", 0.1, "per decade", 0.0, 0.3, "[recalled]", "log hazard ratio per decade above 65"
    ),
    Parameter(
        "death_log_hr_burden",
        0.447,
        "per unit total burden",
        0.02,
        1.0,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes (docs/calibration.md)",
        "log hazard ratio per unit of summed bone tumour burden",
    ),
    Parameter(
        "sre_hr_prior_sre",
        1.5,
        "-",
        1.2,
        2.0,
        "[recalled] a skeletal event before randomisation raised the hazard of an on-study SRE by ~1.3-1.6 in the "
        "multivariable models of the phase 3 trials (zoledronic acid in prostate cancer, Saad 2004 JNCI 96:879; "
        "denosumab vs zoledronic acid, pooled, Lipton 2012 Eur J Cancer 48:3082)",
        "skeletal frailty of a patient with a prior SRE: multiplies every lesion's local-event weights",
    ),
    Parameter(
        "death_hr_recent_sre",
        1.5,
        "-",
        1.0,
        3.0,
        "[seen] Norgaard 2010: 1-y survival 40% vs 47% with SRE",
        "hazard ratio within 90 days of an SRE",
    ),
    # --- adverse events ----------------------------------------------------------------------
    Parameter(
        "onj_hazard",
        5.0e-5,
        "1/day",
        2.0e-6,
        2.0e-4,
        _CAL + " (ONJ-01: 1.8% vs 1.3%)",
        "ONJ hazard at full suppression and saturated cumulative exposure",
    ),
    Parameter(
        "onj_exposure_half_days",
        365.0,
        "day",
        60.0,
        1000.0,
        "[seen] Limones 2020: incidence rises over 1-3 years",
        "suppression-days of half-maximal ONJ risk",
    ),
    Parameter(
        "onj_dental_risk_hr",
        14.6,
        "-",
        2.0,
        40.0,
        "[calibrated] closed form for ONJ-03: HR = s (1 - p) / (p (1 - s)) with s = 0.618 of ONJ cases with an "
        "extraction and p = 0.10 dental-risk prevalence (docs/calibration.md); extraction OR ~16 (Kyrgidis 2008 JCO, "
        "recalled)",
        "hazard ratio of poor dental health / extraction",
    ),
    Parameter(
        "onj_jaw_hr",
        3.0,
        "-",
        1.0,
        10.0,
        "[recalled] jaw lesions and head-and-neck radiotherapy",
        "hazard ratio of a jaw lesion or a head-and-neck primary",
    ),
    Parameter(
        "renal_background_hazard",
        1.0e-4,
        "1/day",
        1.0e-5,
        1.0e-3,
        "[seen] placebo renal deterioration 7.7-9% (research notes 7.4)",
        "background renal deterioration at CrCl 60",
    ),
    Parameter(
        "renal_infusion_hazard",
        0.004,
        "per infusion",
        0.001,
        0.1,
        "[calibrated] ZA vs placebo at CrCl 30-49: 32.1% vs 7.7% (research notes 7.4)",
        "renal-toxicity cumulative hazard per infusion at reference AUC and CrCl 60",
    ),
    Parameter("renal_crcl_exponent", 2.0, "-", 0.5, 4.0, "[calibrated]", "hazard ~ (60/CrCl)^exponent"),
    Parameter(
        "renal_recovery_median_days",
        60.0,
        "day",
        14.0,
        365.0,
        "[recalled] serum creatinine improved over weeks to months after zoledronate was stopped in "
        "toxic acute tubular necrosis, not in every patient (Markowitz 2003 Kidney Int 64:281); the label "
        "resumes dosing once creatinine is within 10% of baseline (Zometa label)",
        "median time from renal deterioration to creatinine back within 10% of baseline (exponential)",
    ),
    Parameter(
        "acute_phase_later_ratio",
        0.005,
        "-",
        0.0,
        0.5,
        "[recalled] mostly after the first infusion",
        "later doses relative to the first",
    ),
    Parameter(
        "atypical_fracture_hazard",
        5.6e-9,
        "1/day^2",
        1.0e-9,
        3.0e-8,
        "[calibrated] ~1-2 per 10,000 patient-years in years 1-2 of bisphosphonate rising to ~10-13 after 5-8 years "
        "(Black 2010 NEJM 362:1761; Schilcher 2011 NEJM 364:1728; Dell 2012 JBMR 27:2544); 0.1-1% over 2-5 years "
        "of monthly zoledronic acid or denosumab in oncology; the model's rates are measured in docs/model.md "
        "(atypical_fractures)",
        "atypical femoral fracture hazard per day of accumulated microdamage",
    ),
    # --- disease stage and background therapy (vtrial.model.systemic) --------------------------
    # Kill rates are log-kill per day added to the Gompertz equation of every bone lesion of a
    # prostate patient, relative to the calibrated castration-resistant disease on continued
    # androgen deprivation (the Saad 2002 / Fizazi 2011 populations). Calibrated on a
    # CHAARTED-like cohort (protocols/prostate-castration-sensitive.toml; docs/model.md).
    Parameter(
        "androgen_deprivation_kill_sensitive",
        0.03,
        "1/day",
        0.003,
        0.05,
        "[calibrated] castration-sensitive disease regresses on ADT (PSA falls >90% in most within months); "
        "toward ZAPCA median time to first SRE 45.9 months on combined androgen blockade "
        "(Kamba 2017 Int J Clin Oncol, recalled); the model reaches ~30 (docs/model.md)",
        "tumour kill of androgen deprivation in castration-sensitive prostate cancer",
    ),
    Parameter(
        "androgen_deprivation_kill_resistant",
        0.0,
        "1/day",
        0.0,
        0.002,
        "[recalled] castration-resistant disease grows at castrate testosterone; continued ADT is part of the "
        "calibrated resistant baseline",
        "tumour kill of androgen deprivation once castration-resistant",
    ),
    Parameter(
        "abiraterone_kill_sensitive",
        0.01,
        "1/day",
        0.0,
        0.03,
        "[calibrated] deeper PSA responses with ADT + abiraterone than ADT alone (LATITUDE, Fizazi 2017 NEJM 377:352)",
        "extra tumour kill of abiraterone-prednisone in castration-sensitive disease",
    ),
    Parameter(
        "abiraterone_kill_resistant",
        0.005,
        "1/day",
        0.0,
        0.01,
        "[calibrated] LATITUDE time to PSA progression 33.2 vs 7.4 months (Fizazi 2017 NEJM 377:352); "
        "rPFS 16.5 vs 8.3 months in mCRPC (COU-AA-302, Ryan 2013 NEJM 368:138)",
        "tumour kill of abiraterone-prednisone in castration-resistant disease (and on the resistant clone)",
    ),
    Parameter(
        "enzalutamide_kill_sensitive",
        0.01,
        "1/day",
        0.0,
        0.03,
        "[calibrated] as abiraterone; ARCHES rPFS HR 0.39 (Armstrong 2019 JCO 37:2974)",
        "extra tumour kill of enzalutamide in castration-sensitive disease",
    ),
    Parameter(
        "enzalutamide_kill_resistant",
        0.005,
        "1/day",
        0.0,
        0.01,
        "[calibrated] as abiraterone; PREVAIL rPFS HR 0.19 in mCRPC (Beer 2014 NEJM 371:424)",
        "tumour kill of enzalutamide in castration-resistant disease (and on the resistant clone)",
    ),
    Parameter(
        "docetaxel_kill",
        0.012,
        "1/day",
        0.0,
        0.05,
        "[calibrated] CHAARTED median time to castration resistance 20.2 vs 11.7 months with docetaxel "
        "(Sweeney 2015 NEJM 373:737)",
        "tumour kill of docetaxel (and of chemotherapy in prostate cancer) during its course",
    ),
    Parameter(
        "docetaxel_course_days",
        126.0,
        "day",
        84.0,
        210.0,
        "[seen] CHAARTED: six 3-weekly cycles (Sweeney 2015 NEJM 373:737)",
        "length of a docetaxel course",
    ),
    Parameter(
        "castration_resistance_hazard",
        5.7e-3,
        "1/day per unit entry burden",
        1.0e-3,
        3.0e-2,
        "[calibrated] CHAARTED median time to castration resistance 11.7 months on ADT alone (Sweeney 2015 NEJM 373:737)",
        "hazard of castration resistance per unit of the castration-resistant clone (entry bone burden = 1)",
    ),
    Parameter(
        "death_hr_castration_sensitive",
        0.2,
        "-",
        0.1,
        1.0,
        "[calibrated] toward CHAARTED median overall survival ~47 months on ADT alone (Kyriakopoulos 2018 JCO 36:1080); "
        "the model falls short of it (measured in docs/model.md: castration_sensitive)",
        "non-skeletal death hazard of castration-sensitive disease under hormonal therapy, relative to resistant",
    ),
    Parameter(
        "resistant_clone_growth_rate",
        0.0058,
        "1/day",
        0.002,
        0.015,
        "[recalled] PSA doubling time of ~3-6 months at castration-resistant progression",
        "growth rate of the castration-resistant clone under androgen deprivation",
    ),
    # --- disease control by the usual care (breast, lung, head and neck) ----------------------
    Parameter(
        "disease_control_kill",
        0.2,
        "-",
        0.2,
        2.0,
        "[recalled] the Norton-Simon hypothesis: therapy kills in proportion to the growth rate of the untreated "
        "Gompertzian tumour (Norton & Simon 1977 Cancer Treat Rep 61:1307); the multiple is a reasoned estimate "
        "(0.2: growth barely slowed; 1: growth stops at the detection burden; 2: regression), hand-tuned to the "
        "SRE rates of the trials run under usual care (docs/calibration.md)",
        "log-kill per day of disease under control, as a multiple of the tumour's growth rate at the detection "
        "burden (ln 2 / doubling time)",
    ),
    Parameter(
        "endocrine_control_days",
        406.0,
        "day",
        180.0,
        540.0,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes; prior: [recalled] first-line letrozole, median time to progression 41 weeks (Mouridsen 2001 J Clin Oncol 19:2596)",
        "median duration of disease control of a first line of endocrine therapy (breast)",
    ),
    Parameter(
        "chemotherapy_control_days",
        120.0,
        "day",
        90.0,
        240.0,
        "[recalled] first-line platinum doublets in non-small-cell lung cancer, median time to progression 3.6 "
        "months (Schiller 2002 N Engl J Med 346:92); head and neck 3.3 months on platinum-fluorouracil, 5.6 with "
        "cetuximab (Vermorken 2008 N Engl J Med 359:1116)",
        "median duration of disease control of a first line of chemotherapy (outside prostate cancer)",
    ),
    Parameter(
        "her2_targeted_control_days",
        225.0,
        "day",
        180.0,
        560.0,
        "[recalled] first-line trastuzumab with chemotherapy in HER2-positive metastatic breast cancer, median time "
        "to progression 7.4 months (Slamon 2001 N Engl J Med 344:783); 18.5 months of progression-free survival "
        "with pertuzumab added (Baselga 2012 N Engl J Med 366:109) at the top of the range",
        "median duration of disease control of a first line of anti-HER2 therapy (HER2-positive breast cancer)",
    ),
    Parameter(
        "her2_positive_growth_factor",
        1.6,
        "-",
        1.0,
        2.5,
        "[recalled] volume doubling times of breast cancers on serial imaging are shortest in triple-negative and "
        "HER2-positive tumours and longest in hormone-receptor-positive ones, about 2-fold apart (Ryu 2014 Eur "
        "Radiol 24:2227)",
        "tumour growth rate of a HER2-positive breast cancer relative to a hormone-receptor-positive one",
    ),
    Parameter(
        "triple_negative_growth_factor",
        2.2,
        "-",
        1.5,
        3.5,
        "[recalled] as her2_positive_growth_factor: triple-negative tumours double fastest",
        "tumour growth rate of a triple-negative breast cancer relative to a hormone-receptor-positive one",
    ),
    Parameter(
        "control_line_ratio",
        0.76,
        "-",
        0.4,
        0.9,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes; prior: [recalled] later lines control disease for shorter: second-line docetaxel in lung cancer, time to "
        "progression 10.6 weeks (Shepherd 2000 J Clin Oncol 18:2095) against 3.6 months first line; second-line "
        "endocrine therapy in breast cancer about 5.5 months (Osborne 2002 J Clin Oncol 20:3386) against 9.4",
        "median control of each line of therapy relative to the line before",
    ),
    Parameter(
        "control_switch_days",
        56.0,
        "day",
        28.0,
        120.0,
        "[reasoned estimate] progression is found at restaging every 8-12 weeks and the next line starts within "
        "weeks; the disease grows uncontrolled meanwhile",
        "days of uncontrolled growth between the end of one line's control and the next line",
    ),
    Parameter(
        "control_bone_only_ratio",
        2.5,
        "-",
        1.0,
        3.0,
        "[recalled] disease confined to the skeleton runs the longest course in breast cancer (Coleman & Rubens "
        "1987 Br J Cancer 55:61); the ratio is a reasoned estimate",
        "median control of a patient without visceral metastases relative to one with them",
    ),
    Parameter(
        "death_hr_disease_control",
        0.387,
        "-",
        0.2,
        1.0,
        "[calibrated] fitted by `vtrial calibrate` with the breast-cancer subtypes; prior: [reasoned estimate] disease under control outside bone (viscera, nodes) threatens life less than "
        "progressing disease; as death_hr_castration_sensitive for prostate cancer",
        "non-skeletal death hazard of disease under control by the usual care, relative to progressing disease",
    ),
    # --- haematological toxicity (neutropenia, thrombocytopenia; version-2 protocols) ---------
    Parameter(
        "neutropenia_background_hazard",
        2.1e-5,
        "1/day",
        5e-6,
        1e-4,
        "[derived] ALSYMPCA placebo grade 3-4 neutropenia 0.7% (Parker 2013 NEJM 369:213) over ~11 months",
        "hazard of grade 3-4 neutropenia of advanced cancer without a marrow-toxic agent",
    ),
    Parameter(
        "thrombocytopenia_background_hazard",
        6.0e-5,
        "1/day",
        1e-5,
        3e-4,
        "[derived] ALSYMPCA placebo grade 3-4 thrombocytopenia 2.0% (Parker 2013) over ~11 months",
        "hazard of grade 3-4 thrombocytopenia of advanced cancer without a marrow-toxic agent",
    ),
    # --- the skeleton outside the lesions (vtrial.model.skeleton) -------------------------------
    Parameter(
        "androgen_deprivation_rankl_rise",
        0.6,
        "-",
        0.2,
        1.5,
        "[recalled] bone-resorption markers rise ~50-100% in the first year of ADT (Greenspan 2005 JCEM 90:6410)",
        "relative rise of systemic osteoclast recruitment (RANKL) on androgen deprivation",
    ),
    Parameter(
        "aromatase_inhibitor_rankl_rise",
        0.4,
        "-",
        0.1,
        1.0,
        "[recalled] anastrozole: lumbar BMD -6% over 5 years (ATAC bone substudy, Eastell 2008 JCO 26:1051)",
        "relative rise of systemic osteoclast recruitment on an aromatase inhibitor",
    ),
    Parameter(
        "glucocorticoid_rankl_rise",
        0.3,
        "-",
        0.0,
        1.0,
        "[recalled] glucocorticoids raise RANKL and lower OPG (Hofbauer 1999 Endocrinology 140:4382); "
        "prednisone 10 mg/day with abiraterone",
        "relative rise of systemic osteoclast recruitment on prednisone 10 mg/day (with abiraterone)",
    ),
    Parameter(
        "systemic_bone_turnover_rate",
        2.0e-4,
        "1/day",
        1.0e-4,
        3.0e-3,
        "[calibrated] ADT loses ~3-5% of BMD in year 1 and ~8% by year 5 (2-5%/year, Greenspan 2005 JCEM 90:6410; "
        "Shahinian 2005 NEJM 352:154) with the remodelling space, and denosumab's gain in 3 years (FREEDOM lumbar "
        "9.2%, total hip 6.0%, Cummings 2009 NEJM 361:756); the model's figures: docs/model.md (skeleton_turnover)",
        "rate k of the bone-mass law of uninvolved bone at healthy turnover (times the osteoclast activity)",
    ),
    Parameter(
        "systemic_formation_exponent",
        0.0793,
        "-",
        0.0,
        0.5,
        "[seen] OpenBoneMin lumbar spine gamma_OB (Riggs & Peterson 2012 CPT:PSP)",
        "exponent of osteoblast activity in the bone-mass law of uninvolved bone",
    ),
    Parameter(
        "systemic_resorption_exponent",
        0.31,
        "-",
        0.05,
        0.6,
        "[seen] OpenBoneMin femoral neck gamma_OC (Riggs & Peterson 2012 CPT:PSP)",
        "exponent of osteoclast activity in the bone-mass law of uninvolved bone",
    ),
    Parameter(
        "remodelling_space",
        0.06,
        "-",
        0.03,
        0.1,
        "[recalled] the bone-remodelling transient: resorption cavities not yet refilled hold ~4-8% of "
        "trabecular BMD at normal turnover, closed by an antiresorptive (most of the first-year BMD gain) and "
        "reopened when turnover rises (Heaney 1994 JBMR 9:1515); after stopping denosumab the BMD gained over "
        "2-3 years is lost within ~12 months (Bone 2011 JCEM 96:972; Cummings 2018 JBMR 33:190)",
        "remodelling space of uninvolved bone at healthy turnover, a fraction of its density",
    ),
    Parameter(
        "remodelling_period_days",
        120.0,
        "day",
        60.0,
        200.0,
        "[recalled] a trabecular BMU refills its cavity over ~3-6 months (formation period; Eriksen 1994 "
        "Endocr Rev 15:275)",
        "time constant of the remodelling space following osteoclast activity",
    ),
    Parameter(
        "remodelling_space_fracture_exponent",
        0.3,
        "-",
        0.0,
        1.0,
        "[calibrated] FREEDOM: denosumab -68% new vertebral fractures in 3 years (Cummings 2009 NEJM 361:756) of "
        "which the BMD gain explains about a third (Austin 2012 JBMR 27:687); high resorption markers predict "
        "fractures independently of BMD (Garnero 1996 JBMR 11:1531); gives -64% with density, and a 5-year "
        "hazard ratio of androgen deprivation 1.63 (Shahinian 2005: 19.4% vs 12.6% of men)",
        "exponent of the open remodelling space relative to healthy in the osteoporotic fracture hazard",
    ),
    Parameter(
        "osteoporotic_fracture_hazard",
        7.4e-5,
        "1/day",
        2.0e-5,
        3.0e-4,
        "[derived] 12.6% fractures in 5 years without ADT (Shahinian 2005 NEJM 352:154): -ln(1-0.126)/1826 d",
        "fracture hazard of uninvolved bone at the entry bone density",
    ),
    Parameter(
        "bmd_sd_fraction",
        0.12,
        "-",
        0.08,
        0.16,
        "[recalled] one SD of BMD is ~10-12% of the young-adult mean",
        "one standard deviation of bone mineral density, as a fraction of the entry density",
    ),
    Parameter(
        "fracture_hr_per_sd",
        2.0,
        "-",
        1.4,
        3.0,
        "[recalled] fracture risk ~doubles per SD of BMD lost (Marshall 1996 BMJ 312:1254: RR 1.5-2.6)",
        "hazard ratio of an osteoporotic fracture per SD of bone density lost",
    ),
    Parameter(
        "multiple_fracture_share",
        0.387,
        "-",
        0.25,
        0.5,
        "[seen] FREEDOM placebo: 38.7% of women with a new vertebral fracture had several (Cummings 2018 JBMR 33:190)",
        "share of osteoporotic fractures involving more than one vertebra at stable density",
    ),
    Parameter(
        "multiple_fracture_loss_gain",
        20.0,
        "-",
        0.0,
        30.0,
        "[calibrated] after stopping denosumab 60.7% of women with a new vertebral fracture had several vs 38.7% on "
        "placebo (Cummings 2018 JBMR 33:190): odds ratio 2.45 while the model loses density at ~4-6%/year after stopping",
        "log odds ratio of a multiple fracture per unit fractional density lost per year",
    ),
    Parameter(
        "aff_turnover_threshold",
        0.6,
        "-",
        0.4,
        0.8,
        "[recalled] atypical femoral fractures follow alendronate, which lowers resorption markers by ~50-60%; "
        "pamidronate (~40% in the model) is rarely implicated",
        "systemic resorption below which remodelling no longer repairs microdamage fully",
    ),
    Parameter(
        "microdamage_repair_rate",
        2.0e-3,
        "1/day",
        1.0e-3,
        5.0e-3,
        "[calibrated] AFF risk falls ~70% per year after stopping bisphosphonates (Schilcher 2011 NEJM 364:1728: "
        "3.3e-3/day at full turnover) yet keeps rising over 5-8 years on them (Dell 2012 JBMR 27:2544)",
        "rate at which remodelling at or above the threshold repairs microdamage",
    ),
    # --- bone markers and serum calcium (markers.py) ----------------------------------------
    Parameter(
        "untx_healthy",
        30.0,
        "nmol BCE/mmol",
        15.0,
        50.0,
        "[recalled] healthy adults ~20-40; the trials' upper normal limit is 50 (Brown 2005 JNCI 97:59; "
        "Coleman 2005 JCO 23:4925)",
        "urinary N-telopeptide / creatinine of a healthy skeleton (resorption 1)",
    ),
    Parameter(
        "untx_nonosteoclastic_share",
        0.067,
        "-",
        0.0,
        0.2,
        "[derived] a single dose of denosumab lowers uNTx/Cr by up to 84% in postmenopausal women (Bekker 2004 "
        "JBMR 19:1059, recalled) while RANKL inhibition leaves 1 - denosumab_imax = 10% of the osteoclasts' "
        "recruitment: (0.16 - 0.10)/0.90 = 0.067; serum CTX falls further than uNTx under the same drug",
        "share of a healthy skeleton's uNTx/Cr not made by osteoclastic resorption (soft-tissue type I collagen, "
        "assay floor), so no antiresorptive removes it",
    ),
    Parameter(
        "bsap_healthy",
        12.0,
        "ug/L",
        5.0,
        20.0,
        "[recalled] healthy adults ~5-20 ug/L (immunoassay)",
        "bone-specific alkaline phosphatase of a healthy skeleton (formation 1)",
    ),
    Parameter(
        "lesion_turnover_weight",
        0.2,
        "-",
        0.05,
        2.0,
        "[calibrated] median baseline uNTx/Cr 49.2 nmol/mmol in bisphosphonate-naive patients with bone "
        "metastases (Doshi 2012 Clin Cancer Res 18:2648, seen)",
        "bone resorption (uNTx) and bone calcium fluxes a lesion's region adds, relative to the whole healthy skeleton's",
    ),
    Parameter(
        "lesion_resorption_burden_exponent",
        0.5,
        "-",
        0.0,
        1.0,
        "[calibrated] uNTx rises with the extent of bone disease and predicts death on zoledronic acid (RR 4-6 "
        "high vs low, Coleman 2005 JCO 23:4925; Brown 2005 JNCI 97:59): a lesion's resorbing region grows with "
        "its tumour, between a fixed region (0) and its volume (1; 2/3 for the tumour-bone interface); 0.5 keeps "
        "the zoledronic acid uNTx falls (MK-02/03) inside, 2/3 puts them 1 point out",
        "exponent of a lesion's burden relative to the detection burden in its region's share of uNTx",
    ),
    Parameter(
        "calcium_lesion_weight",
        0.618,
        "-",
        0.1,
        2.0,
        "[calibrated] with calcium_per_release: laboratory hypocalcaemia grade >= 2 on denosumab 12.4% vs "
        "zoledronic acid 5.3% (Body 2015 Eur J Cancer, pooled phase 3; target CA-01)",
        "net bone calcium release a lesion adds, relative to the whole healthy skeleton's",
    ),
    Parameter(
        "bsap_lesion_weight",
        0.5,
        "-",
        0.1,
        2.0,
        "[calibrated] toward a median baseline BSAP ~60 ug/L (5x healthy) in an ALSYMPCA-like cohort: CRPC with "
        "bone metastases, median baseline total ALP ~210 U/L (Parker 2013 NEJM 369:213, stratified at 220 U/L; "
        "recalled) over a healthy ~70 U/L of which about half is bone ALP; set by hand on the Nilsson replica "
        "(CRPC, 2000 patients: median 59 ug/L at entry) when BSAP came to read the woven formation only (issue 13)",
        "woven bone formation a lesion adds (F_L - v**(3/8), per unit), relative to the whole healthy skeleton's (BSAP)",
    ),
    Parameter(
        "untx_cv",
        0.2,
        "-",
        0.15,
        0.3,
        "[recalled] within-subject CV of uNTx/Cr 15-30% (day-to-day and assay; Hannon 1998 JBMR)",
        "measurement CV of uNTx/Cr (log-normal)",
    ),
    Parameter(
        "bsap_cv",
        0.1,
        "-",
        0.05,
        0.15,
        "[recalled] within-subject CV of BSAP ~6-10%",
        "measurement CV of BSAP (log-normal)",
    ),
    Parameter(
        "calcium_healthy",
        2.35,
        "mmol/L",
        2.2,
        2.5,
        "[recalled] albumin-corrected serum calcium reference interval ~2.15-2.55 mmol/L",
        "serum calcium with bone in balance and no PTHrP",
    ),
    Parameter(
        "calcium_per_release",
        0.0483,
        "mmol/L",
        0.01,
        0.2,
        "[calibrated] fitted by `vtrial calibrate` (docs/calibration.md); prior: [recalled] median fall ~0.1 mmol/L two weeks after a first denosumab dose in blastic prostate disease (the early calcium nadir on denosumab)",
        "serum calcium per unit net bone calcium release (resorption - formation, healthy skeleton turnover = 1)",
    ),
    Parameter(
        "calcium_per_pthrp",
        0.3,
        "mmol/L",
        0.05,
        1.0,
        "[calibrated] humoral hypercalcaemia: PTHrP raises renal tubular calcium reabsorption; "
        "a few percent of breast patients above 2.75 mmol/L at entry",
        "serum calcium per unit systemic PTHrP (sum of lesion burden x PTHrP)",
    ),
    Parameter(
        "calcium_renal_exponent",
        1.0,
        "-",
        0.0,
        2.0,
        "[recalled] the kidney excretes excess calcium in proportion to filtration; calcitriol falls with GFR",
        "net release effect x (60/CrCl)^exponent",
    ),
    Parameter(
        "calcium_vitamin_d_gain",
        2.0,
        "-",
        1.0,
        4.0,
        "[recalled] hypocalcaemia on antiresorptives concentrates in vitamin D deficiency",
        "gain of a net bone calcium uptake in vitamin D deficiency",
    ),
    Parameter(
        "calcium_no_supplement_gain",
        1.5,
        "-",
        1.0,
        3.0,
        "[recalled] the labels require calcium and vitamin D supplements with antiresorptives",
        "gain of a net bone calcium uptake without calcium/vitamin D supplements",
    ),
    Parameter(
        "calcium_setpoint_cv",
        0.025,
        "-",
        0.015,
        0.035,
        "[recalled] between-subject CV of serum calcium ~2.5% against a within-subject CV ~2% (biological "
        "variation database, Ricos 1999 Scand J Clin Lab Invest 59:491)",
        "between-patient CV of the serum-calcium set-point (log-normal, median calcium_healthy)",
    ),
    Parameter(
        "calcium_cv",
        0.02,
        "-",
        0.01,
        0.03,
        "[recalled] within-subject CV of serum calcium ~2%",
        "within-subject CV of serum calcium, day to day and assay (log-normal): the weekly values and the visits",
    ),
]

#: The registry: every model parameter, by name (the agents' are added by :func:`register`).
REGISTRY: dict[str, Parameter] = {p.name: p for p in _PARAMETERS}


def register(parameters: tuple[Parameter, ...]) -> None:
    """Add parameters to :data:`REGISTRY`; a name may be registered once (again only as the same row)."""
    for p in parameters:
        if REGISTRY.setdefault(p.name, p) != p:
            raise ValueError(f"model parameter {p.name!r} is registered twice with different rows")


def log_sd(cv: float) -> float:
    """Standard deviation of the logarithm of a log-normal variable with coefficient of variation ``cv``."""
    return float(np.sqrt(np.log1p(cv**2)))


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
        # plain instance attributes: the hot path reads ~70,000 of them per block, and a lookup that
        # finds the attribute never calls __getattr__ (which stays for the names that are not attributes)
        self.__dict__.update({name: value for name, value in values.items() if not hasattr(type(self), name)})

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
