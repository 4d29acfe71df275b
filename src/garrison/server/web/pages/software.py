"""Placeholder until the page is built."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.server.auth import require
from garrison.server.web.common import page, router
from garrison.server.web.render import render


@router.get("/software")
def software_page(request: Request, principal: Principal = require("analyst")) -> Response:
    with page(request, principal, "software") as (_s, ctx):
        return render(ctx, "placeholder.html", title="software")
