"""Probe plugins: the only things a check can make the agent do.

A probe is a class registered by name with a pydantic ``Params`` model (extra fields are
refused) and a ``run`` method that reads the device through :class:`Env`. Adding a probe is
adding one module to this package. Probes never run commands named by data: the few system
commands the agent may run are a fixed list in :mod:`garrison.agent.assessment.sysexec`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from garrison.agent.assessment.env import Env, Outcome
from garrison.registry import Registry

IfMissing = Literal["error", "fail", "pass", "not_applicable"]


def _device_path(p: str) -> str:
    if not p.startswith("/") or "/../" in p + "/" or "\0" in p:
        raise ValueError(f"not an absolute device path: {p!r}")
    return p


# An absolute path on the device, globs allowed; never escapes the root with '..'.
DevicePath = Annotated[str, StringConstraints(min_length=1, max_length=512), AfterValidator(_device_path)]


class ProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=ProbeParams)


class Probe(ABC, Generic[P]):
    name: ClassVar[str]
    Params: ClassVar[type[ProbeParams]]

    @abstractmethod
    def run(self, env: Env, params: P) -> Outcome:
        """Evaluate once; raise ProbeError when something cannot be read."""


PROBES: Registry[type[Probe[Any]]] = Registry("probe", package="garrison.agent.assessment.probes",
                                              name_of=lambda cls: cls.name)
"""Every module of this package is discovered (each registers its probe)."""


def register_probe(cls: type[Probe[Any]]) -> type[Probe[Any]]:
    return PROBES.register(cls)


def load_probes() -> Registry[type[Probe[Any]]]:
    return PROBES


def if_missing(kind: IfMissing, message: str, file: str | None = None) -> Outcome:
    """The outcome a check asked for when the thing to examine does not exist."""
    return Outcome(kind, file=file, message=message)


def glob_files(env: Env, path: str | list[str], missing: IfMissing) -> list[str] | Outcome:
    """The files ``path`` (a glob or a list of them) names; the ``missing`` outcome when none exists."""
    patterns = path if isinstance(path, list) else [path]
    files = [f for p in patterns for f in env.glob(p)]
    return files or if_missing(missing, f"{', '.join(patterns)} does not exist", patterns[0])


def stat_file(env: Env, file: str, missing: IfMissing) -> os.stat_result | Outcome:
    """The status of a file :func:`glob_files` found; the ``missing`` outcome for a dangling link."""
    st = env.stat(file)
    return st if st is not None else if_missing(missing, f"{file} is a dangling link", file)
