"""vtrial: a stochastic virtual clinical-trial simulator for bone metastasis.

The public API (:mod:`vtrial.api`): :func:`load_protocol`, :func:`simulate` and the
:class:`Trial` it returns. They are imported on first use, so that ``import vtrial`` stays
light (no numpy, pandas or lifelines until a trial is loaded or run).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("vtrial")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from vtrial.api import Trial, load_protocol, simulate
    from vtrial.errors import UserInputError

__all__ = ["Trial", "UserInputError", "__version__", "load_protocol", "simulate"]

#: Public names and the module each is imported from when first used.
_LAZY = {
    "Trial": "vtrial.api",
    "load_protocol": "vtrial.api",
    "simulate": "vtrial.api",
    "UserInputError": "vtrial.errors",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'vtrial' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
