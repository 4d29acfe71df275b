"""Bounds every untrusted number, date and string must meet before it reaches the state store.

A value the database cannot hold must be refused where it enters (HTTP 400/422), never found out
by the driver (a 500, or an agent upload parked as failed). These types and checks are that one
place, for the API, the console and the agent protocol alike:

* ``INT_MAX`` (``garrison.protocol.limits``) — ``Integer`` columns are 32-bit on PostgreSQL (SQLite's
  hold 64 bits, but both backends take the same input), so an id, sequence number or generation is at
  most 2³¹-1.
* :data:`Id` — an integer id in a path or body: 1..INT_MAX.
* :data:`UtcDateTime` — an ISO 8601 date-time, converted to UTC (no offset means UTC); one that UTC
  cannot represent with a day to spare (``0001-01-01T00:00+01:00``, ``9999-12-31T23:00-05:00``) is
  refused.
* :func:`json_has_nul` / :func:`query_has_nul` — PostgreSQL text cannot hold U+0000; the server
  refuses any request carrying one (``garrison.server.middleware.NulGuard``; agent bodies, which may
  be gzip, where ``garrison.server.agent_api`` reads them).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator

from garrison.protocol.limits import INT_MAX

Id = Annotated[int, Interval(ge=1, le=INT_MAX)]


def parse_id(value: int | str) -> int | None:
    """An id given as text (a path segment, a form field) as an int, or None when it is not one a
    row can have: not plain ASCII digits, or out of range."""
    if isinstance(value, int):
        return value if 1 <= value <= INT_MAX else None
    if not (value.isascii() and value.isdigit() and len(value) <= 10):
        return None
    number = int(value)
    return number if 1 <= number <= INT_MAX else None


# A day of headroom inside what Python represents, for the arithmetic done with a value (a window
# around a timestamp, an expiry): 0001-01-02 .. 9999-12-30 in UTC.
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC) - dt.timedelta(days=1)


def to_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC (naive means UTC); ValueError when it is not between EARLIEST and LATEST."""
    try:
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError("date-time out of range: use one between 0001-01-02 and 9999-12-30 (UTC)")
    return utc


UtcDateTime = Annotated[dt.datetime, AfterValidator(to_utc)]


# A JSON string escape for U+0000: ``\u0000`` preceded by an even number of backslashes (``\\u0000`` is
# an escaped backslash and the text "u0000"). A raw NUL byte is not valid JSON and never parses.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def json_has_nul(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` has a string holding U+0000."""
    return b"\\u0000" in raw and _JSON_NUL.search(raw) is not None


def query_has_nul(raw: bytes) -> bool:
    """Whether a URL-encoded query string or form body decodes to text holding U+0000."""
    return b"%00" in raw or b"\x00" in raw


__all__ = ["INT_MAX", "Id", "UtcDateTime", "json_has_nul", "parse_id", "query_has_nul", "to_utc"]
