"""Opening and syncing tickets, delivering notifications, and the jobs that do it.

Remote calls never run inside a database transaction: rows are read and committed first, the
call is made, and its outcome is written in a new short transaction. Failures are kept on the
row (``last_error``) and retried with backoff; errors that trying again cannot fix (a refused
login, a 4xx answer) stop the retries.

Jobs:

* ``integrations.notifications`` (every 30 s): send the notification outbox.
* ``integrations.tickets`` (every 5 min): open tickets whose first attempt failed, and read the
  state of open tickets back.
* ``integrations.secrets`` (at start, then hourly): encrypt connection secrets stored in plaintext
  by earlier versions, and re-encrypt those of a rotated-out key (see ``integrations.secretbox``).

Secrets are decrypted only for the call that needs them; a missing or wrong key is recorded as
that call's error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from garrison.core.jobs import system_job, tenant_job
from garrison.integrations import httpclient, secretbox
from garrison.integrations.httpclient import IntegrationError
from garrison.integrations.notify.base import NOTIFIERS, StoredConnection, notifier_for, unknown_channel
from garrison.integrations.tickets import TicketRequest, get_connector
from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.prioritisation import (
    IntegrationConnection,
    NotificationDelivery,
    RemediationActivity,
    RemediationTarget,
    RemediationTicket,
)

log = logging.getLogger("garrison.integrations")

BACKOFF = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(BACKOFF)
SYNC_EVERY = dt.timedelta(minutes=10)
MAX_DEVICE_NAMES = 50
ClientFactory = Callable[[], httpx.Client]


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=BACKOFF[min(attempts, len(BACKOFF)) - 1])


def _unseal(tenant_id: int, stored: dict[str, Any]) -> dict[str, str]:
    """A connection's secrets in clear; a missing or wrong key is the call's (retryable) error."""
    try:
        return secretbox.unseal(tenant_id, stored)
    except secretbox.SecretsError as exc:
        raise IntegrationError(str(exc)) from None


# --- tickets ---------------------------------------------------------------------------------------

def ticket_request(s: Session, act: RemediationActivity) -> TicketRequest:
    names = list(s.scalars(select(Device.computer_dns_name)
                           .join(RemediationTarget, RemediationTarget.device_id == Device.id)
                           .where(RemediationTarget.activity_id == act.id, RemediationTarget.fixed_on.is_(None))
                           .order_by(Device.computer_dns_name).limit(MAX_DEVICE_NAMES)))
    due = act.due_on.date() if act.due_on else None
    return TicketRequest(activity_id=act.id, title=act.title, description=act.description, priority=act.priority,
                         due_on=due, category=act.category, remediation_type=act.type,
                         recommendation_id=act.recommendation_id, related_component=act.related_component,
                         recommended_version=act.recommended_version, target_devices=act.target_devices,
                         fixed_devices=act.fixed_devices, device_names=names, notes=act.requester_notes,
                         requester=act.requester_email or act.requester_id)


def connection(s: Session, tenant_id: int, connection_id: int, *, ticketing: bool | None = None,
               kind: str | None = None) -> IntegrationConnection:
    from garrison.integrations.connections import is_ticketing

    conn = s.get(IntegrationConnection, connection_id)
    if conn is None or conn.tenant_id != tenant_id:
        raise LookupError(f"no connection with id {connection_id}")
    if ticketing and not is_ticketing(conn.kind):
        raise ValueError(f"connection {conn.name!r} ({conn.kind}) cannot open tickets")
    if kind and conn.kind != kind:
        raise ValueError(f"connection {conn.name!r} is not a {kind} connection")
    if not conn.enabled:
        raise ValueError(f"connection {conn.name!r} is disabled")
    return conn


def open_ticket(store: Store, tenant_id: int, activity_id: str, connection_id: int,
                client_factory: ClientFactory = httpclient.client) -> dict[str, Any]:
    """Create the ticket row, then ask the remote system; returns the ticket as the API shows it."""
    with store.tenant(tenant_id) as s:
        conn = connection(s, tenant_id, connection_id, ticketing=True)
        act = s.get(RemediationActivity, activity_id)
        if act is None:
            raise LookupError(f"no remediation activity {activity_id}")
        ticket = RemediationTicket(activity_id=act.id, connection_id=conn.id, connector=conn.kind, state="Pending")
        s.add(ticket)
        s.flush()
        ticket_id = ticket.id
    _attempt_create(store, tenant_id, ticket_id, client_factory)
    with store.tenant(tenant_id) as s:
        return ticket_to_dict(s.get(RemediationTicket, ticket_id))  # type: ignore[arg-type]


def _attempt_create(store: Store, tenant_id: int, ticket_id: int, client_factory: ClientFactory) -> None:
    with store.tenant(tenant_id) as s:
        ticket = s.get(RemediationTicket, ticket_id)
        if ticket is None or ticket.external_id or ticket.connection_id is None:
            return
        conn = s.get(IntegrationConnection, ticket.connection_id)
        act = s.get(RemediationActivity, ticket.activity_id)
        if conn is None or act is None:
            return
        req = ticket_request(s, act)
        kind, config, stored = conn.kind, dict(conn.config), dict(conn.secrets)
    error: IntegrationError | None = None
    ref = None
    try:
        secrets = _unseal(tenant_id, stored)
        with client_factory() as c:
            ref = get_connector(kind)(config, secrets, c).create(req)
    except IntegrationError as exc:
        error = exc
    except Exception as exc:
        log.exception("ticket connector %s failed", kind)
        error = IntegrationError(f"{type(exc).__name__}: {exc}", retryable=False)
    now = utcnow()
    with store.tenant(tenant_id) as s:
        ticket = s.get(RemediationTicket, ticket_id)
        if ticket is None:
            return
        ticket.attempts += 1
        ticket.last_checked_at = now
        if ref is not None:
            ticket.external_id, ticket.url, ticket.state, ticket.closed = ref.external_id, ref.url, ref.state, ref.closed
            ticket.last_error = ""
        else:
            assert error is not None
            ticket.last_error = str(error)[:2000]
            ticket.state = "Failed" if (not error.retryable or ticket.attempts >= MAX_ATTEMPTS) else "Pending"


def sync_ticket(store: Store, tenant_id: int, ticket_id: int,
                client_factory: ClientFactory = httpclient.client) -> dict[str, Any]:
    """Read one ticket's state back from its system (or retry creating it)."""
    with store.tenant(tenant_id) as s:
        ticket = s.get(RemediationTicket, ticket_id)
        if ticket is None:
            raise LookupError(f"no ticket {ticket_id}")
        pending = not ticket.external_id
        conn = s.get(IntegrationConnection, ticket.connection_id) if ticket.connection_id else None
        kind = conn.kind if conn else ""
        config, stored = (dict(conn.config), dict(conn.secrets)) if conn else ({}, {})
        external_id = ticket.external_id
    if pending:
        _attempt_create(store, tenant_id, ticket_id, client_factory)
    elif conn is not None:
        state = None
        error: Exception | None = None
        try:
            secrets = _unseal(tenant_id, stored)
            with client_factory() as c:
                state = get_connector(kind)(config, secrets, c).fetch(external_id)
        except IntegrationError as exc:
            error = exc
        now = utcnow()
        with store.tenant(tenant_id) as s:
            ticket = s.get(RemediationTicket, ticket_id)
            if ticket is not None:
                ticket.last_checked_at = now
                if state is not None:
                    ticket.state, ticket.closed, ticket.last_error = state.state[:64], state.closed, ""
                else:
                    ticket.last_error = str(error)[:2000]
    with store.tenant(tenant_id) as s:
        return ticket_to_dict(s.get(RemediationTicket, ticket_id))  # type: ignore[arg-type]


