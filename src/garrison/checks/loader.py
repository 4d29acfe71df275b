"""Load and validate the check definitions (YAML files, one list of checks per file).

The built-in checks ship in ``garrison/checks/data``. Extra directories (site-specific checks)
can be given; a check id may appear only once across all files.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from garrison.checks.schema import CheckDef

BUILTIN_DIR = Path(__file__).with_name("data")
MAX_FILE_BYTES = 4 * 1024 * 1024

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CheckLoadError(ValueError):
    """A check file is unreadable or a check in it is invalid."""


@dataclass(frozen=True)
class CheckSet:
    checks: dict[str, CheckDef]
    version: str  # digest of every file's bytes: the agent reports it, the server compares
    sources: dict[str, str] = field(default_factory=dict)  # check id -> file name

    def __iter__(self) -> Iterator[CheckDef]:
        return iter(self.checks.values())

    def __len__(self) -> int:
        return len(self.checks)

    def __contains__(self, check_id: object) -> bool:
        return check_id in self.checks

    def get(self, check_id: str) -> CheckDef | None:
        return self.checks.get(check_id)


def parse_checks(text: str, source: str = "<string>") -> list[CheckDef]:
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise CheckLoadError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise CheckLoadError(f"{source}: expected a mapping with a 'checks' list")
    out: list[CheckDef] = []
    for i, raw in enumerate(doc["checks"]):
        ident = raw.get("id", f"#{i}") if isinstance(raw, dict) else f"#{i}"
        try:
            out.append(CheckDef.model_validate(raw))
        except ValidationError as exc:
            raise CheckLoadError(f"{source}: check {ident}: {exc}") from exc
    return out


def load_checks(extra_dirs: Sequence[Path | str] = (), *, builtin: bool = True) -> CheckSet:
    """Every check of the built-in set plus the YAML files of ``extra_dirs``."""
    dirs: list[Path] = ([BUILTIN_DIR] if builtin else []) + [Path(d) for d in extra_dirs]
    files: list[Path] = []
    for d in dirs:
        files.extend(sorted(p for p in d.glob("*.y*ml") if p.is_file()))
    digest = hashlib.sha256()
    checks: dict[str, CheckDef] = {}
    sources: dict[str, str] = {}
    for path in files:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CheckLoadError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + data + b"\0")
        for check in parse_checks(data.decode("utf-8"), str(path)):
            if check.id in checks:
                raise CheckLoadError(f"{path}: check id {check.id} already defined in {sources[check.id]}")
            checks[check.id] = check
            sources[check.id] = path.name
    return CheckSet(checks=checks, version=digest.hexdigest()[:16], sources=sources)


@functools.lru_cache(maxsize=1)
def builtin_checks() -> CheckSet:
    """The checks shipped with Garrison, loaded once per process."""
    return load_checks()
