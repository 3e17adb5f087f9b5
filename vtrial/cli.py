"""The ``vtrial`` command line: parses flags and calls the API; holds no logic.

Exit codes (part of the contract): 0 success, 2 bad input (a message naming the file, the field
and the fix on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import sys
import traceback

import numpy as np
import typer
from typer.exceptions import TyperException

from vtrial import __version__
from vtrial.errors import UserInputError
from vtrial.protocol import apply_overrides, load_protocol, protocol_to_toml
from vtrial.streams import Streams

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2

app = typer.Typer(
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
    protocols: list[str] = typer.Argument(..., help="Protocol files (.toml, .yaml) to validate.", metavar="PROTOCOL..."),
    show: bool = typer.Option(False, "--show", help="Print each resolved protocol, every default filled in, as TOML."),
) -> None:
    """Validate protocol files without running them; print "ok: FILE" for each valid one."""
    for path in protocols:
        protocol = load_protocol(path)
        if show:
            typer.echo(protocol_to_toml(protocol))
        typer.echo(f"ok: {path}")


@app.command()
def cohort(
    protocol: str = typer.Argument(..., help="Protocol file (.toml, .yaml)."),
    out: str = typer.Option(..., "--out", help="Parquet file to write: one row per virtual patient."),
    patients: int | None = typer.Option(None, "--patients", help="Number of patients (overrides trial.patients)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides trial.seed)."),
) -> None:
    """Sample the protocol's virtual cohort (before randomisation) and write it to Parquet."""
    from vtrial.cohort import sample_cohort, write_cohort  # heavy (scipy, pyarrow): only when used

    resolved = apply_overrides(load_protocol(protocol), patients=patients, seed=seed)
    block = sample_cohort(resolved, np.arange(resolved.trial.patients), Streams(resolved.trial.seed))
    write_cohort(block, out)
    typer.echo(f"wrote {resolved.trial.patients} patients to {out}")


def exit_code(error: BaseException) -> int:
    """Report an error on stderr and return its exit code (2 user error, 1 internal error)."""
    if isinstance(error, UserInputError):
        typer.echo(f"error: {error}", err=True)
        return EXIT_USER
    if isinstance(error, TyperException) and hasattr(error, "show"):  # a usage error: bad or missing flag
        error.show()
        return EXIT_USER
    traceback.print_exception(error)
    typer.echo(f"internal error: {type(error).__name__}: {error}", err=True)
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, map errors to exit codes, never show a user a traceback."""
    try:
        code = app(args=argv, prog_name="vtrial", standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        code = EXIT_INTERNAL
    except Exception as error:  # noqa: BLE001 - the one place every error becomes an exit code
        code = exit_code(error)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