def sync_tickets(store: Store, tenant_id: int, now: dt.datetime | None = None,
                 client_factory: ClientFactory = httpclient.client) -> int:
    now = now or utcnow()
    with store.tenant(tenant_id) as s:
        ids = list(s.scalars(select(RemediationTicket.id).where(
            RemediationTicket.closed.is_(False), RemediationTicket.connection_id.is_not(None),
            or_(RemediationTicket.state == "Pending",
                RemediationTicket.last_checked_at.is_(None),
                RemediationTicket.last_checked_at <= now - SYNC_EVERY),
            RemediationTicket.state != "Failed")))
    for tid in ids:
        try:
            sync_ticket(store, tenant_id, tid, client_factory)
        except Exception:
            log.exception("ticket %s sync failed", tid)
    return len(ids)


def ticket_to_dict(t: RemediationTicket) -> dict[str, Any]:
    return {"id": t.id, "activityId": t.activity_id, "connector": t.connector, "connectionId": t.connection_id,
            "externalId": t.external_id or None, "url": t.url or None, "state": t.state, "closed": t.closed,
            "createdOn": t.created_at, "lastCheckedOn": t.last_checked_at, "lastError": t.last_error or None,
            "attempts": t.attempts}


# --- notifications ---------------------------------------------------------------------------------

