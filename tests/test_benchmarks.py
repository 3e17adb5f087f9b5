"""The benchmark harness: statistics, the baseline file, the table; the benchmarks run on tiny sizes (timings are not checked)."""

import json

import pytest

import benchmarks as bm

KEYS = {"benchmark", "size", "measured", "target", "met"}


def check(rows):
    assert rows and all(KEYS <= set(r) <= KEYS | {"seconds"} for r in rows)
    assert all(r["met"] in ("", "yes", "no") for r in rows)
    assert all(r["benchmark"] and r["measured"] for r in rows)
    return rows


def test_stats_are_the_min_and_median_of_the_repeats():
    assert bm.stats([3.0, 1.0, 2.0, 10.0]) == {"min": 1.0, "median": 2.5, "n": 4}
    assert bm.timing([3.0, 1.0, 2.0]) == "1.00 s (median 2.00 s, 3 runs)"


def test_speed_up_is_min_over_min_with_its_spread():
    # before: min 4, median 6; now: min 2, median 3 -> 4/2 = 2, spread 4/3 .. 6/2
    mid, low, high = bm.speed_up(bm.stats([2.0, 3.0, 5.0]), bm.stats([4.0, 6.0, 9.0]))
    assert (mid, round(low, 6), high) == (2.0, 1.333333, 3.0)


def test_baseline_round_trip_and_comparison(tmp_path):
    path = tmp_path / "baseline.json"
    rows = [bm.row("a. x", "small", "m", seconds=[4.0, 6.0, 9.0]), bm.row("c. ratio", "", "9x")]
    assert bm.save_baseline(rows, path) == {"a. x | small": {"min": 4.0, "median": 6.0, "n": 3}}
    assert "cores" in json.loads(path.read_text())["machine"]
    faster = [bm.row("a. x", "small", "m", seconds=[2.0, 3.0, 5.0]), bm.row("a. new", "small", "m", seconds=[1.0])]
    compared = bm.compare(faster, path)
    assert compared[0]["vs baseline"] == "2.00x (1.33-3.00)" and "vs baseline" not in compared[1]
    assert "| vs baseline |" in bm.table(compared) and "2.00x (1.33-3.00) |" in bm.table(compared)
    assert bm.compare(faster, tmp_path / "missing.json") == faster  # no baseline: nothing added


def test_previous_release_rows_only_when_measured():
    assert bm.previous_rows("a. x", "s", [1.0, 2.0], []) == []
    rows = bm.previous_rows("a. x", "s", [1.0, 2.0], [3.0, 4.0])
    assert [r["measured"] for r in rows] == ["3.00 s (median 3.50 s, 2 runs)", "3.00x (2.00-3.50)"]


@pytest.mark.slow  # starts `vtrial run` processes
def test_each_benchmark_returns_rows(tmp_path):
    rows = check(bm.bench_stopeck(repeats=1, patients=40))
    rows += check(bm.bench_large(patients=30, years=0.5, jobs=1))
    rows += check(bm.bench_baseline(patients=1, years=0.1, repeats=1))
    rows += check(bm.bench_accuracy(years=0.05))
    rows += check(bm.bench_scaling(sizes=(20, 40), years=0.25, jobs=(1,), jobs_size=20))
    assert [r["benchmark"][:2] for r in rows[:1]] == ["a."]
    report = tmp_path / "performance.md"
    report.write_text("# Performance\n\nintro\n\n" + bm.BEGIN + "\nold\n" + bm.END + "\n\nnotes\n")
    bm.write_report(rows, report)
    text = report.read_text()
    assert text.startswith("# Performance\n\nintro\n\n") and text.endswith("\n\nnotes\n") and "old" not in text
    assert text.count("| ") > len(rows) and "cores" in text and "numpy" in text


def test_block_summary_is_the_min_and_median_of_wall_and_cpu():
    from benchmarks.block import summary

    # wall 3, 2, 5 -> min 2, median 3; cpu 1, 2, 1.5 -> min 1, median 1.5
    assert summary([(3.0, 1.0), (2.0, 2.0), (5.0, 1.5)]) == (
        "wall 2.00 s (median 3.00), cpu 1.00 s (median 1.50), 3 runs"
    )
