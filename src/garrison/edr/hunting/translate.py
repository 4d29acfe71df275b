"""KQL → SQL: a parsed query (garrison.edr.hunting.syntax) becomes one SELECT in a dialect (DuckDB or
ClickHouse), over the scoped views of the event tables only.

Every tabular step is a sub-select whose columns (name and KQL type) are known here, so a column that
does not exist, a function Garrison does not have, or an operator it does not translate fails with
:class:`KqlError` naming it and its position. Identifiers come from that column list and the tables'
schema only; literals become bound parameters. Nothing of the query's text reaches SQL as text.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from garrison.edr.hunting import syntax as k
from garrison.edr.hunting.dialects import Dialect, path_duckdb
from garrison.edr.hunting.syntax import KqlError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_ .\-@#$]{1,128}$")
NUMERIC = {"long", "int", "real"}


@dataclass
class E:
    """A scalar SQL expression and its KQL type."""

    sql: str
    type: str
    key: str = ""  # what to group by when cheaper than sql (bin of a datetime: the bucket's number)


@dataclass
class Rel:
    """A table-valued SQL expression and its columns (name -> KQL type), in order."""

    sql: str
    cols: dict[str, str]


class Const(k.Node):
    """An already-translated value used where the tree expects a node."""

    def __init__(self, pos: int, e: E) -> None:
        super().__init__(pos)
        self.e = e


@dataclass
class Env:
    literals: dict[str, Any] = field(default_factory=dict)  # let x = dynamic([…]): the values, for in (…)
    scalars: dict[str, k.Node | E] = field(default_factory=dict)
    tables: dict[str, Rel] = field(default_factory=dict)
    functions: dict[str, k.Lambda] = field(default_factory=dict)

    def child(self) -> Env:
        return Env(dict(self.literals), dict(self.scalars), dict(self.tables), dict(self.functions))


@dataclass
class Translation:
    sql: str
    params: dict[str, Any]
    columns: dict[str, str]
    tables: set[str]
    chart: str | None = None


def quote(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise KqlError(f"column name {name[:40]!r} is not allowed")
    return '"' + name + '"'


def view_name(table: str) -> str:
    """The scoped view (a CTE the runner defines) that stands for a hunting table."""
    return quote("_scoped_" + table)


class Translator:
    def __init__(self, text: str, dialect: Dialect, tables: dict[str, dict[str, str]], now: dt.datetime) -> None:
        self.text = text
        self.d = dialect
        self.schema = tables
        self.now = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
        self.params: dict[str, Any] = {}
        self.used_tables: set[str] = set()
        self.n = 0
        self.chart: str | None = None

    # --- helpers -----------------------------------------------------------------------------------
    def err(self, message: str, node: k.Node | int | None = None) -> KqlError:
        pos = node if isinstance(node, int) else (node.pos if node is not None else -1)
        return KqlError(message, pos, self.text)

    def alias(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    def param(self, value: Any) -> str:
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return ":" + name

    def fmt(self, template: str, **parts: str) -> str:
        return template.format(**parts)

    def null(self, typ: str) -> str:
        return f"CAST(NULL AS {self.d.types.get(typ, self.d.types['string'])})"

    # --- queries ----------------------------------------------------------------------------------
    def query(self, q: k.Query) -> Translation:
        env = Env()
        self.bind_lets(q.lets, env)
        if not isinstance(q.body, k.Tabular | k.Datatable | k.Op | k.Name | k.Call):
            raise self.err("the query does not end in a tabular expression", q.body or q)
        rel = self.tabular(q.body, env)
        return Translation(rel.sql, self.params, rel.cols, self.used_tables, self.chart)

    def bind_lets(self, lets: list[k.Let], env: Env) -> None:
        for let in lets:
            v = let.value
            if isinstance(v, k.Lambda):
                env.functions[let.name] = v
            elif isinstance(v, k.Tabular | k.Datatable | k.Op):
                env.tables[let.name] = self.tabular(v, env)
            else:
                literal = self._dynamic_literal(v, env)
                if literal is not None:
                    env.literals[let.name] = literal
                env.scalars[let.name] = self.scalar(v, Rel("", {}), env)

    def tabular(self, node: k.Node, env: Env) -> Rel:
        if isinstance(node, k.Tabular):
            rel = self.source(node.source, env)
            for op in node.ops:
                rel = self.operator(op, rel, env)
            return rel
        return self.source(node, env)

    def source(self, node: k.Node, env: Env) -> Rel:
        if isinstance(node, k.Tabular):
            return self.tabular(node, env)
        if isinstance(node, k.Name):
            if node.name in env.tables:
                return env.tables[node.name]
            if node.name in self.schema:
                self.used_tables.add(node.name)
                return Rel(f"SELECT * FROM {view_name(node.name)}", dict(self.schema[node.name]))
            if node.name in env.functions:
                return self.call_tabular(k.Call(node.pos, node.name, []), env)
            raise self.err(f"unknown table {node.name!r} (the event store has: {', '.join(self.schema)})", node)
        if isinstance(node, k.Datatable):
            return self.datatable(node, env)
        if isinstance(node, k.Op) and node.name == "union":
            return self.union(None, node.args, env, node)
        if isinstance(node, k.Op) and node.name == "search":
            return self.search(None, node.args, env, node)
        if isinstance(node, k.Op) and node.name == "print":
            items = [(a.name or f"print_{i}", self.scalar(a.expr, Rel("", {}), env))
                     for i, a in enumerate(node.args["items"])]
            return Rel("SELECT " + ", ".join(f"{e.sql} AS {quote(n)}" for n, e in items), {n: e.type for n, e in items})
        if isinstance(node, k.Call):
            return self.call_tabular(node, env)
        raise self.err("expected a table", node)

    def call_tabular(self, call: k.Call, env: Env) -> Rel:
        fn = env.functions.get(call.name)
        if fn is None:
            raise self.err(f"unknown tabular function {call.name!r}", call)
        inner = self.bind_call(fn, call, env, Rel("", {}))
        body = fn.body
        self.bind_lets(body.lets, inner)
        if body.body is None:
            raise self.err(f"function {call.name!r} has no body", call)
        return self.tabular(body.body, inner)

    def bind_call(self, fn: k.Lambda, call: k.Call, env: Env, rel: Rel) -> Env:
        inner = env.child()
        if len(call.args) > len(fn.params):
            raise self.err(f"{call.name}() takes {len(fn.params)} arguments", call)
        for i, (pname, ptype, default) in enumerate(fn.params):
            arg = call.args[i] if i < len(call.args) else default
            if arg is None:
                raise self.err(f"{call.name}(): argument {pname!r} is missing", call)
            if ptype == "":
                inner.tables[pname] = self.tabular(arg, env)
            else:
                inner.scalars[pname] = self.scalar(arg, rel, env)
        return inner

    def datatable(self, node: k.Datatable, env: Env) -> Rel:
        if not node.columns:
            raise self.err("datatable needs columns", node)
        rows = [node.values[i:i + len(node.columns)] for i in range(0, len(node.values), len(node.columns))]
        cols = {name: _kql_type(typ, node, self) for name, typ in node.columns}
        selects = []
        for row in rows or [[k.Lit(node.pos, None, "null")] * len(cols)]:
            items = []
            for (name, typ), v in zip(cols.items(), row, strict=True):
                e = self.scalar(v, Rel("", {}), env)
                items.append(f"{self.cast(e, typ)} AS {quote(name)}")
            selects.append("SELECT " + ", ".join(items))
        sql = " UNION ALL ".join(selects)
        if not rows:
            sql = f"SELECT * FROM ({sql}) AS {self.alias()} WHERE 1 = 0"
        return Rel(sql, cols)

    def cast(self, e: E, typ: str) -> str:
        if e.type == typ:
            return e.sql
        if e.type == "null":
            return self.null(typ)
        if typ == "datetime":
            return self.fmt(self.d.to_datetime, a=e.sql)
        return f"CAST({e.sql} AS {self.d.types[typ]})"

    # --- tabular operators ----------------------------------------------------------------------------
    def operator(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        handler = _OPERATORS.get(op.name)
        if handler is None:
            raise self.err(f"the {op.name!r} operator is not supported", op)
        return handler(self, op, rel, env)

    def select(self, rel: Rel, items: list[tuple[str, E]], tail: str = "", distinct: bool = False) -> Rel:
        if not items:
            raise KqlError("no columns left")
        seen: set[str] = set()
        unique = []
        for n, e in items:  # Kusto names a repeated column Name1, Name2, …
            name, i = n, 1
            while name in seen:
                name, i = f"{n}{i}", i + 1
            seen.add(name)
            unique.append((name, e))
        items = unique
        body = ", ".join(e.sql if e.sql == quote(n) else f"{e.sql} AS {quote(n)}" for n, e in items)
        sql = f"SELECT {'DISTINCT ' if distinct else ''}{body} FROM ({rel.sql}) AS {self.alias()}{tail}"
        return Rel(sql, {n: e.type for n, e in items})

    def columns(self, rel: Rel) -> list[tuple[str, E]]:
        return [(n, E(quote(n), t)) for n, t in rel.cols.items()]

    def op_where(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        cond = self.boolean(op.args["expr"], rel, env)
        return self.select(rel, self.columns(rel), f" WHERE {cond.sql}")

    def named(self, item: k.Assign, rel: Rel, env: Env, auto: int) -> tuple[str, E]:
        if item.names:
            raise self.err("assigning several columns at once is supported for arg_max/arg_min only", item)
        e = self.scalar(item.expr, rel, env)
        return item.name or _auto_name(item.expr, auto), e

    def op_project(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        items = [self.named(a, rel, env, i + 1) for i, a in enumerate(op.args["items"])]
        return self.select(rel, items)

    def op_extend(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        out = dict(self.columns(rel))
        cur = rel
        for i, a in enumerate(op.args["items"]):
            name, e = self.named(a, cur, env, i + 1)
            out[name] = e
            if name in rel.cols and any(isinstance(x.expr, k.Name) and x.expr.name == name
                                        for x in op.args["items"][i + 1:]):
                raise self.err("extend: a column replaced and read in the same extend is not supported", a)
        return self.select(rel, list(out.items()))

    def match_names(self, patterns: list[str], rel: Rel, node: k.Node) -> list[str]:
        out: list[str] = []
        for p in patterns:
            hits = [c for c in rel.cols if fnmatch.fnmatchcase(c, p)]
            if not hits and "*" not in p:
                raise self.err(f"unknown column {p!r}", node)
            out.extend(h for h in hits if h not in out)
        return out

    def op_project_away(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        gone = set(self.match_names(op.args["names"], rel, op))
        return self.select(rel, [(n, e) for n, e in self.columns(rel) if n not in gone])

    def op_project_keep(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        keep = set(self.match_names(op.args["names"], rel, op))
        return self.select(rel, [(n, e) for n, e in self.columns(rel) if n in keep])

    def op_project_rename(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        renames = {}
        for new, old in op.args["pairs"]:
            if old not in rel.cols:
                raise self.err(f"unknown column {old!r}", op)
            renames[old] = new
        return self.select(rel, [(renames.get(n, n), e) for n, e in self.columns(rel)])

    def op_project_reorder(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        first = self.match_names(op.args["names"], rel, op)
        cols = dict(self.columns(rel))
        return self.select(rel, [(n, cols[n]) for n in first] + [(n, e) for n, e in cols.items() if n not in first])

    def op_summarize(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        groups: list[tuple[str, E]] = []
        for i, g in enumerate(op.args["groups"]):
            name, e = self.named(g, rel, env, i + 1)
            if g.name is None and isinstance(g.expr, k.Call) and g.expr.name in ("bin", "floor") and g.expr.args:
                first = g.expr.args[0]
                name = first.name if isinstance(first, k.Name) else name
            groups.append((name, e))
        aggs: list[tuple[str, E]] = []
        for i, a in enumerate(op.args["aggs"]):
            aggs.extend(self.aggregate(a, rel, env, i + 1, [n for n, _ in groups]))
        items = groups + aggs
        if not items:
            raise self.err("summarize needs an aggregate or a by clause", op)
        tail = ""
        if groups:
            tail = " GROUP BY " + ", ".join(e.key or e.sql for _, e in groups)
        return self.select(rel, items, tail)

    def aggregate(self, a: k.Assign, rel: Rel, env: Env, auto: int, group_names: list[str]) -> list[tuple[str, E]]:
        call = a.expr
        if not isinstance(call, k.Call):
            raise self.err("summarize: expected an aggregate function", a)
        name = _FN_ALIASES.get(call.name, call.name)
        if name in ("arg_max", "arg_min"):
            if len(call.args) < 2:
                raise self.err(f"{name}() takes an expression and the columns to return", call)
            by = self.scalar(call.args[0], rel, env)
            by_name = a.name or (call.args[0].name if isinstance(call.args[0], k.Name) else f"{name}_")
            tmpl = self.d.arg_max if name == "arg_max" else self.d.arg_min
            out = [(by_name, E(f"{'max' if name == 'arg_max' else 'min'}({by.sql})", by.type))]
            for arg in call.args[1:]:
                if isinstance(arg, k.Star):
                    for c, t in rel.cols.items():
                        if c not in group_names and c != by_name:
                            out.append((c, E(self.fmt(tmpl, x=quote(c), by=by.sql), t)))
                else:
                    cname = arg.name if isinstance(arg, k.Name) else None
                    if isinstance(arg, k.Assign):
                        raise self.err("arg_max: named columns are not supported", arg)
                    e = self.scalar(arg, rel, env)
                    out.append((cname or f"{name}_{len(out)}", E(self.fmt(tmpl, x=e.sql, by=by.sql), e.type)))
            if a.names:  # (Last, Name) = arg_max(Timestamp, DeviceName)
                if len(a.names) > len(out):
                    raise self.err(f"{name}() gives {len(out)} columns, {len(a.names)} names", a)
                out = [(a.names[i] if i < len(a.names) else n, e) for i, (n, e) in enumerate(out)]
            return out
        if a.names:
            raise self.err("assigning several columns at once is supported for arg_max/arg_min only", a)
        agg = _AGGREGATES.get(name)
        if agg is None:
            raise self.err(f"unknown aggregate function {call.name!r}", call)
        e, default = agg(self, call, rel, env)
        return [(a.name or default, e)]

    def op_sort(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        return self.select(rel, self.columns(rel), " ORDER BY " + self.order(op.args["by"], rel, env))

    def order(self, sorts: list[k.Sort], rel: Rel, env: Env) -> str:
        parts = []
        for s in sorts:
            e = self.scalar(s.expr, rel, env)
            nulls_first = s.nulls_first if s.nulls_first is not None else not s.desc
            parts.append(f"{e.sql} {'DESC' if s.desc else 'ASC'} NULLS {'FIRST' if nulls_first else 'LAST'}")
        return ", ".join(parts)

    def count_value(self, node: k.Node, rel: Rel, env: Env) -> int:
        e = node
        if isinstance(e, k.Name) and isinstance(env.scalars.get(e.name), E):
            sql = env.scalars[e.name]
            assert isinstance(sql, E)
            if re.fullmatch(r"-?\d+", sql.sql):
                return max(0, int(sql.sql))
        if isinstance(e, k.Lit) and e.type == "long":
            return max(0, int(e.value))
        raise self.err("expected a whole number", node)

    def op_top(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        n = self.count_value(op.args["n"], rel, env)
        return self.select(rel, self.columns(rel), f" ORDER BY {self.order(op.args['by'], rel, env)} LIMIT {n}")

    def op_take(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        return self.select(rel, self.columns(rel), f" LIMIT {self.count_value(op.args['n'], rel, env)}")

    def op_distinct(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        items = op.args["items"]
        if not items:
            return self.select(rel, self.columns(rel), distinct=True)
        return self.select(rel, [self.named(a, rel, env, i + 1) for i, a in enumerate(items)], distinct=True)

    def op_count(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        return self.select(rel, [("Count", E("count(*)", "long"))])

    def op_render(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        self.chart = op.args["chart"]
        return rel

    def op_serialize(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        if op.args["items"]:
            raise self.err("serialize with columns is not supported", op)
        return rel

    def op_as(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        env.tables[op.args["name"]] = rel
        return rel

    def op_invoke(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        call: k.Call = op.args["call"]
        fn = env.functions.get(call.name)
        if fn is None or not fn.params or fn.params[0][1] != "":
            raise self.err(f"invoke: {call.name!r} is not a function of a table", call)
        inner = env.child()
        inner.tables[fn.params[0][0]] = rel
        rest = k.Lambda(fn.pos, fn.params[1:], fn.body)
        inner = self.bind_call(rest, call, inner, rel)
        self.bind_lets(fn.body.lets, inner)
        if fn.body.body is None:
            raise self.err(f"function {call.name!r} has no body", call)
        return self.tabular(fn.body.body, inner)

    def op_mv_expand(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        if len(op.args["items"]) != 1 or op.args["limit"] is not None:
            raise self.err("mv-expand: one column at a time, without limit, is supported", op)
        assign, typ = op.args["items"][0]
        name, e = self.named(assign, rel, env, 1)
        if isinstance(assign.expr, k.Name):
            name = assign.expr.name
        value = self.fmt(self.d.unnest_json, a=self.dynamic(e).sql)
        cols = dict(self.columns(rel))
        out_type = _kql_type(typ, op, self) if typ else "dynamic"
        expanded = E(value, "dynamic")
        if out_type != "dynamic":
            expanded = self.convert(expanded, out_type)
        cols[name] = expanded
        return self.select(rel, list(cols.items()))

    def op_parse(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        kind = op.args["hints"].get("kind", "simple")
        if kind not in ("simple", "regex"):
            raise self.err(f"parse kind={kind} is not supported", op)
        source = self.as_string(self.scalar(op.args["expr"], rel, env))
        pattern, names = "", []
        parts = op.args["parts"]
        for i, (what, value) in enumerate(parts):
            if what == "text":
                pattern += value if kind == "regex" else re.escape(value)
            elif what == "any":
                pattern += ".*?"
            else:
                last = i == len(parts) - 1
                pattern += "(.*)" if last else "(.*?)"
                names.append(value)
        regex = self.param("(?s)^.*?" + pattern if kind == "simple" else pattern)
        cols = dict(self.columns(rel))
        for gi, (cname, ctype) in enumerate(names, start=1):
            e = E(self.fmt(self.d.regex_extract, a=source.sql, b=regex, n=str(gi)), "string")
            cols[cname] = self.convert(e, _kql_type(ctype, op, self))
        return self.select(rel, list(cols.items()))

    def op_search(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        return self.search(rel, op.args, env, op)

    def search(self, first: Rel | None, args: dict[str, Any], env: Env, node: k.Node) -> Rel:
        """``search`` a predicate over a table (``T | search …``) or over tables (``search in (…) …``, all
        the event tables when none are named; the answer has ``$table``). A bare string is a term any
        string column has; a table lacking a column the predicate names has no match."""
        if first is not None:
            return self.select(first, self.columns(first), f" WHERE {self.search_cond(args['expr'], first, env).sql}")
        names = args["tables"] or [t for t in self.schema if t not in ("DeviceInfo", "DeviceNetworkInfo")]
        parts: list[tuple[str, Rel]] = []
        for name in names:
            hits = [t for t in self.schema if fnmatch.fnmatchcase(t, name)]
            if not hits:
                raise self.err(f"unknown table {name!r}", node)
            for t in hits:
                rel = self.source(k.Name(node.pos, t), env)
                try:
                    cond = self.search_cond(args["expr"], rel, env)
                except KqlError:
                    continue
                parts.append((t, self.select(rel, self.columns(rel), f" WHERE {cond.sql}")))
        if not parts:
            raise self.err("search: no table has the columns the predicate names", node)
        return self.union_rels(parts, "outer", "$table")

    def search_cond(self, node: k.Node, rel: Rel, env: Env) -> E:
        if isinstance(node, k.Lit) and node.type == "string":
            term = E(self.param(str(node.value)), "string")
            strings = [c for c, t in rel.cols.items() if t == "string"]
            if not strings:
                return E("FALSE", "bool")
            op = "contains" if "*" in str(node.value) else "has"
            if op == "contains":
                term = E(self.param(str(node.value).replace("*", "")), "string")
            return E("(" + " OR ".join(self.string_op(op, E(quote(c), "string"), term, node).sql
                                       for c in strings) + ")", "bool")
        if isinstance(node, k.Binary) and node.op in ("and", "or"):
            a, b = self.search_cond(node.left, rel, env), self.search_cond(node.right, rel, env)
            return E(f"({a.sql} {node.op.upper()} {b.sql})", "bool")
        return self.boolean(node, rel, env)

    def op_union(self, op: k.Op, rel: Rel, env: Env) -> Rel:
        return self.union(rel, op.args, env, op)

    def union(self, first: Rel | None, args: dict[str, Any], env: Env, node: k.Node) -> Rel:
        rels: list[tuple[str, Rel]] = []
        if first is not None:
            rels.append(("", first))
        for t in args["tables"]:
            if isinstance(t, k.Name) and "*" in t.name:
                hits = [n for n in self.schema if fnmatch.fnmatchcase(n, t.name)]
                if not hits:
                    raise self.err(f"no table matches {t.name!r}", t)
                rels.extend((n, self.source(k.Name(t.pos, n), env)) for n in hits)
            else:
                rels.append((t.name if isinstance(t, k.Name) else "", self.source(t, env)))
        return self.union_rels(rels, args.get("kind", "outer"), args.get("withsource"))

    def union_rels(self, rels: list[tuple[str, Rel]], kind: str, source_col: str | None) -> Rel:
        """The rows of all ``rels``: outer (every column, NULL where a table lacks it) or inner (the
        common columns); ``source_col`` names a column holding each row's table label."""
        if kind == "inner":
            names = [c for c in rels[0][1].cols if all(c in r.cols for _, r in rels)]
        else:
            names = []
            for _, r in rels:
                names.extend(c for c in r.cols if c not in names)
        types: dict[str, str] = {}
        for c in names:
            ts = {r.cols[c] for _, r in rels if c in r.cols}
            types[c] = ts.pop() if len(ts) == 1 else "string"
        parts = []
        for label, r in rels:
            items = []
            if source_col:
                items.append(f"{self.param(label)} AS {quote(source_col)}")
            for c in names:
                if c in r.cols:
                    ref = E(quote(c), r.cols[c])
                    items.append(f"{self.cast(ref, types[c]) if r.cols[c] != types[c] else ref.sql} AS {quote(c)}")
                else:
                    items.append(f"{self.null(types[c])} AS {quote(c)}")
            parts.append(f"SELECT {', '.join(items)} FROM ({r.sql}) AS {self.alias()}")
        cols = ({source_col: "string"} if source_col else {}) | types
        return Rel(" UNION ALL ".join(f"SELECT * FROM ({p}) AS {self.alias()}" for p in parts), cols)

    def op_lookup(self, op: k.Op, left: Rel, env: Env) -> Rel:
        """A join (leftouter by default) whose right side's same-named key columns are not repeated."""
        if op.args["kind"] not in ("leftouter", "inner"):
            raise self.err(f"lookup kind={op.args['kind']} is not supported", op)
        joined = self.op_join(op, left, env, lookup=True)
        return joined

    def op_join(self, op: k.Op, left: Rel, env: Env, lookup: bool = False) -> Rel:
        kind = op.args["kind"]
        if kind not in _JOIN_KINDS:
            raise self.err(f"join kind={kind} is not supported", op)
        right = self.tabular(op.args["right"], env)
        pairs: list[tuple[str, str]] = []
        for key in op.args["on"]:
            if isinstance(key, k.Name) and not key.name.startswith("$"):
                pairs.append((key.name, key.name))
            elif (isinstance(key, k.Binary) and key.op == "==" and isinstance(key.left, k.Name)
                  and isinstance(key.right, k.Name)):
                sides = {key.left.name.split(".", 1)[0]: key.left.name, key.right.name.split(".", 1)[0]: key.right.name}
                lname, rname = sides.get("$left", ""), sides.get("$right", "")
                if not lname or not rname:
                    raise self.err("join on: write $left.Column == $right.Column", key)
                pairs.append((lname.split(".", 1)[1], rname.split(".", 1)[1]))
            else:
                raise self.err("join on: only columns and $left.A == $right.B equalities are supported", key)
        if not pairs:
            raise self.err("join needs on", op)
        for lc, rc in pairs:
            if lc not in left.cols:
                raise self.err(f"join: the left side has no column {lc!r}", op)
            if rc not in right.cols:
                raise self.err(f"join: the right side has no column {rc!r}", op)
        la, ra = self.alias(), self.alias()
        cond = " AND ".join(f"{la}.{quote(lc)} = {ra}.{quote(rc)}" for lc, rc in pairs)
        lsql = left.sql
        if kind == "innerunique":
            keys = ", ".join(quote(lc) for lc, _ in pairs)
            cols = ", ".join(quote(c) for c in left.cols)
            lsql = (f"SELECT {cols} FROM (SELECT *, {self.fmt(self.d.row_number, keys=keys)} AS _rn "
                    f"FROM ({left.sql}) AS {self.alias()}) AS {self.alias()} WHERE _rn = 1")
        if kind in ("leftsemi", "leftanti", "rightsemi", "rightanti"):
            keep, keep_alias, other, other_alias, other_keys = (
                (left, la, right, ra, [rc for _, rc in pairs]) if kind.startswith("left")
                else (right, ra, left, la, [lc for lc, _ in pairs]))
            keyset = (f"SELECT DISTINCT {', '.join(quote(c) for c in other_keys)}, 1 AS _m "
                      f"FROM ({other.sql}) AS {self.alias()}")
            if keep is left:
                frm = f"({left.sql}) AS {la} LEFT JOIN ({keyset}) AS {ra} ON {cond}"
            else:
                frm = f"({right.sql}) AS {ra} LEFT JOIN ({keyset}) AS {la} ON {cond}"
            test = f"{other_alias}._m IS {'NOT ' if kind.endswith('semi') else ''}NULL"
            body = ", ".join(f"{keep_alias}.{quote(c)} AS {quote(c)}" for c in keep.cols)
            return Rel(f"SELECT {body} FROM {frm} WHERE {test}", dict(keep.cols))
        join_sql = {"inner": "INNER JOIN", "innerunique": "INNER JOIN", "leftouter": "LEFT JOIN",
                    "rightouter": "RIGHT JOIN", "fullouter": "FULL OUTER JOIN"}[kind]
        out: dict[str, str] = {}
        items = []
        for c, t in left.cols.items():
            out[c] = t
            items.append(f"{la}.{quote(c)} AS {quote(c)}")
        same_keys = {lc for lc, rc in pairs if lc == rc} if lookup else set()
        for c, t in right.cols.items():
            if c in same_keys:
                continue
            name = c
            n = 1
            while name in out:
                name = f"{c}{n}"
                n += 1
            out[name] = t
            items.append(f"{ra}.{quote(c)} AS {quote(name)}")
        sql = f"SELECT {', '.join(items)} FROM ({lsql}) AS {la} {join_sql} ({right.sql}) AS {ra} ON {cond}"
        return Rel(sql, out)

    # --- scalars ----------------------------------------------------------------------------------------
    def scalar(self, node: k.Node, rel: Rel, env: Env) -> E:
        if isinstance(node, Const):
            return node.e
        if isinstance(node, k.Lit):
            return self.literal(node)
        if isinstance(node, k.Name):
            if node.name in rel.cols:
                return E(quote(node.name), rel.cols[node.name])
            bound = env.scalars.get(node.name)
            if isinstance(bound, E):
                return bound
            if node.name in env.tables:
                raise self.err(f"{node.name!r} is a table, not a value (use toscalar())", node)
            raise self.err(f"unknown column or name {node.name!r}", node)
        if isinstance(node, k.Binary):
            return self.binary(node, rel, env)
        if isinstance(node, k.Unary):
            e = self.scalar(node.arg, rel, env)
            return E(f"(-{e.sql})", e.type)
        if isinstance(node, k.InList):
            return self.in_list(node, rel, env)
        if isinstance(node, k.Between):
            e = self.scalar(node.arg, rel, env)
            low = self.scalar(node.low, rel, env)
            high = self.scalar(node.high, rel, env)
            if e.type == "datetime" and high.type == "timespan":
                high = E(self.fmt(self.d.add_micros, a=low.sql, n=high.sql), "datetime")
            e, low = self.unify(e, low)
            e, high = self.unify(e, high)
            return E(f"({e.sql} {'NOT ' if node.negated else ''}BETWEEN {low.sql} AND {high.sql})", "bool")
        if isinstance(node, k.Member):
            return self.member(node, rel, env)
        if isinstance(node, k.Call):
            return self.call(node, rel, env)
        if isinstance(node, k.Tabular):
            raise self.err("a table where a value is expected (use toscalar())", node)
        raise self.err(f"unexpected {type(node).__name__.lower()}", node)

    def boolean(self, node: k.Node, rel: Rel, env: Env) -> E:
        e = self.scalar(node, rel, env)
        if e.type not in ("bool", "null"):
            raise self.err(f"expected a true/false condition, found a {e.type}", node)
        return e

    def literal(self, node: k.Lit) -> E:
        v, t = node.value, node.type
        if t == "string":
            return E(self.param(v), "string")
        if t == "long":
            return E(str(int(v)), "long")
        if t == "real":
            return E(f"CAST({float(v)!r} AS {self.d.types['real']})", "real")
        if t == "bool":
            return E("TRUE" if v else "FALSE", "bool")
        if t == "null":
            return E("NULL", "null")
        if t == "timespan":
            return E(str(int(v)), "timespan")
        if t == "datetime":
            return E(self.param(self.parse_datetime(str(v), node)), "datetime")
        if t == "dynamic":
            return E(self.param(json.dumps(v, separators=(",", ":"))), "dynamic")
        raise self.err(f"unsupported literal type {t}", node)

    def parse_datetime(self, raw: str, node: k.Node) -> dt.datetime:
        s = raw.strip().replace(" ", "T", 1) if re.match(r"\d{4}-\d\d-\d\d \d", raw.strip()) else raw.strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        s = re.sub(r"(\.\d{6})\d+", r"\1", s)
        try:
            value = dt.datetime.fromisoformat(s)
        except ValueError:
            for f in ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%Y/%m/%d"):
                try:
                    value = dt.datetime.strptime(raw.strip(), f)
                    break
                except ValueError:
                    continue
            else:
                raise self.err(f"not a date: {raw[:40]!r}", node) from None
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value

    def unify(self, a: E, b: E) -> tuple[E, E]:
        """Make two operands comparable (a dynamic compared with a string is its string value)."""
        if a.type == "dynamic" and b.type != "dynamic":
            a = self.convert(a, b.type if b.type != "null" else "string")
        if b.type == "dynamic" and a.type != "dynamic":
            b = self.convert(b, a.type if a.type != "null" else "string")
        if a.type == "datetime" and b.type == "string":
            b = E(self.fmt(self.d.to_datetime, a=b.sql), "datetime")
        if b.type == "datetime" and a.type == "string":
            a = E(self.fmt(self.d.to_datetime, a=a.sql), "datetime")
        if {a.type, b.type} == {"bool", "long"}:
            a, b = E(f"CAST({a.sql} AS {self.d.types['long']})", "long"), E(f"CAST({b.sql} AS {self.d.types['long']})", "long")
        return a, b

    def as_string(self, e: E) -> E:
        if e.type == "string":
            return e
        return self.convert(e, "string")

    def dynamic(self, e: E) -> E:
        if e.type == "dynamic":
            return e
        if e.type == "string":  # a JSON text read as dynamic (Kusto's AdditionalFields are dynamic)
            return E(f"(CASE WHEN {self.fmt(self.d.json_valid, a=e.sql)} THEN {e.sql} ELSE "
                     f"{self.fmt(self.d.to_json_string, a=e.sql)} END)", "dynamic")
        return E(self.fmt(self.d.to_json_string, a=e.sql), "dynamic")

    def convert(self, e: E, typ: str) -> E:
        if e.type == typ:
            return e
        if e.type == "null":
            return E(self.null(typ), typ)
        if e.type == "dynamic":
            e = E(self.fmt(self.d.json_string, a=e.sql), "string")
            if typ == "string":
                return e
        if typ == "string":
            if e.type == "bool":
                return E(f"(CASE WHEN {e.sql} THEN 'true' WHEN NOT {e.sql} THEN 'false' END)", "string")
            if e.type == "datetime":
                return E(self.fmt(self.d.to_string, a=e.sql), "string")
            return E(self.fmt(self.d.to_string, a=e.sql), "string")
        if typ in ("long", "int", "timespan"):
            return E(self.fmt(self.d.to_long, a=e.sql), typ)
        if typ == "real":
            return E(self.fmt(self.d.to_real, a=e.sql), "real")
        if typ == "datetime":
            return E(self.fmt(self.d.to_datetime, a=e.sql), "datetime")
        if typ == "bool":
            s = self.fmt(self.d.lower, a=self.fmt(self.d.to_string, a=e.sql))
            return E(f"(CASE WHEN {s} IN ('true', '1') THEN TRUE WHEN {s} IN ('false', '0') THEN FALSE END)", "bool")
        if typ == "dynamic":
            return self.dynamic(e)
        raise KqlError(f"cannot convert {e.type} to {typ}")

    def binary(self, node: k.Binary, rel: Rel, env: Env) -> E:
        op = node.op
        if op in ("and", "or"):
            a, b = self.boolean(node.left, rel, env), self.boolean(node.right, rel, env)
            return E(f"({a.sql} {op.upper()} {b.sql})", "bool")
        a = self.scalar(node.left, rel, env)
        b = self.scalar(node.right, rel, env)
        if op in ("==", "!=", "<", ">", "<=", ">="):
            a, b = self.unify(a, b)
            sql_op = {"==": "=", "!=": "<>"}.get(op, op)
            return E(f"({a.sql} {sql_op} {b.sql})", "bool")
        if op in ("=~", "!~"):
            a, b = self.as_string(a), self.as_string(b)
            sql_op = "=" if op == "=~" else "<>"
            return E(f"({self.fmt(self.d.lower, a=a.sql)} {sql_op} {self.fmt(self.d.lower, a=b.sql)})", "bool")
        if op in k.STRING_OPS or op == "matches regex":
            return self.string_op(op, a, b, node)
        if op in ("+", "-", "*", "/", "%"):
            return self.arith(op, a, b, node)
        raise self.err(f"the {op!r} operator is not supported", node)

    def string_op(self, op: str, a: E, b: E, node: k.Node) -> E:
        negated = op.startswith("!")
        base = op.lstrip("!")
        a = self.as_string(a)
        b = self.as_string(b)
        if base == "matches regex":
            sql = self.fmt(self.d.regex, a=a.sql, b=b.sql)
        elif base in ("has", "has_cs", "hasprefix", "hasprefix_cs", "hassuffix", "hassuffix_cs"):
            sql = self.fmt(self.d.regex, a=a.sql, b=self.term_regex(base, b, node))
        else:
            tmpl = {"contains": self.d.contains_ci, "contains_cs": self.d.contains_cs,
                    "startswith": self.d.starts_ci, "startswith_cs": self.d.starts_cs,
                    "endswith": self.d.ends_ci, "endswith_cs": self.d.ends_cs}[base]
            sql = self.fmt(tmpl, a=a.sql, b=b.sql)
        return E(f"(NOT {sql})" if negated else sql, "bool")

    def term_regex(self, op: str, needle: E, node: k.Node) -> str:
        """``has``: the needle is a whole term (terms are runs of letters and digits), case-insensitive
        unless ``_cs``; ``hasprefix``/``hassuffix``: a term starts/ends with it."""
        flags = "" if op.endswith("_cs") else "(?i)"
        before = "(^|[^0-9A-Za-z])"
        after = "([^0-9A-Za-z]|$)"
        text = self._constant(needle)
        if text is not None:
            core = re.escape(text)
            pre = before if text[:1].isalnum() else ""
            post = after if text[-1:].isalnum() else ""
            if op.startswith("hasprefix"):
                post = ""
            if op.startswith("hassuffix"):
                pre = ""
            return self.param(flags + pre + core + post)
        core = self.fmt(self.d.regex_escape, a=needle.sql)
        pre = "" if op.startswith("hassuffix") else before
        post = "" if op.startswith("hasprefix") else after
        return self.fmt(self.d.concat, args=", ".join([self.param(flags + pre), core, self.param(post)]))

    def _constant(self, e: E) -> str | None:
        m = re.fullmatch(r":(p\d+)", e.sql)
        if m and isinstance(self.params.get(m.group(1)), str):
            return str(self.params[m.group(1)])
        return None

    def arith(self, op: str, a: E, b: E, node: k.Node) -> E:
        ta, tb = a.type, b.type
        if ta == "datetime" and tb == "timespan" and op in "+-":
            n = b.sql if op == "+" else f"(-{b.sql})"
            return E(self.fmt(self.d.add_micros, a=a.sql, n=n), "datetime")
        if ta == "timespan" and tb == "datetime" and op == "+":
            return E(self.fmt(self.d.add_micros, a=b.sql, n=a.sql), "datetime")
        if ta == "datetime" and tb == "datetime" and op == "-":
            return E(self.fmt(self.d.diff_micros, a=a.sql, b=b.sql), "timespan")
        if ta == "dynamic":
            a = self.convert(a, "real" if tb == "real" else "long")
        if tb == "dynamic":
            b = self.convert(b, "real" if a.type == "real" else "long")
        ta, tb = a.type, b.type
        ok = NUMERIC | {"timespan", "null"}
        if ta not in ok or tb not in ok:
            raise self.err(f"cannot apply {op!r} to {ta} and {tb}", node)
        if ta == "timespan" and tb == "timespan" and op == "/":
            return E(f"(CAST({a.sql} AS {self.d.types['real']}) / {b.sql})", "real")
        typ = "timespan" if "timespan" in (ta, tb) else ("real" if "real" in (ta, tb) else "long")
        if op == "/" and typ != "real":
            return E(self.fmt(self.d.int_div, a=a.sql, b=b.sql), typ)
        if op == "%":
            return E(self.fmt(self.d.modulo, a=a.sql, b=b.sql), typ)
        return E(f"({a.sql} {op} {b.sql})", typ)

    def in_list(self, node: k.InList, rel: Rel, env: Env) -> E:
        a = self.scalar(node.arg, rel, env)
        if len(node.items) == 1 and isinstance(node.items[0], k.Tabular | k.Name) and (
                isinstance(node.items[0], k.Tabular) or node.items[0].name in env.tables):
            sub = self.tabular(node.items[0], env)
            first = next(iter(sub.cols))
            ci = node.op.endswith("~")
            col = quote(first)
            if node.op in ("has_any", "has_all"):
                raise self.err(f"{node.op} over a table is not supported", node)
            lhs = self.fmt(self.d.lower, a=self.as_string(a).sql) if ci else a.sql
            sub_col = self.fmt(self.d.lower, a=col) if ci else col
            neg = "NOT " if node.op.startswith("!") else ""
            return E(f"({lhs} {neg}IN (SELECT {sub_col} FROM ({sub.sql}) AS {self.alias()}))", "bool")
        values = self.list_values(node.items, rel, env)
        if node.op in ("has_any", "has_all"):
            if not values:
                return E("FALSE" if node.op == "has_any" else "TRUE", "bool")
            tests = [self.string_op("has", a, v, node).sql for v in values]
            return E("(" + (" OR " if node.op == "has_any" else " AND ").join(tests) + ")", "bool")
        if not values:
            return E("FALSE" if not node.op.startswith("!") else "TRUE", "bool")
        ci = node.op.endswith("~")
        if ci:
            lhs = self.fmt(self.d.lower, a=self.as_string(a).sql)
            rhs = [self.fmt(self.d.lower, a=self.as_string(v).sql) for v in values]
        else:
            pairs = [self.unify(a, v) for v in values]
            lhs = pairs[0][0].sql
            rhs = [p[1].sql for p in pairs]
        neg = "NOT " if node.op.startswith("!") else ""
        return E(f"({lhs} {neg}IN ({', '.join(rhs)}))", "bool")

    def list_values(self, items: list[k.Node], rel: Rel, env: Env) -> list[E]:
        out: list[E] = []
        for item in items:
            lit = self._dynamic_literal(item, env)
            if lit is not None:
                for v in (lit if isinstance(lit, list) else [lit]):
                    out.append(self.literal(k.Lit(item.pos, v, _json_type(v))))
                continue
            e = self.scalar(item, rel, env)
            if e.type == "dynamic":
                raise self.err("in (…): a computed list is not supported, list the values", item)
            out.append(e)
        return out

    def _dynamic_literal(self, node: k.Node, env: Env) -> Any:
        if isinstance(node, k.Lit) and node.type == "dynamic":
            return node.value
        if isinstance(node, k.Name) and node.name in env.literals:
            return env.literals[node.name]
        if isinstance(node, k.Call) and node.name == "pack_array":
            vals = [a.value for a in node.args if isinstance(a, k.Lit)]
            if len(vals) == len(node.args):
                return vals
        return None

    def member(self, node: k.Member, rel: Rel, env: Env) -> E:
        keys: list[str | int] = []
        cur: k.Node = node
        while isinstance(cur, k.Member):
            key = cur.key
            if isinstance(key, k.Lit) and key.type == "string":
                keys.append(str(key.value))
            elif isinstance(key, k.Lit) and key.type == "long":
                keys.append(int(key.value))
            else:
                raise self.err("only constant keys and indexes are supported in […]", key)
            cur = cur.base
        keys.reverse()
        base = self.dynamic(self.scalar(cur, rel, env))
        if self.d.name == "duckdb":
            path = self.param(path_duckdb(keys))
        else:
            path = ", ".join(str(x + 1 if x >= 0 else x) if isinstance(x, int) else self.param(x) for x in keys)
        return E(self.fmt(self.d.json_get, a=base.sql, path=path), "dynamic")

    def call(self, node: k.Call, rel: Rel, env: Env) -> E:
        if node.name in env.functions:
            fn = env.functions[node.name]
            inner = self.bind_call(fn, node, env, rel)
            self.bind_lets(fn.body.lets, inner)
            if fn.body.body is None or isinstance(fn.body.body, k.Tabular):
                raise self.err(f"{node.name}() returns a table, not a value", node)
            return self.scalar(fn.body.body, rel, inner)
        name = _FN_ALIASES.get(node.name, node.name)
        fn_impl = _FUNCTIONS.get(name)
        if fn_impl is None:
            if name in _AGGREGATES or name in ("arg_max", "arg_min"):
                raise self.err(f"{node.name}() is an aggregate: use it in summarize", node)
            raise self.err(f"unknown function {node.name!r}", node)
        return fn_impl(self, node, rel, env)

    def args(self, node: k.Call, rel: Rel, env: Env, low: int, high: int | None = None) -> list[E]:
        n = len(node.args)
        if n < low or (high is not None and n > high):
            want = str(low) if high == low else f"{low}–{high}" if high is not None else f"at least {low}"
            raise self.err(f"{node.name}() takes {want} argument(s), got {n}", node)
        return [self.scalar(a, rel, env) for a in node.args]


