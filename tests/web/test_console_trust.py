"""Vulnerability management a person can trust at a glance (issue 12), in Chromium: devices no feed
covers say so instead of "Low", each CVE names where its severity comes from, and the feed status lists
the releases each feed covers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web import fleet
from tests.web.conftest import Console, sign_in
from tests.web.test_console_browser import rows, tab

pytestmark = pytest.mark.browser

ALPINE_314 = fleet.DATA / "inventories" / "alpine-3.14.0.apk-installed"
ALPINE_314_OS = fleet.DATA / "inventories" / "alpine-3.14.0.os-release"


@pytest.fixture
def uncovered(console: Console) -> Iterator[str]:
    """A real Alpine 3.14 host: the seeded knowledge base has secdb for v3.15 only. Removed afterwards."""
    from sqlalchemy import delete

    from garrison.store.models.core import Device
    from garrison.tvm import inventory

    os_ident = inventory.read_os_release(ALPINE_314_OS.read_bytes())
    out = inventory.import_agentless(console.store, console.tenant_id, "alpine-old",
                                     ALPINE_314.read_bytes(), os_ident=os_ident)
    fleet.refresh(console.store, console.tenant_id)
    yield str(out["machineId"])
    with console.store.tenant(console.tenant_id) as s:
        s.execute(delete(Device).where(Device.id == out["machineId"]))
    fleet.refresh(console.store, console.tenant_id)


def test_uncovered_release_is_no_data_not_low(page: Any, console: Console, uncovered: str) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console("/devices?q=alpine-old"))
    expect(rows(pg, "device-table")).to_have_count(1)
    expect(rows(pg, "device-table").first).to_contain_text("No data / release not covered")
    expect(rows(pg, "device-table").first).not_to_contain_text("Low")
    pg.goto(console.console(f"/devices/{uncovered}"))
    expect(pg.locator(".chips")).to_contain_text("No data / release not covered")
    expect(pg.get_by_test_id("exposure-reason")).to_contain_text("No data / release not covered (Alpine:v3.14)")


def test_dashboard_counts_uncovered_devices_apart_from_none(page: Any, console: Console, uncovered: str) -> None:
    """The exposure distribution has its own "No data / release not covered" segment, and its link lists
    exactly those devices; the "None" segment's list does not include them."""
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console("/"))
    legend = pg.get_by_test_id("card-distribution").locator(".legend li", has_text="release not covered")
    expect(legend).to_have_count(1)
    count = int(legend.locator("strong").inner_text().replace(",", ""))
    assert count >= 1
    legend.locator("a").click()
    expect(rows(pg, "device-table")).to_have_count(count)
    expect(pg.get_by_test_id("device-table")).to_contain_text("alpine-old")
    expect(rows(pg, "device-table").first).to_contain_text("No data / release not covered")
    pg.goto(console.console("/"))
    pg.get_by_test_id("card-distribution").locator(".legend a", has_text=re.compile(r"^None$")).click()
    expect(pg).to_have_url(re.compile(r"exposure=None"))
    expect(pg.locator("body")).not_to_contain_text("alpine-old")


def test_cve_panel_names_its_severity_source_and_feeds_list_releases(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "admin")
    pg.goto(console.console("/weaknesses?open=CVE-2021-3156"))
    expect(pg.get_by_test_id("side-panel").get_by_test_id("severity-source")).to_contain_text("CVSS v3.1")
    pg.goto(console.console("/settings"))
    tab(pg, "Feed status")
    alpine = pg.get_by_test_id("feeds-table").locator("tr", has_text="alpine-secdb")
    expect(alpine.get_by_test_id("feed-releases")).to_contain_text("Alpine:v3.15")
    osv = pg.get_by_test_id("feeds-table").locator("tr", has_text="osv")
    expect(osv.get_by_test_id("feed-releases")).to_contain_text("Ubuntu:20.04:LTS")


