"""Progress display: plain lines without a terminal, paced by time and share of work; stage lines."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from vtrial.progress import ProgressBar


class Clock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(clock: Clock) -> tuple[ProgressBar, io.StringIO]:
    stream = io.StringIO()
    return ProgressBar("blocks", console=Console(file=stream, width=200), clock=clock), stream


def test_without_a_terminal_a_line_every_tenth_of_the_work_not_every_block():
    clock = Clock()
    bar, stream = plain(clock)
    with bar:
        for done in range(101):
            clock.now = done * 0.01  # 100 blocks in one second: only the 10% steps are printed
            bar.update(done, 100, done * 50)
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"blocks {d}/100" for d in range(0, 101, 10)]
    assert lines[-1] == "blocks 100/100 (100%), 5,000 patients/s, elapsed 0:00:01, remaining 0:00:00"


def test_without_a_terminal_a_line_every_five_seconds_when_the_work_is_slow():
    clock = Clock()
    bar, stream = plain(clock)
    with bar:
        for done in range(0, 13):
            clock.now = done * 2.5  # 1% per 2.5 s: a line every 5 s
            bar.update(done, 100, None)
    assert stream.getvalue().splitlines() == [
        "blocks 0/100 (0%), elapsed 0:00:00",
        "blocks 2/100 (2%), elapsed 0:00:05, remaining 0:04:05",
        "blocks 4/100 (4%), elapsed 0:00:10, remaining 0:04:00",
        "blocks 6/100 (6%), elapsed 0:00:15, remaining 0:03:55",
        "blocks 8/100 (8%), elapsed 0:00:20, remaining 0:03:50",
        "blocks 10/100 (10%), elapsed 0:00:25, remaining 0:03:45",
        "blocks 12/100 (12%), elapsed 0:00:30, remaining 0:03:40",
    ]


def test_stages_are_reported_with_their_duration():
    clock = Clock()
    bar, stream = plain(clock)
    with bar:
        bar.update(1, 1, None)
        with bar.stage("analysis"):
            clock.now += 77.0
        with bar.stage("report"):
            clock.now += 3.0
    assert stream.getvalue().splitlines()[1:] == [
        "analysis ...",
        "analysis done in 0:01:17",
        "report ...",
        "report done in 0:00:03",
    ]


def test_on_a_terminal_the_times_are_labelled_elapsed_and_remaining():
    stream = io.StringIO()
    bar = ProgressBar("blocks", console=Console(file=stream, force_terminal=True, width=200))
    with bar:
        bar.update(3, 4, None)
    text = stream.getvalue()
    assert "elapsed" in text and "remaining" in text and " left" not in text


def test_on_a_terminal_the_bar_and_its_redrawing_thread_start_at_the_first_report():
    """A small run forks its worker before its first report, and forks only while one thread runs (vtrial.engine)."""
    stream = io.StringIO()
    before = set(threading.enumerate())
    with ProgressBar("blocks", console=Console(file=stream, force_terminal=True, width=200)) as bar:
        assert (set(threading.enumerate()) - before, stream.getvalue()) == (set(), "")
        bar.update(0, 4, None)
        assert len(set(threading.enumerate()) - before) == 1 and "0/4" in stream.getvalue()


def test_on_a_terminal_a_bar_without_a_report_draws_nothing():
    stream = io.StringIO()
    with ProgressBar("blocks", console=Console(file=stream, force_terminal=True, width=200)):
        pass
    assert stream.getvalue() == ""


def test_quiet_prints_nothing():
    stream = io.StringIO()
    with ProgressBar("blocks", enabled=False, console=Console(file=stream)) as bar:
        bar.update(1, 2, 10)
        with bar.stage("analysis"):
            pass
    assert stream.getvalue() == ""
