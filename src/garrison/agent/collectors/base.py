"""Collector plugins: each produces uploads of one kind for the spool.

A collector is a class registered by name; adding one is adding one file in this
package (the package is discovered by the ``COLLECTORS`` registry). ``collect`` returns the uploads it has
(``(kind, payload)`` pairs, payload being a protocol model dumped to JSON-able dict);
it may return nothing when nothing changed since the last run.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from garrison.agent.spool import KEEP, SPOOL_POLICIES, SpoolPolicy
from garrison.registry import Registry


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
    # What the spool drops first when full (garrison.agent.spool): RECREATE for state sent again in full
    # on the next run, KEEP for deltas whose loss forces a resync.
    drop_rank: ClassVar[int] = KEEP

    @abstractmethod
    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        """Return the uploads (kind, payload) this run produced."""


COLLECTORS: Registry[type[Collector]] = Registry("collector", package="garrison.agent.collectors",
                                                name_of=lambda cls: cls.name, isolate_failures=True)
"""Every module of this package is discovered; one that fails to import is in ``COLLECTORS.failures``
(reported in the agent's health) and the others still run."""


def register_collector(cls: type[Collector]) -> type[Collector]:
    """Register the collector, and the spool policy of each kind it sends (its ``drop_rank``)."""
    COLLECTORS.register(cls)
    for kind in cls.kinds or (cls.name,):
        SPOOL_POLICIES.register(SpoolPolicy(kind, cls.drop_rank))
    return cls


def load_all() -> Registry[type[Collector]]:
    """Every collector (the package's modules are discovered on first use)."""
    COLLECTORS.discover()
    return COLLECTORS
