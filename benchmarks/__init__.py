"""Benchmarks of the simulator (run on demand: ``python -m benchmarks``; not part of the test suite).

Each ``bench_*`` function measures one thing and returns table rows
``{"benchmark", "size", "measured", "target", "met"}``; :func:`run_all` collects them and
:func:`write_report` puts the table, with the machine and the date, into ``docs/performance.md``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
from scipy.integrate import solve_ivp

from vtrial.engine import run_trial
from vtrial.model import events as ev
from vtrial.model import simulate
from vtrial.model.drugs import Exposure
from vtrial.model.lesion import (
    STEP_DAYS, advance, established_state, gompertz_rate, lesion_traits, osteoclast_activity, rates, strength,
)
from vtrial.model.local_therapy import DEFAULT_COURSE, course_log_survival
from vtrial.model.parameters import Parameters
from vtrial.model.reference import radau_reference, reference_cohort
from vtrial.protocol import load_protocol, parse_protocol
from vtrial.report import report_run
from vtrial.streams import Streams

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- benchmark table: begin -->", "<!-- benchmark table: end -->"
DAYS_PER_YEAR = 365.25

Row = dict[str, str]


def row(benchmark: str, size: str, measured: str, target: str = "", met: bool | None = None) -> Row:
    """One table row (``met`` None: no target)."""
    return {"benchmark": benchmark, "size": size, "measured": measured, "target": target,
            "met": "" if met is None else ("yes" if met else "no")}


def machine() -> dict[str, str]:
    """Cores, CPU model, RAM, Python and numpy versions, date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()), "cpu": cpu, "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(), "numpy": np.__version__, "date": date.today().isoformat(),
    }


@contextmanager
def peak_memory(interval: float = 0.05) -> Iterator[dict[str, float]]:
    """Sample the resident memory of this process and its children in a thread; yields ``{"peak_gib"}``."""
    result = {"peak_gib": 0.0}
    stop = threading.Event()
    me = psutil.Process()

    def sample() -> None:
        while not stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            result["peak_gib"] = max(result["peak_gib"], total / 2**30)
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()


def mixed_protocol(patients: int, years: float, seed: int = 1):
    """Placebo vs zoledronic acid vs denosumab, label regimens, mixed breast/prostate/lung cohort."""
    return parse_protocol({
        "trial": {"name": "benchmark", "patients": patients, "horizon_months": 12 * years, "seed": seed,
                  "design": "paired"},
        "cohort": {"primary": {"breast": 0.4, "prostate": 0.4, "lung": 0.2}},
        "arm": [
            {"name": "placebo", "drug": "none"},
            {"name": "zoledronic_acid", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0},
            {"name": "denosumab", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0},
        ],
    }, "benchmark")


