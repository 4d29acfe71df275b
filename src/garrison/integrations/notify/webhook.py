"""Notifications as signed JSON webhooks (see ``integrations.signing``)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from garrison.integrations import signing
from garrison.integrations.httpclient import IntegrationError, check_url, request
from garrison.integrations.notify.base import Notifier, StoredConnection, register_notifier


def send_webhook(client: httpx.Client, url: str, secret: str, body: dict[str, Any],
                 event: str = "timeline.event") -> None:
    raw = json.dumps(body, sort_keys=True, default=str).encode()
    request(client, "POST", url, content=raw, headers=signing.headers(secret, raw, event))


@register_notifier
class WebhookNotifier(Notifier):
    """A signed JSON POST to a webhook connection (the rule names the connection's id)."""

    channel = "webhook"
    connection_kind = "webhook"

    @staticmethod
    def validate(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        out = dict(config)
        out["url"] = check_url(str(out.get("url") or ""), "webhook: config.url")
        return out

    def connection(self, conns: dict[int, StoredConnection], target: str) -> StoredConnection:
        conn = conns.get(int(target)) if target.isdigit() else None
        if conn is None or conn.kind != self.connection_kind or not conn.enabled:
            raise IntegrationError(f"webhook connection {target[:40]} is gone or disabled", retryable=False)
        return conn

    def send(self, client: httpx.Client, config: dict[str, Any], secrets: dict[str, Any], target: str,
             subject: str, body: dict[str, Any]) -> None:
        send_webhook(client, config["url"], secrets.get("secret", ""), body)

    def ping(self, client: httpx.Client, config: dict[str, Any], secrets: dict[str, Any],
             to: str | None) -> str | None:
        send_webhook(client, config["url"], secrets.get("secret", ""), {"type": "garrison.ping"}, event="ping")
        return None
