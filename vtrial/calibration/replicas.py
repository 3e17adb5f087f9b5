"""Run the replica protocols of ``protocols/trials`` in memory and keep what the targets need.

Each replica runs in one worker through the engine's own tasks (:func:`vtrial.engine.plan_tasks`,
:func:`vtrial.engine.simulate_block`) and is analysed there with :func:`vtrial.analysis.summarise`;
the worker returns an :class:`Observation`: the summary plus a few per-patient arrays (for
survival at a landmark, crude proportions by a landmark, lesion counts), the counts that need
the event table (acute-phase reactions in the first 3 days, osteonecrosis of the jaw with dental
risk), the bone-marker visits and the local events of lesions (radiotherapy, fracture, surgery). Parameters overrides reach the model unchanged, so the fit and ``vtrial validate`` run the
same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from vtrial.analysis import analysis_settings, summarise
from vtrial.cohort import sample_cohort
from vtrial.engine import DEFAULT_BLOCK_SIZE, local_workers, plan_tasks, resolve_jobs, simulate_block
from vtrial.errors import UserInputError
from vtrial.protocol import Protocol, apply_overrides, load_protocol
from vtrial.streams import Streams
from vtrial.vocabulary import PAIN_COURSES

#: The replica protocols shipped with the project (an editable install finds them here).
TRIALS_DIR = Path(__file__).resolve().parents[2] / "protocols" / "trials"
#: An acute-phase reaction counts if it starts within this many days of the first dose (INT-06).
ACUTE_PHASE_DAYS = 3.0
#: Event types kept per lesion (fracture after radiotherapy).
LESION_EVENT_TYPES: tuple[str, ...] = (*PAIN_COURSES, "pathological_fracture", "surgery_to_bone")


@dataclass
class ArmData:
    """Per-patient arrays of one arm, the counts that need the event table, its marker visits and lesion events.

    ``markers`` has the columns of ``markers.parquet`` but ``arm``; ``lesion_events`` the
    ``patient_id``, ``day``, ``type``, ``site`` and ``lesion`` of the events :data:`LESION_EVENT_TYPES`.
    """

    followup_days: np.ndarray
    died: np.ndarray
    first_sre_day: np.ndarray
    n_lesions: np.ndarray
    acute_phase_3_days: int
    onj: int
    onj_dental_risk: int
    patient_id: np.ndarray | None = None
    markers: pd.DataFrame | None = None
    lesion_events: pd.DataFrame | None = None


@dataclass
class Observation:
    """What one simulated replica trial yields: its summary and its arms' data."""

    summary: dict
    arms: dict[str, ArmData]


def load_replicas(names: list[str], directory: str | Path | None = None) -> dict[str, Protocol]:
    """Load the named replica protocols (``<directory>/<name>.toml``), validated."""
    directory = TRIALS_DIR if directory is None else Path(directory)
    protocols = {}
    for name in names:
        path = directory / f"{name}.toml"
        if not path.is_file():
            raise UserInputError(
                "the replica protocol is missing",
                file=path,
                field="--trials",
                fix="pass --trials DIR, the folder holding the replica protocols (protocols/trials of the project)",
            )
        protocols[name] = load_protocol(path)
    return protocols


