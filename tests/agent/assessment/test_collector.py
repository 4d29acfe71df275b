"""The ``assessment`` collector: full set first, deltas after, on start, on change, periodically."""

from __future__ import annotations

import json
import os
import stat

from garrison.agent.assessment import Evaluator
from garrison.agent.collectors.assessment import STATE_FILE, AssessmentCollector
from garrison.agent.collectors.base import COLLECTORS, AgentContext, load_all
from garrison.checks import CheckSet, builtin_checks
from garrison.protocol.assessment import AssessmentReport
from tests.agent.assessment.test_evaluator import debian_tree
from tests.agent.assessment.tree import Tree


def reports(out: list[tuple[str, dict]]) -> list[AssessmentReport]:  # type: ignore[type-arg]
    assert all(kind == "assessment" for kind, _ in out)
    return [AssessmentReport.model_validate(payload) for _, payload in out]


def test_registered_by_name() -> None:
    assert load_all()["assessment"] is AssessmentCollector
    assert COLLECTORS["assessment"].interval <= 300


def test_full_then_nothing_then_delta_on_change(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx()
    col = AssessmentCollector()
    (first,) = reports(col.collect(ctx))
    assert (first.mode, first.generation) == ("full", 1)
    assert len(first.results) == len(builtin_checks())
    assert first.os_family == "debian"
    assert first.checks_version == builtin_checks().version
    state_file = ctx.state_dir / STATE_FILE
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    assert col.collect(ctx) == []  # nothing changed: only the fingerprint was checked

    cfg = tree.p("/etc/ssh/sshd_config")
    cfg.write_text(cfg.read_text() + "\nPermitRootLogin no\nX11Forwarding no\n")
    (delta,) = reports(col.collect(ctx))
    assert (delta.mode, delta.base_generation, delta.generation) == ("delta", 1, 2)
    # Only PermitRootLogin changes: the shipped file already sets X11Forwarding yes, and the first value wins.
    assert [(r.check_id, r.status) for r in delta.results] == [("ssh.permit-root-login", "pass")]
    assert delta.results[0].evidence.file == "/etc/ssh/sshd_config"


def test_new_file_in_a_watched_directory_triggers(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx()
    col = AssessmentCollector()
    col.collect(ctx)
    tree.write("/etc/modprobe.d/usb-storage.conf", "install usb-storage /bin/false\n")
    (delta,) = reports(col.collect(ctx))
    assert [(r.check_id, r.status) for r in delta.results] == [("kernel.usb-storage-disabled", "pass")]


def test_change_without_result_change_sends_nothing(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx()
    col = AssessmentCollector()
    col.collect(ctx)
    cfg = tree.p("/etc/ssh/sshd_config")
    cfg.write_text(cfg.read_text() + "\n# a comment changes nothing\n")
    assert col.collect(ctx) == []
    assert col.collect(ctx) == []  # and the new fingerprint was kept


def test_periodic_evaluation_sends_a_possibly_empty_delta(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx(assessment_interval=0)
    col = AssessmentCollector()
    col.collect(ctx)
    (delta,) = reports(col.collect(ctx))
    assert (delta.mode, delta.generation, delta.results, delta.removed) == ("delta", 2, [], [])


def test_resync_sends_the_full_set_and_clears_the_flag(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx()
    col = AssessmentCollector()
    col.collect(ctx)
    ctx.memory["resync_assessment"] = True
    (full,) = reports(col.collect(ctx))
    assert (full.mode, full.generation) == ("full", 2)
    assert ctx.memory["resync_assessment"] is False
    assert col.collect(ctx) == []


def test_restart_continues_with_a_delta(tree: Tree) -> None:
    debian_tree(tree)
    ctx = tree.ctx()
    AssessmentCollector().collect(ctx)
    restarted = AgentContext(state_dir=ctx.state_dir, agent_version="test", root=ctx.root, is_root=True)
    tree.write("/proc/sys/kernel/randomize_va_space", "0\n")  # changed while the agent was down
    (delta,) = reports(AssessmentCollector().collect(restarted))
    assert (delta.mode, delta.base_generation) == ("delta", 1)
    assert [(r.check_id, r.status, r.evidence.value) for r in delta.results] == [("kernel.aslr", "fail", "0")]


def test_checks_removed_from_the_set_are_reported(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx()
    AssessmentCollector().collect(ctx)
    full = builtin_checks()
    kept = {k: v for k, v in full.checks.items() if not k.startswith("ssh.")}
    ctx.memory["assessment_evaluator"] = Evaluator(CheckSet(kept, version="smaller"))
    ctx.memory["assessment_interval"] = 0
    (delta,) = reports(AssessmentCollector().collect(ctx))
    assert delta.removed == sorted(k for k in full.checks if k.startswith("ssh."))
    assert delta.checks_version == "smaller"


def test_unreadable_state_starts_over_with_a_full_set(tree: Tree) -> None:
    ctx = debian_tree(tree).ctx()
    os.makedirs(ctx.state_dir, exist_ok=True)
    (ctx.state_dir / STATE_FILE).write_text("{not json")
    (report,) = reports(AssessmentCollector().collect(ctx))
    assert report.mode == "full"
    saved = json.loads((ctx.state_dir / STATE_FILE).read_text())
    assert saved["generation"] == 1 and len(saved["results"]) == len(builtin_checks())
