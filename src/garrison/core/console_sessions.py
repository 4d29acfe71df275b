"""The console's sign-in sessions in the state store (``console_sessions``): the server keeps only the
SHA-256 of the cookie's token. The cookie, CSRF and request side are ``garrison.server.web.session``;
these are its reads and writes, in a system session (sign-in happens before any tenant is known)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from garrison.core.security import hash_secret
from garrison.store.base import utcnow
from garrison.store.models.core import User
from garrison.store.models.web import ConsoleSession


def create(s: Session, user: User, source_ip: str, user_agent: str, lifetime: dt.timedelta) -> str:
    """A new session for ``user`` (expired ones are purged first); returns the token for the cookie."""
    now = utcnow()
    s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    s.add(ConsoleSession(tenant_id=user.tenant_id, token_hash=hash_secret(token), user_id=user.id,
                         created_at=now, last_seen_at=now, expires_at=now + lifetime,
                         source_ip=source_ip[:64], user_agent=user_agent[:256]))
    s.flush()
    return token


def revoke(s: Session, token: str) -> None:
    s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hash_secret(token)))


def resolve(s: Session, token: str, idle: dt.timedelta, touch_every: dt.timedelta) -> tuple[ConsoleSession, User] | None:
    """The live session of ``token`` and its user. An expired or idle session, a disabled user, or a
    user moved to another tenant ends the session (deleted) and answers None; a used session is
    touched at most every ``touch_every``."""
    now = utcnow()
    row = s.execute(select(ConsoleSession, User).join(User, User.id == ConsoleSession.user_id)
                    .where(ConsoleSession.token_hash == hash_secret(token))).first()
    if row is None:
        return None
    sess, user = row
    if sess.expires_at <= now or sess.last_seen_at + idle <= now or user.disabled or user.tenant_id != sess.tenant_id:
        s.delete(sess)
        return None
    if now - sess.last_seen_at > touch_every:
        sess.last_seen_at = now
    return sess, user
