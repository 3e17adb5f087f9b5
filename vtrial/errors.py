"""The one exception type for errors a user can fix (bad protocol, bad flag, missing file)."""

from __future__ import annotations

from functools import partial
from pathlib import Path


class UserInputError(Exception):
    """An error the user can fix: it names the file, the field, what was wrong and the fix.

    The CLI prints ``str(error)`` on stderr and exits with code 2, without a traceback.

    Parameters
    ----------
    problem : str
        What was wrong, in a sentence.
    file : str or Path, optional
        The file the problem is in.
    field : str, optional
        Dotted path of the field, e.g. ``arm[1].every_weeks``.
    fix : str, optional
        What to do about it.
    line : int, optional
        Line number in the file, where the parser knows it.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        fix: str | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.field = field
        self.fix = fix
        self.line = line
        super().__init__(self._format())

    def __reduce__(self) -> tuple[partial[UserInputError], tuple[()]]:
        """Pickle the parts, not only the message (an error crosses from a worker process to the caller)."""
        return partial(UserInputError, self.problem, file=self.file, field=self.field, fix=self.fix, line=self.line), ()

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.field:
            where.append(self.field)
        text = ": ".join(where + [self.problem]) if where else self.problem
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class RunFailedError(Exception):
    """A run stopped by a fault outside the user's input (a worker died); its finished blocks are kept.

    The CLI prints the message and exits with code 1 (an internal error), without a traceback,
    because the message already says how to finish the run (``--resume``).
    """


class ModelInvariantError(RuntimeError):
    """The simulation left its valid state space (a NaN, a negative mass, an infinite hazard).

    Raised by the model with the offending patient, its parameters and the state, so that a
    numerical failure is never silent; the CLI reports it as an internal error (exit code 1).
    """


class ProtocolWarning(UserWarning):
    """A protocol value that is valid but implausible (e.g. 4000 mg of zoledronic acid): it runs as given.

    Raised through :func:`warnings.warn` when a protocol is loaded; the CLI prints each one once
    on stderr as ``warning: FILE: field: problem``.

    Parameters
    ----------
    problem : str
        What is implausible and the usual range.
    file : str or Path
        The protocol file (or the name given to :func:`vtrial.protocol.parse_protocol`).
    field : str
        Dotted path of the field, e.g. ``arm[1].dose_mg``.
    """

    def __init__(self, problem: str, *, file: str | Path, field: str) -> None:
        self.problem = problem
        self.file = str(file)
        self.field = field
        super().__init__(f"{self.file}: {field}: {problem}")
