"""`ledger tui`, added to the command line through the plugin entry point."""

from __future__ import annotations

from typing import Any

import click


def register(cli: click.Group) -> None:
    cli.add_command(tui)


@click.command()
@click.pass_obj
def tui(ledger: Any) -> None:
    """Open the curator's terminal UI on the configured database.

    \b
    Example:
      ledger --as curator:cara tui
    """
    from ledger.roles import Action, check_permitted
    from tui.app import run

    actor = ledger.actor()
    check_permitted(actor, Action.READ)
    run(ledger.db, actor)
