from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.collectors.base import COLLECTORS, AgentContext, load_all
from garrison.agent.collectors.inventory import RESYNC_KEY, InventoryCollector, InventoryError
from garrison.agent.collectors.packages.base import (
    PACKAGE_SOURCES,
    load_package_sources,
    register_package_source,
)
from garrison.protocol import InventoryReport

DATA = Path(__file__).resolve().parents[2] / "data" / "inventories"


def _make_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(DATA / "ubuntu-20.04-ga.dpkg-status", root / "var/lib/dpkg/status")
    shutil.copy(DATA / "ubuntu-20.04-ga.os-release", root / "etc/os-release")
    return root


def _ctx(tmp_path: Path, root: Path) -> AgentContext:
    return AgentContext(state_dir=tmp_path / "state", agent_version="test", root=root)


def _report(uploads: list[tuple[str, dict[str, Any]]]) -> InventoryReport:
    assert len(uploads) == 1
    kind, payload = uploads[0]
    assert kind == "inventory"
    return InventoryReport.model_validate(payload)  # what the server will do with it


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    # Replace the file the way dpkg does (write a new one, rename over), so the inode changes too.
    tmp = path.with_suffix(".new")
    tmp.write_text(text.replace(old, new, 1))
    os.replace(tmp, path)


def test_registered_by_name() -> None:
    load_all()
    assert COLLECTORS["inventory"] is InventoryCollector
    assert {"dpkg", "apk", "rpm", "python", "npm", "kernel"} <= set(load_package_sources())
    with pytest.raises(ValueError, match="registered twice"):
        register_package_source(PACKAGE_SOURCES["dpkg"])


