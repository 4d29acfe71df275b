"""KQL's syntax: a tokenizer and a recursive-descent parser into a small typed tree.

The parser knows the whole shape of a query (statements, tabular operators, scalar expressions with
Kusto's precedence) so that what it does not translate fails by name and position
(:class:`KqlError`), never by a confused parse. docs/hunting.md says why this parser is hand-written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_QUERY_CHARS = 100_000
MAX_DEPTH = 200


class KqlError(ValueError):
    """A query Garrison cannot run: says what and where (1-based line and column)."""

    def __init__(self, message: str, pos: int = -1, text: str = "") -> None:
        self.pos = pos
        where = ""
        if pos >= 0 and text:
            line = text.count("\n", 0, pos) + 1
            col = pos - (text.rfind("\n", 0, pos) + 1) + 1
            where = f" (line {line}, column {col})"
        super().__init__(message + where)
        self.message = message


# --- tokens ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tok:
    kind: str  # ident | string | number | timespan | op | eof
    value: Any
    pos: int


_TIMESPAN_UNITS = {
    "d": 86_400_000_000, "day": 86_400_000_000, "days": 86_400_000_000,
    "h": 3_600_000_000, "hr": 3_600_000_000, "hrs": 3_600_000_000, "hour": 3_600_000_000, "hours": 3_600_000_000,
    "m": 60_000_000, "min": 60_000_000, "minute": 60_000_000, "minutes": 60_000_000,
    "s": 1_000_000, "sec": 1_000_000, "second": 1_000_000, "seconds": 1_000_000,
    "ms": 1_000, "milli": 1_000, "millis": 1_000, "millisecond": 1_000, "milliseconds": 1_000,
    "microsecond": 1, "microseconds": 1, "tick": 0.1, "ticks": 0.1,
}
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_UNIT = re.compile(r"(" + "|".join(sorted(_TIMESPAN_UNITS, key=len, reverse=True)) + r")(?![A-Za-z0-9_])")
_RAW_DATETIME = re.compile(r"\(\s*(\d{4}-\d\d-\d\d[0-9T:.Z +\-]*)\)")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_]*")
_OPS = ("!between", "!contains", "!startswith", "!endswith", "!has", "!in~", "!in", "..", "==", "!=", "<>", "<=",
        ">=", "=~", "!~", "=>", "|", "(", ")", "[", "]", "{", "}", ",", ";", ":", ".", "=", "<", ">", "+", "-", "*",
        "/", "%", "!", "?")


def tokenize(text: str) -> list[Tok]:
    if len(text) > MAX_QUERY_CHARS:
        raise KqlError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    out: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace() or c in "\u200b\ufeff":
            i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in "\"'" or (c in "@hH" and i + 1 < n and text[i + 1] in "\"'") or (
                c in "hH" and text.startswith("@", i + 1) and i + 2 < n and text[i + 2] in "\"'"):
            start = i
            verbatim = False
            while text[i] in "hH@":
                verbatim = verbatim or text[i] == "@"
                i += 1
            text_value, i = _string(text, i, verbatim)
            out.append(Tok("string", text_value, start))
            continue
        if text.startswith("```", i):
            j = text.find("```", i + 3)
            if j < 0:
                raise KqlError("unterminated ``` string", i, text)
            out.append(Tok("string", text[i + 3:j], i))
            i = j + 3
            continue
        m = _NUMBER.match(text, i)
        if m and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit())):
            raw = m.group(0)
            j = m.end()
            u = _UNIT.match(text, j)
            if u and not raw.startswith("0x"):
                micros = float(raw) * _TIMESPAN_UNITS[u.group(1)]
                out.append(Tok("timespan", round(micros), i))
                i = u.end()
                continue
            if j < n and (text[j].isalpha() or text[j] == "_"):
                raise KqlError(f"bad number {text[i:j + 1]!r}", i, text)
            value: int | float = int(raw, 16) if raw.startswith("0x") else (
                float(raw) if any(ch in raw for ch in ".eE") else int(raw))
            out.append(Tok("number", value, i))
            i = j
            continue
        m = _IDENT.match(text, i)
        if m:
            word = m.group(0)
            i = m.end()
            if word == "in" and text.startswith("~", i):  # in~
                word, i = "in~", i + 1
            out.append(Tok("ident", word, m.start()))
            date = _RAW_DATETIME.match(text, i) if word == "datetime" else None
            if date:  # datetime(2021-01-01T10:00:00Z): an unquoted date is one token
                out.extend([Tok("op", "(", i), Tok("string", date.group(1).strip(), date.start(1)),
                            Tok("op", ")", date.end() - 1)])
                i = date.end()
            continue
        for op in _OPS:
            if text.startswith(op, i):
                # "!in"/"!has" must not eat the start of an identifier ("!inner" is not a thing, "!hasx" neither)
                if (op[0] == "!" and op[-1].isalpha() and i + len(op) < n
                        and (text[i + len(op)].isalnum() or text[i + len(op)] == "_")
                        and not any(text.startswith(op + s, i) for s in ("_cs", "prefix", "suffix"))):
                    continue
                out.append(Tok("op", op, i))
                i += len(op)
                break
        else:
            raise KqlError(f"unexpected character {c!r}", i, text)
    # "!has_cs", "!contains_cs", "!startswith_cs" … : join "!has" + "_cs"
    merged: list[Tok] = []
    for t in out:
        if (merged and t.kind == "ident" and t.value.startswith("_") and merged[-1].kind == "op"
                and merged[-1].value.startswith("!") and merged[-1].pos + len(merged[-1].value) == t.pos):
            merged[-1] = Tok("op", merged[-1].value + t.value, merged[-1].pos)
            continue
        merged.append(t)
    merged.append(Tok("eof", None, n))
    return merged


def _string(text: str, i: int, verbatim: bool) -> tuple[str, int]:
    quote = text[i]
    i += 1
    buf: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == quote:
            if verbatim and i + 1 < n and text[i + 1] == quote:
                buf.append(quote)
                i += 2
                continue
            return "".join(buf), i + 1
        if c == "\\" and not verbatim and i + 1 < n:
            nxt = text[i + 1]
            buf.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(nxt, nxt))
            i += 2
            continue
        if c == "\n" and not verbatim:
            break
        buf.append(c)
        i += 1
    raise KqlError("unterminated string", i, text)


# --- the tree -----------------------------------------------------------------------------------------

@dataclass
class Node:
    pos: int


@dataclass
class Lit(Node):
    value: Any
    type: str  # string | long | real | bool | datetime | timespan | dynamic | null


@dataclass
class Name(Node):
    name: str


@dataclass
class Call(Node):
    name: str
    args: list[Node]


@dataclass
class Member(Node):
    base: Node
    key: Node  # a Lit string (d.a, d["a"]) or an index expression (d[0])


@dataclass
class Unary(Node):
    op: str
    arg: Node


@dataclass
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass
class InList(Node):
    op: str  # in | !in | in~ | !in~ | has_any | has_all
    arg: Node
    items: list[Node]  # scalars, or one Tabular


@dataclass
class Between(Node):
    negated: bool
    arg: Node
    low: Node
    high: Node


@dataclass
class Star(Node):
    pass


@dataclass
class Assign(Node):
    name: str | None
    expr: Node
    names: list[str] = field(default_factory=list)  # (a, b) = f(…): the columns f's results are named


@dataclass
class Sort(Node):
    expr: Node
    desc: bool
    nulls_first: bool | None


@dataclass
class Op(Node):
    """A tabular operator: ``name`` and its parsed parts (shape per operator, see Parser.op_*)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tabular(Node):
    source: Node  # Name (table/let), Datatable, Union, Tabular, Call (a function returning a table)
    ops: list[Op]


