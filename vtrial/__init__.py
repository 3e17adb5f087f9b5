"""vtrial: a stochastic virtual clinical-trial simulator for bone metastasis."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vtrial")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
