"""Links that keep the device-group filter, redirects that stay inside the console, paging."""

from __future__ import annotations

from starlette.requests import Request

from garrison.core.access import Principal
from garrison.server.web.common import safe_next
from garrison.server.web.render import Ctx, Pager, external_url
from garrison.server.web.session import SessionInfo


def ctx_for(path: str, query: str, selected: tuple[int, ...] = (), groups: tuple[int, ...] | None = None) -> Ctx:
    request = Request({"type": "http", "method": "GET", "path": path, "query_string": query.encode(),
                       "headers": [], "root_path": ""})
    principal = Principal(1, "ann", "user", "analyst", groups)
    return Ctx(request, principal, SessionInfo(1, 1, "ann", None, "t"), "acme", [(3, "Web"), (4, "DB"), (5, "Other")],
               selected)


def test_links_carry_the_device_group_filter() -> None:
    ctx = ctx_for("/console/devices", "group=3&group=4&exposure=High&page=2", (3, 4))
    assert ctx.url("/recommendations") == "/console/recommendations?group=3&group=4"
    assert ctx.url("/recommendations", open="va-_-ubuntu-_-c++") == \
        "/console/recommendations?open=va-_-ubuntu-_-c%2B%2B&group=3&group=4"
    assert ctx.url("/devices", group=9, _keep_groups=False) == "/console/devices?group=9"
    assert ctx.here(sort="name", page=None) == "/console/devices?exposure=High&sort=name&group=3&group=4"
    assert ctx.without_groups() == "/console/devices?exposure=High"
    assert ctx.same_query("/devices.csv") == "/console/devices.csv?group=3&group=4&exposure=High"
    assert ctx.group_label == "2/3"


def test_the_scope_is_the_selection_or_the_principals_groups() -> None:
    assert ctx_for("/console/", "", ()).scope is None
    assert ctx_for("/console/", "", (4,)).scope == (4,)
    assert ctx_for("/console/", "", (), groups=(3,)).scope == (3,)


def test_redirect_targets_stay_in_the_console() -> None:
    assert safe_next("/console/devices?x=1") == "/console/devices?x=1"
    for bad in ("https://evil.example/", "//evil.example", "/api/machines", "/console\\x", "/console/\r\nSet-Cookie:",
                "", None):
        assert safe_next(bad) == "/console/"


def test_feed_links_are_only_http() -> None:
    assert external_url("https://nvd.nist.gov/vuln/detail/CVE-2021-3156") == \
        "https://nvd.nist.gov/vuln/detail/CVE-2021-3156"
    for bad in ("javascript:alert(1)", "data:text/html,x", "  JaVaScRiPt:x", "ftp://x", None):
        assert external_url(bad) == "#"


def test_pager_arithmetic() -> None:
    p = Pager(page=3, size=25, total=60)
    assert (p.offset, p.pages, p.first_row, p.last_row) == (50, 3, 51, 60)
    empty = Pager(page=1, size=25, total=0)
    assert (empty.pages, empty.first_row, empty.last_row) == (1, 0, 0)
