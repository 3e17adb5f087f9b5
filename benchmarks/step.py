"""The trials' event statistics at other time steps than the model's (``python -m benchmarks.step``).

``STEP_DAYS`` is a numerical choice: the lesion states are integrated exactly enough at any step
up to four weeks (benchmark d), but hazards are evaluated at mid-step and the effects of events
(a radiotherapy course, a fixation) and the laboratory visits' calcium follow the step. This
simulates 20,000 reference patients per primary (breast, prostate, lung, head and neck) for 3
years under placebo, zoledronic acid and denosumab at their label regimens, with the same
thresholds (``Streams(5)``) at each step, and prints per arm the share of patients with a first
SRE, SREs per patient, deaths, laboratory hypocalcaemia, and the CPU seconds of each step.
"""

from __future__ import annotations

import argparse
import importlib
import time
from unittest import mock

import numpy as np

from benchmarks import _label_arm
from vtrial.model.reference import reference_cohort
from vtrial.streams import Streams
from vtrial.vocabulary import DEFAULT_SRE_TYPES, DAYS_PER_YEAR

#: The simulation module (``vtrial.model.simulate`` is also the name of its function in ``vtrial.model``).
model = importlib.import_module("vtrial.model.simulate")
PRIMARIES = ("breast", "prostate", "lung", "head_and_neck")
DRUGS = ("none", "zoledronic_acid", "denosumab")


def statistics(step_days: int, patients: int, years: float) -> tuple[dict[tuple[str, str], dict[str, float]], float]:
    """Per (primary, drug): SRE share, SREs per patient, died share, hypocalcaemia share; and the CPU seconds."""
    out = {}
    cpu = time.process_time()
    with mock.patch.object(model, "STEP_DAYS", step_days):
        for primary in PRIMARIES:
            cohort = reference_cohort(patients, primary, seed=5)
            for drug in DRUGS:
                table, events, _ = model.simulate(cohort, _label_arm(drug), years * DAYS_PER_YEAR, Streams(5))
                sre = np.isin(events["type"], DEFAULT_SRE_TYPES)
                low = events["type"] == "hypocalcaemia"
                out[primary, drug] = {
                    "sre_share": np.unique(events["patient_id"][sre]).size / patients,
                    "sres_per_patient": sre.sum() / patients,
                    "died": float(np.mean(table["died"])),
                    "hypocalcaemia": np.unique(events["patient_id"][low]).size / patients,
                }
    return out, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step", description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[7, 14, 28], help="time steps to compare (days)")
    parser.add_argument("--patients", type=int, default=20_000, help="reference patients per primary")
    parser.add_argument("--years", type=float, default=3.0)
    args = parser.parse_args()
    runs = {step: statistics(step, args.patients, args.years) for step in args.steps}
    steps = " / ".join(f"{s} d" for s in args.steps)
    print(f"| primary | arm | SRE share ({steps}) | SREs per patient | died | hypocalcaemia |")
    print("|---|---|---|---|---|---|")
    for key in runs[args.steps[0]][0]:
        cells = [" / ".join(f"{runs[s][0][key][name]:.4f}" for s in args.steps) for name in runs[args.steps[0]][0][key]]
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    print("CPU seconds: " + ", ".join(f"{s} d {runs[s][1]:.1f}" for s in args.steps))


if __name__ == "__main__":
    main()