def test_software_severity_chart_counts_unknown_weaknesses(page: Any, console: Console) -> None:
    """A product whose weaknesses no feed rates shows them in an "Unknown" bar, not 0/0/0/0."""
    from sqlalchemy import func, select

    from garrison.store.models.kb import Vulnerability
    from garrison.store.models.tvm import PackageVersion, PackageVersionVuln

    with console.store.tenant(console.tenant_id) as s:
        sid, unknown = s.execute(
            select(PackageVersion.software_id, func.count(func.distinct(Vulnerability.id)))
            .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id)
            .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
            .where(Vulnerability.severity == "Unknown").group_by(PackageVersion.software_id)
            .order_by(func.count(func.distinct(Vulnerability.id)).desc()).limit(1)).one()
    assert unknown > 0
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console(f"/software/{sid}"))
    chart = pg.locator("section", has=pg.get_by_role("heading", name="Vulnerabilities by severity"))
    expect(chart).to_contain_text("Unknown")
    bar = chart.locator("[aria-label^='Unknown']")
    expect(bar.first).to_have_attribute("aria-label", re.compile(rf"^Unknown\D+{unknown}\b"))


def test_exception_form_defaults_to_a_working_scope_and_keeps_input_on_error(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "admin")
    pg.goto(console.console("/recommendations?q=xz-utils"))
    pg.get_by_test_id("rec-link").first.click()
    form = pg.get_by_test_id("side-panel").get_by_test_id("exception-options")
    form.locator("summary").click()
    # An admin who selected no device group: Global is the default, not an empty group list.
    expect(form.get_by_label("Global: every current and future group")).to_be_checked()
    # A refused form comes back open with everything typed, and the error names no API field.
    form.get_by_label("Justification", exact=True).select_option("AlternateMitigation")
    form.get_by_label("Justification context").fill("Mail gateway strips the attachment types")
    form.get_by_label("Selected device groups:").check()
    form.get_by_label("Duration").select_option("90")
    form.get_by_role("button", name="Create exception").click()
    flash = pg.get_by_test_id("flash")
    expect(flash).to_contain_text("Exception not created")
    expect(flash).not_to_contain_text("deviceGroupIds")
    form = pg.get_by_test_id("side-panel").get_by_test_id("exception-options")
    expect(form.get_by_label("Justification", exact=True)).to_have_value("AlternateMitigation")
    expect(form.get_by_label("Justification context")).to_have_value("Mail gateway strips the attachment types")
    expect(form.get_by_label("Duration")).to_have_value("90")
    expect(form.get_by_label("Selected device groups:")).to_be_checked()


def test_remediation_form_keeps_input_on_error(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "security_operator")
    pg.goto(console.console("/recommendations?q=openssl"))
    pg.get_by_test_id("rec-link").first.click()
    form = pg.get_by_test_id("side-panel").get_by_test_id("remediation-options")
    form.locator("summary").click()
    form.get_by_label("Priority").select_option("Low")
    form.get_by_label("Notes").fill("Needs the vendor's go-ahead")
    form.get_by_label("Due date").evaluate("e => { e.removeAttribute('min'); e.value = '2001-01-01'; }")
    form.get_by_role("button", name="Submit request").click()
    expect(pg.get_by_test_id("flash")).to_contain_text("Remediation not requested")
    form = pg.get_by_test_id("side-panel").get_by_test_id("remediation-options")
    expect(form.get_by_label("Priority")).to_have_value("Low")
    expect(form.get_by_label("Notes")).to_have_value("Needs the vendor's go-ahead")
    expect(form.get_by_label("Due date")).to_have_value("2001-01-01")


def test_no_raw_enum_values_and_plural_forms(page: Any, console: Console, uncovered: str) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console(f"/devices/{uncovered}"))
    body = pg.locator("main")
    expect(body).to_contain_text("Can be onboarded")
    expect(body).not_to_contain_text("CanBeOnboarded")
    pg.goto(console.console("/recommendations"))
    expect(pg.locator("main")).not_to_contain_text("ConfigurationChange")
    pg.goto(console.console("/weaknesses?open=CVE-2021-3156"))
    panel = pg.get_by_test_id("side-panel")
    expect(panel).not_to_contain_text("-_-")
    expect(panel).not_to_contain_text(re.compile(r"\b1 devices\b"))


