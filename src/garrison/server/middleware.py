"""ASGI middleware: request size limits, the NUL guard and the audit log of state-changing calls."""

from __future__ import annotations

import functools
import json
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garrison.core import audit
from garrison.protocol.bounds import json_has_nul, query_has_nul
from garrison.store.db import Store

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


class BodyLimit:
    """Refuse bodies over the limit (413) — by Content-Length up front, and while streaming."""

    def __init__(self, app: ASGIApp, api_limit: int, agent_limit: int, import_limit: int | None = None) -> None:
        self.app, self.api_limit, self.agent_limit = app, api_limit, agent_limit
        self.import_limit = import_limit or api_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        # event log imports (EVTX files) are larger than API calls
        limit = (self.agent_limit if path.startswith("/agent/") else
                 self.import_limit if path.endswith("/events/import") else self.api_limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _too_large(send, limit)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": "RequestTooLarge", "message": f"request body over {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class NulGuard:
    """Refuse (400) a request carrying U+0000 in its path, query string, headers or JSON/form body.

    PostgreSQL text cannot hold it, so such a value would otherwise fail deep in the database (a 500)
    wherever it is stored or compared; SQLite and PostgreSQL must take the same input. Bodies of other
    types (an inventory file, multipart) pass untouched: their parsers decide. Agent bodies, which may
    be gzip, are checked where ``garrison.server.agent_api`` reads them."""

    FORM_TYPES = (b"application/json", b"application/x-www-form-urlencoded")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if "\x00" in scope["path"] or query_has_nul(scope.get("query_string", b"")) or \
                any(b"\x00" in value for _name, value in headers):
            await _nul_refused(send)
            return
        ctype = next((v for k, v in headers if k == b"content-type"), b"").split(b";")[0].strip().lower()
        if scope["path"].startswith("/agent/") or not (ctype in self.FORM_TYPES or ctype.endswith(b"+json")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []  # bounded: BodyLimit runs first
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_has_nul(body) if ctype != b"application/x-www-form-urlencoded" else query_has_nul(body):
            await _nul_refused(send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


async def _nul_refused(send: Send) -> None:
    body = json.dumps({"error": {"code": "InvalidRequest", "target": "",
                                 "message": "the request contains a NUL character (U+0000), which no field can hold"}}
                      ).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class AuditLog:
    """Record who changed what: every state-changing /api and console call that got as far as
    authentication, whatever its outcome (a refused change is worth knowing about too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING or scope["path"].startswith("/agent/"):
            await self.app(scope, receive, send)
            return
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, capture)
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        if principal is None:
            return
        route = scope.get("route")
        action = getattr(route, "name", "") or scope["path"]
        params = scope.get("path_params") or {}
        target = ",".join(f"{k}={v}" for k, v in params.items())
        extra = state.get("audit_target")
        if extra:
            target = (target + " " + str(extra)).strip()
        entry = functools.partial(_write_entry, scope["app"].state.store, principal, action, target=target,
                                  method=scope["method"], path=scope["path"], status_code=status,
                                  source_ip=state.get("client_ip", ""))
        # In a worker thread: a write waiting for SQLite's write lock (busy_timeout) must not stall the
        # event loop, and with it every other request (check-ins above all).
        await anyio.to_thread.run_sync(entry)


def _write_entry(store: Store, principal: Any, action: str, **fields: Any) -> None:
    with store.tenant(principal.tenant_id) as s:
        audit.record(s, principal.tenant_id, principal.actor, principal.actor_type, action, **fields)
