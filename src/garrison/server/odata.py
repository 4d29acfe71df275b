"""OData-style query options for the list APIs, as the Defender for Endpoint API takes them.

    GET /api/machines?$filter=healthStatus eq 'Active' and startswith(computerDnsName,'web')
                     &$top=10&$skip=20&$orderby=lastSeen desc&$select=id,computerDnsName

A route declares which API fields exist (:class:`Field`, mapping a camelCase API name to a
SQLAlchemy column) and calls :func:`parse_query`; the result is applied to a ``select()``
with :func:`apply` and each output row trimmed with :func:`project`.  Every user mistake
raises :class:`ODataError` (a ``ValueError``), which the API turns into HTTP 400.

``$filter`` is parsed by a hand-written tokenizer and recursive-descent parser straight
into SQLAlchemy expressions: user text never reaches SQL except as bound parameters.

Grammar (keywords are case-insensitive, field names are matched exactly)::

    or_expr   := and_expr ('or' and_expr)*
    and_expr  := unary ('and' unary)*
    unary     := 'not' unary | primary
    primary   := '(' or_expr ')'
               | func '(' operand ',' string ')' [bool_cmp]      func: startswith endswith contains
               | field '/' 'any' '(' var ':' lambda ')' [bool_cmp]
               | operand op literal                              op: eq ne gt ge lt le
               | operand 'in' '(' literal (',' literal)* ')'
               | field                                          a bool field on its own
    operand   := field | ('tolower' | 'toupper') '(' operand ')'
    bool_cmp  := ('eq' | 'ne') ('true' | 'false')
    lambda    := an 'or' of var comparisons / functions / 'in' (see _Parser._lambda_or)

``not`` applies to the comparison that follows it (``not a eq 1`` is ``not (a eq 1)``);
for boolean operands that is the same result as OData's stricter precedence, and it
turns an otherwise certain type error into what the user meant.

Null semantics follow OData rather than SQL: every predicate is two-valued, so a NULL
column makes ``eq``/``gt``/``startswith``... false and ``ne`` true, and ``not`` inverts
that exactly (plain SQL would let NULL swallow both ``x`` and ``not x``).

Case sensitivity of ``eq`` and friends is the database's (case-sensitive on SQLite and
PostgreSQL); ``startswith``/``endswith``/``contains`` use LIKE, which SQLite compares
ASCII-case-insensitively and PostgreSQL case-sensitively.  ``tolower(field)`` gives an
explicit case-insensitive match on every backend.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sqlalchemy import Select, and_, exists, false, func, not_, or_

from garrison.protocol.bounds import to_utc

MAX_FILTER_LENGTH = 4096  # also applies to $orderby and $select
MAX_DEPTH = 32  # parentheses, not, any(), tolower() nesting
MAX_TERMS = 200  # comparisons, function calls, any() clauses and in-list items
DEFAULT_MAX_TOP = 10000  # Defender's page size and cap
MAX_SKIP = 2**31 - 1  # larger offsets are never meaningful and overflow some drivers
_INT64 = 2**63 - 1  # SQLite and PostgreSQL bigint; larger Python ints crash the driver

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
STRING_FUNCTIONS = ("startswith", "endswith", "contains")
CASE_FUNCTIONS = ("tolower", "toupper")
SUPPORTED_TYPES = (str, int, float, bool, dt.datetime)
OPTIONS = ("$filter", "$orderby", "$top", "$skip", "$select", "$count")

ElementPredicate = Callable[[str, Any], Any]


class ODataError(ValueError):
    """A bad query option; the message names the option, the token and its 1-based position."""

    def __init__(
        self,
        message: str,
        *,
        option: str | None = None,
        token: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.option = option
        self.token = token
        self.position = position


@dataclass(frozen=True, eq=False)  # eq=False: SQLAlchemy columns overload ==, so compare by identity
class Field:
    """One API field of a list endpoint.

    ``type`` is the type literals are parsed and validated to. For a ``collection`` field
    ``type`` is the element type and ``element_predicate(op, value)`` must return a boolean
    SQL expression meaning "some element satisfies ``element op value``" (typically an
    EXISTS over a side table, see :func:`element_exists`). ``op`` is one of COMPARISONS,
    STRING_FUNCTIONS or ``"in"`` (then ``value`` is a tuple).
    """

    column: Any
    type: type = str
    filterable: bool = True
    sortable: bool = True
    collection: bool = False
    element_predicate: ElementPredicate | None = dc_field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Programming errors in a route's field map: fail loudly at import time, not per request.
        if self.type not in SUPPORTED_TYPES:
            raise TypeError(f"unsupported OData field type {self.type!r}")
        if self.collection and self.filterable and self.element_predicate is None:
            raise TypeError("a filterable collection field needs an element_predicate")


@dataclass
class Query:
    filter: Any | None
    order_by: list[Any]
    top: int
    skip: int
    select: list[str] | None


# ---------------------------------------------------------------------------- SQL building


def compare(column: Any, op: str, value: Any) -> Any:
    """``column op value`` as a two-valued SQL predicate (NULL never leaks into not/or)."""
    if op == "in":
        values = tuple(value)
        non_null = [v for v in values if v is not None]
        parts = [and_(column.is_not(None), column.in_(non_null))] if non_null else []
        if len(non_null) != len(values):
            parts.append(column.is_(None))
        return or_(*parts) if parts else false()
    if value is None:
        if op == "eq":
            return column.is_(None)
        if op == "ne":
            return column.is_not(None)
        raise ValueError(f"null cannot be compared with {op}")
    if op == "ne":
        return or_(column.is_(None), column != value)
    if op in STRING_FUNCTIONS:
        # autoescape: '%' and '_' in user text match literally, not as LIKE wildcards.
        matcher = getattr(column, op)
        return and_(column.is_not(None), matcher(value, autoescape=True))
    sql_op = {"eq": "__eq__", "gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}[op]
    return and_(column.is_not(None), getattr(column, sql_op)(value))


def element_exists(element: Any, *correlate: Any) -> ElementPredicate:
    """An ``element_predicate`` for a collection stored as rows of a side table.

    ``element_exists(DeviceTag.tag, DeviceTag.device_id == Device.id)`` makes
    ``machineTags/any(t: t eq 'prod')`` an ``EXISTS (... tag = 'prod')`` correlated to the device.
    """

    def predicate(op: str, value: Any) -> Any:
        return exists().where(*correlate, compare(element, op, value))

    return predicate


def apply(stmt: Select[Any], q: Query) -> Select[Any]:
    if q.filter is not None:
        stmt = stmt.where(q.filter)
    if q.order_by:
        stmt = stmt.order_by(*q.order_by)
    return stmt.limit(q.top).offset(q.skip)


def project(row: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(row)
    return {name: row[name] for name in select if name in row}


# ---------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # name string int decimal datetime ( ) , : / end
    text: str
    pos: int  # 1-based
    value: Any = None


_PUNCT = "(),:/"
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,  # \d must not match other scripts' digits
)
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", re.ASCII)


def _show(text: str) -> str:
    """A token for an error message: quoted, and short even for a 4 KB string."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _parse_datetime(m: re.Match[str]) -> dt.datetime:
    """ISO 8601 → aware UTC datetime; no offset means UTC, as everywhere in Garrison."""
    year, month, day, hour, minute, second, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tzinfo: dt.tzinfo = dt.UTC
    if tz and tz not in "Zz":
        sign = 1 if tz[0] == "+" else -1
        offset = dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        if offset >= dt.timedelta(hours=24):
            raise ValueError("offset out of range")
        tzinfo = dt.timezone(sign * offset)
    value = dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo
    )
    return to_utc(value)


