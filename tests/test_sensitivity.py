"""Global sensitivity: the analysis path against known indices, the parameter space, a tiny run end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from SALib.test_functions import Ishigami
from test_cli import run_main

from vtrial import cli
from vtrial.errors import UserInputError
from vtrial.protocol import parse_protocol, protocol_to_toml
from vtrial.sensitivity import (
    analyse,
    default_outcomes,
    distribution,
    run_sensitivity,
    salib_problem,
    sample,
)

ISHIGAMI = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3, "dists": ["unif"] * 3}


def test_sobol_indices_of_the_ishigami_function_match_the_analytic_values():
    """Ishigami (a = 7, b = 0.1), analytic: S1 = 0.3139, 0.4424, 0; ST = 0.5576, 0.4424, 0.2437.

    1024 Saltelli base points (5120 evaluations) give S1 and ST within 0.015 of these on this
    seed; the tolerance 0.03 is about half SALib's own 95% half-width at this size (0.025-0.08),
    and the analytic values lie inside SALib's 95% intervals.
    """
    x = sample(ISHIGAMI, "sobol", 1024, seed=1)
    assert x.shape == (1024 * 5, 3)
    table = analyse(ISHIGAMI, "sobol", x, Ishigami.evaluate(x), seed=1).set_index("parameter")
    s1, st = np.array([0.3139, 0.4424, 0.0]), np.array([0.5576, 0.4424, 0.2437])
    np.testing.assert_allclose(table["S1"], s1, atol=0.03)
    np.testing.assert_allclose(table["ST"], st, atol=0.03)
    assert np.all(np.abs(table["S1"] - s1) <= table["S1_conf"])
    assert np.all(np.abs(table["ST"] - st) <= table["ST_conf"])


def test_morris_effects_are_per_step_of_the_range_linear_or_logarithmic():
    """y = 2 a (a uniform on [0, 1]) and y = log10 b (b log-uniform on [10, 1000], two decades):
    every elementary effect over the whole (log-)range is 2, so mu* = 2 and sigma = 0; the other is 0."""
    problem = {"num_vars": 2, "names": ["a", "b"], "bounds": [[0.0, 1.0], [10.0, 1000.0]], "dists": ["unif", "logunif"]}
    x = sample(problem, "morris", 6, seed=3)
    assert x.shape == (6 * 3, 2) and x[:, 1].min() >= 10 and x[:, 1].max() <= 1000
    linear = analyse(problem, "morris", x, 2 * x[:, 0], seed=3).set_index("parameter")
    np.testing.assert_allclose(linear["mu_star"], [2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(linear["sigma"], [0.0, 0.0], atol=1e-12)
    logarithmic = analyse(problem, "morris", x, np.log10(x[:, 1]), seed=3).set_index("parameter")
    np.testing.assert_allclose(logarithmic["mu_star"], [0.0, 2.0], atol=1e-12)
    # an outcome not estimable in every sample has no indices
    assert analyse(problem, "morris", x, np.where(x[:, 0] > 0.5, np.nan, 1.0), seed=3)["mu_star"].isna().all()


def test_ranges_wider_than_tenfold_are_log_uniform():
    assert distribution("fracture_base_hazard") == "logunif"  # 2e-5 to 2e-3: 100x
    assert distribution("osteoblast_rate") == "unif"  # 0.01 to 0.05: 5x
    assert distribution("woven_bone_strength") == "unif"  # 0 to 1: no ratio
    problem = salib_problem(["fracture_base_hazard", "osteoblast_rate"])
    assert problem["bounds"] == [[2.0e-5, 2.0e-3], [0.01, 0.05]]


def tiny_protocol():
    return parse_protocol(
        {
            "trial": {"name": "sens", "patients": 40, "horizon_months": 12, "seed": 7},
            "cohort": {"primary": {"breast": 1.0}},
            "arm": [
                {"name": "zoledronic_acid", "drug": "zoledronic_acid", "dose_mg": 4.0, "every_weeks": 4.0},
                {"name": "denosumab", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": 4.0},
            ],
            "analysis": {"reference_arm": "zoledronic_acid"},
        },
        "test",
    )


PARAMETERS = ["fracture_base_hazard", "radiation_hazard"]


class Interrupt(Exception):
    """Stands for Ctrl-C after some samples."""


def test_a_tiny_morris_run_is_complete_and_resumable(tmp_path):
    protocol = tiny_protocol()
    assert default_outcomes(protocol) == [
        "hr_time_to_first_sre:denosumab_vs_zoledronic_acid",
        "hr_overall_survival:denosumab_vs_zoledronic_acid",
        "proportion_with_sre:zoledronic_acid",
        "proportion_with_sre:denosumab",
    ]
    outcomes = ["proportion_with_sre:zoledronic_acid", "proportion_with_sre:denosumab"]
    options = {"method": "morris", "samples": 2, "parameters": PARAMETERS, "outcomes": outcomes}
    one, table = run_sensitivity(protocol, tmp_path / "one", jobs=1, **options)
    assert sorted(p.name for p in one.iterdir()) == [
        "manifest.json",
        "protocol.toml",
        "samples.csv",
        "sensitivity.csv",
        "sensitivity.html",
    ]
    assert list(table.columns) == ["parameter", "outcome", "distribution", "mu_star", "mu_star_conf", "sigma"]
    assert len(table) == 2 * 2 and table["distribution"].eq("logunif").all()
    design = pd.read_csv(one / "samples.csv")
    assert len(design) == 2 * (2 + 1)
    # common random numbers: proportions move only with the parameters, and they do move
    assert design["proportion_with_sre:denosumab"].nunique() > 1
    assert "<svg" in (one / "sensitivity.html").read_text()
    # interrupted after 3 samples, then resumed: the same table, and only the 3 other samples run
    seen = []

    def stop_after_three(done: int, total: int) -> None:
        seen.append(done)
        if done == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sensitivity(protocol, tmp_path / "two", jobs=1, on_progress=stop_after_three, **options)
    resumed = []
    two, again = run_sensitivity(
        protocol, tmp_path / "two", jobs=1, resume=True, on_progress=lambda done, total: resumed.append(done), **options
    )
    assert resumed == [3, 4, 5, 6]
    pd.testing.assert_frame_equal(again, table)
    assert (two / "samples.csv").read_bytes() == (one / "samples.csv").read_bytes()
    assert json.loads((two / "manifest.json").read_text())["model_runs"] == 6


@pytest.mark.slow
def test_two_workers_and_dask_give_the_same_indices_as_one(tmp_path, capsys):
    """Loky with 1 and 2 workers, and ``vtrial sensitivity --backend dask`` (a local cluster of 2):
    the same ``sensitivity.csv`` and ``samples.csv``, byte for byte. Slow because the worker
    processes start (import vtrial) on a loaded machine: ~9 s for loky, ~12 s for dask."""
    pytest.importorskip("dask.distributed")
    outcomes = ["hr_time_to_first_sre:denosumab_vs_zoledronic_acid", "proportion_with_sre:denosumab"]
    options = {"method": "morris", "samples": 2, "parameters": PARAMETERS, "outcomes": outcomes}
    one, table = run_sensitivity(tiny_protocol(), tmp_path / "one", jobs=1, **options)
    two, again = run_sensitivity(tiny_protocol(), tmp_path / "two", jobs=2, **options)
    pd.testing.assert_frame_equal(again, table, check_exact=True)
    protocol = tmp_path / "sens.toml"
    protocol.write_text(protocol_to_toml(tiny_protocol()))
    flags = [
        f"--{name}={value}" for name, values in (("parameter", PARAMETERS), ("outcome", outcomes)) for value in values
    ]
    code, _, err = run_main(
        capsys,
        "sensitivity",
        str(protocol),
        "--samples",
        "2",
        *flags,
        "--jobs",
        "2",
        "--backend",
        "dask",
        "--out",
        str(tmp_path / "dask"),
        "--quiet",
    )
    assert code == 0, err
    assert json.loads((tmp_path / "dask" / "manifest.json").read_text())["backend"] == "dask"
    for folder in (two, tmp_path / "dask"):
        for name in ("sensitivity.csv", "samples.csv"):
            assert (folder / name).read_bytes() == (one / name).read_bytes(), (folder.name, name)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "fast"], "error: --method: unknown method 'fast' Fix: use --method morris or sobol"),
        (["--samples", "1"], "error: --samples: --samples must be at least 2, got 1"),
        (
            ["--method", "sobol", "--samples", "6"],
            ("error: --samples: Sobol' sampling needs a power of 2, got 6 Fix: pass --samples 8 (or 4)"),
        ),
        (
            ["--outcome", "hr_os:denosumab_vs_zoledronic_acid"],
            (
                "error: --outcome: unknown outcome "
                "'hr_os:denosumab_vs_zoledronic_acid' Fix: use hr_time_to_first_sre or hr_overall_survival:ARM_vs_REFERENCE"
            ),
        ),
        (["--parameter", "no_such"], "error: --parameter: unknown model parameter(s) ['no_such']"),
        (["--parameter", "radiation_hazard"], "error: --parameter: need at least 2 distinct parameters"),
    ],
)
def test_bad_sensitivity_input_exits_2_before_any_folder(tmp_path, capsys, extra, message):
    protocol = tmp_path / "p.toml"
    protocol.write_text(
        '[trial]\nname = "p"\npatients = 40\nhorizon_months = 6\n[cohort]\nprimary = { breast = 1.0 }\n'
        '[[arm]]\nname = "zoledronic_acid"\ndrug = "zoledronic_acid"\ndose_mg = 4.0\nevery_weeks = 4.0\n'
        '[[arm]]\nname = "denosumab"\ndrug = "denosumab"\ndose_mg = 120.0\nevery_weeks = 4.0\n'
        '[analysis]\nreference_arm = "zoledronic_acid"\n'
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["sensitivity", str(protocol), "--out", str(tmp_path / "s"), "--quiet", *extra])
    assert info.value.code == cli.EXIT_USER
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "s").exists()


def test_resuming_with_other_settings_is_refused(tmp_path):
    protocol = tiny_protocol()
    options = {"method": "morris", "parameters": PARAMETERS, "outcomes": ["proportion_with_sre:denosumab"]}

    def stop(done: int, total: int) -> None:
        if done == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sensitivity(protocol, tmp_path / "s", jobs=1, samples=2, on_progress=stop, **options)
    with pytest.raises(UserInputError) as info:
        run_sensitivity(protocol, tmp_path / "s", jobs=1, samples=3, resume=True, **options)
    assert str(info.value) == (
        f"{tmp_path / '.s.partial'}: samples: the interrupted sensitivity analysis in this folder was started "
        "with other settings; changed: samples Fix: resume with the same protocol and options, or pass --force "
        "instead of --resume to discard it and start again"
    )


def test_an_interrupted_analysis_is_kept_unless_resume_or_force(tmp_path):
    """Run again without ``--resume`` after 2 finished samples: refused, the samples kept; ``force`` starts over."""
    protocol = tiny_protocol()
    options = {
        "method": "morris",
        "samples": 2,
        "parameters": PARAMETERS,
        "outcomes": ["proportion_with_sre:denosumab"],
    }

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sensitivity(protocol, tmp_path / "s", jobs=1, on_progress=stop, **options)
    samples = tmp_path / ".s.partial" / "samples"
    kept = sorted(p.name for p in samples.iterdir())
    assert len(kept) == 2
    with pytest.raises(UserInputError) as info:
        run_sensitivity(protocol, tmp_path / "s", jobs=1, **options)
    assert str(info.value) == (
        f"{tmp_path / 's'}: an interrupted sensitivity analysis of this folder is kept, with its finished samples, "
        "in the hidden folder .s.partial Fix: pass --resume to finish it (same protocol and options), or --force "
        "to discard it and start again"
    )
    assert sorted(p.name for p in samples.iterdir()) == kept
    progress = []
    run_sensitivity(
        protocol, tmp_path / "s", jobs=1, force=True, on_progress=lambda d, t: progress.append(d), **options
    )
    assert progress == [0, 1, 2, 3, 4, 5, 6]  # every sample of 2 x (2 + 1) run again
