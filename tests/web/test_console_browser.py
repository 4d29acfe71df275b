"""The console in a real browser (Debian's Chromium through Playwright) against a real server with
a fleet seeded through the agent endpoints, agentless import and the knowledge-base import.

Each test asserts on what the page shows; screenshots of every page go to
``test-artifacts/screenshots/``."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import PASSWORD, Console, shot, sign_in

pytestmark = pytest.mark.browser


def nav(pg: Any, label: str) -> None:
    pg.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()


def high_devices(console: Console) -> list[str]:
    """Names of the devices the prioritisation job rated High (what the donut's segment counts)."""
    from sqlalchemy import select

    from garrison.store.models.core import Device

    with console.store.tenant(console.tenant_id) as s:
        return list(s.scalars(select(Device.computer_dns_name).where(Device.exposure_level == "High")))


def tab(pg: Any, label: str) -> None:
    pg.get_by_role("navigation", name="Sections").get_by_role("link", name=label, exact=True).click()


def rows(pg: Any, testid: str) -> Any:
    return pg.get_by_test_id(testid).locator("tbody tr")


# --- sign-in --------------------------------------------------------------------------------

def test_sign_in_lock_out_message_and_sign_out(page: Any, console: Console) -> None:
    pg = page
    pg.goto(console.console("/devices?exposure=High"))
    expect(pg).to_have_url(re.compile(r"/console/login\?next="))
    expect(pg.get_by_role("heading", name="Garrison")).to_be_visible()
    shot(pg, "01-sign-in")
    pg.get_by_label("User name").fill("ann")
    pg.get_by_label("Password").fill("not the password")
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.get_by_test_id("login-error")).to_have_text("invalid user name or password")
    pg.get_by_label("Password").fill(PASSWORD)
    pg.get_by_role("button", name="Sign in").click()
    # back where we were going, filter kept
    expect(pg).to_have_url(re.compile(r"/console/devices\?exposure=High$"))
    expect(pg.get_by_label("Exposure level")).to_have_value("High")
    expect(pg.locator("header .user")).to_contain_text("ann")
    pg.get_by_role("button", name="Sign out").click()
    expect(pg).to_have_url(re.compile(r"/console/login\?signedout=1"))
    expect(pg.get_by_role("status")).to_contain_text("You have signed out")
    pg.goto(console.console("/devices"))
    expect(pg).to_have_url(re.compile(r"/console/login"))


# --- every page -----------------------------------------------------------------------------

def test_dashboard_cards_show_the_fleet(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console)
    expect(pg.get_by_role("heading", name=re.compile("vulnerability management dashboard"))).to_be_visible()
    score = pg.get_by_test_id("exposure-score").inner_text()
    assert re.match(r"^\d+/100$", score.replace("\n", "")), score
    card = pg.get_by_test_id("card-exposure")
    expect(card.locator("svg.chart polyline.trend")).to_have_count(1)
    expect(card.locator("svg.chart a circle.event")).not_to_have_count(0)
    dist = pg.get_by_test_id("card-distribution")
    expect(dist.locator("svg.donut a")).not_to_have_count(0)
    expect(dist.locator("svg.donut .center")).to_have_text("9")
    recs = pg.get_by_test_id("card-recommendations")
    expect(recs.locator("tbody tr").first).to_contain_text("Update sudo")
    expect(recs.locator("tbody tr").first.locator(".ico.kev")).to_be_visible()
    expect(pg.get_by_test_id("card-topdevices").locator("li").first).to_contain_text("db-01")
    expect(pg.get_by_test_id("card-software").locator("tbody tr")).not_to_have_count(0)
    expect(pg.get_by_test_id("card-events")).to_contain_text("sudo updated")
    shot(pg, "02-dashboard")
    # a donut segment opens the device list filtered to that level (keyboard: focus it, Enter)
    high = sorted(high_devices(console))
    assert {"db-01.corp.example", "web-01.corp.example"} <= set(high)
    segment = dist.locator("svg.donut a", has=pg.locator("path.seg")).first
    expect(segment).to_have_attribute("aria-label", f"High: {len(high)}")
    segment.focus()
    pg.keyboard.press("Enter")
    expect(pg).to_have_url(re.compile(r"/console/devices\?exposure=High"))
    expect(rows(pg, "device-table")).to_have_count(len(high))
    for name in high:
        expect(pg.get_by_test_id("device-table")).to_contain_text(name)


