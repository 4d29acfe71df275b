"""Web console sessions.

A session is a random token in an HttpOnly cookie; only its SHA-256 is stored here, so a copy of
the database does not let anyone sign in. Sessions end at ``expires_at`` (absolute lifetime), after
an idle period without requests, at sign-out, or when the user is deleted (cascade).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.store.base import Base, TenantScoped, utcnow


class ConsoleSession(TenantScoped, Base):
    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
