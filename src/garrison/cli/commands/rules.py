"""``garrison rules status``: how many detection rules compile, and why each of the others cannot run."""

from __future__ import annotations

from pathlib import Path

import click

from garrison.cli.output import UserError, console, emit, json_option, table


@click.group("rules")
def rules_group() -> None:
    """Detection rules (Sigma): the shipped SigmaHQ ruleset and its status."""


@rules_group.command("status")
@click.option("--rules", "paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Rule directories or zip archives to check instead of the shipped SigmaHQ ruleset.")
@click.option("--all", "show_all", is_flag=True, help="List every rule that cannot run (default: the reasons).")
@json_option
def rules_status(paths: tuple[Path, ...], show_all: bool, as_json: bool) -> None:
    """Compile every rule: counts of rules compiled and not runnable, each unrunnable one with its reason."""
    from garrison.edr.detection import rules

    try:
        ruleset = rules.load(rules.path_texts(paths) if paths else rules.shipped_texts())
    except (ValueError, OSError) as exc:  # a zip that is not one, an unreadable file
        raise UserError(str(exc), as_json=as_json) from None
    status = ruleset.status()

    def human() -> None:
        console.print(f"{status['total']} rules: [green]{status['compiled']} compiled[/green] "
                      f"({status['indexed']} indexed by literal), "
                      f"[yellow]{status['notRunnable']} not runnable[/yellow]", highlight=False)
        table("Compiled rules by table", ["table", "rules"], list(status["byTable"].items()))
        if show_all:
            table("Not runnable", ["rule", "title", "reason"],
                  [(u["path"], u["title"], u["reason"]) for u in status["notRunnableRules"]])
        else:
            table("Not runnable, by reason", ["reason", "rules"], list(status["reasons"].items()))

    emit(status, as_json, human=human)


COMMANDS = [rules_group]
