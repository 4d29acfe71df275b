"""GET /api/machines/{id}/timeline (+ event, export) and POST /api/machines/{id}/events/import."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from tests.edr.conftest import UTC, Env, conn, enroll, post_events, proc

DATA = Path(__file__).resolve().parents[1] / "data" / "edr" / "windows"


def _agent_device(env: Env) -> tuple[str, dt.datetime]:
    dev = enroll(env.client, env.a.enroll_secret, hostname="lin-1")
    t0 = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    events = [proc(t0, 10, "bash", 1), proc(t0 + dt.timedelta(seconds=1), 11, "curl", 10, cmd="curl http://evil.test"),
              conn(t0 + dt.timedelta(seconds=2), "93.184.216.34", 443, pid=11),
              proc(t0 - dt.timedelta(days=3), 5, "cron", 1)]
    assert post_events(env, dev, 1, events).status_code == 200
    return dev["device_id"], t0


def test_timeline_lists_filters_searches_pages_and_counts(env: Env) -> None:
    mid, t0 = _agent_device(env)
    h = env.a.headers("analyst")
    url = f"/api/machines/{mid}/timeline"
    body = env.client.get(url, headers=h).json()
    assert [r["FileName"] if r["Table"] == "DeviceProcessEvents" else r["Table"] for r in body["value"]] == [
        "DeviceNetworkEvents", "curl", "bash", "cron"]
    assert body["value"][0]["RemoteIPType"] == "Public" and body["value"][0]["Timestamp"].endswith("Z")
    day = {"fromDate": (t0 - dt.timedelta(hours=1)).isoformat(), "toDate": dt.datetime.now(UTC).isoformat()}
    assert len(env.client.get(url, params=day, headers=h).json()["value"]) == 3
    got = env.client.get(url, params={**day, "$filter": "ProcessId eq 11"}, headers=h).json()["value"]
    assert [r["FileName"] for r in got] == ["curl"]
    got = env.client.get(url, params={**day, "$filter": "RemotePort eq 443 and startswith(RemoteIP,'93.')"},
                         headers=h).json()["value"]
    assert [r["Table"] for r in got] == ["DeviceNetworkEvents"]
    got = env.client.get(url, params={"search": "EVIL.test"}, headers=h).json()["value"]
    assert {r["Table"] for r in got} == {"DeviceProcessEvents", "DeviceNetworkEvents"}  # the connection's process
    got = env.client.get(url, params={"tables": "DeviceNetworkEvents"}, headers=h).json()["value"]
    assert len(got) == 1
    page = env.client.get(url, params={"$top": 2, "$skip": 1, "$count": "true", "$select": "Table,ActionType"},
                          headers=h).json()
    assert page["@odata.count"] == 4 and page["value"] == [
        {"Table": "DeviceProcessEvents", "ActionType": "ProcessCreated"}] * 2
    first = env.client.get(url, params={"$orderby": "Timestamp asc", "$top": 1}, headers=h).json()["value"]
    assert first[0]["FileName"] == "cron"
    for bad in ({"$filter": "Nope eq 1"}, {"$orderby": "FileName"}, {"tables": "Secrets"}, {"fromDate": "soon"},
                {"fromDate": "2020-01-01T00:00:00Z", "toDate": "2021-01-01T00:00:00Z"}, {"$top": "20000"}):
        r = env.client.get(url, params=bad, headers=h)
        assert r.status_code == 400, (bad, r.text)


def test_event_panel_has_the_process_tree(env: Env) -> None:
    mid, _t0 = _agent_device(env)
    h = env.a.headers("analyst")
    rows = env.client.get(f"/api/machines/{mid}/timeline", params={"tables": "DeviceNetworkEvents"},
                          headers=h).json()["value"]
    ev = env.client.get(f"/api/machines/{mid}/timeline/DeviceNetworkEvents/{rows[0]['ReportId']}", headers=h).json()
    assert ev["RemoteIP"] == "93.184.216.34"
    tree = ev["processTree"]
    assert tree["process"]["FileName"] == "curl"
    assert [a.get("FileName") for a in tree["ancestors"]] == [None, "bash"]
    r = env.client.get(f"/api/machines/{mid}/timeline/DeviceNetworkEvents/12345", headers=h)
    assert r.status_code == 404


def test_export_is_csv_and_at_most_seven_days(env: Env) -> None:
    mid, t0 = _agent_device(env)
    h = env.a.headers("analyst")
    r = env.client.get(f"/api/machines/{mid}/timeline/export",
                       params={"fromDate": (t0 - dt.timedelta(days=6)).isoformat()}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["Table"] for x in rows] == ["DeviceNetworkEvents", "DeviceProcessEvents", "DeviceProcessEvents",
                                          "DeviceProcessEvents"]
    assert rows[1]["ProcessCommandLine"] == "curl http://evil.test"
    r = env.client.get(f"/api/machines/{mid}/timeline/export", params={"fromDate": (t0 - dt.timedelta(days=8)).isoformat()},
                       headers=h)
    assert r.status_code == 400


def test_import_api_stores_a_windows_log_on_the_machine(env: Env) -> None:
    mid, _t0 = _agent_device(env)
    data = (DATA / "sigma" / "sysmon1_process_creation.evtx").read_bytes()
    url = f"/api/machines/{mid}/events/import"
    assert env.client.post(url, content=data, headers=env.a.headers("analyst")).status_code == 403
    assert env.client.post(url, content=data, headers=env.b.headers("admin")).status_code == 404
    r = env.client.post(url, params={"fileName": "sample.evtx"}, content=data, headers=env.a.headers("security_operator"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["tables"] == {"DeviceProcessEvents": out["stored"]} and out["stored"] >= 2
    got = env.client.get(f"/api/machines/{mid}/timeline", params={"fromDate": "2026-04-20T00:00:00Z",
                                                                  "toDate": "2026-04-21T00:00:00Z"},
                         headers=env.a.headers("analyst")).json()["value"]
    assert {r["FileName"] for r in got} == {"SnippingTool.exe"} and got[0]["DeviceName"] == "lin-1"
    bad = env.client.post(url, params={"fileName": "bad.jsonl"}, content=b'{"EventID": 1}\n{"EventID": 2}\n',
                          headers=env.a.headers("security_operator"))
    assert bad.status_code == 400 and "bad.jsonl line 1" in bad.json()["error"]["message"]


def test_other_tenants_and_groups_see_nothing(env: Env) -> None:
    mid, _t0 = _agent_device(env)
    assert env.client.get(f"/api/machines/{mid}/timeline", headers=env.b.headers("admin")).status_code == 404
    assert env.client.get(f"/api/machines/{mid}/timeline/export", headers=env.b.headers("admin")).status_code == 404
