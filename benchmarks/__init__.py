"""Benchmarks of the simulator (run on demand: ``python -m benchmarks``; not part of the test suite).

Each ``bench_*`` function measures one thing ``repeats`` times and returns table rows
``{"benchmark", "size", "measured", "target", "met"}`` (timed rows also carry ``seconds``, every
repeat); :func:`run_all` collects them. As in Mesa's benchmarks, a timing is reported as the
minimum and median of its repeats and compared with a stored baseline (``benchmarks/baseline.json``,
written by ``--save-baseline``): the speed-up is baseline min / current min, and its spread runs
from baseline min / current median to baseline median / current min. With ``--previous DIR``
(a checkout of the previous release) the end-to-end runs are also measured on it, alternating
with the current code, so that both see the same machine load. :func:`write_report` puts the
table, with the machine and the date, into ``docs/performance.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil

from benchmarks.ivp import CohortDraws, solve_ivp_patient
from vtrial.cohort import CohortBlock
from vtrial.engine import run_trial, stop_local_workers
from vtrial.model import simulate
from vtrial.model.drugs import Exposure
from vtrial.model.lesion import (
    STEP_DAYS,
    advance,
    established_state,
    gompertz_rate,
    lesion_traits,
)
from vtrial.model.parameters import Parameters
from vtrial.model.reference import radau_reference, reference_cohort
from vtrial.protocol import load_protocol, primary_defaults
from vtrial.streams import Streams
from vtrial.model.reference import reference_arm

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "performance.md"
BASELINE = Path(__file__).resolve().parent / "baseline.json"
BEGIN, END = "<!-- benchmark table: begin -->", "<!-- benchmark table: end -->"
DAYS_PER_YEAR = 365.25

Row = dict[str, object]


def row(
    benchmark: str,
    size: str,
    measured: str,
    target: str = "",
    met: bool | None = None,
    seconds: list[float] | None = None,
) -> Row:
    """One table row (``met`` None: no target; ``seconds``: every repeat of a timing)."""
    out: Row = {
        "benchmark": benchmark,
        "size": size,
        "measured": measured,
        "target": target,
        "met": "" if met is None else ("yes" if met else "no"),
    }
    if seconds is not None:
        out["seconds"] = list(seconds)
    return out


def stats(seconds: list[float]) -> dict[str, float]:
    """Minimum and median of the repeats (the minimum is the least disturbed by other load)."""
    return {"min": float(np.min(seconds)), "median": float(np.median(seconds)), "n": len(seconds)}


def timing(seconds: list[float]) -> str:
    """``min x s (median y s, n runs)``."""
    st = stats(seconds)
    return f"{st['min']:.2f} s (median {st['median']:.2f} s, {st['n']} runs)"


def speed_up(current: dict[str, float], before: dict[str, float]) -> tuple[float, float, float]:
    """Speed-up of ``current`` over ``before`` (both :func:`stats`): min / min, and its spread (low, high).

    Low: ``before`` min over ``current`` median; high: ``before`` median over ``current`` min.
    """
    return (before["min"] / current["min"], before["min"] / current["median"], before["median"] / current["min"])


def key(r: Row) -> str:
    """Name of a row in the baseline file."""
    return f"{r['benchmark']} | {r['size']}"


def seconds(r: Row) -> list[float]:
    """The repeats' wall times of a timed row."""
    return typing.cast(list[float], r["seconds"])


def save_baseline(rows: list[Row], path: Path = BASELINE) -> dict[str, dict[str, float]]:
    """Write the timing statistics of the timed rows, with the machine, as the baseline."""
    timings = {key(r): stats(seconds(r)) for r in rows if "seconds" in r}
    path.write_text(json.dumps({"machine": machine(), "timings": timings}, indent=1) + "\n")
    return timings


def compare(rows: list[Row], path: Path = BASELINE) -> list[Row]:
    """Rows with the speed-up over the baseline file (a ``vs baseline`` column; empty without one)."""
    base = json.loads(path.read_text())["timings"] if path.exists() else {}
    out = []
    for r in rows:
        r = dict(r)
        if "seconds" in r and key(r) in base:
            mid, low, high = speed_up(stats(seconds(r)), base[key(r)])
            r["vs baseline"] = f"{mid:.2f}x ({low:.2f}-{high:.2f})"
        out.append(r)
    return out


