"""The trial's endpoints by arm and the comparisons against the reference arm, as one dict.

:func:`summarise` takes the run's two tables and plain settings and returns the content of
``summary.json`` (the contract keys plus confidence intervals, log-rank tests, RMST, subgroups
and, for the paired design, the per-patient view). :func:`to_json` serialises it
deterministically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from vtrial.analysis.prediction import IDENTITY, LOG, prediction
from vtrial.analysis.proportions import clopper_pearson, fisher_p_value, newcombe_difference, poisson_rate_ci
from vtrial.analysis.radiotherapy import pain_response, radiotherapy_retreatment
from vtrial.analysis.survival import (
    DAYS_PER_MONTH,
    EMPTY_ARM,
    ENDPOINTS,
    competing_risks,
    counting_process,
    cumulative_incidence,
    endpoint as endpoint_data,
    kaplan_meier,
    logrank,
    median_with_ci,
    null_result,
    position_in,
    rmst_difference,
    run_starts,
    treatment_effect,
    value_at,
)
from vtrial.errors import UserInputError
from vtrial.vocabulary import DAYS_PER_YEAR, PRIMARIES, REPORTED_ADVERSE_EVENTS

#: In the paired view, first SREs under two arms less than this many days apart are "unchanged"
#: (half the model's one-day step).
SAME_DAY = 0.5
#: The trials' upper normal limit of uNTx/Cr (nmol BCE/mmol creatinine; Brown 2005, Coleman 2005).
UNTX_NORMAL_LIMIT = 50.0
#: Reason of the estimates of an arm nobody was randomised to.
NO_PATIENTS = "no patients in this arm"


def coded(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with each text column of ``columns`` categorical, categories in sorted order.

    Comparing, grouping and sorting codes is what makes the analysis fast on 300,000-row
    tables (comparing Python strings was ~1 s of it); with sorted categories the codes sort
    as the strings do, so every order, and so every number, is the same. A column already
    coded this way is kept as it is (no copy).
    """
    out = frame
    for column in columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            categories = list(values.cat.categories)
            if categories == sorted(categories):
                continue
            values = values.cat.set_categories(sorted(categories))
        else:
            values = pd.Categorical(values)  # categories sorted
        if out is frame:
            out = frame.copy(deep=False)  # the other columns are shared, not copied
        out[column] = values
    return out


def landmark_key(months: float) -> str:
    """The summary's key of a landmark: ``12`` -> ``"12"``, ``6.5`` -> ``"6.5"``."""
    return f"{months:g}"


