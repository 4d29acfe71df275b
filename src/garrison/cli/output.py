"""Output helpers shared by all commands: one JSON document with --json, rich tables otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class UserError(Exception):
    """A mistake a user can make: printed as one line, exit code 2 (or ``code``)."""

    def __init__(self, message: str, *, as_json: bool = False, code: int = 2) -> None:
        super().__init__(message)
        self.as_json = as_json
        self.code = code


def fail(message: str, as_json: bool, code: int = 2) -> NoReturn:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        # one line, never wrapped: scripts grep it
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def emit(data: Any, as_json: bool, *, human: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON, or call ``human`` to render it for people."""
    if as_json or human is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)
