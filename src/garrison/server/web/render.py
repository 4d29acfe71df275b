"""Templates, the per-request page context (who, which device groups) and list helpers.

Templates are Jinja2 with autoescaping on. Every page gets a :class:`Ctx`: the principal, the
device groups it may see, and the device-group filter chosen in the URL (``?group=3&group=5``),
which every link on the page carries on, so that the filter applies to every page and a URL
can be shared as it is.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from garrison import __version__
from garrison.core import administration
from garrison.core.access import Principal
from garrison.core.scope import AccessScope
from garrison.server.web import charts
from garrison.server.web.session import CSRF_FIELD, PREFIX, SessionInfo

HERE = Path(__file__).parent
ASSET_VERSION = __version__

# (section, label, path, the permission its page declares): the menu shows what the user may open.
NAV = [
    ("dashboard", "Dashboard", "/", "vulnerabilities.read"),
    ("recommendations", "Security recommendations", "/recommendations", "vulnerabilities.read"),
    ("remediation", "Remediation", "/remediation", "vulnerabilities.read"),
    ("software", "Software inventory", "/software", "vulnerabilities.read"),
    ("weaknesses", "Weaknesses", "/weaknesses", "vulnerabilities.read"),
    ("timeline", "Event timeline", "/timeline", "vulnerabilities.read"),
    ("devices", "Devices", "/devices", "machines.read"),
    ("alerts", "Alerts", "/alerts", "alerts.read"),
    ("hunting", "Advanced hunting", "/hunting", "hunt"),
    ("settings", "Settings", "/settings", "self"),
]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(charts=charts, fmt_num=charts.fmt_num, NAV=NAV, PREFIX=PREFIX, CSRF_FIELD=CSRF_FIELD,
                       ASSET_VERSION=ASSET_VERSION)
    env.filters.update(when=fmt_when, day=fmt_day, ago=fmt_ago, num=charts.fmt_num, pct=fmt_pct,
                       external_url=external_url, label=label, plural=plural, software_name=software_name)
    return env


# --- formatting -------------------------------------------------------------------------

# Words for the enum values of the model (Defender's API names) that reach a page; one registry, merged
# with the per-page ones (remediation types, categories, timeline events, justifications) by :func:`label`.
LABELS: dict[str, str] = {
    "CanBeOnboarded": "Can be onboarded", "Onboarded": "Onboarded", "InsufficientInfo": "Insufficient info",
    "Unsupported": "Unsupported", "Active": "Active", "Completed": "Completed", "Exception": "Exception",
    "NotStarted": "Not started", "InProgress": "In progress", "Cancelled": "Cancelled", "Expired": "Expired",
    "deviceGroupIds": "Device groups", "rbacGroupIds": "Device groups", "justification": "Justification",
    "expiringOn": "Expires on", "dueOn": "Due on", "recommendationId": "Recommendation",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def label(value: object) -> str:
    """A person's words for an enum value: the registry's, else ``CamelCase`` split into "Camel case"."""
    if value is None:
        return ""
    text = str(value)
    known = LABELS.get(text) or _page_labels().get(text)
    if known:
        return known
    if _CAMEL.search(text) and " " not in text:
        words = _CAMEL.sub(" ", text).split(" ")
        return " ".join([words[0]] + [w.lower() if not w.isupper() else w for w in words[1:]])
    return text


def _page_labels() -> dict[str, str]:
    from garrison.server.web.pages.timeline import TYPE_LABELS
    from garrison.tvm.queries import summary

    return {**summary.REMEDIATION_LABELS, **summary.CATEGORY_LABELS, **summary.JUSTIFICATION_LABELS,
            **TYPE_LABELS}


_FIELD_IN_PARENS = re.compile(r" \((?:[a-z]+[A-Z][A-Za-z]*)\)")
_FIELD = re.compile(r"\b[a-z]+[A-Z][A-Za-z]*\b")


def humane_error(message: object) -> str:
    """An API error for a page: API field names (``deviceGroupIds``) become words or go."""
    text = _FIELD_IN_PARENS.sub("", str(message))
    return _FIELD.sub(lambda m: LABELS.get(m.group(0), m.group(0)), text)


def plural(count: object, noun: str, nouns: str | None = None) -> str:
    """"1 device", "2 devices", "1,024 devices"."""
    try:
        n = int(count)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        n = 0
    return f"{charts.fmt_num(n)} {noun if n == 1 else (nouns or noun + 's')}"


def software_name(software_id: object) -> str:
    """A software id (``vendor-_-product``, a recommendation's ``va-_-python-_-pip``) as "pip (python)"."""
    parts = [p for p in str(software_id or "").split("-_-") if p and p != "va"]
    if not parts:
        return ""
    return parts[-1] if len(parts) == 1 else f"{parts[-1]} ({parts[0]})"


def fmt_when(value: dt.datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_day(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return value.isoformat()


def fmt_ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if value is None:
        return "never"
    now = now or dt.datetime.now(dt.UTC)
    secs = (now - value).total_seconds()
    if secs < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return "just now"


def external_url(value: Any) -> str:
    """A link taken from a feed: only http(s), anything else (javascript:, data:…) becomes inert."""
    text = str(value or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else "#"


def fmt_pct(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f}%"


ENV = _env()


# --- the page context -------------------------------------------------------------------

@dataclass
class Ctx:
    request: Request
    principal: Principal
    info: SessionInfo
    tenant_name: str
    groups: list[tuple[int, str]]  # visible device groups (id, name)
    selected: tuple[int, ...]  # chosen in the URL; () = all visible
    section: str = ""
    started: float = field(default_factory=time.perf_counter)

    def unscoped(self) -> Ctx:
        """The same context without the device-group filter of the URL (the principal's own limits stay)."""
        import dataclasses

        return dataclasses.replace(self, selected=())

    @property
    def scope(self) -> tuple[int, ...] | None:
        """Device-group ids the page shows; None = every group of the tenant."""
        if self.selected:
            return self.selected
        return self.principal.group_ids

    def device_cond(self) -> ColumnElement[bool]:
        """Condition on ``Device`` for the page's device groups (the session adds the tenant)."""
        scope = self.scope
        return AccessScope(self.principal.tenant_id, None if scope is None else frozenset(scope)).devices()

    @property
    def group_params(self) -> list[tuple[str, str]]:
        return [("group", str(g)) for g in self.selected]

    def url(self, path: str, _keep_groups: bool = True, **params: Any) -> str:
        """A console URL with the current device-group filter and ``params`` (None values dropped)."""
        items: list[tuple[str, str]] = []
        for key, value in params.items():
            if value is None or value == "":
                continue
            if isinstance(value, (list, tuple)):
                items.extend((key, str(v)) for v in value)
            else:
                items.append((key, str(value)))
        if _keep_groups:
            items.extend(self.group_params)
        full = PREFIX + (path if path != "/" else "/")
        return full + ("?" + urlencode(items) if items else "")

    def here(self, **changes: Any) -> str:
        """This page's URL with some query parameters changed (None removes one)."""
        items = [(k, v) for k, v in self.request.query_params.multi_items() if k not in changes and k != "group"]
        for key, value in changes.items():
            if value is None or value == "":
                continue
            if isinstance(value, (list, tuple)):
                items.extend((key, str(v)) for v in value)
            else:
                items.append((key, str(value)))
        items.extend(self.group_params)
        return self.request.url.path + ("?" + urlencode(items) if items else "")

    def same_query(self, path: str, *drop: str) -> str:
        """``path`` (a console path) with this page's query, minus ``drop`` and the paging."""
        skip = set(drop) | {"page", "size"}
        items = [(k, v) for k, v in self.request.query_params.multi_items() if k not in skip]
        return PREFIX + path + ("?" + urlencode(items) if items else "")

    def without_groups(self) -> str:
        """This page's URL showing every device group (the rest of the query kept)."""
        items = [(k, v) for k, v in self.request.query_params.multi_items() if k not in ("group", "page")]
        return self.request.url.path + ("?" + urlencode(items) if items else "")

    def param(self, name: str, default: str = "") -> str:
        return (self.request.query_params.get(name) or default).strip()[:200]

    def params(self, name: str) -> list[str]:
        return [v.strip()[:200] for v in self.request.query_params.getlist(name) if v.strip()]

    def allows(self, permission: str) -> bool:
        """Whether the signed-in user holds ``permission`` (templates show only what it may do)."""
        return self.principal.allows(permission)

    @property
    def group_label(self) -> str:
        shown = len(self.selected) if self.selected else len(self.groups)
        return f"{shown}/{len(self.groups)}"

    def group_name(self, gid: int | None) -> str:
        for g, name in self.groups:
            if g == gid:
                return name
        return "–"

    def hidden_inputs(self, *skip: str) -> Markup:
        """The current query (minus ``skip`` and the paging) as hidden inputs, for GET filter forms."""
        from markupsafe import escape

        drop = set(skip) | {"page"}
        out = [f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
               for k, v in self.request.query_params.multi_items() if k not in drop]
        return Markup("".join(out))


def make_ctx(request: Request, principal: Principal, s: Session, section: str) -> Ctx:
    from garrison.server.web.session import session_info

    info = session_info(request)
    visible = [(g.id, g.name) for g in administration.device_groups(s, principal)]
    ids = {g for g, _ in visible}
    chosen: list[int] = []
    for raw in request.query_params.getlist("group"):
        try:
            gid = int(raw)
        except ValueError:
            continue
        if gid in ids and gid not in chosen:
            chosen.append(gid)
    return Ctx(request, principal, info, administration.tenant_name(s, principal.tenant_id), visible,
               tuple(sorted(chosen)), section)


FLASH_COOKIE = "garrison_flash"


def take_flash(request: Request) -> tuple[str | None, str]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None, "ok"
    kind, _, text = unquote(raw).partition(":")
    if kind not in ("ok", "error"):
        return None, "ok"
    return text, kind


def render(ctx: Ctx, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    flash, kind = take_flash(ctx.request)
    if flash and "flash" not in values:
        values["flash"], values["flash_kind"] = flash, kind
    html = ENV.get_template(template).render(ctx=ctx, **values)
    resp = html_response(html, ctx.request, status_code)
    if flash:
        resp.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return resp


def html_response(html: str, request: Request | None = None, status_code: int = 200) -> HTMLResponse:
    headers = dict(SECURITY_HEADERS)
    t0 = getattr(request.state, "t0", None) if request is not None else None
    if t0 is not None:
        headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_plain(template: str, request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Pages without a signed-in context (sign-in, errors before sign-in)."""
    return html_response(ENV.get_template(template).render(**values), request, status_code)


# --- lists: sorting and paging ----------------------------------------------------------

PAGE_SIZES = (25, 50, 100)


@dataclass
class Pager:
    page: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_row(self) -> int:
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_row(self) -> int:
        return min(self.offset + self.size, self.total)


def pager(ctx: Ctx, total: int, default_size: int = 25) -> Pager:
    try:
        size = int(ctx.param("size", str(default_size)))
    except ValueError:
        size = default_size
    if size not in PAGE_SIZES:
        size = default_size
    try:
        page = max(1, int(ctx.param("page", "1")))
    except ValueError:
        page = 1
    p = Pager(page, size, total)
    p.page = min(p.page, p.pages)
    return p


@dataclass
class Column:
    key: str
    label: str
    sort: Any = None  # SQL expression; None = not sortable
    numeric: bool = False
    default_desc: bool = False
    narrow: bool = True  # shown on narrow screens


@dataclass
class Sort:
    key: str
    desc: bool

    @property
    def dir(self) -> str:
        return "desc" if self.desc else "asc"


def sort_of(ctx: Ctx, columns: Sequence[Column], default: str, default_desc: bool = False) -> Sort:
    key = ctx.param("sort", default)
    cols = {c.key: c for c in columns if c.sort is not None}
    if key not in cols:
        key = default
    direction = ctx.param("dir")
    desc = (direction == "desc") if direction in ("asc", "desc") else (cols[key].default_desc if key in cols
                                                                       else default_desc)
    return Sort(key, desc)


def order_by(columns: Sequence[Column], sort: Sort, tiebreak: Sequence[Any] = ()) -> list[Any]:
    col = next(c for c in columns if c.key == sort.key)
    expr = col.sort
    first = expr.desc() if sort.desc else expr.asc()
    return [first, *tiebreak]


def choice(ctx: Ctx, name: str, allowed: Mapping[str, Any] | Sequence[str]) -> str:
    value = ctx.param(name)
    return value if value in allowed else ""
