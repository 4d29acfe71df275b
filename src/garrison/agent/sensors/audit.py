"""The audit sensor: processes, connections, file changes, logons and the rest from audit netlink.

One netlink socket, two threads. The *reader* only receives records and groups them into
events (it must keep up with the kernel: what it does not read, the kernel drops and counts
as ``lost``); the *worker* turns events into MDE rows (hashes, /proc, parents) through the
handler registered for the event's rule key or record type. Why audit and not the process
connector or fanotify: docs/sensor.md (measured).

Rules are installed with keys ``garrison_<kind>/<agent pid>``, each excluding the agent's own
pid in the kernel, and removed on stop; at start the rules of agents that are gone (a crash
leaves them behind) are removed too. Two agents on one machine (tests, the demo) do not remove
each other's rules: the second reads the multicast copy of the records.
"""

from __future__ import annotations

import collections
import ctypes
import datetime as dt
import errno
import glob
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from garrison.agent.sensors import audit_netlink as an
from garrison.agent.sensors.audit_netlink import AuditEvent, Rule, parse_fields, unhex
from garrison.agent.sensors.base import Row, Sensor, SensorContext, register_sensor
from garrison.agent.sensors.procinfo import (
    CONTAINER_PARENTS,
    ProcessInfo,
    account_sid,
    container_of,
    folder_of,
    image_columns,
    initiating_columns,
    ip_type,
    iso,
    short_hostname,
)

log = logging.getLogger("garrison.agent.sensors.audit")

KEY_PREFIX = "garrison_"
NET_CALLS = ("connect", "accept", "accept4", "bind")
DEFAULT_FILE_PATHS = ("/etc", "/bin", "/usr/bin", "/usr/lib/systemd", "/var/spool/cron", "/root",
                      "/home/*/.ssh", "/tmp", "/dev/shm")
FILE_HASH_MAX = 16 * 1024 * 1024
FILE_SETTLE = 0.5  # seconds a file event waits (and coalesces) before its content is hashed
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
EINPROGRESS = errno.EINPROGRESS
RENAMES = {82, 264, 316}  # rename, renameat, renameat2
ATTR_CHANGES = {90, 91, 92, 93, 94, 260, 268, 188, 189, 190}  # chmod/chown/…/setxattr families
PERSISTENCE = (  # (path prefix, DeviceEvents ActionType) for persistence written
    ("/var/spool/cron/", "CronJobWritten"), ("/etc/cron", "CronJobWritten"), ("/etc/crontab", "CronJobWritten"),
    ("/etc/systemd/system/", "SystemdUnitWritten"), ("/usr/lib/systemd/system/", "SystemdUnitWritten"),
    ("/lib/systemd/system/", "SystemdUnitWritten"), ("/etc/systemd/user/", "SystemdUnitWritten"),
)

Handler = Callable[["AuditSensor", AuditEvent, dict[str, str]], None]
KEY_HANDLERS: dict[str, Handler] = {}  # rule key → handler of the event
RECORD_HANDLERS: dict[int, Handler] = {}  # record type (of events without a rule key) → handler


