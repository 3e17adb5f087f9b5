"""The Python API: load a protocol, simulate a trial, look at it, plot it, save it.

In the style of lifelines and scikit-survival: plain functions and one result object.

>>> import vtrial
>>> protocol = vtrial.load_protocol("protocols/example.toml")
>>> trial = vtrial.simulate(protocol, patients=300, seed=1)
>>> trial.kaplan_meier()["denosumab"].median_survival_time_   # months
>>> trial.save("outputs/example")                               # the run folder of `vtrial run`

The command line (:mod:`vtrial.cli`) calls these functions; the logic lives here and in the
modules they call (engine, analysis, report, store), never in the command line.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol as TypingProtocol

from vtrial.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd
    from lifelines import KaplanMeierFitter
    from matplotlib.axes import Axes

    from vtrial.protocol import Protocol

#: Files of a run folder copied as they are by :meth:`Trial.save` (the tables, the resolved protocol, the manifest).
RUN_FILES = ("patients.parquet", "events.parquet", "markers.parquet", "protocol.toml", "manifest.json")
#: Short names of the one-row-per-patient endpoints accepted by :meth:`Trial.kaplan_meier`.
ENDPOINT_NAMES = {"sre": "time_to_first_sre", "os": "overall_survival"}
#: Estimate of each kind of comparison in ``summary.json``, in the order they are looked for.
_ESTIMATES = ("hazard_ratio", "rate_ratio", "difference_months", "risk_difference")


class Progress(TypingProtocol):
    """What :func:`simulate` reports progress to (:class:`vtrial.progress.ProgressBar` is one)."""

    def update(self, done: int, total: int, patients: int | None) -> None:
        """Blocks done of ``total`` and patients simulated so far."""

    def stage(self, name: str) -> AbstractContextManager[None]:
        """A named step after the simulation (analysis, report)."""


def load_protocol(source: str | Path | Mapping[str, Any]) -> Protocol:
    """Read and validate a protocol from a TOML/YAML file, or from a dict of the same tables.

    Every field not given takes its documented default (``docs/protocol.md``).

    Raises
    ------
    vtrial.errors.UserInputError
        The file or dict is not a valid protocol (the message names the field and the fix).
    """
    from vtrial import protocol

    if isinstance(source, Mapping):
        return protocol.parse_protocol(dict(source), "<protocol dict>")
    return protocol.load_protocol(source)


def simulate(
    protocol: Protocol | str | Path | Mapping[str, Any],
    *,
    patients: int | None = None,
    seed: int | None = None,
    jobs: int | None = 1,
    backend: str = "loky",
    out: str | Path | None = None,
    force: bool = False,
    resume: bool = False,
    scheduler: str | None = None,
    block_size: int | None = None,
    replicate: int = 0,
    inputs: tuple[str | Path, ...] = (),
    progress: Progress | None = None,
    parameter_draws: int = 0,
) -> Trial:
    """Simulate a trial and return it.

    Parameters
    ----------
    protocol : Protocol, path or dict
        A protocol (:func:`load_protocol`), or what :func:`load_protocol` accepts.
    patients, seed : int, optional
        Override ``trial.patients`` and ``trial.seed``.
    jobs : int or None
        Parallel workers (``None``: all cores). Results do not depend on it.
    backend : {"loky", "dask"}
        Where the tasks run (this machine, or a dask cluster at ``scheduler``).
    out : path, optional
        Write the run folder there as the simulation goes (streamed, resumable: what
        ``vtrial run`` does), with ``summary.json`` and ``report.html``; the returned trial
        reads its tables from it. Default: simulate in a temporary folder and keep the trial
        in memory (:meth:`Trial.save` writes it later).
    force, resume : bool
        With ``out``: replace an existing run folder; finish an interrupted run.
    block_size, replicate : int
        Patients per task (memory, not results); replicate index of the random streams.
    inputs : tuple of path
        Protocol files the run was read from: a folder holding one is never replaced.
    progress : Progress, optional
        Told the blocks done and the analysis and report steps.
    parameter_draws : int
        Also run the trial under the first K parameter sets of the calibration's ensemble
        (``docs/calibration.md``): the ``uncertainty`` block of the summary. Needs ``out``.
    """
    from vtrial.engine import DEFAULT_BLOCK_SIZE, run_trial, shared_dask_cluster
    from vtrial.protocol import Protocol, apply_overrides

    if not isinstance(protocol, Protocol):
        inputs = (*inputs, protocol) if isinstance(protocol, (str, Path)) else inputs
        protocol = load_protocol(protocol)
    resolved = apply_overrides(protocol, patients=patients, seed=seed)
    run = partial(
        run_trial,
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        replicate=replicate,
        block_size=DEFAULT_BLOCK_SIZE if block_size is None else block_size,
        on_progress=None if progress is None else progress.update,
    )
    if parameter_draws and out is None:
        raise UserInputError(
            "parameter_draws: the trial under parameter draws is written to a run folder; "
            "pass out=FOLDER (or use `vtrial run --parameter-draws K`)"
        )
    if out is not None:
        finish = _analyse_and_report(progress)
        if parameter_draws:
            finish = _with_draws(
                finish,
                progress,
                resolved,
                parameter_draws,
                replicate=replicate,
                jobs=jobs,
                backend=backend,
                scheduler=scheduler,
            )
        # a run and its parameter draws share one dask cluster
        with shared_dask_cluster() if parameter_draws else nullcontext():
            result = run(
                resolved, Path(out), force=force, resume=resume, inputs=inputs, finish=finish, prepare=_import_report
            )
        return Trial.from_folder(result.run_dir, wall_time_s=result.wall_time_s)
    with tempfile.TemporaryDirectory(prefix="vtrial-") as scratch:
        result = run(resolved, Path(scratch) / "run")
        files = {name: (result.run_dir / name).read_bytes() for name in RUN_FILES}
    return Trial(resolved, files=files, wall_time_s=result.wall_time_s)


def _stage(progress: Progress | None, name: str) -> AbstractContextManager[None]:
    return nullcontext() if progress is None else progress.stage(name)


def _import_report() -> None:
    """Import the analysis and report stack (pandas, pyarrow, matplotlib, jinja2; ~1 s) the run's last step needs.

    Run while the workers simulate (``prepare`` of :func:`vtrial.engine.run_trial`): pandas too
    is imported only here, not by this module, so that it is not imported before the simulation.
    The report's template and first figure are prepared too (:func:`vtrial.report.warm_up`).
    """
    from vtrial.report import warm_up  # imports vtrial.analysis too

    warm_up()


def _analyse_and_report(progress: Progress | None):  # noqa: ANN202 - a closure for run_trial's ``finish``
    """The run's last step in its partial folder: ``summary.json``, then ``report.html``."""

    def finish(run_dir: Path) -> None:
        from vtrial.analysis import analyse_run, write_summary
        from vtrial.report import write_report

        with _stage(progress, "analysis"):
            summary, patients = analyse_run(run_dir)
            write_summary(run_dir, summary)
        with _stage(progress, "report"):
            write_report(run_dir, summary, patients=patients)

    return finish


