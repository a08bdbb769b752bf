"""Deterministic ledgers for the terminal UI's tests: demo data on a fixed clock and day."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ledger.application import open_ledger
from ledger.demo import run_demo
from ledger.roles import Actor
from projections.runner import Projector
from tui.app import LedgerApp
from tui.service import LedgerService

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TODAY = date(2026, 11, 2)
CURATOR = Actor.parse("curator:cara")


def build_demo(url: str, engagements: int = 40, seed: int = 7) -> None:
    app = open_ledger(url)
    try:
        run_demo(app, engagements, seed, now=NOW, progress=False)
        Projector(app).catch_up()
    finally:
        app.close()


def copy_sqlite(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def make_app(url: str, actor: Actor = CURATOR, live: bool = False) -> LedgerApp:
    service = LedgerService(url, actor)
    service.today = TODAY
    return LedgerApp(service, live=live)


async def settle(pilot: Any, app: LedgerApp) -> None:
    """Lets workers finish and the screen redraw."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()
