"""A minimal Linux audit netlink client: status, rules, and the record stream.

The agent talks to the kernel directly (``NETLINK_AUDIT``), like go-audit and osquery:
no auditd, no libaudit. :class:`AuditSocket` registers itself as the audit daemon
(``AUDIT_SET`` pid) so the kernel sends every record to it and not to the console; when an
auditd already holds that place it falls back to the read-only multicast group.

Records are text: ``audit(1701950000.123:4567): key=value …``. Records of one event share
the serial (``4567``); a syscall event ends with ``EOE``. :class:`Assembler` groups them.
Constants are from ``include/uapi/linux/audit.h``.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_MULTI = 0x1, 0x4, 0x2

AUDIT_GET, AUDIT_SET = 1000, 1001
AUDIT_LIST_RULES, AUDIT_ADD_RULE, AUDIT_DEL_RULE = 1013, 1011, 1012

# Record types.
SYSCALL, PATH, SOCKADDR, CWD, EXECVE, EOE, PROCTITLE, OBJ_PID, KERN_MODULE = (
    1300, 1302, 1306, 1307, 1309, 1320, 1327, 1318, 1330)
USER_AUTH, USER_ACCT, CRED_ACQ, USER_START, USER_END, USER_ERR, USER_LOGIN = (
    1100, 1101, 1103, 1105, 1106, 1109, 1112)
ADD_USER, DEL_USER, ADD_GROUP, DEL_GROUP, USER_CMD = 1114, 1115, 1116, 1117, 1123
FIRST_USER_MSG, LAST_USER_MSG = 1100, 1199
FIRST_USER_MSG2, LAST_USER_MSG2 = 2100, 2999

# Status mask bits.
STATUS_ENABLED, STATUS_FAILURE, STATUS_PID, STATUS_RATE_LIMIT, STATUS_BACKLOG_LIMIT = 1, 2, 4, 8, 16
STATUS_BACKLOG_WAIT_TIME = 32
_STATUS = struct.Struct("=10I")  # mask enabled failure pid rate_limit backlog_limit lost backlog version bwt

# Rules (struct audit_rule_data).
FILTER_EXIT, ALWAYS = 0x04, 2
BITMASK_SIZE, MAX_FIELDS = 64, 64
F_PID, F_ARCH, F_A0, F_A1, F_SUCCESS, F_WATCH, F_PERM, F_DIR, F_FILTERKEY = 0, 11, 200, 201, 104, 105, 106, 107, 210
F_SADDR_FAM = 113  # the socket address family of a SOCKADDR record (Linux 5.10+)
OP_EQUAL, OP_NOT_EQUAL, OP_BIT_TEST = 0x40000000, 0x30000000, 0x48000000
# Records the sensor uses; the others (PROCTITLE, BPRM_FCAPS, …) are dropped as they arrive.
KEEP_RECORDS = frozenset({1300, 1302, 1305, 1306, 1307, 1309, 1318, 1320, 1330})
PERM_WRITE, PERM_ATTR = 2, 8
ARCH_X86_64 = 0xC000003E
_RULE_HEAD = struct.Struct(f"=3I{BITMASK_SIZE}I")
_NLMSG = struct.Struct("=IHHII")

SYSCALLS_X86_64 = {
    "execve": 59, "execveat": 322, "socket": 41, "connect": 42, "accept": 43, "accept4": 288, "bind": 49, "listen": 50,
    "init_module": 175, "finit_module": 313, "ptrace": 101, "kill": 62, "tkill": 200, "tgkill": 234,
}
SYSCALL_NAMES = {v: k for k, v in SYSCALLS_X86_64.items()}



class AuditError(OSError):
    pass


@dataclass
class Rule:
    """One audit rule: syscalls (or all, for watches) with field conditions and a key."""

    key: str
    syscalls: tuple[str, ...] = ()  # empty with a path: every syscall (a watch)
    fields: tuple[tuple[int, int, int], ...] = ()  # (field, op, value)
    path: str = ""  # a directory watch (recursive) when set
    perm: int = 0

    def pack(self) -> bytes:
        mask = [0] * BITMASK_SIZE
        if self.syscalls:
            for name in self.syscalls:
                nr = SYSCALLS_X86_64[name]
                mask[nr // 32] |= 1 << (nr % 32)
        else:
            mask = [0xFFFFFFFF] * BITMASK_SIZE
        entries: list[tuple[int, int, int]] = []
        buf = b""
        if self.syscalls or not self.path:
            entries.append((F_ARCH, OP_EQUAL, ARCH_X86_64))
        entries.extend(self.fields)
        if self.path:
            raw = self.path.encode()
            entries.append((F_DIR, OP_EQUAL, len(raw)))
            buf += raw
            entries.append((F_PERM, OP_EQUAL, self.perm or (PERM_WRITE | PERM_ATTR)))
        key = self.key.encode()
        entries.append((F_FILTERKEY, OP_EQUAL, len(key)))
        buf += key
        fields = [0] * MAX_FIELDS
        values = [0] * MAX_FIELDS
        flags = [0] * MAX_FIELDS
        for i, (f, op, v) in enumerate(entries):
            fields[i], values[i], flags[i] = f, v & 0xFFFFFFFF, op
        return (_RULE_HEAD.pack(FILTER_EXIT, ALWAYS, len(entries), *mask)
                + struct.pack(f"={MAX_FIELDS}I", *fields) + struct.pack(f"={MAX_FIELDS}I", *values)
                + struct.pack(f"={MAX_FIELDS}I", *flags) + struct.pack("=I", len(buf)) + buf)


def rule_key(data: bytes) -> str:
    """The filter key of a packed rule (as listed by the kernel), '' when it has none."""
    count = struct.unpack_from("=I", data, 8)[0]
    off = _RULE_HEAD.size
    fields = struct.unpack_from(f"={MAX_FIELDS}I", data, off)
    values = struct.unpack_from(f"={MAX_FIELDS}I", data, off + 4 * MAX_FIELDS)
    buf = data[off + 12 * MAX_FIELDS + 4:]
    pos = 0
    for i in range(min(count, MAX_FIELDS)):
        if fields[i] in (F_WATCH, F_DIR, F_FILTERKEY, 14, 15, 16, 17, 18, 19, 20, 21, 22):  # string-valued
            text = buf[pos:pos + values[i]]
            pos += values[i]
            if fields[i] == F_FILTERKEY:
                return text.decode(errors="replace")
    return ""


@dataclass
class Status:
    enabled: int
    failure: int
    pid: int
    rate_limit: int
    backlog_limit: int
    lost: int
    backlog: int
    backlog_wait_time: int


class AuditSocket:
    """The control and record socket. ``daemon=True`` registers this process as the audit daemon."""

    def __init__(self, rcvbuf: int = 16 * 1024 * 1024) -> None:
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        except OSError as exc:
            raise AuditError(exc.errno, f"audit netlink unavailable: {exc.strerror}") from None
        self.sock.bind((0, 0))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.seq = 0
        self.multicast = False
        self._pending: list[tuple[int, bytes]] = []  # records that arrived while waiting for an ack

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # --- requests ---------------------------------------------------------------------

    def _send(self, typ: int, payload: bytes, flags: int = NLM_F_REQUEST | NLM_F_ACK) -> int:
        self.seq += 1
        self.sock.sendto(_NLMSG.pack(_NLMSG.size + len(payload), typ, flags, self.seq, 0) + payload, (0, 0))
        return self.seq

    def _request(self, typ: int, payload: bytes = b"", *, want: int | None = None) -> list[bytes]:
        """Send and collect the replies (of type ``want``) up to the ack or DONE."""
        seq = self._send(typ, payload)
        out: list[bytes] = []
        while True:
            for mtype, mseq, body in self._recv_messages():
                if mseq != seq:
                    if mtype >= 1100:
                        self._pending.append((mtype, body))
                    continue
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err:
                        raise AuditError(err, f"audit request {typ}: {os.strerror(err)}")
                    if want is None or out or typ not in (AUDIT_GET, AUDIT_LIST_RULES):
                        return out
                elif mtype == NLMSG_DONE:
                    return out
                elif want is None or mtype == want:
                    out.append(body)
                    if typ == AUDIT_GET:
                        return out

    def _recv_messages(self) -> Iterable[tuple[int, int, bytes]]:
        data = self.sock.recv(1 << 20)
        off = 0
        while off + _NLMSG.size <= len(data):
            length, mtype, _flags, mseq, _pid = _NLMSG.unpack_from(data, off)
            if mtype >= FIRST_USER_MSG:  # a record: one per datagram, and its length omits the header
                yield mtype, mseq, data[off + _NLMSG.size:].rstrip(b"\0")
                return
            if length < _NLMSG.size:
                break
            yield mtype, mseq, data[off + _NLMSG.size: off + length]
            off += (length + 3) & ~3

    def status(self) -> Status:
        body = self._request(AUDIT_GET, want=AUDIT_GET)[0]
        body = body.ljust(_STATUS.size, b"\0")
        v = _STATUS.unpack_from(body)
        return Status(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[9])

    def set_status(self, mask: int, *, enabled: int = 0, failure: int = 0, pid: int = 0, rate_limit: int = 0,
                   backlog_limit: int = 0, backlog_wait_time: int = 0) -> None:
        self._request(AUDIT_SET, _STATUS.pack(mask, enabled, failure, pid, rate_limit, backlog_limit, 0, 0, 0,
                                              backlog_wait_time))

    def become_daemon(self) -> bool:
        """Receive the records as the audit daemon; False (multicast reader) when an auditd runs."""
        try:
            self.set_status(STATUS_PID, pid=os.getpid())
            return True
        except AuditError as exc:
            if exc.errno not in (errno.EEXIST, errno.EBUSY, errno.EACCES):
                raise
        self.sock.setsockopt(270, 1, AUDIT_NLGRP_READLOG)  # SOL_NETLINK, NETLINK_ADD_MEMBERSHIP
        self.multicast = True
        return False

    def release_daemon(self) -> None:
        if not self.multicast:
            try:
                self.set_status(STATUS_PID, pid=0)
            except OSError:
                pass

    def list_rules(self) -> list[bytes]:
        return self._request(AUDIT_LIST_RULES, want=AUDIT_LIST_RULES)

    def add_rule(self, rule: Rule) -> None:
        try:
            self._request(AUDIT_ADD_RULE, rule.pack())
        except AuditError as exc:
            if exc.errno != errno.EEXIST:
                raise

    def delete_rules(self, key_prefix: str, keep: Callable[[str], bool] = lambda key: False) -> int:
        """Delete every rule whose key starts with ``key_prefix``, except those ``keep`` says to keep."""
        n = 0
        for data in self.list_rules():
            key = rule_key(data)
            if key.startswith(key_prefix) and not keep(key):
                try:
                    self._request(AUDIT_DEL_RULE, data)
                    n += 1
                except AuditError:
                    pass
        return n

    # --- the record stream ------------------------------------------------------------

    def read_pending(self) -> list[tuple[int, bytes]]:
        """Records that arrived while a request waited for its answer."""
        out, self._pending = self._pending, []
        return out

    def read_records(self) -> list[tuple[int, bytes]]:
        """Block until records arrive; returns (type, text) pairs."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        return [(t, body) for t, _s, body in self._recv_messages() if t >= 1100]


