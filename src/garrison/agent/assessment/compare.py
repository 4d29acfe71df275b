"""Comparison of an observed configuration value with the expected one."""

from __future__ import annotations

import fnmatch
import re
from typing import Literal

Op = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "le",
    "gt",
    "ge",
    "regex",
    "not_regex",
    "contains_all",
    "contains_none",
    "bits_set",
]
ValueType = Literal["str", "int", "duration", "octal"]
Expected = str | int | list[str | int]

_DURATION = re.compile(r"(\d+)([smhdwSMHDW]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class BadValue(ValueError):
    """The observed value is not of the expected type (e.g. not a number)."""


def parse_duration(text: str) -> int:
    """sshd time format: ``120``, ``2m``, ``1h30m`` -> seconds."""
    text = text.strip()
    if not text:
        raise BadValue("empty duration")
    pos, total = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise BadValue(f"not a duration: {text!r}")
        total += int(m.group(1)) * _UNITS[m.group(2).lower()]
        pos = m.end()
    if pos != len(text):
        raise BadValue(f"not a duration: {text!r}")
    return total


def to_number(text: str | int, kind: ValueType) -> int:
    if isinstance(text, int):
        return text
    s = text.strip().strip("\"'")
    try:
        if kind == "duration":
            return parse_duration(s)
        if kind == "octal":
            return int(s, 8)
        return int(s, 0) if s.lower().startswith(("0x",)) else int(s)
    except ValueError as exc:
        raise BadValue(f"not a number: {text!r}") from exc


def _items(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", text.strip()) if t]


def compare(actual: str, op: Op, expected: Expected, *, kind: ValueType = "str", ci: bool = False) -> bool:
    """True when ``actual`` satisfies ``op expected``. Raises BadValue for a wrong type."""
    norm = (lambda s: str(s).strip().lower()) if ci else (lambda s: str(s).strip())
    expected_list = expected if isinstance(expected, list) else [expected]
    if op in ("lt", "le", "gt", "ge"):
        a = to_number(actual, kind)
        b = to_number(expected if not isinstance(expected, list) else expected[0], kind)
        return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    if op in ("eq", "ne", "in", "not_in"):
        if kind in ("int", "duration", "octal"):
            a_num = to_number(actual, kind)
            hit = any(a_num == to_number(e, kind) for e in expected_list)
        else:
            hit = any(norm(actual) == norm(e) for e in expected_list)
        return hit if op in ("eq", "in") else not hit
    if op in ("regex", "not_regex"):
        flags = re.IGNORECASE if ci else 0
        found = any(re.search(str(e), actual, flags) for e in expected_list)
        return found if op == "regex" else not found
    if op in ("contains_all", "contains_none"):
        have = [norm(i) for i in _items(actual)]

        def present(pattern: str) -> bool:
            return any(fnmatch.fnmatchcase(h, norm(pattern)) for h in have)

        if op == "contains_all":
            return all(present(str(e)) for e in expected_list)
        return not any(present(str(e)) for e in expected_list)
    if op == "bits_set":
        a = to_number(actual, "octal")
        b = to_number(str(expected_list[0]), "octal")
        return a & b == b
    raise ValueError(f"unknown operator {op}")


def describe(op: Op, expected: Expected) -> str:
    words = {
        "eq": "=",
        "ne": "!=",
        "in": "one of",
        "not_in": "none of",
        "lt": "<",
        "le": "<=",
        "gt": ">",
        "ge": ">=",
        "regex": "matching",
        "not_regex": "not matching",
        "contains_all": "containing all of",
        "contains_none": "containing none of",
        "bits_set": "with bits set",
    }
    shown = ", ".join(map(str, expected)) if isinstance(expected, list) else str(expected)
    return f"{words[op]} {shown}"
