"""The ``inventory`` collector: installed software as a snapshot, then as deltas.

Every run stats/hashes the package databases (each source's ``fingerprint``). Nothing
changed → no upload and no parsing. Something changed → only the changed sources are
parsed again, and the difference against the last report goes up as a delta
(``removed`` holds the old entries, ``added`` the new; a version change is both).

The last report is kept in ``state_dir/inventory.json`` so that deltas survive restarts.
A full snapshot goes up on the first run, when the OS identity changed (every package's
ecosystem changes with it), when a delta would be larger than a snapshot, and when the
agent loop sets ``ctx.memory["resync_inventory"] = True`` because the server asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from garrison.agent.collectors.base import AgentContext, Collector, register_collector
from garrison.agent.collectors.packages.base import PackageSource, SourceSkipped, load_package_sources
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.osrelease import parse_os_release
from garrison.protocol import CollectorHealth, InventoryReport, OsIdentity, SoftwarePackage

RESYNC_KEY = "resync_inventory"
STATE_FILE = "inventory.json"
STATE_FORMAT = 1
OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")
_MEMORY_KEY = "inventory.state"


@dataclass
class SourceState:
    fingerprint: str  # "" = last collect failed: the packages are the previous ones, retry next run
    packages: list[SoftwarePackage]


@dataclass
class InventoryState:
    generation: int
    os_fingerprint: str
    os: OsIdentity | None
    sources: dict[str, SourceState] = field(default_factory=dict)

    def packages(self) -> dict[str, SoftwarePackage]:
        return _keyed(p for s in self.sources.values() for p in s.packages)


def _key(p: SoftwarePackage) -> str:
    return json.dumps(p.model_dump(), sort_keys=True, separators=(",", ":"))


def _keyed(pkgs: Any) -> dict[str, SoftwarePackage]:
    return {_key(p): p for p in pkgs}


def _sorted(pkgs: Any) -> list[SoftwarePackage]:
    return sorted(pkgs, key=lambda p: (p.manager, p.name, p.arch, p.version, p.path))


def _state_path(ctx: AgentContext) -> Path:
    return ctx.state_dir / STATE_FILE


def load_state(ctx: AgentContext) -> InventoryState | None:
    """The last report's state; None when absent or unreadable (the next report is then a snapshot)."""
    cached = ctx.memory.get(_MEMORY_KEY)
    if isinstance(cached, InventoryState):
        return cached
    try:
        raw = json.loads(_state_path(ctx).read_bytes())
        if raw.get("format") != STATE_FORMAT:
            return None
        state = InventoryState(
            generation=int(raw["generation"]),
            os_fingerprint=str(raw["os_fingerprint"]),
            os=OsIdentity.model_validate(raw["os"]) if raw.get("os") else None,
            sources={
                name: SourceState(str(s["fingerprint"]), [SoftwarePackage.model_validate(p) for p in s["packages"]])
                for name, s in raw["sources"].items()
            },
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ValidationError):
        return None
    ctx.memory[_MEMORY_KEY] = state
    return state


def save_state(ctx: AgentContext, state: InventoryState) -> None:
    doc = {
        "format": STATE_FORMAT,
        "generation": state.generation,
        "os_fingerprint": state.os_fingerprint,
        "os": state.os.model_dump() if state.os else None,
        "sources": {
            name: {"fingerprint": s.fingerprint, "packages": [p.model_dump() for p in s.packages]}
            for name, s in state.sources.items()
        },
    }
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    path = _state_path(ctx)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    ctx.memory[_MEMORY_KEY] = state


def read_os_release(ctx: AgentContext) -> tuple[str, bytes]:
    """(fingerprint, content) of the device's os-release; ``("none", b"")`` when there is none."""
    for name in OS_RELEASE_FILES:
        try:
            data = ctx.path(name).read_bytes()[: 64 * 1024]
        except OSError:
            continue
        return hashlib.blake2b(data, digest_size=16).hexdigest(), data
    return "none", b""


class InventoryError(RuntimeError):
    """A package source failed; its previous packages were kept (raised only when nothing is to be sent)."""