def _kql_type(name: str | None, node: k.Node, t: Translator) -> str:
    typ = {"string": "string", "long": "long", "int": "int", "real": "real", "double": "real", "decimal": "real",
           "bool": "bool", "boolean": "bool", "datetime": "datetime", "date": "datetime", "timespan": "timespan",
           "time": "timespan", "dynamic": "dynamic", "guid": "string"}.get(name or "")
    if typ is None:
        raise t.err(f"unknown type {name!r}", node)
    return typ


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "long"
    if isinstance(v, float):
        return "real"
    if v is None:
        return "null"
    if isinstance(v, list | dict):
        return "dynamic"
    return "string"


def _auto_name(expr: k.Node, n: int) -> str:
    if isinstance(expr, k.Name):
        return expr.name.split(".", 1)[-1]
    if isinstance(expr, k.Member):
        parts = []
        cur: k.Node = expr
        while isinstance(cur, k.Member):
            key = cur.key
            parts.append(str(key.value) if isinstance(key, k.Lit) else "")
            cur = cur.base
        if isinstance(cur, k.Name):
            parts.append(cur.name)
            return "_".join(reversed(parts))
    return f"Column{n}"


_JOIN_KINDS = {"inner", "innerunique", "leftouter", "rightouter", "fullouter", "leftsemi", "leftanti",
               "rightsemi", "rightanti", "leftantisemi", "rightantisemi"}