def _tokenize(text: str, option: str) -> list[_Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise ODataError(
            f"{option} is longer than {MAX_FILTER_LENGTH} characters",
            option=option,
            position=MAX_FILTER_LENGTH + 1,
        )
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in _PUNCT:
            tokens.append(_Token(c, c, i + 1))
            i += 1
        elif c == "'":
            # OData strings: single quotes, a doubled '' is one quote.
            j, chars = i + 1, []
            while True:
                if j >= n:
                    raise ODataError(
                        f"{option}: unterminated string starting at position {i + 1}",
                        option=option,
                        token=text[i:],
                        position=i + 1,
                    )
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        chars.append("'")
                        j += 2
                        continue
                    break
                chars.append(text[j])
                j += 1
            tokens.append(_Token("string", text[i : j + 1], i + 1, "".join(chars)))
            i = j + 1
        elif c.isascii() and (
            c.isdigit() or (c == "-" and i + 1 < n and text[i + 1].isascii() and text[i + 1].isdigit())
        ):
            tokens.append(_number_or_datetime(text, i, option))
            i += len(tokens[-1].text)
        elif _is_name_char(c):
            j = i
            while j < n and _is_name_char(text[j]):
                j += 1
            tokens.append(_Token("name", text[i:j], i + 1))
            i = j
        else:
            raise ODataError(
                f"{option}: unexpected character {_show(c)} at position {i + 1}",
                option=option,
                token=c,
                position=i + 1,
            )
    tokens.append(_Token("end", "", n + 1))
    return tokens


def _number_or_datetime(text: str, i: int, option: str) -> _Token:
    m = _DATETIME.match(text, i)
    kind = "datetime"
    if m is None:
        m = _NUMBER.match(text, i)
        assert m is not None  # the caller saw a digit
        kind = "decimal" if (m.group(1) or m.group(2)) else "int"
    end = m.end()
    if end < len(text) and (_is_name_char(text[end]) or text[end] in ".-:+"):
        # e.g. 12abc, 1.2.3, a malformed datetime: report the whole run, not a confusing tail.
        j = end
        while j < len(text) and (_is_name_char(text[j]) or text[j] in ".-:+"):
            j += 1
        raise ODataError(
            f"{option}: malformed literal {_show(text[i:j])} at position {i + 1}",
            option=option,
            token=text[i:j],
            position=i + 1,
        )
    literal = m.group(0)
    try:
        if kind == "datetime":
            value: Any = _parse_datetime(m)
        elif kind == "int":
            value = int(literal)
        else:
            value = float(literal)
    except (ValueError, OverflowError):  # e.g. month 13, or 0001-01-01T00:00+01:00 before year 1
        raise ODataError(
            f"{option}: invalid {kind} {_show(literal)} at position {i + 1}",
            option=option,
            token=literal,
            position=i + 1,
        ) from None
    return _Token(kind, literal, i + 1, value)


# ---------------------------------------------------------------------------- $filter parser


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, Field]) -> None:
        self.option = "$filter"
        self.tokens = _tokenize(text, self.option)
        self.i = 0
        self.fields = fields
        self.depth = 0
        self.terms = 0

    # -- helpers

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> _Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        tok = self.tok
        if tok.kind != "end":
            self.i += 1
        return tok

    def error(self, message: str, tok: _Token | None = None) -> ODataError:
        tok = tok or self.tok
        shown = "end of input" if tok.kind == "end" else _show(tok.text)
        return ODataError(
            f"{self.option}: {message} at position {tok.pos} (found {shown})",
            option=self.option,
            token=tok.text,
            position=tok.pos,
        )

    def is_kw(self, *words: str, tok: _Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == "name" and tok.text.lower() in words

    def expect(self, kind: str, what: str) -> _Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}")
        return self.advance()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    def leave(self) -> None:
        self.depth -= 1

    def count_term(self, tok: _Token) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(f"more than {MAX_TERMS} terms", tok)

    def lookup(self, tok: _Token) -> Field:
        field = self.fields.get(tok.text)
        if field is None:
            raise self.error(f"unknown field{_suggest(tok.text, self.fields)}", tok)
        if not field.filterable:
            raise self.error(f"field {tok.text!r} cannot be filtered on", tok)
        return field

    # -- grammar

    def parse(self) -> Any:
        if self.tok.kind == "end":
            raise self.error("empty filter")
        expr = self.or_expr()
        if self.tok.kind != "end":
            raise self.error("expected 'and', 'or' or the end of the filter")
        return expr

    def or_expr(self) -> Any:
        parts = [self.and_expr()]
        while self.is_kw("or"):
            self.advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def and_expr(self) -> Any:
        parts = [self.unary()]
        while self.is_kw("and"):
            self.advance()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def unary(self) -> Any:
        if self.is_kw("not"):
            self.advance()
            self.enter()
            expr = not_(self.unary())
            self.leave()
            return expr
        return self.primary()

    def primary(self) -> Any:
        tok = self.tok
        if tok.kind == "(":
            self.advance()
            self.enter()
            expr = self.or_expr()
            self.expect(")", "')'")
            self.leave()
            return expr
        if tok.kind != "name" or self.is_kw("and", "or"):
            raise self.error("expected a field name, a function or '('")
        if self.peek().kind == "(" and tok.text.lower() in STRING_FUNCTIONS:
            return self.bool_cmp(self.string_function())
        if self.peek().kind == "/":
            return self.bool_cmp(self.any_clause())
        return self.comparison()

    def bool_cmp(self, expr: Any) -> Any:
        """OData lets a boolean function be compared with true/false: ``contains(a,'x') eq false``."""
        if self.is_kw("eq", "ne") and self.is_kw("true", "false", tok=self.peek()):
            negate = (self.advance().text.lower() == "ne") != (self.advance().text.lower() == "false")
            return not_(expr) if negate else expr
        return expr

    def operand(self) -> tuple[Any, Field, _Token, bool]:
        """A field, possibly wrapped in tolower()/toupper(); returns (sql, field, name token, wrapped)."""
        tok = self.tok
        if tok.kind != "name":
            raise self.error("expected a field name")
        if self.peek().kind == "(":
            name = tok.text.lower()
            if name not in CASE_FUNCTIONS:
                raise self.error("unknown function", tok)
            self.advance()
            self.advance()
            self.enter()
            column, field, name_tok, _ = self.operand()
            if field.type is not str:
                raise self.error(f"{name}() needs a string field", name_tok)
            self.expect(")", "')'")
            self.leave()
            return (func.lower if name == "tolower" else func.upper)(column), field, name_tok, True
        self.advance()
        field = self.lookup(tok)
        if field.collection:
            raise self.error(f"{tok.text!r} is a collection; use {tok.text}/any(x: x eq ...)", tok)
        return field.column, field, tok, False

    def comparison(self) -> Any:
        column, field, name_tok, wrapped = self.operand()
        self.count_term(name_tok)
        op_tok = self.tok
        op = op_tok.text.lower() if op_tok.kind == "name" else ""
        if op == "in":
            self.advance()
            return compare(column, "in", self.literal_list(field, name_tok))
        if op in COMPARISONS:
            self.advance()
            return compare(column, op, self.literal(field, op, name_tok))
        if field.type is bool and not wrapped:
            return compare(column, "eq", True)  # a bare boolean field, e.g. `not isAadJoined`
        raise self.error(
            f"expected a comparison operator ({', '.join(COMPARISONS)} or in) after {name_tok.text!r}"
        )

    def literal_list(self, field: Field, name_tok: _Token) -> tuple[Any, ...]:
        self.expect("(", "'(' after in")
        values = []
        while True:
            self.count_term(self.tok)
            values.append(self.literal(field, "in", name_tok))
            if self.tok.kind == ")":
                self.advance()
                return tuple(values)
            self.expect(",", "',' or ')' in the in-list")

    def literal(self, field: Field, op: str, name_tok: _Token) -> Any:
        """The next token as a value of the field's type; anything else names the mismatch."""
        tok = self.tok
        kind = tok.kind
        word = tok.text.lower() if kind == "name" else ""
        value: Any = _MISMATCH
        if word == "null":
            if op not in ("eq", "ne", "in"):
                raise self.error(f"null can only be compared with eq, ne or in, not {op}")
            value = None
        elif field.type is str and kind == "string":
            value = tok.value
        elif field.type is bool and word in ("true", "false"):
            if op not in ("eq", "ne", "in"):  # booleans have no order (and SQLAlchemy refuses it)
                raise self.error(f"a boolean can only be compared with eq, ne or in, not {op}")
            value = word == "true"
        elif field.type is int and kind == "int":
            value = tok.value
            if abs(value) > _INT64:
                raise self.error("integer out of range")
        elif field.type is float and kind in ("int", "decimal"):
            value = float(tok.value)
            if not math.isfinite(value):
                raise self.error("number out of range")
        elif field.type is dt.datetime and kind == "datetime":
            value = tok.value
        elif field.type is dt.datetime and kind == "string":
            # Accept the quoted form too: many clients quote every literal.
            m = _DATETIME.fullmatch(tok.value.strip())
            try:
                value = _parse_datetime(m) if m else _MISMATCH
            except (ValueError, OverflowError):
                value = _MISMATCH
        if value is _MISMATCH:
            raise self.error(f"expected {_TYPE_NAMES[field.type]} literal for {name_tok.text!r}")
        self.advance()
        return value

    def string_function(self) -> Any:
        fn_tok = self.advance()
        fn = fn_tok.text.lower()
        self.advance()  # (
        self.enter()
        self.count_term(fn_tok)
        column, field, name_tok, _ = self.operand()
        if field.type is not str:
            raise self.error(f"{fn}() needs a string field", name_tok)
        self.expect(",", f"',' after the field in {fn}()")
        value = self.string_arg(fn)
        self.expect(")", f"')' to close {fn}()")
        self.leave()
        return compare(column, fn, value)

    def string_arg(self, fn: str) -> str:
        if self.tok.kind != "string":
            raise self.error(f"{fn}() needs a quoted string as its second argument")
        value: str = self.advance().value
        return value

    # -- collections: field/any(t: <lambda>)

    def any_clause(self) -> Any:
        name_tok = self.advance()
        field = self.fields.get(name_tok.text)
        if field is None:
            raise self.error(f"unknown field{_suggest(name_tok.text, self.fields)}", name_tok)
        if not field.collection:
            raise self.error(
                f"{name_tok.text!r} is not a collection; '/' only works as {name_tok.text}/any(...)", name_tok
            )
        field = self.lookup(name_tok)
        self.advance()  # /
        if not self.is_kw("any"):
            raise self.error("only any() is supported on a collection")
        self.advance()
        self.expect("(", "'(' after any")
        self.enter()
        if self.tok.kind == ")":
            raise self.error("any() needs a condition, e.g. any(t: t eq 'value')")
        var = self.expect("name", "a lambda variable, e.g. any(t: t eq 'value')")
        self.expect(":", "':' after the lambda variable")
        assert field.element_predicate is not None  # Field.__post_init__ guarantees it
        expr = self.lambda_or(var.text, field, name_tok)
        self.expect(")", "')' to close any()")
        self.leave()
        return expr

    def lambda_or(self, var: str, field: Field, name_tok: _Token) -> Any:
        # Each element test becomes its own EXISTS, so only `or` distributes correctly:
        # any(t: a or b) == any(a) or any(b), but any(t: a and b) != any(a) and any(b).
        parts = [self.lambda_atom(var, field, name_tok)]
        while self.is_kw("or"):
            self.advance()
            parts.append(self.lambda_atom(var, field, name_tok))
        if self.is_kw("and"):
            raise self.error(
                "'and' is not supported inside any(); to require several elements combine "
                "separate any() clauses with and"
            )
        return parts[0] if len(parts) == 1 else or_(*parts)

    def lambda_atom(self, var: str, field: Field, name_tok: _Token) -> Any:
        predicate = field.element_predicate
        assert predicate is not None
        tok = self.tok
        if tok.kind == "(":
            self.advance()
            self.enter()
            expr = self.lambda_or(var, field, name_tok)
            self.expect(")", "')'")
            self.leave()
            return expr
        if self.is_kw("not"):
            raise self.error("'not' is not supported inside any(); put it before the any() clause")
        if tok.kind == "name" and tok.text.lower() in STRING_FUNCTIONS and self.peek().kind == "(":
            fn = self.advance().text.lower()
            self.advance()
            self.count_term(tok)
            if field.type is not str:
                raise self.error(f"{fn}() needs a string collection", name_tok)
            self.lambda_var(var)
            self.expect(",", f"',' after {var} in {fn}()")
            value = self.string_arg(fn)
            self.expect(")", f"')' to close {fn}()")
            return predicate(fn, value)
        self.lambda_var(var)
        self.count_term(tok)
        op_tok = self.tok
        op = op_tok.text.lower() if op_tok.kind == "name" else ""
        if op not in COMPARISONS and op != "in":
            raise self.error(f"expected a comparison operator after {var!r}")
        self.advance()
        if self.is_kw("null"):
            raise self.error("null is not allowed inside any()")
        if op == "in":
            values = self.literal_list(field, name_tok)
            if None in values:
                raise self.error("null is not allowed inside any()", op_tok)
            return predicate("in", values)
        return predicate(op, self.literal(field, op, name_tok))

    def lambda_var(self, var: str) -> None:
        tok = self.tok
        if tok.kind != "name" or tok.text != var:
            raise self.error(f"expected the lambda variable {var!r}; inside any() only it can be tested")
        self.advance()


