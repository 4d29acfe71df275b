"""The ``garrison`` command, and ``garrison-agent`` (``garrison agent …`` on its own).

Every sub-command lives in a module of :mod:`garrison.cli.commands` that defines a ``COMMANDS``
list of click commands/groups. The top-level group loads a module only when one of its commands is
run (or listed by ``--help``): ``garrison agent run`` imports the agent and nothing of the server,
so an agent installed without the ``[server]`` extra runs, and stays small. ``COMMAND_MODULES``
is the index (tests/cli check it against each module's ``COMMANDS``). Every command takes ``--json``
and prints one JSON document; a user's mistake is one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import sys

import click

from garrison import __version__
from garrison.cli.output import UserError, fail
from garrison.registry import import_module_of

# command name → module of garrison.cli.commands that defines it
COMMAND_MODULES: dict[str, str] = {
    "agent": "agent", "simulate": "agent",
    "server": "server", "worker": "server", "demo": "server",
    "tenant": "admin", "user": "admin", "apikey": "admin", "enrollment": "admin", "db": "admin",
    "inventory": "tvm", "feeds": "tvm",
    "events": "events",
    "rules": "rules",
    "protection": "protection",
}
SERVER_EXTRA_HINT = "this command needs the server: pip install 'garrison[server]'"


class LazyGroup(click.Group):
    """A group whose commands are imported from their module when first needed."""

    def __init__(self, *args: object, modules: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.modules = modules

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.modules)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = self.modules.get(cmd_name)
        if module_name is None:
            return None
        try:
            module = import_module_of("garrison.cli.commands", module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] != "garrison":  # a [server] dependency is not installed
                raise UserError(f"{SERVER_EXTRA_HINT} (missing: {exc.name})") from None
            raise
        for command in module.COMMANDS:
            if command.name == cmd_name:
                return command
        raise LookupError(f"garrison.cli.commands.{module_name} does not define {cmd_name!r}")


@click.group(cls=LazyGroup, modules=COMMAND_MODULES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="garrison")
def cli() -> None:
    """Garrison — self-hosted endpoint security: server, agent and admin commands."""


def _run(group: click.Group, prog: str, argv: list[str] | None) -> None:
    try:
        group.main(args=argv, prog_name=prog, standalone_mode=False)
    except UserError as exc:
        fail(str(exc), exc.as_json)
    except click.exceptions.Abort:
        fail("aborted", False, code=130)
    except click.ClickException as exc:
        fail(exc.format_message(), "--json" in (argv if argv is not None else sys.argv), code=exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    _run(cli, "garrison", argv)


def agent_main(argv: list[str] | None = None) -> None:
    """``garrison-agent run|status|collect``: the agent's commands alone (no server package is imported)."""
    from garrison.cli.commands.agent import agent_group

    _run(agent_group, "garrison-agent", argv)


if __name__ == "__main__":
    main()
