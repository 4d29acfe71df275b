"""KQL's scalar and aggregate functions, each rendered in the query's dialect (a registry: a function
Garrison supports is one decorated definition here; any other name is refused by name)."""

from __future__ import annotations

import datetime as dt

from garrison.edr.hunting import syntax as k
from garrison.edr.hunting.translate import (
    Const,
    E,
    Env,
    Rel,
    Translator,
    _kql_type,
    aggregate_function,
    alias,
    quote,
    scalar_function,
)

for _old, _new in (("makeset", "make_set"), ("makelist", "make_list"), ("argmax", "arg_max"), ("argmin", "arg_min"),
                   ("parsejson", "parse_json"), ("todynamic", "parse_json"), ("toobject", "parse_json"),
                   ("iif", "iff"), ("tolong", "toint"), ("toreal", "todouble"), ("notempty", "isnotempty"),
                   ("isnotnull", "isnotnull"), ("replace_string", "replace_string"), ("bag_pack", "pack"),
                   ("base64_decodestring", "base64_decode_tostring"), ("make_set_if", "make_set_if"),
                   ("todecimal", "todouble"), ("floor", "bin"), ("strcat_delim", "strcat_delim"),
                   ("array_length", "array_length"), ("hash_sha256", "hash_sha256")):
    alias(_old, _new)


# --- time -------------------------------------------------------------------------------------------------

