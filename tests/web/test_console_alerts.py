"""The console's alerts queue in Chromium: the tenant's alerts with the rule's author, filters, assign to me
and status changes (security operator), read-only for analysts, nothing of another tenant."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from garrison.store.base import utcnow
from garrison.store.models.core import Device
from garrison.store.models.detection import Alert
from tests.web.conftest import Console, shot, sign_in

pytestmark = pytest.mark.browser


def _alert(tenant_id: int, device_id: str, n: int, title: str, severity: str) -> Alert:
    when = utcnow() - dt.timedelta(minutes=n)
    return Alert(id=f"da{n:038d}", tenant_id=tenant_id, device_id=device_id, title=title, severity=severity,
                 category="CredentialAccess", detection_source="CustomDetection", detector_id=f"rule-{n}",
                 dedupe_key=f"k{n}", first_event_time=when, last_event_time=when, mitre_techniques=["T1003"],
                 rule={"author": "Jane Rule-Author", "title": title})


@pytest.fixture(scope="module")
def seeded(console: Console) -> dict[str, str]:
    with console.store.tenant(console.tenant_id) as s:
        devices = list(s.scalars(select(Device).order_by(Device.computer_dns_name).limit(2)))
        s.add(_alert(console.tenant_id, devices[0].id, 1, "LSASS Memory Dump Via Comsvcs DLL", "High"))
        s.add(_alert(console.tenant_id, devices[1].id, 2, "Net.EXE Execution", "Low"))
    with console.store.tenant(console.other_tenant_id) as s:
        other = s.scalar(select(Device).limit(1))
        if other is not None:
            s.add(_alert(console.other_tenant_id, other.id, 3, "Other Tenant Alert", "High"))
    return {"high": "da" + "1".rjust(38, "0"), "device": devices[0].computer_dns_name}


def _rows(pg: Any) -> Any:
    return pg.get_by_test_id("alert-table").locator("tbody tr")


def test_alerts_queue_filters_assigns_and_resolves(page: Any, console: Console, seeded: dict[str, str]) -> None:
    pg = page
    sign_in(pg, console, "security_operator")
    pg.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts", exact=True).click()
    expect(pg.get_by_role("heading", name="Alerts queue")).to_be_visible()
    table = pg.get_by_test_id("alert-table")
    expect(table).to_contain_text("LSASS Memory Dump Via Comsvcs DLL")
    expect(table).to_contain_text("Net.EXE Execution")
    expect(table).to_contain_text("Rule by Jane Rule-Author")
    expect(table).not_to_contain_text("Other Tenant Alert")
    shot(pg, "40-alerts-queue")
    pg.get_by_label("Severity").select_option("High")
    pg.get_by_role("button", name="Apply").click()
    expect(_rows(pg)).to_have_count(1)
    row = pg.locator(f"tr[data-alert='{seeded['high']}']")
    expect(row).to_contain_text(seeded["device"])
    row.get_by_role("button", name="Assign to me").click()
    expect(row.get_by_test_id("alert-assigned")).to_have_text(console.users["security_operator"])
    row.get_by_label("Status").select_option("Resolved")
    row.get_by_role("button", name="Set").click()
    expect(row.get_by_test_id("alert-status")).to_have_text("Resolved")
    expect(pg.get_by_label("Severity")).to_have_value("High")  # back to the same filtered queue
    pg.get_by_label("Status", exact=True).first.select_option("New")
    pg.get_by_role("button", name="Apply").click()
    expect(_rows(pg)).to_have_count(1)
    expect(_rows(pg).first).to_contain_text("No alerts match these filters.")


def test_analysts_see_the_queue_without_actions(page: Any, console: Console, seeded: dict[str, str]) -> None:
    pg = page
    sign_in(pg, console, "analyst", "/alerts")
    expect(pg.get_by_test_id("alert-table")).to_contain_text("Net.EXE Execution")
    expect(pg.get_by_role("button", name="Assign to me")).to_have_count(0)
