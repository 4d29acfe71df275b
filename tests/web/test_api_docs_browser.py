"""/api/docs in Debian's Chromium with every request off this server refused (issue 11 item 14): the
bundled Swagger UI renders the API's operations offline, under its Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import Console, shot, start_console


@pytest.fixture(scope="module")
def bare_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    env, srv = start_console(tmp_path_factory.mktemp("apidocs"), seed=False)
    yield env
    srv.stop()
    env.store.dispose()


def test_api_docs_render_offline_under_their_csp(browser: Any, bare_console: Console) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(bare_console.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(bare_console.url + "/api/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        operations = page.locator(".opblock").count()
        title = page.locator(".info .title").inner_text()
        shot(page, "api-docs")
    finally:
        context.close()
    assert operations > 50, operations  # the whole API, from /api/openapi.json
    assert "Garrison" in title
    assert outside == [], f"the docs reached off the server: {outside}"
    assert problems == [], f"errors (CSP violations among them) in the browser console: {problems}"