@register_collector
class InventoryCollector(Collector):
    name = "inventory"
    kinds = ("inventory",)
    interval = 300

    def __init__(self) -> None:
        # Health of the last run, notes included (a source skipped, an entry unreadable).
        self.health = CollectorHealth(ok=True)
        # Notes of each source's last collect, repeated while its database is unchanged.
        self._source_notes: dict[str, list[str]] = {}

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        errors: list[str] = []
        notes: list[str] = []
        uploads = self._collect(ctx, errors, notes)
        notes += [n for name in sorted(self._source_notes) for n in self._source_notes[name]]
        message = "; ".join(errors + notes)
        self.health = CollectorHealth(ok=not errors, error=message[:4096] or None, last_run=dt.datetime.now(dt.UTC))
        if errors and not uploads:
            # The agent loop records a collector's exception in its health; with uploads in hand we
            # return them instead (the state already counts them as sent) and the error shows next run.
            raise InventoryError("; ".join(errors)[:4096])
        return uploads

    def _collect(self, ctx: AgentContext, errors: list[str], notes: list[str]) -> list[tuple[str, dict[str, Any]]]:
        os_fp, os_data = read_os_release(ctx)
        sources: dict[str, PackageSource] = {n: cls() for n, cls in sorted(load_package_sources().items())}
        fps: dict[str, str] = {}
        for name, src in sources.items():
            try:
                fp = src.fingerprint(ctx)
            except SourceSkipped as exc:
                notes.append(f"{name}: skipped: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                fp = ""
            if fp is not None:
                fps[name] = fp
        state = load_state(ctx)
        resync = bool(ctx.memory.pop(RESYNC_KEY, False))
        if (
            not resync
            and state is not None
            and state.os_fingerprint == os_fp
            and {n: s.fingerprint for n, s in state.sources.items()} == fps
        ):
            self._source_notes = {n: v for n, v in self._source_notes.items() if n in fps}
            failed = [n for n, s in state.sources.items() if not s.fingerprint]
            errors += [f"{n}: still failing, previous packages kept" for n in failed if not any(
                e.startswith(f"{n}:") for e in errors)]
            return []

        os_identity: OsIdentity | None = None
        if os_data:
            try:
                os_identity = parse_os_release(os_data)
            except InventoryParseError as exc:
                errors.append(f"os-release: {exc}")
        recollect_all = resync or state is None or state.os_fingerprint != os_fp
        new_sources: dict[str, SourceState] = {}
        for name, fp in fps.items():
            prev = state.sources.get(name) if state else None
            if prev is not None and fp and prev.fingerprint == fp and not recollect_all:
                new_sources[name] = prev
                continue
            if not fp:  # fingerprint failed: keep what the server has
                if prev is not None:
                    new_sources[name] = SourceState("", prev.packages)
                continue
            src = sources[name]
            try:
                new_sources[name] = SourceState(fp, src.collect(ctx, os_identity))
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                if prev is not None:  # last known beats "all removed"; fingerprint "" retries next run
                    new_sources[name] = SourceState("", prev.packages)
            self._source_notes[name] = list(src.notes)
        self._source_notes = {n: v for n, v in self._source_notes.items() if n in fps}

        new_state = InventoryState(
            generation=(state.generation if state else 0) + 1,
            os_fingerprint=os_fp,
            os=os_identity,
            sources=new_sources,
        )
        current = new_state.packages()
        report: InventoryReport
        if recollect_all or state is None:
            report = InventoryReport(
                mode="snapshot", generation=new_state.generation, os=os_identity or OsIdentity(),
                packages=_sorted(current.values()),
            )
        else:
            previous = state.packages()
            added = [p for k, p in current.items() if k not in previous]
            removed = [p for k, p in previous.items() if k not in current]
            if not added and not removed:
                # The databases were touched but nothing changed: remember the new fingerprints only.
                new_state.generation = state.generation
                save_state(ctx, new_state)
                return []
            if len(added) + len(removed) >= len(current):
                report = InventoryReport(
                    mode="snapshot", generation=new_state.generation, os=os_identity or OsIdentity(),
                    packages=_sorted(current.values()),
                )
            else:
                report = InventoryReport(
                    mode="delta", generation=new_state.generation, base_generation=state.generation,
                    os=os_identity or OsIdentity(), added=_sorted(added), removed=_sorted(removed),
                )
        save_state(ctx, new_state)
        return [("inventory", report.model_dump(mode="json"))]
