"""The console's Advanced hunting page in Chromium: the editor runs KQL on the tenant's telemetry, the
results table shows the answer, errors name the construct, sample queries and the schema browser,
CSV export."""

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


def _send_telemetry(console: Console) -> str:
    dev = console.fleet.devices["ws-01"]
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    events = [{"Table": "DeviceProcessEvents", "Timestamp": (t0 + dt.timedelta(seconds=i)).isoformat(),
               "ActionType": "ProcessCreated", "ProcessId": 300 + i, "FileName": name, "FolderPath": f"/tmp/{name}",
               "ProcessCommandLine": f"/tmp/{name} --hunt-me", "AccountName": "root"}
              for i, name in enumerate(("dropper", "miner"))]
    r = httpx.post(console.url + "/agent/v1/events", headers=dev.headers, json={"seq": 7, "events": events},
                   timeout=120)
    assert r.status_code == 200, r.text
    return dev.device_id


def test_hunting_page_runs_queries(page: Any, console: Console) -> None:
    _send_telemetry(console)
    pg = page
    sign_in(pg, console, "analyst", "/hunting")
    expect(pg.get_by_role("heading", name="Advanced hunting")).to_be_visible()
    editor = pg.get_by_test_id("hunt-query")
    editor.fill("DeviceProcessEvents\n| where ProcessCommandLine has \"hunt-me\"\n"
                "| project FileName, FolderPath, AccountName\n| sort by FileName asc")
    pg.get_by_test_id("hunt-run").click()
    table = pg.get_by_test_id("hunt-results")
    expect(table.locator("thead th")).to_have_text(["FileName", "FolderPath", "AccountName"])
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").nth(0)).to_contain_text("dropper")
    expect(pg.get_by_test_id("hunt-summary")).to_contain_text("2 rows")
    shot(pg, "hunting-01-results")
    with pg.expect_download() as dl:
        pg.get_by_test_id("hunt-export").click()
    rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text())))
    assert rows[0] == ["FileName", "FolderPath", "AccountName"] and [r[0] for r in rows[1:]] == ["dropper", "miner"]

    editor.fill("DeviceProcessEvents\n| make-series count() on Timestamp step 1h")
    pg.get_by_test_id("hunt-run").click()
    expect(pg.get_by_test_id("hunt-error")).to_contain_text("'make-series' operator is not supported (line 2")
    expect(pg.get_by_test_id("hunt-query")).to_have_value(re.compile("make-series"))

    schema = pg.get_by_test_id("hunt-schema")
    schema.get_by_text("DeviceLogonEvents", exact=True).click()
    expect(schema.get_by_text("LogonType")).to_be_visible()
    schema.get_by_role("link", name="Failed logons by source").click()
    expect(pg.get_by_test_id("hunt-results")).to_be_visible()
    expect(pg.get_by_test_id("hunt-query")).to_have_value(re.compile("LogonFailed"))


def test_hunting_follows_the_consoles_device_group_selector(page: Any, console: Console) -> None:
    _send_telemetry(console)
    pg = page
    sign_in(pg, console, "admin", "/hunting")
    q = "DeviceProcessEvents | where ProcessCommandLine has 'hunt-me' | project FileName"
    web = console.fleet.groups["Web servers"]
    pg.goto(console.console("/hunting?") + str(httpx.QueryParams({"group": web, "query": q})))
    expect(pg.get_by_test_id("hunt-results").locator("tbody tr")).to_have_text(["No results."])  # ws-01: no group
    pg.get_by_test_id("hunt-run").click()  # the form keeps the selection
    expect(pg).to_have_url(re.compile(rf"group={web}"))
    expect(pg.get_by_test_id("hunt-results").locator("tbody tr")).to_have_text(["No results."])
    pg.goto(console.console("/hunting?") + str(httpx.QueryParams({"query": q})))
    expect(pg.get_by_test_id("hunt-results").locator("tbody tr")).to_have_count(2)
