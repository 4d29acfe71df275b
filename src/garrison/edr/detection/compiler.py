"""A Sigma rule compiled once into a Python predicate over one event (:class:`EventView`).

pySigma parses the rule and applies its modifiers (the value types it leaves are what a backend
converts: :class:`SigmaString` with wildcards, :class:`SigmaExpansion` from windash/base64offset,
:class:`SigmaRegularExpression`, :class:`SigmaCIDRExpression`, :class:`SigmaCompareExpression`,
:class:`SigmaFieldReference`, :class:`SigmaExists`, :class:`SigmaCasedString`, placeholders from
``expand``…). This module is the evaluating backend: every value type becomes a closure, every
condition node a loop over its children. Strings match case-insensitively (Sigma's default; ``cased``
excepted) on values lower-cased once per event.

Besides the predicate, each rule gets its *trigger*: a set of ``(field, literal)`` of which at least
one must occur (as a substring, lower-cased) in an event the rule matches. The engine finds the
rules worth evaluating for an event by multi-pattern search over its fields (:mod:`.engine`).
A rule without a trigger (a NOT at the top, a regex only…) is evaluated for every event of its table.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from garrison.edr.detection.logsources import EventView, Getter, Source

Predicate = Callable[[EventView], bool]
Trigger = frozenset[tuple[str, str]]  # (field key, lower-cased literal)


class NotRunnable(Exception):
    """The rule cannot be evaluated; the message says why (shown by ``garrison rules status``)."""


@dataclass
class Compiled:
    predicate: Predicate
    trigger: Trigger | None  # None: evaluate for every event of the rule's tables
    fields: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Node:
    pred: Predicate
    trigger: Trigger | None


class RuleCompiler:
    """Compiles the condition tree of one rule against one :class:`Source`."""

    def __init__(self, source: Source, placeholders: Mapping[str, Iterable[str]] | None = None) -> None:
        self.source = source
        self.placeholders = {k: list(v) for k, v in (placeholders or {}).items()}
        self.fields: set[str] = set()

    def compile(self, tree: Any) -> Compiled:
        node = self._node(tree)
        return Compiled(node.pred, node.trigger, self.fields)

    # --- fields ----------------------------------------------------------------------------------

    def _field(self, name: str) -> tuple[str, Getter]:
        self.fields.add(name)
        key = f"{id(self.source.fields)}.{name}" if name in self.source.fields else f"orig.{name}"
        return key, self.source.getter(name)

    # --- condition tree ----------------------------------------------------------------------------

    def _node(self, item: Any) -> _Node:
        if isinstance(item, ConditionAND):
            return _and([self._node(a) for a in item.args])
        if isinstance(item, ConditionOR):
            return _or([self._node(a) for a in item.args])
        if isinstance(item, ConditionNOT):
            inner = self._node(item.args[0]).pred
            return _Node(lambda v: not inner(v), None)
        if isinstance(item, ConditionFieldEqualsValueExpression):
            key, getter = self._field(item.field)
            return self._value(key, getter, item.value)
        if isinstance(item, ConditionValueExpression):
            return self._keyword(item.value)
        raise NotRunnable(f"unsupported condition element {type(item).__name__}")

    # --- values ------------------------------------------------------------------------------------

    def _value(self, key: str, get: Getter, value: Any) -> _Node:
        if isinstance(value, SigmaExpansion):
            return _or([self._value(key, get, v) for v in value.values])
        if isinstance(value, SigmaString):
            strings = self._resolve(value)
            if len(strings) != 1:
                return _or([self._string(key, get, s) for s in strings])
            return self._string(key, get, strings[0])
        if isinstance(value, SigmaNumber | SigmaBool):
            text = _plain_text(value)
            return _Node(lambda v: v.low(key, get) == text, frozenset({(key, text)}))
        if isinstance(value, SigmaNull):
            return _Node(lambda v: get(v) in (None, ""), None)
        if isinstance(value, SigmaExists):
            want = bool(value.exists)
            return _Node(lambda v: (get(v) not in (None, "")) is want, None)
        if isinstance(value, SigmaRegularExpression):
            return _Node(_regex(get, value), None)
        if isinstance(value, SigmaCIDRExpression):
            return _Node(_cidr(get, value.network), None)
        if isinstance(value, SigmaCompareExpression):
            return _Node(_compare(get, value), None)
        if isinstance(value, SigmaFieldReference):
            other_key, other = self._field(value.field)
            return _Node(_fieldref(key, get, other_key, other, value), None)
        raise NotRunnable(f"unsupported value type {type(value).__name__} for field {key.split('.', 1)[1]}")

    def _resolve(self, s: SigmaString) -> list[SigmaString]:
        """``expand``: a placeholder becomes each of its configured values (an unknown one: not runnable)."""
        if not s.contains_placeholder():
            return [s]
        out = [s]
        for part in s.s:
            if isinstance(part, Placeholder):
                values = self.placeholders.get(part.name)
                if not values:
                    raise NotRunnable(f"placeholder %{part.name}% has no configured values")
                name = part.name
                out = [_replace(x, name, val) for x in out for val in values]
        return out

    def _string(self, key: str, get: Getter, s: SigmaString) -> _Node:
        cased = isinstance(s, SigmaCasedString)
        parts = list(s.s)
        literal = _longest_literal(parts)
        trigger = frozenset({(key, literal.lower())}) if literal and not cased else None
        return _Node(_string_matcher(key, get, parts, cased), trigger)

    def _keyword(self, value: Any) -> _Node:
        """A keyword (no field) matches any text of the event: its columns and its original fields."""
        if isinstance(value, SigmaExpansion):
            return _or([self._keyword(v) for v in value.values])
        if not isinstance(value, SigmaString):
            raise NotRunnable(f"unsupported keyword value type {type(value).__name__}")
        parts = list(value.s)
        if not parts or parts[0] != SpecialChars.WILDCARD_MULTI:
            parts.insert(0, SpecialChars.WILDCARD_MULTI)
        if parts[-1] != SpecialChars.WILDCARD_MULTI:
            parts.append(SpecialChars.WILDCARD_MULTI)
        cased = isinstance(value, SigmaCasedString)
        matchers = _string_matcher("", lambda v: None, parts, cased, raw=True)

        def any_text(v: EventView) -> bool:
            for text in v.row.values():
                if isinstance(text, str) and matchers(text):
                    return True
            return False
        return _Node(any_text, None)


# --- helpers ---------------------------------------------------------------------------------------

def _and(nodes: list[_Node]) -> _Node:
    preds = [n.pred for n in nodes]
    triggers = [n.trigger for n in nodes if n.trigger is not None]
    best = min(triggers, key=_cost) if triggers else None
    if len(preds) == 1:
        return _Node(preds[0], best)

    def all_of(v: EventView) -> bool:
        for p in preds:
            if not p(v):
                return False
        return True
    return _Node(all_of, best)


def _or(nodes: list[_Node]) -> _Node:
    preds = [n.pred for n in nodes]
    trigger: Trigger | None = None
    if nodes and all(n.trigger is not None for n in nodes):
        trigger = frozenset().union(*(n.trigger for n in nodes if n.trigger is not None))
    if len(preds) == 1:
        return _Node(preds[0], trigger)

    def any_of(v: EventView) -> bool:
        for p in preds:
            if p(v):
                return True
        return False
    return _Node(any_of, trigger)


def _cost(trigger: Trigger) -> float:
    """How often a trigger fires on ordinary events, roughly: short literals match nearly everything."""
    return sum(1.0 / max(len(lit), 1) ** 2 for _, lit in trigger)


def _plain_text(value: SigmaNumber | SigmaBool) -> str:
    if isinstance(value, SigmaBool):
        return "true" if value.boolean else "false"
    return str(value.number).lower()


def _replace(s: SigmaString, name: str, value: str) -> SigmaString:
    out = SigmaCasedString.__new__(SigmaCasedString) if isinstance(s, SigmaCasedString) else SigmaString()
    out.s = [p for part in s.s for p in (
        SigmaString(value).s if isinstance(part, Placeholder) and part.name == name else (part,))]
    out.original = s.original
    return out


def _longest_literal(parts: list[Any]) -> str:
    return max((p for p in parts if isinstance(p, str)), key=len, default="")


def _string_matcher(key: str, get: Getter, parts: list[Any], cased: bool, raw: bool = False) -> Callable[[Any], bool]:
    """Equality, prefix, suffix, substring or (other wildcards) an anchored regex over the value."""
    if any(not isinstance(p, str | SpecialChars) for p in parts):
        raise NotRunnable("string with an unresolved placeholder")
    star, one = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE
    lead = bool(parts) and parts[0] == star
    trail = len(parts) > (1 if lead else 0) and parts[-1] == star
    inner = parts[(1 if lead else 0):(len(parts) - 1 if trail else len(parts))]
    text_of: Callable[[Any], str | None]
    if raw:  # keyword search: the caller passes the text
        text_of = (lambda t: t) if cased else (lambda t: t.lower())
    elif cased:
        def text_of(v: Any) -> str | None:
            x = get(v)
            return None if x is None else str(x)
    else:
        text_of = lambda v: v.low(key, get)
    if all(isinstance(p, str) for p in inner):
        lit = "".join(inner)
        lit = lit if cased else lit.lower()
        test: Callable[[str], bool]
        if lead and trail:
            test = (lambda t: lit in t) if lit else (lambda t: True)
        elif lead:
            test = lambda t: t.endswith(lit)
        elif trail:
            test = lambda t: t.startswith(lit)
        else:
            test = lit.__eq__
    else:
        pattern = "".join(".*" if p == star else "." if p == one else re.escape(p if cased else p.lower())
                          for p in parts)
        test = re.compile(pattern, re.DOTALL).fullmatch  # type: ignore[assignment]

    def match(v: Any) -> bool:
        t = text_of(v)
        return t is not None and bool(test(t))
    return match


_FLAGS = {SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE, SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
          SigmaRegularExpressionFlag.DOTALL: re.DOTALL}


def _regex(get: Getter, value: SigmaRegularExpression) -> Predicate:
    flags = 0
    for f in value.flags:
        flags |= _FLAGS[f]
    try:
        search = re.compile(value.regexp.to_plain(), flags).search
    except re.error as exc:
        raise NotRunnable(f"regular expression not valid in Python: {exc}") from None

    def match(v: EventView) -> bool:
        x = get(v)
        return x is not None and search(x if isinstance(x, str) else str(x)) is not None
    return match


def _cidr(get: Getter, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Predicate:
    def match(v: EventView) -> bool:
        x = get(v)
        if not x:
            return False
        try:
            return ipaddress.ip_address(str(x).strip("[]").split("%", 1)[0]) in network
        except ValueError:
            return False
    return match


_COMPARE = {CompareOperators.LT: operator.lt, CompareOperators.LTE: operator.le,
            CompareOperators.GT: operator.gt, CompareOperators.GTE: operator.ge}


def _compare(get: Getter, value: SigmaCompareExpression) -> Predicate:
    op, number = _COMPARE[value.op], value.number.number

    def match(v: EventView) -> bool:
        x = get(v)
        if x is None or isinstance(x, bool):
            return False
        try:
            n = x if isinstance(x, int | float) else float(str(x).strip())
        except ValueError:
            return False
        return bool(op(n, number))
    return match


def _fieldref(key: str, get: Getter, other_key: str, other: Getter, value: SigmaFieldReference) -> Predicate:
    def match(v: EventView) -> bool:
        a, b = v.low(key, get), v.low(other_key, other)
        if a is None or b is None:
            return False
        if value.starts_with:
            return a.startswith(b)
        if value.ends_with:
            return a.endswith(b)
        return a == b
    return match