def simulate_trial(
    protocol: Protocol, replicate: int, parameters: Mapping[str, float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every patient, event and marker visit of one replicate trial, simulated in this process."""
    streams = Streams(protocol.trial.seed, replicate)
    parts = [
        simulate_block(protocol, streams, task, parameters)
        for task in plan_tasks(protocol, streams, DEFAULT_BLOCK_SIZE)
    ]
    return tuple(pd.concat([pd.DataFrame(part[k]) for part in parts], ignore_index=True) for k in range(3))


def observe(
    protocol: Protocol,
    patients: pd.DataFrame,
    events: pd.DataFrame,
    streams: Streams,
    markers: pd.DataFrame | None = None,
) -> Observation:
    """Summarise a simulated trial and keep its arms' arrays, event-table counts, marker visits and lesion events."""
    summary = summarise(patients, events, markers=markers, **analysis_settings(protocol))
    apr = events[(events["type"] == "acute_phase_reaction") & (events["day"] < ACUTE_PHASE_DAYS)]
    onj = events[events["type"] == "osteonecrosis_of_the_jaw"].drop_duplicates(["patient_id", "arm"])
    dental_ids = _dental_risk_ids(protocol, onj["patient_id"].to_numpy(), streams)
    local = events[events["type"].isin(LESION_EVENT_TYPES) & (events["lesion"] >= 0)]
    arms = {}
    for arm in (a.name for a in protocol.arm):
        p = patients[patients["arm"] == arm]
        onj_arm = onj[onj["arm"] == arm]
        arms[arm] = ArmData(
            followup_days=p["followup_days"].to_numpy(dtype=float),
            died=p["died"].to_numpy(dtype=bool),
            first_sre_day=p["first_sre_day"].to_numpy(dtype=float),
            n_lesions=p["n_lesions"].to_numpy(dtype=float),
            acute_phase_3_days=int(apr.loc[apr["arm"] == arm, "patient_id"].nunique()),
            onj=len(onj_arm),
            onj_dental_risk=int(onj_arm["patient_id"].isin(dental_ids).sum()),
            patient_id=p["patient_id"].to_numpy(),
            markers=None if markers is None else markers[markers["arm"] == arm].drop(columns="arm"),
            lesion_events=local.loc[local["arm"] == arm, ["patient_id", "day", "type", "site", "lesion"]],
        )
    return Observation(summary, arms)


def _dental_risk_ids(protocol: Protocol, patient_ids: np.ndarray, streams: Streams) -> set[int]:
    """The patients among ``patient_ids`` with dental risk (the cohort is keyed to patient ids)."""
    ids = np.unique(patient_ids)
    if ids.size == 0:
        return set()
    cohort = sample_cohort(protocol, ids, streams)
    return set(cohort.patient_id[cohort.dental_risk].tolist())


def run_replica(protocol: Protocol, replicate: int, parameters: Mapping[str, float] | None = None) -> Observation:
    """Simulate and observe one replica trial (one worker's task)."""
    patients, events, markers = simulate_trial(protocol, replicate, parameters)
    return observe(protocol, patients, events, Streams(protocol.trial.seed, replicate), markers)


#: Replicas of trials that randomised only patients who passed a screen the model cannot apply before
#: randomisation: each runs this many times the patients, so that about as many pass the screen as the others
#: randomise (the statistic applies the screen). ``body2010-prior``: uNTx above 50 nmol/mmol after a year of
#: zoledronic acid, which 0.5-0.9% of its patients keep (110 of 20,000 on denosumab at 30,000 patients).
SCREENED_PER_RANDOMISED: dict[str, int] = {"body2010-prior": 25}


def run_replicas(
    protocols: Mapping[str, Protocol],
    patients: int,
    *,
    replicate: int = 0,
    parameters: Mapping[str, float] | None = None,
    jobs: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Observation]:
    """Run every replica with ``patients`` patients, one replica per joblib task.

    The longest replicas (patients x horizon) start first, so the workers stay busy. A replica of a
    screened trial runs :data:`SCREENED_PER_RANDOMISED` times the patients.
    """
    if patients < 1:
        raise UserInputError(
            f"--patients must be at least 1, got {patients}",
            field="--patients",
            fix="pass a positive number of patients per replica, e.g. --patients 2000",
        )
    sized = {
        name: apply_overrides(p, patients=patients * SCREENED_PER_RANDOMISED.get(name, 1))
        for name, p in protocols.items()
    }
    order = sorted(
        sized, key=lambda name: -sized[name].trial.horizon_months * len(sized[name].arm) * sized[name].trial.patients
    )
    results: dict[str, Observation] = {}
    if on_progress:
        on_progress(0, len(order))
    with local_workers(resolve_jobs(jobs, len(order))):
        runner = Parallel(return_as="generator", batch_size=1)
        tasks = (delayed(run_replica)(sized[name], replicate, parameters) for name in order)
        for done, (name, observation) in enumerate(zip(order, runner(tasks)), 1):
            results[name] = observation
            if on_progress:
                on_progress(done, len(order))
    return results
