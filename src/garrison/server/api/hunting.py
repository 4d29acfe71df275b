"""Advanced hunting (``POST /api/advancedqueries/run``): a KQL query over the caller's telemetry, answered
in Defender's shape ``{"Schema": [{"Name", "Type"}], "Results": [{…}]}`` (garrison.edr.hunting)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from garrison.core.access import Principal
from garrison.core.errors import Invalid
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.edr.hunting.service import DEFAULT_TIMEOUT_S, MAX_ROWS, HuntingError, run
from garrison.edr.hunting.syntax import MAX_QUERY_CHARS, KqlError
from garrison.server.api import models as schema
from garrison.server.api.common import returns
from garrison.server.auth import RateLimited, require
from garrison.server.ratelimit import RateLimiter

router = APIRouter(prefix="/api", tags=["advanced hunting"])

class HuntRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    Query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)


def setup(app: Any) -> None:
    # Defender's limits per tenant: 45 calls a minute, 1,500 an hour (server settings).
    per_minute, per_hour = app.state.settings.hunting_calls_per_minute, app.state.settings.hunting_calls_per_hour
    app.state.hunting_limits = (RateLimiter(per_minute, burst=max(1, per_minute)),
                                RateLimiter(per_hour / 60, burst=max(1, per_hour)))


@router.post("/advancedqueries/run", responses=returns(schema.HuntingResult))
async def run_query(body: HuntRequest, request: Request, principal: Principal = require(P.HUNT)) -> dict[str, Any]:
    """Run an advanced-hunting query (KQL) on the tenant's telemetry of the last 30 days, limited to the
    caller's device groups: at most 100,000 rows (``Truncated`` says there were more)."""
    tenant = f"tenant:{principal.tenant_id}"
    for limiter in request.app.state.hunting_limits:
        wait = limiter.hit(tenant)
        if wait:
            raise RateLimited(wait)
    access = AccessScope.of(principal)

    def hunt() -> dict[str, Any]:
        with request.app.state.store.tenant(principal.tenant_id) as s:
            scope = access.events(s, request.app.state.events.store)
        try:
            result = run(scope, body.Query, max_rows=MAX_ROWS, timeout_s=DEFAULT_TIMEOUT_S)
        except (KqlError, HuntingError) as exc:
            raise Invalid(str(exc)) from None
        stats: dict[str, Any] = dict(result.stats)
        if result.chart:
            stats["chart"] = result.chart
        return {"Schema": result.schema, "Results": result.results, "Truncated": result.truncated,
                "Stats": stats}

    return await run_in_threadpool(hunt)


__all__ = ["router"]
