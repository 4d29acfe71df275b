"""What a probe sees of the device: files under ``ctx.root``, remembered for the fingerprint,
and per-evaluation caches so that many checks share one parse of /etc/passwd or dpkg status."""

from __future__ import annotations

import glob as _glob
import gzip
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from garrison.agent.collectors.base import AgentContext

Status = Literal["pass", "fail", "not_applicable", "error"]
T = TypeVar("T")

MAX_READ_BYTES = 8 * 1024 * 1024
READ_CHUNK = 64 * 1024
# Paths whose mtime says nothing about their content: never part of the fingerprint.
VOLATILE_PREFIXES = ("/proc/", "/sys/")


class ProbeError(Exception):
    """The probe could not read what it needs; the result becomes ``error`` with this message."""


@dataclass(frozen=True)
class Outcome:
    status: Status
    value: str | None = None
    file: str | None = None
    line: int | None = None
    message: str = ""

    @classmethod
    def ok(cls, message: str = "", **kw: Any) -> Outcome:
        return cls("pass", message=message, **kw)

    @classmethod
    def bad(cls, message: str = "", **kw: Any) -> Outcome:
        return cls("fail", message=message, **kw)

    @classmethod
    def na(cls, message: str = "", **kw: Any) -> Outcome:
        return cls("not_applicable", message=message, **kw)

    @classmethod
    def verdict(cls, ok: bool, message: str = "", **kw: Any) -> Outcome:
        return cls("pass" if ok else "fail", message=message, **kw)

    @classmethod
    def err(cls, message: str, **kw: Any) -> Outcome:
        return cls("error", message=message, **kw)


@dataclass(frozen=True)
class OsFacts:
    id: str
    id_like: tuple[str, ...]
    version_id: str
    family: str  # debian, rhel or linux

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.id_like)


def _family(ids: tuple[str, ...]) -> str:
    if any(i in ("debian", "ubuntu") for i in ids):
        return "debian"
    if any(i in ("rhel", "centos", "fedora", "rocky", "almalinux", "ol") for i in ids):
        return "rhel"
    return "linux"


class Env:
    """One evaluation's view of the device."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.read_paths: set[str] = set()  # device paths read or listed, for the fingerprint
        self._cache: dict[Any, Any] = {}

    # --- paths ---------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """True when ``root`` is the real root: only then may fixed system commands be run."""
        return self.ctx.root.resolve() == Path("/")

    def path(self, device_path: str) -> Path:
        return self.ctx.path(device_path)

    def touch(self, device_path: str) -> None:
        if not device_path.startswith(VOLATILE_PREFIXES):
            self.read_paths.add(device_path)

    def device_path(self, host_path: Path) -> str:
        """Inverse of :meth:`path`: '/etc/ssh/sshd_config' for a path under root."""
        rel = os.path.relpath(host_path, self.ctx.root)
        return "/" + rel if rel != "." else "/"

    def glob(self, pattern: str) -> list[str]:
        """Device paths matching a glob pattern, sorted; the directories are watched."""
        if not _glob.has_magic(pattern):
            self.touch(pattern)
            return [pattern] if self.path(pattern).exists() or self.path(pattern).is_symlink() else []
        parent = pattern.rsplit("/", 1)[0] or "/"
        if not _glob.has_magic(parent):
            self.touch(parent)
        hits = _glob.glob(str(self.path(pattern)))
        return sorted(self.device_path(Path(h)) for h in hits)

    def exists(self, device_path: str) -> bool:
        self.touch(device_path)
        return os.path.lexists(self.path(device_path))

    def listdir(self, device_path: str) -> list[str] | None:
        self.touch(device_path)
        try:
            return sorted(os.listdir(self.path(device_path)))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise ProbeError(f"cannot list {device_path}: {exc.strerror}") from exc

    def stat(self, device_path: str, *, follow: bool = True) -> os.stat_result | None:
        """``None`` when the path does not exist; ProbeError when it cannot be examined."""
        self.touch(device_path)
        try:
            return os.stat(self.path(device_path), follow_symlinks=follow)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProbeError(f"cannot examine {device_path}: {exc.strerror}") from exc

    def readlink(self, device_path: str) -> str | None:
        self.touch(device_path)
        try:
            return os.readlink(self.path(device_path))
        except (FileNotFoundError, OSError):
            return None

    def read_text(self, device_path: str) -> str | None:
        """File content, ``None`` when it does not exist; ProbeError when it cannot be read."""
        key = ("read", device_path)
        if key in self._cache:
            return self._cache[key]
        self.touch(device_path)
        p = self.path(device_path)
        try:
            if not stat.S_ISREG(os.stat(p).st_mode):
                # A FIFO or device would block or never end; configuration is in regular files.
                raise ProbeError(f"{device_path} is not a regular file")
            with open(p, "rb") as fh:
                data = _read_bounded(fh)
        except (FileNotFoundError, NotADirectoryError):
            self._cache[key] = None
            return None
        except IsADirectoryError as exc:
            raise ProbeError(f"{device_path} is a directory") from exc
        except PermissionError as exc:
            raise ProbeError(f"cannot read {device_path}: permission denied") from exc
        except OSError as exc:
            raise ProbeError(f"cannot read {device_path}: {exc.strerror}") from exc
        if len(data) > MAX_READ_BYTES:
            raise ProbeError(f"{device_path} is larger than {MAX_READ_BYTES} bytes")
        if device_path.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise ProbeError(f"cannot decompress {device_path}") from exc
        text = data.decode("utf-8", errors="replace")
        self._cache[key] = text
        return text

    def require_text(self, device_path: str) -> str:
        text = self.read_text(device_path)
        if text is None:
            raise ProbeError(f"{device_path} does not exist")
        return text

    # --- caches --------------------------------------------------------------------------

    def cached(self, key: Any, fn: Callable[[], T]) -> T:
        """Compute once per evaluation; a ProbeError is cached too, so every user sees it."""
        if key in self._cache:
            hit = self._cache[key]
            if isinstance(hit, ProbeError):
                raise hit
            return hit
        try:
            value = fn()
        except ProbeError as exc:
            self._cache[key] = exc
            raise
        self._cache[key] = value
        return value

    # --- facts ---------------------------------------------------------------------------

    def os_facts(self) -> OsFacts:
        return self.cached("os", self._load_os)

    def _load_os(self) -> OsFacts:
        text = self.read_text("/etc/os-release")
        if text is None:
            text = self.read_text("/usr/lib/os-release") or ""
        kv: dict[str, str] = {}
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                kv[k.strip()] = v.strip().strip("\"'")
        os_id = kv.get("ID", "").lower()
        like = tuple(kv.get("ID_LIKE", "").lower().split())
        return OsFacts(os_id, like, kv.get("VERSION_ID", ""), _family((os_id, *like)))


def _read_bounded(fh: Any) -> bytes:
    # Small reads: /proc/sys handlers allocate a kernel buffer of the requested size.
    chunks: list[bytes] = []
    total = 0
    while total <= MAX_READ_BYTES:
        chunk = fh.read(READ_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def mode_str(mode: int) -> str:
    return format(stat.S_IMODE(mode), "04o")
