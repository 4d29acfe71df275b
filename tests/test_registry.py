"""``garrison.registry.Registry``: the one registry of every plugin kind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from garrison.registry import DuplicatePlugin, Registry, UnknownPlugin


class Plugin:
    def __init__(self, name: str, priority: int = 0) -> None:
        self.name, self.priority = name, priority

    def __repr__(self) -> str:
        return f"Plugin({self.name})"


def test_names_lookup_and_a_duplicate_is_refused_with_both_plugins_named() -> None:
    reg: Registry[Plugin] = Registry("widget", name_of=lambda p: p.name)
    a = reg.register(Plugin("a"))
    assert reg["a"] is a and "a" in reg and len(reg) == 1
    with pytest.raises(DuplicatePlugin, match=r"widget 'a' is registered twice: Plugin\(a\) and Plugin\(a\)"):
        reg.register(Plugin("a"))
    with pytest.raises(DuplicatePlugin):
        reg.register(a)
    assert reg["a"] is a  # the first one stays
    with pytest.raises(ValueError, match="needs a name"):
        reg.add("", Plugin("x"))


def test_an_unknown_name_says_what_is_known() -> None:
    reg: Registry[Plugin] = Registry("widget", name_of=lambda p: p.name)
    reg.register(Plugin("b"))
    reg.register(Plugin("a"))
    with pytest.raises(UnknownPlugin) as exc:
        reg["zzz"]
    assert str(exc.value) == "unknown widget 'zzz'; known: a, b"
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, ValueError)  # old callers caught either
    assert reg.get("zzz") is None

    class Custom(Exception):
        pass

    custom: Registry[Plugin] = Registry("widget", unknown=Custom)
    with pytest.raises(Custom, match="unknown widget"):
        custom["x"]


def test_iteration_is_stable_by_order_then_name_never_by_registration() -> None:
    reg: Registry[Plugin] = Registry("widget", name_of=lambda p: p.name, order=lambda p: p.priority)
    for name, prio in (("c", 1), ("b", 2), ("a", 2), ("d", 0)):
        reg.register(Plugin(name, prio))
    assert list(reg) == ["d", "c", "a", "b"]
    by_name: Registry[Plugin] = Registry("widget", name_of=lambda p: p.name)
    for name in "cab":
        by_name.register(Plugin(name))
    assert list(by_name) == ["a", "b", "c"] and [p.name for p in by_name.values()] == ["a", "b", "c"]


def test_a_package_is_discovered_on_first_read_and_adding_a_plugin_is_adding_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "fakeplugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from garrison.registry import Registry\nREG = Registry('widget', package=__name__)\n")
    (pkg / "one.py").write_text("from fakeplugins import REG\nREG.add('one', 1)\n")
    (pkg / "two.py").write_text("from fakeplugins import REG\nREG.add('two', 2)\n")
    (pkg / "broken.py").write_text("raise RuntimeError('bad plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import fakeplugins  # type: ignore[import-not-found]

        assert "fakeplugins.one" not in sys.modules  # nothing imported before the first read
        with pytest.raises(RuntimeError, match="bad plugin"):
            list(fakeplugins.REG)  # a broken module is an error, not a silently missing plugin
        (pkg / "broken.py").unlink()
        assert dict(fakeplugins.REG) == {"one": 1, "two": 2}

        isolated: Registry[int] = Registry("widget", package="fakeplugins", isolate_failures=True)
        (pkg / "worse.py").write_text("raise RuntimeError('worse')\n")
        list(isolated)  # the agent: a broken collector module is reported, the others still load
        assert isolated.failures == {"worse": "import failed: RuntimeError: worse"}
    finally:
        for name in [n for n in sys.modules if n.startswith("fakeplugins")]:
            sys.modules.pop(name)


def test_every_plugin_kind_is_a_registry() -> None:
    """The plugin kinds of docs/architecture.md, each one Registry (no hand-written dict left)."""
    from garrison.agent.actions import ACTION_HANDLERS
    from garrison.agent.assessment.probes.base import PROBES
    from garrison.agent.collectors.base import COLLECTORS
    from garrison.agent.collectors.packages.base import PACKAGE_SOURCES
    from garrison.agent.sensors.base import SENSORS
    from garrison.agent.spool import SPOOL_POLICIES
    from garrison.core.ingest import UPLOAD_KINDS
    from garrison.core.jobs import JOBS
    from garrison.integrations.notify import NOTIFIERS
    from garrison.integrations.tickets import CONNECTORS
    from garrison.inventory import FORMATS
    from garrison.protocol.actions import ACTION_TYPES
    from garrison.tvm.kb.registry import IMPORTERS
    from garrison.tvm.versions import SCHEMES

    kinds = {"action handler": ACTION_HANDLERS, "probe": PROBES, "collector": COLLECTORS,
             "package source": PACKAGE_SOURCES, "sensor": SENSORS, "upload kind": UPLOAD_KINDS, "job": JOBS,
             "ticket connector": CONNECTORS, "inventory format": FORMATS, "machine action type": ACTION_TYPES,
             "feed importer": IMPORTERS, "version scheme": SCHEMES, "notifier": NOTIFIERS,
             "spool policy": SPOOL_POLICIES}
    for kind, reg in kinds.items():
        assert isinstance(reg, Registry) and reg.kind == kind
    # discovered packages: the plugins are there without anyone importing their modules
    assert {"dpkg", "rpm", "pep440", "semver"} <= set(SCHEMES)
    assert {"CollectInventory", "RunConfigurationAssessment", "Offboard", "RunAntiVirusScan"} == set(ACTION_TYPES)
    assert set(ACTION_TYPES) <= set(ACTION_HANDLERS)
    assert {"webhook", "jira", "github", "servicenow"} == set(CONNECTORS)
    assert {"device", "inventory", "runtime", "assessment"} <= set(COLLECTORS)
    assert {"email", "webhook"} == set(NOTIFIERS) and NOTIFIERS["email"].connection_kind == "smtp"
    # a collector's drop rank is its kind's spool policy
    assert SPOOL_POLICIES["device"].drop_rank < SPOOL_POLICIES["events"].drop_rank < SPOOL_POLICIES["inventory"].drop_rank


def test_a_plugin_added_before_the_first_read_meets_the_discovered_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "fakeplugins2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from garrison.registry import Registry\nREG = Registry('widget', package=__name__)\n")
    (pkg / "one.py").write_text("from fakeplugins2 import REG\nREG.add('one', 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import fakeplugins2  # type: ignore[import-not-found]

        with pytest.raises(DuplicatePlugin, match="widget 'one' is registered twice: 1 and 2"):
            fakeplugins2.REG.add("one", 2)  # the clash is this call's error ...
        assert dict(fakeplugins2.REG) == {"one": 1}  # ... and the registry stays whole
    finally:
        for name in [n for n in sys.modules if n.startswith("fakeplugins2")]:
            sys.modules.pop(name)
