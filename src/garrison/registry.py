"""One registry for every plugin kind: ``Registry[T]``, name → plugin.

A plugin joins its registry by existing: a registry made with ``package=`` imports every module of
that package the first time it is read (discovery), and each module registers what it defines. So
adding a version scheme, a collector, an agent action, a job or a console page is adding one file.

What every registry gives:

* ``register`` / ``add``: a second plugin under a taken name is an error (:class:`DuplicatePlugin`)
  that names the kind, the name and both plugins — never a silent replacement;
* lookup (``registry[name]``): an unknown name is :class:`UnknownPlugin` (a ``KeyError`` and a
  ``ValueError``), naming the kind and the names known;
* iteration in a stable order: by ``order(plugin)`` then name when the registry has an ``order``,
  else by name — never by the accident of import order.

This module is the bottom layer (``pyproject.toml``'s import-linter contract): the agent and the
server both build on it, and it imports nothing of Garrison. It is also the only place that imports
modules by name (``tests/test_layers.py`` scans for any other), so import-linter sees every other import.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
P = TypeVar("P")

__all__ = ["DuplicatePlugin", "Registry", "UnknownPlugin", "import_module_of", "import_modules", "modules_named"]


class DuplicatePlugin(ValueError):
    """Two plugins of one kind under one name."""


class UnknownPlugin(KeyError, ValueError):
    """No plugin of that kind under that name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


def import_modules(package: str, on_error: Callable[[str, Exception], None] | None = None) -> list[ModuleType]:
    """Import every module of ``package`` (a sub-package by its ``__init__``), in name order.

    ``on_error(short name, exception)``: a module that fails to import is reported and the others are
    still imported (the agent: one broken collector must not take the others down); without it the
    error propagates."""
    pkg = importlib.import_module(package)
    out: list[ModuleType] = []
    for m in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda m: m.name):
        try:
            out.append(importlib.import_module(f"{package}.{m.name}"))
        except Exception as exc:
            if on_error is None:
                raise
            on_error(m.name, exc)
    return out


def import_module_of(package: str, name: str) -> ModuleType:
    """Import one module of ``package`` by its short name (lazy discovery: the command line loads a
    command's module only when that command runs)."""
    if not name.isidentifier():
        raise ValueError(f"not a module name: {name!r}")
    return importlib.import_module(f"{package}.{name}")


def modules_named(root: str, name: str, under: tuple[str, ...]) -> list[ModuleType]:
    """Import every module called ``name`` in the packages ``under`` of ``root`` (at any depth), found
    on disk without importing the packages that hold none; in name order."""
    base = importlib.import_module(root)
    found: list[str] = []

    def walk(path: Path, prefix: str) -> None:
        for m in sorted(pkgutil.iter_modules([str(path)]), key=lambda m: m.name):
            if m.name == name:
                found.append(f"{prefix}.{m.name}")
            if m.ispkg and not m.name.startswith("_"):
                walk(path / m.name, f"{prefix}.{m.name}")

    for pkg_path in getattr(base, "__path__", []):
        for sub in under:
            if (Path(pkg_path) / sub / "__init__.py").exists():
                walk(Path(pkg_path) / sub, f"{root}.{sub}")
    return [importlib.import_module(q) for q in found]


class Registry(Mapping[str, T], Generic[T]):
    """Plugins of one ``kind`` by name.

    ``name_of`` gives a plugin's own name (``register`` then needs no name); ``package`` is discovered
    (its modules imported) before the first read; ``order`` sorts iteration (ties by name);
    ``unknown`` makes the error of an unknown name (default :class:`UnknownPlugin`);
    ``isolate_failures``: a module of the package that fails to import is recorded in ``failures``
    and the others still register (else the import error propagates).
    """

    def __init__(self, kind: str, *, package: str | None = None, name_of: Callable[[Any], str] | None = None,
                 order: Callable[[T], Any] | None = None,
                 unknown: Callable[[str], Exception] | None = None, isolate_failures: bool = False) -> None:
        self.kind, self.package, self._name_of, self._order = kind, package, name_of, order
        self.isolate_failures = isolate_failures
        self.failures: dict[str, str] = {}  # module → why it did not import (``isolate_failures`` only)
        self._unknown = unknown
        self._plugins: dict[str, T] = {}
        self._discovered = package is None
        self._lock = threading.RLock()

    # --- adding -------------------------------------------------------------------------------
    def add(self, name: str, plugin: T, *, discover: bool = True) -> T:
        """Register ``plugin`` under ``name``; a name already taken is an error (even by the same plugin).

        The package is discovered first, so a plugin added from elsewhere (a test, another package)
        meets the discovered ones here and a clash is this call's error, not a later discovery's.
        ``discover=False``: for a plugin the registry's own module adds while it is being imported."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a name (got {name!r} for {plugin!r})")
        if discover:
            self.discover()
        with self._lock:
            old = self._plugins.get(name)
            if old is not None:
                raise DuplicatePlugin(f"{self.kind} {name!r} is registered twice: {old!r} and {plugin!r}")
            self._plugins[name] = plugin
        return plugin

    def register(self, plugin: P) -> P:
        """Decorator: register ``plugin`` under its own name (``name_of``)."""
        if self._name_of is None:
            raise TypeError(f"the {self.kind} registry needs a name: use add(name, plugin)")
        self.add(self._name_of(plugin), plugin)  # type: ignore[arg-type]
        return plugin

    def remove(self, name: str) -> T:
        """Take a plugin out (tests that add one of their own)."""
        with self._lock:
            return self._plugins.pop(name)

    # --- reading ------------------------------------------------------------------------------
    def discover(self) -> None:
        """Import the package's modules once (each registers its plugins)."""
        if self._discovered:
            return
        with self._lock:
            if self._discovered:
                return
            self._discovered = True  # set first: a module that reads the registry while importing sees a partial one
            try:
                import_modules(self.package or "", self._failed if self.isolate_failures else None)
            except BaseException:
                self._discovered = False
                raise

    def _failed(self, module: str, exc: Exception) -> None:
        self.failures[module] = f"import failed: {type(exc).__name__}: {exc}"

    def __getitem__(self, name: str) -> T:
        self.discover()
        try:
            return self._plugins[name]
        except (KeyError, TypeError):
            msg = f"unknown {self.kind} {str(name)[:80]!r}; known: {', '.join(self) or '(none)'}"
            raise (self._unknown(msg) if self._unknown else UnknownPlugin(msg)) from None

    def get(self, name: str, default: Any = None) -> Any:
        self.discover()
        return self._plugins.get(name, default)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._plugins

    def __iter__(self) -> Iterator[str]:
        self.discover()
        with self._lock:
            items = list(self._plugins.items())
        if self._order is None:
            return iter(sorted(name for name, _ in items))
        order = self._order
        return iter(name for name, _ in sorted(items, key=lambda kv: (order(kv[1]), kv[0])))

    def __len__(self) -> int:
        self.discover()
        return len(self._plugins)

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {', '.join(self._plugins)}>"
