"""The benchmark functions run on tiny sizes and return well-formed table rows (timings are not checked)."""

import benchmarks as bm

KEYS = {"benchmark", "size", "measured", "target", "met"}


def check(rows):
    assert rows and all(set(r) == KEYS for r in rows)
    assert all(r["met"] in ("", "yes", "no") for r in rows)
    assert all(r["benchmark"] and r["measured"] for r in rows)
    return rows


def test_each_benchmark_returns_rows(tmp_path):
    rows = check(bm.bench_stopeck(jobs=1, patients=40))
    rows += check(bm.bench_large(patients=30, years=0.5, jobs=1))
    rows += check(bm.bench_baseline(patients=1, years=0.1))
    rows += check(bm.bench_accuracy(years=0.05))
    rows += check(bm.bench_scaling(sizes=(20, 40), years=0.25, jobs=(1,), jobs_size=20))
    assert [r["benchmark"][:2] for r in rows[:1]] == ["a."]
    report = tmp_path / "performance.md"
    report.write_text("# Performance\n\nintro\n\n" + bm.BEGIN + "\nold\n" + bm.END + "\n\nnotes\n")
    bm.write_report(rows, report)
    text = report.read_text()
    assert text.startswith("# Performance\n\nintro\n\n") and text.endswith("\n\nnotes\n") and "old" not in text
    assert text.count("| ") > len(rows) and "cores" in text and "numpy" in text
