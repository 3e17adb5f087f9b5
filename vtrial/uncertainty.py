"""A trial under the parameter draws of the calibration (``vtrial run P --parameter-draws K``).

The run itself uses the fitted parameters; afterwards each of the first ``K`` parameter sets of
the ensemble (:mod:`vtrial.calibration.uncertainty`) re-runs the same trial: the same seed and
replicate, so the same patients, randomisation and random streams (common random numbers), only
the parameters differ. One engine task per draw (:func:`vtrial.engine.execute`) simulates the
trial in its worker and returns its headline numbers and their 95% CIs
(:func:`vtrial.analysis.summary.headline`; the CIs make the prediction interval);
each is written to the partial run folder as it finishes, so ``--resume`` keeps the finished
draws. When all are done, ``parameter-draws.json`` (the ensemble's sidecar and every draw's
parameters and headline numbers) is written to the run folder; the analysis turns it into the
``uncertainty`` block of ``summary.json``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vtrial.analysis.run import DRAWS_FILE, analysis_settings
from vtrial.analysis.summary import headline, plain, summarise
from vtrial.calibration.replicas import simulate_trial
from vtrial.engine import execute, trial_patient_arms
from vtrial.protocol import Protocol
from vtrial.store import atomic_write_json
from vtrial.streams import Streams

#: Folder of the finished draws inside a partial run folder (removed once all are combined).
DRAWS_DIR = "parameter-draws"


@dataclass(frozen=True)
class DrawTask:
    """One engine task: the whole trial under one parameter set of the ensemble."""

    index: int
    parameters: Mapping[str, float]
    #: the whole trial's (:func:`vtrial.engine.trial_patient_arms`)
    patient_arms: int


def run_draw(protocol: Protocol, streams: Streams, task: DrawTask) -> tuple[DrawTask, dict]:
    """Simulate and analyse the trial under the draw's parameters (a worker's task); its headline numbers and CIs."""
    patients, events, markers = simulate_trial(protocol, streams.replicate, task.parameters)
    summary = summarise(patients, events, markers=markers, **analysis_settings(protocol))
    return task, headline(summary)


def run_draws(
    protocol: Protocol,
    run_dir: Path,
    ensemble: list[dict[str, float]],
    sidecar: Mapping,
    *,
    replicate: int = 0,
    jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run the trial under every parameter set of ``ensemble`` and write ``DRAWS_FILE`` into ``run_dir``.

    A draw already in ``run_dir/DRAWS_DIR`` with the same parameters (an interrupted run being
    resumed) is not run again. The results do not depend on ``jobs``, the backend or the order
    in which the draws finish.
    """
    folder = run_dir / DRAWS_DIR
    folder.mkdir(exist_ok=True)
    results: dict[int, dict] = {}
    for i, parameters in enumerate(ensemble):
        path = folder / f"draw-{i:05d}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved["parameters"] == parameters:
                results[i] = saved
    todo = [DrawTask(i, p, trial_patient_arms(protocol)) for i, p in enumerate(ensemble) if i not in results]
    if on_progress:
        on_progress(len(results), len(ensemble))
    streams = Streams(protocol.trial.seed, replicate)
    for task, numbers in execute(
        protocol, streams, todo, jobs=jobs, backend=backend, scheduler=scheduler, run=run_draw
    ):
        results[task.index] = {"parameters": dict(task.parameters), "headline": plain(numbers)}
        atomic_write_json(folder / f"draw-{task.index:05d}.json", results[task.index])
        if on_progress:
            on_progress(len(results), len(ensemble))
    path = run_dir / DRAWS_FILE
    atomic_write_json(path, {"ensemble": dict(sidecar), "draws": [results[i] for i in range(len(ensemble))]})
    shutil.rmtree(folder)
    return path
