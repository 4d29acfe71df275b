"""Declarative base, common column helpers and the tenant-scoping mixin.

Every table whose rows belong to one tenant inherits :class:`TenantScoped`. The
session machinery in :mod:`garrison.store.db` adds ``tenant_id = :current`` to every
ORM statement touching such a table, so no query can forget the tenant.
Tables shared by all tenants (the vulnerability knowledge base) inherit only ``Base``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, MetaData, Table, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_hex_id(nbytes: int = 20) -> str:
    """Defender-style opaque ids (a machine id is 40 hex characters)."""
    return secrets.token_hex(nbytes)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}
    if TYPE_CHECKING:  # every model here is mapped to a Table (SQLAlchemy types it as any FromClause)
        __table__: ClassVar[Table]


# Views whose rows belong to one tenant each, with the tenant in their "TenantId" column: hand-written
# SQL in a tenant session must filter them like tables (garrison.store.db.tenant_query).
TENANT_VIEWS: set[str] = set()


class TenantScoped:
    """Mixin for rows owned by one tenant; filtered automatically by the session."""

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        return mapped_column(Integer, ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False)
