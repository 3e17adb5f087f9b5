"""Virtual cohort generator: patients and their bone lesions, sampled vectorised.

Distributions come from the protocol's resolved per-primary profiles
(``protocol.cohort.by_primary``, defaults and sources in ``vtrial/data/primaries.toml``).
No loop runs per patient; every draw is keyed to the patient (:mod:`vtrial.streams`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import special
from scipy.special import _ufuncs

from vtrial.errors import UserInputError
from vtrial.protocol import MAX_LESIONS, Cohort, PrimaryProfile, Protocol, lesion_phenotype
from vtrial.store import check_output_file, merge_parts
from vtrial.streams import PatientDraws, Streams
from vtrial.vocabulary import BREAST_SUBTYPES, DAYS_PER_MONTH, DAYS_PER_YEAR, PRIMARIES, SITES

if TYPE_CHECKING:  # pandas only for `vtrial cohort`'s table: kept out of the simulation's imports
    import pandas as pd

    from vtrial.model.types import Scheduled


@dataclass(frozen=True)
class CohortBlock:
    """A block of virtual patients: patient-level arrays ``[n]`` and lesion arrays ``[n, L]``.

    Lesion arrays are padded to the block's largest lesion count; ``lesion_mask`` marks the
    real lesions (padding: site -1, blastic fraction and burden 0). Codes index :data:`vtrial.vocabulary.PRIMARIES` and
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
    breast_subtype : int8 [n] or None
        Code of each breast patient's subtype (:data:`vtrial.vocabulary.BREAST_SUBTYPES`), -1 for
        the other primaries; ``None`` (a bare block): every breast patient hormone-receptor positive.
    prostate_stage : str or None
        Cohort-level stage of the prostate patients (protocol version 2,
        :data:`vtrial.vocabulary.PROSTATE_STAGES`); ``None``: not given (version 1).
    systemic_therapy : dict of str to tuple of str, or None
        Background anticancer therapy of each primary's patients (its resolved protocol
        profile; an arm's own list replaces it); ``None``: a bare block without therapy.
    prior_treatment : protocol ``[cohort.prior_treatment]`` or None
        Bone-targeted treatment before randomisation (its ``dosing_plan()`` has negative days).
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
    breast_subtype: np.ndarray | None = None
    prostate_stage: str | None = None
    systemic_therapy: dict[str, tuple[str, ...]] | None = None
    prior_treatment: Scheduled | None = None

    @property
    def n_patients(self) -> int:
        return int(self.patient_id.shape[0])

    @property
    def n_lesions(self) -> np.ndarray:
        """Number of bone lesions at entry, per patient."""
        return self.lesion_mask.sum(axis=1)

    def take(self, index: np.ndarray) -> CohortBlock:
        """The sub-block of the patients selected by ``index`` (boolean mask or integer indices)."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "biology":
                values[f.name] = {k: v[index] for k, v in value.items()}
            elif isinstance(value, np.ndarray):
                values[f.name] = value[index]
            else:  # cohort-level settings
                values[f.name] = value
        return CohortBlock(**values)


#: Rounds of eligibility resampling before giving up (each round redraws every ineligible patient).
MAX_ELIGIBILITY_ROUNDS = 200
#: Bounds of a lesion's initial tumour burden (fraction of local capacity).
BURDEN_BOUNDS = (1e-4, 0.5)
#: Cockcroft-Gault: creatinine clearance is proportional to (140 - age) at fixed weight and
#: serum creatinine (Cockcroft & Gault, Nephron 1976).
COCKCROFT_GAULT_AGE = 140.0
BIOLOGY: tuple[str, ...] = ("tumour_growth_rate", "pthrp_secretion", "osteoblastic_drive")
PHENOTYPES: tuple[str, ...] = ("lytic", "mixed", "blastic")


def _cdf(weights: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """Cumulative probabilities over ``names`` of a table of relative weights (absent names: 0)."""
    w = np.array([weights.get(k, 0.0) for k in names])
    return np.cumsum(w) / w.sum()


def _category(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category of each uniform ``u`` under one table of cumulative probabilities."""
    return np.searchsorted(cdf[:-1], u, side="right")