def test_recommendations_sort_filter_search_and_page(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console)
    nav(pg, "Security recommendations")
    expect(pg.get_by_role("heading", name="Security recommendations")).to_be_visible()
    table = pg.get_by_test_id("rec-table")
    expect(rows(pg, "rec-table").first).to_contain_text("Update sudo")
    total = int(re.search(r"of (\d+)", pg.get_by_test_id("row-count").inner_text()).group(1))
    assert total > 20
    shot(pg, "03-recommendations")
    # sort by weaknesses (most first): glibc has 12
    table.get_by_role("link", name="Weaknesses").click()
    expect(pg).to_have_url(re.compile(r"sort=weaknesses&dir=desc"))
    expect(rows(pg, "rec-table").first).to_contain_text("glibc")
    expect(table.locator("th[aria-sort=descending]")).to_contain_text("Weaknesses")
    # threat filter: only the KEV one
    pg.get_by_label("Threats").select_option("kev")
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "rec-table")).to_have_count(1)
    expect(rows(pg, "rec-table").first).to_contain_text("sudo")
    # search (the URL can be shared: open it fresh)
    pg.goto(console.console("/recommendations?q=openssl"))
    expect(rows(pg, "rec-table")).to_have_count(1)
    expect(rows(pg, "rec-table").first).to_contain_text("Update openssl")
    # paging: 25 per page, the rest on page 2
    pg.goto(console.console("/recommendations"))
    expect(rows(pg, "rec-table")).to_have_count(25)
    pg.get_by_role("link", name="Next ›").click()
    expect(rows(pg, "rec-table")).to_have_count(min(25, total - 25))
    expect(pg.get_by_test_id("row-count")).to_contain_text(f"26–{min(50, total)} of {total}")


def test_side_panel_and_request_remediation(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "security_operator")
    pg.goto(console.console("/recommendations?q=openssl"))
    pg.get_by_test_id("rec-link").first.click()
    panel = pg.get_by_test_id("side-panel")
    expect(panel.get_by_role("heading", name=re.compile("Update openssl"))).to_be_visible()
    expect(panel.get_by_test_id("panel-weaknesses").locator("tbody tr")).not_to_have_count(0)
    expect(panel.get_by_test_id("panel-devices").locator("li")).to_have_count(5)
    expect(panel).to_contain_text("Installed on")
    shot(pg, "04-recommendation-panel")
    # Escape closes the panel (keyboard)
    pg.keyboard.press("Escape")
    expect(pg.get_by_test_id("side-panel")).to_have_count(0)
    pg.go_back()
    panel = pg.get_by_test_id("side-panel")
    form = panel.get_by_test_id("remediation-options")
    form.locator("summary").click()
    form.get_by_label("Priority").select_option("High")
    form.get_by_label("Due date").fill("2030-01-31")
    form.get_by_label("Notes").fill("Patch in the January window")
    form.get_by_role("button", name="Submit request").click()
    expect(pg).to_have_url(re.compile(r"/console/remediation\?open="))
    expect(pg.get_by_test_id("flash")).to_contain_text("Remediation activity created for 5 exposed devices")
    panel = pg.get_by_test_id("side-panel")
    expect(panel.get_by_role("heading", name=re.compile("openssl"))).to_be_visible()
    expect(panel).to_contain_text("0 of 5 devices fixed")
    expect(panel).to_contain_text("Patch in the January window")
    expect(panel.get_by_test_id("panel-targets").locator("tbody tr")).to_have_count(5)
    row = rows(pg, "activity-table").filter(has_text="openssl")
    expect(row).to_contain_text("High")
    expect(row).to_contain_text("2030-01-31")
    shot(pg, "05-remediation-activity")
    # export CSV of the activity
    with pg.expect_download() as dl:
        panel.get_by_role("link", name="Export CSV").click()
    data = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8"))))
    assert data[0][:3] == ["Remediation activity", "Device ID", "Device name"]
    assert len(data) == 6 and all(r[6] == "Exposed" for r in data[1:])
    # mark complete: a confirmation first (dismissed: nothing happens), then accepted
    dialogs: list[str] = []
    pg.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    panel.get_by_role("button", name="Mark as complete").click()
    expect(pg.get_by_test_id("side-panel")).to_contain_text("0 of 5 devices fixed")
    assert dialogs and "complete?" in dialogs[0]
    pg.once("dialog", lambda d: d.accept())
    panel.get_by_role("button", name="Mark as complete").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("as complete")
    expect(pg.get_by_test_id("side-panel")).to_contain_text("Completed by sam@acme.example")
    expect(rows(pg, "activity-table").filter(has_text="openssl")).to_contain_text("sam@acme.example")


