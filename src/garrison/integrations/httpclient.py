"""HTTP for connectors: bounded time, bounded response size, no redirects, JSON in and out, and
connections only to destinations ``integrations.egress`` allows (checked on every connection)."""

from __future__ import annotations

import json
from typing import Any

import httpcore
import httpx

from garrison import __version__
from garrison.integrations import egress

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_RESPONSE = 1024 * 1024
USER_AGENT = f"Garrison/{__version__}"


class IntegrationError(Exception):
    """A remote call failed; ``retryable`` says whether trying again later may help."""

    def __init__(self, message: str, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class _CheckedBackend(httpcore.SyncBackend):
    """Opens TCP connections to an address ``egress`` checked; TLS still verifies the host name."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            addresses = egress.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for _family, ip in addresses:
            try:
                return super().connect_tcp(ip, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx has no option for the network backend: the same pool, built with ours. The CA
        # bundle may still come from SSL_CERT_FILE / SSL_CERT_DIR (internal CAs).
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=True),
                                             max_connections=100, max_keepalive_connections=20,
                                             keepalive_expiry=5.0, network_backend=_CheckedBackend())


def client(**kw: Any) -> httpx.Client:
    # trust_env=False: no proxy from the environment (it would reach what egress refuses)
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT},
                        transport=_CheckedTransport(), trust_env=False, **kw)


def check_url(url: str, what: str = "url") -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{what}: invalid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{what}: use an http:// or https:// URL")
    if parsed.userinfo:
        raise ValueError(f"{what}: put credentials in the connection's secrets, not in the URL")
    egress.check_destination(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), what)
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
            status, location = r.status_code, r.headers.get("location", "")
    except egress.Refused as exc:
        raise IntegrationError(f"{method} {_show(url)}: {exc}", retryable=False) from None
    except httpx.TimeoutException:
        raise IntegrationError(f"{method} {_show(url)}: timed out") from None
    except httpx.HTTPError as exc:
        raise IntegrationError(f"{method} {_show(url)}: {type(exc).__name__}: {exc}") from None
    if 300 <= status < 400 and status not in expect:
        raise IntegrationError(f"{method} {_show(url)} answered {status}, a redirect to {_show(location)}: "
                               "redirects are not followed, configure the final URL", retryable=False, status=status)
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