def on_key(key: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        KEY_HANDLERS[key] = fn
        return fn
    return deco


def on_record(*types: int) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for t in types:
            RECORD_HANDLERS[t] = fn
        return fn
    return deco


def _int(value: str | None, default: int = 0, base: int = 10) -> int:
    try:
        return int(value, base) if value is not None else default
    except ValueError:
        return default


def parse_sockaddr(saddr: str) -> tuple[int, str, int] | None:
    """(family, address, port) of an AF_INET/AF_INET6 ``saddr`` (hex); None for other families."""
    try:
        raw = bytes.fromhex(saddr)
    except ValueError:
        return None
    if len(raw) < 2:
        return None
    family = struct.unpack_from("=H", raw)[0]
    if family == socket.AF_INET and len(raw) >= 8:
        return family, socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack_from("!H", raw, 2)[0]
    if family == socket.AF_INET6 and len(raw) >= 24:
        return family, socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack_from("!H", raw, 2)[0]
    return None


_libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_GETFD = 438


class PeekBudget:
    """At most ``per_second`` socket peeks (pidfd_getfd, ~10 syscalls each): past that, under a
    connection flood, the local end of outbound connections is left out rather than the CPU spent."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.window = 0
        self.used = 0
        self.skipped = 0

    def take(self) -> bool:
        now = int(time.monotonic())
        if now != self.window:
            self.window, self.used = now, 0
        if self.used >= self.per_second:
            self.skipped += 1
            return False
        self.used += 1
        return True


def peek_socket(pid: int, fd: int, *, peer: tuple[str, int] | None = None,
                local: tuple[str, int] | None = None, listening: bool = False) -> tuple[str, str, int] | None:
    """(protocol, local address, local port) of another process's socket (pidfd_getfd).

    The process may have closed the fd and reused the number by now: the socket counts only
    when its peer (or bound local end) is the one the audit record names.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        dup = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            return None
        try:
            s = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            return None
        try:
            if s.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            proto = {socket.SOCK_STREAM: "Tcp", socket.SOCK_DGRAM: "Udp"}.get(s.type, "")
            name = s.getsockname()
            if peer is not None:
                try:
                    got = s.getpeername()
                except OSError:
                    return None
                if (_norm(str(got[0])), int(got[1])) != (_norm(peer[0]), peer[1]):
                    return None
            if local is not None and local[1] and int(name[1]) != local[1]:
                return None
            if listening and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return None
            return proto, str(name[0]), int(name[1])
        except OSError:
            return None
        finally:
            s.close()
    finally:
        os.close(pidfd)


def _norm(addr: str) -> str:
    return addr.removeprefix("::ffff:")


@register_sensor
class AuditSensor(Sensor):
    name = "audit"
    needs_root = True
    tables = ("DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileEvents", "DeviceLogonEvents", "DeviceEvents")

    def __init__(self) -> None:
        super().__init__()
        self.ctx: SensorContext | None = None
        self.sock: an.AuditSocket | None = None
        self.events: collections.deque[AuditEvent] = collections.deque()
        self.max_backlog = 50_000  # assembled events waiting for the worker
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.lost_at_start = 0
        self.kernel_lost = 0
        self.sockets: collections.OrderedDict[tuple[int, int], str] = collections.OrderedDict()  # (pid, fd) → proto
        self.listeners: collections.OrderedDict[tuple[int, int], tuple[str, int]] = collections.OrderedDict()
        self.binds: collections.OrderedDict[tuple[int, int], tuple[str, int]] = collections.OrderedDict()
        self.pending_files: collections.OrderedDict[tuple[str, str, int], tuple[float, Row]] = \
            collections.OrderedDict()
        self.watched: list[str] = []
        self.account_seen: collections.OrderedDict[tuple[int, int, int], None] = collections.OrderedDict()
        self.persistence: tuple[tuple[str, str], ...] = PERSISTENCE
        self.tamper_paths: tuple[str, ...] = ()
        self.handled = 0
        self.coalesce_window = 1.0
        self.coalesced = 0  # connections not recorded because an identical one just was
        self.recent: collections.OrderedDict[tuple[Any, ...], float] = collections.OrderedDict()
        self.peeks = PeekBudget(200)

    # --- lifecycle --------------------------------------------------------------------

    def rules(self, ctx: SensorContext) -> list[Rule]:
        me = os.getpid()
        rules = self._rules(ctx, me)
        for rule in rules:
            rule.key = f"{rule.key}/{me}"
        return rules

    def _rules(self, ctx: SensorContext, me: int) -> list[Rule]:
        not_me = ((an.F_PID, an.OP_NOT_EQUAL, me),)
        rules = [
            Rule("garrison_exec", ("execve", "execveat"), ((an.F_SUCCESS, an.OP_EQUAL, 1),) + not_me),
            # connect/accept/bind of IPv4 and IPv6 only (the AF_UNIX flood is filtered in the kernel)
            Rule("garrison_net", NET_CALLS, ((an.F_SADDR_FAM, an.OP_EQUAL, socket.AF_INET),) + not_me),
            Rule("garrison_net", NET_CALLS, ((an.F_SADDR_FAM, an.OP_EQUAL, socket.AF_INET6),) + not_me),
            Rule("garrison_net", ("listen",), not_me),
            # socket() of UDP (type & SOCK_DGRAM) over IPv4/IPv6: which fds are UDP (the others are TCP)
            Rule("garrison_sock", ("socket",), ((an.F_A0, an.OP_EQUAL, socket.AF_INET),
                                                (an.F_A1, an.OP_BIT_TEST, socket.SOCK_DGRAM)) + not_me),
            Rule("garrison_sock", ("socket",), ((an.F_A0, an.OP_EQUAL, socket.AF_INET6),
                                                (an.F_A1, an.OP_BIT_TEST, socket.SOCK_DGRAM)) + not_me),
            Rule("garrison_mod", ("init_module", "finit_module"), not_me),
            Rule("garrison_ptrace", ("ptrace",), ((an.F_A0, an.OP_EQUAL, PTRACE_ATTACH),) + not_me),
            Rule("garrison_ptrace", ("ptrace",), ((an.F_A0, an.OP_EQUAL, PTRACE_SEIZE),) + not_me),
            Rule("garrison_tamper", ("kill", "tkill", "tgkill"), ((an.F_A0, an.OP_EQUAL, me),)),
        ]
        paths = ctx.settings.get("file_paths", DEFAULT_FILE_PATHS)
        extra = ctx.settings.get("persistence_paths", {})  # prefix → ActionType, added to PERSISTENCE
        self.persistence = tuple(extra.items()) + PERSISTENCE
        for pattern in paths:
            for path in sorted(glob.glob(pattern)) if "*" in pattern else [pattern]:
                if os.path.isdir(path):
                    rules.append(Rule("garrison_file", (), not_me, path=path.rstrip("/") or "/"))
                    self.watched.append(path)
        if ctx.state_dir and os.path.isdir(ctx.state_dir):
            rules.append(Rule("garrison_tamper_file", (), not_me, path=ctx.state_dir))
            self.tamper_paths = (ctx.state_dir.rstrip("/") + "/",)
        return rules

    def start(self, ctx: SensorContext) -> None:
        self.ctx = ctx
        self.peeks = PeekBudget(int(ctx.settings.get("peeks_per_second", 200)))
        self.coalesce_window = float(ctx.settings.get("network_coalesce_seconds", 1.0))
        sock = an.AuditSocket()
        try:
            daemon = sock.become_daemon()
            sock.set_status(an.STATUS_ENABLED | an.STATUS_BACKLOG_LIMIT | an.STATUS_BACKLOG_WAIT_TIME,
                            enabled=1, backlog_limit=int(ctx.settings.get("audit_backlog", 16384)),
                            backlog_wait_time=0)  # never make the machine wait for us: drop (counted)
            sock.delete_rules(KEY_PREFIX, keep=_alive_owner)
            errors = []
            for rule in self.rules(ctx):
                try:
                    try:
                        sock.add_rule(rule)
                    except OSError as exc:  # a kernel older than 5.10: no saddr_fam, AF_UNIX calls come too
                        if exc.errno != errno.EINVAL or not any(f[0] == an.F_SADDR_FAM for f in rule.fields):
                            raise
                        if rule.fields[0][2] != socket.AF_INET:
                            continue
                        rule.fields = tuple(f for f in rule.fields if f[0] != an.F_SADDR_FAM)
                        sock.add_rule(rule)
                except OSError as exc:
                    errors.append(f"{rule.key} {rule.path or ','.join(rule.syscalls)}: {exc.strerror or exc}")
            self.lost_at_start = sock.status().lost
        except Exception:
            sock.close()
            raise
        self.sock = sock
        notes = []
        if not daemon:
            notes.append("another audit daemon is registered: reading the multicast copy")
        if errors:
            notes.append("rules not installed: " + "; ".join(errors))
        self.error = "; ".join(notes) or None
        self._stop.clear()
        self._threads = [threading.Thread(target=self._read_loop, name="garrison-audit-read", daemon=True),
                         threading.Thread(target=self._work_loop, name="garrison-audit-work", daemon=True)]
        for t in self._threads:
            t.start()
        self.running = True
        self.started_at = dt.datetime.now(dt.UTC)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        sock = self.sock
        if sock is not None:
            try:
                ctl = an.AuditSocket(rcvbuf=1 << 16)
                try:
                    ctl.delete_rules(KEY_PREFIX, keep=lambda key: not key.endswith(f"/{os.getpid()}"))
                finally:
                    ctl.close()
                sock.release_daemon()
            except OSError as exc:
                log.warning("cannot remove the audit rules: %s", exc)
            try:
                sock.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []
        if sock is not None:
            sock.close()
        self.sock = None
        self.running = False

    def lost(self) -> int:
        """Records the kernel dropped since start (backlog full: we did not read fast enough)."""
        try:
            ctl = an.AuditSocket(rcvbuf=1 << 16)
            try:
                self.kernel_lost = max(0, ctl.status().lost - self.lost_at_start)
            finally:
                ctl.close()
        except OSError:
            pass
        return self.kernel_lost

    # --- threads ----------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Receive records as fast as the kernel sends them: one datagram each, most dropped by type
        on arrival, the rest grouped; the worker is woken only when an event is complete."""
        assert self.sock is not None and self.ctx is not None
        sock = self.sock
        sock.sock.settimeout(0.5)
        recv, keep, user = sock.sock.recv, an.KEEP_RECORDS, an.is_user_record
        assembler = an.Assembler(accept=syscall_filter(os.getpid()))
        feed, events, wake = assembler.feed, self.events, self._wake
        for rtype, text in sock.read_pending():
            for ev in feed(rtype, text):
                events.append(ev)
        while not self._stop.is_set():
            try:
                data = recv(1 << 16)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                if exc.errno == errno.ENOBUFS:  # our socket buffer overflowed: records lost
                    self.ctx.sink.count_drop("events.kernel_overflow")
                    continue
                self.error = f"audit socket: {exc}"
                break
            if len(data) < 16:
                continue
            rtype = data[4] | (data[5] << 8)
            if rtype not in keep and not user(rtype):
                continue  # acks, PROCTITLE, BPRM_FCAPS, …
            done = feed(rtype, data[16:].rstrip(b"\0"))
            if not done:
                continue
            for ev in done:
                if len(events) >= self.max_backlog:
                    self.ctx.sink.count_drop("events.sensor_backlog")
                    continue
                events.append(ev)
            if not wake.is_set():
                wake.set()

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            self.drain()
        self.drain()
        self.settle_files(force=True)

    def drain(self) -> int:
        n = 0
        while self.events:
            ev = self.events.popleft()
            try:
                self.handle(ev)
            except Exception as exc:
                log.debug("audit event %d not handled: %s", ev.serial, exc, exc_info=True)
            n += 1
        self.settle_files()
        return n

    def handle(self, ev: AuditEvent) -> None:
        head = ev.records[0][1] if ev.records else b""
        if ev.kind == an.SYSCALL and self.coalesce_window > 0 and b'key="garrison_net/' in head \
                and self.repeated_connection(ev, head):
            return  # decided on a few fields, before the whole record is parsed
        fields = parse_fields(head, user=an.is_user_record(ev.kind))
        if ev.kind == an.SYSCALL:
            handler = KEY_HANDLERS.get(unhex(fields.get("key", "")).split("/", 1)[0])
        else:
            handler = RECORD_HANDLERS.get(ev.kind)
        if handler is not None:
            self.handled += 1
            handler(self, ev, fields)

    # --- helpers for handlers ---------------------------------------------------------

    def emit(self, table: str, row: Row) -> None:
        assert self.ctx is not None
        self.ctx.sink.emit(table, row)

    def initiating(self, pid: int) -> dict[str, Any]:
        """The ``InitiatingProcess…`` columns of ``pid``, computed once per process image (memoised)."""
        assert self.ctx is not None
        c = self.ctx
        info = c.processes.get(pid)
        if info is None:
            return {}
        if info.columns is None:
            info.columns = initiating_columns(info, c.processes, c.hashes, c.users)
        return info.columns

    def repeated_connection(self, ev: AuditEvent, head: bytes) -> bool:
        """A connect/accept identical (process, peer, outcome) to one recorded within the window."""
        nr = _raw_field(head, b"syscall")
        if nr not in (b"42", b"43", b"288"):
            return False
        text = ev.first(an.SOCKADDR)
        if text is None:
            return False
        addr = parse_sockaddr(_raw_field(text, b"saddr").decode())
        if addr is None:
            return False
        pid = _raw_field(head, b"pid")
        if nr == b"42":
            key: tuple[Any, ...] = ("c", pid, _raw_field(head, b"exit"), addr[1], addr[2])
        else:
            key = ("a", pid, _raw_field(head, b"a0"), addr[1])
        return self.coalesce(key, ev.time)

    def coalesce(self, key: tuple[Any, ...], when: float) -> bool:
        """True when the same connection (process, peer, outcome; not the ephemeral port) was recorded
        less than ``network_coalesce_seconds`` ago: repeats are counted, not recorded (as Defender does)."""
        if self.coalesce_window <= 0:
            return False
        last = self.recent.get(key)
        if last is not None and when - last < self.coalesce_window:
            self.coalesced += 1
            return True
        self.recent[key] = when
        self.recent.move_to_end(key)
        while len(self.recent) > 8192:
            self.recent.popitem(last=False)
        return False

    def settle_files(self, force: bool = False) -> None:
        """Emit the file events whose content has settled, with its SHA256 (under the size bound)."""
        now = time.time()
        while self.pending_files:
            key, (due, row) = next(iter(self.pending_files.items()))
            if due > now and not force:
                break
            del self.pending_files[key]
            path = f"{row['FolderPath']}/{row['FileName']}".replace("//", "/")
            if row["ActionType"] != "FileDeleted":
                assert self.ctx is not None
                try:
                    st = os.stat(path)
                    row["FileSize"] = st.st_size
                    if st.st_size <= FILE_HASH_MAX:
                        h = self.ctx.hashes.hashes(path)
                        if h is not None:
                            row.update(SHA256=h.sha256, SHA1=h.sha1, MD5=h.md5)
                except OSError:
                    pass
            self.emit("DeviceFileEvents", row)
            for prefix, action in self.persistence:
                if path.startswith(prefix) and row["ActionType"] != "FileDeleted":
                    self.emit("DeviceEvents", device_event(row, action))
                    break


# Rules every agent installs alike: an event that matched another agent's copy first (its key names
# that agent) is ours too. Watches and tamper rules are per agent: only our own keys count.
SHARED_KEYS = (b'key="garrison_exec/', b'key="garrison_net/', b'key="garrison_sock/', b'key="garrison_mod/',
               b'key="garrison_ptrace/')


def syscall_filter(pid: int) -> Callable[[bytes], bool]:
    own = f'/{pid}"'.encode()

    def accept(body: bytes) -> bool:
        if body.endswith(own):
            return True
        at = body.rfind(b' key="garrison_')
        return at >= 0 and body.startswith(SHARED_KEYS, at + 1)
    return accept


def _raw_field(record: bytes, name: bytes) -> bytes:
    """One ``name=value`` of a kernel record without parsing the rest (b"" when absent)."""
    start = record.find(b" " + name + b"=")
    if start < 0:
        if not record.startswith(name + b"="):
            return b""
        start = -1
    start += len(name) + 2
    end = record.find(b" ", start)
    return record[start:] if end < 0 else record[start:end]


def _alive_owner(key: str) -> bool:
    """Keep the rules of another agent that is still running (not ours, not of a dead one)."""
    owner = _int(key.rsplit("/", 1)[-1], -1) if "/" in key else -1
    if owner <= 0 or owner == os.getpid():
        return False
    try:
        os.kill(owner, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def device_event(file_row: Row, action: str) -> Row:
    keep = {k: v for k, v in file_row.items() if k.startswith("InitiatingProcess")}
    return {"Timestamp": file_row["Timestamp"], "ActionType": action, "FileName": file_row["FileName"],
            "FolderPath": file_row["FolderPath"], "SHA256": file_row.get("SHA256", ""),
            "AdditionalFields": {"FileAction": file_row["ActionType"]}, **keep}


def _syscall_ids(f: dict[str, str]) -> tuple[int, int, int]:
    return _int(f.get("pid")), _int(f.get("ppid")), _int(f.get("syscall"))


# --- DeviceProcessEvents ------------------------------------------------------------------

def execve_argv(ev: AuditEvent) -> str:
    text = ev.first(an.EXECVE)
    if text is None:
        return ""
    f = parse_fields(text)
    argc = _int(f.get("argc"))
    args: list[str] = []
    for i in range(min(argc, 4096)):
        if f"a{i}" in f:
            args.append(unhex(f[f"a{i}"]))
        elif f"a{i}_len" in f:  # a long argument, in pieces a{i}[0], a{i}[1], …
            parts, j = [], 0
            while f"a{i}[{j}]" in f:
                parts.append(unhex(f[f"a{i}[{j}]"]))
                j += 1
            args.append("".join(parts))
    return " ".join(args)


@on_key("garrison_exec")
def process_created(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid, ppid, _ = _syscall_ids(f)
    if f.get("success") != "yes" or ctx.is_self(pid, ppid):
        return
    exe = unhex(f.get("exe", ""))
    euid = _int(f.get("euid"), -1)
    cmdline = execve_argv(ev) or unhex(f.get("comm", ""))
    parent = ctx.processes.get(ppid)
    if parent is None or parent.name in CONTAINER_PARENTS or parent.ppid <= 1:
        # the process may be gone already (1 ms lives): then its parent's cgroup, if that one still runs
        container = container_of(pid) or container_of(ppid) or (parent.container_id if parent else "")
    else:
        container = parent.container_id
    info = ProcessInfo(pid, ppid, exe, cmdline, euid, ev.time, container)
    ctx.processes.put(info)
    cwd = ev.first(an.CWD)
    extra: dict[str, Any] = {"CurrentDirectory": unhex(parse_fields(cwd).get("cwd", "")) if cwd else "",
                             "AuditSessionId": _int(f.get("ses"), -1), "LoginUid": _int(f.get("auid"), -1)}
    if container:
        extra["ContainerId"] = container
    row: Row = {
        "Timestamp": iso(ev.time), "ActionType": "ProcessCreated",
        **image_columns("", exe, ctx.hashes),
        "ProcessId": pid, "ProcessCommandLine": cmdline, "ProcessCreationTime": iso(ev.time),
        "AccountDomain": short_hostname(), "AccountName": ctx.users.name(euid), "AccountSid": account_sid(euid),
        "LogonId": _int(f.get("ses"), -1),
        **(sensor.initiating(ppid) if parent is not None else {}),
        "AdditionalFields": extra,
    }
    if parent is None:
        row["InitiatingProcessId"] = ppid
    sensor.emit("DeviceProcessEvents", row)


# --- DeviceNetworkEvents ------------------------------------------------------------------

@on_key("garrison_sock")
def socket_created(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    """A UDP socket (only those are audited): its fd is UDP until the process makes it something else."""
    pid, _, _ = _syscall_ids(f)
    fd = _int(f.get("exit"), -1)
    if fd < 0:
        return
    sensor.sockets[(pid, fd)] = "Udp" if _int(f.get("a1"), 0, 16) & 0xF == socket.SOCK_DGRAM else ""
    sensor.sockets.move_to_end((pid, fd))
    while len(sensor.sockets) > 65536:
        sensor.sockets.popitem(last=False)


@on_key("garrison_net")
def network(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid, ppid, nr = _syscall_ids(f)
    if ctx.is_self(pid, ppid):
        return
    name = an.SYSCALL_NAMES.get(nr, "")
    exit_code = _int(f.get("exit"))
    fd = _int(f.get("a0"), -1, 16)
    proto = sensor.sockets.get((pid, fd), "")  # "Udp" or unknown (then TCP: only UDP sockets are tracked)
    if name == "listen":
        sensor.sockets.pop((pid, fd), None)
        if exit_code != 0:
            return
        local = sensor.binds.pop((pid, fd), None)
        if local is None or not local[1]:  # listen without bind (or bound to port 0): ask the socket
            peek = peek_socket(pid, fd, listening=True)
            local = (peek[1], peek[2]) if peek else local
        if local is None or not local[1]:
            return  # gone before its port could be read
        sensor.listeners[(pid, fd)] = local  # accepts on it know their local end even if the process is gone
        while len(sensor.listeners) > 4096:
            sensor.listeners.popitem(last=False)
        _emit_net(sensor, ev, pid, "ListeningConnectionCreated", "Tcp", local, None)
        return
    text = ev.first(an.SOCKADDR)
    addr = parse_sockaddr(parse_fields(text).get("saddr", "")) if text is not None else None
    if addr is None:
        return  # AF_UNIX, netlink, … or no address given
    family, ip, port = addr
    if name == "bind":
        if exit_code != 0:
            return
        if proto == "Udp":
            peek = peek_socket(pid, fd, local=(ip, port)) if not port else None  # port 0: which one it got
            _emit_net(sensor, ev, pid, "ListeningConnectionCreated", "Udp", (ip, peek[2] if peek else port), None)
        else:
            sensor.binds[(pid, fd)] = (ip, port)
            while len(sensor.binds) > 4096:
                sensor.binds.popitem(last=False)
        return
    if name == "connect":
        if family == socket.AF_INET and ip == "0.0.0.0" and port == 0:
            return  # AF_UNSPEC-style disconnect of a UDP socket
        if exit_code == 0:
            action = "ConnectionSuccess"
        elif exit_code == -EINPROGRESS:
            action = "ConnectionAttempt"
        else:
            action = "ConnectionFailed"
        peek = peek_socket(pid, fd, peer=(ip, port)) if exit_code == 0 and sensor.peeks.take() else None
        if peek and peek[0]:
            proto = peek[0]
        elif exit_code in (-EINPROGRESS, -errno.ECONNREFUSED, -errno.ETIMEDOUT) or proto != "Udp":
            proto = "Tcp"  # UDP connects neither wait nor get refused
        local = (peek[1], peek[2]) if peek else None
        _emit_net(sensor, ev, pid, action, proto, local, (ip, port), exit_code)
        return
    if name in ("accept", "accept4") and exit_code >= 0:
        local = sensor.listeners.get((pid, fd))
        if local is None:
            peek = peek_socket(pid, exit_code, peer=(ip, port))
            local = (peek[1], peek[2]) if peek else None
        _emit_net(sensor, ev, pid, "InboundConnectionAccepted", "Tcp", local, (ip, port))


def _emit_net(sensor: AuditSensor, ev: AuditEvent, pid: int, action: str, proto: str,
              local: tuple[str, int] | None, remote: tuple[str, int] | None, exit_code: int = 0) -> None:
    row: Row = {"Timestamp": iso(ev.time), "ActionType": action, "Protocol": proto}
    if local is not None:
        row.update(LocalIP=local[0], LocalPort=local[1], LocalIPType=ip_type(local[0]))
    if remote is not None:
        row.update(RemoteIP=remote[0], RemotePort=remote[1], RemoteIPType=ip_type(remote[0]))
        assert sensor.ctx is not None
        url = sensor.ctx.names.get(remote[0])  # the name a DNS answer gave this address (dns sensor)
        if url:
            row["RemoteUrl"] = url
    if exit_code < 0:
        row["AdditionalFields"] = {"Error": errno.errorcode.get(-exit_code, str(-exit_code))}
    row.update(sensor.initiating(pid))
    sensor.emit("DeviceNetworkEvents", row)


# --- DeviceFileEvents ---------------------------------------------------------------------

def _paths(ev: AuditEvent) -> tuple[str, list[dict[str, str]]]:
    cwd_text = ev.first(an.CWD)
    cwd = unhex(parse_fields(cwd_text).get("cwd", "")) if cwd_text else "/"
    items = [parse_fields(t) for t in ev.all(an.PATH)]
    return cwd, items


def _absolute(name: str, cwd: str, parent: str | None) -> str:
    if name.startswith("/"):
        return os.path.normpath(name)
    base = parent if parent and parent.startswith("/") else cwd
    return os.path.normpath(os.path.join(base, name))


@on_key("garrison_file")
def file_event(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid, ppid, nr = _syscall_ids(f)
    if ctx.is_self(pid, ppid) or f.get("success") != "yes":
        return
    cwd, items = _paths(ev)
    parents = [unhex(i.get("name", "")) for i in items if i.get("nametype") == "PARENT"]
    created, deleted, normal = [], [], []
    for item in items:
        if item.get("mode", "").startswith("04"):  # a directory
            continue
        nametype = item.get("nametype")
        name = unhex(item.get("name", ""))
        if not name:
            continue
        parent = parents[0] if parents else None
        if nametype == "CREATE":
            created.append(_absolute(name, cwd, parents[-1] if parents else None))
        elif nametype == "DELETE":
            deleted.append(_absolute(name, cwd, parent))
        elif nametype == "NORMAL":
            normal.append(_absolute(name, cwd, None))
    rows: list[tuple[str, str, str | None]] = []  # (action, path, previous path)
    if nr in RENAMES and created and deleted:
        rows.append(("FileRenamed", created[-1], deleted[0]))
    else:
        rows += [("FileCreated", p, None) for p in created]
        rows += [("FileDeleted", p, None) for p in deleted]
        if not created and not deleted:
            rows += [("FileModified", p, None) for p in normal[:1]]
    for action, path, previous in rows:
        folder, name = folder_of(path), path.rsplit("/", 1)[-1]
        row: Row = {"Timestamp": iso(ev.time), "ActionType": action, "FileName": name, "FolderPath": folder,
                    "SHA256": "", "SHA1": "", "MD5": "", "FileSize": None, "RequestProtocol": "Local",
                    **sensor.initiating(pid)}
        if previous:
            row.update(PreviousFileName=previous.rsplit("/", 1)[-1], PreviousFolderPath=folder_of(previous))
        key = (action, path, pid)
        if action in ("FileModified",) and key in sensor.pending_files:
            continue  # coalesced: one FileModified per process and file per settle window
        if action == "FileModified" and ("FileCreated", path, pid) in sensor.pending_files:
            continue  # created and written: FileCreated carries the content
        sensor.pending_files[key] = (ev.time + FILE_SETTLE, row)


# --- DeviceLogonEvents --------------------------------------------------------------------

LOGON_TYPES = {"sshd": "RemoteInteractive", "login": "Interactive", "su": "Interactive", "sudo": "Interactive",
               "cron": "Batch", "systemd": "Service", "agetty": "Interactive", "gdm-session-worker": "Interactive"}


@on_record(an.USER_AUTH, an.USER_START, an.USER_LOGIN)
def logon(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid = _int(f.get("pid"))
    if ctx.is_self(pid):
        return
    res = f.get("res", "").strip("'")
    exe = unhex(f.get("exe", ""))
    prog = exe.rsplit("/", 1)[-1]
    # One row per logon: PAM authentication failures, sessions opened (USER_START), and the
    # login records of sshd/login (which also carry the failures PAM did not see).
    if ev.kind == an.USER_AUTH and res != "failed":
        return
    if ev.kind == an.USER_START and res != "success":
        return
    if ev.kind == an.USER_LOGIN and prog not in ("sshd", "login"):
        return
    if ev.kind == an.USER_START and prog in ("sshd", "login"):
        return  # their USER_LOGIN is the logon
    if prog in ("cron", "systemd") and ev.kind == an.USER_START and ctx.settings.get("skip_service_logons", True):
        return
    acct = unhex(f.get("acct", "")) if "acct" in f else ""
    if not acct and "id" in f:
        acct = ctx.users.name(_int(f.get("id"), -1))
    addr = f.get("addr", "?")
    addr = "" if addr in ("?", "") else addr
    logon_type = LOGON_TYPES.get(prog, "Network" if addr else "Interactive")
    uid = _uid_of(acct)
    row: Row = {"Timestamp": iso(ev.time), "ActionType": "LogonSuccess" if res == "success" else "LogonFailed",
                "LogonType": logon_type, "AccountDomain": short_hostname(), "AccountName": acct,
                "AccountSid": account_sid(uid), "Protocol": "PAM", "RemoteIP": addr,
                "RemoteIPType": ip_type(addr) if addr else "", "RemoteDeviceName": unhex(f.get("hostname", "?")),
                "IsLocalAdmin": uid == 0, "LogonId": _int(f.get("ses"), -1)}
    if res != "success":
        row["FailureReason"] = "InvalidUserNameOrPassword" if ev.kind == an.USER_AUTH else "UnknownFailure"
    row["AdditionalFields"] = ({"Terminal": unhex(f.get("terminal", "")), "Op": unhex(f.get("op", "")),
                                          "Program": exe})
    row.update(sensor.initiating(pid))
    if not row.get("InitiatingProcessFileName"):
        row.update(InitiatingProcessId=pid, InitiatingProcessFileName=prog, InitiatingProcessFolderPath=folder_of(exe))
    sensor.emit("DeviceLogonEvents", row)


def _uid_of(name: str) -> int | None:
    import pwd
    try:
        return pwd.getpwnam(name).pw_uid
    except (KeyError, TypeError):
        return None


# --- DeviceEvents -------------------------------------------------------------------------

ACCOUNT_ACTIONS = {an.ADD_USER: "UserAccountCreated", an.DEL_USER: "UserAccountDeleted",
                   an.ADD_GROUP: "SecurityGroupCreated", an.DEL_GROUP: "SecurityGroupDeleted"}


@on_record(*ACCOUNT_ACTIONS)
def account_change(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    """shadow-utils write one record per file they change (passwd, shadow, group, …): one row per change."""
    ctx = sensor.ctx
    assert ctx is not None
    pid = _int(f.get("pid"))
    if ctx.is_self(pid) or f.get("res", "").strip("'") != "success":
        return
    ident = _int(f.get("id"), -1)
    seen = (ev.kind, pid, ident)
    if seen in sensor.account_seen:
        return
    sensor.account_seen[seen] = None
    while len(sensor.account_seen) > 256:
        sensor.account_seen.popitem(last=False)
    group = ev.kind in (an.ADD_GROUP, an.DEL_GROUP)
    name = unhex(f["acct"]) if "acct" in f else (_group_name(ident) if group else _user_name(ident))
    extra: dict[str, Any] = {"GroupId": ident, "GroupName": name} if group else {"UserId": ident}
    row: Row = {"Timestamp": iso(ev.time), "ActionType": ACCOUNT_ACTIONS[ev.kind], "AccountDomain": short_hostname(),
                "AdditionalFields": extra, **sensor.initiating(pid)}
    if not group:
        row.update(AccountName=name, AccountSid=str(ident) if ident >= 0 else "")
    if not row.get("InitiatingProcessFileName"):
        exe = unhex(f.get("exe", ""))
        row.update(InitiatingProcessId=pid, InitiatingProcessFileName=exe.rsplit("/", 1)[-1],
                   InitiatingProcessFolderPath=folder_of(exe))
    sensor.emit("DeviceEvents", row)


def _user_name(uid: int) -> str:
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


def _group_name(gid: int) -> str:
    import grp
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return ""


@on_key("garrison_mod")
def module_load(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    pid, ppid, nr = _syscall_ids(f)
    assert sensor.ctx is not None
    if sensor.ctx.is_self(pid, ppid):
        return
    mod = ev.first(an.KERN_MODULE)
    name = unhex(parse_fields(mod).get("name", "")) if mod else ""
    ok = f.get("success") == "yes"
    extra = {"Success": ok, "Syscall": an.SYSCALL_NAMES.get(nr, str(nr))}
    if not ok:
        extra["Error"] = errno.errorcode.get(-_int(f.get("exit")), f.get("exit", ""))
    sensor.emit("DeviceEvents", {"Timestamp": iso(ev.time), "ActionType": "KernelModuleLoaded" if ok
                                 else "KernelModuleLoadAttempted", "FileName": name,
                                 "AdditionalFields": extra, **sensor.initiating(pid)})


@on_key("garrison_ptrace")
def ptrace_attach(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid, ppid, _ = _syscall_ids(f)
    if ctx.is_self(pid, ppid):
        return
    target = _int(f.get("a1"), 0, 16)
    info = ctx.processes.get(target)
    row: Row = {"Timestamp": iso(ev.time), "ActionType": "PtraceAttach", "ProcessId": target,
                "FileName": info.name if info else "", "FolderPath": folder_of(info.path) if info else "",
                "ProcessCommandLine": info.cmdline if info else "",
                "AdditionalFields": ({"Success": f.get("success") == "yes",
                                                "Request": "PTRACE_SEIZE" if _int(f.get("a0"), 0, 16) ==
                                                PTRACE_SEIZE else "PTRACE_ATTACH"}),
                **sensor.initiating(pid)}
    sensor.emit("DeviceEvents", row)
    if target in ctx.self_pids:
        sensor.emit("DeviceEvents", {**row, "ActionType": "TamperingAttempt"})


@on_key("garrison_tamper")
def signal_to_agent(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid, _, nr = _syscall_ids(f)
    sig = _int(f.get("a2" if nr == an.SYSCALLS_X86_64["tgkill"] else "a1"), 0, 16)
    if pid in ctx.self_pids or sig == 0:
        return
    sensor.emit("DeviceEvents", {"Timestamp": iso(ev.time), "ActionType": "TamperingAttempt",
                                 "ProcessId": _int(f.get("a0"), 0, 16),
                                 "AdditionalFields": ({"Operation": "Signal", "Signal": sig,
                                                                 "Success": f.get("success") == "yes"}),
                                 **sensor.initiating(pid)})


@on_key("garrison_tamper_file")
def state_written(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    pid, ppid, _ = _syscall_ids(f)
    if ctx.is_self(pid, ppid):
        return
    cwd, items = _paths(ev)
    names = [_absolute(unhex(i.get("name", "")), cwd, None) for i in items if i.get("nametype") != "PARENT"]
    sensor.emit("DeviceEvents", {"Timestamp": iso(ev.time), "ActionType": "TamperingAttempt",
                                 "FileName": names[0].rsplit("/", 1)[-1] if names else "",
                                 "FolderPath": folder_of(names[0]) if names else "",
                                 "AdditionalFields": ({"Operation": "AgentStateWritten",
                                                                 "Paths": names[:8]}),
                                 **sensor.initiating(pid)})


@on_record(1305)  # CONFIG_CHANGE: our rules removed (auditctl -D) or the audit daemon replaced
def audit_config_changed(sensor: AuditSensor, ev: AuditEvent, f: dict[str, str]) -> None:
    ctx = sensor.ctx
    assert ctx is not None
    op, key = unhex(f.get("op", "")), unhex(f.get("key", ""))
    ours = op == "remove_rule" and key.endswith(f"/{os.getpid()}")
    if sensor._stop.is_set() or not (ours or "audit_pid" in f or op == "set"):
        return
    if "audit_pid" in f and _int(f.get("audit_pid")) in (os.getpid(), 0):
        return  # our own registration
    if op == "set" and "audit_pid" not in f:
        return
    pid = _int(f.get("pid"), -1)
    row: Row = {"Timestamp": iso(ev.time), "ActionType": "TamperingAttempt",
                "AdditionalFields": ({"Operation": "AuditConfigurationChanged", "Op": op, "Key": key})}
    if pid > 0:
        row.update(sensor.initiating(pid))
    sensor.emit("DeviceEvents", row)
