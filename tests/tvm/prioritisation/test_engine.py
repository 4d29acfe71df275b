"""The recompute engine: its SQLite parallel pass gives exactly the serial result, and binaries of
one source version count once."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from sqlalchemy import select

from garrison.store.models.prioritisation import Recommendation, RecommendationGroup
from tests.tvm.prioritisation.conftest import (
    Agent,
    Env,
    api,
    bump,
    focal_kb,
    ga_packages,
    import_ga,
    make_group,
    recompute,
)

engine = importlib.import_module("garrison.tvm.prioritisation.engine")


def snapshot(env: Env) -> tuple[dict, dict]:
    with env.store.tenant(env.a.id) as s:
        recs = {r.id: (r.exposed_machines_count, r.in_use_machines_count, r.total_machine_count,
                       round(r.exposure_impact, 6), round(r.priority_score, 6))
                for r in s.scalars(select(Recommendation))}
        groups = {(g.recommendation_id, g.group_id): (g.exposed, g.in_use, g.installed, round(g.nl_delta, 6),
                                                      round(g.high_delta, 6), round(g.priority, 6))
                  for g in s.scalars(select(RecommendationGroup))}
    return recs, groups


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the parallel pass exists for SQLite only
def test_parallel_pass_equals_serial(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    focal_kb(env)
    make_group(env, "web", "web-*")
    for i in range(3):
        a = Agent(env, f"web-{i}")
        a.inventory(ga_packages() if i else bump(ga_packages(), "openssl", "1.1.1f-1ubuntu2.12"))
        a.runtime(["libssl1.1", "sudo"] if i == 1 else ["openssl"])
    api(env, "POST", f"/api/machines/{import_ga(env, 'db-1')}/setDeviceValue", role="security_operator",
        json={"DeviceValue": "High"})
    monkeypatch.setattr(engine, "PARALLEL_MIN_DEVICES", 10**9)
    recompute(env)
    serial = snapshot(env)
    monkeypatch.setattr(engine, "PARALLEL_MIN_DEVICES", 0)
    monkeypatch.setattr(engine, "PARALLEL_WORKERS", 2)
    recompute(env)
    assert snapshot(env) == serial
    assert serial[0]["va-_-ubuntu-_-openssl"][1] == 2  # in use through libssl1.1 on web-1, openssl on web-2


def test_binaries_of_one_source_version_count_once(env: Env) -> None:
    focal_kb(env)
    a = Agent(env, "web-1")
    a.inventory(ga_packages())
    recompute(env)
    ex = api(env, "GET", f"/api/machines/{a.id}/exposure")
    openssl = next(i for i in ex["contributions"] if i["recommendationId"] == "va-_-ubuntu-_-openssl")
    assert openssl["software"] == ["libssl1.1 1.1.1f-1ubuntu2", "openssl 1.1.1f-1ubuntu2"]
    ids = [v["id"] for v in openssl["vulnerabilities"]]
    assert len(ids) == len(set(ids))  # each CVE once, though two binaries carry it
    rec = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-openssl")
    assert rec["exposedMachinesCount"] == 1 and rec["weaknesses"] == len(ids)


def test_jobs_refresh_when_something_changed(env: Env) -> None:
    from garrison.core.jobs import JOBS
    from garrison.server.runner import load_services
    from garrison.tvm.prioritisation import refresh_if_changed, service

    load_services()  # the jobs below are registered by their services' modules, as in the server
    focal_kb(env)
    a = Agent(env, "web-1")
    a.inventory(ga_packages())
    JOBS["tvm.prioritisation.refresh"].run(env.store)
    assert api(env, "GET", f"/api/machines/{a.id}")["exposureLevel"] == "High"
    assert refresh_if_changed(env.store, env.a.id) is None  # nothing changed since
    a.inventory(bump(ga_packages(), "sudo", "1.8.31-1ubuntu1.2"))
    assert refresh_if_changed(env.store, env.a.id) is not None
    later = dt.datetime.now(dt.UTC) + service.FORCED_EVERY
    assert refresh_if_changed(env.store, env.a.id, later) is not None  # at least hourly
    for name in ("tvm.prioritisation.timeline", "tvm.prioritisation.housekeeping", "integrations.notifications",
                 "integrations.tickets"):
        JOBS[name].run(env.store)  # and the other jobs run cleanly on a fleet