def test_create_and_cancel_an_exception(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "security_operator")
    pg.goto(console.console("/recommendations?q=xz-utils"))
    pg.get_by_test_id("rec-link").first.click()
    panel = pg.get_by_test_id("side-panel")
    form = panel.get_by_test_id("exception-options")
    form.locator("summary").click()
    form.get_by_label("Justification", exact=True).select_option("ThirdPartyControl")
    form.get_by_label("Justification context").fill("Blocked by the mail gateway")
    # No group selected in the console: every group the user may except is ticked (a scope that works).
    boxes = form.locator("input[name=groups]:not([disabled])")
    assert boxes.count() > 2
    for i in range(boxes.count()):
        expect(boxes.nth(i)).to_be_checked()
        boxes.nth(i).uncheck()
    form.get_by_label("Web servers").check()
    form.get_by_label("Databases").check()
    form.get_by_label("Duration").select_option("90")
    form.get_by_role("button", name="Create exception").click()
    expect(pg).to_have_url(re.compile(r"/console/remediation\?tab=exceptions&open=\d+"))
    expect(pg.get_by_test_id("flash")).to_contain_text("Exception created")
    panel = pg.get_by_test_id("side-panel")
    expect(panel.get_by_test_id("exception-status")).to_have_text("Active")
    expect(panel).to_contain_text("Third party control")
    expect(panel).to_contain_text("Blocked by the mail gateway")
    expect(panel.get_by_test_id("exception-groups").locator("tbody tr")).to_have_count(2)
    row = rows(pg, "exception-table").filter(has_text="xz-utils")
    expect(row).to_contain_text("Web servers, Databases")
    shot(pg, "06-exception")
    # cancel for one group, then for the rest (the confirmation dialog is accepted)
    panel.get_by_test_id("exception-groups").locator("tr", has_text="Databases").get_by_role(
        "button", name="Cancel for this group").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("cancelled for the chosen device group")
    panel = pg.get_by_test_id("side-panel")
    expect(panel.get_by_test_id("exception-groups").locator("tr", has_text="Databases")).to_contain_text("Cancelled")
    pg.once("dialog", lambda d: d.accept())
    panel.get_by_role("button", name="Cancel exception for all groups").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("Exception cancelled")
    expect(pg.get_by_test_id("side-panel").get_by_test_id("exception-status")).to_have_text("Cancelled")
    pg.get_by_label("Status").select_option("Cancelled")
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "exception-table").filter(has_text="xz-utils")).to_have_count(1)


