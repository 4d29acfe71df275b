"""The web console: ``setup(app)`` adds its pages under ``/console`` (``/`` redirects there).

Every page handler declares its permission (``require(P.…)``) like the API; the console's session cookie is
resolved by :func:`garrison.server.web.session.resolve` (the app's ``session_resolver`` hook).
Errors on console paths become HTML: a browser without a session is sent to the sign-in page
(303), a missing permission or object gets an error page. Page handlers call the service layer
directly in a tenant session; they never call the JSON API.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from garrison.core import access, audit
from garrison.core.access import Principal
from garrison.core.errors import GarrisonError, Unauthorized
from garrison.core.permissions import P
from garrison.registry import Registry, import_modules
from garrison.server.auth import RateLimited, client_ip, public, require
from garrison.server.web import pages, session
from garrison.server.web.common import router, safe_next
from garrison.server.web.render import html_response, render_plain
from garrison.server.web.session import COOKIE, LOGIN_CSRF_COOKIE, PREFIX

STATIC = Path(__file__).with_name("static")
PAGES: Registry[ModuleType] = Registry("console page")
"""The console's pages: every module of ``garrison.server.web.pages`` (adding a page is adding one file)."""


def is_console_path(path: str) -> bool:
    """Paths served by the console (``/`` only redirects here)."""
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


# --- sign-in and sign-out ---------------------------------------------------------------

def _login_page(request: Request, status: int = 200, error: str = "", message: str = "",
                username: str = "", next_url: str | None = None) -> Response:
    token = session.new_login_csrf()
    target = safe_next(next_url if next_url is not None else request.query_params.get("next"))
    resp = render_plain("login.html", request, status, csrf=token, error=error, message=message,
                        username=username, next=target, PREFIX=PREFIX)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path=PREFIX + "/login", httponly=True,
                    samesite="strict", secure=session.is_secure(request))
    return resp


@router.get("/login")
@public
def login_form(request: Request) -> Response:
    try:
        principal = session.resolve(request)
    except Exception:  # noqa: BLE001 — a broken session just shows the form
        principal = None
    if principal is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    message = "You have signed out." if request.query_params.get("signedout") else ""
    return _login_page(request, message=message)


def _sign_in(request: Request, username: str, password: str) -> tuple[str | None, str]:
    """(cookie value, error message); failures are counted (lock-out) and audited."""
    store = request.app.state.store
    ip = client_ip(request)
    with store.system() as s:
        try:
            user = access.authenticate_user(s, username, password)
        except Unauthorized as exc:
            known = access.user_tenant(s, username)
            if known is not None:
                audit.record(s, known, username, "user", "console_sign_in_failed", target=f"user={username}",
                             method="POST", path=request.url.path, status_code=401, source_ip=ip)
            return None, str(exc)
        token = session.create(s, user, ip, request.headers.get("user-agent", ""))
        audit.record(s, user.tenant_id, user.username, "user", "console_sign_in", target=f"user={username}",
                     method="POST", path=request.url.path, status_code=303, source_ip=ip)
    return token, ""


@router.post("/login")
@public
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", ""))[:128].strip()
    password = str(form.get("password", ""))[:1024]
    sent = str(form.get("csrf_token", ""))
    next_url = str(form.get("next", ""))[:2000]
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not sent or not cookie or not hmac.compare_digest(sent, cookie):
        return _login_page(request, 400, error="The sign-in form expired. Please try again.", username=username,
                           next_url=next_url)
    try:
        session.check_origin(request)
    except GarrisonError as exc:
        return _login_page(request, 403, error=str(exc), username=username, next_url=next_url)
    if not username or not password:
        return _login_page(request, 401, error="Enter your user name and password.", username=username,
                           next_url=next_url)
    # Failed sign-ins are budgeted per address before any account is locked (core.access): the attempt
    # takes from the budget first, so parallel guesses cannot all slip past, and a success gives it back.
    limiter, source = request.app.state.sign_in_limiter, "sign-in:" + client_ip(request)
    wait = limiter.hit(source)
    if wait > 0:
        raise RateLimited(wait)
    token, error = await run_in_threadpool(_sign_in, request, username, password)
    if token is None:
        return _login_page(request, 401, error=error, username=username, next_url=next_url)
    limiter.refund(source)
    resp = RedirectResponse(safe_next(next_url), status_code=303)
    resp.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="lax", secure=session.is_secure(request),
                    max_age=int(session.LIFETIME.total_seconds()))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX + "/login")
    return resp


