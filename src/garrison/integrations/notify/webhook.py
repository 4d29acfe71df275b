"""Notifications as signed JSON webhooks (see ``integrations.signing``)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from garrison.integrations import signing
from garrison.integrations.httpclient import request


def send_webhook(client: httpx.Client, url: str, secret: str, body: dict[str, Any],
                 event: str = "timeline.event") -> None:
    raw = json.dumps(body, sort_keys=True, default=str).encode()
    request(client, "POST", url, content=raw, headers=signing.headers(secret, raw, event))