@dataclass
class Datatable(Node):
    columns: list[tuple[str, str]]
    values: list[Node]


@dataclass
class Lambda(Node):
    params: list[tuple[str, str | None, Node | None]]  # name, type ("" for a tabular parameter), default
    body: Query


@dataclass
class Let(Node):
    name: str
    value: Node  # scalar expression, Tabular, or Lambda


@dataclass
class Query(Node):
    lets: list[Let]
    body: Node | None  # a Tabular (or a scalar in a function body)


# --- the parser -----------------------------------------------------------------------------------------

STRING_OPS = {"has", "!has", "has_cs", "!has_cs", "hasprefix", "!hasprefix", "hasprefix_cs", "!hasprefix_cs",
              "hassuffix", "!hassuffix", "hassuffix_cs", "!hassuffix_cs", "contains", "!contains", "contains_cs",
              "!contains_cs", "startswith", "!startswith", "startswith_cs", "!startswith_cs", "endswith",
              "!endswith", "endswith_cs", "!endswith_cs", "matches"}
LIST_OPS = {"in", "!in", "in~", "!in~", "has_any", "has_all"}
COMPARE_OPS = {"==", "!=", "<>", "<", ">", "<=", ">=", "=~", "!~"}
TABULAR_STARTS = {"datatable", "union", "materialize", "externaldata", "external_data", "range", "print", "view",
                  "find", "search", "evaluate"}


