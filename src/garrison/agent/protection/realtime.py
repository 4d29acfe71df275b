"""Real-time protection with fanotify: a file is scanned before it is executed, and after it is written.

* ``FAN_OPEN_EXEC_PERM``: the kernel holds the ``execve`` (or ``mmap`` exec open) until the agent answers.
  A malicious file gets ``FAN_DENY`` (the caller sees ``EPERM``) in mode ``block``; in ``audit`` it is
  allowed and reported. ``FAN_CLOSE_WRITE``: a file just written is scanned (and its cached verdict
  dropped), so a dropper's payload is reported before anyone runs it.
* Verdict cache by (device, inode, size, mtime, ctime): a clean binary is scanned once; the second
  execution costs a dictionary look-up. ctime is part of the key because no one can set it (``utime``
  can fake mtime; any write or chmod moves ctime).
* Fail open: any error while deciding allows the execution and is counted (``failures``) — a broken
  scanner must never stop the machine. Stopping closes the fanotify descriptor, which makes the kernel
  allow whatever was still waiting.
* Marks: directories (``FAN_EVENT_ON_CHILD``: the files directly inside) or, with ``mount=True``, whole
  mounts. Needs root (``CAP_SYS_ADMIN``) and a kernel with ``CONFIG_FANOTIFY_ACCESS_PERMISSIONS``.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Self

from garrison.agent.protection.engine import Detection, Engine

log = logging.getLogger("garrison.agent.protection.realtime")

FAN_CLOEXEC, FAN_NONBLOCK, FAN_CLASS_CONTENT = 0x1, 0x2, 0x4
FAN_MARK_ADD, FAN_MARK_MOUNT = 0x1, 0x10
FAN_CLOSE_WRITE, FAN_OPEN_EXEC_PERM, FAN_EVENT_ON_CHILD = 0x8, 0x40000, 0x08000000
FAN_ALLOW, FAN_DENY = 0x1, 0x2
FAN_NOFD = -1
AT_FDCWD = -100
_METADATA = struct.Struct("<IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_RESPONSE = struct.Struct("<iI")  # fd, response
_FANOTIFY_METADATA_VERSION = 3

Mode = Literal["block", "audit"]
CacheKey = tuple[int, int, int, int, int]


@dataclass
class RealTimeStats:
    exec_events: int = 0
    write_events: int = 0
    scans: int = 0
    cache_hits: int = 0
    blocked: int = 0
    audited: int = 0
    failures: int = 0  # decisions that failed and were allowed (fail open)
    detections: list[Detection] = field(default_factory=list)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    return libc


class RealTimeProtection:
    def __init__(self, engine: Engine, paths: list[str], *, mode: Mode = "block", mount: bool = False,
                 on_detection: Callable[[Detection, str, int], None] | None = None,
                 cache_size: int = 65536) -> None:
        self.engine, self.paths, self.mode, self.mount = engine, paths, mode, mount
        self.on_detection = on_detection
        self.stats = RealTimeStats()
        self.cache: OrderedDict[CacheKey, tuple[Detection, ...]] = OrderedDict()  # key → detections (() = clean)
        self.cache_size = cache_size
        self._fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        libc = _libc()
        fd = libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, os.O_RDONLY | os.O_LARGEFILE)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"fanotify_init: {os.strerror(err)}")
        self._fd = fd
        mask = FAN_OPEN_EXEC_PERM | FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD
        flags = FAN_MARK_ADD | (FAN_MARK_MOUNT if self.mount else 0)
        for path in self.paths:
            if libc.fanotify_mark(fd, flags, mask, AT_FDCWD, path.encode()) < 0:
                err = ctypes.get_errno()
                self.stop()
                raise OSError(err, f"fanotify_mark {path}: {os.strerror(err)}")
        self._thread = threading.Thread(target=self._run, name="garrison-realtime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._fd >= 0:
            os.close(self._fd)  # the kernel allows every event still waiting for an answer
            self._fd = -1

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the event loop ------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            try:
                buf = os.read(self._fd, 64 * _METADATA.size)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                log.error("fanotify read failed: %s", exc)
                return
            offset = 0
            while offset + _METADATA.size <= len(buf):
                event_len, vers, _r, _mlen, mask, fd, pid = _METADATA.unpack_from(buf, offset)
                offset += max(event_len, _METADATA.size)
                if vers != _FANOTIFY_METADATA_VERSION or fd == FAN_NOFD:
                    continue
                try:
                    self._handle(mask, fd, pid)
                finally:
                    os.close(fd)

    def _respond(self, fd: int, response: int) -> None:
        os.write(self._fd, _RESPONSE.pack(fd, response))

    def _handle(self, mask: int, fd: int, pid: int) -> None:
        if mask & FAN_OPEN_EXEC_PERM:
            self.stats.exec_events += 1
            response = FAN_ALLOW
            try:
                threat = self._verdict(fd, pid, executing=True)
                if threat:
                    if self.mode == "block":
                        response = FAN_DENY
                        self.stats.blocked += 1
                    else:
                        self.stats.audited += 1
            except Exception:  # fail open: the machine must keep running
                self.stats.failures += 1
                log.exception("real-time verdict failed: execution allowed")
            self._respond(fd, response)
        elif mask & FAN_CLOSE_WRITE:
            self.stats.write_events += 1
            try:
                self._verdict(fd, pid, executing=False)
            except Exception:  # a failed scan after write is counted, never fatal
                self.stats.failures += 1
                log.exception("real-time scan after write failed")

    def _verdict(self, fd: int, pid: int, *, executing: bool) -> str:
        """The threat name of the open file (\"\" when clean), from the cache or a scan; reports detections."""
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock:
            cached = self.cache.get(key)
            if cached is not None:
                self.cache.move_to_end(key)
        if cached is not None and executing:
            self.stats.cache_hits += 1
            detections = cached
        else:
            path = os.readlink(f"/proc/self/fd/{fd}")
            verdict = self.engine.scan_fd(fd, path)
            self.stats.scans += 1
            if verdict.error:
                raise OSError(verdict.error)
            detections = tuple(verdict.detections)
            with self._lock:
                self.cache[key] = detections
                self.cache.move_to_end(key)
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        action = ("Blocked" if self.mode == "block" else "Audited") if executing else "Detected"
        for d in detections:
            self.stats.detections.append(d)
            if self.on_detection is not None:
                self.on_detection(d, action, pid)
        return detections[0].threat_name if detections else ""
