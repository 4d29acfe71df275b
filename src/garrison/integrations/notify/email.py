"""E-mail over SMTP (standard library ``smtplib``): plain text, STARTTLS or implicit TLS, optional login.

The SMTP host is checked like every integration destination (``integrations.egress``).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

from garrison.integrations import egress
from garrison.integrations.httpclient import IntegrationError
from garrison.integrations.notify.base import Notifier, StoredConnection, register_notifier

TIMEOUT = 15.0  # per operation
DEADLINE = 60.0  # the whole exchange: a server answering a byte at a time is cut off here


@dataclass
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "garrison@localhost"
    starttls: bool = True
    ssl: bool = False
    username: str = ""
    password: str = ""
    verify_tls: bool = True

    @classmethod
    def from_connection(cls, config: dict[str, Any], secrets: dict[str, Any]) -> SmtpConfig:
        return cls(host=str(config.get("host") or ""), port=int(config.get("port") or 587),
                   sender=str(config.get("sender") or "garrison@localhost"),
                   starttls=bool(config.get("starttls", True)), ssl=bool(config.get("ssl", False)),
                   username=str(config.get("username") or ""), password=str(secrets.get("password") or ""),
                   verify_tls=bool(config.get("verify_tls", True)))

    @staticmethod
    def validate(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        out = dict(config)
        if not str(out.get("host") or "").strip():
            raise ValueError("smtp: config.host is required")
        port = out.get("port", 587)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("smtp: config.port must be a port number")
        sender = str(out.get("sender") or "")
        if "@" not in sender or any(c in sender for c in "\r\n"):
            raise ValueError("smtp: config.sender must be an e-mail address")
        if out.get("username") and not secrets.get("password"):
            raise ValueError("smtp: a username needs secrets.password")
        egress.check_destination(str(out["host"]).strip(), port, "smtp: config.host")
        return out


class _CheckedSMTP(smtplib.SMTP):
    """Connects to an address ``egress`` checked; STARTTLS verifies the host name as given."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return egress.connect(host, port, timeout, self.source_address)  # type: ignore[arg-type]


class _CheckedSMTPSSL(smtplib.SMTP_SSL, _CheckedSMTP):
    """Implicit TLS over the checked connection (``SMTP_SSL._get_socket`` wraps ours)."""


def _header(value: str) -> str:
    return " ".join(str(value).split())[:900]


def render_text(body: dict[str, Any]) -> str:
    """A notification (see prioritisation.notifications.message) as a plain-text e-mail body."""
    e = body.get("event") or {}
    lines = []
    if body.get("organization"):
        lines.append(f"Organization: {body['organization']}")
    lines += [
        str(e.get("title") or ""), "",
        f"Event:              {e.get('eventType')}",
        f"Date:               {e.get('date')}",
        f"Related component:  {e.get('relatedComponent')}",
        f"Severity:           {e.get('severity')}",
        f"Impacted devices:   {e.get('originallyImpactedDevices')}",
        f"Exposure score:     {e.get('scoreTrend')} ({e.get('scoreImpact')})",
    ]
    if e.get("vulnerabilityId"):
        lines.append(f"Vulnerability:      {e['vulnerabilityId']}")
    if e.get("recommendationId"):
        lines.append(f"Recommendation:     {e['recommendationId']}")
    rule = body.get("rule") or {}
    lines += ["", f"You receive this because of the Garrison notification rule '{rule.get('name')}'."]
    return "\n".join(lines) + "\n"


def _cut_off(server: smtplib.SMTP) -> None:
    sock = getattr(server, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read; smtplib then fails with OSError
        except OSError:
            pass


def send_email(cfg: SmtpConfig, to: str, subject: str, text: str, deadline: float = DEADLINE) -> str:
    """Send one message within ``deadline`` seconds; returns its Message-ID. Raises IntegrationError."""
    msg = EmailMessage()
    msg["From"] = _header(cfg.sender)
    msg["To"] = _header(to)
    msg["Subject"] = _header(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=cfg.sender.rsplit("@", 1)[-1] or "garrison")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    context = ssl.create_default_context()
    if not cfg.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    server: smtplib.SMTP = (_CheckedSMTPSSL(timeout=TIMEOUT, context=context) if cfg.ssl
                            else _CheckedSMTP(timeout=TIMEOUT))
    watchdog = threading.Timer(deadline, _cut_off, args=(server,))
    watchdog.daemon = True
    watchdog.start()
    server._host = cfg.host  # type: ignore[attr-defined]  # the TLS server name, as SMTP(host) would set it
    try:
        server.connect(cfg.host, cfg.port)
        with server:
            server.ehlo()
            if cfg.starttls and not cfg.ssl:
                server.starttls(context=context)
                server.ehlo()
            if cfg.username:
                server.login(cfg.username, cfg.password)
            refused = server.send_message(msg)
    except egress.Refused as exc:
        raise IntegrationError(f"SMTP {cfg.host}:{cfg.port}: {exc}", retryable=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise IntegrationError(f"SMTP refused the recipient {to}: {exc.recipients}", retryable=False) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise IntegrationError(f"SMTP login failed: {exc.smtp_code}", retryable=False) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise IntegrationError(f"SMTP {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}") from None
    finally:
        watchdog.cancel()
        server.close()
    if refused:
        raise IntegrationError(f"SMTP refused {', '.join(refused)}", retryable=False)
    return str(msg["Message-ID"])


@register_notifier
class EmailNotifier(Notifier):
    """E-mail through the tenant's (first enabled) SMTP connection."""

    channel = "email"
    connection_kind = "smtp"

    @staticmethod
    def validate(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        return SmtpConfig.validate(config, secrets)

    def connection(self, conns: dict[int, StoredConnection], target: str) -> StoredConnection:
        smtp = next((c for c in conns.values() if c.kind == self.connection_kind and c.enabled), None)
        if smtp is None:
            raise IntegrationError("no SMTP connection is configured")
        return smtp

    def send(self, client: httpx.Client, config: dict[str, Any], secrets: dict[str, Any], target: str,
             subject: str, body: dict[str, Any]) -> None:
        send_email(SmtpConfig.from_connection(config, secrets), target, subject, render_text(body))

    def ping(self, client: httpx.Client, config: dict[str, Any], secrets: dict[str, Any],
             to: str | None) -> str | None:
        if not to:
            return "give an address to send the test message to"
        send_email(SmtpConfig.from_connection(config, secrets), to, "[Garrison] test message",
                   "This is a test message from Garrison.\n")
        return None
