"""The ``runtime`` collector: which installed packages are actually in use.

Executables (``/proc/*/exe``) and executable mappings (``/proc/*/maps``: shared
libraries, the program itself) of running processes are mapped to their owning package
through the package database's file lists — dpkg's ``/var/lib/dpkg/info/*.list``, apk's
``F:``/``R:`` lines, and the ``RECORD`` of Python distributions for their native
extensions (``*.so``; pure-Python code is read, not mapped, and stays unseen) — and each
package is reported with when it was last seen running.

Cheap by design: the path → package index is built once per package-database change and
kept in memory; a run is then one pass over ``/proc``. A package is reported when first
seen and again at most every :attr:`RuntimeCollector.refresh` seconds while it keeps
running. Unprivileged, the agent sees only its own user's processes (health says so).
rpm file lists are not indexed (that needs the rpm binary per path).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from garrison.agent.collectors.base import AgentContext, Collector, register_collector
from garrison.agent.collectors.packages.base import device_path, root_is_host
from garrison.agent.collectors.packages.python import PythonSource, library_dirs
from garrison.agent.spool import RECREATE
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats.apk import iter_apk_files
from garrison.inventory.pypi import normalize_pypi_name
from garrison.protocol import MAX_PACKAGES, CollectorHealth, PackageUse, RuntimeReport

DPKG_INFO = "/var/lib/dpkg/info"
DPKG_STATUS = "/var/lib/dpkg/status"
APK_INSTALLED = "/lib/apk/db/installed"
STATE_FILE = "runtime.json"
MAX_PROCESSES = 100_000
MAX_MAPS_LINES = 200_000  # per process; a large JVM has tens of thousands
MAX_LIST_BYTES = 64 * 1024 * 1024
FORGET_AFTER = dt.timedelta(days=30)  # reported-at entries older than this are dropped from state
# Never executable code: skipping these keeps the index small (docs, man pages, locales, headers).
_SKIP_PREFIXES = (
    "/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/info/", "/usr/include/",
    "/usr/share/zoneinfo/", "/usr/share/i18n/", "/usr/share/icons/", "/usr/share/lintian/", "/etc/",
)
_INDEX_KEY = "runtime.index"
_STATE_KEY = "runtime.reported"


@dataclass
class OwnerIndex:
    fingerprint: str
    owners: list[tuple[str, str]] = field(default_factory=list)  # (manager, package name)
    paths: dict[str, int] = field(default_factory=dict)  # device path → position in owners

    def owner(self, path: str) -> tuple[str, str] | None:
        i = self.paths.get(path)
        return self.owners[i] if i is not None else None


def _stat_token(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def index_fingerprint(ctx: AgentContext) -> str:
    # dpkg replaces a package's .list by rename, which changes the info directory's mtime.
    stats = "|".join(_stat_token(ctx.path(p)) for p in (DPKG_INFO, DPKG_STATUS, APK_INSTALLED))
    return f"{stats}|{PythonSource().fingerprint(ctx) or '-'}"


def _usr_aliases(ctx: AgentContext) -> dict[str, str]:
    """Top-level directories that are symlinks (merged /usr: ``/lib`` → ``/usr/lib``).

    Package lists name ``/lib/x86_64-linux-gnu/libc.so.6``; the kernel reports the mapping
    by its real path ``/usr/lib/x86_64-linux-gnu/libc.so.6``.
    """
    out: dict[str, str] = {}
    try:
        names = os.listdir(ctx.root)
    except OSError:
        return out
    for name in names:
        link = ctx.root / name
        if os.path.islink(link):
            target = os.readlink(link)
            real = os.path.normpath(target if target.startswith("/") else "/" + target)
            if real != "/" + name:
                out["/" + name + "/"] = real + "/"
    return out


def build_index(ctx: AgentContext) -> OwnerIndex:
    index = OwnerIndex(fingerprint=index_fingerprint(ctx))
    aliases = _usr_aliases(ctx)
    owner_ids: dict[tuple[str, str], int] = {}

    def add(path: str, owner: tuple[str, str]) -> None:
        if path.startswith(_SKIP_PREFIXES):
            return
        i = owner_ids.get(owner)
        if i is None:
            i = owner_ids[owner] = len(index.owners)
            index.owners.append(owner)
        index.paths.setdefault(path, i)
        top = path.find("/", 1)
        if top > 0:
            alias = aliases.get(path[: top + 1])
            if alias:
                index.paths.setdefault(alias + path[top + 1 :], i)

    info = ctx.path(DPKG_INFO)
    try:
        lists = [e for e in os.scandir(info) if e.name.endswith(".list")]
    except OSError:
        lists = []
    for entry in lists:
        # libc6:amd64.list → libc6 (multiarch packages carry their arch in the file name)
        pkg = entry.name[: -len(".list")].split(":", 1)[0]
        try:
            with open(entry.path, "rb") as f:
                data = f.read(MAX_LIST_BYTES)
        except OSError:
            continue
        for raw in data.decode("utf-8", errors="replace").split("\n"):
            if raw.startswith("/") and raw != "/.":
                add(raw, ("dpkg", pkg))
    apk_db = ctx.path(APK_INSTALLED)
    if os.path.isfile(apk_db):
        try:
            for path, pkg in iter_apk_files(apk_db.read_bytes()):
                add(path, ("apk", pkg))
        except (OSError, InventoryParseError):
            pass
    for directory in library_dirs(ctx):
        _index_python(ctx, directory, add)
    return index


def _index_python(ctx: AgentContext, directory: Path, add: Callable[[str, tuple[str, str]], None]) -> None:
    """Native extensions (``*.so``) of each distribution, from its ``RECORD``."""
    # The kernel names mappings by their real path; under a prepared tree, symlinks point outside it.
    base = os.path.realpath(directory) if root_is_host(ctx) else device_path(ctx, directory)
    try:
        infos = [e for e in os.scandir(directory) if e.name.endswith(".dist-info")]
    except OSError:
        return
    for info in infos:
        record = Path(info.path) / "RECORD"
        meta = Path(info.path) / "METADATA"
        try:
            with open(record, "rb") as f:
                data = f.read(MAX_LIST_BYTES).decode("utf-8", errors="replace")
            # The dist-info directory name is escaped (PEP 427); METADATA's Name is the real one.
            with open(meta, "rb") as f:
                head = f.read(16 * 1024).decode("utf-8", errors="replace")
        except OSError:
            continue
        name = next((ln[5:].strip() for ln in head.split("\n") if ln.startswith("Name:")), "")
        if not name:
            continue
        owner = ("python", normalize_pypi_name(name))
        for line in data.split("\n"):
            rel = line.split(",", 1)[0]
            if ".so" in rel.rsplit("/", 1)[-1]:
                add(os.path.normpath(f"{base}/{rel}"), owner)


def _clean(path: str) -> str:
    return path.removesuffix(" (deleted)")


@dataclass
class ProcScan:
    paths: set[str] = field(default_factory=set)
    processes: int = 0  # processes whose executable or mappings could be read
    denied: int = 0  # processes we may not look into
    other_namespace: int = 0  # processes in another mount namespace (containers): their paths are not ours


def scan_processes(ctx: AgentContext) -> ProcScan:
    """Executables and executable file mappings of the processes under ``ctx.root``'s proc."""
    scan = ProcScan()
    proc = ctx.path("/proc")
    try:
        pids = [e.name for e in os.scandir(proc) if e.name.isdigit()][:MAX_PROCESSES]
    except OSError:
        return scan
    try:
        own_ns: str | None = os.readlink(proc / "self/ns/mnt")
    except OSError:
        own_ns = None  # a prepared tree has no namespaces: take every process
    for pid in pids:
        seen = False
        base = proc / pid
        if own_ns is not None:
            try:
                if os.readlink(base / "ns/mnt") != own_ns:
                    scan.other_namespace += 1
                    continue
            except OSError:
                pass  # not permitted or gone: the reads below say which
        try:
            scan.paths.add(_clean(os.readlink(base / "exe")))
            seen = True
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                scan.denied += 1
                continue
        try:
            with open(base / "maps", encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f):
                    if n >= MAX_MAPS_LINES:
                        break
                    # address perms offset dev inode pathname
                    parts = line.split(None, 5)
                    if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                        scan.paths.add(_clean(parts[5].rstrip("\n")))
                        seen = True
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                scan.denied += 1
                continue
        scan.processes += seen
    return scan


