from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.collectors.base import COLLECTORS, AgentContext, load_all
from garrison.agent.collectors.runtime import RuntimeCollector
from garrison.protocol import RuntimeReport

DATA = Path(__file__).resolve().parents[2] / "data" / "inventories"

MAPS = """\
55d4c0a00000-55d4c0a21000 r--p 00000000 08:01 1234 /usr/bin/foo
55d4c0a21000-55d4c0a50000 r-xp 00021000 08:01 1234 /usr/bin/foo
7f1c00000000-7f1c00020000 r-xp 00000000 08:01 5678 /usr/lib/x86_64-linux-gnu/libfoo.so.1
7f1c00100000-7f1c00120000 r--p 00000000 08:01 999 /usr/share/bar/data.bin
7f1c00200000-7f1c00220000 r-xp 00000000 08:01 1000 /usr/lib/baz/libbaz.so (deleted)
7f1c00300000-7f1c00320000 r-xp 00000000 08:01 1001 /opt/unpackaged/libx.so
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
"""


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    # dpkg lists name /lib/...; with merged /usr the kernel reports /usr/lib/...
    (info / "foo:amd64.list").write_text("/.\n/usr\n/usr/bin\n/usr/bin/foo\n/lib/x86_64-linux-gnu/libfoo.so.1\n")
    (info / "bar.list").write_text("/usr/share/bar/data.bin\n/usr/lib/bar/plugin.so\n")
    (info / "baz.list").write_text("/usr/lib/baz/libbaz.so\n")
    (root / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    proc = root / "proc"
    (proc / "100").mkdir(parents=True)
    os.symlink("/usr/bin/foo", proc / "100/exe")
    (proc / "100/maps").write_text(MAPS)
    (proc / "2").mkdir()  # a kernel thread: no exe, empty maps
    (proc / "2/maps").write_text("")
    return root


def _report(uploads: list[tuple[str, dict[str, Any]]]) -> RuntimeReport:
    assert len(uploads) == 1 and uploads[0][0] == "runtime"
    return RuntimeReport.model_validate(uploads[0][1])


def test_registered_by_name() -> None:
    load_all()
    assert COLLECTORS["runtime"] is RuntimeCollector


def test_running_executables_and_libraries_map_to_their_packages(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="t", root=root, is_root=True)
    collector = RuntimeCollector()
    before = dt.datetime.now(dt.UTC)
    report = _report(collector.collect(ctx))
    # foo: its executable and its library (via the /lib → usr/lib alias); baz: a deleted
    # (upgraded-away) library still mapped; bar: only a non-executable data mapping.
    assert [(p.manager, p.name) for p in report.packages] == [("dpkg", "baz"), ("dpkg", "foo")]
    assert all(p.last_seen >= before for p in report.packages)
    assert collector.health.ok and collector.health.error is None

    # Seen again within the refresh period: nothing new to say, even after a restart.
    assert collector.collect(ctx) == []
    fresh = AgentContext(state_dir=tmp_path / "state", agent_version="t", root=root, is_root=True)
    assert RuntimeCollector().collect(fresh) == []

    # Past the refresh period the still-running packages are reported with a newer time.
    collector.refresh = 0
    again = _report(collector.collect(ctx))
    assert [p.name for p in again.packages] == ["baz", "foo"]
    assert again.packages[0].last_seen > report.packages[0].last_seen


def test_index_is_rebuilt_when_the_package_database_changes(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="t", root=root, is_root=True)
    collector = RuntimeCollector()
    collector.collect(ctx)
    index = collector.index(ctx)
    assert collector.index(ctx) is index  # cached while nothing changes

    info = root / "var/lib/dpkg/info"
    (info / "qux.list").write_text("/usr/bin/qux\n")
    st = info.stat()
    os.utime(info, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    (root / "proc/101").mkdir()
    os.symlink("/usr/bin/qux", root / "proc/101/exe")
    report = _report(collector.collect(ctx))
    assert [p.name for p in report.packages] == ["qux"]
    assert collector.index(ctx) is not index


def test_apk_file_lists(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    shutil.copy(DATA / "alpine-3.14.0.apk-installed", root / "lib/apk/db/installed")
    (root / "proc/7").mkdir(parents=True)
    os.symlink("/bin/busybox", root / "proc/7/exe")
    (root / "proc/7/maps").write_text("7f00-7f10 r-xp 00000000 08:01 1 /lib/libc.musl-armv7.so.1\n")
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="t", root=root, is_root=False)
    collector = RuntimeCollector()
    report = _report(collector.collect(ctx))
    assert [(p.manager, p.name) for p in report.packages] == [("apk", "busybox"), ("apk", "musl")]
    assert "unprivileged" in (collector.health.error or "")


def test_python_native_extensions_map_to_their_distribution(tmp_path: Path) -> None:
    root = tmp_path / "root"
    site = root / "usr/lib/python3.11/site-packages"
    info = site / "MarkupSafe-2.1.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: MarkupSafe\nVersion: 2.1.3\n")
    (info / "RECORD").write_text(
        "markupsafe/__init__.py,sha256=x,10\n"
        "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so,sha256=y,20\n"
        "MarkupSafe-2.1.3.dist-info/RECORD,,\n")
    (root / "proc/9").mkdir(parents=True)
    (root / "proc/9/maps").write_text(
        "7f00-7f10 r-xp 00000000 08:01 1 "
        "/usr/lib/python3.11/site-packages/markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so\n")
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="t", root=root, is_root=True)
    report = _report(RuntimeCollector().collect(ctx))
    assert [(p.manager, p.name) for p in report.packages] == [("python", "markupsafe")]


def test_no_package_database_says_so(tmp_path: Path) -> None:
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="t", root=tmp_path, is_root=True)
    collector = RuntimeCollector()
    assert collector.collect(ctx) == []
    assert "nothing to map" in (collector.health.error or "")


def test_real_processes_of_this_machine(tmp_path: Path) -> None:
    if not Path("/var/lib/dpkg/info").is_dir():
        pytest.skip("this machine has no dpkg")
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="t")
    collector = RuntimeCollector()
    report = _report(collector.collect(ctx))
    used = {(p.manager, p.name) for p in report.packages}
    # This very test process maps libc.so.6, which belongs to libc6.
    assert ("dpkg", "libc6") in used
    assert collector.health.ok