def test_software_inventory_and_software_page(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    nav(pg, "Software inventory")
    expect(pg.get_by_role("heading", name="Software inventory")).to_be_visible()
    expect(rows(pg, "software-table").first).to_contain_text("sudo")
    shot(pg, "07-software-inventory")
    pg.get_by_label("Search").fill("sudo")
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "software-table")).to_have_count(1)
    rows(pg, "software-table").first.get_by_role("link", name="sudo").click()
    expect(pg.get_by_role("heading", name=re.compile("^sudo"))).to_be_visible()
    summary = pg.get_by_test_id("software-summary")
    expect(summary).to_contain_text("5 devices")
    expect(summary).to_contain_text("4 (not patched)")
    expect(pg.get_by_test_id("software-recs")).to_contain_text("Update sudo to 1.8.31-1ubuntu1.2")
    shot(pg, "08-software-page")
    tab(pg, "Discovered vulnerabilities")
    expect(pg.get_by_test_id("software-vulns")).to_contain_text("CVE-2021-3156")
    tab(pg, "Installed devices")
    expect(rows(pg, "software-devices")).to_have_count(5)
    tab(pg, "Version distribution")
    expect(rows(pg, "software-versions")).to_have_count(2)
    got = [r.split("\t") for r in rows(pg, "software-versions").all_inner_texts()]
    assert [[c.strip() for c in r] for r in got] == [["1.8.31-1ubuntu1", "4", "2"], ["1.8.31-1ubuntu1.2", "1", "0"]]
    tab(pg, "Event timeline")
    expect(pg.get_by_test_id("software-history")).to_contain_text("web-03")
    expect(pg.get_by_test_id("software-history")).to_contain_text("updated")


def test_weaknesses_and_cve_panel(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    nav(pg, "Weaknesses")
    expect(pg.get_by_role("heading", name="Weaknesses")).to_be_visible()
    expect(pg.get_by_test_id("weakness-counts")).to_contain_text("known exploited")
    pg.get_by_label("Threats").select_option("kev")
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "weakness-table")).to_have_count(1)
    kev_row = rows(pg, "weakness-table").filter(has_text="CVE-2021-3156")
    expect(kev_row.locator(".ico.kev")).to_be_visible()
    expect(kev_row).to_contain_text("7.8")
    pg.goto(console.console("/weaknesses"))
    shot(pg, "09-weaknesses")
    pg.get_by_label("Severity").select_option("High")
    pg.get_by_role("button", name="Apply").click()
    for sev in rows(pg, "weakness-table").locator("td:nth-child(2)").all_inner_texts():
        assert sev.strip() == "High"
    pg.goto(console.console("/weaknesses?q=CVE-2021-3156"))
    rows(pg, "weakness-table").first.get_by_role("link", name="CVE-2021-3156").click()
    panel = pg.get_by_test_id("side-panel")
    expect(panel.get_by_role("heading", name="CVE-2021-3156")).to_be_visible()
    expect(panel.get_by_test_id("threat-insights")).to_contain_text("Known exploited in the wild")
    expect(panel.get_by_test_id("threat-insights")).to_contain_text("EPSS")
    expect(panel.get_by_test_id("panel-devices").locator("li")).to_have_count(4)
    expect(panel).to_contain_text("Update sudo")
    shot(pg, "10-cve-panel")


def test_event_timeline_filters(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    nav(pg, "Event timeline")
    expect(pg.get_by_role("heading", name="Event timeline")).to_be_visible()
    table = pg.get_by_test_id("timeline-table")
    expect(table).to_contain_text("sudo updated on 1 device")
    expect(table).to_contain_text("New vulnerability")
    expect(pg.locator("svg.chart polyline.trend")).to_have_count(1)
    shot(pg, "11-event-timeline")
    pg.get_by_label("Software updated").check()
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "timeline-table")).to_have_count(1)
    row = rows(pg, "timeline-table").first
    expect(row).to_contain_text("sudo")
    expect(row).to_contain_text("lowered")
    row.get_by_role("link").first.click()
    expect(pg.get_by_test_id("side-panel")).to_contain_text("Originally impacted")
    # a date range before anything happened shows nothing
    pg.goto(console.console("/timeline?start=2020-01-01&end=2020-01-31"))
    expect(table).to_contain_text("No events in this period")