OpHandler = Callable[[Translator, k.Op, Rel, Env], Rel]
_OPERATORS: dict[str, OpHandler] = {
    "where": Translator.op_where, "project": Translator.op_project, "extend": Translator.op_extend,
    "project-away": Translator.op_project_away, "project-keep": Translator.op_project_keep,
    "project-rename": Translator.op_project_rename, "project-reorder": Translator.op_project_reorder,
    "summarize": Translator.op_summarize, "sort": Translator.op_sort, "top": Translator.op_top,
    "take": Translator.op_take, "distinct": Translator.op_distinct, "count": Translator.op_count,
    "render": Translator.op_render, "serialize": Translator.op_serialize, "as": Translator.op_as,
    "invoke": Translator.op_invoke, "mv-expand": Translator.op_mv_expand, "parse": Translator.op_parse,
    "union": Translator.op_union, "join": Translator.op_join, "lookup": Translator.op_lookup,
    "search": Translator.op_search,
}

# the functions (scalar and aggregate) live in garrison.edr.hunting.functions and join these registries
ScalarFn = Callable[[Translator, k.Call, Rel, Env], E]
AggregateFn = Callable[[Translator, k.Call, Rel, Env], tuple[E, str]]
_FUNCTIONS: dict[str, ScalarFn] = {}
_AGGREGATES: dict[str, AggregateFn] = {}
_FN_ALIASES: dict[str, str] = {}


def scalar_function(*names: str) -> Callable[[ScalarFn], ScalarFn]:
    def register(fn: ScalarFn) -> ScalarFn:
        for n in names:
            _FUNCTIONS[n] = fn
        return fn
    return register


def aggregate_function(*names: str) -> Callable[[AggregateFn], AggregateFn]:
    def register(fn: AggregateFn) -> AggregateFn:
        for n in names:
            _AGGREGATES[n] = fn
        return fn
    return register


def alias(old: str, new: str) -> None:
    _FN_ALIASES[old] = new