def summarise(
    patients: pd.DataFrame,
    events: pd.DataFrame,
    *,
    trial: str,
    design: str,
    arms: Sequence[str],
    reference_arm: str,
    sre_types: Sequence[str],
    sre_window_days: float,
    landmarks_months: Sequence[float],
    horizon_months: float,
    markers: pd.DataFrame | None = None,
    non_inferiority_hr: float | None = None,
    non_inferiority_rd: float | None = None,
) -> dict:
    """Analyse a run: every endpoint by arm and every arm against the reference arm.

    Parameters
    ----------
    patients : DataFrame
        ``patients.parquet``: one row per patient and arm, with the contract columns.
    events : DataFrame
        ``events.parquet``: one row per event, with ``counted`` marking the counted SREs.
    trial, design : str
        Trial name and design (``"parallel"`` or ``"paired"``).
    arms : sequence of str
        Arm names in protocol order; the summary keeps this order.
    reference_arm : str
        The arm every other arm is compared with.
    sre_types : sequence of str
        Event types that count as SREs (the window rule is already applied to ``counted``).
    sre_window_days : float
        The window of the rule, recorded in the summary.
    landmarks_months : sequence of float
        Times of the cumulative incidence of SRE.
    horizon_months : float
        Data cut-off; the RMST is restricted to it (or to the shortest arm's follow-up).
    markers : DataFrame, optional
        ``markers.parquet`` (one row per patient, arm and visit); ``None`` (a run folder without
        it) gives every arm empty ``markers``.
    non_inferiority_hr, non_inferiority_rd : float, optional
        The protocol's margins (``[analysis]``): each comparison then gets a ``non_inferiority``
        block (:func:`non_inferiority_test`).

    Returns
    -------
    dict
        Plain, JSON-ready values; estimates that cannot be made are ``None`` with a reason.
    """
    arms = list(arms)
    if reference_arm not in arms:
        raise UserInputError(
            f"reference arm {reference_arm!r} is not one of the arms {arms}",
            field="analysis.reference_arm",
            fix="name one of the protocol's arms",
        )
    patients, events = coded(patients, ["arm", "primary"]), coded(events, ["arm", "type"])
    markers = None if markers is None else coded(markers, ["arm"])
    by_arm = {arm: patients[patients["arm"] == arm] for arm in arms}
    # a small trial can randomise nobody to an arm: its estimates are None, with the reason
    present = [arm for arm, p in by_arm.items() if not p.empty]
    if not present:
        raise UserInputError(
            f"no patients in any of the arms {arms}",
            field="arm",
            fix="re-run the simulation; the trial needs patients",
        )
    events_by_arm = {arm: events[events["arm"] == arm] for arm in arms}
    fits = {
        name: {arm: kaplan_meier(*endpoint_data(by_arm[arm], name), arm) if arm in present else None for arm in arms}
        for name in ENDPOINTS
    }
    tau = min(horizon_months * DAYS_PER_MONTH, *(by_arm[arm]["followup_days"].max() for arm in present))
    in_arms = patients[patients["arm"].isin(arms)]
    primaries = [p for p in PRIMARIES if p in set(in_arms["primary"])]

    others = [arm for arm in arms if arm != reference_arm]
    # the endpoints are independent computations on numpy arrays, which mostly run without the
    # interpreter lock: two threads keep both cores busy (the same numbers, in the same order)
    with ThreadPoolExecutor(2) as pool:
        arm_results = {
            arm: pool.submit(_arm_summary, by_arm[arm], events_by_arm[arm], fits, arm, sre_types, landmarks_months)
            for arm in arms
        }
        marker_results = {
            arm: pool.submit(marker_summary, markers[markers["arm"] == arm]) for arm in arms if markers is not None
        }
        comparisons = [
            pool.submit(_comparison, in_arms, events, fits, arm, reference_arm, design, tau) for arm in others
        ]
        tests = {
            name: pool.submit(logrank, *endpoint_data(in_arms, name), in_arms["arm"].cat.codes.to_numpy())
            for name in ENDPOINTS
        }
        subgroups = [
            pool.submit(_subgroup, in_arms, arm, reference_arm, design, primary)
            for arm in others
            for primary in (primaries if len(primaries) > 1 else [])
        ]
    return {
        "trial": trial,
        "design": design,
        "reference_arm": reference_arm,
        "horizon_months": horizon_months,
        "landmarks_months": list(landmarks_months),
        "sre_types": list(sre_types),
        "sre_window_days": sre_window_days,
        "arms": {
            arm: {**arm_results[arm].result(), "markers": marker_results[arm].result() if markers is not None else {}}
            for arm in arms
        },
        "comparisons": [_with_non_inferiority(c.result(), non_inferiority_hr, non_inferiority_rd) for c in comparisons],
        "logrank": {name: test.result() for name, test in tests.items()},
        "subgroups": [g.result() for g in subgroups],
    }


def _patients_with(events: pd.DataFrame, types: Sequence[str]) -> dict[str, int]:
    """Number of patients with at least one event of each type (distinct ``patient_id``)."""
    ids = events["patient_id"].to_numpy()
    return {t: int(np.unique(ids[(events["type"] == t).to_numpy()]).size) for t in types}