class _Tables:
    """Per-primary parameters as arrays indexed by primary code (absent primaries: any profile)."""

    def __init__(self, cohort: Cohort) -> None:
        present = next(iter(cohort.by_primary.values()))
        profiles = [cohort.by_primary.get(p, present) for p in PRIMARIES]
        self.primary_cdf = _cdf(cohort.primary, PRIMARIES)
        self.subtype_cdf = None if cohort.breast_subtype is None else _cdf(cohort.breast_subtype, BREAST_SUBTYPES)

        def col(get: Callable[[PrimaryProfile], Any]) -> np.ndarray:
            return np.array([get(profile) for profile in profiles], dtype=float)

        self.age = {k: col(attrgetter(f"age_years.{k}")) for k in ("mean", "sd", "min", "max")}
        self.crcl = {k: col(attrgetter(f"creatinine_clearance_ml_min.{k}")) for k in ("mean", "sd", "min", "max")}
        self.crcl["min"] = np.maximum(self.crcl["min"], cohort.eligibility.min_creatinine_clearance_ml_min)
        # correlation of age and clearance implied by Cockcroft-Gault around the mean age
        slope = -self.crcl["mean"] / (COCKCROFT_GAULT_AGE - self.age["mean"])
        self.age_crcl_rho = np.clip(slope * self.age["sd"] / self.crcl["sd"], -0.9, 0.0)
        self.max_ecog = cohort.eligibility.max_ecog
        self.ecog_cdf = np.cumsum(col(lambda p: p.ecog), axis=1)
        self.bernoulli = col(
            lambda p: [p.female_fraction, p.visceral_metastases, p.prior_sre, p.dental_risk, p.vitamin_d_deficiency]
        )
        self.lesion_mean = col(lambda p: p.lesions.mean)
        self.lesion_dispersion = col(lambda p: p.lesions.dispersion)
        self.phenotype_cdf = np.cumsum(col(lambda p: [getattr(p.phenotype, c) for c in PHENOTYPES]), axis=1)
        self.site_cdf = np.cumsum(col(lambda p: [p.sites.get(s, 0.0) for s in SITES]), axis=1)
        self.burden_log_median = np.log(col(lambda p: p.lesion_burden.median))
        self.burden_sd_log = col(lambda p: p.lesion_burden.sd_log)
        self.biology_sd_log = col(lambda p: [getattr(p.biology_sd_log, b) for b in BIOLOGY])
        shapes = lesion_phenotype()
        self.class_logit = special.logit(np.array([shapes["blastic_fraction_median"][c] for c in PHENOTYPES]))
        self.class_logit_sd = float(shapes["logit_sd"])


