"""Outcomes of radiotherapy to bone per lesion: re-treatment of irradiated lesions and their pain response.

A lesion is identified by its patient and its ``lesion`` number in ``events.parquet``. Its
courses for pain are its ``radiation_to_bone`` events (counted as SREs or not by the window
rule: every course given) and a course a protocol gives at randomisation (``entry_radiotherapy``),
:data:`~vtrial.vocabulary.PAIN_COURSES`; prophylactic radiotherapy is not one. Its pain response
is recorded 3 months after its first course (``partial_pain_response`` or
``complete_pain_response``; no row is no response) and counted by intention to treat, as the
trials pooled by Chow 2007 did: a lesion whose patient died before the assessment is a
non-responder, one whose patient was censored alive before it is left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vtrial.analysis.survival import position_in, run_starts
from vtrial.vocabulary import PAIN_ASSESSMENT_DAYS, PAIN_COURSES, PAIN_RESPONSES


def _lesion_keys(events: pd.DataFrame, width: int) -> np.ndarray:
    """One integer per patient and lesion: ``patient_id * width + lesion``."""
    return events["patient_id"].to_numpy(np.int64) * width + events["lesion"].to_numpy(np.int64)


def _width(events: pd.DataFrame) -> int:
    """One more than the largest lesion number of ``events`` (the multiplier of :func:`_lesion_keys`)."""
    return int(events["lesion"].to_numpy(np.int64).max(initial=0)) + 1


def _first_courses(events: pd.DataFrame, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each lesion given a course for pain: its key (:func:`_lesion_keys`, sorted), the day of its first
    course and its number of courses (rows of ``events`` with a lesion number)."""
    rt = events[(events["type"].isin(PAIN_COURSES) & (events["lesion"] >= 0)).to_numpy()]
    key, day = _lesion_keys(rt, width), rt["day"].to_numpy(float)
    order = np.lexsort((day, key))
    key, day = key[order], day[order]
    first = run_starts(key)
    return key[first], day[first], np.diff(np.append(np.flatnonzero(first), key.size))


def radiotherapy_retreatment(events: pd.DataFrame) -> tuple[float | None, dict]:
    """Share of irradiated lesions irradiated again, and its counts (``None`` with a reason if none).

    A lesion is irradiated when it has at least one course for pain and re-treated when it has a
    second one.
    """
    if "lesion" not in events.columns:
        return None, {
            "irradiated_lesions": 0,
            "retreated_lesions": 0,
            "reason": "the events table has no lesion column (a run from before it existed)",
        }
    _, _, courses = _first_courses(events, _width(events))
    irradiated, retreated = int(courses.size), int((courses >= 2).sum())
    reason = None if irradiated else "no lesion was irradiated in this arm"
    detail = {"irradiated_lesions": irradiated, "retreated_lesions": retreated, "reason": reason}
    return (retreated / irradiated if irradiated else None), detail


def first_pain_courses(
    events: pd.DataFrame, patient_id: np.ndarray, followup_days: np.ndarray, died: np.ndarray
) -> pd.DataFrame:
    """Each lesion irradiated for pain, from its first course, and its pain response.

    Columns ``patient_id``, ``lesion``, ``day`` (of the first course), ``followed`` (its patient
    followed to the assessment, :data:`~vtrial.vocabulary.PAIN_ASSESSMENT_DAYS` later),
    ``died`` (its patient died in follow-up), ``responded`` (a partial or complete response),
    ``complete`` and ``courses`` (its number of courses for pain: re-treated when 2 or more); one row per
    lesion, by patient and lesion. ``events`` has ``patient_id``,
    ``lesion``, ``day`` and ``type``; the per-patient arrays cover every patient with an event.
    """
    width = _width(events)
    key, day, courses = _first_courses(events, width)
    patient = key // width
    ids = np.asarray(patient_id, np.int64)
    sort = np.argsort(ids, kind="stable")
    row = sort[position_in(ids[sort], patient)]
    answered = events[events["type"].isin(PAIN_RESPONSES).to_numpy() & (events["lesion"] >= 0).to_numpy()]
    answer = _lesion_keys(answered, width)
    complete = answer[(answered["type"] == PAIN_RESPONSES[1]).to_numpy()]
    return pd.DataFrame(
        {
            "patient_id": patient,
            "lesion": key % width,
            "day": day,
            "followed": np.asarray(followup_days, float)[row] >= day + PAIN_ASSESSMENT_DAYS,
            "died": np.asarray(died, bool)[row],
            "responded": np.isin(key, answer),
            "complete": np.isin(key, complete),
            "courses": courses,
        }
    )


def pain_response(events: pd.DataFrame, patients: pd.DataFrame) -> tuple[dict | None, dict]:
    """Overall (partial or complete) and complete pain response of an arm's irradiated lesions, and the counts.

    ``None`` with a reason when no irradiated lesion's response counts (none irradiated, or every
    one censored alive before its assessment). ``patients`` has ``patient_id``, ``followup_days``
    and ``died``.
    """
    detail: dict = {"assessed_lesions": 0, "responded_lesions": 0, "complete_lesions": 0, "reason": None}
    if "lesion" not in events.columns:
        return None, {**detail, "reason": "the events table has no lesion column (a run from before it existed)"}
    courses = first_pain_courses(events, patients["patient_id"], patients["followup_days"], patients["died"])
    counted = courses[(courses["followed"] | courses["died"]).to_numpy()]
    n = len(counted)
    if n == 0:
        reason = "no lesion was irradiated for pain in this arm" if courses.empty else "no assessment was reached"
        return None, {**detail, "reason": reason}
    responded, complete = int(counted["responded"].sum()), int(counted["complete"].sum())
    detail.update(assessed_lesions=n, responded_lesions=responded, complete_lesions=complete)
    return {"overall": responded / n, "complete": complete / n}, detail
