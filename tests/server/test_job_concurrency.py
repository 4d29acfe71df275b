"""Jobs run concurrently unless they conflict: in one runner (threads) and across worker processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from garrison.core import access
from garrison.core.jobs import JOBS, Job, JobRunner
from garrison.registry import Registry
from garrison.server.runner import load_services
from garrison.store.db import Store

WAIT = 30  # seconds: a bound, never reached when the behaviour is right


def _registry(*jobs: Job) -> Registry[Job]:
    reg: Registry[Job] = Registry("job", name_of=lambda j: j.name)
    for job in jobs:
        reg.register(job)
    return reg


def test_non_conflicting_jobs_overlap_in_one_runner(store: Store) -> None:
    with store.system() as s:
        access.create_tenant(s, "t")
    both_in = threading.Barrier(2, timeout=WAIT)  # passes only while both jobs run at once
    met: list[str] = []

    def job(name: str) -> Job:
        def fn(_store: Store, _tenant: int) -> None:
            both_in.wait()
            met.append(name)
        return Job(name, 3600, fn)

    runner = JobRunner(store, jobs=_registry(job("a"), job("b")))
    try:
        assert runner.run_due() == ["a", "b"]
        runner.wait(WAIT)
    finally:
        runner.stop()
    assert sorted(met) == ["a", "b"] and not both_in.broken


def test_conflicting_jobs_never_run_at_once_in_one_runner(store: Store) -> None:
    with store.system() as s:
        access.create_tenant(s, "t")
    inside, release = threading.Event(), threading.Event()
    active: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def job(name: str, conflicts: tuple[str, ...] = ()) -> Job:
        def fn(_store: Store, _tenant: int) -> None:
            active.append(name)
            if len(active) > 1:
                overlaps.append(tuple(active))
            if name == "refresh":
                inside.set()
                release.wait(WAIT)
            active.remove(name)
        return Job(name, 3600, fn, conflicts=frozenset(conflicts))

    # only the timeline job declares the conflict: it binds both sides
    runner = JobRunner(store, jobs=_registry(job("refresh"), job("timeline", ("refresh",)), job("other")))
    try:
        assert runner.run_due() == ["other", "refresh"]  # registry order: by name; timeline waits
        assert inside.wait(WAIT)
        assert runner.run_due() == []  # refresh still runs: timeline is due but not started
        release.set()
        runner.wait(WAIT)
        assert runner.run_due() == ["timeline"]
        runner.wait(WAIT)
    finally:
        release.set()
        runner.stop()
    assert overlaps == [] or all("refresh" not in o or "timeline" not in o for o in overlaps)


WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from garrison.core.jobs import Job
    from garrison.registry import Registry
    from garrison.store.db import Store

    url, which, flag = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def hold(_store, _tenant):  # the first worker: inside its job until the test releases it
        flag.with_suffix(".in").touch()
        for _ in range(1200):
            if flag.with_suffix(".release").exists():
                return
            time.sleep(0.1)

    jobs = Registry("job", name_of=lambda j: j.name)
    for job in (Job("refresh", 60, hold), Job("timeline", 60, lambda s, t: None, conflicts=frozenset({"refresh"})),
                Job("notifications", 60, lambda s, t: None)):
        jobs.register(job)
    store = Store(url)
    for name in which.split(","):
        result = jobs[name].run(store, jobs)
        print(f"{name}: done={result.done} busy={result.busy}")
""")


def test_across_processes_a_conflicting_job_skips_and_another_job_overlaps(store: Store, tmp_path: Path) -> None:
    with store.system() as s:
        tid = access.create_tenant(s, "t").id
    url = store.engine.url.render_as_string(hide_password=False)
    flag = tmp_path / "flag"

    def worker(which: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", WORKER, url, which, str(flag)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    holder = worker("refresh")
    try:
        for _ in range(WAIT * 10):
            if flag.with_suffix(".in").exists() or holder.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert flag.with_suffix(".in").exists(), holder.communicate()[1][-2000:]
        # another process, while "refresh" holds the tenant: the conflicting job skips it, and a job
        # that does not conflict runs beside it
        out, err = worker("timeline,notifications").communicate(timeout=120)
        assert f"timeline: done=[] busy=[{tid}]" in out, err[-2000:]
        assert f"notifications: done=[{tid}] busy=[]" in out, err[-2000:]
        assert holder.poll() is None  # still inside: the two really overlapped
    finally:
        flag.with_suffix(".release").touch()
        out, err = holder.communicate(timeout=120)
    assert f"refresh: done=[{tid}]" in out, err[-2000:]


def test_the_services_declare_their_conflicts() -> None:
    load_services()
    assert JOBS["tvm.prioritisation.timeline"].conflicts_with(JOBS["tvm.prioritisation.refresh"])
    assert JOBS["tvm.prioritisation.refresh"].conflicts_with(JOBS["tvm.prioritisation.timeline"])
    assert not JOBS["integrations.notifications"].conflicts_with(JOBS["tvm.prioritisation.refresh"])
    assert all(j.per_tenant for n, j in JOBS.items() if n.startswith(("tvm.prioritisation", "integrations.t")))