# --- records → events --------------------------------------------------------------------

_KV = re.compile(rb'([a-zA-Z0-9_\[\]]+)=("[^"]*"|\S*)')


def parse_fields(text: bytes, *, user: bool = False) -> dict[str, str]:
    """``key=value`` pairs of a record (quotes kept; hex-encoded values stay hex: see :func:`unhex`).

    Kernel records never have a space inside a value (the kernel hex-encodes such strings), so
    splitting on spaces is exact and 2-3x cheaper than a regular expression; records written by
    user space (``user=True``: PAM, shadow-utils) may (``op=adding group to /etc/group``).
    """
    out: dict[str, str] = {}
    if user:
        for k, v in _KV.findall(text):
            key = k.decode()
            if key in out:  # user records repeat keys inside msg='…'; the inner ones are the useful ones
                key = "_" + key
            out[key] = v.decode("utf-8", "replace")
        return out
    for tok in text.decode("utf-8", "replace").split(" "):
        key, _, value = tok.partition("=")
        if key:
            out[key] = value
    return out


def is_user_record(rtype: int) -> bool:
    return FIRST_USER_MSG <= rtype <= LAST_USER_MSG or FIRST_USER_MSG2 <= rtype <= LAST_USER_MSG2


def unhex(value: str) -> str:
    """An audit string value: ``"quoted"`` as is, unquoted hex decoded (NULs become spaces)."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    if value in ("(null)", "(none)", "?"):
        return ""
    try:
        return bytes.fromhex(value).replace(b"\0", b" ").decode("utf-8", "replace")
    except ValueError:
        return value


@dataclass
class AuditEvent:
    """The records of one audit event (one serial)."""

    serial: int
    time: float  # seconds since the epoch
    records: list[tuple[int, bytes]] = field(default_factory=list)

    def first(self, rtype: int) -> bytes | None:
        for t, text in self.records:
            if t == rtype:
                return text
        return None

    def all(self, rtype: int) -> list[bytes]:
        return [text for t, text in self.records if t == rtype]

    @property
    def kind(self) -> int:
        return self.records[0][0] if self.records else 0


class Assembler:
    """Groups records by serial. Syscall events end with EOE; single-record events end at once."""

    def __init__(self, max_open: int = 4096, accept: Callable[[bytes], bool] | None = None) -> None:
        self.open: OrderedDict[int, AuditEvent] = OrderedDict()
        self.max_open = max_open
        # Syscall events whose SYSCALL record ``accept`` refuses are skipped whole, before any parsing
        # (a syscall audited for someone else's rule).
        self.accept = accept
        self.skipped: OrderedDict[int, None] = OrderedDict()

    def feed(self, rtype: int, text: bytes) -> list[AuditEvent]:
        # "audit(1701950000.123:4567): …" — sliced, not matched: this runs for every record
        if not text.startswith(b"audit("):
            return []
        close = text.find(b"): ", 6)
        if close < 0:
            close = text.find(b")", 6)
            if close < 0:
                return []
        try:
            stamp, _, serial_text = text[6:close].partition(b":")
            serial = int(serial_text)
            when = float(stamp)
        except ValueError:
            return []
        body = text[close + 3:]
        done: list[AuditEvent] = []
        if self.skipped and serial in self.skipped:
            if rtype == EOE:
                del self.skipped[serial]
            return done
        if rtype == SYSCALL and self.accept is not None and not self.accept(body):
            self.skipped[serial] = None
            while len(self.skipped) > self.max_open:
                self.skipped.popitem(last=False)
            return done
        if rtype == EOE:
            ev = self.open.pop(serial, None)
            if ev is not None:
                done.append(ev)
            return done
        ev = self.open.get(serial)
        if ev is None:
            if rtype != SYSCALL:  # a record of its own (user messages, configuration changes)
                return [AuditEvent(serial, when, [(rtype, body)])]
            ev = AuditEvent(serial, when)
            self.open[serial] = ev
            while len(self.open) > self.max_open:  # an EOE never came: emit the oldest as it is
                done.append(self.open.popitem(last=False)[1])
        ev.records.append((rtype, body))
        return done

    def flush(self) -> list[AuditEvent]:
        out = list(self.open.values())
        self.open.clear()
        return out
