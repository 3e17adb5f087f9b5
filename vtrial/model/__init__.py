"""The mechanistic model: per-lesion vicious cycle, drug PK/PD and event hazards (pure numpy)."""

# imported first: registers every agent and its parameters (vtrial.model.parameters.REGISTRY)
from vtrial.model import agents  # noqa: F401
from vtrial.model.simulate import simulate

__all__ = ["simulate"]