def _categorical(u: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Category of each uniform ``u[i]`` under its own cumulative probabilities ``cdf[i]``."""
    return (u[:, None] >= cdf[:, :-1]).sum(axis=1).astype(np.int8)


def _eligible_traits(u: np.ndarray, primary: np.ndarray, t: _Tables) -> tuple[np.ndarray, ...]:
    """Age, creatinine clearance, ECOG from three uniforms per row, and whether the row is eligible.

    Age is a truncated normal (inverse CDF). Clearance is normal given age with the
    Cockcroft-Gault correlation, truncated to its range and the eligibility minimum by rejection
    (so that excluding low clearance also shifts age upwards, as in a real screened population).
    """
    mean, sd = t.age["mean"][primary], t.age["sd"][primary]
    lo = special.ndtr((t.age["min"][primary] - mean) / sd)
    hi = special.ndtr((t.age["max"][primary] - mean) / sd)
    z_age = special.ndtri(lo + u[:, 0] * (hi - lo))
    age = mean + sd * z_age
    rho = t.age_crcl_rho[primary]
    crcl = t.crcl["mean"][primary] + t.crcl["sd"][primary] * (
        rho * z_age + np.sqrt(1.0 - rho**2) * special.ndtri(u[:, 1])
    )
    ecog = _categorical(u[:, 2], t.ecog_cdf[primary])
    ok = (crcl >= t.crcl["min"][primary]) & (crcl <= t.crcl["max"][primary]) & (ecog <= t.max_ecog)
    return age, crcl, ecog, ok


def sample_cohort(protocol: Protocol, patient_ids: np.ndarray, streams: Streams) -> CohortBlock:
    """Sample the virtual patients ``patient_ids`` of a protocol's cohort, vectorised.

    Patient ``i`` receives the same attributes whatever block it is sampled in: every draw comes
    from ``streams`` keyed to the patient, and eligibility resampling runs on whole stream
    chunks (the number of rounds depends on the chunk, never on the block).

    Parameters
    ----------
    protocol : Protocol
        Resolved protocol (its cohort profiles, eligibility, accrual and dropout).
    patient_ids : int array [n]
        Unique non-negative patient ids.
    streams : Streams
        The run's random streams; purposes used: cohort, eligibility, lesions, biology,
        accrual, dropout, subtype.

    Raises
    ------
    UserInputError
        If the eligibility criteria reject nearly every sampled patient.
    """
    ids = np.asarray(patient_ids, dtype=np.int64)
    t = _Tables(protocol.cohort)

    # primary tumour, for whole chunks: eligibility resampling needs it for every chunk row
    cohort_draws = streams.draws("cohort", ids)
    primary_rows = _category(t.primary_cdf, cohort_draws.chunk_rows("random"))
    age, crcl, ecog = (np.empty(len(primary_rows)), np.empty(len(primary_rows)), np.empty(len(primary_rows), np.int8))
    pending = np.ones(len(primary_rows), dtype=bool)
    eligibility_draws = streams.draws("eligibility", ids)
    for _ in range(MAX_ELIGIBILITY_ROUNDS):
        rows = np.flatnonzero(pending)
        a, c, e, ok = _eligible_traits(eligibility_draws.chunk_rows("random", (3,))[rows], primary_rows[rows], t)
        accepted = rows[ok]
        age[accepted], crcl[accepted], ecog[accepted] = a[ok], c[ok], e[ok]
        pending[accepted] = False
        if not pending.any():
            break
    else:
        raise UserInputError(
            f"the eligibility criteria reject nearly every sampled patient ({pending.mean():.0%} still "
            f"ineligible after {MAX_ELIGIBILITY_ROUNDS} rounds)",
            field="cohort.eligibility",
            fix="relax min_creatinine_clearance_ml_min or max_ecog, or change the cohort distributions",
        )
    primary = cohort_draws.select(primary_rows).astype(np.int8)
    female, visceral, prior_sre, dental, vitamin_d = (cohort_draws.random((5,)) < t.bernoulli[primary]).T

    lesions = _sample_lesions(streams.draws("lesions", ids), primary_rows, t)
    z = streams.draws("biology", ids).standard_normal((len(BIOLOGY),))
    biology = dict(zip(BIOLOGY, np.exp(t.biology_sd_log[primary] * z).T))

    breast_subtype = None
    if t.subtype_cdf is not None:
        code = _category(t.subtype_cdf, streams.draws("subtype", ids).random()).astype(np.int8)
        breast_subtype = np.where(primary == PRIMARIES.index("breast"), code, np.int8(-1))

    entry_day = streams.draws("accrual", ids).random() * protocol.trial.accrual_months * DAYS_PER_MONTH
    rate = protocol.trial.dropout_per_year / DAYS_PER_YEAR
    dropout_day = streams.draws("dropout", ids).exponential() / rate if rate > 0 else np.full(len(ids), np.inf)

    return CohortBlock(
        patient_id=ids,
        primary=primary,
        age_years=eligibility_draws.select(age),
        female=female,
        ecog=eligibility_draws.select(ecog),
        creatinine_clearance_ml_min=eligibility_draws.select(crcl),
        visceral_metastases=visceral,
        prior_sre=prior_sre,
        dental_risk=dental,
        vitamin_d_deficient=vitamin_d,
        entry_day=entry_day,
        dropout_day=dropout_day,
        biology=biology,
        **lesions,
        breast_subtype=breast_subtype,
        prostate_stage=protocol.cohort.prostate_stage,
        systemic_therapy={p: tuple(profile.systemic_therapy) for p, profile in protocol.cohort.by_primary.items()},
        prior_treatment=protocol.cohort.prior_treatment,
    )


def nbinom_ppf(q: np.ndarray, size: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.nbinom.ppf`` (same values, -1 at ``q = 0``) without importing ``scipy.stats``.

    ``scipy.stats`` takes ~1 s to import, paid by every worker process; the quantile is the
    ufunc ``scipy.stats`` itself calls.
    """
    return np.where(q == 0.0, -1.0, _ufuncs._nbinom_ppf(q, size, p))


def _sample_lesions(draws: PatientDraws, chunk_primary: np.ndarray, t: _Tables) -> dict[str, np.ndarray]:
    """Lesion count, site, blastic fraction and burden, padded to the block's largest count.

    Lesion counts are drawn for whole stream chunks, and each chunk's per-lesion draws are
    laid out patient after patient (:meth:`PatientDraws.ragged`), so a patient's lesions do not
    depend on the block and only real lesions cost a draw. Padding: site -1, fraction and
    burden 0.
    """
    u_count, u_class = draws.chunk_rows("random", (2,)).T
    primary = draws.select(chunk_primary)
    extra_mean = t.lesion_mean[chunk_primary] - 1.0
    size = t.lesion_dispersion[chunk_primary]
    extra = nbinom_ppf(u_count, size, size / (size + extra_mean))
    chunk_counts = np.minimum(1 + extra.astype(np.int64), MAX_LESIONS)
    n_lesions = draws.select(chunk_counts)
    width = int(n_lesions.max(initial=1))
    mask = np.arange(width) < n_lesions[:, None]
    phenotype = _categorical(draws.select(u_class), t.phenotype_cdf[primary])
    lesion_primary = np.repeat(primary, n_lesions)
    site = _categorical(draws.ragged("random", chunk_counts), t.site_cdf[lesion_primary])
    u_phenotype, u_burden = draws.ragged("standard_normal", 2 * chunk_counts).reshape(-1, 2).T
    logit = t.class_logit[np.repeat(phenotype, n_lesions)] + t.class_logit_sd * u_phenotype
    log_burden = t.burden_log_median[lesion_primary] + t.burden_sd_log[lesion_primary] * u_burden

    def padded(values: np.ndarray, fill: float, dtype: type) -> np.ndarray:
        out: np.ndarray = np.full(mask.shape, fill, dtype=dtype)
        out[mask] = values
        return out

    return {
        "lesion_mask": mask,
        "lesion_site": padded(site, -1, np.int8),
        "lesion_blastic_fraction": padded(special.expit(logit), 0.0, np.float64),
        "lesion_burden": padded(np.clip(np.exp(log_burden), *BURDEN_BOUNDS), 0.0, np.float64),
    }


def _breast_subtype_names(block: CohortBlock) -> pa.DictionaryArray:
    """The subtype of each breast patient by name, null for the other primaries."""
    code = np.full(block.n_patients, -1, np.int8) if block.breast_subtype is None else block.breast_subtype
    return pa.DictionaryArray.from_arrays(pa.array(code, mask=code < 0), pa.array(BREAST_SUBTYPES))


def cohort_arrow(block: CohortBlock) -> pa.Table:
    """One row per patient, names instead of codes, lesions as list columns (Arrow table)."""
    offsets = pa.array(np.concatenate([[0], np.cumsum(block.n_lesions)]).astype(np.int32))
    mask = block.lesion_mask

    def lesion_list(values: pa.Array) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, values)

    sites = pa.DictionaryArray.from_arrays(pa.array(block.lesion_site[mask]), pa.array(SITES))
    columns = {
        "patient_id": block.patient_id,
        "primary": pa.DictionaryArray.from_arrays(pa.array(block.primary), pa.array(PRIMARIES)),
        "age_years": block.age_years,
        "sex": np.where(block.female, "female", "male"),
        "ecog": block.ecog,
        "creatinine_clearance_ml_min": block.creatinine_clearance_ml_min,
        "breast_subtype": _breast_subtype_names(block),
        "visceral_metastases": block.visceral_metastases,
        "prior_sre": block.prior_sre,
        "dental_risk": block.dental_risk,
        "vitamin_d_deficient": block.vitamin_d_deficient,
        "entry_day": block.entry_day,
        "dropout_day": block.dropout_day,
        **block.biology,
        "n_lesions": block.n_lesions,
        "lesion_site": lesion_list(sites),
        "lesion_blastic_fraction": lesion_list(pa.array(block.lesion_blastic_fraction[mask])),
        "lesion_burden": lesion_list(pa.array(block.lesion_burden[mask])),
    }
    return pa.table(columns)


