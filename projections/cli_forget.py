"""`ledger forget-contractor NAME`: crypto-shreds a contractor's personal text.

The ledger records `ContractorKeyDestroyed` on each of their engagements and deletes their key
(`Engagements.forget_contractor`); then every read model is rebuilt, so no derived row keeps
the text decoded before, and a SQLite file is vacuumed so no freed page keeps it either.
"""

from __future__ import annotations

from typing import Any

import click

from projections.cli import pass_ledger


@click.command("forget-contractor")
@click.argument("name")
@click.option("--reason", required=True, metavar="TEXT",
              help="Why, e.g. the erasure request's reference; recorded on each engagement.")
@click.option("--command-id", default=None, metavar="ID",
              help="Idempotency key: the same id sent twice is recorded once.")
@pass_ledger
def forget_contractor(ledger: Any, name: str, reason: str, command_id: str | None) -> None:
    """Make a contractor's personal text unreadable for ever (encrypted ledgers). Admin only.

    Deletes the contractor's key: their name, interview notes and red flags, evidence
    descriptions and notes then read as "[forgotten 1a2b3c4d]" everywhere (events, snapshots,
    read models, later exports). Money, dates, rules, replay and the audit chain are kept.

    \b
    Example:
      ledger --as admin:ops forget-contractor "Bo Chen" --reason "erasure request 2026-114"
    """
    from ledger.roles import Action, check_permitted
    from projections.cli import progress_bar, read_models
    from projections.contractor_record import match_contractor
    from projections.runner import Projector

    actor = ledger.actor()
    check_permitted(actor, Action.ADMINISTER)
    app = ledger.app()
    name = name.strip()
    models = read_models(ledger)
    spellings = match_contractor(models, name)
    rows = models.query("SELECT engagement_id FROM {contractors} WHERE contractor IN (%s)"
                        % ", ".join("?" * len(spellings)), tuple(spellings))
    from uuid import UUID

    ids = [UUID(row["engagement_id"]) for row in rows]
    recorded = app.forget_contractor(name, actor, reason, ids, command_id)
    with progress_bar("rebuilding the read models") as progress:
        Projector(app).rebuild(progress)
    compact(app)
    click.echo(f"forgot contractor {name!r}: key deleted; {len(recorded)} of {len(ids)} "
               "engagement(s) recorded ContractorKeyDestroyed now; read models rebuilt")


def compact(app: Any) -> None:
    """SQLite keeps dropped rows in free pages and the WAL until they are overwritten."""
    database = app.database
    if database.kind != "sqlite":
        return  # PostgreSQL: the rebuild dropped the tables, and their files with them
    import sqlite3

    conn = sqlite3.connect(database.env["SQLITE_DBNAME"], isolation_level=None,
                           timeout=float(database.env.get("SQLITE_LOCK_TIMEOUT", "30")))
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