def test_recommendation_and_software_page_say_installed_on_the_same_way(page: Any, console: Console) -> None:
    """"Installed on" of a recommendation counts devices with any package of its unit (the source package);
    the software page of one of those packages shows that same figure, named, beside its own."""
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console("/recommendations?q=openssl"))
    pg.get_by_test_id("rec-link").first.click()
    installed = pg.get_by_test_id("side-panel").get_by_test_id("rec-installed")
    expect(installed).to_contain_text("with any package of openssl")
    figure = re.match(r"\d+ devices?", installed.inner_text()).group(0)  # type: ignore[union-attr]
    pg.goto(console.console("/software/ubuntu-_-openssl"))
    expect(pg.get_by_test_id("unit-installed").first).to_contain_text(figure)


def test_exposure_trend_spans_the_selected_date_range(page: Any, console: Console) -> None:
    """The trend covers the period chosen, not only the days that have a score (the fleet has a few)."""
    import datetime as dt

    today = dt.date.today()
    pg = page
    sign_in(pg, console, "analyst")
    for days in (90, 7):
        pg.goto(console.console(f"/timeline?range={days}"))
        desc = pg.locator("svg.chart.line desc").first
        expect(desc).to_contain_text(f"from {(today - dt.timedelta(days=days - 1)).isoformat()} "
                                     f"to {today.isoformat()}")
    start, end = today - dt.timedelta(days=20), today - dt.timedelta(days=10)
    pg.goto(console.console(f"/timeline?start={start.isoformat()}&end={end.isoformat()}"))
    desc = pg.locator("svg.chart.line desc").first
    if "no exposure score" not in (desc.text_content() or ""):
        expect(desc).to_contain_text(f"from {start.isoformat()} to {end.isoformat()}")


def test_device_configuration_tab_pages_and_filters_by_status(page: Any, console: Console) -> None:
    dev = console.fleet.devices["web-01"]
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console(f"/devices/{dev.device_id}?tab=configuration"))
    expect(pg.get_by_test_id("row-count")).to_contain_text("1–25 of 40 checks")
    expect(rows(pg, "device-config")).to_have_count(25)
    pg.get_by_test_id("config-filters").get_by_label("Status").select_option("fail")
    pg.get_by_test_id("config-filters").get_by_role("button", name="Apply").click()
    statuses = rows(pg, "device-config").locator("td:nth-child(4)").all_inner_texts()
    assert statuses and {t.strip() for t in statuses} == {"Failed"}
    expect(pg.get_by_test_id("row-count")).to_contain_text(f"of {len(statuses)} checks")


def test_side_panel_keeps_the_list_position_and_returns_focus_to_the_row(page: Any, console: Console) -> None:
    pg = page
    sign_in(pg, console, "analyst")
    pg.goto(console.console("/recommendations"))
    links = pg.get_by_test_id("rec-link")
    last = links.nth(links.count() - 1)
    last.scroll_into_view_if_needed()
    href = last.get_attribute("href")
    y = pg.evaluate("window.scrollY")
    assert y > 100, "the list must be long enough to scroll"
    last.click()
    expect(pg.get_by_test_id("side-panel")).to_be_visible()
    assert abs(pg.evaluate("window.scrollY") - y) < 40  # the list stays where it was behind the panel
    pg.get_by_test_id("side-panel").get_by_role("link", name="Close panel").click()
    expect(pg.get_by_test_id("side-panel")).to_have_count(0)
    # expect() polls from Python: wait_for_function would eval() in the page, which our CSP forbids
    expect(pg.locator("a:focus")).to_have_attribute("href", href or "")
    assert abs(pg.evaluate("window.scrollY") - y) < 40


