"""What the sensors know about processes, files, users and addresses.

* :class:`HashCache` — SHA256/SHA1/MD5 of a file, computed once per (device, inode, mtime,
  size): an image executed 5,000 times is hashed once.
* :class:`ProcessTable` — pid → :class:`ProcessInfo`, filled from exec events (complete even
  for processes that are gone) and, for processes the sensor did not see start, from /proc.
* :func:`ip_type` — the ``RemoteIPType``/``LocalIPType`` of an address.

The column helpers turn a process into the MDE columns (``FileName``, ``FolderPath``,
``InitiatingProcess…``); every table uses the same ones.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import os
import pwd
import re
import socket
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

HASH_MAX_BYTES = 64 * 1024 * 1024  # larger images are recorded without hashes
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_CONTAINER = re.compile(r"(?:docker|cri-containerd|crio|libpod|containerd)[-/:]([0-9a-f]{64})|/docker/([0-9a-f]{64})")


@dataclass(frozen=True)
class FileHashes:
    sha256: str
    sha1: str
    md5: str
    size: int


class HashCache:
    """Hashes by (dev, inode, mtime, size); a changed file gets a new key, so no stale hash."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = HASH_MAX_BYTES) -> None:
        self._cache: OrderedDict[tuple[int, int, int, int], FileHashes | None] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.computed = 0  # files actually read (the tests count re-hashes with it)

    def hashes(self, path: str, *, dir_fd: int | None = None) -> FileHashes | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        result = hash_file(path, self.max_bytes) if st.st_size <= self.max_bytes else None
        with self._lock:
            self.computed += 1
            self._cache[key] = result
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return result


def hash_file(path: str, max_bytes: int) -> FileHashes | None:
    h256, h1, h5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    return None
                h256.update(chunk)
                h1.update(chunk)
                h5.update(chunk)
    except OSError:
        return None
    return FileHashes(h256.hexdigest(), h1.hexdigest(), h5.hexdigest(), size)