class Parser:
    def __init__(self, text: str, tables: frozenset[str]) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.tables = tables
        self.tabular_names: set[str] = set(tables)
        self.depth = 0

    # helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def error(self, message: str, pos: int | None = None) -> KqlError:
        return KqlError(message, self.tok.pos if pos is None else pos, self.text)

    def at(self, value: str) -> bool:
        t = self.tok
        return (t.kind == "op" and t.value == value) or (t.kind == "ident" and t.value == value)

    def accept(self, value: str) -> bool:
        if self.at(value):
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> Tok:
        if not self.at(value):
            got = self.tok.value if self.tok.kind != "eof" else "the end of the query"
            raise self.error(f"expected {value!r}, found {got!r}")
        t = self.tok
        self.i += 1
        return t

    def ident(self) -> str:
        t = self.tok
        if t.kind == "ident":
            self.i += 1
            return str(t.value)
        if t.kind == "op" and t.value == "[":  # ['Column name']
            self.i += 1
            s = self.tok
            if s.kind != "string":
                raise self.error("expected a quoted name")
            self.i += 1
            self.expect("]")
            return str(s.value)
        raise self.error(f"expected a name, found {t.value if t.kind != 'eof' else 'the end of the query'!r}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("the query nests too deeply")

    # statements
    def query(self, end: str = "eof") -> Query:
        lets: list[Let] = []
        body: Node | None = None
        start = self.tok.pos
        while not (self.tok.kind == end or self.at(end)):
            if self.accept(";"):
                continue
            if self.at("let"):
                lets.append(self.let())
                continue
            if self.at("set") or self.at("declare") or self.at("alias") or self.at("pattern"):
                raise self.error(f"the {self.tok.value!r} statement is not supported")
            if body is not None:
                raise self.error("one query statement per query (found another one)")
            body = self.tabular_or_scalar()
        return Query(start, lets, body)

    def let(self) -> Let:
        pos = self.expect("let").pos
        name = self.ident()
        self.expect("=")
        if self.at("(") and self._looks_like_lambda():
            value: Node = self.lambda_()
        elif self.at("view"):
            self.i += 1
            value = self.lambda_()
        else:
            value = self.tabular_or_scalar()
        if isinstance(value, Tabular) or (isinstance(value, Lambda) and isinstance(value.body.body, Tabular)):
            self.tabular_names.add(name)
        return Let(pos, name, value)

    def _looks_like_lambda(self) -> bool:
        depth, j = 0, self.i
        while j < len(self.toks):
            t = self.toks[j]
            if t.kind == "op" and t.value in "([{":
                depth += 1
            elif t.kind == "op" and t.value in ")]}":
                depth -= 1
                if depth == 0:
                    nxt = self.toks[j + 1]
                    return nxt.kind == "op" and nxt.value == "{"
            elif t.kind == "eof":
                return False
            j += 1
        return False

    def lambda_(self) -> Lambda:
        pos = self.expect("(").pos
        params: list[tuple[str, str | None, Node | None]] = []
        while not self.at(")"):
            name = self.ident()
            typ: str | None = None
            default: Node | None = None
            if self.accept(":"):
                if self.accept("("):  # a tabular parameter: (T:(col:type, …)) or (*)
                    while not self.accept(")"):
                        self.i += 1
                    typ = ""
                else:
                    typ = self.ident()
            if self.accept("="):
                default = self.expr()
            params.append((name, typ, default))
            if not self.accept(","):
                break
        self.expect(")")
        self.expect("{")
        saved = set(self.tabular_names)
        self.tabular_names |= {p[0] for p in params if p[1] == ""}
        body = self.query(end="}")
        self.tabular_names = saved
        self.expect("}")
        return Lambda(pos, params, body)

    def tabular_or_scalar(self) -> Node:
        if self._starts_tabular():
            return self.tabular()
        start = self.i
        value = self.expr()
        if self.at("|"):  # a scalar-looking start that is a table after all, e.g. a function call
            self.i = start
            return self.tabular()
        return value

    def _starts_tabular(self) -> bool:
        t = self.tok
        if t.kind == "ident":
            nxt = self.peek()
            if t.value in self.tabular_names and not (nxt.kind == "op" and nxt.value == "("):
                return True
            if t.value in self.tabular_names and nxt.kind == "op" and nxt.value == "(":
                return True  # a tabular function called
            return t.value in TABULAR_STARTS
        if t.kind == "op" and t.value == "(":
            j = self.i
            while self.toks[j].kind == "op" and self.toks[j].value == "(":
                j += 1
            u = self.toks[j]
            return u.kind == "ident" and (u.value in self.tabular_names or u.value in TABULAR_STARTS)
        return False

    # tabular expressions
    def tabular(self) -> Tabular:
        self.nested()
        pos = self.tok.pos
        source = self.source()
        ops: list[Op] = []
        while self.accept("|"):
            ops.append(self.operator())
        self.depth -= 1
        if isinstance(source, Tabular) and not ops:
            return source
        return Tabular(pos, source, ops)

    def source(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.value == "(":
            self.i += 1
            inner = self.tabular()
            self.expect(")")
            return inner
        if t.kind != "ident":
            raise self.error(f"expected a table, found {t.value!r}")
        name = t.value
        if name == "datatable":
            return self.datatable()
        if name == "union":
            self.i += 1
            return Op(t.pos, "union", self.union_args())
        if name == "materialize":
            self.i += 1
            self.expect("(")
            inner = self.tabular()
            self.expect(")")
            return inner
        if name == "print":
            self.i += 1
            return Op(t.pos, "print", {"items": self.assignments()})
        if name == "search":
            self.i += 1
            return Op(t.pos, "search", _search(self))
        if name in TABULAR_STARTS:
            raise self.error(f"the {name!r} operator is not supported")
        self.i += 1
        if self.at("("):
            self.i += 1
            args = self.args(")")
            return Call(t.pos, name, args)
        return Name(t.pos, name)

    def datatable(self) -> Datatable:
        pos = self.expect("datatable").pos
        self.expect("(")
        cols: list[tuple[str, str]] = []
        while not self.at(")"):
            name = self.ident()
            self.expect(":")
            cols.append((name, self.ident()))
            if not self.accept(","):
                break
        self.expect(")")
        self.expect("[")
        values = self.args("]")
        if cols and len(values) % len(cols):
            raise self.error(f"datatable: {len(values)} values for {len(cols)} columns", pos)
        return Datatable(pos, cols, values)

    def args(self, close: str) -> list[Node]:
        out: list[Node] = []
        while not self.at(close):
            out.append(self.arg())
            if not self.accept(","):
                break
        self.expect(close)
        return out

    def arg(self) -> Node:
        if self._starts_tabular():
            return self.tabular()
        if self.at("*"):
            t = self.tok
            self.i += 1
            return Star(t.pos)
        return self.expr()

    def union_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"kind": "outer", "withsource": None, "tables": []}
        while self.tok.kind == "ident" and self.peek().kind == "op" and self.peek().value == "=":
            key = self.ident()
            self.expect("=")
            val = self.ident() if key != "isfuzzy" else str(self.tok.value)
            if key == "isfuzzy":
                self.i += 1
            args["kind" if key == "kind" else key] = val
        while True:
            if self.at("("):
                args["tables"].append(self.source())
            else:
                t = self.tok
                name = self.ident()
                while self.tok.kind == "op" and self.tok.value == "*":  # wildcards: Device*Events
                    self.i += 1
                    name += "*"
                    if self.tok.kind == "ident" and self.tok.pos == t.pos + len(name):
                        name += self.ident()
                if self.at("("):
                    self.i += 1
                    args["tables"].append(Call(t.pos, name, self.args(")")))
                else:
                    args["tables"].append(Name(t.pos, name))
            if not self.accept(","):
                break
        return args

    def op_name(self) -> tuple[str, int]:
        t = self.tok
        if t.kind != "ident":
            raise self.error(f"expected an operator after '|', found {t.value!r}")
        name = t.value
        self.i += 1
        while self.at("-") and self.peek().kind == "ident" and self.tok.pos == t.pos + len(name):
            self.i += 1
            name += "-" + self.ident()
        return name, t.pos

    def operator(self) -> Op:
        name, pos = self.op_name()
        handler = _OPERATORS.get(name)
        if handler is None:
            raise self.error(f"the {name!r} operator is not supported", pos)
        return Op(pos, _ALIASES.get(name, name), handler(self))

    def hints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        while self.tok.kind == "ident" and (self.tok.value in ("kind", "withsource", "isfuzzy", "bagexpansion",
                                                               "with_itemindex", "flags")
                                            or self.tok.value.startswith("hint")):
            key = self.tok.value
            self.i += 1
            while self.accept("."):
                key += "." + self.ident()
            self.expect("=")
            t = self.tok
            self.i += 1
            out[key] = str(t.value)
        return out

    def assignments(self) -> list[Assign]:
        out = []
        while True:
            pos = self.tok.pos
            name = None
            if self.at("(") and self._names_assign_ahead():  # (a, b) = f(…)
                self.i += 1
                names = [self.ident()]
                while self.accept(","):
                    names.append(self.ident())
                self.expect(")")
                self.expect("=")
                out.append(Assign(pos, None, self.arg(), names))
                if not self.accept(","):
                    return out
                continue
            if (self.tok.kind == "ident" or self.at("[")) and self._assign_ahead():
                name = self.ident()
                self.expect("=")
            out.append(Assign(pos, name, self.arg()))
            if not self.accept(","):
                return out

    def _names_assign_ahead(self) -> bool:
        j = self.i + 1
        while self.toks[j].kind == "ident" or (self.toks[j].kind == "op" and self.toks[j].value == ","):
            j += 1
        return (self.toks[j].kind == "op" and self.toks[j].value == ")" and self.toks[j + 1].kind == "op"
                and self.toks[j + 1].value == "=")

    def _assign_ahead(self) -> bool:
        if self.at("["):
            return self.peek(3).kind == "op" and self.peek(3).value == "="
        nxt = self.peek()
        return nxt.kind == "op" and nxt.value == "="

    def names(self) -> list[str]:
        out = []
        while True:
            t = self.tok
            name = self.ident() if not self.at("*") else ""
            while self.at("*") and self.tok.pos == t.pos + len(name):
                self.i += 1
                name += "*"
                if self.tok.kind == "ident" and self.tok.pos == t.pos + len(name):
                    name += self.ident()
            out.append(name)
            if not self.accept(","):
                return out

    def sorts(self) -> list[Sort]:
        out = []
        while True:
            pos = self.tok.pos
            e = self.expr()
            desc = True  # Kusto sorts descending unless told
            if self.accept("asc"):
                desc = False
            elif self.accept("desc"):
                desc = True
            nulls: bool | None = None
            if self.accept("nulls"):
                nulls = self.accept("first") or not self.expect("last")
            out.append(Sort(pos, e, desc, nulls))
            if not self.accept(","):
                return out

    def number(self) -> Node:
        return self.expr()

    # scalar expressions (Kusto's precedence, lowest first)
    def expr(self) -> Node:
        self.nested()
        e = self.or_()
        self.depth -= 1
        return e

    def or_(self) -> Node:
        e = self.and_()
        while self.at("or"):
            pos = self.tok.pos
            self.i += 1
            e = Binary(pos, "or", e, self.and_())
        return e

    def and_(self) -> Node:
        e = self.compare()
        while self.at("and"):
            pos = self.tok.pos
            self.i += 1
            e = Binary(pos, "and", e, self.compare())
        return e

    def compare(self) -> Node:
        e = self.additive()
        t = self.tok
        op = t.value if t.kind in ("op", "ident") else None
        if op in COMPARE_OPS:
            self.i += 1
            return Binary(t.pos, "!=" if op == "<>" else op, e, self.additive())
        if op == "matches":
            self.i += 1
            self.expect("regex")
            return Binary(t.pos, "matches regex", e, self.additive())
        if op in STRING_OPS:
            self.i += 1
            return Binary(t.pos, op, e, self.additive())
        if op in LIST_OPS:
            self.i += 1
            self.expect("(")
            items = self.args(")")
            return InList(t.pos, op, e, items)
        if op in ("between", "!between"):
            self.i += 1
            self.expect("(")
            low = self.additive()
            self.expect("..")
            high = self.additive()
            self.expect(")")
            return Between(t.pos, op == "!between", e, low, high)
        return e

    def additive(self) -> Node:
        e = self.multiplicative()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            t = self.tok
            self.i += 1
            e = Binary(t.pos, t.value, e, self.multiplicative())
        return e

    def multiplicative(self) -> Node:
        e = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/", "%"):
            t = self.tok
            self.i += 1
            e = Binary(t.pos, t.value, e, self.unary())
        return e

    def unary(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.value in ("-", "+"):
            self.i += 1
            arg = self.unary()
            if isinstance(arg, Lit) and arg.type in ("long", "real", "timespan") and t.value == "-":
                return Lit(t.pos, -arg.value, arg.type)
            return arg if t.value == "+" else Unary(t.pos, "-", arg)
        if t.kind == "op" and t.value == "!":
            raise self.error("'!' is not an operator in KQL (use not(…))")
        return self.postfix()

    def postfix(self) -> Node:
        e = self.primary()
        while True:
            t = self.tok
            if t.kind == "op" and t.value == "." and self.peek().kind in ("ident",):
                self.i += 1
                key = self.tok
                self.i += 1
                e = Member(t.pos, e, Lit(key.pos, key.value, "string"))
            elif t.kind == "op" and t.value == "." and self.peek().kind == "op" and self.peek().value == "[":
                self.i += 1
            elif t.kind == "op" and t.value == "[" and not isinstance(e, Lit):
                self.i += 1
                key_node = self.expr()
                self.expect("]")
                e = Member(t.pos, e, key_node)
            else:
                return e

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "string":
            self.i += 1
            value = t.value
            while self.tok.kind == "string":  # adjacent literals concatenate
                value += self.tok.value
                self.i += 1
            return Lit(t.pos, value, "string")
        if t.kind == "number":
            self.i += 1
            return Lit(t.pos, t.value, "real" if isinstance(t.value, float) else "long")
        if t.kind == "timespan":
            self.i += 1
            return Lit(t.pos, t.value, "timespan")
        if t.kind == "op" and t.value == "(":
            self.i += 1
            if self._starts_tabular():
                inner: Node = self.tabular()
            else:
                inner = self.expr()
            self.expect(")")
            return inner
        if t.kind == "op" and t.value == "*":
            self.i += 1
            return Star(t.pos)
        if t.kind == "op" and t.value == "[":
            self.i += 1
            s = self.tok
            if s.kind != "string":
                raise self.error("expected a quoted name")
            self.i += 1
            self.expect("]")
            return Name(t.pos, str(s.value))
        if t.kind != "ident":
            raise self.error(f"unexpected {t.value if t.kind != 'eof' else 'end of the query'!r}")
        name = t.value
        self.i += 1
        if name in ("true", "false") and not self.at("("):
            return Lit(t.pos, name == "true", "bool")
        if name == "null" and not self.at("("):
            return Lit(t.pos, None, "null")
        if name in ("dynamic", "datetime", "timespan", "time", "guid", "real", "long", "int", "bool", "double",
                    "decimal", "string") and self.at("("):
            return self.typed_literal(name, t.pos)
        if name in ("$left", "$right"):
            self.expect(".")
            return Name(t.pos, name + "." + self.ident())
        if self.at("("):
            self.i += 1
            return Call(t.pos, name, self.args(")"))
        return Name(t.pos, name)

    def typed_literal(self, typ: str, pos: int) -> Node:
        self.expect("(")
        if typ == "dynamic":
            value = self.json_value()
            self.expect(")")
            return Lit(pos, value, "dynamic")
        start = self.tok.pos
        depth = 0
        while not (depth == 0 and self.at(")")):
            if self.tok.kind == "eof":
                raise self.error(f"unterminated {typ}(…)")
            if self.tok.kind == "op" and self.tok.value == "(":
                depth += 1
            if self.tok.kind == "op" and self.tok.value == ")":
                depth -= 1
            self.i += 1
        end = self.tok.pos
        toks = self.toks[self._index_of(start):self.i]
        self.expect(")")
        raw = self.text[start:end].strip()
        if typ in ("datetime",):
            if len(toks) == 1 and toks[0].kind == "string":
                raw = toks[0].value
            return Lit(pos, raw, "datetime")
        if typ in ("timespan", "time"):
            if len(toks) == 1 and toks[0].kind == "timespan":
                return Lit(pos, toks[0].value, "timespan")
            raise self.error(f"timespan({raw}) is not supported; write e.g. 1d or 2h", pos)
        if typ == "guid":
            return Lit(pos, raw, "string")
        if len(toks) == 1 and toks[0].kind == "number":
            return Lit(pos, toks[0].value, "real" if typ in ("real", "double", "decimal") else "long")
        if typ == "bool" and raw in ("true", "false"):
            return Lit(pos, raw == "true", "bool")
        if raw == "null":
            return Lit(pos, None, "null")
        if typ == "string" and len(toks) == 1 and toks[0].kind == "string":
            return Lit(pos, toks[0].value, "string")
        raise self.error(f"bad {typ} literal {raw!r}", pos)

    def _index_of(self, pos: int) -> int:
        for k in range(self.i, -1, -1):
            if self.toks[k].pos == pos:
                return k
        return self.i

    def json_value(self) -> Any:
        t = self.tok
        if t.kind == "op" and t.value == "[":
            self.i += 1
            out = []
            while not self.at("]"):
                out.append(self.json_value())
                if not self.accept(","):
                    break
            self.expect("]")
            return out
        if t.kind == "op" and t.value == "{":
            self.i += 1
            obj = {}
            while not self.at("}"):
                k = self.tok
                if k.kind not in ("string", "ident"):
                    raise self.error("expected a key in dynamic({…})")
                self.i += 1
                self.expect(":")
                obj[str(k.value)] = self.json_value()
                if not self.accept(","):
                    break
            self.expect("}")
            return obj
        if t.kind == "op" and t.value == "-":
            self.i += 1
            return -self.json_value()
        if t.kind in ("string", "number"):
            self.i += 1
            return t.value
        if t.kind == "timespan":
            self.i += 1
            return t.value
        if t.kind == "ident" and t.value in ("true", "false", "null"):
            self.i += 1
            return {"true": True, "false": False, "null": None}[t.value]
        if t.kind == "ident" and t.value in ("datetime", "timespan"):
            self.i += 1
            lit = self.typed_literal(t.value, t.pos)
            assert isinstance(lit, Lit)
            return lit.value
        raise self.error(f"unexpected {t.value!r} in dynamic(…)")


# --- tabular operators: how each one's arguments are read -----------------------------------------------

def _where(p: Parser) -> dict[str, Any]:
    return {"expr": p.expr()}


def _project(p: Parser) -> dict[str, Any]:
    return {"items": p.assignments()}


def _names(p: Parser) -> dict[str, Any]:
    return {"names": p.names()}


def _rename(p: Parser) -> dict[str, Any]:
    pairs = []
    while True:
        new = p.ident()
        p.expect("=")
        pairs.append((new, p.ident()))
        if not p.accept(","):
            return {"pairs": pairs}


def _reorder(p: Parser) -> dict[str, Any]:
    names = []
    while True:
        names.extend(p.names()[:1])
        if p.accept("asc") or p.accept("desc") or p.accept("granny-asc") or p.accept("granny-desc"):
            pass
        if not p.accept(","):
            return {"names": names}


def _summarize(p: Parser) -> dict[str, Any]:
    hints = p.hints()
    aggs = [] if p.at("by") else p.assignments()
    groups = p.assignments() if p.accept("by") else []
    return {"aggs": aggs, "groups": groups, "hints": hints}


def _join(p: Parser) -> dict[str, Any]:
    hints = p.hints()
    if p.at("("):
        right: Node = p.source()
    else:
        t = p.tok
        right = Name(t.pos, p.ident())
        if p.at("("):
            p.i += 1
            right = Call(t.pos, right.name, p.args(")"))
    if isinstance(right, Tabular) is False and isinstance(right, Name | Call):
        right = Tabular(right.pos, right, [])
    hints.update(p.hints())
    keys: list[Node] = []
    if p.accept("on"):
        while True:
            keys.append(p.expr())
            if not p.accept(","):
                break
    elif p.accept("where"):
        raise p.error("join … where is not supported (use on)")
    return {"kind": hints.get("kind", "innerunique"), "right": right, "on": keys, "hints": hints}


def _lookup(p: Parser) -> dict[str, Any]:
    args = _join(p)
    if "kind" not in args.get("hints", {}) and args["kind"] == "innerunique":
        args["kind"] = "leftouter"  # lookup's default
    return args


def _search(p: Parser) -> dict[str, Any]:
    p.hints()
    tables: list[str] | None = None
    if p.accept("in"):
        p.expect("(")
        tables = p.names()
        p.expect(")")
    return {"tables": tables, "expr": p.expr()}


def _union(p: Parser) -> dict[str, Any]:
    return p.union_args()


def _top(p: Parser) -> dict[str, Any]:
    n = p.expr()
    p.expect("by")
    return {"n": n, "by": p.sorts()}


def _sort(p: Parser) -> dict[str, Any]:
    p.expect("by")
    return {"by": p.sorts()}


def _take(p: Parser) -> dict[str, Any]:
    return {"n": p.expr()}


def _distinct(p: Parser) -> dict[str, Any]:
    if p.at("*"):
        p.i += 1
        return {"items": []}
    return {"items": p.assignments()}


def _count(p: Parser) -> dict[str, Any]:
    return {}


def _mv_expand(p: Parser) -> dict[str, Any]:
    hints = p.hints()
    items = []
    while True:
        a = p.assignments()[0]
        typ = None
        if p.accept("to"):
            p.expect("typeof")
            p.expect("(")
            typ = p.ident()
            p.expect(")")
        items.append((a, typ))
        if not p.accept(","):
            break
    limit = p.expr() if p.accept("limit") else None
    return {"items": items, "hints": hints, "limit": limit}


def _parse(p: Parser) -> dict[str, Any]:
    hints = p.hints()
    expr = p.expr()
    p.expect("with")
    parts: list[tuple[str, Any]] = []  # ("text", s) | ("col", (name, type))
    while True:
        t = p.tok
        if t.kind == "string":
            p.i += 1
            parts.append(("text", t.value))
        elif t.kind == "op" and t.value == "*":
            p.i += 1
            parts.append(("any", None))
        elif t.kind == "ident":
            name = p.ident()
            typ = "string"
            if p.accept(":"):
                typ = p.ident()
            parts.append(("col", (name, typ)))
        else:
            break
        if p.at("|") or p.tok.kind == "eof" or p.at(")") or p.at(";"):
            break
    return {"expr": expr, "parts": parts, "hints": hints}


def _render(p: Parser) -> dict[str, Any]:
    chart = p.ident()
    props: dict[str, Any] = {}
    if p.accept("with"):
        p.expect("(")
        depth = 1
        while depth and p.tok.kind != "eof":
            if p.at("("):
                depth += 1
            elif p.at(")"):
                depth -= 1
            p.i += 1
    return {"chart": chart, "props": props}


def _invoke(p: Parser) -> dict[str, Any]:
    t = p.tok
    name = p.ident()
    p.expect("(")
    return {"call": Call(t.pos, name, p.args(")"))}


def _serialize(p: Parser) -> dict[str, Any]:
    items = p.assignments() if p.tok.kind == "ident" else []
    return {"items": items}


def _as(p: Parser) -> dict[str, Any]:
    p.hints()
    name = p.ident()
    p.tabular_names.add(name)
    return {"name": name}


def _evaluate(p: Parser) -> dict[str, Any]:
    p.hints()
    t = p.tok
    name = p.ident()
    p.expect("(")
    return {"call": Call(t.pos, name, p.args(")"))}


_OPERATORS: dict[str, Callable[[Parser], dict[str, Any]]] = {
    "where": _where, "filter": _where, "project": _project, "project-away": _names, "project-keep": _names,
    "project-rename": _rename, "project-reorder": _reorder, "extend": _project, "summarize": _summarize,
    "join": _join, "lookup": _lookup, "union": _union, "top": _top, "sort": _sort, "order": _sort, "take": _take, "limit": _take,
    "distinct": _distinct, "count": _count, "mv-expand": _mv_expand, "mvexpand": _mv_expand, "parse": _parse,
    "render": _render, "invoke": _invoke, "search": _search, "serialize": _serialize, "as": _as, "evaluate": _evaluate,
}
_ALIASES = {"filter": "where", "order": "sort", "limit": "take", "mvexpand": "mv-expand"}


def parse(text: str, tables: frozenset[str]) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise KqlError("the query is empty")
    p = Parser(text, tables)
    q = p.query()
    if q.body is None:
        raise KqlError("the query has no tabular expression (only let statements)")
    return q
