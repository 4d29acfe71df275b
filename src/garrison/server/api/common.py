"""Helpers shared by the API routers: OData list responses and device-group scoping."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pydantic_core
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.errors import Invalid
from garrison.core.scope import AccessScope
from garrison.server import odata


def odata_list(request: Request, entity: str, rows: Iterable[dict[str, Any]], select_: list[str] | None = None,
               count: int | None = None) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    body: dict[str, Any] = {"@odata.context": f"{base}/api/$metadata#{entity}"}
    if count is not None:
        body["@odata.count"] = count
    body["value"] = [odata.project(r, select_) for r in rows]
    return body


# A list route's ``openapi_extra``: the OData query options it takes (run_list / parse_odata read them).
ODATA = odata.openapi_extra()


def parse_odata(request: Request, fields: Mapping[str, odata.Field], default_order: list[Any] | None = None) -> odata.Query:
    try:
        return odata.parse_query(request.query_params, fields, default_order=default_order)
    except odata.ODataError as exc:
        raise Invalid(str(exc)) from None


def device_scope(principal: Principal) -> ColumnElement[bool]:
    """Devices a caller may see: all of the tenant (the session adds the tenant) or its groups."""
    return AccessScope.of(principal).devices()


def run_list(s: Session, request: Request, stmt: Select[*tuple[Any, ...]], fields: Mapping[str, odata.Field],
             to_api: Callable[[Any], dict[str, Any]], entity: str,
             default_order: list[Any] | None = None) -> dict[str, Any]:
    q = parse_odata(request, fields, default_order)
    count = None
    if request.query_params.get("$count", "").lower() == "true":
        filtered = stmt.where(q.filter) if q.filter is not None else stmt
        count = s.scalar(select(func.count()).select_from(filtered.subquery()))
    rows = s.execute(odata.apply(stmt, q)).all()
    return odata_list(request, entity, (to_api(r) for r in rows), q.select, count)


def json_response(body: dict[str, Any]) -> Response:
    """``body`` as JSON, serialised by pydantic-core as FastAPI's own response serialisation does (same
    datetime format: ``2024-05-01T12:00:00Z``) but in one call, without FastAPI's validation and
    ``jsonable_encoder`` walks over every value, which took more than the queries on a large page (a
    dense machine's 4 MB of vulnerabilities; docs/matching.md, Performance)."""
    return Response(pydantic_core.to_json(body), media_type="application/json")


def returns(model: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the model of its answer (``garrison.server.api.models``), documented in
    ``/api/openapi.json``. The handler's own JSON is sent as it is (no second validation pass over a
    large page); ``tests/server/test_api_schemas.py`` validates real answers against the model."""
    return {status: {"model": model, "description": "Successful Response"}}


def csv_file(description: str) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` when it answers a CSV file."""
    return {200: {"description": description, "content": {"text/csv": {"schema": {"type": "string"}}}}}


def json_lines(model: Any, description: str) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` when it streams JSON lines, one ``model`` per line."""
    return {200: {"description": f"{description}: one {model.__name__} per line",
                  "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}
