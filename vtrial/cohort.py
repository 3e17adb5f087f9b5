"""Virtual cohort generator: patients and their bone lesions, sampled vectorised.

(The sampling itself is being written; this module currently holds the container.)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class CohortBlock:
    """A block of virtual patients: patient-level arrays ``[n]`` and lesion arrays ``[n, L]``.

    Lesion arrays are padded to the block's largest lesion count; ``lesion_mask`` marks the
    real lesions. Codes index :data:`vtrial.vocabulary.PRIMARIES` and
    :data:`vtrial.vocabulary.SITES`.

    Attributes
    ----------
    patient_id : int64 [n]
        Stable id of the virtual patient (its random streams are keyed to it).
    primary : int8 [n]
        Primary tumour code.
    age_years, creatinine_clearance_ml_min : float64 [n]
    female, visceral_metastases, prior_sre, dental_risk, vitamin_d_deficient : bool [n]
        ``dental_risk``: poor dental health or an extraction expected on study (raises the
        osteonecrosis-of-the-jaw hazard); ``vitamin_d_deficient``: 25-OH vitamin D below
        20 ng/mL at entry (raises the hypocalcaemia hazard).
    ecog : int8 [n]
        ECOG performance status.
    entry_day : float64 [n]
        Day of randomisation after the first patient's (staggered accrual).
    dropout_day : float64 [n]
        Day after entry of loss to follow-up (``inf`` without dropout).
    biology : dict[str, float64 [n]]
        Per-patient multipliers (log-normal, median 1) of model parameters, by name:
        ``tumour_growth_rate``, ``pthrp_secretion``, ``osteoblastic_drive``.
    lesion_mask : bool [n, L]
    lesion_site : int8 [n, L]
    lesion_blastic_fraction : float64 [n, L]
        Phenotype mix: 0 purely osteolytic, 1 purely osteoblastic.
    lesion_burden : float64 [n, L]
        Tumour burden at entry as a fraction of local capacity (0, 1).
    """

    patient_id: np.ndarray
    primary: np.ndarray
    age_years: np.ndarray
    female: np.ndarray
    ecog: np.ndarray
    creatinine_clearance_ml_min: np.ndarray
    visceral_metastases: np.ndarray
    prior_sre: np.ndarray
    dental_risk: np.ndarray
    vitamin_d_deficient: np.ndarray
    entry_day: np.ndarray
    dropout_day: np.ndarray
    biology: dict[str, np.ndarray]
    lesion_mask: np.ndarray
    lesion_site: np.ndarray
    lesion_blastic_fraction: np.ndarray
    lesion_burden: np.ndarray

    @property
    def n_patients(self) -> int:
        return int(self.patient_id.shape[0])

    @property
    def n_lesions(self) -> np.ndarray:
        """Number of bone lesions at entry, per patient."""
        return self.lesion_mask.sum(axis=1)

    def take(self, index: np.ndarray) -> CohortBlock:
        """The sub-block of the patients selected by ``index`` (boolean mask or integer indices)."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                values[f.name] = {k: v[index] for k, v in value.items()}
            else:
                values[f.name] = value[index]
        return CohortBlock(**values)
