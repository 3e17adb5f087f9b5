"""Cost model: seconds per patient-arm-year of one core, per primary and agent (``python -m benchmarks.cost``).

One 2,048-patient block of one primary under one arm (version-1 label regimen, 5 years,
in this process, best of ``--repeats``); the time divided by the patient-years followed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vtrial.engine import plan_tasks, simulate_block
from vtrial.protocol import load_protocol
from vtrial.streams import Streams
from vtrial.vocabulary import DAYS_PER_YEAR, PRIMARIES

#: The arm of each agent at its label regimen (protocol TOML lines).
ARMS = {
    "none": 'drug = "none"',
    "zoledronic_acid": 'drug = "zoledronic_acid"\ndose_mg = 4.0\nevery_weeks = 4.0',
    "denosumab": 'drug = "denosumab"\ndose_mg = 120.0\nevery_weeks = 4.0',
    "pamidronate": 'drug = "pamidronate"\ndose_mg = 90.0\nevery_weeks = 4.0',
    "radium_223": 'drug = "radium_223"\ndose_kbq_per_kg = 55.0\nevery_weeks = 4.0\ndoses = 6',
}


def per_patient_year(primary: str, agent: str, patients: int = 2048, years: float = 5.0, repeats: int = 2) -> float:
    """Seconds of one core per patient-arm-year followed, for one primary under one agent."""
    text = (
        f'[trial]\nname = "cost"\npatients = {patients}\nhorizon_months = {12 * years}\nseed = 1\n\n'
        f'[cohort]\nprimary = {{ {primary} = 1.0 }}\n\n[[arm]]\nname = "arm"\n{ARMS[agent]}\n'
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cost.toml"
        path.write_text(text)
        protocol = load_protocol(path)
    streams = Streams(1)
    task = plan_tasks(protocol, streams, patients)[0]
    best, followed = float("inf"), 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        patients_table = simulate_block(protocol, streams, task)[0]
        best = min(best, time.perf_counter() - started)
        followed = float(patients_table["followup_days"].sum()) / DAYS_PER_YEAR
    return best / followed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cost", description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print("| primary | " + " | ".join(ARMS) + " |\n|---" + "|---" * len(ARMS) + "|")
    for primary in PRIMARIES:
        cells = []
        for agent in ARMS:
            if agent == "radium_223" and primary != "prostate":
                cells.append("")
                continue
            cells.append(f"{per_patient_year(primary, agent, repeats=args.repeats) * 1e6:.0f} us")
        print(f"| {primary} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
