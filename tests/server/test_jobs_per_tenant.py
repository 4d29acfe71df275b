"""for_each_tenant: a lock per (job, tenant) across connections, a failing tenant isolated, a time budget."""

from __future__ import annotations

import threading
import time

from garrison.core import access
from garrison.core.jobs import for_each_tenant, tenant_lock
from garrison.store.db import Store


def tenants(store: Store, n: int) -> list[int]:
    with store.system() as s:
        ids = [access.create_tenant(s, f"t{i}").id for i in range(n)]
    return ids


def test_a_tenant_another_worker_holds_is_skipped_not_waited_for(store: Store) -> None:
    a, b, c = tenants(store, 3)
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:  # its own connection / file handle, like another process
        with tenant_lock(store, "detections", b) as got:
            assert got
            held.set()
            release.wait(30)

    t = threading.Thread(target=other_worker)
    t.start()
    try:
        assert held.wait(30)
        seen: list[int] = []
        started = time.monotonic()
        result = for_each_tenant(store, "detections", lambda _s, tid: seen.append(tid), budget=60)
        assert time.monotonic() - started < 10
        assert seen == [a, c] and result.done == [a, c] and result.busy == [b]
        # another job name is another lock
        assert for_each_tenant(store, "other-job", lambda _s, _t: None, budget=60).done == [a, b, c]
    finally:
        release.set()
        t.join(30)
    assert for_each_tenant(store, "detections", lambda _s, _t: None, budget=60).done == [a, b, c]


def test_one_failing_tenant_does_not_stop_the_others_and_the_budget_defers_the_rest(store: Store) -> None:
    a, b, c = tenants(store, 3)

    def fn(_s: Store, tid: int) -> None:
        if tid == a:
            raise RuntimeError("boom")
        time.sleep(1.2)

    result = for_each_tenant(store, "slow", fn, budget=1.0)
    assert result.failed == [a] and result.done == [b] and result.deferred == [c]
