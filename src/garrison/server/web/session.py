"""Console sign-in: session cookies, CSRF tokens, sign-out.

* The session cookie holds 32 random bytes; the server keeps only their SHA-256
  (``console_sessions``). HttpOnly, SameSite=Lax, Secure over HTTPS, Path=/console.
* Every state-changing form carries a synchronizer token derived from the session token
  (HMAC), so it needs no storage and dies with the session. The sign-in form, which has no
  session yet, uses a double-submit cookie instead.
* Lock-out after repeated failures is :func:`garrison.core.access.authenticate_user`'s; on top
  of it the sign-in form is rate limited per client address.
* Sessions resolve only for console paths: the JSON API stays bearer-only, so a browser's cookie
  can never be used against ``/api``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from garrison.core import access, console_sessions
from garrison.core.access import Principal
from garrison.core.errors import Forbidden, Unauthorized
from garrison.store.models.core import User

PREFIX = "/console"
COOKIE = "garrison_session"
LOGIN_CSRF_COOKIE = "garrison_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LIFETIME = dt.timedelta(hours=12)
IDLE = dt.timedelta(hours=2)
TOUCH_EVERY = dt.timedelta(minutes=1)


class CsrfFailed(Forbidden):
    code = "CsrfFailed"


@dataclass
class SessionInfo:
    session_id: int
    user_id: int
    username: str
    email: str | None
    csrf: str


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"garrison-console-csrf", hashlib.sha256).hexdigest()[:40]


def is_secure(request: Request) -> bool:
    return not request.app.state.settings.insecure_http


def create(s: Session, user: User, source_ip: str, user_agent: str) -> str:
    """A new session for ``user`` (system session); returns the cookie value."""
    return console_sessions.create(s, user, source_ip, user_agent, LIFETIME)


def revoke(store: object, token: str) -> None:
    with store.system() as s:  # type: ignore[attr-defined]
        console_sessions.revoke(s, token)


def resolve(request: Request) -> Principal | None:
    """The ``session_resolver`` hook of :mod:`garrison.server.auth` (console paths only)."""
    path = request.url.path
    if not (path == PREFIX or path.startswith(PREFIX + "/")):
        return None
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 128:
        return None
    with request.app.state.store.system() as s:
        found = console_sessions.resolve(s, token, IDLE, TOUCH_EVERY)
        if found is None:
            return None
        sess, user = found
        principal = access.user_principal(s, user)
        request.state.console = SessionInfo(sess.id, user.id, user.username, user.email, csrf_for(token))
    return principal


def session_info(request: Request) -> SessionInfo:
    info = getattr(request.state, "console", None)
    if info is None:
        raise Unauthorized("sign in to the console")
    return info


async def checked_form(request: Request) -> dict[str, str]:
    """The submitted form, after checking its CSRF token (and Origin, when the browser sends one)."""
    info = session_info(request)
    check_origin(request)
    form = await request.form()
    sent = str(form.get(CSRF_FIELD, "") or request.headers.get(CSRF_HEADER, ""))
    if not sent or not hmac.compare_digest(sent, info.csrf):
        raise CsrfFailed("the form has expired or did not come from this console; reload the page and retry")
    return {k: str(v) for k, v in form.multi_items() if isinstance(v, str)}


async def checked_multi_form(request: Request) -> list[tuple[str, str]]:
    await checked_form(request)
    form = await request.form()
    return [(k, str(v)) for k, v in form.multi_items() if isinstance(v, str)]


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if not origin:
        return  # older browsers; the synchronizer token still protects the form
    hosts = {request.headers.get("host", "")}
    if request.app.state.proxy_networks:
        hosts.add(request.headers.get("x-forwarded-host", ""))
    if origin.split("://", 1)[-1] not in hosts:
        raise CsrfFailed("cross-site form submission refused")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)
