"""What each scan type covers: Quick (processes' images, autostart, temp and downloads), Full (all
local file systems, virtual ones skipped), Custom (the paths given).

Paths are read under ``root`` (``/`` on a device; tests point it at a prepared tree) and reported as
device paths. Nothing here follows a symlink while walking (a link to ``/`` cannot loop a scan).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

# Kernel and runtime file systems that hold no files worth scanning (or whose reading has side effects).
VIRTUAL_FS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "rpc_pipefs",
    "nsfs", "ramfs", "selinuxfs", "fuse.gvfsd-fuse", "fuse.portal", "overlay-internal",
})
# Network file systems: a Full scan covers the device's own disks (their servers scan theirs).
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "ceph", "glusterfs",
                        "fuse.glusterfs", "afs", "davfs", "fuse.davfs", "9p", "fuse.s3fs", "fuse.rclone"})
# tmpfs holds real files where malware drops them (/tmp, /dev/shm) but only runtime state elsewhere.
TMPFS_SKIPPED_UNDER = ("/run", "/sys", "/proc", "/dev")
TMPFS_KEPT = ("/dev/shm",)

AUTOSTART = (
    "/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/user",
    "/usr/lib/systemd/user", "/etc/init.d", "/etc/rc.local", "/etc/cron.d", "/etc/cron.hourly",
    "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/crontab", "/var/spool/cron",
    "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc", "/etc/environment", "/etc/ld.so.preload",
    "/etc/xdg/autostart", "/etc/update-motd.d",
)
USER_AUTOSTART = (".bashrc", ".profile", ".bash_profile", ".bash_login", ".zshrc", ".config/autostart",
                  ".config/systemd/user")
TEMP = ("/tmp", "/var/tmp", "/dev/shm")
_EXEC_LINE = re.compile(r"^\s*Exec(?:Start|StartPre|StartPost|Stop|Reload)\s*=\s*(.+)$", re.MULTILINE)


def _homes(root: Path) -> list[str]:
    homes = ["/root"]
    home = root / "home"
    if home.is_dir():
        homes += [f"/home/{p.name}" for p in sorted(home.iterdir()) if p.is_dir() and not p.is_symlink()]
    return homes


_PROC_EXE = re.compile(r"^/proc/\d+/exe$")


def is_process_image(path: str) -> bool:
    """``/proc/<pid>/exe``: a running process's executable, opened through the process (even deleted)."""
    return bool(_PROC_EXE.match(path))


def process_images(proc: Path = Path("/proc")) -> list[str]:
    """The executables of the running processes, each once: the file's path, or ``/proc/<pid>/exe`` when
    the file was deleted after the process started (malware often removes itself: the image is still
    readable through the process)."""
    seen: dict[str, str] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            target = os.readlink(entry / "exe")
        except OSError:  # kernel threads, gone, or not ours to read
            continue
        seen.setdefault(target, f"/proc/{entry.name}/exe" if target.endswith(" (deleted)") else target)
    return list(seen.values())


def unit_exec_targets(text: str) -> list[str]:
    """The programs a systemd unit starts (``ExecStart=-/usr/bin/x …`` → ``/usr/bin/x``)."""
    out = []
    for line in _EXEC_LINE.findall(text):
        program = line.strip().split()[0].lstrip("-@+!:") if line.strip() else ""
        if program.startswith("/"):
            out.append(program)
    return out


def preload_targets(text: str) -> list[str]:
    """The libraries ``/etc/ld.so.preload`` names (white space or colon separated, ``#`` comments)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        out += [p for p in re.split(r"[\s:]+", line) if p.startswith("/")]
    return out


def quick_targets(root: Path = Path("/"), proc: Path = Path("/proc")) -> list[str]:
    """Device paths a Quick scan covers; directories are walked by the scanner."""
    targets: dict[str, None] = {}
    if root == Path("/"):
        for image in process_images(proc):
            targets.setdefault(image, None)
    autostart = list(AUTOSTART) + [f"{h}/{p}" for h in _homes(root) for p in USER_AUTOSTART]
    for path in autostart:
        local = root / path.lstrip("/")
        if not local.exists():
            continue
        targets.setdefault(path, None)
        units = [local] if local.is_file() else [p for p in local.glob("*.service") if p.is_file()]
        for unit in units[:5000]:
            try:
                text = unit.read_text(errors="replace")[:65536]
            except OSError:
                continue
            for program in unit_exec_targets(text):
                targets.setdefault(program, None)
    preload = root / "etc/ld.so.preload"
    if preload.is_file():
        for lib in preload_targets(preload.read_text(errors="replace")[:65536]):
            targets.setdefault(lib, None)
    for path in list(TEMP) + [f"{h}/Downloads" for h in _homes(root)]:
        if (root / path.lstrip("/")).exists():
            targets.setdefault(path, None)
    return list(targets)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def local_mounts(mountinfo: str) -> tuple[list[str], list[str]]:
    """(mount points to scan, mount points to skip) from ``/proc/self/mountinfo``: virtual and network file
    systems are skipped; a bind mount of something already listed (same device and root) is scanned once."""
    scan: list[str] = []
    skip: list[str] = []
    seen: set[tuple[str, str]] = set()
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        device, fs_root, point = fields[2], _unescape(fields[3]), _unescape(fields[4])
        fstype = right.split()[0]
        virtual = fstype in VIRTUAL_FS or fstype in NETWORK_FS or (
            fstype == "tmpfs" and point not in TMPFS_KEPT
            and any(point == p or point.startswith(p + "/") for p in TMPFS_SKIPPED_UNDER))
        if virtual or (device, fs_root) in seen:
            skip.append(point)
            continue
        seen.add((device, fs_root))
        scan.append(point)
    return scan, skip


def full_targets(mountinfo_path: Path = Path("/proc/self/mountinfo")) -> tuple[list[str], list[str]]:
    return local_mounts(mountinfo_path.read_text(errors="replace"))


def walk(paths: Iterable[str], root: Path = Path("/"), skip: Iterable[str] = (),
         one_file_system: bool = False) -> Iterator[str]:
    """Device paths of the regular files under ``paths`` (files given directly included), without
    following symlinks, never entering ``skip``; with ``one_file_system`` never leaving each
    path's file system (a Full scan lists each mount itself)."""
    skipped = {s.rstrip("/") or "/" for s in skip}
    walked: list[str] = []  # start directories already walked (a start inside one is not walked twice)
    files: set[str] = set()

    def covered(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in walked)

    for start in paths:
        local = root / start.lstrip("/")
        try:
            st = os.lstat(local)
        except OSError:
            continue
        if covered(start):
            continue
        if is_process_image(start) and root == Path("/"):
            files.add(start)
            yield start
            continue
        if stat.S_ISREG(st.st_mode):
            if start not in files:
                files.add(start)
                yield start
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        walked.append(start.rstrip("/") or "/")
        stack = [(walked[-1], str(local))]
        while stack:
            device_dir, local_dir = stack.pop()
            try:
                with os.scandir(local_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for e in entries:
                device_path = f"{device_dir.rstrip('/')}/{e.name}"
                try:
                    if e.is_file(follow_symlinks=False):
                        if device_path not in files:
                            yield device_path
                    elif e.is_dir(follow_symlinks=False) and device_path not in skipped:
                        if one_file_system and e.stat(follow_symlinks=False).st_dev != st.st_dev:
                            continue
                        subdirs.append((device_path, e.path))
                except OSError:
                    continue
            stack.extend(reversed(subdirs))
