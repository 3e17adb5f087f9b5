"""What a process forked from a vtrial process does first.

A fork copies only the thread that forked: a lock another thread held at that moment stays
held in the child for ever. The one such thread of a run is the progress bar's, which redraws
the terminal several times a second through ``sys.stdout``/``sys.stderr`` and their buffers'
locks; a forked child that writes or flushes them (every child flushes them when it ends)
could wait for ever. The child therefore first replaces them by new stream objects on the
same file descriptors (its output still reaches the terminal).
"""

from __future__ import annotations

import sys


def fresh_std_streams() -> None:
    """Give this (forked) process new ``sys.stdout`` and ``sys.stderr`` objects on file descriptors 1 and 2."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        encoding = getattr(getattr(sys, name), "encoding", None) or "utf-8"
        setattr(sys, name, open(fd, "w", encoding=encoding, errors="backslashreplace", closefd=False))  # noqa: SIM115