def _with_draws(finish, progress: Progress | None, protocol: Protocol, draws: int, **options):  # noqa: ANN202
    """The run's last step preceded by the trial under the first ``draws`` parameter sets (a bar of its own)."""
    from vtrial.calibration.uncertainty import load_ensemble
    from vtrial.uncertainty import run_draws

    ensemble, sidecar = load_ensemble(draws)  # refused (exit 2) before anything is simulated

    def run_then_finish(partial: Path) -> None:
        restart = getattr(progress, "restart", None)
        if restart is not None:
            restart("parameter draws")
        run_draws(
            protocol,
            partial,
            ensemble,
            sidecar,
            on_progress=None if progress is None else (lambda done, total: progress.update(done, total, None)),
            **options,
        )
        finish(partial)

    return run_then_finish


class Trial:
    """A simulated trial: its tables, its summary, survival fits, plots, report and run folder.

    Made by :func:`simulate` (in memory) or :meth:`Trial.from_folder` (a run folder, whose
    tables are read and checked when first used). Times of the fits are in months.

    Attributes
    ----------
    protocol : Protocol
        The resolved protocol that was simulated.
    folder : Path or None
        The run folder the trial was read from, ``None`` for a trial in memory.
    wall_time_s : float or None
        Seconds the simulation took, when this process ran it.
    """

    def __init__(
        self,
        protocol: Protocol,
        *,
        files: Mapping[str, bytes] | None = None,
        folder: Path | None = None,
        wall_time_s: float | None = None,
    ) -> None:
        if (files is None) == (folder is None):
            raise ValueError("give the run's files or its folder, not both or neither")
        self.protocol = protocol
        self.folder = folder
        self.wall_time_s = wall_time_s
        self._files = dict(files) if files is not None else None

    @classmethod
    def from_folder(cls, run_dir: str | Path, *, wall_time_s: float | None = None) -> Trial:
        """The trial of a run folder written by ``vtrial run`` or :meth:`save`."""
        from vtrial.analysis import read_protocol

        return cls(read_protocol(run_dir), folder=Path(run_dir), wall_time_s=wall_time_s)

    def __repr__(self) -> str:
        where = f"folder={str(self.folder)!r}" if self.folder is not None else "in memory"
        arms = ", ".join(arm.name for arm in self.protocol.arm)
        return f"<vtrial.Trial {self.protocol.trial.name!r}: {self.protocol.trial.patients} patients, arms {arms}; {where}>"

    @property
    def arms(self) -> list[str]:
        """Arm names in protocol order."""
        return [arm.name for arm in self.protocol.arm]

    def _file(self, name: str) -> bytes:
        if self._files is not None:
            return self._files[name]
        assert self.folder is not None
        try:
            return (self.folder / name).read_bytes()
        except OSError as exc:
            raise UserInputError(
                f"cannot read the run folder's {name}: {exc.strerror or exc}",
                file=self.folder / name,
                fix="give the folder written by `vtrial run PROTOCOL`",
            ) from exc

    @cached_property
    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
        import pandas as pd

        from vtrial.analysis.run import read_tables

        if self.folder is not None:
            return read_tables(self.folder, self.arms)
        assert self._files is not None
        patients, events, markers = (
            pd.read_parquet(io.BytesIO(self._files[f"{kind}.parquet"])) for kind in ("patients", "events", "markers")
        )
        return patients, events, markers

    @property
    def patients(self) -> pd.DataFrame:
        """``patients.parquet``: one row per patient and arm (baseline, follow-up, death, SREs)."""
        return self._tables[0]

    @property
    def events(self) -> pd.DataFrame:
        """``events.parquet``: one row per simulated event; ``counted`` marks the SREs that count."""
        return self._tables[1]

    @property
    def markers(self) -> pd.DataFrame | None:
        """``markers.parquet``: bone markers and calcium per visit (``None`` for a folder written before them)."""
        return self._tables[2]

    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: version, seed, workers, wall time, dependency versions."""
        manifest: dict[str, Any] = json.loads(self._file("manifest.json"))
        return manifest

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``: endpoints by arm and comparisons with the reference arm."""
        from vtrial.analysis import analysis_settings, summarise, to_json

        if self.folder is not None and (self.folder / "summary.json").is_file():
            loaded: dict[str, Any] = json.loads(self._file("summary.json"))
            return loaded
        patients, events, markers = self._tables
        plain: dict[str, Any] = json.loads(
            to_json(summarise(patients, events, **analysis_settings(self.protocol), markers=markers))
        )
        return plain

    def kaplan_meier(self, endpoint: str = "sre") -> dict[str, KaplanMeierFitter]:
        """Kaplan–Meier fits by arm (95% log-log bands), times in months.

        Parameters
        ----------
        endpoint : {"sre", "os"}
            Time to first SRE (death and loss to follow-up censor) or overall survival; the long
            names ``time_to_first_sre`` and ``overall_survival`` are accepted too.

        Returns
        -------
        dict of str to lifelines.KaplanMeierFitter
            One fit per arm that has patients, labelled with the arm's name (lifelines' objects,
            for their methods and plots; the summary's own fits are
            :func:`vtrial.analysis.survival.kaplan_meier`, the same estimates).
        """
        from lifelines import KaplanMeierFitter

        from vtrial.analysis.proportions import CONFIDENCE
        from vtrial.analysis.survival import endpoint as endpoint_data
        from vtrial.vocabulary import DAYS_PER_MONTH

        name = _endpoint_name(endpoint)
        fits = {}
        for arm, rows in self._by_arm():
            durations, events = endpoint_data(rows, name)
            fits[arm] = KaplanMeierFitter(alpha=1 - CONFIDENCE, label=arm).fit(durations / DAYS_PER_MONTH, events)
        return fits

    def cumulative_incidence(self) -> dict[str, pd.Series]:
        """Aalen–Johansen cumulative incidence of a first SRE by arm, death competing; indexed by months."""
        import pandas as pd

        from vtrial.analysis.survival import competing_risks, cumulative_incidence
        from vtrial.vocabulary import DAYS_PER_MONTH

        curves = {}
        for arm, rows in self._by_arm():
            curve = cumulative_incidence(*competing_risks(rows))
            curves[arm] = pd.Series(
                curve.to_numpy(), index=pd.Index(curve.index / DAYS_PER_MONTH, name="months"), name=arm
            )
        return curves

    def _by_arm(self) -> Iterator[tuple[str, pd.DataFrame]]:
        patients = self.patients
        for arm in self.arms:
            rows = patients[patients["arm"] == arm]
            if not rows.empty:
                yield arm, rows

    def compare(self) -> pd.DataFrame:
        """Every comparison of an arm with the reference arm as a tidy table.

        One row per arm and endpoint (time to first SRE, all SREs, overall survival, the RMSTs,
        the proportion with an SRE, each adverse event), with the columns ``arm``,
        ``reference``, ``endpoint``, ``measure`` (hazard_ratio, rate_ratio, difference_months,
        risk_difference), ``estimate``, ``ci_low``, ``ci_high``, ``p_value`` and ``reason``
        (why an estimate is missing), all taken from :attr:`summary`.
        """
        import pandas as pd

        rows = []
        for comparison in self.summary["comparisons"]:
            results = {key: value for key, value in comparison.items() if key not in ("arm", "reference", "paired")}
            adverse = results.pop("adverse_events", {})
            results.update({f"adverse_event:{name}": value for name, value in adverse.items()})
            for name, result in results.items():
                measure = next(key for key in _ESTIMATES if key in result)
                rows.append(
                    {
                        "arm": comparison["arm"],
                        "reference": comparison["reference"],
                        "endpoint": name,
                        "measure": measure,
                        "estimate": result[measure],
                        "ci_low": result["ci_low"],
                        "ci_high": result["ci_high"],
                        "p_value": result["p_value"],
                        "reason": result.get("reason"),
                    }
                )
        columns = ["arm", "reference", "endpoint", "measure", "estimate", "ci_low", "ci_high", "p_value", "reason"]
        table = pd.DataFrame(rows, columns=columns)
        numbers = ["estimate", "ci_low", "ci_high", "p_value"]
        table[numbers] = table[numbers].astype(float)
        return table

    def plot_survival(self, ax: Axes | None = None, endpoint: str = "sre") -> Axes:
        """Kaplan–Meier curves by arm with 95% bands on ``ax`` (default: the current pyplot axes)."""
        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.gca()
        for kmf in self.kaplan_meier(endpoint).values():
            kmf.plot_survival_function(ax=ax, ci_show=True)
        title = {"time_to_first_sre": "Free of SRE", "overall_survival": "Alive"}[_endpoint_name(endpoint)]
        ax.set(xlabel="Months since randomisation", ylabel=title, ylim=(0, 1.02), xlim=(0, None))
        return ax

    def report(self, path: str | Path) -> Path:
        """Write the HTML report (the run folder's ``report.html``) to ``path``, atomically."""
        from vtrial.report import _flatten, protocol_brief, render_report
        from vtrial.store import atomic_write_text

        html = render_report(self.summary, self.patients, protocol_brief(self.protocol), _flatten(self.manifest))
        path = Path(path)
        atomic_write_text(path, html)
        return path

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write the trial's run folder, the same files as ``vtrial run``, atomically.

        The folder is assembled in a hidden sibling and renamed into place, under the
        run-folder lock; an existing folder is replaced only with ``force`` and only if it is
        a run folder or empty (``docs/reliability.md``).
        """
        from vtrial.analysis import write_summary
        from vtrial.engine import protocol_fingerprint
        from vtrial.report import write_report
        from vtrial.store import OutputFolder, atomic_write_bytes, finalise, owning, prepare_partial

        contents = {name: self._file(name) for name in RUN_FILES}  # read before a folder it came from is replaced
        summary = self.summary
        target = OutputFolder.of(folder, "run", force)
        with owning(target):
            partial = target.partial
            prepare_partial(
                partial,
                {"protocol_sha256": protocol_fingerprint(self.protocol), "saved": True},
                resume=False,
                force=True,
            )
            for name, data in contents.items():
                atomic_write_bytes(partial / name, data)
            write_summary(partial, summary)
            write_report(partial, summary)
            finalise(partial, target)
        return target.path


def _endpoint_name(endpoint: str) -> str:
    """The summary's name of an endpoint given by its short or long name."""
    if endpoint in ENDPOINT_NAMES.values():
        return endpoint
    if endpoint not in ENDPOINT_NAMES:
        choices = [*ENDPOINT_NAMES, *ENDPOINT_NAMES.values()]
        raise UserInputError(f"unknown endpoint {endpoint!r}", field="endpoint", fix=f"use one of {choices}")
    return ENDPOINT_NAMES[endpoint]
