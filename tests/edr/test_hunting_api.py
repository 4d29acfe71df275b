"""POST /api/advancedqueries/run: Defender's shape, the caller's tenant and device groups only, errors as
400s naming the construct, per-tenant rate limits (429 with Retry-After)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from garrison.core import access
from garrison.server.ratelimit import RateLimiter
from garrison.store.models.core import Device
from tests.edr.conftest import UTC, Env, conn, enroll, post_events, proc

URL = "/api/advancedqueries/run"


def _devices(env: Env) -> tuple[str, str]:
    t0 = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    ids = []
    for n, host in enumerate(("web-1", "db-1")):
        dev = enroll(env.client, env.a.enroll_secret, machine_key=f"{host}-key-0000000", hostname=host)
        events = [proc(t0, 10 + n, "curl", 1, cmd=f"curl http://evil.test/{host}"),
                  conn(t0 + dt.timedelta(seconds=1), "93.184.216.34", 443, pid=10 + n)]
        assert post_events(env, dev, 1, events).status_code == 200
        ids.append(dev["device_id"])
    return ids[0], ids[1]


def test_run_answers_in_defenders_shape_for_the_callers_tenant(env: Env) -> None:
    web, db = _devices(env)
    q = {"Query": "DeviceProcessEvents | where ProcessCommandLine has 'evil.test' "
                  "| project DeviceId, FileName, Timestamp | sort by DeviceId asc"}
    r = env.client.post(URL, json=q, headers=env.a.headers("analyst"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["Schema"] == [{"Name": "DeviceId", "Type": "String"}, {"Name": "FileName", "Type": "String"},
                              {"Name": "Timestamp", "Type": "DateTime"}]
    assert sorted(row["DeviceId"] for row in body["Results"]) == sorted([web, db])
    assert all(row["Timestamp"].endswith("Z") for row in body["Results"]) and body["Truncated"] is False
    other = env.client.post(URL, json=q, headers=env.b.headers("admin")).json()
    assert other["Results"] == []


def test_a_group_limited_caller_hunts_only_its_groups(env: Env) -> None:
    web, db = _devices(env)
    with env.store.tenant(env.a.id) as s:
        group = access.create_group(s, "web", 1, {"name": "web-*"})
        for d in s.scalars(select(Device)):
            access.assign_group(s, d)
        _row, key = access.create_api_key(s, env.a.id, "analyst", "web only", "test", group_ids=[group.id])
    q = {"Query": "union DeviceProcessEvents, DeviceNetworkEvents | distinct DeviceId"}
    rows = env.client.post(URL, json=q, headers={"Authorization": f"Bearer {key}"}).json()["Results"]
    assert rows == [{"DeviceId": web}]
    everyone = env.client.post(URL, json=q, headers=env.a.headers("analyst")).json()["Results"]
    assert sorted(r["DeviceId"] for r in everyone) == sorted([web, db])


def test_bad_queries_are_400s_that_name_the_construct(env: Env) -> None:
    h = env.a.headers("analyst")
    r = env.client.post(URL, json={"Query": "DeviceProcessEvents\n| make-series count() on Timestamp step 1h"},
                        headers=h)
    assert r.status_code == 400 and "'make-series' operator is not supported (line 2, column 3)" in r.text
    for bad in ({"Query": ""}, {"query": "DeviceInfo"}, {"Query": "x" * 200_000}, {"Query": 5}):
        assert env.client.post(URL, json=bad, headers=h).status_code in (400, 422), bad
    r = env.client.post(URL, json={"Query": "DeviceProcessEvents | extend x = read_csv('/etc/passwd')"}, headers=h)
    assert r.status_code == 400 and "unknown function 'read_csv'" in r.text


def test_calls_are_limited_per_tenant(env: Env) -> None:
    env.app.state.hunting_limits = (RateLimiter(2, burst=2), RateLimiter(1500 / 60, burst=1500))
    q = {"Query": "DeviceInfo | take 1"}
    codes = [env.client.post(URL, json=q, headers=env.a.headers("analyst")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = env.client.post(URL, json=q, headers=env.a.headers("admin"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert env.client.post(URL, json=q, headers=env.b.headers("analyst")).status_code == 200  # another tenant