def deliver_pending(store: Store, tenant_id: int, now: dt.datetime | None = None, limit: int = 200,
                    client_factory: ClientFactory = httpclient.client) -> dict[str, int]:
    """Send due outbox rows of one tenant; returns counts of sent, retried and failed messages."""
    now = now or utcnow()
    with store.tenant(tenant_id) as s:
        due = [(d.id, d.channel, d.target, d.subject, dict(d.body), d.attempts) for d in s.scalars(
            select(NotificationDelivery).where(NotificationDelivery.status == "Pending",
                                               NotificationDelivery.next_attempt_at <= now)
            .order_by(NotificationDelivery.id).limit(limit))]
        if not due:
            return {"sent": 0, "retry": 0, "failed": 0}
        conns = {c.id: StoredConnection(c.id, c.kind, dict(c.config), dict(c.secrets), c.enabled)
                 for c in s.scalars(select(IntegrationConnection))}
    outcomes: list[tuple[int, str, str]] = []  # id, status, error
    with client_factory() as c:
        for did, channel, target, subject, body, _attempts in due:
            try:
                notifier = NOTIFIERS.get(channel)
                if notifier is None:
                    raise unknown_channel(channel)
                conn = notifier.connection(conns, target)
                notifier.send(c, conn.config, _unseal(tenant_id, conn.secrets), target, subject, body)
                outcomes.append((did, "Sent", ""))
            except IntegrationError as exc:
                outcomes.append((did, "Retry" if exc.retryable else "Failed", str(exc)))
    counts = {"sent": 0, "retry": 0, "failed": 0}
    done = utcnow()
    with store.tenant(tenant_id) as s:
        for did, status, error in outcomes:
            d = s.get(NotificationDelivery, did)
            if d is None:
                continue
            d.attempts += 1
            if status == "Sent":
                d.status, d.sent_at, d.last_error = "Sent", done, ""
                counts["sent"] += 1
            elif status == "Retry" and d.attempts < MAX_ATTEMPTS:
                d.last_error, d.next_attempt_at = error[:2000], done + _backoff(d.attempts)
                counts["retry"] += 1
            else:
                d.status, d.last_error = "Failed", error[:2000]
                counts["failed"] += 1
    return counts


def check_connection(store: Store, tenant_id: int, connection_id: int, to: str | None = None,
                    client_factory: ClientFactory = httpclient.client) -> dict[str, Any]:
    """Try a connection: an e-mail to ``to`` (SMTP), a signed ping (webhook), a read (ticket systems)."""
    with store.tenant(tenant_id) as s:
        conn = connection(s, tenant_id, connection_id)
        kind, config, stored = conn.kind, dict(conn.config), dict(conn.secrets)
    try:
        secrets = _unseal(tenant_id, stored)
        notifier = notifier_for(kind)
        if notifier is None:
            return {"ok": True, "detail": "configuration is valid; a ticket is opened with the first activity"}
        with client_factory() as c:
            problem = notifier.ping(c, config, secrets, to)
        if problem:
            return {"ok": False, "error": problem}
    except IntegrationError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True}


# --- jobs ------------------------------------------------------------------------------------------

@tenant_job("integrations.notifications", interval=30)
def notifications_job(store: Store, tenant_id: int) -> None:
    deliver_pending(store, tenant_id)


def encrypt_stored_secrets(store: Store) -> int:
    """Encrypt secrets saved in plaintext (before encryption at rest existed) or under a key that is no
    longer the first (rotation); returns the rows changed. Rows whose secrets cannot be decrypted are
    left as they are (logged)."""
    changed = 0
    with store.system() as s:
        rows = list(s.scalars(select(IntegrationConnection).order_by(IntegrationConnection.id)))
        values = [v for c in rows for v in (c.secrets or {}).values()]
        if not values:
            return 0
        # a new key file only while no secret is encrypted yet: a missing key file is not a lost key to replace
        kid = secretbox.current_key_id(create=not any(secretbox.is_encrypted(v) for v in values))
        for conn in rows:
            if all(secretbox.key_id_of(v) == kid for v in (conn.secrets or {}).values()):
                continue
            try:
                conn.secrets = secretbox.reseal(conn.tenant_id, conn.secrets)
            except secretbox.SecretsError as exc:
                log.warning("integration connection %s: %s", conn.id, exc)
                continue
            changed += 1
    if changed:
        log.info("encrypted the secrets of %d integration connections", changed)
    return changed


@system_job("integrations.secrets", interval=3600)
def secrets_job(store: Store) -> None:
    encrypt_stored_secrets(store)


@tenant_job("integrations.tickets", interval=300)
def tickets_job(store: Store, tenant_id: int) -> None:
    sync_tickets(store, tenant_id)
