"""The ``vtrial`` command line: parses flags and calls the API; holds no logic.

Exit codes (part of the contract): 0 success, 2 bad input (a message naming the file, the field
and the fix on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import _thread
import atexit
import json
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import typing
import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer import _click as click
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.exceptions import TyperException

from vtrial import __version__
from vtrial.errors import ModelInvariantError, ProtocolWarning, RunFailedError, UserInputError
from vtrial.protocol import Protocol, apply_overrides, load_protocol, protocol_to_toml
from vtrial.streams import Streams

if TYPE_CHECKING:
    from vtrial.progress import ProgressBar

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Words shown in ``--help`` for the type of an option's value (a flag shows none).
_TYPE_WORDS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "list[str]": "TEXT"}


def _name_types(params: list[click.Parameter]) -> list[click.Parameter]:
    """Give each option a help word for its value (``--jobs INTEGER``), none to a flag (``--force``),
    and each argument its name in capitals (``PROTOCOL``) in the usage line.

    typer would show the Python annotation instead, ``<bool>`` for a flag that takes no value.
    """
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = "" if param.is_flag else _type_word(param)
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument) and param.name:
            if param.metavar is None:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
            param.__class__ = _Argument
    return params


def _type_word(param: TyperOption | TyperArgument) -> str:
    return _TYPE_WORDS.get(param.bare_type(), param.bare_type().upper())


class _Argument(TyperArgument):
    """An argument whose help shows its type as a word (``TEXT``), not as a Python annotation."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return _type_word(self)


class _Group(TyperGroup):
    """The command group, whose commands' help shows option types as words (:func:`_name_types`)."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _name_types(super().get_params(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _name_types(command.get_params(ctx))
        return command


app = typer.Typer(
    cls=_Group,
    name="vtrial",
    help="Virtual clinical trials of bone-targeted agents in bone metastasis: "
    "write a protocol file, check it, sample its cohort, run it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"vtrial {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
    ),
) -> None:
    """Virtual clinical trials of bone-targeted agents in bone metastasis."""


@app.command()
def check(
    protocols: list[str] = typer.Argument(
        ..., help="Protocol files (.toml, .yaml) to validate.", metavar="PROTOCOL..."
    ),
    show: bool = typer.Option(False, "--show", help="Print each resolved protocol, every default filled in, as TOML."),
) -> None:
    """Validate protocol files without running them; print "ok: FILE" for each valid one."""
    for path in protocols:
        protocol = load_protocol(path)
        if show:
            typer.echo(protocol_to_toml(protocol))
        typer.echo(f"ok: {path}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of a protocol file (field names, types, ranges, defaults; see docs/protocol.md)."""
    typer.echo(json.dumps(Protocol.model_json_schema(), indent=2))


@app.command()
def cohort(
    protocol: str = typer.Argument(..., help="Protocol file (.toml, .yaml)."),
    out: str = typer.Option(..., "--out", help="Parquet file to write: one row per virtual patient."),
    patients: int | None = typer.Option(None, "--patients", help="Number of patients (overrides trial.patients)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides trial.seed)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file (never the protocol itself)."),
) -> None:
    """Sample the protocol's virtual cohort (before randomisation) and write it to Parquet."""
    from vtrial.cohort import write_cohort  # heavy (scipy, pyarrow): only when used

    resolved = apply_overrides(load_protocol(protocol), patients=patients, seed=seed)
    n = write_cohort(resolved, Streams(resolved.trial.seed), out, force=force, inputs=(protocol,))
    typer.echo(f"wrote {n} patients to {out}")


def _progress(quiet: bool, label: str) -> ProgressBar:
    """Progress on stderr (units done, patients per second, time elapsed and remaining), or nothing."""
    from vtrial.progress import ProgressBar  # rich: only when a run needs it

    return ProgressBar(label, enabled=not quiet)


def _backend_option() -> Any:
    """``--backend``, the same option on every command that runs trials in parallel."""
    return typer.Option("loky", "--backend", help="Where tasks run: loky (this machine) or dask.")


