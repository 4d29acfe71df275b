"""Notifiers, one module per channel (e-mail over SMTP, signed webhooks), discovered by ``NOTIFIERS``."""

from garrison.integrations.notify.base import (
    NOTIFIERS,
    Notifier,
    StoredConnection,
    notifier_for,
    register_notifier,
)

__all__ = ["NOTIFIERS", "Notifier", "StoredConnection", "notifier_for", "register_notifier"]
