"""Placeholder until the page is built."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.server.auth import require
from garrison.server.web.common import page, router
from garrison.server.web.render import render


@router.get("/timeline")
def timeline_page(request: Request, principal: Principal = require("analyst")) -> Response:
    with page(request, principal, "timeline") as (_s, ctx):
        return render(ctx, "placeholder.html", title="timeline")
