"""Sigma rules: read (the shipped SigmaHQ release, a directory, a zip, one YAML text), parsed by pySigma,
compiled once, every rule either runnable or reported with its reason.

The SigmaHQ ruleset ships inside Garrison (``data/sigma-rules.zip``, Detection Rule License 1.1: each
rule keeps its author, shown with every alert it raises; ``data/SIGMA-NOTICE.md``).
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from garrison.edr.detection.compiler import Compiled, NotRunnable, RuleCompiler
from garrison.edr.detection.logsources import NoSource, Source, find_source

SHIPPED = "sigma-rules.zip"
MAX_RULE_BYTES = 4 << 20  # the largest SigmaHQ rule (a list of vulnerable driver hashes) is ~300 KB
MAX_RULES = 20_000
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LEVELS = ("informational", "low", "medium", "high", "critical")


@dataclass
class Rule:
    """A compiled rule with what an alert needs of it."""

    id: str
    title: str
    level: str
    status: str
    author: str
    description: str
    tags: tuple[str, ...]
    references: tuple[str, ...]
    falsepositives: tuple[str, ...]
    path: str
    logsource: tuple[str | None, str | None, str | None]
    source: Source
    compiled: Compiled

    @property
    def techniques(self) -> list[str]:
        """ATT&CK technique ids from the tags (``attack.t1059.001`` → ``T1059.001``)."""
        return sorted({t.split(".", 1)[1].upper() for t in self.tags
                       if t.startswith("attack.t") and t[8:9].isdigit()})

    @property
    def tactics(self) -> list[str]:
        return [t.split(".", 1)[1] for t in self.tags if t.startswith("attack.") and not t[7:8].isdigit()
                and not t.startswith("attack.t") and not t.startswith("attack.g") and not t.startswith("attack.s")]


@dataclass
class Unrunnable:
    id: str
    title: str
    path: str
    reason: str


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    unrunnable: list[Unrunnable] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        reasons: Counter[str] = Counter(u.reason for u in self.unrunnable)
        tables: Counter[str] = Counter(t for r in self.rules for t in r.source.tables)
        return {"total": len(self.rules) + len(self.unrunnable), "compiled": len(self.rules),
                "notRunnable": len(self.unrunnable),
                "indexed": sum(1 for r in self.rules if r.compiled.trigger is not None),
                "byTable": dict(tables.most_common()), "reasons": dict(reasons.most_common()),
                "notRunnableRules": [{"id": u.id, "title": u.title, "path": u.path, "reason": u.reason}
                                     for u in self.unrunnable]}


# --- reading ---------------------------------------------------------------------------------------

def shipped_texts() -> Iterator[tuple[str, str | None]]:
    """``(path, yaml text)`` of every rule in the shipped SigmaHQ release."""
    data = resources.files("garrison.edr.detection").joinpath("data", SHIPPED).read_bytes()
    yield from zip_texts(data)


def zip_texts(data: bytes) -> Iterator[tuple[str, str | None]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a zip archive of rules ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if m.filename.endswith((".yml", ".yaml")) and not m.is_dir()]
        if len(members) > MAX_RULES:
            raise ValueError(f"more than {MAX_RULES} rule files in the archive")
        for m in members:
            yield m.filename, archive.read(m).decode("utf-8", "replace") if m.file_size <= MAX_RULE_BYTES else None


def directory_texts(*roots: str | Path) -> Iterator[tuple[str, str | None]]:
    for root in roots:
        base = Path(root)
        for p in sorted(base.rglob("*.yml")):
            small = p.stat().st_size <= MAX_RULE_BYTES
            yield f"{base.name}/{p.relative_to(base)}", p.read_text("utf-8", "replace") if small else None


def path_texts(paths: Iterable[Path]) -> list[tuple[str, str | None]]:
    """Rules from directories (searched), zip archives and single YAML files."""
    texts: list[tuple[str, str | None]] = []
    for p in paths:
        if p.is_dir():
            texts.extend(directory_texts(p))
        elif p.suffix.lower() == ".zip":
            texts.extend(zip_texts(p.read_bytes()))
        else:
            small = p.stat().st_size <= MAX_RULE_BYTES
            texts.append((str(p), p.read_text("utf-8", "replace") if small else None))
    return texts


@functools.lru_cache(maxsize=4)
def configured(spec: str) -> RuleSet:
    """The ruleset a server runs (its ``detection_rules`` setting): ``shipped``, ``none``, or comma-separated
    paths. Compiled once per process: the rules are immutable once loaded."""
    if spec == "shipped":
        return load(shipped_texts())
    if spec == "none":
        return RuleSet()
    return load(path_texts(Path(part.strip()) for part in spec.split(",") if part.strip()))


# --- compiling -------------------------------------------------------------------------------------

def load(texts: Iterable[tuple[str, str | None]], placeholders: Mapping[str, Iterable[str]] | None = None) -> RuleSet:
    """Parse and compile every rule; a rule that cannot run is kept with its reason."""
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    out = RuleSet()
    for path, text in texts:
        if text is None:
            out.unrunnable.append(Unrunnable("", "", path, f"larger than {MAX_RULE_BYTES} bytes"))
            continue
        try:  # libyaml's loader: pure-Python YAML parsing was 3/4 of the load time of the ruleset
            docs = list(yaml.load_all(text, Loader=_LOADER))
            collection = SigmaCollection.from_dicts(docs, collect_errors=True)
        except (SigmaError, yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:  # not a rule at all
            out.unrunnable.append(Unrunnable("", "", path, f"not a Sigma rule: {str(exc)[:200]}"))
            continue
        of_rules = {str(e) for r in collection.rules for e in r.errors}
        for error in collection.errors:  # errors not already reported with their rule
            if str(error) not in of_rules:
                out.unrunnable.append(Unrunnable("", "", path, f"invalid rule: {str(error)[:200]}"))
        for rule in collection.rules:
            compiled = compile_rule(rule, path, placeholders)
            (out.rules if isinstance(compiled, Rule) else out.unrunnable).append(compiled)  # type: ignore[arg-type]
    return out


def compile_rule(rule: Any, path: str, placeholders: Mapping[str, Iterable[str]] | None = None) -> Rule | Unrunnable:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError

    rule_id = str(rule.id or "")
    title = str(rule.title or "")
    if isinstance(rule, SigmaCorrelationRule):
        return Unrunnable(rule_id, title, path, "correlation rules are not evaluated yet")
    if rule.errors:
        return Unrunnable(rule_id, title, path, f"invalid rule: {str(rule.errors[0])[:200]}")
    ls = rule.logsource
    key = (ls.product, ls.category, ls.service)
    source = find_source(*key)
    if isinstance(source, NoSource):
        return Unrunnable(rule_id, title, path, source.reason)
    try:
        conditions = rule.detection.parsed_condition
        compiler = RuleCompiler(source, placeholders)
        trees = [c.parsed for c in conditions]
        compiled = compiler.compile(trees[0]) if len(trees) == 1 else _any_condition(compiler, trees)
    except NotRunnable as exc:
        return Unrunnable(rule_id, title, path, str(exc))
    except (SigmaError, ValueError, TypeError, RecursionError) as exc:
        return Unrunnable(rule_id, title, path, f"invalid detection: {str(exc)[:200]}")
    author = rule.author or ""
    return Rule(id=rule_id, title=title, level=str(rule.level.name).lower() if rule.level else "medium",
                status=str(rule.status.name).lower() if rule.status else "", author=str(author),
                description=str(rule.description or ""), tags=tuple(str(t) for t in rule.tags or ()),
                references=tuple(str(r) for r in rule.references or ()),
                falsepositives=tuple(str(f) for f in rule.falsepositives or ()), path=path,
                logsource=key, source=source, compiled=compiled)


def _any_condition(compiler: RuleCompiler, trees: list[Any]) -> Compiled:
    """A rule with several conditions (a list) matches when any of them does."""
    from sigma.conditions import ConditionOR

    return compiler.compile(ConditionOR(args=trees))
