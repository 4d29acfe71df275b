"""HTTP for connectors: bounded time, bounded response size, no redirects, JSON in and out, and
connections only to destinations ``integrations.egress`` allows (checked on every connection)."""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from garrison import __version__
from garrison.integrations import egress

TIMEOUT = httpx.Timeout(10.0, connect=5.0)  # per connect / read / write
DEADLINE = 30.0  # seconds for a whole request: connect, send, answer head and body
MAX_RESPONSE = 1024 * 1024
USER_AGENT = f"Garrison/{__version__}"


class IntegrationError(Exception):
    """A remote call failed; ``retryable`` says whether trying again later may help."""

    def __init__(self, message: str, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


_deadline: ContextVar[float | None] = ContextVar("garrison_http_deadline", default=None)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The socket timeout for the next operation: the per-operation one, cut to what the current
    request's deadline leaves; ``error`` once it has passed."""
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write is bounded by the request's deadline as well: a server
    that answers one byte at a time never runs into the per-read timeout, but runs into this."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


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
                return _DeadlineStream(super().connect_tcp(ip, port, _left(timeout, httpcore.ConnectTimeout),
                                                           local_address, socket_options))
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
            expect: tuple[int, ...] = (200, 201, 202, 204), deadline: float = DEADLINE) -> Any:
    """Send a request; return the decoded JSON body (None when empty). Raises IntegrationError.
    The whole exchange must end within ``deadline`` seconds, however slowly the server trickles."""
    if json_body is not None:
        content = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    token = _deadline.set(time.monotonic() + deadline)
    try:
        return _request(c, method, url, content, headers, auth, params, expect)
    finally:
        _deadline.reset(token)


def _request(c: httpx.Client, method: str, url: str, content: bytes | None, headers: dict[str, str] | None,
             auth: Any, params: dict[str, str] | None, expect: tuple[int, ...]) -> Any:
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