@router.post("/logout")
async def logout(request: Request, principal: Principal = require(P.SELF)) -> Response:
    await session.checked_form(request)
    token = request.cookies.get(COOKIE, "")
    await run_in_threadpool(session.revoke, request.app.state.store, token)
    resp = RedirectResponse(PREFIX + "/login?signedout=1", status_code=303)
    resp.delete_cookie(COOKIE, path=PREFIX)
    return resp


# --- static files -----------------------------------------------------------------------

def _load_static() -> dict[str, tuple[bytes, str, str]]:
    out = {}
    for path in sorted(STATIC.iterdir()) if STATIC.is_dir() else []:
        if path.is_file() and path.suffix in (".css", ".js", ".svg"):
            data = path.read_bytes()
            ctype = mimetypes.types_map.get(path.suffix, "application/octet-stream")
            if path.suffix in (".css", ".js"):
                ctype += "; charset=utf-8"
            out[path.name] = (data, ctype, '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
    return out


_STATIC = _load_static()


@router.get("/static/{name}")
@public
def static_file(name: str, request: Request) -> Response:
    entry = _STATIC.get(name)
    if entry is None:
        return Response("not found", status_code=404, media_type="text/plain")
    data, ctype, etag = entry
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=ctype, headers=headers)


def root_redirect() -> Response:
    return RedirectResponse(PREFIX + "/", status_code=303)


# --- errors as HTML on console paths ----------------------------------------------------

TITLES = {400: "That did not work", 401: "Sign in again", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 409: "Conflict", 413: "Too large", 422: "That did not work",
          429: "Slow down"}


def error_page(request: Request, status: int, message: str) -> Response:
    resp = render_plain("error.html", request, status, status=status, title=TITLES.get(status, "Error"),
                        message=message, PREFIX=PREFIX)
    if status == 429:
        resp.headers["Retry-After"] = "30"
    return resp


def console_error(request: Request, status: int, message: str) -> Response:
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        resp: Response
        if request.method in ("GET", "HEAD"):
            resp = RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)
        else:
            resp = error_page(request, 401, "Your session has ended. Sign in again, then repeat the change.")
        if request.cookies.get(COOKIE):
            resp.delete_cookie(COOKIE, path=PREFIX)
        return resp
    return error_page(request, status, message)


def _install_error_pages(app: FastAPI) -> None:
    handlers = app.exception_handlers
    api_garrison = handlers.get(GarrisonError)
    api_http = handlers.get(StarletteHTTPException)
    api_invalid = handlers.get(RequestValidationError)

    async def on_garrison(request: Request, exc: Exception) -> Response:
        if is_console_path(request.url.path) and isinstance(exc, GarrisonError):
            return console_error(request, exc.status, str(exc))
        return await api_garrison(request, exc)  # type: ignore[misc]

    async def on_http(request: Request, exc: Exception) -> Response:
        if is_console_path(request.url.path) and isinstance(exc, StarletteHTTPException):
            return console_error(request, exc.status_code, "There is no such page." if exc.status_code == 404
                                 else str(exc.detail))
        return await api_http(request, exc)  # type: ignore[misc]

    async def on_invalid(request: Request, exc: Exception) -> Response:
        if is_console_path(request.url.path):
            return console_error(request, 400, "The request was not valid.")
        return await api_invalid(request, exc)  # type: ignore[misc]

    if api_garrison:
        handlers[GarrisonError] = on_garrison
    if api_http:
        handlers[StarletteHTTPException] = on_http
    if api_invalid:
        handlers[RequestValidationError] = on_invalid


for _page in import_modules(pages.__name__):  # every page module adds its routes to the shared router
    PAGES.add(_page.__name__.rsplit(".", 1)[-1], _page)


def setup(app: FastAPI) -> None:
    app.state.session_resolver = session.resolve
    app.include_router(router)
    app.add_api_route("/", public(root_redirect), methods=["GET"], include_in_schema=False)
    _install_error_pages(app)


__all__ = ["html_response", "is_console_path", "setup"]
