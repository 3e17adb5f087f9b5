"""The SRE window rule, applied once here: SREs within ``window_days`` of a counted SRE count as one.

The pivotal trials (Stopeck 2010, Fizazi 2011) counted an SRE only if it occurred more than
21 days after the previous counted SRE; events inside the window are listed but not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def apply_window_rule(
    patient_id: np.ndarray,
    day: np.ndarray,
    event_type: np.ndarray,
    sre_types: Iterable[str],
    window_days: float,
) -> np.ndarray:
    """Mark the events that count as SREs.

    Parameters
    ----------
    patient_id, day, event_type : array, shape (n_events,)
        The event list, in any order.
    sre_types : iterable of str
        Event types that count as SREs.
    window_days : float
        An SRE at most this many days after the patient's last counted SRE is not counted.

    Returns
    -------
    counted : bool array, shape (n_events,)
        True for the events that count, in the input order.
    """
    patient_id = np.asarray(patient_id)
    day = np.asarray(day, dtype=float)
    is_sre = np.isin(np.asarray(event_type).astype(str), list(sre_types))
    counted = np.zeros(day.shape, dtype=bool)
    idx = np.flatnonzero(is_sre)
    if idx.size == 0:
        return counted
    idx = idx[np.lexsort((day[idx], patient_id[idx]))]
    pid, d = patient_id[idx], day[idx]
    # Rank of each SRE within its patient; the rule is sequential within a patient, so sweep
    # over ranks, vectorised across patients.
    new_patient = np.r_[True, pid[1:] != pid[:-1]]
    starts = np.flatnonzero(new_patient)
    rank = np.arange(idx.size) - np.repeat(starts, np.diff(np.r_[starts, idx.size]))
    last_counted = np.full(starts.size, -np.inf)
    owner = np.cumsum(new_patient) - 1
    keep = np.zeros(idx.size, dtype=bool)
    for r in range(int(rank.max()) + 1):
        at = np.flatnonzero(rank == r)
        ok = d[at] - last_counted[owner[at]] > window_days
        keep[at] = ok
        last_counted[owner[at[ok]]] = d[at[ok]]
    counted[idx] = keep
    return counted
