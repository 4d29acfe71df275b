"""YARA rule packs: versioned data, compiled once, cached by content.

A pack is a directory of ``*.yar``/``*.yara`` sources (one namespace per file) and an optional
``pack.json`` (``{"name": …, "version": …}``). Its identity is the SHA-256 of its sources (names and
bytes), so the same sources always give the same compiled rules and the version reported in device
health (``name@version+digest``) says exactly what runs. Sources are data: ``include`` is refused,
and only sources are accepted — compiled rules are never taken from elsewhere (a compiled YARA file
is bytecode); the agent compiles them itself and caches the result in its own directory.

A source that does not compile is left out and reported (``RulePack.errors``); the others still run.
The externals are LOKI's (``filename``, ``filepath``, ``extension``, ``filetype``, ``owner``), which
signature-base's rules use; the engine sets them per scanned file.

Engine: yara-python (libyara) — docs/protection.md has the measurements against yara-x.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yara

log = logging.getLogger("garrison.agent.protection")

EXTERNALS: dict[str, Any] = {"filename": "", "filepath": "", "extension": "", "filetype": "", "owner": ""}
SUFFIXES = (".yar", ".yara")
MAX_SOURCE_BYTES = 4 << 20  # one rule file
MAX_PACK_FILES = 5000


@dataclass
class RulePack:
    name: str
    declared_version: str
    digest: str  # sha256 of the sources, hex
    rules: yara.Rules
    files: int
    rule_count: int
    errors: dict[str, str] = field(default_factory=dict)  # file → compile error (file left out)

    @property
    def version(self) -> str:
        return f"{self.name}@{self.declared_version}+{self.digest[:12]}"


def _sources(pack_dir: Path) -> dict[str, Path]:
    files = sorted(p for p in pack_dir.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if len(files) > MAX_PACK_FILES:
        raise ValueError(f"{pack_dir}: more than {MAX_PACK_FILES} rule files")
    out: dict[str, Path] = {}
    for p in files:
        if p.stat().st_size > MAX_SOURCE_BYTES:
            raise ValueError(f"{p}: rule file larger than {MAX_SOURCE_BYTES} bytes")
        out[p.stem] = p
    return out


def _digest(sources: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for namespace, path in sources.items():
        data = path.read_bytes()
        h.update(f"{namespace}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _compile(sources: dict[str, Path]) -> tuple[yara.Rules, dict[str, str]]:
    errors: dict[str, str] = {}
    good = dict(sources)
    try:
        return yara.compile(filepaths={ns: str(p) for ns, p in good.items()}, externals=EXTERNALS,
                            includes=False), errors
    except yara.SyntaxError:
        pass
    # One bad file fails the whole compile: find the bad ones alone (the slow path, on errors only).
    for ns, p in sources.items():
        try:
            yara.compile(filepath=str(p), externals=EXTERNALS, includes=False)
        except yara.SyntaxError as exc:
            errors[p.name] = str(exc)[:1000]
            del good[ns]
    return yara.compile(filepaths={ns: str(p) for ns, p in good.items()}, externals=EXTERNALS,
                        includes=False), errors


def load_pack(pack_dir: Path, cache_dir: Path | None = None) -> RulePack:
    """The pack's compiled rules: from ``cache_dir/<digest>.yarc`` when this exact pack was compiled
    before, else compiled now (and cached, 0600 in a 0700 directory)."""
    sources = _sources(pack_dir)
    if not sources:
        raise ValueError(f"{pack_dir}: no rule files ({', '.join(SUFFIXES)})")
    meta: dict[str, Any] = {}
    meta_path = pack_dir / "pack.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8")[:65536])
    name = str(meta.get("name") or pack_dir.name)[:128]
    declared = str(meta.get("version") or "0")[:64]
    digest = _digest(sources)
    errors: dict[str, str] = {}
    cached = cache_dir / f"{digest}.yarc" if cache_dir is not None else None
    errors_file = cache_dir / f"{digest}.errors.json" if cache_dir is not None else None
    rules: yara.Rules | None = None
    if cached is not None and cached.is_file():
        try:
            rules = yara.load(str(cached))
            if errors_file is not None and errors_file.is_file():
                errors = json.loads(errors_file.read_text(encoding="utf-8"))
        except yara.Error as exc:
            log.warning("compiled rule cache %s unreadable (%s): compiling again", cached, exc)
            rules = None
    if rules is None:
        rules, errors = _compile(sources)
        if cache_dir is not None and cached is not None and errors_file is not None:
            cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            rules.save(str(tmp))
            os.chmod(tmp, 0o600)
            os.replace(tmp, cached)
            errors_file.write_text(json.dumps(errors), encoding="utf-8")
    for file, err in errors.items():
        log.warning("rule file %s left out: %s", file, err)
    return RulePack(name=name, declared_version=declared, digest=digest, rules=rules,
                    files=len(sources) - len(errors), rule_count=sum(1 for _ in rules), errors=errors)


def compile_text(source: str, name: str = "inline") -> RulePack:
    """A pack from one source text (tests, the built-in rules)."""
    rules = yara.compile(source=source, externals=EXTERNALS, includes=False)
    return RulePack(name=name, declared_version="0", digest=hashlib.sha256(source.encode()).hexdigest(),
                    rules=rules, files=1, rule_count=sum(1 for _ in rules))