def _first_rows(ids: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Row of each patient's first event: the earliest day, the first row among ties (a stable sort)."""
    order = np.lexsort((days, ids))
    return order[run_starts(ids[order])]


def _arm_summary(
    p: pd.DataFrame,
    ev: pd.DataFrame,
    fits: Mapping[str, Mapping],
    arm: str,
    sre_types: Sequence[str],
    landmarks_months: Sequence[float],
) -> dict:
    """The endpoints of one arm (:func:`_empty_arm_summary` when it has no patients)."""
    n = len(p)
    if n == 0:
        return _empty_arm_summary(sre_types, landmarks_months)
    n_with_sre = int(p["first_sre_day"].notna().sum())
    cif = cumulative_incidence(*competing_risks(p))
    n_sre = int(p["n_sre"].sum())
    patient_years = float(p["followup_days"].sum()) / DAYS_PER_YEAR
    rate, rate_low, rate_high = poisson_rate_ci(n_sre, patient_years) if patient_years > 0 else (None, None, None)
    sre_median = median_with_ci(fits["time_to_first_sre"][arm])
    os_median = median_with_ci(fits["overall_survival"][arm])
    counted = ev[ev["counted"].to_numpy(dtype=bool)]
    first_sre = counted["type"].iloc[_first_rows(counted["patient_id"].to_numpy(), counted["day"].to_numpy())]
    first = first_sre.value_counts()
    ae_counts = _patients_with(ev, REPORTED_ADVERSE_EVENTS)
    retreatment, retreatment_detail = radiotherapy_retreatment(ev)
    response, response_detail = pain_response(ev, p)
    adverse = {}
    for ae in REPORTED_ADVERSE_EVENTS:
        k = ae_counts[ae]
        low, high = clopper_pearson(k, n)
        adverse[ae] = {"n": k, "proportion": k / n, "ci_low": low, "ci_high": high}
    return {
        "n": n,
        "median_time_to_first_sre_months": sre_median[0],
        "median_time_to_first_sre_months_ci": list(sre_median[1:]),
        "n_with_sre": n_with_sre,
        "proportion_with_sre": n_with_sre / n,
        "proportion_with_sre_ci": list(clopper_pearson(n_with_sre, n)),
        "cumulative_incidence_sre": {landmark_key(m): value_at(cif, m * DAYS_PER_MONTH) for m in landmarks_months},
        "n_sre": n_sre,
        "patient_years": patient_years,
        "mean_sre_per_patient": n_sre / n,
        "sre_rate_per_patient_year": rate,
        "sre_rate_per_patient_year_ci": [rate_low, rate_high],
        "sre_by_type": {t: k / n for t, k in _patients_with(ev, sre_types).items()},
        "first_sre_by_type": {t: int(first.get(t, 0)) / n for t in sre_types},
        "n_deaths": int(p["died"].sum()),
        "median_overall_survival_months": os_median[0],
        "median_overall_survival_months_ci": list(os_median[1:]),
        "adverse_events": {ae: adverse[ae]["proportion"] for ae in REPORTED_ADVERSE_EVENTS},
        "adverse_events_ci": adverse,
        "radiotherapy_retreatment": retreatment,
        "radiotherapy_retreatment_detail": retreatment_detail,
        "pain_response": response,
        "pain_response_detail": response_detail,
    }


def marker_summary(markers: pd.DataFrame) -> dict[str, dict]:
    """Bone markers of one arm by visit week (key ``"13"``): medians, and the share with uNTx below 50.

    ``untx_change_pct`` and ``bsap_change_pct`` are medians of the per-patient percent change from
    week 0 (patients measured at both); ``untx_below_50`` is the share of the patients measured at
    that week with uNTx/Cr below :data:`UNTX_NORMAL_LIMIT` nmol/mmol; ``calcium_mmol_l``,
    ``untx_nmol_mmol`` and ``bsap_ug_l`` are medians at that week; ``n`` the patients measured.
    """
    ids, week = markers["patient_id"].to_numpy(), markers["week"].to_numpy()
    untx, bsap, calcium = (markers[c].to_numpy(dtype=float) for c in ("untx_nmol_mmol", "bsap_ug_l", "calcium_mmol_l"))
    # each row's week-0 row of the same patient (-1: none), found among the week-0 rows sorted by patient
    at_zero = np.flatnonzero(week == 0)
    by_id = at_zero[np.argsort(ids[at_zero], kind="stable")]
    where = position_in(ids[by_id], ids)
    start = np.full(ids.size, -1)
    start[where >= 0] = by_id[where[where >= 0]]
    out = {}
    for w in np.unique(week):
        visit = np.flatnonzero(week == w)
        measured, base = visit[start[visit] >= 0], start[visit][start[visit] >= 0]
        out[str(int(w))] = {
            "untx_change_pct": _median_change(untx[measured], untx[base]),
            "untx_below_50": float((untx[visit] < UNTX_NORMAL_LIMIT).mean()),
            "bsap_change_pct": _median_change(bsap[measured], bsap[base]),
            "calcium_mmol_l": _median(calcium[visit]),
            "untx_nmol_mmol": _median(untx[visit]),
            "bsap_ug_l": _median(bsap[visit]),
            "n": int(visit.size),
        }
    return out


def _median(values: np.ndarray) -> float:
    """Median without NaN, as pandas' ``Series.median`` computes it (``np.nanmedian`` of the non-NaN values)."""
    kept = values[~np.isnan(values)]
    return float(np.nanmedian(kept)) if kept.size else math.nan


def _median_change(value: np.ndarray, baseline: np.ndarray) -> float | None:
    """Median per-patient percent change from baseline (patients without a baseline left out by the caller)."""
    pct = 100.0 * (value / baseline - 1.0)
    return _median(pct) if not np.isnan(pct).all() else None


def _empty_arm_summary(sre_types: Sequence[str], landmarks_months: Sequence[float]) -> dict:
    """The keys of :func:`_arm_summary` for an arm without patients: counts 0, estimates ``None``."""
    return {
        "n": 0,
        "median_time_to_first_sre_months": None,
        "median_time_to_first_sre_months_ci": [None, None],
        "n_with_sre": 0,
        "proportion_with_sre": None,
        "proportion_with_sre_ci": [None, None],
        "cumulative_incidence_sre": {landmark_key(m): None for m in landmarks_months},
        "n_sre": 0,
        "patient_years": 0.0,
        "mean_sre_per_patient": None,
        "sre_rate_per_patient_year": None,
        "sre_rate_per_patient_year_ci": [None, None],
        "sre_by_type": dict.fromkeys(sre_types),
        "first_sre_by_type": dict.fromkeys(sre_types),
        "n_deaths": 0,
        "median_overall_survival_months": None,
        "median_overall_survival_months_ci": [None, None],
        "adverse_events": dict.fromkeys(REPORTED_ADVERSE_EVENTS),
        "adverse_events_ci": {
            ae: {"n": 0, "proportion": None, "ci_low": None, "ci_high": None} for ae in REPORTED_ADVERSE_EVENTS
        },
        "radiotherapy_retreatment": None,
        "radiotherapy_retreatment_detail": {"irradiated_lesions": 0, "retreated_lesions": 0, "reason": NO_PATIENTS},
        "pain_response": None,
        "pain_response_detail": {
            "assessed_lesions": 0,
            "responded_lesions": 0,
            "complete_lesions": 0,
            "reason": NO_PATIENTS,
        },
        "reason": NO_PATIENTS,
    }


def cox_comparison(
    patients: pd.DataFrame, arm: str, reference: str, endpoint: str = "time_to_first_sre", design: str = "parallel"
) -> dict:
    """Cox hazard ratio of ``arm`` against ``reference`` for a one-row-per-patient endpoint.

    In the paired design the same ``patient_id`` is the same virtual patient in every arm; the
    variance is then clustered on it (robust sandwich), which accounts for the pairing.

    Returns
    -------
    dict
        ``{hazard_ratio, ci_low, ci_high, p_value}``, ``None`` with a ``reason`` if not estimable.
    """
    pair = patients[patients["arm"].isin([arm, reference])]
    stop, event = endpoint_data(pair, endpoint)
    data = pd.DataFrame(
        {
            "stop": stop,
            "event": event,
            "treated": (pair["arm"] == arm).to_numpy(dtype=int),
            "patient_id": pair["patient_id"].to_numpy(),
        }
    )
    return treatment_effect(data, cluster_col="patient_id" if design == "paired" else None)


def rate_ratio_comparison(patients: pd.DataFrame, events: pd.DataFrame, arm: str, reference: str) -> dict:
    """Andersen–Gill rate ratio of all counted SREs (first and subsequent), ``arm`` against ``reference``.

    The variance is clustered on ``patient_id`` (robust sandwich): a patient's events are correlated.

    Returns
    -------
    dict
        ``{rate_ratio, ci_low, ci_high, p_value}``, ``None`` with a ``reason`` if not estimable.
    """
    pair = patients[patients["arm"].isin([arm, reference])]
    recurrent = counting_process(pair, events[events["arm"].isin([arm, reference])])
    recurrent["treated"] = (recurrent["arm"] == arm).to_numpy(dtype=int)
    return treatment_effect(recurrent, ratio_name="rate_ratio", entry_col="start", cluster_col="patient_id")


def non_inferiority_test(upper: float | None, margin: float) -> dict:
    """Non-inferiority of one comparison: the upper bound of the two-sided 95% CI below ``margin``.

    The rule of the pivotal denosumab trials (a one-sided test at 2.5%); ``met`` is ``None`` when
    the bound cannot be estimated.
    """
    return {"margin": margin, "ci_high": upper, "met": None if upper is None else bool(upper < margin)}


def _with_non_inferiority(comparison: dict, hr_margin: float | None, rd_margin: float | None) -> dict:
    """``comparison`` with a ``non_inferiority`` block for each margin given (none: unchanged)."""
    tests = {}
    if hr_margin is not None:
        tests["hazard_ratio"] = non_inferiority_test(comparison["time_to_first_sre"]["ci_high"], hr_margin)
    if rd_margin is not None:
        tests["risk_difference"] = non_inferiority_test(comparison["proportion_with_sre"]["ci_high"], rd_margin)
    return {**comparison, "non_inferiority": tests} if tests else comparison


def _comparison(
    patients: pd.DataFrame,
    events: pd.DataFrame,
    fits: Mapping[str, Mapping],
    arm: str,
    reference: str,
    design: str,
    tau: float,
) -> dict:
    """One arm against the reference: Cox, Andersen–Gill, RMST, proportions, adverse events.

    The Andersen–Gill variance is clustered on ``patient_id``; in the paired design the same id
    is the same virtual patient in every arm, so the Cox models of first SRE and death are
    clustered on it too, which accounts for the pairing.
    """
    pair = patients[patients["arm"].isin([arm, reference])]
    result = {
        "arm": arm,
        "reference": reference,
        "time_to_first_sre": cox_comparison(pair, arm, reference, "time_to_first_sre", design),
        "first_and_subsequent_sre": rate_ratio_comparison(pair, events, arm, reference),
        "overall_survival": cox_comparison(pair, arm, reference, "overall_survival", design),
        "rmst_time_to_first_sre": rmst_difference(
            fits["time_to_first_sre"][arm], fits["time_to_first_sre"][reference], tau
        ),
        "rmst_overall_survival": rmst_difference(
            fits["overall_survival"][arm], fits["overall_survival"][reference], tau
        ),
        "proportion_with_sre": _risk_difference(pair["arm"] == arm, pair["first_sre_day"].notna()),
        "adverse_events": _adverse_event_differences(pair, events, arm),
    }
    if design == "paired":
        result["paired"] = paired_view(pair, arm, reference)
    return result


def _risk_difference(in_arm: pd.Series, has: pd.Series) -> dict:
    """Newcombe risk difference (arm minus reference) and Fisher's exact p of a yes/no outcome."""
    in_arm, has = in_arm.to_numpy(dtype=bool), has.to_numpy(dtype=bool)
    k1, n1 = int(has[in_arm].sum()), int(in_arm.sum())
    k0, n0 = int(has[~in_arm].sum()), int((~in_arm).sum())
    if n1 == 0 or n0 == 0:
        return null_result(("risk_difference", "ci_low", "ci_high", "p_value"), EMPTY_ARM)
    d, low, high = newcombe_difference(k1, n1, k0, n0)
    return {"risk_difference": d, "ci_low": low, "ci_high": high, "p_value": fisher_p_value(k1, n1, k0, n0)}


def _adverse_event_differences(pair: pd.DataFrame, events: pd.DataFrame, arm: str) -> dict:
    """Risk difference of each adverse event, arm minus reference (patients with at least one).

    A patient under an arm is one integer key (``patient_id x arms + arm``), so membership is one
    ``np.isin`` per event type (a crosstab of the events took seconds at 100,000 patients).
    """
    arms = pd.Index(pair["arm"].unique())
    ae = events[events["type"].isin(REPORTED_ADVERSE_EVENTS) & events["arm"].isin(arms)]

    def key(table: pd.DataFrame) -> np.ndarray:
        return table["patient_id"].to_numpy(np.int64) * len(arms) + arms.get_indexer(table["arm"])

    pair_key, ae_key, ae_type = key(pair), key(ae), ae["type"].to_numpy()
    in_arm = pair["arm"] == arm
    return {
        name: _risk_difference(in_arm, pd.Series(np.isin(pair_key, ae_key[ae_type == name])))
        for name in REPORTED_ADVERSE_EVENTS
    }


def paired_view(pair: pd.DataFrame, arm: str, reference: str) -> dict:
    """Per-patient effect on the first SRE of the same virtual patient under ``arm`` vs ``reference``.

    Each patient is *delayed* (first SRE later under the arm), *prevented* (an SRE under the
    reference, none under the arm), *advanced* (earlier under the arm, or only under the arm)
    or *unchanged* (within ``SAME_DAY`` days, or no SRE under either). Differences are in
    months, arm minus reference, over the patients with an SRE under both.
    """
    first = pair.pivot(index="patient_id", columns="arm", values="first_sre_day")[[arm, reference]]
    a, r = first[arm].to_numpy(), first[reference].to_numpy()
    has_a, has_r = ~np.isnan(a), ~np.isnan(r)
    diff = a - r
    both = has_a & has_r
    delayed = both & (diff > SAME_DAY)
    advanced = (both & (diff < -SAME_DAY)) | (has_a & ~has_r)
    prevented = has_r & ~has_a
    n = len(first)
    months = diff[both] / DAYS_PER_MONTH
    return {
        "n_patients": n,
        "delayed": int(delayed.sum()) / n,
        "prevented": int(prevented.sum()) / n,
        "advanced": int(advanced.sum()) / n,
        "unchanged": int((~(delayed | advanced | prevented)).sum()) / n,
        "n_with_sre_under_both": int(both.sum()),
        "median_difference_months": float(np.median(months)) if months.size else None,
        "mean_difference_months": float(np.mean(months)) if months.size else None,
    }


def _subgroup(patients: pd.DataFrame, arm: str, reference: str, design: str, primary: str) -> dict:
    """Hazard ratio of time to first SRE within one primary tumour."""
    pair = patients[patients["arm"].isin([arm, reference]) & (patients["primary"] == primary)]
    return {
        "arm": arm,
        "reference": reference,
        "primary": primary,
        "n": int((pair["arm"] == arm).sum()),
        "n_reference": int((pair["arm"] == reference).sum()),
        "time_to_first_sre": cox_comparison(pair, arm, reference, "time_to_first_sre", design),
    }


def plain(value: object) -> object:
    """Turn numpy scalars into Python ones and NaN/inf into ``None``, recursively."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def to_json(summary: Mapping) -> str:
    """Deterministic JSON text of a summary: fixed key order, plain types, no NaN."""
    return json.dumps(plain(summary), indent=2, allow_nan=False) + "\n"


#: Percentiles of the ``uncertainty`` block: the median and a 95% interval over draws.
PERCENTILES = (2.5, 50.0, 97.5)
#: The headline numbers of an arm and of a comparison (the ratio each comparison reports).
HEADLINE_ARM = (
    "proportion_with_sre",
    "median_time_to_first_sre_months",
    "sre_rate_per_patient_year",
    "median_overall_survival_months",
)
HEADLINE_COMPARISON = {
    "time_to_first_sre": "hazard_ratio",
    "first_and_subsequent_sre": "rate_ratio",
    "overall_survival": "hazard_ratio",
}
#: The scale of each headline number's sampling distribution in the prediction interval
#: (:mod:`vtrial.analysis.prediction`); the ratios of :data:`HEADLINE_COMPARISON` are on the log scale.
HEADLINE_SCALE = {
    "proportion_with_sre": IDENTITY,
    "median_time_to_first_sre_months": LOG,
    "sre_rate_per_patient_year": LOG,
    "median_overall_survival_months": LOG,
}


def headline(summary: Mapping) -> dict:
    """The headline numbers of a summary and their 95% CIs (key ``<name>_ci``, ``[low, high]``).

    Per arm the numbers of :data:`HEADLINE_ARM`, per comparison the ratios of
    :data:`HEADLINE_COMPARISON`.
    """
    return {
        "arms": {
            arm: {k: a[k] for key in HEADLINE_ARM for k in (key, f"{key}_ci")} for arm, a in summary["arms"].items()
        },
        "comparisons": [
            {
                "arm": c["arm"],
                "reference": c["reference"],
                **{
                    k: v
                    for name, ratio in HEADLINE_COMPARISON.items()
                    for k, v in ((name, c[name][ratio]), (f"{name}_ci", [c[name]["ci_low"], c[name]["ci_high"]]))
                },
            }
            for c in summary["comparisons"]
        ],
    }


def spread(values: Sequence[float | None]) -> dict:
    """Median and 2.5/97.5 percentiles (numpy's linear method) of the estimable values, and their count.

    ``None`` and non-finite values (a draw whose estimate could not be made, e.g. a median not
    reached) are left out; with none left, the three are ``None``.
    """
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not kept:
        return {"median": None, "low": None, "high": None, "estimable": 0}
    low, median, high = np.percentile(kept, PERCENTILES, method="linear")
    return {"median": float(median), "low": float(low), "high": float(high), "estimable": len(kept)}


def _over_draws(numbers: Sequence[Mapping], fitted: Mapping, key: str, scale: str) -> dict:
    """One headline number over the draws: the spread of the estimates, and the ``prediction`` interval.

    The spread (``median``, ``low``, ``high``, ``estimable``) is the parameter uncertainty
    alone; ``prediction`` adds the sampling error of the fitted run (``fitted``, its headline
    numbers; :func:`vtrial.analysis.prediction.prediction`).
    """
    values = [n[key] for n in numbers]
    return {
        **spread(values),
        "prediction": prediction(values, fitted[key], fitted.get(f"{key}_ci"), scale, PERCENTILES),
    }


def uncertainty_block(headlines: Sequence[Mapping], method: str, fitted: Mapping) -> dict:
    """The ``uncertainty`` block of ``summary.json`` from the :func:`headline` of each parameter draw.

    ``fitted`` is the :func:`headline` of the run at the fitted parameters (on the same patients):
    the prediction intervals are built around it.
    """
    first = headlines[0]
    return {
        "parameter_draws": len(headlines),
        "method": method,
        "percentiles": list(PERCENTILES),
        "arms": {
            arm: {
                key: _over_draws([h["arms"][arm] for h in headlines], fitted["arms"][arm], key, HEADLINE_SCALE[key])
                for key in HEADLINE_ARM
            }
            for arm in first["arms"]
        },
        "comparisons": [
            {
                "arm": c["arm"],
                "reference": c["reference"],
                **{
                    name: _over_draws([h["comparisons"][i] for h in headlines], fitted["comparisons"][i], name, LOG)
                    for name in HEADLINE_COMPARISON
                },
            }
            for i, c in enumerate(first["comparisons"])
        ],
    }
