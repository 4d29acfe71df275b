"""The layering of docs/architecture.md, kept by import-linter's contracts in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed (pip install '.[test]')"
    r = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "broken" not in r.stdout.lower() or " 0 broken" in r.stdout.lower()


# --- imports import-linter cannot see ------------------------------------------------------------

SRC = ROOT / "src" / "garrison"
DYNAMIC_IMPORT_ALLOWED = {"registry.py"}  # Registry discovery: imports only modules of a package it is given
# Turning a missing [server] dependency into a one-line "install the extra" message is not swallowing it.
IMPORT_ERROR_ALLOWED = {"cli/main.py"}
DYNAMIC = {"import_module", "__import__", "spec_from_file_location", "module_from_spec", "spec_from_loader",
           "find_spec", "load_module", "exec_module", "resolve_name"}


def _calls(tree: object) -> list[tuple[int, str]]:
    import ast

    out = []
    for node in ast.walk(tree):  # type: ignore[arg-type]
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in DYNAMIC:
                out.append((node.lineno, name))
        elif isinstance(node, ast.ImportFrom) and node.module in ("importlib", "importlib.util", "pkgutil"):
            out += [(node.lineno, a.name) for a in node.names if a.name in DYNAMIC]
    return out


def _handlers(tree: object) -> list[int]:
    import ast

    out = []
    for node in ast.walk(tree):  # type: ignore[arg-type]
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                out.append(node.lineno)
    return out


def test_no_import_by_name_dodges_the_contracts() -> None:
    """``importlib.import_module("garrison.x")`` is an import import-linter cannot see: the agent could
    load the server, a layer could reach up. Only the Registry's discovery imports by name."""
    import ast

    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("store/migrations/versions/") or rel in DYNAMIC_IMPORT_ALLOWED:
            continue
        found += [f"{rel}:{line} {name}" for line, name in _calls(ast.parse(path.read_text(), rel))]
    assert not found, "import by name outside garrison.registry: " + ", ".join(found)


def test_no_missing_module_is_swallowed() -> None:
    """A layer that may be missing is a layering mistake, not a try/except: every ``except ImportError``
    / ``ModuleNotFoundError`` in the source is a failure (the agent-only install is proven by
    tests/agent/test_agent_footprint.py, which runs the agent with the server's packages unimportable)."""
    import ast

    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel not in IMPORT_ERROR_ALLOWED:
            found += [f"{rel}:{line}" for line in _handlers(ast.parse(path.read_text(), rel))]
    assert not found, "swallowed import errors: " + ", ".join(found)


def test_the_scanners_see_what_they_must() -> None:
    import ast

    sample = ("import importlib\nfrom importlib import import_module\nimportlib.import_module('garrison.server')\n"
              "__import__('garrison.core')\ntry:\n    import x\nexcept (ValueError, ModuleNotFoundError):\n    pass\n")
    tree = ast.parse(sample)
    assert [n for _, n in _calls(tree)] == ["import_module", "import_module", "__import__"]
    assert _handlers(tree) == [7]
