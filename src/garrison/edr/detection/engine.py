"""The streaming detection engine: the rules a stored batch's events can match, evaluated in the same pass.

Rules are grouped per table into *buckets* by what selects their events cheaply (platform, ActionType,
Windows channel). Inside a bucket, each rule's trigger literals (see :mod:`.compiler`) go into one
RE2 *set* per event field: one linear-time scan of a field's lower-cased value finds every literal in
it, and so the few rules worth evaluating. Rules without a trigger are evaluated for every event of
their bucket. A literal RE2 refuses (or that fails the self-check after compiling) moves its rules to
the always-evaluated list: the index only ever saves work, it never drops a rule.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison.edr.detection.logsources import EventView, Getter, event_platform
from garrison.edr.detection.rules import Rule, RuleSet

RE2_MAX_MEM = 256 << 20


@dataclass
class Match:
    rule: Rule
    table: str
    row: Mapping[str, Any]
    source: str = "CustomDetection"  # the alert's detectionSource (CustomerTI for an indicator)


@dataclass
class _FieldIndex:
    getter: Getter
    literals: list[str] = field(default_factory=list)
    owners: list[list[int]] = field(default_factory=list)  # literal index -> rule indexes
    matcher: Any = None


@dataclass
class _Bucket:
    platform: str
    actions: frozenset[str] | None
    channel: str | None
    rules: list[Rule] = field(default_factory=list)
    always: list[int] = field(default_factory=list)
    fields: dict[str, _FieldIndex] = field(default_factory=dict)

    def build(self) -> None:
        import re2

        literal_ids: dict[tuple[str, str], int] = {}
        for i, rule in enumerate(self.rules):
            trigger = rule.compiled.trigger
            if trigger is None:
                self.always.append(i)
                continue
            for key, lit in trigger:
                index = self.fields.get(key)
                if index is None:
                    index = self.fields[key] = _FieldIndex(_getter_of(rule, key))
                lid = literal_ids.get((key, lit))
                if lid is None:
                    lid = literal_ids[(key, lit)] = len(index.literals)
                    index.literals.append(lit)
                    index.owners.append([])
                index.owners[lid].append(i)
        moved: set[int] = set()
        for index in self.fields.values():
            options = re2.Options()
            options.max_mem = RE2_MAX_MEM
            matcher = re2.Set.SearchSet(options)
            bad: list[int] = []
            for lid, lit in enumerate(index.literals):
                try:
                    matcher.Add(re.escape(lit))
                except re2.error:  # a literal RE2 cannot take
                    bad.append(lid)
                    matcher.Add("(?!)")  # keep the numbering
            matcher.Compile()
            for lid, lit in enumerate(index.literals):  # self-check: every literal finds itself
                if lid not in bad and lid not in (matcher.Match(lit) or ()):
                    bad.append(lid)
            for lid in bad:
                moved.update(index.owners[lid])
            index.matcher = matcher
        self.always = sorted(set(self.always) | moved)

    def candidates(self, view: EventView) -> list[int]:
        found: set[int] = set(self.always)
        for key, index in self.fields.items():
            text = view.low(key, index.getter)
            if text:
                for lid in index.matcher.Match(text) or ():
                    found.update(index.owners[lid])
        return sorted(found)


def _getter_of(rule: Rule, key: str) -> Getter:
    name = key.split(".", 1)[1]
    return rule.source.getter(name)


class Detector:
    """Evaluates a ruleset over stored rows, table by table."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        groups: dict[tuple[str, str, frozenset[str] | None, str | None], _Bucket] = {}
        for rule in ruleset.rules:
            src = rule.source
            for table in src.tables:
                key = (table, src.platform, src.actions, src.channel)
                bucket = groups.get(key)
                if bucket is None:
                    bucket = groups[key] = _Bucket(src.platform, src.actions, src.channel)
                bucket.rules.append(rule)
        self._tables: dict[str, list[_Bucket]] = defaultdict(list)
        for (table, *_), bucket in groups.items():
            bucket.build()
            self._tables[table].append(bucket)
        self.evaluated = 0

    def evaluate(self, table: str, rows: Iterable[Mapping[str, Any]]) -> list[Match]:
        buckets = self._tables.get(table)
        if not buckets:
            return []
        out: list[Match] = []
        for row in rows:
            view = EventView(row, table)
            platform = _platform(view)
            action = row.get("ActionType")
            for bucket in buckets:
                if bucket.platform != platform or (bucket.actions is not None and action not in bucket.actions):
                    continue
                if bucket.channel is not None and view.original.get("Channel") != bucket.channel:
                    continue
                for i in bucket.candidates(view):
                    rule = bucket.rules[i]
                    self.evaluated += 1
                    if rule.compiled.predicate(view):
                        out.append(Match(rule, table, row))
        return out

    def evaluate_tables(self, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Match]:
        out: list[Match] = []
        for table, table_rows in rows.items():
            out.extend(self.evaluate(table, table_rows))
        return out


def _platform(view: EventView) -> str:
    raw = view.row.get("AdditionalFields")
    if isinstance(raw, str):  # cheap: a Windows import's original fields always hold its EventID
        return "windows" if '"EventID"' in raw else "linux"
    return event_platform(view)
