"""The console's router and what every page handler shares."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.server.web.render import FLASH_COOKIE, Ctx, make_ctx
from garrison.server.web.session import PREFIX


def _t0(request: Request) -> None:
    request.state.t0 = time.perf_counter()


router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(_t0)])

@contextlib.contextmanager
def page(request: Request, principal: Principal, section: str) -> Iterator[tuple[Session, Ctx]]:
    """A tenant session and the page context, for one request."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        yield s, make_ctx(request, principal, s, section)


def safe_next(target: str | None) -> str:
    """Only console paths are valid redirect targets (no open redirect)."""
    if not target:
        return PREFIX + "/"
    target = unquote(target) if target.startswith("%2F") else target
    if not target.startswith(PREFIX) or target.startswith("//") or "\\" in target or "\r" in target \
            or "\n" in target:
        return PREFIX + "/"
    return target


def redirect(request: Request, url: str, flash: str | None = None, kind: str = "ok") -> RedirectResponse:
    """303 after a POST, with a one-time message for the next page."""
    resp = RedirectResponse(safe_next(url), status_code=303)
    if flash:
        resp.set_cookie(FLASH_COOKIE, quote(f"{kind}:{flash[:300]}"), max_age=60, path=PREFIX, httponly=True,
                        samesite="strict", secure=not request.app.state.settings.insecure_http)
    return resp


def back_to(request: Request, form: dict[str, str], default: str) -> str:
    """Where a form returns to: its ``back`` field when it is a console path, else ``default``."""
    back = form.get("back", "")
    return safe_next(back) if back.startswith(PREFIX) else default
