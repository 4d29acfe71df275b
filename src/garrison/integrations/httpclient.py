"""HTTP for connectors: bounded time, bounded response size, no redirects, JSON in and out."""

from __future__ import annotations

import json
from typing import Any

import httpx

from garrison import __version__

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_RESPONSE = 1024 * 1024
USER_AGENT = f"Garrison/{__version__}"


class IntegrationError(Exception):
    """A remote call failed; ``retryable`` says whether trying again later may help."""

    def __init__(self, message: str, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def client(**kw: Any) -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}, **kw)


def check_url(url: str, what: str = "url") -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{what}: invalid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{what}: use an http:// or https:// URL")
    if parsed.userinfo:
        raise ValueError(f"{what}: put credentials in the connection's secrets, not in the URL")
    return str(parsed).rstrip("/")


def request(c: httpx.Client, method: str, url: str, *, json_body: Any = None, content: bytes | None = None,
            headers: dict[str, str] | None = None, auth: Any = None, params: dict[str, str] | None = None,
            expect: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
    """Send a request; return the decoded JSON body (None when empty). Raises IntegrationError."""
    if json_body is not None:
        content = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        with c.stream(method, url, content=content, headers=headers, auth=auth, params=params) as r:
            data = b""
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE:
                    raise IntegrationError(f"{method} {_show(url)}: response larger than {MAX_RESPONSE} bytes",
                                           retryable=False)
            status = r.status_code
    except httpx.TimeoutException:
        raise IntegrationError(f"{method} {_show(url)}: timed out") from None
    except httpx.HTTPError as exc:
        raise IntegrationError(f"{method} {_show(url)}: {type(exc).__name__}: {exc}") from None
    if status not in expect:
        detail = data[:300].decode("utf-8", "replace").strip()
        raise IntegrationError(f"{method} {_show(url)} answered {status}: {detail}",
                               retryable=status >= 500 or status in (408, 429), status=status)
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise IntegrationError(f"{method} {_show(url)}: the answer is not JSON", retryable=False) from None


def _show(url: str) -> str:
    return url.split("?", 1)[0][:200]
