"""`ledger contractor show` and `ledger alerts` (read models: contractor record, alerts)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Adds the report commands to `ledger`."""
