"""Scans: a list of targets walked and scanned with progress, cancel, a scan record and bounded cost.

Cost bounds (Defender's ``ScanAvgCPULoadFactor`` idea): the scanning thread lowers its own CPU
priority (nice 10) and I/O priority (best-effort, lowest level) — Linux keeps both per thread — and
an optional rate cap (bytes/s, a token bucket) sleeps between files. Cancel is checked between files.
Paths are scanned as ``root`` + device path, reported as device paths.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from garrison.agent.protection.engine import Detection, Engine
from garrison.agent.protection.targets import full_targets, quick_targets, walk

log = logging.getLogger("garrison.agent.protection")

ScanType = Literal["Quick", "Full", "Custom"]
SCAN_TYPES: tuple[str, ...] = ("Quick", "Full", "Custom")
MAX_DETECTIONS = 1000  # a scan record keeps this many; the count says how many there were
MAX_NOTES = 200

_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "armv7l": 314, "ppc64le": 273, "s390x": 282, "riscv64": 30}
_IOPRIO_WHO_PROCESS, _IOPRIO_CLASS_BE = 1, 2


def lower_priority(nice: int = 10) -> dict[str, bool]:
    """Lower the calling thread's CPU and I/O priority (Linux: per thread). Returns what worked."""
    tid = threading.get_native_id()
    done = {"nice": False, "ionice": False}
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, nice))
        done["nice"] = True
    except OSError:
        pass
    number = _IOPRIO_SET.get(platform.machine())
    if number is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        done["ionice"] = libc.syscall(number, _IOPRIO_WHO_PROCESS, tid, (_IOPRIO_CLASS_BE << 13) | 7) == 0
    return done


@dataclass
class ScanRecord:
    """What a scan did: the result of ``RunAntiVirusScan`` and the protection history entry."""

    scan_id: str
    scan_type: str
    paths: list[str]
    started: str = ""
    ended: str = ""
    duration_s: float = 0.0
    state: str = "Running"  # Running | Completed | Cancelled | Failed
    files_scanned: int = 0
    bytes_scanned: int = 0
    errors: int = 0
    detections_count: int = 0
    detections: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=dict)
    priority: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[ScanRecord, str], None]


class RateCap:
    """At most ``bytes_per_s`` on average (bursts of one second); 0 means no cap."""

    def __init__(self, bytes_per_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.clock, self.sleep = bytes_per_s, clock, sleep
        self.allowance = bytes_per_s
        self.last = clock()
        self.slept = 0.0

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate) - n
        self.last = now
        if self.allowance < 0:
            wait = -self.allowance / self.rate
            self.slept += wait
            self.sleep(wait)


def resolve_targets(scan_type: str, paths: list[str], root: Path = Path("/")) -> tuple[list[str], list[str], bool]:
    """(start paths, paths never entered, stay on each start's file system) for a scan type."""
    if scan_type == "Quick":
        return quick_targets(root), [], False
    if scan_type == "Full":
        scan, skip = full_targets()
        return scan, skip, True
    if scan_type == "Custom":
        if not paths:
            raise ValueError("a Custom scan needs paths")
        if any(not p.startswith("/") for p in paths):
            raise ValueError("scan paths must be absolute")
        return list(paths), [], False
    raise ValueError(f"unknown scan type {scan_type!r} (Quick, Full or Custom)")


class Scan:
    def __init__(self, engine: Engine, scan_type: str, paths: list[str] | None = None, *,
                 root: Path = Path("/"), rate_bytes_per_s: float = 0, nice: int = 10,
                 exclude: list[str] | None = None, progress: Progress | None = None,
                 progress_every: float = 5.0) -> None:
        self.engine = engine
        self.root = root
        self.scan_type = scan_type
        self.cancelled = threading.Event()
        self.rate = RateCap(rate_bytes_per_s)
        self.nice = nice
        self.exclude = [e.rstrip("/") for e in exclude or []]
        self.progress = progress
        self.progress_every = progress_every
        self.starts, self.skip, self.one_fs = resolve_targets(scan_type, list(paths or []), root)
        self.record = ScanRecord(scan_id=str(uuid.uuid4()), scan_type=scan_type, paths=list(paths or []),
                                 engine=engine.version)

    def cancel(self) -> None:
        self.cancelled.set()

    def _excluded(self, path: str) -> bool:
        return any(path == e or path.startswith(e + "/") for e in self.exclude)

    def run(self) -> ScanRecord:
        rec = self.record
        rec.priority = lower_priority(self.nice) if self.nice else {}
        t0 = time.monotonic()
        rec.started = dt.datetime.now(dt.UTC).isoformat()
        last_progress = t0
        current = ""
        try:
            for path in walk(self.starts, self.root, self.skip + self.exclude, one_file_system=self.one_fs):
                if self.cancelled.is_set():
                    rec.state = "Cancelled"
                    break
                if self._excluded(path):
                    continue
                current = path
                self._scan_one(path)
                now = time.monotonic()
                if self.progress is not None and now - last_progress >= self.progress_every:
                    last_progress = now
                    self.progress(rec, current)
            else:
                rec.state = "Completed"
        except Exception as exc:  # the record says how the scan ended
            log.exception("scan %s failed", rec.scan_id)
            rec.state = "Failed"
            rec.incomplete.append(f"scan failed: {type(exc).__name__}: {exc}"[:500])
        rec.ended = dt.datetime.now(dt.UTC).isoformat()
        rec.duration_s = round(time.monotonic() - t0, 3)
        if self.progress is not None:
            self.progress(rec, current)
        return rec

    def _scan_one(self, path: str) -> None:
        rec = self.record
        local = str(self.root / path.lstrip("/")) if self.root != Path("/") else path
        verdict = self.engine.scan_file(local)
        if verdict.error:
            rec.errors += 1
            return
        rec.files_scanned += 1
        rec.bytes_scanned += verdict.scanned_bytes
        for d in verdict.detections:
            rec.detections_count += 1
            if len(rec.detections) < MAX_DETECTIONS:
                rec.detections.append(asdict(_device_path(d, local, path)))
        for note in verdict.incomplete:
            if len(rec.incomplete) < MAX_NOTES:
                rec.incomplete.append(note.replace(local, path, 1))
        self.rate.take(verdict.scanned_bytes)


def _device_path(d: Detection, local: str, device: str) -> Detection:
    if local == device or not d.path.startswith(local):
        return d
    return Detection(**{**asdict(d), "path": device + d.path[len(local):]})