@scalar_function("ago")
def _ago(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (span,) = t.args(c, rel, env, 1, 1)
    if span.type != "timespan":
        raise t.err("ago() takes a timespan, e.g. ago(7d)", c)
    return E(t.fmt(t.d.add_micros, a=t.param(t.now), n=f"(-{span.sql})"), "datetime")


@scalar_function("now")
def _now(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 0, 1)
    now = E(t.param(t.now), "datetime")
    return E(t.fmt(t.d.add_micros, a=now.sql, n=args[0].sql), "datetime") if args else now


@scalar_function("bin")
def _bin(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    value, size = t.args(c, rel, env, 2, 2)
    if value.type == "datetime" and size.type == "timespan":
        bucket = t.fmt(t.d.int_div, a=t.fmt(t.d.epoch_micros, a=value.sql), b=size.sql)
        return E(t.fmt(t.d.from_micros, a=f"({bucket} * {size.sql})"), "datetime", key=bucket)
    if value.type in ("long", "int", "timespan") and size.type in ("long", "int", "timespan"):
        return E(f"({t.fmt(t.d.int_div, a=value.sql, b=size.sql)} * {size.sql})", value.type)
    if value.type == "real" or size.type == "real":
        return E(f"(floor({value.sql} / {size.sql}) * {size.sql})", "real")
    raise t.err(f"bin() of a {value.type} by a {size.type} is not supported", c)


def _day_start(t: Translator, e: E) -> str:
    day = str(86_400_000_000)
    return t.fmt(t.d.from_micros, a=f"({t.fmt(t.d.int_div, a=t.fmt(t.d.epoch_micros, a=e.sql), b=day)} * {day})")


@scalar_function("startofday")
def _startofday(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(_day_start(t, v), "datetime")


@scalar_function("endofday")
def _endofday(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.add_micros, a=_day_start(t, v), n=str(86_400_000_000 - 1)), "datetime")


@scalar_function("todatetime")
def _todatetime(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return t.convert(v, "datetime")


_UNITS = {"year": None, "quarter": None, "month": None, "week": 604_800_000_000, "day": 86_400_000_000,
          "hour": 3_600_000_000, "minute": 60_000_000, "second": 1_000_000, "millisecond": 1_000,
          "microsecond": 1}


def _unit(t: Translator, c: k.Call) -> int:
    arg = c.args[0]
    name = arg.name if isinstance(arg, k.Name) else str(getattr(arg, "value", "")).strip("'\"")
    micros = _UNITS.get(name.lower().rstrip("s"))
    if micros is None:
        raise t.err(f"{c.name}(): the unit {name!r} is not supported", c)
    return micros


@scalar_function("datetime_add")
def _datetime_add(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) != 3:
        raise t.err("datetime_add() takes a unit, an amount and a datetime", c)
    unit = _unit(t, c)
    amount, value = t.scalar(c.args[1], rel, env), t.scalar(c.args[2], rel, env)
    return E(t.fmt(t.d.add_micros, a=value.sql, n=f"({amount.sql} * {unit})"), "datetime")


@scalar_function("datetime_diff")
def _datetime_diff(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) != 3:
        raise t.err("datetime_diff() takes a unit and two datetimes", c)
    unit = _unit(t, c)
    a, b = t.scalar(c.args[1], rel, env), t.scalar(c.args[2], rel, env)
    ua = t.fmt(t.d.int_div, a=t.fmt(t.d.epoch_micros, a=a.sql), b=str(unit))
    ub = t.fmt(t.d.int_div, a=t.fmt(t.d.epoch_micros, a=b.sql), b=str(unit))
    return E(f"({ua} - {ub})", "long")


@scalar_function("totimespan")
def _totimespan(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    if v.type == "timespan":
        return v
    raise t.err("totimespan() of a non-timespan is not supported", c)


# --- conversions ----------------------------------------------------------------------------------------

def _converter(typ: str) -> None:
    def fn(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
        (v,) = t.args(c, rel, env, 1, 1)
        if typ == "string" and v.type == "null":
            return E("''", "string")
        return t.convert(v, typ)
    scalar_function({"string": "tostring", "long": "toint", "real": "todouble", "bool": "tobool"}[typ])(fn)


for _typ in ("string", "long", "real", "bool"):
    _converter(_typ)


@scalar_function("parse_json")
def _parse_json(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return t.dynamic(v)


@scalar_function("typeof")
def _typeof(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    raise t.err("typeof() is only supported in mv-expand … to typeof(T)", c)


# --- strings ------------------------------------------------------------------------------------------------

@scalar_function("tolower")
def _tolower(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.lower, a=t.as_string(v).sql), "string")


@scalar_function("toupper")
def _toupper(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.upper, a=t.as_string(v).sql), "string")


@scalar_function("strlen")
def _strlen(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.strlen, a=t.as_string(v).sql), "long")


@scalar_function("strcat")
def _strcat(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 1, 64)
    parts = [f"coalesce({t.as_string(a).sql}, '')" for a in args]
    return E(t.fmt(t.d.concat, args=", ".join(parts)) if len(parts) > 1 else parts[0], "string")


@scalar_function("strcat_delim")
def _strcat_delim(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 3, 64)
    delim = t.as_string(args[0]).sql
    parts: list[str] = []
    for a in args[1:]:
        if parts:
            parts.append(delim)
        parts.append(f"coalesce({t.as_string(a).sql}, '')")
    return E(t.fmt(t.d.concat, args=", ".join(parts)), "string")


@scalar_function("substring")
def _substring(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 2, 3)
    s = t.as_string(args[0]).sql
    n = args[2].sql if len(args) == 3 else "1000000000"
    return E(t.fmt(t.d.substring, a=s, start=args[1].sql, n=n), "string")


@scalar_function("indexof")
def _indexof(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    a, b = t.args(c, rel, env, 2, 2)
    return E(t.fmt(t.d.indexof, a=t.as_string(a).sql, b=t.as_string(b).sql), "long")


@scalar_function("replace_string")
def _replace_string(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    a, b, r = t.args(c, rel, env, 3, 3)
    return E(f"replace({t.as_string(a).sql}, {t.as_string(b).sql}, {t.as_string(r).sql})", "string")


@scalar_function("replace", "replace_regex")
def _replace_regex(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 3, 3)
    pattern, repl, text = (args[0], args[1], args[2]) if c.name == "replace" else (args[1], args[2], args[0])
    repl_text = t._constant(repl)
    if repl_text is not None:  # Kusto writes groups \1 (and $1); both engines take \1
        repl = E(t.param(repl_text.replace("$", "\\")), "string")
    return E(t.fmt(t.d.replace_regex, a=t.as_string(text).sql, b=pattern.sql, c=repl.sql), "string")


@scalar_function("trim", "trim_start", "trim_end")
def _trim(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    pattern, text = t.args(c, rel, env, 2, 2)
    p = t._constant(pattern)
    if p is None:
        raise t.err(f"{c.name}(): the pattern must be a constant", c)
    parts = []
    if c.name in ("trim", "trim_start"):
        parts.append(f"^({p})+")
    if c.name in ("trim", "trim_end"):
        parts.append(f"({p})+$")
    return E(t.fmt(t.d.replace_regex, a=t.as_string(text).sql, b=t.param("|".join(parts)), c="''"), "string")


@scalar_function("extract")
def _extract(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) not in (3, 4):
        raise t.err("extract() takes a regex, a group number, a text and optionally typeof(type)", c)
    pattern, group, text = (t.scalar(a, rel, env) for a in c.args[:3])
    if not group.sql.isdigit():
        raise t.err("extract(): the group must be a number", c)
    e = E(t.fmt(t.d.regex_extract, a=t.as_string(text).sql, b=pattern.sql, n=group.sql), "string")
    if len(c.args) == 4:
        typ = _typeof_arg(t, c, c.args[3])
        return e if typ == "string" else t.convert(E(f"nullif({e.sql}, '')", "string"), typ)
    return e


@scalar_function("countof")
def _countof(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 2, 3)
    text, needle = t.as_string(args[0]).sql, t.as_string(args[1]).sql
    if len(args) == 3:
        raise t.err("countof() with a kind is not supported", c)
    strlen = t.d.strlen
    removed = f"replace({text}, {needle}, '')"
    return E(t.fmt(t.d.int_div, a=f"({t.fmt(strlen, a=text)} - {t.fmt(strlen, a=removed)})",
                   b=f"greatest({t.fmt(strlen, a=needle)}, 1)"), "long")


@scalar_function("isempty")
def _isempty(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    if v.type in ("string", "dynamic"):
        return E(f"({v.sql} IS NULL OR {v.sql} = '')", "bool")
    return E(f"({v.sql} IS NULL)", "bool")


@scalar_function("isnotempty")
def _isnotempty(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    if v.type in ("string", "dynamic"):
        return E(f"({v.sql} IS NOT NULL AND {v.sql} <> '')", "bool")
    return E(f"({v.sql} IS NOT NULL)", "bool")


@scalar_function("isnull")
def _isnull(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(f"({v.sql} IS NULL)", "bool")


@scalar_function("isnotnull")
def _isnotnull(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(f"({v.sql} IS NOT NULL)", "bool")


@scalar_function("base64_decode_tostring")
def _b64(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.base64_decode, a=t.as_string(v).sql), "string")


@scalar_function("url_decode", "url_encode")
def _url_code(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    tmpl = t.d.url_decode if c.name == "url_decode" else t.d.url_encode
    return E(t.fmt(tmpl, a=t.as_string(v).sql), "string")


@scalar_function("hash_sha256")
def _sha256(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.sha256, a=t.as_string(v).sql), "string")


# --- logic ---------------------------------------------------------------------------------------------------

@scalar_function("iff")
def _iff(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) != 3:
        raise t.err("iff() takes a condition and two values", c)
    cond = t.boolean(c.args[0], rel, env)
    a, b = t.scalar(c.args[1], rel, env), t.scalar(c.args[2], rel, env)
    a, b = t.unify(a, b)
    return E(f"(CASE WHEN {cond.sql} THEN {a.sql} ELSE {b.sql} END)", a.type if a.type != "null" else b.type)


@scalar_function("case")
def _case(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) < 3 or len(c.args) % 2 == 0:
        raise t.err("case() takes condition/value pairs and an else value", c)
    parts, typ = [], "null"
    for i in range(0, len(c.args) - 1, 2):
        cond = t.boolean(c.args[i], rel, env)
        v = t.scalar(c.args[i + 1], rel, env)
        typ = v.type if typ == "null" else typ
        parts.append(f"WHEN {cond.sql} THEN {v.sql}")
    other = t.scalar(c.args[-1], rel, env)
    return E(f"(CASE {' '.join(parts)} ELSE {other.sql} END)", typ if typ != "null" else other.type)


@scalar_function("coalesce")
def _coalesce(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 1, 64)
    typ = next((a.type for a in args if a.type != "null"), "null")
    parts = [a.sql if typ != "string" else f"nullif({a.sql}, '')" for a in args]
    return E(f"coalesce({', '.join(parts)})", typ)


@scalar_function("not")
def _not(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) != 1:
        raise t.err("not() takes one condition", c)
    return E(f"(NOT {t.boolean(c.args[0], rel, env).sql})", "bool")


@scalar_function("abs")
def _abs(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(f"abs({v.sql})", v.type)


@scalar_function("round")
def _round(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 1, 2)
    return E(f"round({args[0].sql}, {args[1].sql if len(args) > 1 else '0'})", "real")


# --- dynamic ------------------------------------------------------------------------------------------------------

@scalar_function("array_length")
def _array_length(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (v,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.json_array_length, a=t.dynamic(v).sql), "long")


@scalar_function("pack_array")
def _pack_array(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 1, 1000)
    return E(t.fmt(t.d.json_array, args=", ".join(t.dynamic(a).sql for a in args)), "dynamic")


@scalar_function("split")
def _split(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 2, 3)
    e = E(t.fmt(t.d.split, a=t.as_string(args[0]).sql, b=t.as_string(args[1]).sql), "dynamic")
    if len(args) == 3:
        idx = c.args[2]
        if not (isinstance(idx, k.Lit) and idx.type == "long"):
            raise t.err("split(): the index must be a number", c)
        return t.member(k.Member(c.pos, Const(c.pos, e), idx), rel, env)
    return e


def _typeof_arg(t: Translator, c: k.Call, node: k.Node) -> str:
    """The type a ``typeof(T)`` argument names (extract, extractjson)."""
    if isinstance(node, k.Call) and node.name == "typeof" and len(node.args) == 1 and isinstance(node.args[0], k.Name):
        return _kql_type(node.args[0].name, node, t)
    raise t.err(f"{c.name}(): expected typeof(type)", node)


@scalar_function("extractjson", "extract_json")
def _extractjson(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) not in (2, 3):
        raise t.err(f"{c.name}() takes a path, a JSON text and optionally typeof(type)", c)
    typ = _typeof_arg(t, c, c.args[2]) if len(c.args) == 3 else "string"
    path, text = t.scalar(c.args[0], rel, env), t.scalar(c.args[1], rel, env)
    p = t._constant(path)
    if p is None or not p.startswith("$"):
        raise t.err("extractjson(): the path must be a constant like '$.a.b'", c)
    keys: list[str | int] = []
    for part in p[1:].replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            inner = part.strip("[]").strip("'\"")
            keys.append(int(inner) if inner.lstrip("-").isdigit() else inner)
        else:
            keys.append(part)
    node = Const(c.pos, t.dynamic(text))
    m: k.Node = node
    for key in keys:
        m = k.Member(c.pos, m, k.Lit(c.pos, key, "long" if isinstance(key, int) else "string"))
    return t.convert(t.scalar(m, rel, env), typ)


@scalar_function("pack")
def _pack(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    args = t.args(c, rel, env, 2, 64)
    if len(args) % 2:
        raise t.err("pack() takes key/value pairs", c)
    parts: list[str] = []
    for i in range(0, len(args), 2):
        key = t._constant(args[i])
        if key is None:
            raise t.err("pack(): keys must be constants", c)
        parts.append(t.fmt(t.d.concat, args=", ".join([t.param(f'"{key}":' if not parts else f',"{key}":'),
                                                         t.dynamic(args[i + 1]).sql])))
    return E(t.fmt(t.d.concat, args=", ".join([t.param("{"), *parts, t.param("}")])), "dynamic")


@scalar_function("toscalar")
def _toscalar(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) != 1:
        raise t.err("toscalar() takes a tabular expression", c)
    sub = t.tabular(c.args[0], env)
    first, typ = next(iter(sub.cols.items()))
    return E(f"(SELECT {quote(first)} FROM ({sub.sql}) AS {t.alias()} LIMIT 1)", typ)


_URL = (r"^([A-Za-z][A-Za-z0-9+.\-]*)://(?:([^:@/]*)(?::([^@/]*))?@)?([^:/?#]*)(?::([0-9]+))?([^?#]*)"
        r"(?:\?([^#]*))?(?:#(.*))?$")
_URL_PARTS = (("Scheme", 1), ("Host", 4), ("Port", 5), ("Path", 6), ("Username", 2), ("Password", 3),
              ("Query", 7), ("Fragment", 8))


@scalar_function("parse_url")
def _parse_url(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    """Kusto's parse_url: a dynamic object of the URL's parts ("" for a part it lacks)."""
    (url,) = t.args(c, rel, env, 1, 1)
    text, pattern = t.as_string(url).sql, t.param(_URL)
    parts: list[str] = []
    for i, (key, group) in enumerate(_URL_PARTS):
        value = t.fmt(t.d.to_json_string, a=t.fmt(t.d.regex_extract, a=text, b=pattern, n=str(group)))
        parts.extend([t.param(("{" if i == 0 else ",") + f'"{key}":'), value])
    parts.append(t.param("}"))
    return E(t.fmt(t.d.concat, args=", ".join(parts)), "dynamic")


# --- IP addresses -----------------------------------------------------------------------------------------

_PRIVATE_V4 = r"^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.)"


@scalar_function("ipv4_is_private")
def _ipv4_is_private(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    (ip,) = t.args(c, rel, env, 1, 1)
    return E(t.fmt(t.d.regex, a=t.as_string(ip).sql, b=t.param(_PRIVATE_V4)), "bool")


@scalar_function("ipv4_is_in_range")
def _ipv4_is_in_range(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    import ipaddress

    ip, cidr = t.args(c, rel, env, 2, 2)
    text = t._constant(cidr)
    try:
        net = ipaddress.IPv4Network(text or "", strict=False)
    except ValueError:
        raise t.err("ipv4_is_in_range(): the range must be a constant like '10.0.0.0/8'", c) from None
    num = t.fmt(t.d.ipv4_number, a=t.as_string(ip).sql)
    return E(f"({num} BETWEEN {int(net.network_address)} AND {int(net.broadcast_address)})", "bool")


# --- aggregates --------------------------------------------------------------------------------------------------

def _one(t: Translator, c: k.Call, rel: Rel, env: Env) -> E:
    if len(c.args) != 1:
        raise t.err(f"{c.name}() takes one argument", c)
    return t.scalar(c.args[0], rel, env)


def _arg_name(c: k.Call, prefix: str) -> str:
    arg = c.args[0] if c.args else None
    return f"{prefix}_{arg.name}" if isinstance(arg, k.Name) else f"{prefix}_"


@aggregate_function("count")
def _count(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
    if c.args:
        v = _one(t, c, rel, env)
        return E(f"count({v.sql})", "long"), "count_"
    return E("count(*)", "long"), "count_"


@aggregate_function("countif")
def _countif(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
    if len(c.args) != 1:
        raise t.err("countif() takes one condition", c)
    return E(t.fmt(t.d.count_if, a=t.boolean(c.args[0], rel, env).sql), "long"), "countif_"


@aggregate_function("dcount")
def _dcount(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
    v = t.scalar(c.args[0], rel, env) if c.args else None
    if v is None or len(c.args) > 2:
        raise t.err("dcount() takes a column", c)
    return E(t.fmt(t.d.dcount, a=v.sql), "long"), _arg_name(c, "dcount")


@aggregate_function("dcountif")
def _dcountif(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
    if len(c.args) not in (2, 3):
        raise t.err("dcountif() takes a column and a condition", c)
    v, cond = t.scalar(c.args[0], rel, env), t.boolean(c.args[1], rel, env)
    return (E(t.fmt(t.d.dcount, a=f"(CASE WHEN {cond.sql} THEN {v.sql} END)"), "long"),
            _arg_name(c, "dcountif"))


def _simple(sql_name: str, prefix: str, keep_type: bool) -> None:
    def fn(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
        v = _one(t, c, rel, env)
        if v.type == "dynamic":
            v = t.convert(v, "real")
        return E(f"{sql_name}({v.sql})", v.type if keep_type else "real"), _arg_name(c, prefix)
    aggregate_function(prefix)(fn)


_simple("min", "min", True)
_simple("max", "max", True)
_simple("sum", "sum", True)
_simple("avg", "avg", False)


@aggregate_function("any", "take_any")
def _any(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
    if len(c.args) != 1 or isinstance(c.args[0], k.Star):
        raise t.err("any() of one column is supported", c)
    v = t.scalar(c.args[0], rel, env)
    name = c.args[0].name if isinstance(c.args[0], k.Name) else "any_"
    return E(t.fmt(t.d.any, a=v.sql), v.type), name


def _collect(kind: str, conditional: bool) -> None:
    def fn(t: Translator, c: k.Call, rel: Rel, env: Env) -> tuple[E, str]:
        if not c.args:
            raise t.err(f"{c.name}() takes a column", c)
        v = t.scalar(c.args[0], rel, env)
        if v.type == "dynamic":
            v = t.convert(v, "string")
        if conditional:
            if len(c.args) < 2:
                raise t.err(f"{c.name}() takes a column and a condition", c)
            v = E(f"(CASE WHEN {t.boolean(c.args[1], rel, env).sql} THEN {v.sql} END)", v.type)
        tmpl = t.d.make_set if kind == "set" else t.d.make_list
        return E(t.fmt(tmpl, a=v.sql), "dynamic"), _arg_name(c, kind)
    aggregate_function(f"make_{kind}{'_if' if conditional else ''}")(fn)


for _kind in ("set", "list"):
    for _cond in (False, True):
        _collect(_kind, _cond)


__all__ = ["dt"]
