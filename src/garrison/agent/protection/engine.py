"""The scan engine: one file (or archive member) through every detection engine.

Order per file: the EICAR test convention, hash reputation, YARA (the rule pack), then, for an
archive, its members (to a bounded depth and size, :mod:`.archives`), then clamd when present.
Files are opened without following symlinks and without blocking (a FIFO never hangs the scan);
only regular files are scanned. The file is hashed by streaming and matched by YARA through
``/proc/self/fd`` (libyara maps it), so a large file costs page cache, not agent memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import pwd
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any

import yara

from garrison.agent.protection.archives import ArchiveLimits, Budget, LimitReached, kind_of, members
from garrison.agent.protection.clamd import Clamd
from garrison.agent.protection.hashes import FileHashes, HashReputation
from garrison.agent.protection.rulepack import RulePack
from garrison.agent.protection.targets import is_process_image

# The EICAR test file (eicar.org): these 68 bytes at the start, optionally followed by white space,
# 128 bytes at most in all. Defender's name for it.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_THREAT = "Virus:DOS/EICAR_Test_File"
ARCHIVE_BOMB_THREAT = "Heuristic:Archive/Bomb"
MATCH_TIMEOUT = 60  # seconds of YARA per file (libyara's own timeout)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Detection:
    threat_name: str
    engine: str  # eicar | hash | yara | clamav | archive
    path: str  # the file; for an archive member "archive.zip!member"
    sha256: str = ""
    sha1: str = ""
    md5: str = ""
    size: int = 0
    rule: str = ""  # YARA namespace.rule, or the list entry's comment


@dataclass
class FileVerdict:
    path: str
    size: int = 0
    hashes: FileHashes | None = None
    detections: list[Detection] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # limits reached, timeouts: what was not fully scanned
    error: str = ""
    scanned_bytes: int = 0


def is_eicar(head: bytes, size: int) -> bool:
    return size <= 128 and head.startswith(EICAR) and not head[len(EICAR):size].strip()


@lru_cache(maxsize=256)
def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _filetype(head: bytes) -> str:
    # LOKI's names for the magic numbers signature-base's rules test ("EXE", "ELF").
    if head.startswith(b"MZ"):
        return "EXE"
    if head.startswith(b"\x7fELF"):
        return "ELF"
    return ""


def _stream_hashes(f: IO[bytes]) -> tuple[FileHashes, bytes, int]:
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    head = b""
    size = 0
    while chunk := f.read(_CHUNK):
        if not head:
            head = chunk[:512]
        md5.update(chunk)
        sha1.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
    return FileHashes(md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest()), head, size


class Engine:
    def __init__(self, pack: RulePack | list[RulePack] | None = None, hashes: HashReputation | None = None,
                 clamd: Clamd | None = None, limits: ArchiveLimits | None = None,
                 max_file_bytes: int = 256 << 20) -> None:
        self.packs: list[RulePack] = pack if isinstance(pack, list) else [pack] if pack is not None else []
        self.hashes = hashes if hashes is not None else HashReputation()
        self.clamd = clamd
        self.limits = limits or ArchiveLimits()
        self.max_file_bytes = max_file_bytes  # YARA/archives/clamd beyond this size: hashed only

    @property
    def version(self) -> dict[str, Any]:
        """What the engine runs, for device health and the scan record."""
        return {"rulePacks": [p.version for p in self.packs], "rules": sum(p.rule_count for p in self.packs),
                "hashes": len(self.hashes), "yara": yara.__version__, "clamd": bool(self.clamd)}

    # --- a file on disk ------------------------------------------------------------------------

    def scan_file(self, path: str) -> FileVerdict:
        # Never through a symlink — except a process's own image link (/proc/<pid>/exe), which reaches
        # the executable even after it was deleted.
        nofollow = 0 if is_process_image(path) else os.O_NOFOLLOW
        try:
            fd = os.open(path, os.O_RDONLY | nofollow | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            return FileVerdict(path, error=f"{type(exc).__name__}: {exc.strerror}")
        return self._scan_open(fd, path)

    def scan_fd(self, fd: int, path: str) -> FileVerdict:
        """Scan an open file (a fanotify event's descriptor); ``fd`` stays open (a duplicate is used)."""
        return self._scan_open(os.dup(fd), path)

    def _scan_open(self, fd: int, path: str) -> FileVerdict:
        verdict = FileVerdict(path)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                verdict.error = "not a regular file"
                return verdict
            try:
                f.seek(0)
                hashes, head, size = _stream_hashes(f)
            except OSError as exc:
                verdict.error = f"{type(exc).__name__}: {exc.strerror}"
                return verdict
            verdict.size, verdict.hashes, verdict.scanned_bytes = size, hashes, size
            self._simple(verdict, path, head, size, hashes)
            if size > self.max_file_bytes:
                verdict.incomplete.append(f"{path}: larger than {self.max_file_bytes} bytes (hashed only)")
                return verdict
            for pack in self.packs:
                self._yara(verdict, path, head, size, hashes,
                           lambda ext, rules=pack.rules: rules.match(f"/proc/self/fd/{fd}", externals=ext,
                                                                     timeout=MATCH_TIMEOUT),
                           owner=_owner(st.st_uid))
            kind = kind_of(head)
            if kind is not None:
                f.seek(0)
                self._archive(verdict, f, kind, path, 1, Budget(self.limits), size)
            if self.clamd is not None:
                f.seek(0)
                self._clamd(verdict, f, path, hashes, size)
        return verdict

    # --- bytes (an archive member) -------------------------------------------------------------

    def scan_bytes(self, data: bytes, display: str, depth: int = 0, budget: Budget | None = None) -> FileVerdict:
        verdict = FileVerdict(display, size=len(data), scanned_bytes=len(data))
        self._member(verdict, data, display, depth, budget or Budget(self.limits))
        return verdict

    def _member(self, verdict: FileVerdict, data: bytes, display: str, depth: int, budget: Budget) -> None:
        hashes = FileHashes.of(data)
        head = data[:512]
        self._simple(verdict, display, head, len(data), hashes)
        name = display.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
        for pack in self.packs:
            self._yara(verdict, display, head, len(data), hashes,
                       lambda ext, rules=pack.rules: rules.match(data=data, externals=ext, timeout=MATCH_TIMEOUT),
                       name=name)
        kind = kind_of(head)
        if kind is not None:
            self._archive(verdict, io.BytesIO(data), kind, display, depth + 1, budget, len(data))

    # --- the engines ---------------------------------------------------------------------------

    def _simple(self, verdict: FileVerdict, path: str, head: bytes, size: int, hashes: FileHashes) -> None:
        found: dict[str, Any] = {"path": path, "sha256": hashes.sha256, "sha1": hashes.sha1, "md5": hashes.md5, "size": size}
        if is_eicar(head, size):
            verdict.detections.append(Detection(EICAR_THREAT, "eicar", **found))
        listed = self.hashes.lookup(hashes)
        if listed is not None:
            verdict.detections.append(Detection(listed, "hash", rule=listed, **found))

    def _yara(self, verdict: FileVerdict, path: str, head: bytes, size: int, hashes: FileHashes,
              match: Any, owner: str = "", name: str | None = None) -> None:
        filename = name if name is not None else os.path.basename(path)
        ext = {"filename": filename, "filepath": os.path.dirname(path),
               "extension": os.path.splitext(filename)[1].lower(), "filetype": _filetype(head), "owner": owner}
        try:
            matches = match(ext)
        except yara.TimeoutError:
            verdict.incomplete.append(f"{path}: YARA timed out after {MATCH_TIMEOUT} s")
            return
        except yara.Error as exc:
            verdict.incomplete.append(f"{path}: YARA: {exc}"[:500])
            return
        for m in matches:
            verdict.detections.append(Detection(m.rule, "yara", path, hashes.sha256, hashes.sha1, hashes.md5, size,
                                                rule=f"{m.namespace}.{m.rule}"))

    def _archive(self, verdict: FileVerdict, fileobj: IO[bytes], kind: str, display: str, depth: int,
                 budget: Budget, compressed: int) -> None:
        if depth > self.limits.max_depth:
            verdict.incomplete.append(f"{display}: nested deeper than {self.limits.max_depth} archives")
            return
        try:
            for name, data in members(fileobj, kind, budget, compressed):
                verdict.scanned_bytes += len(data)
                self._member(verdict, data, f"{display}!{name}" if name else f"{display}!", depth, budget)
        except LimitReached as exc:
            if exc.bomb:
                verdict.detections.append(Detection(ARCHIVE_BOMB_THREAT, "archive", display, size=compressed,
                                                    rule=f"limit {exc.reason}"))
            verdict.incomplete.append(f"{display}: archive limit reached ({exc.reason})")
        except ValueError as exc:
            verdict.incomplete.append(f"{display}: unreadable archive ({exc})"[:500])

    def _clamd(self, verdict: FileVerdict, f: IO[bytes], path: str, hashes: FileHashes, size: int) -> None:
        assert self.clamd is not None
        try:
            found = self.clamd.scan_stream(f)
        except (OSError, ValueError) as exc:
            verdict.incomplete.append(f"{path}: clamd: {exc}"[:500])
            return
        if found:
            verdict.detections.append(Detection(found, "clamav", path, hashes.sha256, hashes.sha1, hashes.md5, size,
                                                rule=found))
