"""Generic ticket webhook: the activity as signed JSON (HMAC-SHA256, see ``integrations.signing``).

``POST config.url`` with ``{"event": "remediation.created", "activity": {...}}``. The receiver may
answer ``{"id": ..., "url": ..., "state": ...}``; that id is the ticket's. With
``config.status_url`` (``{id}`` is replaced), the state is read back with a signed ``GET`` whose
answer is ``{"state": ..., "closed": true|false}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, ClassVar

from garrison.integrations import signing
from garrison.integrations.httpclient import IntegrationError, request
from garrison.integrations.tickets.base import (
    TicketConnector,
    TicketRef,
    TicketRequest,
    TicketState,
    register_connector,
)

CLOSED_STATES = {"closed", "done", "resolved", "fixed", "completed"}


@register_connector
class WebhookConnector(TicketConnector):
    kind = "webhook"
    title = "Signed webhook"
    required = ("url",)
    required_secrets = ("secret",)
    url_keys: ClassVar[tuple[str, ...]] = ("url", "status_url")

    def create(self, req: TicketRequest) -> TicketRef:
        payload = {"event": "remediation.created", "activity": _activity(req), "text": req.text()}
        body = json.dumps(payload, sort_keys=True).encode()
        answer = request(self.client, "POST", self.config["url"], content=body,
                         headers=signing.headers(self.secrets["secret"], body, "remediation.created"))
        answer = answer if isinstance(answer, dict) else {}
        ext = str(answer.get("id") or req.activity_id)[:256]
        state = str(answer.get("state") or "Sent")[:64]
        return TicketRef(ext, str(answer.get("url") or "")[:2048], state, _closed(answer, state))

    def fetch(self, external_id: str) -> TicketState:
        template = self.config.get("status_url")
        if not template:
            raise IntegrationError("no status_url configured: the webhook's state cannot be read back",
                                   retryable=False)
        url = str(template).replace("%7Bid%7D", "{id}").replace("{id}", external_id)
        answer = request(self.client, "GET", url, headers=signing.headers(self.secrets["secret"], b"", "ticket.status"))
        answer = answer if isinstance(answer, dict) else {}
        state = str(answer.get("state") or "Unknown")[:64]
        return TicketState(state, _closed(answer, state))


def _closed(answer: dict[str, Any], state: str) -> bool:
    if isinstance(answer.get("closed"), bool):
        return bool(answer["closed"])
    return state.lower() in CLOSED_STATES


def _activity(req: TicketRequest) -> dict[str, Any]:
    d = asdict(req)
    d["due_on"] = req.due_on.isoformat() if req.due_on else None
    return d