class UserNames:
    """uid → account name, cached (a miss is retried after a minute: accounts get added)."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def name(self, uid: int | None) -> str:
        if uid is None or uid < 0:
            return ""
        name = self._names.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            if len(self._names) > 10_000:
                self._names.clear()
            self._names[uid] = name
        return name


def account_sid(uid: int | None) -> str:
    """Linux ``AccountSid``: the uid as a string (the events contract; MDE for Linux does the same)."""
    return "" if uid is None or uid < 0 else str(uid)


_BOOT: float | None = None


def boot_time() -> float:
    global _BOOT
    if _BOOT is None:
        try:
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("btime "):
                        _BOOT = float(line.split()[1])
                        break
        except OSError:
            pass
        _BOOT = _BOOT or 0.0
    return _BOOT


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class ProcessInfo:
    pid: int
    ppid: int = 0
    path: str = ""  # image (exe)
    cmdline: str = ""
    uid: int = -1
    start: float = 0.0  # seconds since the epoch
    container_id: str = ""
    columns: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # memo: its Initiating… columns

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def read_proc(pid: int) -> ProcessInfo | None:
    """A live process from /proc (None when it is gone)."""
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/stat", "rb") as f:
            stat = f.read()
        rest = stat[stat.rindex(b")") + 2:].split()
        ppid, start_ticks = int(rest[1]), int(rest[19])
        with open(f"{base}/status", "rb") as f:
            uid = -1
            for line in f:
                if line.startswith(b"Uid:"):
                    uid = int(line.split()[2])  # effective
                    break
        try:
            path = os.readlink(f"{base}/exe")
        except OSError:
            path = ""  # a kernel thread, or not ours to see
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = f.read(32768).rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except (OSError, ValueError, IndexError):
        return None
    return ProcessInfo(pid, ppid, path.removesuffix(" (deleted)"), cmdline, uid,
                       boot_time() + start_ticks / _CLK_TCK, container_of(pid))


# Processes whose children may start a container: their children's cgroup is read; every other
# process is in its parent's container (or in none), which saves a /proc read per exec.
CONTAINER_PARENTS = frozenset({"containerd-shim", "containerd-shim-runc-v2", "runc", "crun", "conmon",
                               "docker-init", "tini", "containerd", "dockerd", "podman", "systemd"})


def container_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read(8192)
    except OSError:
        return ""
    m = _CONTAINER.search(text)
    return (m.group(1) or m.group(2)) if m else ""


class ProcessTable:
    """Recently seen processes (bounded LRU), so the parent of a short-lived process is known."""

    def __init__(self, max_entries: int = 16384) -> None:
        self._procs: OrderedDict[int, ProcessInfo] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def put(self, info: ProcessInfo) -> None:
        with self._lock:
            self._procs[info.pid] = info
            self._procs.move_to_end(info.pid)
            while len(self._procs) > self.max_entries:
                self._procs.popitem(last=False)

    def get(self, pid: int) -> ProcessInfo | None:
        """What was seen of ``pid`` (its exec), else /proc (then remembered)."""
        if pid <= 0:
            return None
        with self._lock:
            info = self._procs.get(pid)
        if info is not None:
            return info
        info = read_proc(pid)
        if info is not None:
            self.put(info)
        return info

    def __len__(self) -> int:
        return len(self._procs)


# --- MDE columns ---------------------------------------------------------------------------

_PROCESS_COLS = ("FileName", "FolderPath", "ProcessId", "ProcessCommandLine", "ProcessCreationTime",
                 "AccountName", "AccountSid", "SHA256", "SHA1", "MD5", "FileSize")


def folder_of(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/" if "/" in path else ""


def image_columns(prefix: str, path: str, hashes: HashCache) -> dict[str, Any]:
    h = hashes.hashes(path) if path else None
    return {
        f"{prefix}FileName": path.rsplit("/", 1)[-1],
        f"{prefix}FolderPath": path if prefix else folder_of(path),
        f"{prefix}SHA256": h.sha256 if h else "",
        f"{prefix}SHA1": h.sha1 if h else "",
        f"{prefix}MD5": h.md5 if h else "",
        f"{prefix}FileSize": h.size if h else None,
    }


def initiating_columns(proc: ProcessInfo | None, table: ProcessTable, hashes: HashCache,
                       users: UserNames) -> dict[str, Any]:
    """The ``InitiatingProcess…`` columns of ``proc`` (and of its parent)."""
    if proc is None:
        return {}
    cols = image_columns("InitiatingProcess", proc.path, hashes)
    cols["InitiatingProcessFolderPath"] = folder_of(proc.path)
    parent = table.get(proc.ppid)
    cols.update({
        "InitiatingProcessId": proc.pid,
        "InitiatingProcessCommandLine": proc.cmdline,
        "InitiatingProcessCreationTime": iso(proc.start) if proc.start else None,
        "InitiatingProcessAccountName": users.name(proc.uid),
        "InitiatingProcessAccountSid": account_sid(proc.uid),
        "InitiatingProcessAccountDomain": short_hostname(),
        "InitiatingProcessParentId": proc.ppid,
        "InitiatingProcessParentFileName": parent.name if parent else "",
        "InitiatingProcessParentCreationTime": iso(parent.start) if parent and parent.start else None,
    })
    return cols


_HOST: str | None = None


def short_hostname() -> str:
    global _HOST
    if _HOST is None:
        _HOST = socket.gethostname().split(".")[0]
    return _HOST


@functools.lru_cache(maxsize=8192)
def ip_type(addr: str) -> str:
    """MDE's IP types: Loopback, Private, Public, Reserved, Multicast, Broadcast, LinkLocal, Unspecified,
    FourToSixMapping (the server fills the same ones when a row has none)."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "FourToSixMapping"
    if ip.is_loopback:
        return "Loopback"
    if ip.is_multicast:
        return "Multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "Broadcast"
    if ip.is_link_local:
        return "LinkLocal"
    if ip.is_unspecified:
        return "Unspecified"
    if ip.is_reserved:
        return "Reserved"
    if ip.is_private:
        return "Private"
    return "Public" if ip.is_global else "Reserved"
