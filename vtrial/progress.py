"""Progress bars on stderr for long runs (rich): blocks done, patients per second, time left."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """Context manager whose :meth:`update` advances a bar; a no-op when disabled (``--quiet``)."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._started = time.perf_counter()

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=None, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, done: int, total: int, patients: int | None) -> None:
        """Record ``done`` of ``total`` units finished and, for runs, patients simulated so far."""
        if self._progress is None:
            return
        rate = ""
        if patients:
            rate = f"{patients / max(time.perf_counter() - self._started, 1e-9):,.0f} patients/s"
        self._progress.update(self._task, completed=done, total=total, rate=rate)
