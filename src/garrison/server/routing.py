"""The route table of an app, flattened: read by the start-up checks (``app.check_routes``) and by the
console's setup (it marks its public pages). Its own module, so that neither imports the other."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import BaseRoute


def all_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route of the app, with included routers flattened (newer FastAPI keeps them nested)."""
    out: list[BaseRoute] = []
    stack = list(reversed(app.routes))
    while stack:
        route = stack.pop()
        nested = getattr(route, "original_router", None)
        if nested is not None:
            stack.extend(reversed(nested.routes))
        else:
            out.append(route)
    return out
