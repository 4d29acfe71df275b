"""The device collector: who and what this machine is (``DeviceReport``, kind ``device``).

Everything is read from files under ``ctx.root`` (so tests can prepare a tree), except
``ip -j addr`` and ``uname``, which describe the running machine and are used only when
``ctx.root`` is ``/``. None of it needs root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import platform
import re
import secrets
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

from garrison.agent.collectors.base import AgentContext, Collector, register_collector
from garrison.agent.spool import RECREATE
from garrison.protocol import DeviceReport, LoggedOnUser
from garrison.protocol.limits import AGENT_VERSION_LEN, HOSTNAME_LEN, OS_FIELD_LEN

MACHINE_ID_FILE = "machine-id"  # in state_dir: fallback identity when the OS has none

# glibc ``struct utmp`` (same layout on 32- and 64-bit Linux): type, pid, line, id, user,
# host, exit status, session, tv_sec, tv_usec, addr_v6, reserved.
UTMP = struct.Struct("<hxxi32s4s32s256shhiii16s20x")
USER_PROCESS = 7


def read_os_release(ctx: AgentContext) -> dict[str, str]:
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = ctx.path(candidate).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        return parse_os_release(text)
    return {}


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines; values may be quoted with shell-style escapes."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\([\\"$`])', r"\1", value[1:-1])
        out[key.strip()] = value
    return out


def machine_key(ctx: AgentContext) -> str:
    """SHA-256 of the OS machine id; a random id kept in state_dir when the OS has none."""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = ctx.path(candidate).read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if value:
            return hashlib.sha256(value.encode()).hexdigest()
    own = ctx.state_dir / MACHINE_ID_FILE
    try:
        value = own.read_text(encoding="ascii").strip()
    except OSError:
        value = ""
    if not value:
        value = secrets.token_hex(16)
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
    return hashlib.sha256(value.encode()).hexdigest()


def boot_time(ctx: AgentContext) -> dt.datetime | None:
    try:
        for line in ctx.path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return dt.datetime.fromtimestamp(int(line.split()[1]), dt.UTC)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _is_reportable(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def ipv4_from_ip_json(output: str) -> list[str]:
    out: list[str] = []
    for link in json.loads(output or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and _is_reportable(info.get("local", "")):
                out.append(info["local"])
    return out


def ipv4_from_fib_trie(text: str) -> list[str]:
    """Local IPv4 addresses: in /proc/net/fib_trie a ``/32 host LOCAL`` leaf follows each."""
    out: list[str] = []
    last = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif stripped.startswith("/32 host LOCAL") and last and _is_reportable(last) and last not in out:
            out.append(last)
    return out


def ipv6_from_if_inet6(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6 or parts[5] == "lo":
            continue
        try:
            addr = str(ipaddress.IPv6Address(bytes.fromhex(parts[0])))
        except ValueError:
            continue
        if _is_reportable(addr) and addr not in out:
            out.append(addr)
    return out


def ip_addresses(ctx: AgentContext) -> list[str]:
    v4: list[str] = []
    ip_cmd = shutil.which("ip") if ctx.root == Path("/") else None
    if ip_cmd:
        try:
            proc = subprocess.run([ip_cmd, "-j", "addr"], capture_output=True, text=True, timeout=10, check=True)
            v4 = ipv4_from_ip_json(proc.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            ip_cmd = None
    if not ip_cmd:
        try:
            v4 = ipv4_from_fib_trie(ctx.path("/proc/net/fib_trie").read_text())
        except OSError:
            v4 = []
    try:
        v6 = ipv6_from_if_inet6(ctx.path("/proc/net/if_inet6").read_text())
    except OSError:
        v6 = []
    return list(dict.fromkeys(v4)) + v6


def mac_addresses(ctx: AgentContext) -> list[str]:
    out: list[str] = []
    base = ctx.path("/sys/class/net")
    try:
        names = sorted(p.name for p in base.iterdir())
    except OSError:
        return out
    for name in names:
        if name == "lo":
            continue
        try:
            mac = (base / name / "address").read_text().strip().lower()
        except OSError:
            continue
        if mac and mac.strip("0:") and len(mac) == 17 and mac not in out:
            out.append(mac)
    return out


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_utmp(data: bytes) -> list[LoggedOnUser]:
    users: list[LoggedOnUser] = []
    for off in range(0, len(data) - UTMP.size + 1, UTMP.size):
        (ut_type, _pid, line, _id, user, host, _term, _exit, _session, tv_sec, _usec, _addr) = (
            UTMP.unpack_from(data, off)
        )
        if ut_type != USER_PROCESS or not _cstr(user):
            continue
        since = dt.datetime.fromtimestamp(tv_sec, dt.UTC) if tv_sec > 0 else None
        users.append(LoggedOnUser(user=_cstr(user)[:128], terminal=_cstr(line)[:128],
                                  host=_cstr(host)[:256], since=since))
    return users


def parse_logind_sessions(directory: Path) -> list[LoggedOnUser]:
    """systemd-logind session files: the source on systems built without utmp."""
    users: list[LoggedOnUser] = []
    try:
        files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.endswith(".ref"))
    except OSError:
        return users
    for f in files:
        try:
            kv = dict(line.split("=", 1) for line in f.read_text().splitlines() if "=" in line)
        except OSError:
            continue
        if not kv.get("USER") or kv.get("CLASS", "user") not in ("user", "user-early", "user-incomplete"):
            continue
        since = None
        if kv.get("REALTIME", "").isdigit():
            since = dt.datetime.fromtimestamp(int(kv["REALTIME"]) / 1_000_000, dt.UTC)
        users.append(LoggedOnUser(user=kv["USER"][:128], terminal=kv.get("TTY", "")[:128],
                                  host=kv.get("REMOTE_HOST", "")[:256], since=since))
    return users


def logged_on_users(ctx: AgentContext) -> list[LoggedOnUser]:
    for candidate in ("/run/utmp", "/var/run/utmp"):
        try:
            return parse_utmp(ctx.path(candidate).read_bytes())[:1024]
        except OSError:
            continue
    return parse_logind_sessions(ctx.path("/run/systemd/sessions"))[:1024]


def _uname(ctx: AgentContext) -> tuple[str, str]:
    """(kernel release, machine): from uname for this machine, from /proc for a prepared tree."""
    if ctx.root == Path("/"):
        u = os.uname()
        return u.release, u.machine
    try:
        release = ctx.path("/proc/sys/kernel/osrelease").read_text().strip()
    except OSError:
        release = ""
    return release, ""


def _processor(ctx: AgentContext) -> str:
    try:
        for line in ctx.path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model", "Processor"):
                return value.strip()[:OS_FIELD_LEN]
    except OSError:
        pass
    return (platform.processor() if ctx.root == Path("/") else "")[:OS_FIELD_LEN]


def hostname_and_fqdn(ctx: AgentContext) -> tuple[str, str]:
    if ctx.root == Path("/"):
        host = socket.gethostname()
        try:
            fqdn = socket.getfqdn()
        except (OSError, LookupError, UnicodeError):  # resolver trouble must not cost the report
            fqdn = host
        if fqdn.split(".")[0] in ("localhost", "") and host not in ("localhost", ""):
            fqdn = host  # /etc/hosts maps the name to 127.0.1.1 localhost: not a useful FQDN
        return host, fqdn
    try:
        host = ctx.path("/etc/hostname").read_text().strip()
    except OSError:
        host = ""
    return host, host


def device_report(ctx: AgentContext) -> DeviceReport:
    osr = read_os_release(ctx)
    kernel, arch = _uname(ctx)
    host, fqdn = hostname_and_fqdn(ctx)
    return DeviceReport(
        hostname=(host or "localhost")[:HOSTNAME_LEN],
        fqdn=fqdn[:HOSTNAME_LEN],
        machine_key=machine_key(ctx),
        os_platform="Linux",
        os_version=(osr.get("VERSION_ID") or osr.get("VERSION") or "")[:OS_FIELD_LEN],
        os_build=(osr.get("BUILD_ID") or osr.get("VERSION") or osr.get("PRETTY_NAME") or "")[:OS_FIELD_LEN],
        os_id=osr.get("ID", "")[:OS_FIELD_LEN],
        os_version_id=osr.get("VERSION_ID", "")[:OS_FIELD_LEN],
        os_codename=(osr.get("VERSION_CODENAME") or osr.get("UBUNTU_CODENAME") or "")[:OS_FIELD_LEN],
        kernel=kernel[:OS_FIELD_LEN],
        architecture=arch[:OS_FIELD_LEN],
        processor=_processor(ctx),
        ip_addresses=ip_addresses(ctx)[:512],
        mac_addresses=mac_addresses(ctx)[:512],
        boot_time=boot_time(ctx),
        logged_on_users=logged_on_users(ctx),
        agent_version=ctx.agent_version[:AGENT_VERSION_LEN],
        running_as_root=ctx.is_root,
    )


@register_collector
class DeviceCollector(Collector):
    name = "device"
    drop_rank = RECREATE  # sent again in full on the next run
    needs_root = False
    interval = 300

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        ctx.memory.pop("resync_device", None)  # every report is complete: nothing to resync
        return [("device", device_report(ctx).model_dump(mode="json"))]
