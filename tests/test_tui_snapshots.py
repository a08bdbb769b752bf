"""Snapshot tests of the main screens on deterministic demo data (fixed clock, fixed day).

Update after an intended change of the look: `python -m pytest tests/test_tui_snapshots.py
--snapshot-update -n 0`, then look at the SVGs under tests/__snapshots__/ before committing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tui_helpers import build_demo, copy_sqlite, make_app, settle

SIZE = (120, 36)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshots") / "template.db"
    build_demo(f"sqlite:///{path}", engagements=30, seed=11)
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> str:
    return copy_sqlite(template, tmp_path / "ledger.db")


async def _settled(pilot: Any) -> None:
    await settle(pilot, pilot.app)


def _first_with_dispute(pilot: Any) -> tuple[str, str]:
    service = pilot.app.service
    rows, _ = service.engagements(limit=100)
    for row in rows:
        if row["open_disputes"]:
            state = service.engagement(row["id"])
            return row["id"], next(d["id"] for d in state["disputes"] if d["status"] == "open")
    raise AssertionError("the demo has no open dispute")


def test_dashboard(snap_compare: Any, db: str) -> None:
    assert snap_compare(make_app(db), terminal_size=SIZE, run_before=_settled)


def test_engagement(snap_compare: Any, db: str) -> None:
    async def open_milestones(pilot: Any) -> None:
        await settle(pilot, pilot.app)
        await pilot.press("enter")
        await settle(pilot, pilot.app)
        pilot.app.screen.query_one("#tabs").active = "milestones"
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(db), terminal_size=SIZE, run_before=open_milestones)


def test_replay(snap_compare: Any, db: str) -> None:
    async def replay(pilot: Any) -> None:
        await settle(pilot, pilot.app)
        pilot.app.open_replay(pilot.app.screen.row_ids[0])
        await settle(pilot, pilot.app)
        await pilot.press("left", "left")
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(db), terminal_size=SIZE, run_before=replay)


def test_dispute(snap_compare: Any, db: str) -> None:
    async def dispute(pilot: Any) -> None:
        await settle(pilot, pilot.app)
        pilot.app.open_dispute(*_first_with_dispute(pilot))
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(db), terminal_size=SIZE, run_before=dispute)


@pytest.mark.parametrize("size", [(80, 24), SIZE], ids=["80x24", "120x36"])
def test_contractor(snap_compare: Any, db: str, size: tuple[int, int]) -> None:
    async def contractor(pilot: Any) -> None:
        await settle(pilot, pilot.app)
        rows, _ = pilot.app.service.engagements(limit=100)
        names = [row["contractor"] for row in rows]
        pilot.app.open_contractor(max(names, key=names.count))  # the longest record
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(db), terminal_size=size, run_before=contractor)
