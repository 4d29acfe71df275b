"""Normalised records that importers yield, and helpers to read untrusted feed input.

An importer turns a feed file into a stream of:

* :class:`AdvisoryRecord` — a source record (USN, DSA, GHSA, PYSEC, a Debian tracker CVE entry, an Alpine
  secdb fix…) with the vulnerabilities it names and the packages it affects;
* :class:`Enrichment` — facts about one vulnerability from a feed without packages (KEV, EPSS, exploits);
* :class:`FullState` — "this feed lists every id that has the flag", so ids absent from it lose it (KEV);
* :class:`RecordError` — a record that could not be read; the import goes on with the others.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,7}$")
# Distro wrappers of a CVE id: UBUNTU-CVE-2021-3156, DEBIAN-CVE-…, ALPINE-CVE-…
WRAPPED_CVE_RE = re.compile(r"^[A-Za-z]+(?:-[A-Za-z]+)*-(CVE-\d{4}-\d{4,7})$")
ADVISORY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+~-]{0,127}$")

MAX_TEXT = 64 * 1024  # descriptions are cut here
MAX_LIST = 10_000  # aliases, ranges, events…
MAX_VERSIONS = 200_000  # explicit affected versions of one package (npm/PyPI can list thousands)
MAX_RAW = 256 * 1024  # the stored copy of a record

# Ranks of feeds describing a vulnerability (see Vulnerability.info_ranks).
RANK_NVD = 30
RANK_PACKAGE_DB = 20  # GHSA, PYSEC, Go, RustSec… (one record = one vulnerability)
RANK_DISTRO = 10
RANK_KEV = 5
RANK_FALLBACK = 1  # advisory-level data spread over several CVEs


class FieldError(ValueError):
    """A field of a record is missing or malformed; ``path`` names it (``affected[0].package.name``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass
class VulnInfo:
    """What a record says about one vulnerability. Empty fields say nothing."""

    description: str | None = None
    severity: str | None = None  # Critical/High/Medium/Low/None when the feed rates it in words
    cvss_v3_vector: str | None = None
    cvss_v3_score: float | None = None
    cvss_v4_vector: str | None = None
    cvss_v4_score: float | None = None
    cwes: list[str] = field(default_factory=list)
    published: dt.datetime | None = None
    modified: dt.datetime | None = None
    references: list[str] = field(default_factory=list)


@dataclass
class Affected:
    ecosystem: str
    package: str
    ranges: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    status: str = "affected"
    severity: str | None = None


@dataclass
class AdvisoryRecord:
    id: str
    source: str
    summary: str = ""
    modified: dt.datetime | None = None
    published: dt.datetime | None = None
    withdrawn: bool = False
    aliases: list[str] = field(default_factory=list)
    raw: Any = None
    # CVE ids the record names; empty = resolve through aliases, else the record's own id.
    vulnerabilities: list[str] = field(default_factory=list)
    affected: list[Affected] = field(default_factory=list)
    # Per vulnerability id; the key "*" holds record-level data (applies fully to a single-CVE record).
    info: dict[str, VulnInfo] = field(default_factory=dict)
    rank: int = RANK_DISTRO
    warnings: list[str] = field(default_factory=list)


@dataclass
class Enrichment:
    vulnerability_id: str
    values: dict[str, Any] = field(default_factory=dict)  # columns set as given
    append: dict[str, list[str]] = field(default_factory=dict)  # list columns merged (exploit_uris…)
    info: VulnInfo | None = None  # fills empty descriptive fields
    rank: int = RANK_KEV
    source: str = ""  # set by the pipeline: the importer's name


@dataclass
class ScoreTable:
    """Many plain-valued enrichments at once (EPSS: 360k rows): ``rows`` are (vulnerability id, *values)
    for ``columns``. Cheaper than one Enrichment per row."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass
class FullState:
    """Every vulnerability that has ``flag`` is in ``ids``; others lose it (KEV removals)."""

    flag: str
    ids: set[str]


@dataclass
class RecordError:
    message: str


Record = AdvisoryRecord | Enrichment | ScoreTable | FullState | RecordError


def record_date(rec: Record) -> dt.date | None:
    """The day a record says it was last changed (an advisory's ``modified``, else ``published``; a KEV
    entry's date added; an enrichment's ``modified``), or None when it carries no date."""
    if isinstance(rec, AdvisoryRecord):
        when = rec.modified or rec.published
        return when.date() if when else None
    if isinstance(rec, Enrichment):
        added = rec.values.get("kev_date_added")
        if isinstance(added, dt.datetime):
            return added.date()
        if isinstance(added, dt.date):
            return added
        if rec.info is not None and rec.info.modified is not None:
            return rec.info.modified.date()
    return None


# --- reading untrusted values ------------------------------------------------------------


def req_str(obj: dict[str, Any], key: str, path: str, max_len: int = 512) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"{path}{key}", "missing or not a non-empty string")
    if len(value) > max_len:
        raise FieldError(f"{path}{key}", f"longer than {max_len} characters")
    return value


def opt_str(obj: dict[str, Any], key: str, path: str, max_len: int = MAX_TEXT, cut: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{path}{key}", "not a string")
    if len(value) > max_len:
        if not cut:
            raise FieldError(f"{path}{key}", f"longer than {max_len} characters")
        value = value[:max_len]
    return value


def opt_list(obj: dict[str, Any], key: str, path: str, max_len: int = MAX_LIST) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(f"{path}{key}", "not a list")
    if len(value) > max_len:
        raise FieldError(f"{path}{key}", f"more than {max_len} entries")
    return value


def opt_dict(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(f"{path}{key}", "not an object")
    return value


def str_list(obj: dict[str, Any], key: str, path: str, max_len: int = MAX_LIST, item_len: int = 256) -> list[str]:
    out: list[str] = []
    for i, item in enumerate(opt_list(obj, key, path, max_len)):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)  # YAML may give an unquoted version as a number
        if not isinstance(item, str) or len(item) > item_len:
            raise FieldError(f"{path}{key}[{i}]", f"not a string of at most {item_len} characters")
        out.append(item)
    return out


def parse_time(value: Any, path: str) -> dt.datetime | None:
    """RFC 3339 timestamps (``Z``, any fraction) and plain dates, as aware UTC datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if not isinstance(value, str) or len(value) > 64:
        raise FieldError(path, "not a timestamp")
    text = value.strip()
    # Python 3.11 accepts 'Z' but not fractions longer than 6 digits (some feeds write 7).
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(path, f"not a timestamp: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_date(value: Any, path: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    stamp = parse_time(value, path)
    return stamp.date() if stamp else None


def normalise_pypi(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cve_of(identifier: str) -> str | None:
    """The CVE id an identifier is or wraps (UBUNTU-CVE-2021-3156 -> CVE-2021-3156)."""
    if CVE_RE.match(identifier):
        return identifier
    m = WRAPPED_CVE_RE.match(identifier)
    return m.group(1) if m else None


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False)


def bounded_raw(obj: Any, dumped: str | None = None) -> Any:
    """The record as given, made JSON-safe; records larger than MAX_RAW keep only their head fields."""
    text = dumped if dumped is not None else canonical_json(obj)
    if len(text) <= MAX_RAW:
        return json.loads(text)
    head: dict[str, Any] = {"_truncated": True, "_bytes": len(text)}
    if isinstance(obj, dict):
        for key in ("id", "modified", "published", "withdrawn", "aliases", "summary"):
            if key in obj:
                head[key] = obj[key]
    return json.loads(canonical_json(head))


def json_object(data: bytes, origin: str) -> dict[str, Any] | RecordError:
    """A feed file that must be one JSON object, or the error saying why it is not."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        return RecordError(f"{origin}: not valid JSON: {str(exc)[:200]}")
    if not isinstance(doc, dict):
        return RecordError(f"{origin}: top level is not an object")
    return doc
