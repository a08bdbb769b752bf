"""`ledger audit export` and `ledger restore`."""

from __future__ import annotations

import click


def register(cli: click.Group, audit: click.Group) -> None:
    """Adds the export and restore commands to `ledger`."""
