"""The device collector on a prepared file tree, on this machine, and as an unprivileged user."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.device import (
    UTMP,
    DeviceCollector,
    device_report,
    ipv4_from_fib_trie,
    ipv4_from_ip_json,
    ipv6_from_if_inet6,
    machine_key,
    parse_os_release,
    parse_utmp,
)
from garrison.protocol import DeviceReport

REPO = Path(__file__).resolve().parents[3]
UBUNTU_OS_RELEASE = REPO / "tests" / "data" / "inventories" / "ubuntu-20.04-ga.os-release"

# /proc/net/fib_trie of a host with lo, eth0 (192.0.2.2/24) and docker0 (172.17.0.1/16), as the kernel writes it.
FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
        |-- 172.17.0.1
           /32 host LOCAL
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.2
              /32 host LOCAL
"""

IF_INET6 = """fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""

LOGIN_TIME = 1_700_000_000


def utmp_entry(ut_type: int, user: str, line: str, host: str = "", when: int = LOGIN_TIME) -> bytes:
    return UTMP.pack(ut_type, 4242, line.encode(), b"ts/0", user.encode(), host.encode(), 0, 0, 0, when, 0,
                     b"\0" * 16)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    files = {
        "etc/os-release": UBUNTU_OS_RELEASE.read_text(),
        "etc/hostname": "web-01\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "proc/stat": "cpu  1 2 3 4\nintr 0\nctxt 1\nbtime 1700000000\nprocesses 99\n",
        "proc/sys/kernel/osrelease": "5.4.0-42-generic\n",
        "proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4\n",
        "proc/net/fib_trie": FIB_TRIE,
        "proc/net/if_inet6": IF_INET6,
        "sys/class/net/lo/address": "00:00:00:00:00:00\n",
        "sys/class/net/eth0/address": "52:54:00:AB:CD:EF\n",
        "sys/class/net/docker0/address": "02:42:ac:11:00:01\n",
        "sys/class/net/tun0/address": "\n",
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "run").mkdir()
    (root / "run" / "utmp").write_bytes(
        utmp_entry(2, "reboot", "~", when=LOGIN_TIME - 60)  # BOOT_TIME
        + utmp_entry(6, "LOGIN", "tty1")  # LOGIN_PROCESS: a getty, nobody logged in
        + utmp_entry(7, "alice", "pts/0", "198.51.100.7")
        + utmp_entry(7, "bob", "tty2")
        + utmp_entry(8, "", "pts/1")  # DEAD_PROCESS
    )
    return root


def ctx_for(root: Path, state: Path, *, is_root: bool = True) -> AgentContext:
    return AgentContext(state_dir=state, agent_version="9.9.9", root=root, is_root=is_root)


def test_report_from_a_prepared_tree(tree: Path, tmp_path: Path) -> None:
    uploads = DeviceCollector().collect(ctx_for(tree, tmp_path / "state", is_root=False))
    assert [kind for kind, _ in uploads] == ["device"]
    report = DeviceReport.model_validate(uploads[0][1])
    assert report.hostname == "web-01"
    assert (report.os_platform, report.os_id, report.os_version, report.os_version_id, report.os_codename) == (
        "Linux", "ubuntu", "20.04", "20.04", "focal")
    assert report.os_build == "20.04 LTS (Focal Fossa)"
    assert report.kernel == "5.4.0-42-generic"
    assert report.processor == "Intel(R) Xeon(R) CPU E5-2680 v4"
    assert report.ip_addresses == ["172.17.0.1", "192.0.2.2", "fe80::fc:ff:fe00:1", "fd00::2"]
    assert report.mac_addresses == ["02:42:ac:11:00:01", "52:54:00:ab:cd:ef"]  # no lo, no empty address
    assert report.boot_time == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert [(u.user, u.terminal, u.host) for u in report.logged_on_users] == [
        ("alice", "pts/0", "198.51.100.7"), ("bob", "tty2", "")]
    assert report.logged_on_users[0].since == dt.datetime.fromtimestamp(LOGIN_TIME, dt.UTC)
    assert report.machine_key == hashlib.sha256(b"0123456789abcdef0123456789abcdef").hexdigest()
    assert report.agent_version == "9.9.9" and report.running_as_root is False


def test_os_release_falls_back_to_usr_lib(tree: Path, tmp_path: Path) -> None:
    (tree / "etc" / "os-release").unlink()
    (tree / "usr" / "lib").mkdir(parents=True)
    (tree / "usr" / "lib" / "os-release").write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
                                                      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    report = device_report(ctx_for(tree, tmp_path / "state"))
    assert (report.os_id, report.os_version, report.os_codename) == ("debian", "12", "bookworm")
    assert report.os_build == "Debian GNU/Linux 12 (bookworm)"


def test_os_release_quoting() -> None:
    parsed = parse_os_release('# comment\nNAME="Foo \\"Bar\\" \\$HOME"\nID=foo\nVERSION=\'1 (x)\'\n\nbroken line\n')
    assert parsed == {"NAME": 'Foo "Bar" $HOME', "ID": "foo", "VERSION": "1 (x)"}


def test_machine_key_fallbacks(tree: Path, tmp_path: Path) -> None:
    (tree / "etc" / "machine-id").unlink()
    (tree / "var" / "lib" / "dbus").mkdir(parents=True)
    (tree / "var" / "lib" / "dbus" / "machine-id").write_text("fedcba9876543210fedcba9876543210\n")
    state = tmp_path / "state"
    assert machine_key(ctx_for(tree, state)) == hashlib.sha256(b"fedcba9876543210fedcba9876543210").hexdigest()
    # No machine id at all: a random one, kept in the state directory so the key stays the same.
    (tree / "var" / "lib" / "dbus" / "machine-id").unlink()
    first = machine_key(ctx_for(tree, state))
    assert first == machine_key(ctx_for(tree, state))
    assert (state / "machine-id").stat().st_mode & 0o777 == 0o600
    assert first != machine_key(ctx_for(tree, tmp_path / "other-state"))


def test_logind_sessions_when_there_is_no_utmp(tree: Path, tmp_path: Path) -> None:
    (tree / "run" / "utmp").unlink()
    sessions = tree / "run" / "systemd" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "3").write_text("UID=1000\nUSER=carol\nACTIVE=1\nSTATE=active\nTTY=pts/2\nREMOTE_HOST=203.0.113.9\n"
                                "CLASS=user\nREALTIME=1700000000000000\n")
    (sessions / "c1").write_text("UID=0\nUSER=gdm\nCLASS=greeter\n")
    (sessions / "3.ref").write_text("")
    report = device_report(ctx_for(tree, tmp_path / "state"))
    assert [(u.user, u.terminal, u.host) for u in report.logged_on_users] == [("carol", "pts/2", "203.0.113.9")]
    assert report.logged_on_users[0].since == dt.datetime.fromtimestamp(LOGIN_TIME, dt.UTC)


def test_parsers_skip_what_does_not_belong() -> None:
    assert ipv4_from_fib_trie(FIB_TRIE) == ["172.17.0.1", "192.0.2.2"]
    assert ipv6_from_if_inet6(IF_INET6 + "garbage\n") == ["fe80::fc:ff:fe00:1", "fd00::2"]
    ip_json = json.dumps([{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
                          {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.1.2.3"},
                                                           {"family": "inet6", "local": "fd00::5"}]}])
    assert ipv4_from_ip_json(ip_json) == ["10.1.2.3"]
    assert parse_utmp(b"\0" * (UTMP.size - 1)) == []  # a torn trailing record is ignored
    assert UTMP.size == 384  # glibc's struct utmp


def test_missing_files_give_a_sparse_but_valid_report(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    report = device_report(ctx_for(empty, tmp_path / "state"))
    assert report.hostname == "localhost" and report.os_platform == "Linux"
    assert report.ip_addresses == [] and report.mac_addresses == [] and report.boot_time is None
    assert len(report.machine_key) == 64


def test_this_machine(tmp_path: Path) -> None:
    report = device_report(AgentContext(state_dir=tmp_path / "state", agent_version="1"))
    assert report.hostname == socket.gethostname()
    assert report.kernel == os.uname().release and report.architecture == os.uname().machine
    assert report.running_as_root is (os.geteuid() == 0)
    if Path("/etc/machine-id").exists():
        want = hashlib.sha256(Path("/etc/machine-id").read_text().strip().encode()).hexdigest()
        assert report.machine_key == want
    # `ip -j addr` (used on this machine) and /proc/net/fib_trie (the fallback) agree.
    if shutil.which("ip"):
        v4 = [a for a in report.ip_addresses if ":" not in a]
        assert sorted(v4) == sorted(ipv4_from_fib_trie(Path("/proc/net/fib_trie").read_text()))
    btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
    assert report.boot_time == dt.datetime.fromtimestamp(btime, dt.UTC)
    for mac in report.mac_addresses:
        assert len(mac) == 17 and mac != "00:00:00:00:00:00"


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="garrison-nobody-"))
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# Python and its packages live where an unprivileged user may not read (e.g. /root/.pyenv), so
# the child loads all code first (one run as root, which also imports what the stdlib loads
# lazily, like codecs) and then drops to nobody for good: the run that counts does everything
# as nobody — reading /proc, /sys, /etc, running `ip`, writing its state directory.
DROP_AND_COLLECT = """
import json, os, sys, tempfile
from pathlib import Path
from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.device import DeviceCollector
DeviceCollector().collect(AgentContext(state_dir=Path(tempfile.mkdtemp()), agent_version="x"))
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
assert os.getresuid() == (65534, 65534, 65534)
ctx = AgentContext(state_dir=Path(sys.argv[1]), agent_version="x")
print(json.dumps({"euid": os.geteuid(), "uploads": DeviceCollector().collect(ctx)}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_runs_unprivileged(nobody_dir: Path) -> None:
    state = nobody_dir / "state"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "src"),
           "HOME": str(nobody_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", DROP_AND_COLLECT, str(state)], capture_output=True, text=True, check=False,
                          timeout=120, env=env, cwd=nobody_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["euid"] == 65534
    ((kind, payload),) = out["uploads"]
    report = DeviceReport.model_validate(payload)
    as_root = device_report(AgentContext(state_dir=nobody_dir / "root-state", agent_version="x"))
    assert kind == "device" and report.running_as_root is False
    assert report.hostname == as_root.hostname and report.machine_key == as_root.machine_key
    assert report.kernel == as_root.kernel and report.os_id == as_root.os_id
    assert report.ip_addresses == as_root.ip_addresses and report.mac_addresses == as_root.mac_addresses
    assert report.boot_time == as_root.boot_time
