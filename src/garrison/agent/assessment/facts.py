"""Parsers of system databases shared by several probes, cached per evaluation.

Each reads real files under ``ctx.root``: the user and group databases, the package
database, systemd unit links, mounts, kernel modules and configuration, processes.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass

from garrison.agent.assessment import sysexec
from garrison.agent.assessment.env import Env, ProbeError

# --- users and groups ---------------------------------------------------------------------


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    password: str
    uid: int
    gid: int
    home: str
    shell: str
    line: int


@dataclass(frozen=True)
class GroupEntry:
    name: str
    password: str
    gid: int
    members: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class ShadowEntry:
    name: str
    hash: str
    last_change: int | None
    min_days: int | None
    max_days: int | None
    warn_days: int | None
    inactive: int | None
    line: int

    @property
    def has_usable_password(self) -> bool:
        return bool(self.hash) and not self.hash.startswith(("!", "*"))


def _int_or_none(s: str) -> int | None:
    s = s.strip()
    if not s:
        return None
    try:
        return int(s)
    except ValueError:
        return None


def passwd(env: Env) -> list[PasswdEntry]:
    def load() -> list[PasswdEntry]:
        out = []
        for n, line in enumerate(env.require_text("/etc/passwd").splitlines(), 1):
            f = line.split(":")
            if len(f) < 7 or line.startswith("#"):
                if line.startswith(("+", "-")):
                    out.append(PasswdEntry(f[0], "", -1, -1, "", "", n))
                continue
            uid, gid = _int_or_none(f[2]), _int_or_none(f[3])
            out.append(
                PasswdEntry(f[0], f[1], -1 if uid is None else uid, -1 if gid is None else gid, f[5], f[6], n)
            )
        return out

    return env.cached("passwd", load)


def group(env: Env) -> list[GroupEntry]:
    def load() -> list[GroupEntry]:
        out = []
        for n, line in enumerate(env.require_text("/etc/group").splitlines(), 1):
            f = line.split(":")
            if len(f) < 4 or line.startswith("#"):
                if line.startswith(("+", "-")):
                    out.append(GroupEntry(f[0], "", -1, (), n))
                continue
            gid = _int_or_none(f[2])
            members = tuple(m for m in f[3].split(",") if m)
            out.append(GroupEntry(f[0], f[1], -1 if gid is None else gid, members, n))
        return out

    return env.cached("group", load)


def shadow(env: Env) -> list[ShadowEntry]:
    def load() -> list[ShadowEntry]:
        out = []
        for n, line in enumerate(env.require_text("/etc/shadow").splitlines(), 1):
            f = line.split(":")
            if len(f) < 2 or line.startswith("#"):
                continue
            f += [""] * (9 - len(f))
            out.append(
                ShadowEntry(
                    f[0],
                    f[1],
                    _int_or_none(f[2]),
                    _int_or_none(f[3]),
                    _int_or_none(f[4]),
                    _int_or_none(f[5]),
                    _int_or_none(f[6]),
                    n,
                )
            )
        return out

    return env.cached("shadow", load)


def login_defs(env: Env) -> dict[str, str]:
    """login.defs: whitespace separated, the last occurrence of a key wins (shadow's getdef)."""

    def load() -> dict[str, str]:
        out: dict[str, str] = {}
        for line in (env.read_text("/etc/login.defs") or "").splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and not parts[0].startswith("#"):
                out[parts[0]] = parts[1].strip().strip('"')
        return out

    return env.cached("login.defs", load)


def uid_min(env: Env) -> int:
    try:
        return int(login_defs(env).get("UID_MIN", "1000"))
    except ValueError:
        return 1000


# --- packages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Packages:
    source: str  # the database file read
    versions: dict[str, str]
    lines: dict[str, int]


DPKG_STATUS = "/var/lib/dpkg/status"
RPMDB_SQLITE = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
RPMDB_BDB = ("/var/lib/rpm/Packages", "/usr/lib/sysimage/rpm/Packages")


def packages(env: Env) -> Packages:
    return env.cached("packages", lambda: _load_packages(env))


def _load_packages(env: Env) -> Packages:
    text = env.read_text(DPKG_STATUS)
    if text is not None:
        return _parse_dpkg(text)
    for db in RPMDB_SQLITE:
        if env.exists(db):
            return _read_rpmdb_sqlite(env, db)
    for db in RPMDB_BDB:
        if env.exists(db):
            # Berkeley DB rpmdb (RHEL 7/8): read through rpm itself, a fixed command.
            out = sysexec.run(env, "rpm_names")
            if out is None:
                raise ProbeError(f"{db} is a Berkeley DB rpm database; rpm is needed to read it")
            names = {n.strip(): "" for n in out.splitlines() if n.strip()}
            return Packages(db, names, {})
    raise ProbeError("no package database found (dpkg status or rpmdb)")


# The third word of Status: these states leave the package's files on the system.
_DPKG_PRESENT = {"installed", "half-configured", "triggers-pending", "triggers-awaited"}


def _parse_dpkg(text: str) -> Packages:
    versions: dict[str, str] = {}
    lines: dict[str, int] = {}
    name = status = version = ""
    start = 0
    for n, line in enumerate(text.splitlines() + [""], 1):
        if not line.strip():
            if name and status.split()[-1:] and status.split()[-1] in _DPKG_PRESENT:
                versions[name] = version
                lines[name] = start
            name = status = version = ""
            continue
        if line.startswith("Package:"):
            name, start = line[8:].strip(), n
        elif line.startswith("Status:"):
            status = line[7:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return Packages(DPKG_STATUS, versions, lines)


def _read_rpmdb_sqlite(env: Env, db: str) -> Packages:
    try:
        con = sqlite3.connect(f"file:{env.path(db)}?mode=ro&immutable=1", uri=True)
        try:
            rows = con.execute("SELECT key FROM Name").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ProbeError(f"cannot read {db}: {exc}") from exc
    names = {(k.decode() if isinstance(k, bytes) else str(k)): "" for (k,) in rows}
    return Packages(db, names, {})


# --- systemd ------------------------------------------------------------------------------

UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)


def unit_file(env: Env, unit: str) -> str | None:
    """The unit file defining ``unit`` (first in systemd's search order), or None."""
    for d in UNIT_DIRS:
        p = f"{d}/{unit}"
        if env.exists(p):
            return p
    return None


def unit_masked(env: Env, unit: str) -> str | None:
    for d in ("/etc/systemd/system", "/run/systemd/system"):
        p = f"{d}/{unit}"
        target = env.readlink(p)
        if target == "/dev/null":
            return p
    return None


def wants_links(env: Env) -> dict[str, str]:
    """unit name -> the first *.wants/*.requires symlink enabling it (admin and vendor dirs)."""

    def load() -> dict[str, str]:
        out: dict[str, str] = {}
        for d in UNIT_DIRS:
            for sub in env.listdir(d) or []:
                if not sub.endswith((".wants", ".requires")):
                    continue
                for name in env.listdir(f"{d}/{sub}") or []:
                    out.setdefault(name, f"{d}/{sub}/{name}")
        return out

    return env.cached("wants", load)


def sysv_enabled(env: Env, service: str) -> str | None:
    """SysV init: an S?? link in a multi-user runlevel directory."""
    for rl in ("2", "3", "5"):
        for name in env.listdir(f"/etc/rc{rl}.d") or []:
            if name.startswith("S") and name[3:] == service:
                return f"/etc/rc{rl}.d/{name}"
    return None


def systemd_running(env: Env) -> bool:
    # systemd creates this directory at boot when it is PID 1 (sd_booted()).
    return os.path.isdir(env.path("/run/systemd/system"))


def unit_active(env: Env, unit: str) -> bool:
    """Active per systemd's runtime state: units with a running invocation have a link here."""
    return os.path.lexists(env.path(f"/run/systemd/units/invocation:{unit}"))


def process_names(env: Env) -> set[str]:
    """Names (``comm``) of running processes, read from /proc."""

    def load() -> set[str]:
        proc = env.path("/proc")
        try:
            pids = [p for p in os.listdir(proc) if p.isdigit()]
        except OSError as exc:
            raise ProbeError(f"cannot list /proc: {exc.strerror}") from exc
        names: set[str] = set()
        for pid in pids:
            try:
                with open(proc / pid / "comm", encoding="utf-8", errors="replace") as fh:
                    names.add(fh.read().strip())
            except OSError:
                continue  # the process ended meanwhile
        return names

    return env.cached("processes", load)


# --- mounts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]
    file: str
    line: int


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _parse_mounts(text: str, file: str) -> list[MountEntry]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if len(f) < 4 or f[0].startswith("#"):
            continue
        out.append(MountEntry(_unescape(f[0]), _unescape(f[1]), f[2], tuple(f[3].split(",")), file, n))
    return out


def mounts(env: Env) -> list[MountEntry]:
    return env.cached("mounts", lambda: _parse_mounts(env.require_text("/proc/mounts"), "/proc/mounts"))


def fstab(env: Env) -> list[MountEntry]:
    return env.cached("fstab", lambda: _parse_mounts(env.read_text("/etc/fstab") or "", "/etc/fstab"))


# --- kernel -------------------------------------------------------------------------------


def kernel_release(env: Env) -> str:
    text = env.read_text("/proc/sys/kernel/osrelease")
    if text is None:
        raise ProbeError("cannot read the kernel release (/proc/sys/kernel/osrelease)")
    return text.strip()


def kernel_config(env: Env) -> tuple[str, dict[str, str]] | None:
    """The running kernel's build configuration: (file, {CONFIG_X: 'y'|'m'|...}); None if unknown."""

    def load() -> tuple[str, dict[str, str]] | None:
        candidates = ["/proc/config.gz"]
        try:
            candidates.append(f"/boot/config-{kernel_release(env)}")
        except ProbeError:
            pass
        for path in candidates:
            text = env.read_text(path)
            if text is None:
                continue
            cfg: dict[str, str] = {}
            for line in text.splitlines():
                if line.startswith("CONFIG_") and "=" in line:
                    k, v = line.split("=", 1)
                    cfg[k] = v.strip()
            return path, cfg
        return None

    return env.cached("kconfig", load)


def loaded_modules(env: Env) -> dict[str, int] | None:
    """Loaded modules (name -> line in /proc/modules); None when the kernel has no module support."""

    def load() -> dict[str, int] | None:
        text = env.read_text("/proc/modules")
        if text is None:
            return None
        return {line.split()[0]: n for n, line in enumerate(text.splitlines(), 1) if line.strip()}

    return env.cached("modules", load)


@dataclass(frozen=True)
class ModprobeLine:
    directive: str
    args: tuple[str, ...]
    file: str
    line: int


MODPROBE_DIRS = (
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
)


def modprobe_config(env: Env) -> list[ModprobeLine]:
    """modprobe.d directives; like kmod, a file name in an earlier directory hides later ones."""

    def load() -> list[ModprobeLine]:
        chosen: dict[str, str] = {}
        for d in MODPROBE_DIRS:
            for name in env.listdir(d) or []:
                if name.endswith(".conf"):
                    chosen.setdefault(name, f"{d}/{name}")
        files = [chosen[k] for k in sorted(chosen)]
        if env.exists("/etc/modprobe.conf"):
            files.append("/etc/modprobe.conf")
        out = []
        for path in files:
            for n, line in enumerate((env.read_text(path) or "").splitlines(), 1):
                f = line.split("#", 1)[0].split()
                if f:
                    out.append(ModprobeLine(f[0], tuple(f[1:]), path, n))
        return out

    return env.cached("modprobe", load)


def module_name(name: str) -> str:
    return name.replace("-", "_")