def _load_reported(ctx: AgentContext) -> dict[str, dt.datetime]:
    cached = ctx.memory.get(_STATE_KEY)
    if isinstance(cached, dict):
        return cached
    out: dict[str, dt.datetime] = {}
    try:
        raw = json.loads((ctx.state_dir / STATE_FILE).read_bytes())
        for key, when in raw.get("reported", {}).items():
            out[str(key)] = dt.datetime.fromisoformat(when)
    except (OSError, ValueError, TypeError, AttributeError):
        out = {}
    ctx.memory[_STATE_KEY] = out
    return out


def _save_reported(ctx: AgentContext, reported: dict[str, dt.datetime]) -> None:
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"format": 1, "reported": {k: v.isoformat() for k, v in reported.items()}}, f)
    os.replace(tmp, path)


@register_collector
class RuntimeCollector(Collector):
    name = "runtime"
    drop_rank = RECREATE  # sent again in full on the next run
    kinds = ("runtime",)
    interval = 120
    refresh = 3600  # seconds before a package still running is reported again

    def __init__(self) -> None:
        self.health = CollectorHealth(ok=True)

    def index(self, ctx: AgentContext) -> OwnerIndex:
        cached = ctx.memory.get(_INDEX_KEY)
        fp = index_fingerprint(ctx)
        if isinstance(cached, OwnerIndex) and cached.fingerprint == fp:
            return cached
        index = build_index(ctx)
        ctx.memory[_INDEX_KEY] = index
        return index

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        now = dt.datetime.now(dt.UTC)
        notes: list[str] = []
        index = self.index(ctx)
        if not index.paths:
            self.health = CollectorHealth(
                ok=True, error="no dpkg or apk file lists found: nothing to map processes to", last_run=now
            )
            return []
        scan = scan_processes(ctx)
        if not ctx.is_root:
            notes.append(f"running unprivileged: only the agent user's own processes are visible "
                         f"({scan.processes} seen, {scan.denied} denied)")
        if scan.other_namespace:
            notes.append(f"{scan.other_namespace} processes in other mount namespaces (containers) not mapped")
        used = {owner for path in scan.paths if (owner := index.owner(path)) is not None}
        reported = _load_reported(ctx)
        due = sorted(
            o for o in used
            if (last := reported.get(f"{o[0]}/{o[1]}")) is None or (now - last).total_seconds() >= self.refresh
        )[:MAX_PACKAGES]
        self.health = CollectorHealth(ok=True, error="; ".join(notes) or None, last_run=now)
        if not due:
            return []
        report = RuntimeReport(packages=[PackageUse(manager=m, name=n, last_seen=now) for m, n in due])
        for m, n in due:
            reported[f"{m}/{n}"] = now
        for key in [k for k, v in reported.items() if now - v > FORGET_AFTER]:
            del reported[key]
        _save_reported(ctx, reported)
        return [("runtime", report.model_dump(mode="json"))]
