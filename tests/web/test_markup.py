"""Every page of the seeded console is well-formed and accessible in the ways a parser can check:
balanced elements, no form inside a form or block inside a paragraph, unique ids, a label for every
control, alternative text for images, and nothing loaded from another origin."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.web.conftest import Console, http_session

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
        "path", "circle", "rect", "line", "polyline", "polygon"}
BLOCK = {"div", "p", "ul", "ol", "table", "form", "section", "aside", "header", "nav", "h1", "h2", "h3", "dl",
         "fieldset", "details"}


class Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: dict[str, int] = {}
        self.controls: list[dict[str, Any]] = []
        self.label_for: set[str] = set()
        self.label_depth = 0
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and "form" in self.stack:
            self.errors.append("form inside a form")
        if tag in BLOCK and self.stack and self.stack[-1] == "p":
            self.errors.append(f"<{tag}> inside <p>")
        if "id" in a:
            self.ids[a["id"] or ""] = self.ids.get(a["id"] or "", 0) + 1
        if tag == "label":
            self.label_depth += 1
            if a.get("for"):
                self.label_for.add(a["for"] or "")
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.controls.append({"tag": tag, "name": a.get("name"), "id": a.get("id"), "wrapped": self.label_depth > 0,
                                  "aria": a.get("aria-label") or a.get("aria-labelledby")})
        if tag == "img" and "alt" not in a:
            self.errors.append(f"img without alt: {a.get('src')}")
        for key in ("href", "src", "action"):
            if a.get(key) and tag != "a":  # links out (feed references) are fine; loaded resources are not
                self.urls.append(a[key] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag == "label":
            self.label_depth -= 1
        if tag == "p" and "p" not in self.stack:
            return  # a paragraph closed early by a block element (reported above)
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else '-'}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def check(html: str) -> list[str]:
    c = Checker()
    c.feed(html)
    errors = list(c.errors)
    if c.stack:
        errors.append(f"unclosed: {c.stack}")
    errors += [f"duplicate id {i!r}" for i, n in c.ids.items() if n > 1]
    for ctl in c.controls:
        if not (ctl["wrapped"] or ctl["aria"] or (ctl["id"] and ctl["id"] in c.label_for)):
            errors.append(f"unlabelled {ctl['tag']} {ctl['name']!r}")
    for url in c.urls:
        if re.match(r"^(https?:)?//", url):
            errors.append(f"external resource {url}")
    return errors


def pages(console: Console) -> list[str]:
    web = console.fleet.devices["web-01"].device_id
    g = console.fleet.groups["Web servers"]
    return ["/console/", f"/console/?group={g}", "/console/recommendations",
            "/console/recommendations?open=va-_-ubuntu-_-sudo", "/console/remediation",
            "/console/remediation?tab=exceptions", "/console/software", "/console/software/ubuntu-_-sudo",
            "/console/software/ubuntu-_-sudo?tab=vulnerabilities", "/console/software/ubuntu-_-sudo?tab=devices",
            "/console/software/ubuntu-_-sudo?tab=versions", "/console/software/ubuntu-_-sudo?tab=timeline",
            "/console/weaknesses", "/console/weaknesses?open=CVE-2021-3156", "/console/timeline",
            "/console/devices", f"/console/devices/{web}", f"/console/devices/{web}?tab=software",
            f"/console/devices/{web}?tab=vulnerabilities", f"/console/devices/{web}?tab=configuration",
            f"/console/devices/{web}?tab=recommendations", "/console/settings/groups", "/console/settings/feeds",
            "/console/settings/users", "/console/settings/apikeys", "/console/settings/enrollment"]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_console(request: pytest.FixtureRequest) -> Console:
    """The seeded console on each state store in turn (the pages' SQL runs on both)."""
    return request.getfixturevalue("console" if request.param == "sqlite" else "console_pg")


def test_every_page_is_well_formed_and_labelled(any_console: Console) -> None:
    console = any_console
    client = http_session(console, "admin")
    problems = {}
    for path in pages(console):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        errors = check(r.text)
        if errors:
            problems[path] = errors[:5]
    import httpx

    login = httpx.get(console.console("/login"))
    assert login.status_code == 200
    if check(login.text):
        problems["/console/login"] = check(login.text)
    assert problems == {}


@pytest.mark.parametrize("html, expected", [
    ("<form><form></form></form>", "form inside a form"),
    ("<p><div></div></p>", "<div> inside <p>"),
    ('<div id="a"></div><span id="a"></span>', "duplicate id 'a'"),
    ('<input name="q">', "unlabelled input 'q'"),
    ('<script src="https://cdn.example/x.js"></script>', "external resource https://cdn.example/x.js"),
])
def test_the_checker_catches_what_it_should(html: str, expected: str) -> None:
    assert expected in check(html)


def test_an_empty_tenant_gets_empty_states_not_errors(console: Console) -> None:
    """Tenant "umbrella" has no devices, no knowledge-base matches and no prioritisation run."""
    import httpx

    from tests.web.conftest import PASSWORD
    from tests.web.fleet import find_csrf

    client = httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)
    token = find_csrf(client.get("/console/login").text)
    assert client.post("/console/login", data={"username": "otto", "password": PASSWORD,
                                               "csrf_token": token}).status_code == 303
    expected = {"/console/": "No security recommendations", "/console/recommendations": "No security recommendations",
                "/console/remediation": "No remediation activities", "/console/software": "No software",
                "/console/weaknesses": "No weaknesses", "/console/timeline": "No events",
                "/console/devices": "No devices", "/console/settings/feeds": "osv"}
    for path, text in expected.items():
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert text in r.text, path
        assert check(r.text) == [], path
    assert "web-01" not in client.get("/console/devices").text
    assert client.get("/console/software/ubuntu-_-sudo").status_code == 404
