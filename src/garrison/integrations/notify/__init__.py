"""Notification senders: e-mail over SMTP and signed webhooks."""

from garrison.integrations.notify.email import SmtpConfig, render_text, send_email
from garrison.integrations.notify.webhook import send_webhook

__all__ = ["SmtpConfig", "render_text", "send_email", "send_webhook"]
