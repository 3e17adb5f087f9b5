"""References for tests and benchmarks: cohorts and arms built directly, and a stiff-solver lesion solution.

Typical trial populations per primary, with between-patient spread, drawn from one numpy
generator, and arms with the protocol's version-1 defaults: enough to exercise and measure the
model without the protocol-driven sampler.
:func:`radau_reference` integrates the lesion equations with ``solve_ivp`` (Radau, rtol 1e-8)
to check the fast step against.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy.integrate import solve_ivp

from vtrial.cohort import CohortBlock
from vtrial.model.lesion import LesionTraits, rates
from vtrial.model.parameters import Parameters
from vtrial.vocabulary import PRIMARIES, SITES

#: Typical share of each site among bone lesions (SITES order), axial skeleton first.
SITE_SHARE = np.array([0.04, 0.2, 0.18, 0.18, 0.14, 0.04, 0.01, 0.11, 0.05, 0.05])
#: Mean blastic fraction of lesions per primary (breast mixed/lytic, prostate blastic).
BLASTIC_MEAN = {"breast": 0.25, "prostate": 0.85, "lung": 0.1, "head_and_neck": 0.05}
#: Mean lesions per patient (NH-20, NH-21).
LESIONS_MEAN = {"breast": 5.0, "prostate": 5.0, "lung": 3.0, "head_and_neck": 3.0}


#: An arm's fields at the protocol's version-1 defaults (no drug, label rules off, no mechanism).
ARM_DEFAULTS: dict[str, object] = dict(
    dose_mg=None,
    dose_kbq_per_kg=None,
    every_weeks=None,
    doses=None,
    calcium_vitamin_d=True,
    stop_after_months=None,
    renal_adjustment=True,
    mechanism=None,
)


def reference_arm(drug: str = "none", **fields: object) -> SimpleNamespace:
    """An arm of ``drug`` (named after it) with :data:`ARM_DEFAULTS`; ``fields`` add or override (e.g. ``dose_mg``,
    ``systemic_therapy``, ``radiotherapy``, ``stop_on_onj``)."""
    return SimpleNamespace(**{"name": drug, "drug": drug, **ARM_DEFAULTS, **fields})


def reference_cohort(
    n: int, primary: str = "breast", seed: int = 0, first_id: int = 0, max_lesions: int = 12
) -> CohortBlock:
    """A block of ``n`` patients of one primary, ids ``first_id ...``, all entering on day 0."""
    rng = np.random.default_rng(seed)
    code = PRIMARIES.index(primary)
    n_lesions = np.clip(1 + rng.poisson(LESIONS_MEAN[primary] - 1, n), 1, max_lesions)
    width = int(n_lesions.max())
    mask = np.arange(width)[None, :] < n_lesions[:, None]
    site = rng.choice(len(SITES), size=(n, width), p=SITE_SHARE).astype(np.int8)
    mean = BLASTIC_MEAN[primary]
    blastic = rng.beta(4 * mean + 0.5, 4 * (1 - mean) + 0.5, size=(n, width))
    burden = np.clip(rng.lognormal(np.log(0.08), 0.7, size=(n, width)), 1e-3, 0.9)
    female = np.full(n, primary != "prostate") if primary in ("breast", "prostate") else rng.random(n) < 0.35
    return CohortBlock(
        patient_id=np.arange(first_id, first_id + n, dtype=np.int64),
        primary=np.full(n, code, dtype=np.int8),
        age_years=np.clip(rng.normal(64, 10, n), 30, 90),
        female=female,
        ecog=rng.choice(3, size=n, p=[0.4, 0.5, 0.1]).astype(np.int8),
        creatinine_clearance_ml_min=np.clip(rng.normal(80, 25, n), 20, 150),
        visceral_metastases=rng.random(n) < 0.4,
        prior_sre=rng.random(n) < 0.35,
        dental_risk=rng.random(n) < 0.1,
        vitamin_d_deficient=rng.random(n) < 0.3,
        entry_day=np.zeros(n),
        dropout_day=np.full(n, np.inf),
        biology={
            "tumour_growth_rate": rng.lognormal(0, 0.4, n),
            "pthrp_secretion": rng.lognormal(0, 0.4, n),
            "osteoblastic_drive": rng.lognormal(0, 0.4, n),
        },
        lesion_mask=mask,
        lesion_site=np.where(mask, site, 0).astype(np.int8),
        lesion_blastic_fraction=np.where(mask, blastic, 0.0),
        lesion_burden=np.where(mask, burden, 0.0),
    )


def radau_reference(
    traits: LesionTraits,
    w0: np.ndarray,
    y0: np.ndarray,
    z0: np.ndarray,
    m0: np.ndarray,
    recruitment: np.ndarray,
    params: Parameters,
    pool_loss: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(w, y, Z, M)`` after ``len(recruitment)`` days: Radau (rtol 1e-8), day by day with each day's input.

    ``pool_loss``: each day's bisphosphonate osteoclast loss ``E`` (None: none), offset in the lesions by RANKL.
    """
    shape = w0.shape
    x = np.concatenate([w0.ravel(), y0.ravel(), z0.ravel(), m0.ravel()]).astype(float)
    k = w0.size
    losses = np.zeros(len(recruitment)) if pool_loss is None else pool_loss
    for rec_day, loss_day in zip(recruitment, losses):
        rec = np.full(shape[:-1] + (1,), rec_day)

        def rhs(t: float, s: np.ndarray, rec: np.ndarray = rec, loss: float = float(loss_day)) -> np.ndarray:
            w, y, z, m = (s[i * k : (i + 1) * k].reshape(shape) for i in range(4))
            return np.concatenate(
                [d.ravel() for d in rates(w, y, z, m, traits, rec, 1.0, 1.0, 0.0, params, pool_loss=loss)]
            )

        x = solve_ivp(rhs, (0.0, 1.0), x, method="Radau", rtol=1e-8, atol=1e-10).y[:, -1]
    w, y, z, m = (x[i * k : (i + 1) * k].reshape(shape) for i in range(4))
    return w, y, z, m
