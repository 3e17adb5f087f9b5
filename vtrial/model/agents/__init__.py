"""The bone-targeted agents, one module each, found by looking at this package's modules.

Every module here (other than :mod:`~vtrial.model.agents.base` and the helpers it builds on)
may define subclasses of :class:`~vtrial.model.agents.base.Agent`; each concrete one (it has a
``name``) is registered in :data:`AGENTS` under that name, and its parameters in
:data:`vtrial.model.parameters.REGISTRY`. The protocol's drug names and messages,
``vtrial.vocabulary.DRUGS`` and the parameter table of docs/model.md all come from here, so
adding an agent is adding one module (docs/architecture.md shows one in full).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from vtrial.model.agents.base import Administration, Agent, BonePool, Course
from vtrial.model.parameters import register as register_parameters

#: Every agent, by protocol drug name (sorted by name).
AGENTS: dict[str, Agent] = {}


def register(agent: type[Agent]) -> None:
    """Register an agent class under its name, and its parameters; a name is taken once."""
    if agent.name in AGENTS and type(AGENTS[agent.name]) is not agent:
        raise ValueError(
            f"two agents are named {agent.name!r}: {type(AGENTS[agent.name]).__name__} and {agent.__name__}"
        )
    register_parameters(agent.parameters)
    AGENTS[agent.name] = agent()
    for name in sorted(AGENTS):
        AGENTS[name] = AGENTS.pop(name)


def discover() -> None:
    """Import every module of this package (all of ``__path__``) and register the agents they define."""
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Agent) and cls.__module__ == module.__name__ and "name" in vars(cls):
                register(cls)


discover()

__all__ = ["AGENTS", "Administration", "Agent", "BonePool", "Course", "discover", "register"]
