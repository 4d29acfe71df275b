"""The ``garrison`` command.

Every sub-command lives in a module of :mod:`garrison.cli.commands` that defines a
``COMMANDS`` list of click commands/groups; they are all attached here. Every command
takes ``--json`` and prints one JSON document; a user's mistake is one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from garrison import __version__
from garrison.cli import commands
from garrison.cli.output import UserError, fail


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="garrison")
def cli() -> None:
    """Garrison — self-hosted endpoint security: server, agent and admin commands."""


def _load_commands() -> None:
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)


_load_commands()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="garrison", standalone_mode=False)
    except UserError as exc:
        fail(str(exc), exc.as_json)
    except click.exceptions.Abort:
        fail("aborted", False, code=130)
    except click.ClickException as exc:
        fail(exc.format_message(), "--json" in (argv if argv is not None else sys.argv), code=exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
