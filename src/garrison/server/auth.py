"""Authentication and permission checks for every route.

A route declares the permission it needs with ``principal: Principal = require(P.MACHINES_READ)``
(``garrison.core.permissions``: the one policy table). The dependency carries a marker that
``garrison.server.app.check_routes`` looks for at start-up; a route that declares neither a permission,
device authentication (``agent_api.DEVICE``) nor :func:`public` stops the server from starting, so none
can be forgotten.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from starlette.routing import BaseRoute

from garrison.core import access, permissions
from garrison.core.access import Principal
from garrison.core.errors import Forbidden, GarrisonError, Unauthorized


class RateLimited(GarrisonError):
    status = 429
    code = "TooManyRequests"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded; retry in {math.ceil(retry_after)} s")
        self.retry_after = retry_after


def client_ip(request: Request) -> str:
    """The caller's address; X-Forwarded-For only when the peer is a configured proxy."""
    peer = request.client.host if request.client else ""
    networks = request.app.state.proxy_networks
    if not networks or not _in(peer, networks):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    # Walk from the right: the first address that is not one of our proxies is the client.
    for hop in reversed(hops):
        if not _in(hop, networks):
            return hop
    return hops[0] if hops else peer


def _in(addr: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def resolve_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    store = request.app.state.store
    request.state.client_ip = client_ip(request)
    header = request.headers.get("authorization", "")
    principal: Principal | None = None
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        principal = request.app.state.key_cache.get(token)
        if principal is None:
            # A key is checked whatever the address's failure budget (a valid key is never refused for
            # someone else's failures); only a failure is charged, and one past the budget is a 429.
            try:
                with store.system() as s:
                    principal = access.authenticate_api_key(s, token)
            except Unauthorized:
                _limit(request, "auth-fail:" + request.state.client_ip, probe=True)
                raise
            request.app.state.key_cache.put(token, principal)
    else:
        session_resolver: Callable[[Request], Principal | None] | None = request.app.state.session_resolver
        principal = session_resolver(request) if session_resolver else None
    if principal is None:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <API key>'")
    request.state.principal = principal
    return principal


def _limit(request: Request, key: str, probe: bool = False) -> None:
    limiter = request.app.state.auth_fail_limiter if probe else request.app.state.limiter
    wait = limiter.hit(key)
    if wait > 0:
        raise RateLimited(wait)


def require(permission: str, *, all_groups: bool = False) -> Any:
    """The caller, if it holds ``permission`` (a name of ``garrison.core.permissions.PERMISSIONS``);
    ``all_groups``: and access to every device group (tenant administration: users, keys, enrollment,
    group rules — an admin limited to some groups could otherwise give itself the rest)."""
    needed = permissions.PERMISSIONS[permissions.known(permission)]

    def dependency(request: Request) -> Principal:
        principal = resolve_principal(request)
        _limit(request, f"{principal.actor_type}:{principal.actor}")
        if not principal.allows(permission):
            raise Forbidden(f"this operation needs the permission '{needed.label}' ({permission}), "
                            f"which the role {principal.role} does not have")
        if all_groups and principal.group_ids is not None:
            raise Forbidden("this operation needs access to every device group (you are limited to some)")
        return principal

    dependency.garrison_permission = permission  # type: ignore[attr-defined]
    return Depends(dependency)


def public(endpoint: Any) -> Any:
    """Declare a route public: it needs no credentials (sign-in page, health, API docs, static files,
    enrollment — which checks the secret in its body). ``check_routes`` accepts it in place of a
    permission."""
    endpoint.garrison_public = True
    return endpoint


def route_permission(route: BaseRoute) -> str | None:
    """The permission a route requires, found in its dependency tree (None = declares none)."""
    return _marker(route, "garrison_permission")


def route_public(route: BaseRoute) -> bool:
    """Whether a route's endpoint is declared public (:func:`public`)."""
    return bool(getattr(getattr(route, "endpoint", None), "garrison_public", False))


def route_device_auth(route: BaseRoute) -> bool:
    """Whether a route declares device authentication — exactly ``agent_api.DEVICE`` — in its
    dependency tree."""
    from garrison.server import agent_api

    return agent_api.DEVICE.dependency in _calls(route)


def _calls(route: BaseRoute) -> list[Any]:
    """The callables of a route's dependency tree."""
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    out = []
    while stack:
        dep = stack.pop()
        out.append(dep.call)
        stack.extend(dep.dependencies)
    return out


def _marker(route: BaseRoute, attr: str) -> Any:
    found = [m for m in (getattr(call, attr, None) for call in _calls(route)) if m]
    if len(found) > 1:
        raise ValueError(f"route {getattr(route, 'path', route)} declares {attr} {len(found)} times")
    return found[0] if found else None


class KeyCache:
    """Verified API keys for a short while, so a busy script costs one hash per minute, not per call."""

    def __init__(self, ttl: float = 60.0, size: int = 10_000) -> None:
        import time

        self._time = time.monotonic
        self.ttl, self.size = ttl, size
        self._data: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        hit = self._data.get(token)
        if hit and hit[0] > self._time():
            return hit[1]
        return None

    def put(self, token: str, principal: Principal) -> None:
        if len(self._data) >= self.size:
            self._data.clear()
        self._data[token] = (self._time() + self.ttl, principal)

    def clear(self) -> None:
        self._data.clear()