def _scheduler_option() -> Any:
    """``--scheduler``, the same option on every command that has ``--backend``."""
    return typer.Option(
        None, "--scheduler", help="Address of a dask scheduler (with --backend dask; default: a local cluster)."
    )


@app.command()
def run(
    protocol: str = typer.Argument(..., help="Protocol file (.toml, .yaml)."),
    out: str | None = typer.Option(None, "--out", help="Run folder to write (default outputs/<trial.name>)."),
    patients: int | None = typer.Option(None, "--patients", help="Number of patients (overrides trial.patients)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides trial.seed)."),
    jobs: int | None = typer.Option(None, "--jobs", help="Parallel workers (default: all cores)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run folder (or an empty folder)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run from its finished blocks."),
    backend: str = _backend_option(),
    scheduler: str | None = _scheduler_option(),
    block_size: int = typer.Option(4096, "--block-size", help="Patients per block (memory per task)."),
    replicate: int = typer.Option(0, "--replicate", help="Replicate index: the same trial as `vtrial batch` row R."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    parameter_draws: int = typer.Option(
        0,
        "--parameter-draws",
        help="Also run the trial under the first K parameter sets of the calibration's "
        "ensemble: prediction intervals in summary.json (docs/calibration.md; default 0, none).",
    ),
) -> None:
    """Simulate a trial, analyse it and write its run folder (tables, summary.json, report.html)."""
    from vtrial.api import simulate
    from vtrial.engine import default_run_dir

    resolved = apply_overrides(load_protocol(protocol), patients=patients, seed=seed)
    with _progress(quiet, "blocks") as bar:
        trial = simulate(
            resolved,
            out=default_run_dir(resolved) if out is None else out,
            jobs=jobs,
            backend=backend,
            scheduler=scheduler,
            block_size=block_size,
            replicate=replicate,
            force=force,
            resume=resume,
            inputs=(protocol,),
            progress=bar,
            parameter_draws=parameter_draws,
        )
    manifest = trial.manifest
    typer.echo(
        f"wrote {trial.folder}: {manifest['rows_patients']} patient-arm rows, {manifest['rows_events']} events "
        f"in {trial.wall_time_s:.1f} s"
    )


@app.command()
def batch(
    protocols: list[str] = typer.Argument(..., help="Protocol files to replicate.", metavar="PROTOCOL..."),
    replicates: int = typer.Option(100, "--replicates", help="Replicate trials per protocol (independent seeds)."),
    jobs: int | None = typer.Option(None, "--jobs", help="Parallel workers (default: all cores)."),
    backend: str = _backend_option(),
    scheduler: str | None = _scheduler_option(),
    out: str | None = typer.Option(None, "--out", help="Batch folder (default outputs/<trial.name>-batch)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level for power."),
    patients: int | None = typer.Option(None, "--patients", help="Patients per trial (overrides trial.patients)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides trial.seed)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing batch folder (or an empty folder)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted batch from its finished replicates."),
    non_inferiority_hr: float | None = typer.Option(
        None,
        "--non-inferiority-hr",
        help="Margin on the hazard ratio of time to first SRE (e.g. 1.08): "
        "non-inferior when the upper 95% bound is below it.",
    ),
    non_inferiority_rd: float | None = typer.Option(
        None, "--non-inferiority-rd", help="Margin on the risk difference of the proportion with SRE (e.g. 0.05)."
    ),
    target_power: float | None = typer.Option(
        None,
        "--target-power",
        help="Search the patients per trial that reach this power (of the margin if "
        "given, else two-sided for time to first SRE), starting from --patients.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run replicate trials of each protocol in parallel: power, non-inferiority, sample size, distributions."""
    from vtrial.batch import format_summary, run_batch

    resolved = [apply_overrides(load_protocol(p), patients=patients, seed=seed) for p in protocols]
    with _progress(quiet, "trials") as bar:
        path, summary = run_batch(
            resolved,
            out,
            replicates=replicates,
            jobs=jobs,
            backend=backend,
            scheduler=scheduler,
            alpha=alpha,
            non_inferiority_hr=non_inferiority_hr,
            non_inferiority_rd=non_inferiority_rd,
            target_power=target_power,
            force=force,
            resume=resume,
            inputs=protocols,
            on_progress=lambda done, total: bar.update(done, total, None),
        )
    typer.echo(format_summary(summary))
    typer.echo(f"wrote {path}")


class FigureFormat(StrEnum):
    """File format of the figures ``vtrial report --format`` writes."""

    png = "png"
    pdf = "pdf"
    svg = "svg"


@app.command()
def sensitivity(
    protocol: str = typer.Argument(..., help="Protocol file (.toml, .yaml)."),
    method: str = typer.Option("morris", "--method", help="morris (screening) or sobol (variance shares)."),
    samples: int = typer.Option(4, "--samples", help="Morris trajectories, or Sobol' base points (a power of 2)."),
    outcome: list[str] | None = typer.Option(
        None,
        "--outcome",
        help="hr_time_to_first_sre:A_vs_B, hr_overall_survival:A_vs_B or proportion_with_sre:A "
        "(repeat; default: every comparison with the reference arm and every arm).",
    ),
    parameter: list[str] | None = typer.Option(
        None, "--parameter", help="Vary only this model parameter (repeat; default: every parameter)."
    ),
    patients: int | None = typer.Option(
        None, "--patients", help="Patients per simulated trial (overrides trial.patients)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides trial.seed)."),
    jobs: int | None = typer.Option(None, "--jobs", help="Parallel workers (default: all cores)."),
    backend: str = _backend_option(),
    scheduler: str | None = _scheduler_option(),
    out: str | None = typer.Option(None, "--out", help="Folder (default outputs/<trial.name>-sensitivity)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing sensitivity folder (or an empty folder)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted analysis from its finished samples."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Global sensitivity of the trial's outcomes to the model parameters (SALib Morris or Sobol')."""
    from vtrial.sensitivity import run_sensitivity

    resolved = apply_overrides(load_protocol(protocol), patients=patients, seed=seed)
    with _progress(quiet, "samples") as bar:
        path, _ = run_sensitivity(
            resolved,
            out,
            method=method,
            samples=samples,
            outcomes=outcome,
            parameters=parameter,
            jobs=jobs,
            backend=backend,
            scheduler=scheduler,
            force=force,
            resume=resume,
            inputs=(protocol,),
            on_progress=lambda done, total: bar.update(done, total, None),
        )
    typer.echo(f"wrote {path}/sensitivity.csv and {path}/sensitivity.html")


@app.command()
def report(
    run_dir: str = typer.Argument(..., help="A run folder written by `vtrial run`."),
    figure_format: FigureFormat | None = typer.Option(
        None, "--format", help="Also write each figure to the run folder's figures/ in this format."
    ),
) -> None:
    """Rebuild summary.json and report.html of a run folder from its Parquet tables alone."""
    from vtrial.report import report_run

    fmt = None if figure_format is None else figure_format.value
    summary_path, report_path = report_run(run_dir, fmt)
    typer.echo(f"wrote {summary_path} and {report_path}")
    if fmt is not None:
        typer.echo(f"wrote the figures to {Path(run_dir) / 'figures'} as {fmt}")


@app.command()
def validate(
    patients: int | None = typer.Option(
        None, "--patients", help="Patients per replica trial, all arms together (default 2000)."
    ),
    jobs: int | None = typer.Option(None, "--jobs", help="Parallel workers (default: all cores)."),
    out: str = typer.Option("outputs/validate", "--out", help="Folder for validate.csv and validate.html."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when a target is outside its tolerance."),
    replicate: int = typer.Option(0, "--replicate", help="Replicate of the random streams."),
    trials: str | None = typer.Option(
        None, "--trials", help="Folder of the replica protocols (default protocols/trials)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run the replicas of the published trials; compare every simulable target with its published value."""
    from vtrial.calibration.validate import print_table, validate as run_validation
    from vtrial.engine import check_options

    check_options(jobs=jobs, replicate=replicate, out=out)
    with _progress(quiet, "replicas") as bar:
        sized: dict[str, Any] = {} if patients is None else {"patients": patients}
        table = run_validation(
            out,
            jobs=jobs,
            replicate=replicate,
            trials=trials,
            on_progress=lambda done, total: bar.update(done, total, None),
            **sized,
        )
    print_table(table)
    typer.echo(f"wrote {out}/validate.csv, {out}/not_simulated.csv and {out}/validate.html")
    if strict and not table["inside"].all():
        typer.echo(f"{int((~table['inside']).sum())} target(s) outside tolerance", err=True)
        raise typer.Exit(1)  # --strict: a target missed


@app.command()
def calibrate(
    patients: int | None = typer.Option(
        None, "--patients", help="Patients per replica trial in the fit (default 1000)."
    ),
    evaluations: int | None = typer.Option(
        None, "--evaluations", help="Budget of objective evaluations (default 100)."
    ),
    jobs: int | None = typer.Option(None, "--jobs", help="Parallel workers (default: all cores)."),
    out: str = typer.Option("outputs/calibration", "--out", help="Folder for calibration.json."),
    replicate: int | None = typer.Option(
        None, "--replicate", help="Replicate of the random streams in the fit (default 1)."
    ),
    trials: str | None = typer.Option(
        None, "--trials", help="Folder of the replica protocols (default protocols/trials)."
    ),
    parameter: list[str] | None = typer.Option(
        None, "--parameter", help="Fit only this model parameter (repeat for several; default: the full set)."
    ),
    uncertainty: bool = typer.Option(
        False,
        "--uncertainty",
        help="Instead of fitting, write the ensemble of parameter sets around the fitted "
        "values (vtrial/data/parameter-draws.csv) that `vtrial run --parameter-draws K` uses.",
    ),
    draws: int = typer.Option(200, "--draws", help="Parameter sets in the ensemble (with --uncertainty)."),
) -> None:
    """Fit the population parameters to the published targets (least squares, common random numbers)."""
    from vtrial.calibration.fit import fit
    from vtrial.engine import check_options

    check_options(jobs=jobs, replicate=0 if replicate is None else replicate, out=out)
    if uncertainty:
        from vtrial.calibration.uncertainty import (
            DRAWS_CSV,
            generate,
            refuse_fit_options,
        )

        refuse_fit_options(evaluations=evaluations, replicate=replicate, parameter=parameter)
        sized: dict[str, Any] = {} if patients is None else {"patients": patients}
        sidecar = generate(
            draws=draws,
            jobs=jobs,
            trials=trials,
            **sized,
            on_evaluation=lambda count, total: typer.echo(f"evaluation {count}/{total}", err=True),
        )
        typer.echo(
            f"{sidecar['draws']} parameter sets (rank {sidecar['rank']} of {len(sidecar['parameters'])}, "
            f"s^2 {sidecar['residual_scale2']:.3f}; {len(sidecar['held'])} held at the fit, at a range end); "
            f"wrote {DRAWS_CSV} and its .json sidecar"
        )
        return
    given: dict[str, Any] = {
        "patients": patients,
        "evaluations": evaluations,
        "replicate": replicate,
        "names": tuple(parameter) if parameter else None,
    }
    result = fit(
        out,
        jobs=jobs,
        trials=trials,
        **{k: v for k, v in given.items() if v is not None},
        on_evaluation=lambda count, cost: typer.echo(f"evaluation {count}: cost {cost:.3f}", err=True),
    )
    for name, start in result.start.items():
        typer.echo(f"{name:<32} {start:>12.6g} -> {result.fitted[name]:>12.6g}")
    typer.echo(
        f"cost {result.cost_start:.3f} -> {result.cost:.3f}; {result.inside} of {result.checks} "
        f"targets inside after {result.evaluations} evaluations; wrote {out}/calibration.json"
    )


def exit_code(error: BaseException) -> int:
    """Report an error on stderr and return its exit code (2 user error, 1 internal error)."""
    if isinstance(error, UserInputError):
        typer.echo(f"error: {error}", err=True)
        return EXIT_USER
    if isinstance(error, (RunFailedError, ModelInvariantError)):
        typer.echo(f"error: {error}", err=True)
        return EXIT_INTERNAL
    if isinstance(error, TyperException) and hasattr(error, "show"):  # a usage error: bad or missing flag
        error.show()
        return EXIT_USER
    traceback.print_exception(error)
    typer.echo(f"internal error: {type(error).__name__}: {error}", err=True)
    return EXIT_INTERNAL


def _warning_printer() -> typing.Callable[..., None]:
    """A ``warnings.showwarning`` that prints each protocol warning once as ``warning: FILE: field: ...``."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings API
        if not issubclass(category, ProtocolWarning):
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        elif str(message) not in shown:
            shown.add(str(message))
            typer.echo(f"warning: {message}", err=True)

    return show


def _interrupt(signum: int, frame: object) -> None:
    """Treat SIGTERM like Ctrl-C, so an interrupted run stops cleanly and can be resumed."""
    raise KeyboardInterrupt


def _redeliver_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    """An interrupt that landed in a finalizer (e.g. a worker pool shutting down) is delivered again.

    Python cannot raise from a finalizer, so it would print a traceback and lose the interrupt;
    instead the interrupt is raised once more in the main thread, where the run stops cleanly.
    """
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _thread.interrupt_main()
        return
    sys.__unraisablehook__(unraisable)


def _raised_by_interrupt(error: BaseException) -> bool:
    """Whether ``error`` was raised while an interrupt was being handled (one is in its context chain).

    A library can fail while it stops for Ctrl-C or SIGTERM (loky joining a manager thread that the
    signal kept from starting): that failure is the interrupt's consequence, not an internal error.
    """
    context = error.__context__
    while context is not None:
        if isinstance(context, KeyboardInterrupt):
            return True
        context = context.__context__
    return False


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, map errors to exit codes, never show a user a traceback.

    From the console (``argv`` None) the process then ends without the interpreter's teardown
    (:func:`_leave`); called with ``argv`` (tests, scripts) it raises ``SystemExit`` as usual.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    sys.unraisablehook = _redeliver_interrupt
    try:
        with warnings.catch_warnings():
            # a protocol warning is a message to the user, never an error (even with PYTHONWARNINGS=error)
            warnings.filterwarnings("always", category=ProtocolWarning)
            warnings.showwarning = _warning_printer()
            code = app(args=argv, prog_name="vtrial", standalone_mode=False)
    except typer.Abort:  # Ctrl-C where click, not typer, sees it
        code = EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the one place every error becomes an exit code
        code = EXIT_INTERRUPTED if _raised_by_interrupt(error) else exit_code(error)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C (and our SIGTERM) into exit code 130
        typer.echo(
            "interrupted: no output folder was written; an interrupted run, batch or sensitivity analysis "
            "keeps what it finished: finish it with the same command and `--resume`",
            err=True,
        )
    code = code if isinstance(code, int) else EXIT_OK
    if argv is None:
        _leave(code)
    sys.exit(code)


def _leave(code: int) -> typing.NoReturn:
    """End the command with ``code`` and skip the interpreter's teardown when nothing is left to wait for.

    The teardown frees every object of the analysis and report stack one by one (~0.4 s after
    ``vtrial run``) and has no other effect once the output is flushed and the exit handlers have
    run: the files a command writes are complete before it returns (atomic writes). With a
    thread that a normal exit waits for (not a daemon) or a child process alive (a pool of
    workers, a dask cluster) the exit is the usual one, which waits for them; daemon threads (the
    progress bar's redrawing, which ends as the bar does) hold neither exit.
    """
    waited = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    if waited or multiprocessing.active_children():
        sys.exit(code)
    atexit._run_exitfuncs()  # logging's shutdown and the libraries' own handlers, as at a normal exit
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
