"""`ledger restore FILE.jsonl --db NEW_URL`: a full JSONL export is also a backup."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import click

from projections.cli import pass_ledger


@click.command("restore")
@click.argument("path", metavar="FILE.jsonl", type=click.Path(dir_okay=False))
@click.option("--db", "db", default=None, metavar="NEW_URL",
              help="The new, empty database to rebuild (sqlite:///… or postgresql://…); "
                   "defaults to the global --db.")
@pass_ledger
def restore(ledger: Any, path: str, db: str | None) -> None:
    """Rebuild a new database from a full JSONL export, checking every hash on the way.

    The file is checked completely before anything is written; the target must hold no
    events. Afterwards the restored database verifies against the export's digest.

    \b
    Example:
      ledger --as admin:ops audit export --format jsonl --output trail.jsonl
      ledger --as admin:ops restore trail.jsonl --db sqlite:///restored.db
    """
    from ledger.roles import Action, check_permitted
    from projections.cli import progress_bar
    from projections.restore import restore as restore_from

    actor = ledger.actor()
    check_permitted(actor, Action.ADMINISTER)
    if db is not None:
        ledger.db = db
    app = ledger.app()
    stages: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in stages:  # one bar per stage: checking, writing, read models
            for stack in stages.values():
                stack.close()
            stack = ExitStack()
            stages[stage] = stack
            stack.update = stack.enter_context(progress_bar(stage))  # type: ignore[attr-defined]
        if total:
            stages[stage].update(done, total)

    try:
        result = restore_from(path, app, actor, progress)
    finally:
        for stack in stages.values():
            stack.close()
    click.echo(f"restored {result.events} events of {result.engagements} engagements; "
               f"audit digest {result.digest}")
