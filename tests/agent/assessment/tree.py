"""A device file tree in a temporary directory (etc/, proc/, var/…) and ways to run probes on it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.evaluator import Call, run_call
from garrison.agent.assessment.probes import PROBES, load_probes
from garrison.agent.collectors.base import AgentContext

DATA = Path(__file__).resolve().parents[2] / "data" / "assessment"


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root.parent / (root.name + "-state")
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        self._ctx: AgentContext | None = None

    def p(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def write(self, device_path: str, text: str, mode: int | None = None) -> Path:
        path = self.p(device_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def mkdir(self, device_path: str, mode: int | None = None) -> Path:
        path = self.p(device_path)
        path.mkdir(parents=True, exist_ok=True)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def link(self, device_path: str, target: str) -> Path:
        path = self.p(device_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
        return path

    def copy(self, data_path: str, device_path: str | None = None) -> Path:
        """Copy a file or directory of tests/data/assessment into the tree."""
        src = DATA / data_path
        dst = self.p(device_path or "/" + data_path.split("/", 1)[1])
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(src, dst)
        return dst

    def ctx(self, **memory: Any) -> AgentContext:
        if self._ctx is None:
            self._ctx = AgentContext(
                state_dir=self.state_dir, agent_version="test", root=self.root, is_root=True
            )
        self._ctx.memory.update(memory)
        return self._ctx

    def env(self) -> Env:
        return Env(self.ctx())

    def probe(self, probe_name: str, /, env: Env | None = None, **params: Any) -> Outcome:
        return run_probe(env or self.env(), probe_name, **params)


def run_probe(env: Env, probe_name: str, /, **params: Any) -> Outcome:
    """Run one probe the way a compiled check does (params validated by the probe's model)."""
    load_probes()
    cls = PROBES[probe_name]
    return run_call(env, Call(cls(), cls.Params.model_validate(params)))
