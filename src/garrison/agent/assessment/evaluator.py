"""Evaluate the configuration checks on this device.

Checks are compiled once: each probe call is resolved to its plugin and its parameters are
validated by the plugin's model, so a bad check fails at load time and never at run time.
A check's result:

* ``not_applicable`` when the device's OS is not in ``applies_to`` or the ``when`` precondition
  does not hold;
* otherwise the outcome of ``test``. Combinators: ``all`` fails if a child fails, ``any`` passes
  if a child passes, ``none`` fails if a child passes; when no child decides, an ``error`` child
  makes the result ``error`` (what could not be read is never taken as compliant), and children
  that are all ``not_applicable`` make the node not applicable.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from garrison.agent.assessment.env import Env, OsFacts, Outcome, ProbeError
from garrison.agent.assessment.probes.base import Probe, ProbeParams, load_probes
from garrison.agent.collectors.base import AgentContext
from garrison.checks import CheckDef, CheckSet, builtin_checks
from garrison.checks.schema import AllOf, AnyOf, Logic, NoneOf, Platform, ProbeCall
from garrison.protocol.assessment import EVIDENCE_VALUE_MAX, CheckResult, Evidence


class CompileError(ValueError):
    """A check refers to an unknown probe or gives it invalid parameters."""


@dataclass(frozen=True)
class Call:
    probe: Probe[Any]
    params: ProbeParams


@dataclass(frozen=True)
class Node:
    kind: str  # all, any, none
    children: tuple[Node | Call, ...]


Compiled = Node | Call


@dataclass(frozen=True)
class CompiledCheck:
    check: CheckDef
    when: Compiled | None
    test: Compiled


@dataclass
class Evaluation:
    results: list[CheckResult]
    watched: set[str]
    os: OsFacts
    duration_ms: int
    counts: dict[str, int] = field(default_factory=dict)


def _compile(node: Logic, check_id: str, probes: dict[str, Probe[Any]]) -> Compiled:
    if isinstance(node, ProbeCall):
        probe = probes.get(node.probe)
        if probe is None:
            raise CompileError(f"check {check_id}: unknown probe {node.probe!r}")
        try:
            params = probe.Params.model_validate(node.params)
        except ValidationError as exc:
            raise CompileError(f"check {check_id}: probe {node.probe}: {exc}") from exc
        return Call(probe, params)
    if isinstance(node, AllOf):
        return Node("all", tuple(_compile(c, check_id, probes) for c in node.all))
    if isinstance(node, AnyOf):
        return Node("any", tuple(_compile(c, check_id, probes) for c in node.any))
    if isinstance(node, NoneOf):
        return Node("none", tuple(_compile(c, check_id, probes) for c in node.none))
    raise CompileError(f"check {check_id}: unknown logic node")  # pragma: no cover


def compile_checks(checks: CheckSet) -> list[CompiledCheck]:
    probes = {name: cls() for name, cls in load_probes().items()}
    out = []
    for c in checks:
        when = _compile(c.when, c.id, probes) if c.when is not None else None
        out.append(CompiledCheck(c, when, _compile(c.test, c.id, probes)))
    return out


def _version_tuple(v: str) -> tuple[int, ...]:
    parts = []
    for p in v.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def platform_matches(platform: Platform, os_facts: OsFacts) -> bool:
    if platform.family != "linux" and os_facts.family != platform.family:
        return False
    if platform.distro is not None and platform.distro not in os_facts.ids:
        return False
    if platform.min_version or platform.max_version:
        if not os_facts.version_id:
            return False
        have = _version_tuple(os_facts.version_id)
        if platform.min_version and have < _version_tuple(platform.min_version):
            return False
        if platform.max_version and have > _version_tuple(platform.max_version):
            return False
    return True


def run_call(env: Env, call: Call) -> Outcome:
    try:
        return call.probe.run(env, call.params)
    except ProbeError as exc:
        return Outcome.err(str(exc))
    except Exception as exc:  # noqa: BLE001 - a probe bug must become an error result, never a pass
        return Outcome.err(f"probe {call.probe.name} failed: {type(exc).__name__}: {exc}")


def _join(outcomes: list[Outcome]) -> str:
    return "; ".join(o.message for o in outcomes if o.message)


def evaluate_node(env: Env, node: Compiled) -> Outcome:
    if isinstance(node, Call):
        return run_call(env, node)
    outs: list[Outcome] = []
    for child in node.children:
        o = evaluate_node(env, child)
        if node.kind == "all" and o.status == "fail":
            return o
        if node.kind == "any" and o.status == "pass":
            return o
        if node.kind == "none" and o.status == "pass":
            return Outcome("fail", o.value, o.file, o.line, f"must not hold: {o.message}")
        outs.append(o)
    errors = [o for o in outs if o.status == "error"]
    if errors:
        return errors[0]
    decided = [o for o in outs if o.status != "not_applicable"]
    if not decided:
        return Outcome("not_applicable", message=_join(outs))
    first = decided[0]
    status = {"all": "pass", "any": "fail", "none": "pass"}[node.kind]
    return Outcome(status, first.value, first.file, first.line, _join(decided))  # type: ignore[arg-type]


def _clip(s: str | None, n: int = EVIDENCE_VALUE_MAX) -> str | None:
    if s is None:
        return None
    return s if len(s) <= n else s[: n - 1] + "…"


def to_result(check_id: str, o: Outcome) -> CheckResult:
    ev = Evidence(
        value=_clip(o.value),
        file=_clip(o.file, 4096),
        line=o.line if o.line and o.line > 0 else None,
        message=_clip(o.message) or "",
    )
    return CheckResult(check_id=check_id, status=o.status, evidence=ev)


def evaluate_check(env: Env, cc: CompiledCheck) -> Outcome:
    os_facts = env.os_facts()
    if not any(platform_matches(p, os_facts) for p in cc.check.applies_to):
        shown = f"{os_facts.id or 'unknown'} {os_facts.version_id}".strip()
        return Outcome.na(f"not for this system ({shown})")
    if cc.when is not None:
        pre = evaluate_node(env, cc.when)
        if pre.status in ("fail", "not_applicable"):
            return Outcome("not_applicable", pre.value, pre.file, pre.line, f"not applicable: {pre.message}")
        if pre.status == "error":
            return pre
    return evaluate_node(env, cc.test)


class Evaluator:
    """Compiled checks, ready to evaluate against a device (``ctx.root``)."""

    def __init__(self, checks: CheckSet | None = None) -> None:
        self.checks = checks if checks is not None else builtin_checks()
        self.compiled = compile_checks(self.checks)

    @property
    def version(self) -> str:
        return self.checks.version

    def evaluate(self, ctx: AgentContext, only: set[str] | None = None) -> Evaluation:
        start = time.perf_counter()
        env = Env(ctx)
        results: list[CheckResult] = []
        counts: dict[str, int] = {}
        for cc in self.compiled:
            if only is not None and cc.check.id not in only:
                continue
            r = to_result(cc.check.id, evaluate_check(env, cc))
            counts[r.status] = counts.get(r.status, 0) + 1
            results.append(r)
        ms = int((time.perf_counter() - start) * 1000)
        return Evaluation(results, env.read_paths, env.os_facts(), ms, counts)


def fingerprint(ctx: AgentContext, paths: set[str]) -> dict[str, list[int]]:
    """(mtime ns, size) of each watched path, [-1, -1] for a missing one: cheap to recompute."""
    out: dict[str, list[int]] = {}
    for p in sorted(paths):
        try:
            st = os.stat(ctx.path(p))
            out[p] = [st.st_mtime_ns, st.st_size]
        except OSError:
            out[p] = [-1, -1]
    return out