def timed_run(protocol, jobs: int, finish: Callable[[Path], object] | None) -> tuple[float, float, int]:
    """Wall time (s), peak memory (GiB) and patient rows of one ``run_trial`` into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp, peak_memory() as mem:
        started = time.perf_counter()
        result = run_trial(protocol, Path(tmp) / "run", jobs=jobs, finish=finish)
        wall = time.perf_counter() - started
    return wall, mem["peak_gib"], result.n_patients


def bench_stopeck(jobs: int = 2, patients: int | None = None) -> list[Row]:
    """a. The Stopeck 2010 replica (2,046 patients, 2 arms, 34 months) end to end: simulate, analyse, report."""
    protocol = load_protocol(ROOT / "protocols" / "breast.toml")
    if patients is not None:
        protocol = parse_protocol({**protocol.model_dump(mode="python", exclude_none=True),
                                   "trial": {**protocol.trial.model_dump(exclude_none=True), "patients": patients}},
                                  "benchmark")
    wall, _, _ = timed_run(protocol, jobs, report_run)
    return [row("a. Stopeck trial end to end", f"{protocol.trial.patients} x 2 arms x 34 mo, jobs {jobs}",
                f"{wall:.1f} s", "< 5 s", wall < 5.0)]


def bench_large(patients: int = 100_000, years: float = 5.0, jobs: int = 2) -> list[Row]:
    """b. Mixed cohort x 3 arms x ``years``: simulate only (tables written), then end to end; peak memory."""
    protocol = mixed_protocol(patients, years)
    size = f"{patients:,} x 3 arms x {years:g} y, jobs {jobs}"
    sim, sim_mem, _ = timed_run(protocol, jobs, None)
    e2e, e2e_mem, _ = timed_run(protocol, jobs, report_run)
    peak = max(sim_mem, e2e_mem)
    return [
        row("b. simulate only", size, f"{sim:.1f} s", "< 60 s (aim 30 s)", sim < 60.0),
        row("b. end to end (simulate, analyse, report)", size, f"{e2e:.1f} s", "< 60 s (aim 30 s)", e2e < 60.0),
        row("b. peak resident memory (all processes)", size, f"{peak:.2f} GiB", "< 2 GiB", peak < 2.0),
    ]


def _label_arm(drug: str) -> SimpleNamespace:
    dose = {"none": None, "zoledronic_acid": 4.0, "denosumab": 120.0}[drug]
    return SimpleNamespace(name=drug, drug=drug, dose_mg=dose, every_weeks=None if drug == "none" else 4.0,
                           calcium_vitamin_d=True, stop_after_months=None, renal_adjustment=True, mechanism=None)


def solve_ivp_patient(cohort, i: int, arm: SimpleNamespace, days: int, thresholds, params: Parameters) -> int:
    """One patient the way a Python user would write it: ``solve_ivp`` between dose days.

    States: every lesion's ``(w, y, Z)`` plus its four cumulative local hazards, and the
    patient's cumulative death and new-lesion hazards. Between dose days the drug input is
    the day's value; after each segment the thresholds are checked (an event resets its
    cumulative hazard; radiotherapy cuts the tumour; death ends the patient). Returns the
    number of events.
    """
    mask = cohort.lesion_mask[i]
    m = int(mask.sum())
    site = cohort.lesion_site[i, mask].astype(np.int64)
    growth = gompertz_rate(params.by_primary("doubling_time_days")[cohort.primary[i]], params)
    growth = growth * cohort.biology["tumour_growth_rate"][i]
    traits = lesion_traits(cohort.lesion_blastic_fraction[i, mask], cohort.biology["pthrp_secretion"][i],
                           cohort.biology["osteoblastic_drive"][i], growth, params)
    state = established_state(cohort.lesion_burden[i, mask], traits, params)
    weights = ev.lesion_hazard_weights(site, traits.blastic_fraction, traits.growth_rate, params)
    exposure = Exposure.of_arm(arm, cohort.creatinine_clearance_ml_min[i : i + 1], days, params)
    death0 = params.by_primary("death_hazard")[cohort.primary[i]] * np.exp(params.death_log_hr_ecog * cohort.ecog[i])
    x = np.concatenate([state.w, state.y, state.z, state.m, np.zeros(4 * m + 2)]).astype(float)
    left = np.concatenate([thresholds.lesion[i, :m, :, 0].T.ravel(), thresholds.patient[i, 1:3, 0]])
    cuts = np.union1d(exposure.step_grid(28), [days]).astype(float)
    n_events = 0
    for start, end in zip(cuts[:-1], cuts[1:]):

        def rhs(t: float, s: np.ndarray) -> np.ndarray:
            day = min(int(t), days - 1)
            rec = exposure.inputs(day, day + 1, np.zeros(1, np.int64)).recruitment
            w, y, z, f = s[:m], s[m : 2 * m], s[2 * m : 3 * m], s[3 * m : 4 * m]
            derivatives = rates(w, y, z, f, traits, rec, 1.0, 1.0, 0.0, params)
            burden = np.exp(y)
            _, u = osteoclast_activity(w, y, f, traits, rec, 1.0, params)
            hazard = ev.lesion_hazards(weights, strength(z, burden, params), burden, u * z, params)
            total = burden.sum()
            patient = [params.seeding_hazard * total, death0 * np.exp(params.death_log_hr_burden * total)]
            return np.concatenate([*derivatives, hazard.ravel(), patient])

        x = solve_ivp(rhs, (start, end), x, rtol=1e-6, atol=1e-9).y[:, -1]
        crossed = x[4 * m :] >= left
        n_events += int(crossed.sum())
        if crossed[-1]:
            break
        x[4 * m :][crossed] = 0.0
        radiated = crossed[2 * m : 3 * m]
        x[m : 2 * m][radiated] += course_log_survival(DEFAULT_COURSE, params)
    return n_events


def bench_baseline(patients: int = 20, years: float = 5.0) -> list[Row]:
    """c. Patient-years per second of ``simulate`` against the ``solve_ivp`` baseline, side by side."""
    params = Parameters()
    arm = _label_arm("denosumab")
    days = int(years * DAYS_PER_YEAR)
    small = reference_cohort(patients, "breast", seed=3)
    thresholds = ev.draw_thresholds(Streams(1), small.patient_id)
    started = time.perf_counter()
    for i in range(patients):
        solve_ivp_patient(small, i, arm, days, thresholds, params)
    slow = patients * years / (time.perf_counter() - started)
    big = reference_cohort(4096, "breast", seed=3)
    started = time.perf_counter()
    out, _, _ = simulate(big, arm, years * DAYS_PER_YEAR, Streams(1))
    fast = out["followup_days"].sum() / DAYS_PER_YEAR / (time.perf_counter() - started)
    slow_years = f"{patients} patients, {years:g} y (baseline)"
    return [
        row("c. solve_ivp baseline (per patient, RK45)", slow_years, f"{slow:.2f} patient-years/s"),
        row("c. simulate (one core)", "4,096 breast patients, denosumab", f"{fast:,.0f} patient-years/s"),
        row("c. speed-up over the baseline", "", f"{fast / slow:,.0f}x", ">= 200x", fast / slow >= 200),
    ]


def bench_accuracy(years: float = 5.0) -> list[Row]:
    """d. Max relative error in Z and T at ``years`` of the fast step against Radau (rtol 1e-8)."""
    params = Parameters()
    days = int(round(years * DAYS_PER_YEAR))
    phi = np.repeat(np.linspace(0.0, 1.0, 4), 3)
    burden = np.tile([0.01, 0.05, 0.3], 4)
    worst_z = worst_t = 0.0
    for drug in ("none", "zoledronic_acid", "denosumab"):
        exposure = Exposure.of_arm(_label_arm(drug), np.array([80.0]), days, params)
        one = np.zeros(1, np.int64)
        rec = np.array([exposure.inputs(d, d + 1, one).recruitment[0] for d in range(days)])
        traits = lesion_traits(phi[None], 1.0, 1.0, gompertz_rate(90.0, params), params)
        state = established_state(burden[None], traits, params)
        w0, y0, z0, m0 = state.w.copy(), state.y.copy(), state.z.copy(), state.m.copy()
        grid = exposure.step_grid(STEP_DAYS)
        for start, end in zip(grid[:-1], grid[1:]):
            inputs = exposure.inputs(start, end, one)
            advance(state, traits, inputs.recruitment[:, None], inputs.recruitment_sq[:, None], 1.0, 1.0, 0.0,
                    float(end - start), params)
        _, y_ref, z_ref, _ = radau_reference(traits, w0, y0, z0, m0, rec, params)
        worst_z = max(worst_z, float(np.max(np.abs(state.z / z_ref - 1.0))))
        worst_t = max(worst_t, float(np.max(np.abs(np.exp(state.y.astype(float) - y_ref) - 1.0))))
    worst = max(worst_z, worst_t)
    size = f"{phi.size} lesions x 3 arms, {years:g} y, step {STEP_DAYS} d"
    return [row("d. accuracy vs Radau (max rel. error Z, T)", size, f"Z {worst_z:.1e}, T {worst_t:.1e}", "< 1%",
                worst < 0.01)]


def bench_scaling(sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000), years: float = 5.0,
                  jobs: tuple[int, ...] = (1, 2), jobs_size: int = 10_000) -> list[Row]:
    """e. Simulate-only wall time against patients (2 workers) and against workers (``jobs_size`` patients)."""
    rows = []
    per_patient = []
    for n in sizes:
        wall, mem, _ = timed_run(mixed_protocol(n, years), max(jobs), None)
        per_patient.append(wall / n)
        rows.append(row("e. scaling in patients (simulate only)", f"{n:,} x 3 arms x {years:g} y, jobs {max(jobs)}",
                        f"{wall:.1f} s ({wall / n * 1e6:.0f} us/patient, {mem:.2f} GiB)"))
    if len(per_patient) > 1:
        ratio = per_patient[-1] / per_patient[-2]
        rows.append(row("e. cost per patient, largest / next size", "", f"{ratio:.2f}", "near-linear (~1)",
                        ratio < 1.3))
    base = None
    for j in jobs:
        wall, _, _ = timed_run(mixed_protocol(jobs_size, years), j, None)
        base = base or wall
        rows.append(row("e. scaling in workers (simulate only)", f"{jobs_size:,} x 3 arms x {years:g} y, jobs {j}",
                        f"{wall:.1f} s (speed-up {base / wall:.2f})"))
    return rows


def run_all(quick: bool = False) -> list[Row]:
    """Every benchmark at full size (``quick``: without the 1M-patient scaling point)."""
    sizes = (1_000, 10_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    rows = bench_stopeck()
    rows += bench_large()
    rows += bench_baseline()
    rows += bench_accuracy()
    rows += bench_scaling(sizes)
    return rows


def table(rows: list[Row]) -> str:
    """Markdown table of the rows."""
    head = "| benchmark | size | measured | target | met |\n|---|---|---|---|---|\n"
    return head + "".join(f"| {r['benchmark']} | {r['size']} | {r['measured']} | {r['target']} | {r['met']} |\n"
                          for r in rows)


def write_report(rows: list[Row], path: Path = REPORT) -> str:
    """Replace the measured section of ``path`` (between the markers) with the machine and the table."""
    m = machine()
    section = (f"{BEGIN}\nMeasured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['ram']} RAM, "
               f"Python {m['python']}, numpy {m['numpy']} (`python -m benchmarks`).\n\n{table(rows)}{END}")
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + section + tail)
    return section