def test_snapshot_then_delta_then_nothing(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    ctx = _ctx(tmp_path, root)
    collector = InventoryCollector()

    first = _report(collector.collect(ctx))
    assert first.mode == "snapshot"
    assert first.generation == 1 and first.base_generation is None
    assert len(first.packages) == 221
    assert first.os.id == "ubuntu" and first.os.codename == "focal"
    sudo = next(p for p in first.packages if p.name == "sudo")
    assert (sudo.ecosystem, sudo.path) == ("Ubuntu:20.04:LTS", "/var/lib/dpkg/status")
    assert collector.health.ok and collector.health.error is None

    status = root / "var/lib/dpkg/status"
    _rewrite(status, "Version: 1.8.31-1ubuntu1\n", "Version: 1.8.31-1ubuntu1.2\n")
    text = status.read_text()
    start = text.index("Package: ssh-import-id\n")
    end = text.index("\n\n", start) + 2
    status.write_text(text[:start] + text[end:])

    second = _report(collector.collect(ctx))
    assert second.mode == "delta"
    assert (second.generation, second.base_generation) == (2, 1)
    assert second.packages == []
    assert [(p.name, p.version) for p in second.added] == [("sudo", "1.8.31-1ubuntu1.2")]
    assert sorted((p.name, p.version) for p in second.removed) == [
        ("ssh-import-id", "5.10-0ubuntu1"), ("sudo", "1.8.31-1ubuntu1")]
    # The removed entry is the old entry, complete.
    old_sudo = next(p for p in second.removed if p.name == "sudo")
    assert old_sudo == sudo

    assert collector.collect(ctx) == []


def test_deltas_survive_a_restart_and_unchanged_touch_sends_nothing(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    assert _report(InventoryCollector().collect(_ctx(tmp_path, root))).generation == 1
    state = tmp_path / "state" / "inventory.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    # A new process: fresh memory, same state_dir.
    status = root / "var/lib/dpkg/status"
    _rewrite(status, "Package: sudo\n", "Package: sudo\n")  # rewritten, same content
    assert InventoryCollector().collect(_ctx(tmp_path, root)) == []

    _rewrite(status, "Version: 1.8.31-1ubuntu1\n", "Version: 1.8.31-1ubuntu2\n")
    delta = _report(InventoryCollector().collect(_ctx(tmp_path, root)))
    assert (delta.mode, delta.generation, delta.base_generation) == ("delta", 2, 1)
    assert [p.version for p in delta.added] == ["1.8.31-1ubuntu2"]


def test_server_resync_sends_a_full_snapshot(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    ctx = _ctx(tmp_path, root)
    collector = InventoryCollector()
    collector.collect(ctx)
    ctx.memory[RESYNC_KEY] = True
    again = _report(collector.collect(ctx))
    assert (again.mode, again.generation, len(again.packages)) == ("snapshot", 2, 221)
    assert RESYNC_KEY not in ctx.memory  # consumed
    assert collector.collect(ctx) == []


def test_os_upgrade_sends_a_snapshot_with_the_new_ecosystem(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    ctx = _ctx(tmp_path, root)
    collector = InventoryCollector()
    collector.collect(ctx)
    _rewrite(root / "etc/os-release", 'VERSION_ID="20.04"', 'VERSION_ID="22.04"')
    report = _report(collector.collect(ctx))
    assert report.mode == "snapshot" and report.generation == 2
    assert {p.ecosystem for p in report.packages} == {"Ubuntu:22.04:LTS"}


def test_broken_database_keeps_previous_packages_and_reports_health(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    ctx = _ctx(tmp_path, root)
    collector = InventoryCollector()
    collector.collect(ctx)
    status = root / "var/lib/dpkg/status"
    good = status.read_text()
    status.write_text(good[: good.index("Package: sudo\n") + 20])  # truncated mid-stanza
    # Nothing is reported removed; the failure reaches the agent loop, which puts it in health.
    with pytest.raises(InventoryError, match=r"dpkg: InventoryParseError: dpkg-status: line \d+: expected 'Field: value'"):
        collector.collect(ctx)
    assert not collector.health.ok
    with pytest.raises(InventoryError):  # still broken: still said
        collector.collect(ctx)
    status.write_text(good.replace("Version: 1.8.31-1ubuntu1\n", "Version: 1.9.0-1\n"))
    delta = _report(collector.collect(ctx))
    assert [p.version for p in delta.added] == ["1.9.0-1"]
    assert collector.health.ok


def test_alpine_python_and_npm_sources_in_a_prepared_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(DATA / "alpine-3.14.0.apk-installed", root / "lib/apk/db/installed")
    shutil.copy(DATA / "alpine-3.14.0.os-release", root / "etc/os-release")
    site = root / "usr/lib/python3.9/site-packages"
    (site / "PyYAML-5.4.1.dist-info").mkdir(parents=True)
    (site / "PyYAML-5.4.1.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.4.1\nSummary: YAML parser\n\nLong description\n")
    (site / "zope.interface-5.4.0-py3.9.egg-info").mkdir()
    (site / "zope.interface-5.4.0-py3.9.egg-info/PKG-INFO").write_text(
        "Metadata-Version: 1.2\nName: zope.interface\nVersion: 5.4.0\n")
    (site / "six-1.16.0.egg-info").write_text("Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n")
    (site / "broken-1.0.dist-info").mkdir()
    (site / "broken-1.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: broken\n")
    npm = root / "usr/local/lib/node_modules"
    (npm / "npm").mkdir(parents=True)
    (npm / "npm/package.json").write_text('{"name": "npm", "version": "7.17.0", "dependencies": {}}')
    (npm / "@angular/cli").mkdir(parents=True)
    (npm / "@angular/cli/package.json").write_text('{"name": "@angular/cli", "version": "12.0.5"}')

    collector = InventoryCollector()
    report = _report(collector.collect(_ctx(tmp_path, root)))
    by = {(p.manager, p.name): p for p in report.packages}
    assert sum(p.manager == "apk" for p in report.packages) == 26
    assert by[("apk", "libcrypto1.1")].ecosystem == "Alpine:v3.14"
    assert by[("apk", "libcrypto1.1")].source_name == "openssl"
    yaml = by[("python", "pyyaml")]
    assert (yaml.version, yaml.ecosystem, yaml.purl) == ("5.4.1", "PyPI", "pkg:pypi/pyyaml@5.4.1")
    assert yaml.path == "/usr/lib/python3.9/site-packages/PyYAML-5.4.1.dist-info"
    assert by[("python", "zope-interface")].version == "5.4.0"
    assert by[("python", "six")].version == "1.16.0"
    assert ("python", "broken") not in by
    assert "skipped 1 unreadable" in (collector.health.error or "")
    cli = by[("npm", "@angular/cli")]
    assert (cli.version, cli.ecosystem, cli.purl) == ("12.0.5", "npm", "pkg:npm/%40angular/cli@12.0.5")
    assert by[("npm", "npm")].path == "/usr/local/lib/node_modules/npm"
    # Not the live root: no running kernel to report.
    assert not any(p.manager == "kernel" for p in report.packages)
    # Unchanged: nothing sent, and the note about the unreadable distribution stays in health.
    assert collector.collect(_ctx(tmp_path, root)) == []
    assert "skipped 1 unreadable" in (collector.health.error or "")

    # Upgrading a Python distribution renames its dist-info: one removed, one added.
    (site / "PyYAML-5.4.1.dist-info").rename(site / "PyYAML-6.0.1.dist-info")
    (site / "PyYAML-6.0.1.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\n")
    delta = _report(collector.collect(_ctx(tmp_path, root)))
    assert [(p.name, p.version) for p in delta.added] == [("pyyaml", "6.0.1")]
    assert [(p.name, p.version) for p in delta.removed] == [("pyyaml", "5.4.1")]


def test_rpm_database_under_a_prepared_root_is_skipped_with_a_clear_note(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "var/lib/rpm/rpmdb.sqlite").write_bytes(b"SQLite format 3\x00")
    collector = InventoryCollector()
    report = _report(collector.collect(_ctx(tmp_path, root)))
    assert report.packages == []
    assert collector.health.ok
    assert "rpm: skipped: rpm database found under" in (collector.health.error or "")


def test_real_root_of_this_machine(tmp_path: Path) -> None:
    if not Path("/var/lib/dpkg/status").is_file():
        pytest.skip("this machine has no dpkg")
    ctx = AgentContext(state_dir=tmp_path / "state", agent_version="test")
    collector = InventoryCollector()
    report = _report(collector.collect(ctx))
    assert report.mode == "snapshot"
    by_manager: dict[str, set[str]] = {}
    for p in report.packages:
        by_manager.setdefault(p.manager, set()).add(p.name)
    assert "libc6" in by_manager["dpkg"]
    assert by_manager["python"] & {"pip", "pytest"}
    assert len(by_manager["kernel"]) == 1
    libc = next(p for p in report.packages if p.name == "libc6")
    assert libc.source_name == "glibc"
    assert libc.ecosystem.startswith("Debian:") or libc.ecosystem.startswith("Ubuntu:")
    assert collector.health.ok, collector.health.error
    assert collector.collect(ctx) == []
