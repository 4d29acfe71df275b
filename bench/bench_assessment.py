"""Benchmark of the configuration assessment, and the comparison with Lynis.

    PYTHONPATH=src python bench/bench_assessment.py                 # agent: CPU, wall, RSS on this machine
    PYTHONPATH=src python bench/bench_assessment.py --server 500    # + server: ingest and score for 500 devices
    PYTHONPATH=src python bench/bench_assessment.py --lynis /var/log/lynis-report.dat --lynis-log /var/log/lynis.log

Targets (issue "Configuration posture"): a full evaluation of every check in at most 2 s of CPU,
and the agent's resident memory under 80 MB while assessing. The agent figures are taken before
anything of the server is imported, in this fresh process, as in the agent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_agent(rounds: int) -> dict[str, Any]:
    from garrison.agent.assessment import Evaluator, fingerprint
    from garrison.agent.collectors.base import AgentContext

    cpu0, wall0 = time.process_time(), time.perf_counter()
    evaluator = Evaluator()
    compile_cpu = time.process_time() - cpu0
    compile_wall = time.perf_counter() - wall0
    state = Path(tempfile.mkdtemp(prefix="garrison-bench-"))
    ctx = AgentContext(state_dir=state, agent_version="bench")
    cpus, walls = [], []
    evaluation = None
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        evaluation = evaluator.evaluate(ctx)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    assert evaluation is not None
    c = time.process_time()
    fp_rounds = 50
    for _ in range(fp_rounds):
        fingerprint(ctx, evaluation.watched)
    fp_cpu = (time.process_time() - c) / fp_rounds
    return {
        "checks": len(evaluation.results),
        "statuses": evaluation.counts,
        "compile_cpu_s": round(compile_cpu, 3),
        "compile_wall_s": round(compile_wall, 3),
        "first_eval_cpu_s": round(cpus[0], 3),
        "eval_cpu_s_median": round(sorted(cpus)[len(cpus) // 2], 3),
        "eval_wall_s_median": round(sorted(walls)[len(walls) // 2], 3),
        "process_cpu_s_total": round(time.process_time(), 3),  # imports + compile + every round
        "watched_paths": len(evaluation.watched),
        "fingerprint_cpu_ms": round(fp_cpu * 1000, 2),
        "rss_mb_after": round(rss_mb(), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "results": evaluation.results,
    }


def bench_server(devices: int, results: list[Any]) -> dict[str, Any]:
    import datetime as dt

    from garrison.protocol.assessment import AssessmentReport
    from garrison.store.db import Store
    from garrison.store.models import metadata
    from garrison.store.models.core import Device, Tenant
    from garrison.tvm.assessment import (
        assessment_by_machine,
        failed_checks_for_recommendations,
        ingest_assessment,
        record_daily_history,
        secure_score,
    )

    tmp = Path(tempfile.mkdtemp(prefix="garrison-bench-db-"))
    store = Store(f"sqlite:///{tmp / 'bench.db'}")
    metadata.create_all(store.engine)
    with store.system() as s:
        t = Tenant(name="bench")
        s.add(t)
        s.flush()
        tenant = t.id
    with store.tenant(tenant) as s:
        devs = [Device(computer_dns_name=f"host{i}.bench", os_platform="Debian") for i in range(devices)]
        s.add_all(devs)
        s.flush()
        ids = [d.id for d in devs]
    now = dt.datetime.now(dt.UTC)
    report = AssessmentReport(
        mode="full", generation=1, assessed_at=now, checks_version="bench", results=results
    )
    w = time.perf_counter()
    for dev in ids:
        with store.tenant(tenant) as s:
            ingest_assessment(s, dev, report, now=now)
    ingest_s = time.perf_counter() - w
    with store.tenant(tenant) as s:
        w = time.perf_counter()
        score = secure_score(s, now=now)
        score_s = time.perf_counter() - w
        w = time.perf_counter()
        recs = failed_checks_for_recommendations(s, now=now)
        recs_s = time.perf_counter() - w
        w = time.perf_counter()
        rows = assessment_by_machine(s)
        export_s = time.perf_counter() - w
        w = time.perf_counter()
        record_daily_history(s, now.date(), now=now)
        history_s = time.perf_counter() - w
    store.dispose()
    return {
        "devices": devices,
        "results_per_device": len(results),
        "ingest_full_per_device_ms": round(1000 * ingest_s / devices, 2),
        "secure_score_s": round(score_s, 3),
        "recommendations_s": round(recs_s, 3),
        "recommendations": len(recs),
        "export_rows": len(rows),
        "export_s": round(export_s, 3),
        "daily_history_s": round(history_s, 3),
        "score": score["overall"],
    }


def lynis_comparison(report_path: Path, log_path: Path | None, results: list[Any]) -> list[dict[str, str]]:
    from garrison.checks import builtin_checks
    from garrison.checks.lynis import agrees, check_verdict, parse_report

    rep = parse_report(
        report_path.read_text(errors="replace"), log_path.read_text(errors="replace") if log_path else None
    )
    ours = {r.check_id: r for r in results}
    rows = []
    for check in builtin_checks():
        theirs = check_verdict(rep, check)
        if theirs is None:
            continue
        mine = ours[check.id]
        if mine.status == "not_applicable" and mine.evidence.message.startswith("not for this system"):
            continue  # made for another OS family: not a control both tools look at here
        rows.append(
            {
                "check": check.id,
                "garrison": mine.status,
                "lynis": theirs,
                "agree": "yes" if agrees(mine.status, theirs) else "NO",
                "lynis_refs": ", ".join(check.lynis),
                "evidence": (mine.evidence.message or "")[:90],
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--server", type=int, default=0, metavar="DEVICES", help="also bench ingest and scoring")
    ap.add_argument("--lynis", type=Path, help="lynis-report.dat to compare with")
    ap.add_argument("--lynis-log", type=Path, help="lynis.log (per-test details)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    agent = bench_agent(args.rounds)
    results = agent.pop("results")
    out: dict[str, Any] = {"agent": agent}
    if args.lynis:
        out["lynis"] = lynis_comparison(args.lynis, args.lynis_log, results)
    if args.server:
        out["server"] = bench_server(args.server, results)

    if args.json:
        json.dump(out, sys.stdout, indent=2, default=str)
        print()
        return 0
    print("## Configuration assessment (agent, this machine)")
    for k, v in agent.items():
        print(f"  {k:24} {v}")
    ok_cpu = agent["eval_cpu_s_median"] <= 2.0 and agent["first_eval_cpu_s"] <= 2.0
    ok_rss = agent["peak_rss_mb"] < 80
    print(
        f"  target CPU <= 2 s: {'met' if ok_cpu else 'MISSED'}; target RSS < 80 MB: {'met' if ok_rss else 'MISSED'}"
    )
    if "server" in out:
        print("\n## Server (SQLite)")
        for k, v in out["server"].items():
            print(f"  {k:28} {v}")
    if "lynis" in out:
        rows = out["lynis"]
        agree = sum(r["agree"] == "yes" for r in rows)
        print(f"\n## Garrison vs Lynis: {agree} of {len(rows)} controls agree\n")
        print("| check | Garrison | Lynis | agree | Lynis reference |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| `{r['check']}` | {r['garrison']} | {r['lynis']} | {r['agree']} | {r['lynis_refs']} |")
    return 0 if ok_cpu and ok_rss else 1


if __name__ == "__main__":
    sys.exit(main())