def test_devices_list_and_device_page(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "security_operator")
    nav(pg, "Devices")
    expect(rows(pg, "device-table")).to_have_count(9)
    shot(pg, "12-devices")
    pg.get_by_label("Search").fill("web-0")
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "device-table")).to_have_count(3)
    pg.get_by_role("link", name="web-01.corp.example").click()
    expect(pg.get_by_role("heading", name="web-01.corp.example")).to_be_visible()
    expect(pg.locator(".chips")).to_contain_text("High")
    expect(pg.get_by_test_id("device-tags")).to_contain_text("internet-facing")
    shot(pg, "13-device-page")
    # tags and device value
    pg.get_by_label("New tag").fill("pci")
    pg.get_by_role("button", name="Add tag").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("Tag 'pci' added")
    expect(pg.get_by_test_id("device-tags")).to_contain_text("pci")
    pg.get_by_label("Device value", exact=True).select_option("High")
    pg.get_by_role("button", name="Save value").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("Device value set to High")
    pg.get_by_role("button", name="Remove tag pci").click()
    expect(pg.get_by_test_id("device-tags")).not_to_contain_text("pci")
    pg.get_by_label("Device value", exact=True).select_option("Normal")
    pg.get_by_role("button", name="Save value").click()
    # tabs
    tab(pg, "Software inventory")
    expect(pg.get_by_test_id("device-software").locator("tbody tr").first).to_contain_text("libc-bin")
    expect(pg.get_by_test_id("row-count")).to_contain_text("of 221 packages")
    tab(pg, "Discovered vulnerabilities")
    expect(pg.get_by_test_id("device-vulns").locator("tbody tr").first).to_contain_text("CVE-2021-3156")
    shot(pg, "14-device-vulnerabilities")
    tab(pg, "Security recommendations")
    expect(pg.get_by_test_id("device-recs")).to_contain_text("Update sudo")
    tab(pg, "Configuration assessment")
    expect(pg.get_by_role("heading", name="Configuration assessment")).to_be_visible()
    # the device list exports CSV
    pg.goto(console.console("/devices?q=db-"))
    with pg.expect_download() as dl:
        pg.get_by_role("link", name="Export CSV").click()
    data = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8"))))
    assert sorted(r["Device name"] for r in data) == ["db-01.corp.example", "db-02.corp.example"]
    assert {r["Device group"] for r in data} == {"Databases"}