_MISMATCH = object()
_TYPE_NAMES = {
    str: "a quoted string",
    int: "an integer",
    float: "a number",
    bool: "a true/false",
    dt.datetime: "an ISO 8601 datetime",
}


def _suggest(name: str, fields: Mapping[str, Any]) -> str:
    """' (did you mean ...)' for typos and the common camelCase slip."""
    by_case = [f for f in fields if f.lower() == name.lower()]
    close = by_case or difflib.get_close_matches(name, list(fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------- other options


def _parse_count(option: str, text: str, maximum: int) -> int:
    # Not int(): it would accept ' 7', '+7', '1_000' and non-ASCII digits.
    if not (text.isascii() and text.isdigit()):
        raise ODataError(
            f"{option} must be a non-negative integer, got {_show(text)}",
            option=option,
            token=text,
            position=1,
        )
    value = int(text)
    if value > maximum:
        raise ODataError(
            f"{option} must be at most {maximum}, got {value}", option=option, token=text, position=1
        )
    return value


def _parse_orderby(text: str, fields: Mapping[str, Field]) -> list[Any]:
    option = "$orderby"
    tokens = _tokenize(text, option)
    order: list[Any] = []
    i = 0

    def fail(message: str, tok: _Token) -> ODataError:
        shown = "end of input" if tok.kind == "end" else _show(tok.text)
        return ODataError(
            f"{option}: {message} at position {tok.pos} (found {shown})",
            option=option,
            token=tok.text,
            position=tok.pos,
        )

    while True:
        tok = tokens[i]
        if tok.kind != "name":
            raise fail("expected a field name", tok)
        field = fields.get(tok.text)
        if field is None:
            raise fail(f"unknown field{_suggest(tok.text, fields)}", tok)
        if not field.sortable or field.collection:
            raise fail(f"field {tok.text!r} cannot be sorted on", tok)
        i += 1
        direction = tokens[i]
        if direction.kind == "name" and direction.text.lower() in ("asc", "desc"):
            order.append(field.column.desc() if direction.text.lower() == "desc" else field.column.asc())
            i += 1
        else:
            order.append(field.column.asc())
        if tokens[i].kind == "end":
            return order
        if tokens[i].kind != ",":
            raise fail("expected asc, desc, ',' or the end", tokens[i])
        i += 1


def _parse_select(text: str, fields: Mapping[str, Field]) -> list[str] | None:
    option = "$select"
    if text.strip() == "*":
        return None
    tokens = _tokenize(text, option)
    names: list[str] = []
    for i, tok in enumerate(tokens[:-1]):
        expected = "name" if i % 2 == 0 else ","
        if tok.kind != expected:
            what = "a field name" if expected == "name" else "','"
            raise ODataError(
                f"{option}: expected {what} at position {tok.pos} (found {_show(tok.text)})",
                option=option,
                token=tok.text,
                position=tok.pos,
            )
        if expected == "name":
            if tok.text not in fields:
                raise ODataError(
                    f"{option}: unknown field{_suggest(tok.text, fields)} at position {tok.pos} (found {_show(tok.text)})",
                    option=option,
                    token=tok.text,
                    position=tok.pos,
                )
            if tok.text not in names:
                names.append(tok.text)
    if not names or tokens[-2].kind == ",":
        end = tokens[-1]
        raise ODataError(
            f"{option}: expected a field name at position {end.pos} (found end of input)",
            option=option,
            position=end.pos,
        )
    return names


def _top_skip(options: Mapping[str, str], max_top: int, default_top: int) -> tuple[int, int]:
    top = _parse_count("$top", options["$top"], max_top) if "$top" in options else default_top
    skip = _parse_count("$skip", options["$skip"], MAX_SKIP) if "$skip" in options else 0
    return top, skip


def parse_paging(params: Mapping[str, str], *, max_top: int, default_top: int) -> tuple[int, int]:
    """(``$top``, ``$skip``) of a route that takes no other OData option, checked as :func:`parse_query`
    checks them."""
    return _top_skip({k.lower(): v for k, v in params.items() if k.lower() in ("$top", "$skip")}, max_top,
                     default_top)


def openapi_extra(*, max_top: int = DEFAULT_MAX_TOP, options: tuple[str, ...] = OPTIONS) -> dict[str, Any]:
    """The OData options as OpenAPI query parameters, for a route's ``openapi_extra``: the API document
    states what :func:`parse_query` (which reads them from the request) takes."""
    text = {"type": "string", "maxLength": MAX_FILTER_LENGTH}
    schemas: dict[str, dict[str, Any]] = {
        "$filter": text, "$orderby": text, "$select": text,
        "$top": {"type": "integer", "minimum": 0, "maximum": max_top},
        "$skip": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP},
        "$count": {"type": "boolean"},
    }
    return {"parameters": [{"name": name, "in": "query", "required": False, "schema": schemas[name]}
                           for name in options]}


def parse_query(
    params: Mapping[str, str],
    fields: Mapping[str, Field],
    *,
    default_order: list[Any] | None = None,
    max_top: int = DEFAULT_MAX_TOP,
) -> Query:
    """Parse the OData options in ``params`` (other, non-``$`` parameters are ignored).

    ``default_order`` sorts when there is no ``$orderby`` and breaks ties after one, so
    ``$top``/``$skip`` paging is stable; pass a unique key (e.g. the id) last.
    """
    options: dict[str, str] = {}
    for key, value in params.items():
        if not key.startswith("$"):
            continue  # route-specific parameters are the route's business
        name = key.lower()  # OData 4.01: system query option names are case-insensitive
        if name not in OPTIONS:
            raise ODataError(
                f"unsupported query option {_show(key)}; supported: {', '.join(OPTIONS)}",
                option=key,
                token=key,
            )
        if name in options:
            raise ODataError(f"query option {name} given more than once", option=key, token=key)
        options[name] = value

    filter_expr = None
    if "$filter" in options:
        filter_expr = _Parser(options["$filter"], fields).parse()
    order = _parse_orderby(options["$orderby"], fields) if "$orderby" in options else []
    order += list(default_order or [])
    top, skip = _top_skip(options, max_top, min(DEFAULT_MAX_TOP, max_top))
    select = _parse_select(options["$select"], fields) if "$select" in options else None
    return Query(filter=filter_expr, order_by=order, top=top, skip=skip, select=select)


__all__ = [
    "Field",
    "ODataError",
    "Query",
    "apply",
    "compare",
    "element_exists",
    "openapi_extra",
    "parse_paging",
    "parse_query",
    "project",
]
