"""The console carries no SQL of its own: its pages call the read queries and actions of the pillars
(``garrison.tvm.queries``, ``garrison.core.administration``, …), which the API calls too. An AST walk
over every module of ``garrison.server.web`` refuses SQLAlchemy statement builders and the session
calls that run them, so a page cannot grow its own query again."""

from __future__ import annotations

import ast
from pathlib import Path

from garrison.server import web

WEB = Path(web.__file__).parent
# Statement builders and SQL functions of SQLAlchemy.
BUILDERS = {"select", "text", "insert", "update", "delete", "exists", "func", "case", "or_", "and_", "not_",
            "literal", "union", "union_all", "aliased", "outerjoin", "join", "true", "false", "null", "cast"}
# Session methods that run SQL (a page gets its rows from a query function instead).
RUNNERS = {"execute", "scalar", "scalars", "query", "get", "merge", "delete", "add", "add_all", "flush",
           "connection"}
SESSION_NAMES = {"s", "session", "db"}
# Modules not yet moved to the read layer (see the report): this list may only shrink.
NOT_YET = {"pages/alerts.py", "pages/devices.py"}


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            names = {a.name for a in node.names}
            if names - {"Session", "ColumnElement"}:  # types for annotations only
                out.append(f"{path.name}:{node.lineno} imports {sorted(names)} from {node.module}")
        elif isinstance(node, ast.Import) and any(a.name.startswith("sqlalchemy") for a in node.names):
            out.append(f"{path.name}:{node.lineno} imports sqlalchemy")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in SESSION_NAMES and node.func.attr in RUNNERS:
                out.append(f"{path.name}:{node.lineno} runs {owner.id}.{node.func.attr}()")
            if isinstance(owner, ast.Name) and owner.id in ("sa", "sqlalchemy"):
                out.append(f"{path.name}:{node.lineno} builds {owner.id}.{node.func.attr}()")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BUILDERS:
            out.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    return out


def _modules() -> list[Path]:
    return sorted(p for p in WEB.rglob("*.py"))


def test_console_modules_contain_no_sql() -> None:
    found = {}
    for path in _modules():
        rel = str(path.relative_to(WEB))
        offences = _offences(path)
        if offences and rel not in NOT_YET:
            found[rel] = offences
    assert not found, "SQL in the console (move it to the pillar's queries): " + "\n".join(
        line for lines in found.values() for line in lines)


def test_the_list_of_modules_not_yet_moved_only_shrinks() -> None:
    clean = [m for m in sorted(NOT_YET) if not _offences(WEB / m)]
    assert not clean, f"no SQL left in {clean}: remove them from NOT_YET"


def test_the_walk_sees_sql() -> None:
    sample = WEB.parent / "api" / "admin.py"  # the API may build statements
    assert _offences(sample), "the AST walk found nothing in a module that has SQL"