def cohort_table(block: CohortBlock) -> pd.DataFrame:
    """One row per patient (for ``vtrial cohort``): names instead of codes, lesions as lists."""
    return cohort_arrow(block).to_pandas()


def write_cohort(
    protocol: Protocol,
    streams: Streams,
    path: str | Path,
    block_size: int = 65_536,
    *,
    force: bool = False,
    inputs: Iterable[str | Path] = (),
) -> int:
    """Sample the protocol's whole cohort block by block and stream it to Parquet, atomically.

    Memory is bounded by the block size; the file is identical for any block size (each
    patient's draws are keyed to it, row groups have a fixed size). An existing file is
    replaced only with ``force``, and never one of ``inputs`` (the protocol file); a symlink
    is followed. Returns the patients written.
    """
    path = Path(path).resolve()
    check_output_file(path, force, inputs)
    if not path.parent.is_dir():
        raise UserInputError(
            f"folder {str(path.parent)!r} does not exist", field="--out", fix="create the folder or choose another path"
        )
    n = protocol.trial.patients
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        parts = []
        for k, start in enumerate(range(0, n, block_size)):
            part = Path(scratch) / f"part-{k:07d}.parquet"
            block = sample_cohort(protocol, np.arange(start, min(start + block_size, n)), streams)
            pq.write_table(cohort_arrow(block), part)
            parts.append(part)
        return merge_parts(parts, path)
