"""The FastAPI application: API, agent endpoints, console and background jobs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from starlette.routing import BaseRoute

from garrison import __version__
from garrison.core import access
from garrison.core.errors import GarrisonError
from garrison.edr.events.health import last_telemetry
from garrison.edr.events.service import EventService
from garrison.registry import import_modules
from garrison.server import api, apidocs
from garrison.server.auth import (
    KeyCache,
    RateLimited,
    public,
    route_device_auth,
    route_permission,
    route_public,
)
from garrison.server.middleware import AuditLog, BodyLimit, NulGuard
from garrison.server.ratelimit import RateLimiter
from garrison.server.routing import all_routes
from garrison.server.settings import ServerSettings
from garrison.server.tls import fingerprint
from garrison.server.web import routes as web
from garrison.store.db import Store

log = logging.getLogger(__name__)
# The codes of the database-refusal answers: input the edge checks should have refused. Logged as errors
# (a bug to fix where the value enters) and asserted absent by tests/server/test_fuzz_api.py.
DATABASE_REFUSED = ("ValueOutOfRange", "ConflictingChange")


class UnprotectedRoute(RuntimeError):
    pass


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.heartbeats.start()
    try:
        yield
    finally:
        app.state.heartbeats.stop()
        app.state.events.close()


def create_app(settings: ServerSettings, store: Store | None = None, cert_path: Path | None = None) -> FastAPI:
    # /api/docs is served from bundled assets (server.apidocs), not FastAPI's CDN-loading page.
    app = FastAPI(lifespan=lifespan, title="Garrison", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = store or Store(settings.db_url)
    # Telemetry has its own store (not the state store): this process owns it (see docs/architecture.md).
    app.state.events = EventService(settings.events_db_url, settings.events_retention_days, settings.hunting_days)
    app.state.proxy_networks = settings.proxy_networks()
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.auth_fail_limiter = RateLimiter(60, burst=20)
    app.state.sign_in_limiter = RateLimiter(access.SOURCE_FAILURES_PER_HOUR / 60, burst=access.SOURCE_FAILURES)
    app.state.key_cache = KeyCache()
    app.state.session_resolver = None
    app.state.cert_pem = cert_path.read_text() if cert_path else None
    app.state.fingerprint = fingerprint(cert_path) if cert_path else None

    _install_error_handlers(app)
    for module in import_modules(api.__name__):  # one module per API area, discovered
        if hasattr(module, "router"):
            app.include_router(module.router)
        if hasattr(module, "setup"):
            module.setup(app)
    from garrison.server import agent_api

    agent_api.setup_state(app)
    app.state.heartbeats.last_telemetry = last_telemetry(app.state.events)
    app.include_router(agent_api.router)
    apidocs.setup(app)
    web.setup(app)

    @app.get("/healthz", include_in_schema=False)
    @public
    def healthz() -> JSONResponse:
        # The worker (set by the runner when this server runs one) applies uploads and runs the jobs:
        # without it the server still answers, but is not healthy.
        body: dict[str, Any] = {"status": "ok", "version": __version__}
        worker = getattr(app.state, "worker", None)
        if worker is not None:
            body["worker"] = worker.health()
            if not worker.alive:
                body["status"] = "degraded"
                return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    for route in app.routes:  # FastAPI's own OpenAPI document: the API's description, no data
        if getattr(route, "path", None) == app.openapi_url:
            public(route.endpoint)  # type: ignore[attr-defined]
    check_routes(all_routes(app))
    app.add_middleware(NulGuard)
    app.add_middleware(AuditLog)
    app.add_middleware(BodyLimit, api_limit=settings.max_body_bytes, agent_limit=settings.agent_max_body_bytes,
                       import_limit=settings.import_max_body_bytes)
    return app


def check_routes(routes: list[BaseRoute]) -> None:
    """Refuse to start with a route that declares no access rule. Each route declares exactly one:
    a permission (``require``), device authentication (``agent_api.DEVICE``), or :func:`auth.public`."""
    for route in routes:
        path = getattr(route, "path", repr(route))
        declared = [kind for kind, found in (("permission", route_permission(route) is not None),
                                             ("device authentication", route_device_auth(route)),
                                             ("public", route_public(route))) if found]
        if len(declared) > 1:
            raise UnprotectedRoute(f"route {path} declares both {' and '.join(declared)}")
        if declared:
            continue
        if path.startswith("/agent/v1/"):
            raise UnprotectedRoute(f"agent route {path} does not declare device authentication (agent_api.DEVICE)")
        raise UnprotectedRoute(f"route {path} declares no permission (require(P.…)) nor public()")


def error_body(code: str, message: str, target: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "target": target}}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GarrisonError)
    async def garrison_error(request: Request, exc: GarrisonError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error_body(exc.code, str(exc)), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(error_body("InvalidRequestBody", f"{where or 'request'}: {first.get('msg', 'invalid')}",
                                       where), status_code=422)

    async def database_refused(request: Request, exc: Exception) -> JSONResponse:
        """The last line, not the check: a value the database refused is the client's mistake (400), or
        a change racing another (409), not a server error — but it means an edge check is missing."""
        orig = exc.orig if isinstance(exc, StatementError) else exc
        if isinstance(exc, IntegrityError):
            status, code, message = 409, DATABASE_REFUSED[1], "the change conflicts with the stored data; retry"
        elif isinstance(exc, DataError | OverflowError) or isinstance(orig, OverflowError):
            status, code, message = 400, DATABASE_REFUSED[0], "a value is out of the range the database can hold"
        else:
            raise exc
        log.error("%s %s: the database refused a value (%s); check it where it enters", request.method,
                  request.url.path, str(orig or exc).splitlines()[0][:200] if str(orig or exc) else type(orig))
        return JSONResponse(error_body(code, message), status_code=status)

    # OverflowError: the sqlite3 driver raises it, unwrapped, for an integer over 64 bits.
    app.add_exception_handler(StatementError, database_refused)
    app.add_exception_handler(OverflowError, database_refused)