def test_software_and_weaknesses_recount_at_once_after_a_group_change(page: Any, console: Console) -> None:
    """A device moved into another group shows under that group on Software inventory and Weaknesses at
    once (they read per-group counts that used to wait for the 10-minute summary job)."""
    from sqlalchemy import select, update

    from garrison.store.models.core import Device
    from garrison.store.models.tvm import DevicePackage, PackageVersion, PackageVersionVuln

    gid = console.fleet.groups["Databases"]
    with console.store.tenant(console.tenant_id) as s:
        device_id, old_group = s.execute(
            select(Device.id, Device.group_id).join(DevicePackage, DevicePackage.device_id == Device.id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .where(PackageVersion.name == "pyyaml").limit(1)).one()
        vuln = s.scalar(select(PackageVersionVuln.vulnerability_id)
                        .join(PackageVersion, PackageVersion.id == PackageVersionVuln.package_version_id)
                        .join(DevicePackage, DevicePackage.package_version_id == PackageVersion.id)
                        .where(DevicePackage.device_id == device_id, PackageVersion.name == "pyyaml").limit(1))
    assert vuln
    pg = page
    sign_in(pg, console, "analyst")

    def move(group: int | None) -> None:
        with console.store.tenant(console.tenant_id) as s:
            s.execute(update(Device).where(Device.id == device_id).values(group_id=group))

    try:
        move(gid)
        pg.goto(console.console(f"/software?group={gid}&q=pyyaml"))
        expect(rows(pg, "software-table").first).to_contain_text("pyyaml")
        pg.goto(console.console(f"/weaknesses?group={gid}&q={vuln}"))
        expect(pg.get_by_test_id("weakness-table")).to_contain_text(vuln)
    finally:
        move(old_group)
    pg.goto(console.console(f"/software?group={gid}&q=pyyaml"))
    expect(pg.get_by_test_id("software-table")).to_contain_text("No software matches")


@pytest.fixture(scope="module")
def demo_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A server whose tenant holds what a fresh `garrison demo` loads (its replayed history included)."""
    from garrison.tvm import demo
    from tests.web.conftest import start_console

    env, srv = start_console(tmp_path_factory.mktemp("demo-console"), seed=False)
    demo.load(env.store, "acme", quiet=True)
    yield env
    srv.stop()
    env.store.dispose()


def test_a_fresh_demo_shows_a_working_product_first(page: Any, demo_console: Console) -> None:
    """Issue 12's "Done means" on a fresh demo, as a user sees it first: the dashboard's exposure trend has
    the demo's three scored days (2025-07-16, 2026-04-27, today — outside the usual 30 days, so the default
    period widens to take them in), the Event timeline opens on the feed update's new vulnerabilities and
    the gzip update, every feed is green, every CVE has a severity, and uncovered devices are not "Low"."""
    import datetime as dt

    today = dt.date.today().isoformat()
    pg, env = page, demo_console
    sign_in(pg, env, "admin")
    pg.goto(env.console("/"))
    chart = pg.get_by_test_id("card-exposure").locator("svg.chart.line")
    expect(chart.locator("desc")).to_contain_text(f"from 2025-07-16 to {today}")
    expect(chart.locator("circle.pt")).to_have_count(3)

    pg.goto(env.console("/timeline"))
    table = pg.get_by_test_id("timeline-table")
    expect(table).to_contain_text("New vulnerability CVE-2020-13529")
    expect(table).to_contain_text("gzip updated on 1 device")
    expect(pg.locator("svg.chart.line circle.pt")).to_have_count(3)

    pg.goto(env.console("/weaknesses?severity=Unknown"))
    expect(pg.get_by_test_id("weakness-table")).not_to_contain_text("CVE-")
    pg.goto(env.console("/devices?q=demo-alpine"))
    expect(rows(pg, "device-table").first).to_contain_text("No data / release not covered")
    expect(rows(pg, "device-table").first).not_to_contain_text("Low")

    pg.goto(env.console("/settings"))
    tab(pg, "Feed status")
    states = pg.get_by_test_id("feeds-table").locator(".status")
    expect(states.first).to_be_visible()
    assert set(states.all_inner_texts()) == {"ok"}