def test_device_group_filter_applies_to_every_page(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    pg.locator(".groupfilter summary").click()
    pg.get_by_role("group", name="Device groups shown on every page").get_by_label("Databases").check()
    pg.get_by_role("button", name="Apply").click()
    gid = console.fleet.groups["Databases"]
    expect(pg).to_have_url(re.compile(rf"[?&]group={gid}"))
    expect(pg.get_by_test_id("group-count")).to_have_text("1/3")
    expect(pg.get_by_test_id("card-distribution").locator("svg.donut .center")).to_have_text("2")
    shot(pg, "15-dashboard-databases")
    nav(pg, "Devices")
    expect(pg).to_have_url(re.compile(rf"group={gid}"))
    expect(rows(pg, "device-table")).to_have_count(2)
    nav(pg, "Security recommendations")
    expect(pg).to_have_url(re.compile(rf"group={gid}"))
    expect(rows(pg, "rec-table").filter(has_text="alpine")).to_have_count(0)
    expect(rows(pg, "rec-table").first).to_contain_text("sudo")
    expect(rows(pg, "rec-table").first.locator("td").nth(4)).to_contain_text("2")
    nav(pg, "Weaknesses")
    expect(pg.get_by_test_id("weakness-table")).not_to_contain_text("PYSEC")
    nav(pg, "Software inventory")
    expect(pg.get_by_test_id("software-table")).not_to_contain_text("pyyaml")
    pg.get_by_label("Search").fill("pyyaml")
    pg.get_by_role("button", name="Apply").click()
    expect(rows(pg, "software-table")).to_contain_text("No software matches")
    pg.get_by_role("link", name="show all").click()
    expect(pg).not_to_have_url(re.compile("group="))
    expect(pg).to_have_url(re.compile("q=pyyaml"))
    expect(pg.get_by_test_id("software-table")).to_contain_text("pyyaml")


def test_settings_pages(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "admin")
    nav(pg, "Settings")
    expect(pg.get_by_test_id("groups-table")).to_contain_text("Web servers")
    expect(pg.get_by_test_id("groups-table").locator("tr", has_text="Web servers")).to_contain_text("3")
    shot(pg, "16-settings-groups")
    tab(pg, "Feed status")
    feeds = pg.get_by_test_id("feeds-table")
    expect(feeds).to_contain_text("osv")
    expect(feeds).to_contain_text("kev")
    shot(pg, "17-settings-feeds")
    tab(pg, "Users")
    expect(pg.get_by_test_id("users-table")).to_contain_text("sam")
    pg.get_by_label("User name").fill("nina")
    pg.get_by_label("Password (12+ characters)").fill("a long enough password")
    pg.get_by_label("Role", exact=True).select_option("analyst")
    pg.get_by_role("button", name="Create user").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("User 'nina' created")
    expect(pg.get_by_test_id("users-table")).to_contain_text("nina")
    shot(pg, "18-settings-users")
    tab(pg, "API keys")
    pg.get_by_label("What it is for").fill("SIEM export")
    pg.get_by_role("button", name="Create key").click()
    key = pg.get_by_test_id("new-api-key").input_value()
    assert key.startswith("gk_")
    expect(pg.get_by_test_id("apikeys-table")).to_contain_text("SIEM export")
    shot(pg, "19-settings-apikeys")
    tab(pg, "Enrollment")
    pg.get_by_label("Expires after").fill("7d")
    pg.get_by_role("button", name="Create secret").click()
    command = pg.get_by_test_id("install-command").input_value()
    assert command.startswith(f"garrison agent run --server {console.url} --enroll ge_"), command
    shot(pg, "20-settings-enrollment")
    # the new key works against the API, and revoking it in the console stops it
    import httpx

    assert httpx.get(console.url + "/api/machines", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    tab(pg, "API keys")
    pg.once("dialog", lambda d: d.accept())
    pg.get_by_test_id("apikeys-table").locator("tr", has_text="SIEM export").get_by_role("button", name="Revoke").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("revoked")
    assert httpx.get(console.url + "/api/machines", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_analysts_see_no_admin_settings_or_actions(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    nav(pg, "Settings")
    expect(pg.locator("nav.tabs")).not_to_contain_text("Users")
    pg.goto(console.console("/settings/users"))
    expect(pg.get_by_test_id("error-message")).to_contain_text("needs the permission 'Manage users'")
    pg.goto(console.console("/recommendations?open=va-_-ubuntu-_-sudo"))
    expect(pg.get_by_test_id("side-panel")).to_be_visible()
    expect(pg.get_by_test_id("remediation-options")).to_have_count(0)


def test_keyboard_navigation(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    pg.keyboard.press("Tab")
    expect(pg.get_by_role("link", name="Skip to content")).to_be_focused()
    pg.keyboard.press("Enter")
    expect(pg.locator("main")).to_be_focused()
    # tab into the main content: the first card link
    pg.keyboard.press("Tab")
    focused = pg.evaluate("document.activeElement.closest('main') !== null")
    assert focused
    # every form control of a list page has a label
    pg.goto(console.console("/recommendations"))
    unlabelled = pg.evaluate("""() => [...document.querySelectorAll('main input:not([type=hidden]), main select')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)""")
    assert unlabelled == []


def test_narrow_screen(browser: Any, console: Console) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=console.url, is_mobile=True)
    pg = context.new_page()
    try:
        sign_in(pg, console, "analyst")
        nav_el = pg.get_by_role("navigation", name="Main")
        expect(nav_el).to_be_hidden()
        pg.get_by_role("button", name="Menu").click()
        expect(nav_el).to_be_visible()
        shot(pg, "21-narrow-menu", full_page=False)
        nav_el.get_by_role("link", name="Security recommendations").click()
        expect(rows(pg, "rec-table").first).to_contain_text("Update sudo")
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways ({width}px)"
        shot(pg, "22-narrow-recommendations", full_page=False)
        pg.goto(console.console("/"))
        shot(pg, "23-narrow-dashboard")
    finally:
        context.close()
