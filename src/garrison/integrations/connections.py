"""Configured connections of a tenant: ticket connectors, SMTP and webhooks.

``config`` is shown through the API; ``secrets`` (tokens, passwords, HMAC keys) are write-only:
the API shows which secret keys are set, never their values, and the row keeps them encrypted
(``integrations.secretbox``). URLs and the SMTP host must be destinations ``integrations.egress``
allows.
"""

from __future__ import annotations

import json
import re
from typing import Any

from garrison.integrations.notify import NOTIFIERS, notifier_for
from garrison.integrations.tickets import CONNECTORS
from garrison.store.models.prioritisation import IntegrationConnection

MAX_JSON = 16 * 1024  # encoded size of config, and of secrets
MAX_DEPTH = 8  # nesting of objects and lists in config (connectors use two or three levels)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,127}$")


def validate(kind: str, name: str, config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """Normalised config; raises ValueError with a message a user can act on."""
    if not _NAME.match(name or ""):
        raise ValueError("name: use 1-128 letters, digits, space, . _ @ -")
    kinds = connection_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(kinds)}")
    check_shape(config, "config")
    check_shape(secrets, "secrets")
    for k, v in secrets.items():
        if not isinstance(v, str):
            raise ValueError(f"secrets.{k} must be a string")  # noqa: TRY004 - ValueError is the API's 400
    out = CONNECTORS[kind].validate(config, secrets) if kind in CONNECTORS else dict(config)
    notifier = notifier_for(kind)
    return notifier.validate(out, secrets) if notifier is not None else out


def connection_kinds() -> list[str]:
    """Ticket connectors' kinds and notifiers' connection kinds (a webhook is both)."""
    return sorted(set(CONNECTORS) | {n.connection_kind for n in NOTIFIERS.values()})


def check_shape(value: Any, what: str) -> None:
    """Depth and size bounds, checked before anything is saved: a config nested hundreds deep was once
    saved, then failed every listing of the connections when encoded."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise ValueError(f"{what}: nested deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    if len(json.dumps(value)) > MAX_JSON:
        raise ValueError(f"{what}: larger than {MAX_JSON} bytes")


def is_ticketing(kind: str) -> bool:
    return kind in CONNECTORS


def to_api(c: IntegrationConnection) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "kind": c.kind, "config": c.config, "secretsSet": sorted(c.secrets or {}),
            "enabled": c.enabled, "ticketing": is_ticketing(c.kind), "notifications": notifier_for(c.kind) is not None,
            "createdBy": c.created_by, "createdOn": c.created_at}