def repeat(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall time (s) of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def cli_run(protocol: Path, out: Path, jobs: int | None = None, code: Path = ROOT) -> float:
    """Wall time (s) of ``vtrial run`` in a fresh interpreter with ``code`` first on the path (end to end)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, "-m", "vtrial.cli", "run", str(protocol), "--out", str(out), "--force", "--quiet"]
    argv += [] if jobs is None else ["--jobs", str(jobs)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env, cwd=code, capture_output=True)
    return time.perf_counter() - started


def end_to_end(
    protocol: Path, repeats: int, previous: Path | None, jobs: int | None = None, peak: dict | None = None
) -> tuple[list[float], list[float]]:
    """Seconds of ``repeats`` command-line runs of the current code and, alternating, of ``previous``.

    ``peak`` (optional) gets ``peak_gib``: the largest resident memory of the current code's runs
    alone (the previous release's runs are not sampled).
    """
    now, before = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            with peak_memory() as mem:
                now.append(cli_run(protocol, Path(tmp) / "run", jobs))
            if peak is not None:
                peak["peak_gib"] = max(peak.get("peak_gib", 0.0), mem["peak_gib"])
            if previous is not None:
                before.append(cli_run(protocol, Path(tmp) / "previous", jobs, previous))
    return now, before


def previous_rows(name: str, size: str, now: list[float], before: list[float]) -> list[Row]:
    """Rows of the previous release's timing and the speed-up over it (none without it)."""
    if not before:
        return []
    mid, low, high = speed_up(stats(now), stats(before))
    return [
        row(f"{name}, previous release", size, timing(before), seconds=before),
        row(f"{name}, speed-up over the previous release", size, f"{mid:.2f}x ({low:.2f}-{high:.2f})"),
    ]


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
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": date.today().isoformat(),
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


MIXED_TOML = """[trial]
name = "benchmark"
patients = {patients}
horizon_months = {months}
seed = {seed}
design = "paired"

[cohort]
primary = {{ breast = 0.4, prostate = 0.4, lung = 0.2 }}

[[arm]]
name = "placebo"
drug = "none"

[[arm]]
name = "zoledronic_acid"
drug = "zoledronic_acid"
dose_mg = 4.0
every_weeks = 4.0

[[arm]]
name = "denosumab"
drug = "denosumab"
dose_mg = 120.0
every_weeks = 4.0
"""


def mixed_toml(patients: int, years: float, seed: int = 1) -> str:
    """Placebo vs zoledronic acid vs denosumab, label regimens, mixed breast/prostate/lung cohort (version 1)."""
    return MIXED_TOML.format(patients=patients, months=12 * years, seed=seed)


def mixed_protocol(patients: int, years: float, seed: int = 1):
    """The :func:`mixed_toml` protocol, parsed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "benchmark.toml"
        path.write_text(mixed_toml(patients, years, seed))
        return load_protocol(path)


def timed_run(protocol, jobs: int | None, finish: Callable[[Path], None] | None) -> tuple[float, float, int]:
    """Wall time (s), peak memory (GiB) and patient rows of one ``run_trial`` into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp, peak_memory() as mem:
        started = time.perf_counter()
        result = run_trial(protocol, Path(tmp) / "run", jobs=jobs, finish=finish)
        wall = time.perf_counter() - started
    return wall, mem["peak_gib"], result.n_patients


def bench_stopeck(repeats: int = 5, previous: Path | None = None, patients: int | None = None) -> list[Row]:
    """a. The Stopeck 2010 replica (2,046 patients, 2 arms, 34 months) end to end: ``vtrial run`` in a new process.

    Simulate, analyse, report, with the default workers (all cores); the target is on the median.
    """
    path = ROOT / "protocols" / "breast.toml"
    with tempfile.TemporaryDirectory() as tmp:
        if patients is not None:
            path = Path(tmp) / "breast.toml"
            path.write_text(
                (ROOT / "protocols" / "breast.toml").read_text().replace("patients = 2046", f"patients = {patients}", 1)
            )
        now, before = end_to_end(path, repeats, previous)
    size = f"{patients or 2046} x 2 arms x 34 mo, default jobs"
    median = stats(now)["median"]
    return [
        row("a. Stopeck trial end to end", size, timing(now), "< 3 s (median)", median < 3.0, now),
        *previous_rows("a. Stopeck trial end to end", size, now, before),
    ]


def bench_large(
    patients: int = 100_000, years: float = 5.0, jobs: int = 2, repeats: int = 1, previous: Path | None = None
) -> list[Row]:
    """b. Mixed cohort x 3 arms x ``years``: simulate only (tables written), then end to end; peak memory."""
    protocol = mixed_protocol(patients, years)
    size = f"{patients:,} x 3 arms x {years:g} y, jobs {jobs}"
    peak = 0.0
    sim = []
    for _ in range(repeats):
        wall, mem, _ = timed_run(protocol, jobs, None)
        sim.append(wall)
        peak = max(peak, mem)
    stop_local_workers()  # this process's idle workers would count in the command-line run's memory
    end_to_end_peak: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "benchmark.toml"
        path.write_text(mixed_toml(patients, years))
        now, before = end_to_end(path, repeats, previous, jobs, end_to_end_peak)
    peak = max(peak, end_to_end_peak["peak_gib"])
    return [
        row("b. simulate only", size, timing(sim), "< 30 s", min(sim) < 30.0, sim),
        row(
            "b. end to end (`vtrial run`: simulate, analyse, report)", size, timing(now), "< 30 s", min(now) < 30.0, now
        ),
        *previous_rows("b. end to end", size, now, before),
        row("b. peak resident memory (all processes)", size, f"{peak:.2f} GiB", "< 2 GiB", peak < 2.0),
    ]


def _label_arm(drug: str) -> SimpleNamespace:
    """A version-1 arm of ``drug`` at its label regimen, with the protocol's defaults (label rules on)."""
    dose = {"none": None, "zoledronic_acid": 4.0, "denosumab": 120.0}[drug]
    return reference_arm(
        drug,
        dose_mg=dose,
        every_weeks=None if drug == "none" else 4.0,
        withhold_on_renal_toxicity=True,
        stop_on_onj=True,
    )


def usual_care_cohort(n: int, primary: str, seed: int) -> CohortBlock:
    """:func:`~vtrial.model.reference.reference_cohort` with the usual care a version-1 protocol gives ``primary``.

    The background therapy of the primary's defaults (``vtrial/data/primaries.toml``; breast:
    endocrine), as :func:`vtrial.cohort.sample_cohort` resolves it for every protocol.
    """
    therapy = tuple(primary_defaults(primary)["systemic_therapy"])
    return replace(reference_cohort(n, primary, seed=seed), systemic_therapy={primary: therapy})


def bench_baseline(patients: int = 20, years: float = 5.0, repeats: int = 3) -> list[Row]:
    """c. Patient-years per second of ``simulate`` against the ``solve_ivp`` baseline, side by side.

    Version-1 breast patients on denosumab at the label regimen with the usual care of their
    primary (:func:`usual_care_cohort`). The baseline (:func:`benchmarks.ivp.solve_ivp_patient`)
    integrates the model's equations for them and restarts the integrator at every dose day; both
    count the patient-years they followed (to death or the horizon), and both rates use the
    fastest of ``repeats`` runs.
    """
    params = Parameters()
    arm = _label_arm("denosumab")
    days = int(years * DAYS_PER_YEAR)
    small = usual_care_cohort(patients, "breast", seed=3)
    draws = CohortDraws.of(small, arm, Streams(1), days, params)
    baseline: dict[str, float] = {}
    slow_s = repeat(
        lambda: baseline.update(
            years=sum(solve_ivp_patient(small, i, arm, days, draws, params).followup_days for i in range(patients))
            / DAYS_PER_YEAR
        ),
        repeats,
    )
    slow = baseline["years"] / min(slow_s)
    big = usual_care_cohort(4096, "breast", seed=3)
    followed: dict[str, float] = {}
    fast_s = repeat(
        lambda: followed.update(
            years=simulate(big, arm, years * DAYS_PER_YEAR, Streams(1))[0]["followup_days"].sum() / DAYS_PER_YEAR
        ),
        repeats,
    )
    fast = followed["years"] / min(fast_s)
    mid, low, high = speed_up(
        stats(fast_s), {k: v * followed["years"] / baseline["years"] for k, v in stats(slow_s).items() if k != "n"}
    )
    return [
        row(
            "c. solve_ivp baseline (the model's equations per patient, RK45, restarted at every dose)",
            f"{patients} breast patients, denosumab, usual care, {years:g} y",
            f"{slow:.2f} patient-years/s",
            seconds=slow_s,
        ),
        row(
            "c. simulate (one core)",
            f"4,096 breast patients, denosumab, usual care, {years:g} y",
            f"{fast:,.0f} patient-years/s",
            seconds=fast_s,
        ),
        row("c. speed-up over the baseline", "", f"{mid:,.0f}x ({low:,.0f}-{high:,.0f})", ">= 1,000x", mid >= 1000),
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
        daily = [exposure.inputs(d, d + 1, one) for d in range(days)]
        rec = np.array([i.recruitment[0] for i in daily])
        loss = np.array([float(np.ravel(i.pool_loss)[0]) for i in daily])  # E (0 without a bone pool)
        traits = lesion_traits(phi[None], 1.0, 1.0, gompertz_rate(90.0, params), params)
        state = established_state(burden[None], traits, params)
        w0, y0, z0, m0 = state.w.copy(), state.y.copy(), state.z.copy(), state.induction.copy()
        grid = exposure.step_grid(STEP_DAYS)
        for start, end in zip(grid[:-1], grid[1:]):
            inputs = exposure.inputs(start, end, one)
            advance(
                state,
                traits,
                inputs.recruitment[:, None],
                inputs.recruitment_sq[:, None],
                1.0,
                1.0,
                0.0,
                float(end - start),
                params,
                pool_loss=np.reshape(inputs.pool_loss, (-1, 1)),
            )
        _, y_ref, z_ref, _ = radau_reference(traits, w0, y0, z0, m0, rec, params, loss)
        worst_z = max(worst_z, float(np.max(np.abs(state.z / z_ref - 1.0))))
        worst_t = max(worst_t, float(np.max(np.abs(np.exp(state.y.astype(float) - y_ref) - 1.0))))
    worst = max(worst_z, worst_t)
    size = f"{phi.size} lesions x 3 arms, {years:g} y, step {STEP_DAYS} d"
    return [
        row(
            "d. accuracy vs Radau (max rel. error Z, T)",
            size,
            f"Z {worst_z:.1e}, T {worst_t:.1e}",
            "< 1%",
            worst < 0.01,
        )
    ]


def bench_scaling(
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000),
    years: float = 5.0,
    jobs: tuple[int, ...] = (1, 2),
    jobs_size: int = 10_000,
) -> list[Row]:
    """e. Simulate-only wall time against patients (2 workers) and against workers (``jobs_size`` patients)."""
    rows = []
    per_patient = []
    for n in sizes:
        wall, mem, _ = timed_run(mixed_protocol(n, years), max(jobs), None)
        per_patient.append(wall / n)
        rows.append(
            row(
                "e. scaling in patients (simulate only)",
                f"{n:,} x 3 arms x {years:g} y, jobs {max(jobs)}",
                f"{wall:.1f} s ({wall / n * 1e6:.0f} us/patient, {mem:.2f} GiB)",
                seconds=[wall],
            )
        )
    if len(per_patient) > 1:
        ratio = per_patient[-1] / per_patient[-2]
        rows.append(
            row("e. cost per patient, largest / next size", "", f"{ratio:.2f}", "near-linear (~1)", ratio < 1.3)
        )
    base = None
    for j in jobs:
        wall, _, _ = timed_run(mixed_protocol(jobs_size, years), j, None)
        base = base or wall
        rows.append(
            row(
                "e. scaling in workers (simulate only)",
                f"{jobs_size:,} x 3 arms x {years:g} y, jobs {j}",
                f"{wall:.1f} s (speed-up {base / wall:.2f})",
                seconds=[wall],
            )
        )
    return rows


def run_all(quick: bool = False, repeats: int = 5, previous: Path | None = None) -> list[Row]:
    """Every benchmark at full size (``quick``: without the 1M-patient scaling point)."""
    sizes = (1_000, 10_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    rows = bench_stopeck(repeats, previous)
    rows += bench_large(repeats=max(1, repeats // 2), previous=previous)
    rows += bench_baseline(repeats=min(repeats, 3))
    rows += bench_accuracy()
    rows += bench_scaling(sizes)
    return rows


def table(rows: list[Row]) -> str:
    """Markdown table of the rows (with the ``vs baseline`` column when a row has one)."""
    columns = ["benchmark", "size", "measured", "target", "met"]
    columns += ["vs baseline"] if any("vs baseline" in r for r in rows) else []
    head = "| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|\n"
    return head + "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)


def write_report(rows: list[Row], path: Path = REPORT) -> str:
    """Replace the measured section of ``path`` (between the markers) with the machine and the table."""
    m = machine()
    section = (
        f"{BEGIN}\nMeasured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['ram']} RAM, "
        f"Python {m['python']}, numpy {m['numpy']} (`python -m benchmarks`).\n\n{table(rows)}{END}"
    )
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + section + tail)
    return section
