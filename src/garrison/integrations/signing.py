"""HMAC-SHA256 signatures of outgoing webhooks (tickets and notifications).

Headers sent with every signed request:

* ``X-Garrison-Timestamp``: Unix time in seconds;
* ``X-Garrison-Signature``: ``sha256=`` + hex HMAC-SHA256 over ``"<timestamp>." + body`` with the
  connection's shared secret;
* ``X-Garrison-Delivery``: a unique id (for the receiver's replay protection).

A receiver recomputes the HMAC over the raw body, compares in constant time (:func:`verify`) and
refuses timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

TOLERANCE = 300  # seconds


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(secret: str, body: bytes, event: str, now: float | None = None) -> dict[str, str]:
    ts = str(int(now if now is not None else time.time()))
    return {"X-Garrison-Timestamp": ts, "X-Garrison-Signature": signature(secret, ts, body),
            "X-Garrison-Delivery": str(uuid.uuid4()), "X-Garrison-Event": event,
            "Content-Type": "application/json"}


def verify(secret: str, timestamp: str, body: bytes, sig: str, now: float | None = None,
           tolerance: int = TOLERANCE) -> bool:
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = now if now is not None else time.time()
    if abs(current - ts) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), sig or "")
