"""Progress on stderr for long runs: units done, patients per second, time elapsed and remaining.

On a terminal a rich progress bar is redrawn in place, from the first report on. Without one (a log file, a pipe, a
batch scheduler) a plain line is printed every :data:`PLAIN_INTERVAL_S` seconds or every
:data:`PLAIN_STEP` of the work, whichever comes first, and at the end. Stages after the
simulation (analysis, report) get a line or bar of their own, so a long analysis is not
mistaken for a finished run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Without a terminal: seconds between plain progress lines (at most).
PLAIN_INTERVAL_S = 5.0
#: Without a terminal: share of the work between plain progress lines (at most).
PLAIN_STEP = 0.1


def _clock_text(seconds: float) -> str:
    """Seconds as ``H:MM:SS``."""
    return str(timedelta(seconds=int(seconds)))


class ProgressBar:
    """Context manager whose :meth:`update` reports progress; a no-op when disabled (``--quiet``).

    Parameters
    ----------
    label : str
        What is counted (``blocks``, ``trials``, ``replicas``).
    enabled : bool
        False for ``--quiet``.
    console : rich Console, optional
        Where to write (default: stderr); a terminal gets a live bar, anything else plain lines.
    clock : callable
        Seconds, monotonic (a parameter so that the plain-line pacing can be tested).
    """

    def __init__(
        self,
        label: str,
        enabled: bool = True,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.enabled = enabled
        # stderr is looked up when written to, so the console can be made before the run
        self._console = console or Console(stderr=True)
        self._clock = clock
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = clock()
        self._printed_at: float | None = None
        self._printed_done = 0

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        if self._console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("remaining"),
                TimeRemainingColumn(),
                console=self._console,
                transient=False,
            )
            self._task = self._progress.add_task(self.label, total=None, rate="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None and self._progress.live.is_started:
            self._progress.__exit__(exc_type, exc, tb)

    def _show(self, bar: Progress) -> None:
        """Draw the terminal's bar from its first report on, not from the ``with``.

        Its redrawing thread starts with it: a small run forks its worker (:mod:`vtrial.engine`)
        before it reports anything, and a fork is made only while this process runs one thread.
        """
        if not bar.live.is_started:
            bar.start()

    def _rate(self, patients: int | None, elapsed: float) -> str:
        return f"{patients / max(elapsed, 1e-9):,.0f} patients/s" if patients else ""

    def update(self, done: int, total: int, patients: int | None) -> None:
        """Record ``done`` of ``total`` units finished and, for runs, patients simulated so far."""
        if not self.enabled:
            return
        now = self._clock()
        elapsed = now - self._started
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total, rate=self._rate(patients, elapsed))
            self._show(self._progress)
            return
        due = (
            self._printed_at is None
            or (done == total and self._printed_done < total)
            or now - self._printed_at >= PLAIN_INTERVAL_S
            or done - self._printed_done >= PLAIN_STEP * total
        )
        if not due:
            return
        self._printed_at, self._printed_done = now, done
        parts = [f"{self.label} {done}/{total} ({100 * done / max(total, 1):.0f}%)"]
        if patients:
            parts.append(self._rate(patients, elapsed))
        parts.append(f"elapsed {_clock_text(elapsed)}")
        if 0 < done:
            parts.append(f"remaining {_clock_text(elapsed * (total - done) / done)}")
        self._console.print(", ".join(parts), highlight=False, soft_wrap=True)

    def restart(self, label: str) -> None:
        """Count another kind of unit from now on (e.g. ``parameter draws`` after ``blocks``): a new bar."""
        self.label = label
        self._started = self._clock()
        self._printed_at, self._printed_done = None, 0
        if self._progress is not None:
            self._task = self._progress.add_task(label, total=None, rate="")
            self._show(self._progress)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Report a stage of unknown length (``analysis``, ``report``): its start and its duration."""
        if not self.enabled:
            yield
            return
        started = self._clock()
        if self._progress is not None:
            task = self._progress.add_task(name, total=None, rate="")
            self._show(self._progress)
            yield
            self._progress.update(task, total=1, completed=1)
            return
        self._console.print(f"{name} ...", highlight=False, soft_wrap=True)
        yield
        self._console.print(f"{name} done in {_clock_text(self._clock() - started)}", highlight=False, soft_wrap=True)
