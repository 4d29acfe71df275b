"""Collector plugins: each produces uploads of one kind for the spool.

A collector is a class registered by name; adding one is adding one file in this
package (it is imported by :func:`load_all`). ``collect`` returns the uploads it has
(``(kind, payload)`` pairs, payload being a protocol model dumped to JSON-able dict);
it may return nothing when nothing changed since the last run.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class AgentContext:
    state_dir: Path
    agent_version: str
    root: Path = Path("/")  # filesystem root to read; tests point it at a prepared tree
    is_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    # Collector state that must survive restarts goes to state_dir; this is the in-process cache.
    memory: dict[str, Any] = field(default_factory=dict)

    def path(self, absolute: str) -> Path:
        """Map an absolute path of the device (``/var/lib/dpkg/status``) under ``root``."""
        return self.root / absolute.lstrip("/")


class Collector(ABC):
    name: ClassVar[str]
    needs_root: ClassVar[bool] = False
    interval: ClassVar[int] = 300  # seconds between runs in the agent loop
    # Upload kinds it sends, when not just ``name``: a server's resync of a kind reruns its collectors.
    kinds: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        """Return the uploads (kind, payload) this run produced."""


COLLECTORS: dict[str, type[Collector]] = {}


def register_collector(cls: type[Collector]) -> type[Collector]:
    if cls.name in COLLECTORS:
        raise ValueError(f"collector {cls.name!r} registered twice")
    COLLECTORS[cls.name] = cls
    return cls


def load_all() -> dict[str, type[Collector]]:
    """Import every collector module of this package (they register themselves)."""
    from garrison.agent import collectors

    for mod in pkgutil.walk_packages(collectors.__path__, collectors.__name__ + "."):
        importlib.import_module(mod.name)
    return COLLECTORS
