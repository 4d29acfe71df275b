"""The ``assessment`` collector: configuration checks on start, periodically and on change.

The agent loop calls :meth:`collect` every ``interval`` seconds. A call evaluates the checks when

* it is the first call of this process (agent start),
* the server asked for a resync (``ctx.memory["resync_assessment"]``),
* ``evaluation_interval`` has passed since the last evaluation, or
* a file the checks read changed: the (mtime, size) fingerprint of every watched path is
  recomputed on each call, which costs one stat per path.

The first upload is the full set; later ones are deltas against the generation last sent,
which is kept in ``state_dir/assessment.json`` so that a restart sends a delta, not everything.
A change-triggered evaluation that changed no result sends nothing; a periodic one sends an
(possibly empty) delta, which tells the server when the device was last assessed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from garrison.agent.assessment import Evaluator, fingerprint
from garrison.agent.collectors.base import AgentContext, Collector, register_collector
from garrison.agent.spool import RECREATE
from garrison.protocol.assessment import KIND, AssessmentReport, CheckResult

STATE_FILE = "assessment.json"


def load_state(ctx: AgentContext) -> dict[str, Any]:
    try:
        with open(ctx.state_dir / STATE_FILE, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no (readable) state: the next upload is a full set


def save_state(ctx: AgentContext, state: dict[str, Any]) -> None:
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=ctx.state_dir, prefix=".assessment.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, separators=(",", ":"))
        os.chmod(tmp, 0o600)
        os.replace(tmp, ctx.state_dir / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@register_collector
class AssessmentCollector(Collector):
    name = "assessment"
    drop_rank = RECREATE  # sent again in full on the next run
    interval = 60  # how often the fingerprint is checked
    evaluation_interval: ClassVar[int] = 4 * 3600  # full re-evaluation even without a change

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        mem = ctx.memory
        evaluator = mem.get("assessment_evaluator")
        if not isinstance(evaluator, Evaluator):
            evaluator = mem["assessment_evaluator"] = Evaluator()
        state = mem.get("assessment_state")
        if state is None:
            state = mem["assessment_state"] = load_state(ctx)
        resync = bool(mem.get("resync_assessment"))
        period = int(mem.get("assessment_interval", self.evaluation_interval))
        now = time.time()
        last = mem.get("assessment_last_eval")

        reason = None
        if last is None:
            reason = "start"
        elif resync:
            reason = "resync"
        elif now - last >= period:
            reason = "periodic"
        elif fingerprint(ctx, set(state.get("fingerprint", {}))) != state.get("fingerprint", {}):
            reason = "changed"
        if reason is None:
            return []

        evaluation = evaluator.evaluate(ctx)
        mem["assessment_last_eval"] = now
        mem["resync_assessment"] = False
        current = {r.check_id: r.model_dump(mode="json", exclude={"check_id"}) for r in evaluation.results}
        previous = state.get("results")
        generation = int(state.get("generation", 0))
        full = resync or not isinstance(previous, dict) or generation < 1
        common: dict[str, Any] = {
            "generation": generation + 1,
            "assessed_at": dt.datetime.now(dt.UTC),
            "checks_version": evaluator.version,
            "os_family": evaluation.os.family,
            "duration_ms": evaluation.duration_ms,
        }
        if full:
            report = AssessmentReport.model_validate(
                {"mode": "full", "results": evaluation.results, **common}
            )
        else:
            assert isinstance(previous, dict)
            changed = [r for r in evaluation.results if previous.get(r.check_id) != current[r.check_id]]
            removed = sorted(cid for cid in previous if cid not in current)
            if not changed and not removed and reason == "changed":
                state["fingerprint"] = fingerprint(ctx, evaluation.watched)
                save_state(ctx, state)
                return []
            report = AssessmentReport.model_validate(
                {
                    "mode": "delta",
                    "base_generation": generation,
                    "results": changed,
                    "removed": removed,
                    **common,
                }
            )
        new_state = {
            "generation": generation + 1,
            "checks_version": evaluator.version,
            "results": current,
            "fingerprint": fingerprint(ctx, evaluation.watched),
        }
        save_state(ctx, new_state)
        mem["assessment_state"] = new_state
        return [(KIND, report.model_dump(mode="json"))]


def results_from_state(state: dict[str, Any]) -> list[CheckResult]:
    """The last results sent, as wire objects (for diagnostics and tests)."""
    return [CheckResult.model_validate({"check_id": k, **v}) for k, v in (state.get("results") or {}).items()]
