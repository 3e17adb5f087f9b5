"""The mechanistic model: per-lesion vicious cycle, drug PK/PD and event hazards (pure numpy)."""

from vtrial.model.simulate import simulate

__all__ = ["simulate"]
