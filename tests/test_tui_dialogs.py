"""The contractor screen and the audit dialogs driven with Pilot: the record from the dashboard,
from an engagement and after opening an engagement for a known contractor; an unknown name's
"did you mean"; the export in every format, checked against the audit trail; an invalid range
refused inline; verify intact, and failing on an event changed behind the ledger's back."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Region
from textual.widgets import DataTable, Input, OptionList, ProgressBar, RadioButton, Static

from tests.tui_helpers import build_demo, copy_sqlite, make_app, settle
from tui.app import LedgerApp
from tui.contractor_screen import ContractorScreen
from tui.dashboard import DashboardScreen
from tui.engagement_screen import EngagementScreen
from tui.export_dialog import ExportDialog, VerifyDialog

SIZE = (120, 36)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dialogs") / "template.db"
    build_demo(f"sqlite:///{path}")
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> str:
    return copy_sqlite(template, tmp_path / "ledger.db")


def text_of(screen: Any, selector: str) -> str:
    """What a Static shows, as plain lines (it may hold a Rich table)."""
    widget = screen.query_one(selector, Static)
    lines = widget.render_lines(Region(0, 0, *widget.outer_size))
    return "\n".join(line.text.rstrip() for line in lines).strip()


def row_keys(screen: Any, selector: str) -> list[str]:
    table = screen.query_one(selector, DataTable)
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def busiest_contractor(app: LedgerApp) -> str:
    """A contractor with more than one engagement in the demo."""
    rows, _ = app.service.engagements(limit=100)
    names = [row["contractor"] for row in rows]
    return max(names, key=names.count)


# The contractor screen ------------------------------------------------------------------


async def test_the_contractor_screen_opens_from_the_dashboard_with_the_whole_record(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        name = dashboard.rows_by_id[dashboard.row_ids[0]]["contractor"]
        await pilot.press("c")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ContractorScreen)
        record = app.service.contractor(name)
        assert screen.row_ids == [row["id"] for row in record["track_record"]]
        assert row_keys(screen, "#contractor-engagements") == screen.row_ids
        figures = text_of(screen, "#contractor-figures")
        m = record["milestones"]
        assert f"Engagements  {record['engagements']['total']}" in figures
        assert f"{m['on_time']} on time" in figures and f"{m['late']} late" in figures
        assert f"{m['overdue']} overdue" in figures
        flags = text_of(screen, "#contractor-flags")
        for flag in record["red_flags"]:
            assert flag["flag"] in flags
        # Enter opens the engagement under the cursor; escape comes back to the record.
        await pilot.press("down", "enter") if len(screen.row_ids) > 1 else await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, EngagementScreen)
        assert app.screen.engagement_id == screen.row_ids[min(1, len(screen.row_ids) - 1)]
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is screen


async def test_the_contractor_screen_opens_from_an_engagement(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        name = busiest_contractor(app)
        rows, _ = app.service.engagements(search=name, limit=100)
        app.open_engagement(rows[0]["id"])
        await settle(pilot, app)
        engagement = app.screen
        assert isinstance(engagement, EngagementScreen) and engagement.state is not None
        await pilot.press("c")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ContractorScreen)
        assert screen.record is not None and screen.record["name"] == engagement.state["contractor"]
        assert engagement.engagement_id in screen.row_ids and len(screen.row_ids) > 1
        assert screen.title == f"Contractor · {engagement.state['contractor']}"


async def test_an_unknown_contractor_shows_did_you_mean_and_offers_the_names(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        name = busiest_contractor(app)
        app.open_contractor(name[:-1])  # "Yuki Sato" -> "Yuki Sat"
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ContractorScreen)
        message = text_of(screen, "#contractor-message")
        assert f"no contractor named '{name[:-1]}'" in message
        assert "did you mean" in message and name in message
        assert not screen.query_one("#contractor-main").display
        suggestions = screen.query_one("#contractor-suggestions", OptionList)
        assert suggestions.has_focus
        chosen = suggestions.get_option_at_index(suggestions.highlighted or 0).id
        await pilot.press("enter")
        await settle(pilot, app)
        assert screen.record is not None and screen.record["name"] == chosen
        assert screen.query_one("#contractor-main").display


async def test_opening_an_engagement_for_a_known_contractor_shows_their_record(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        name = busiest_contractor(app)
        earlier = app.service.contractor(name)["engagements"]["total"]
        app.open_form("OpenEngagement", None, {
            "title": "Data lake", "client": "Acme", "contractor": name.upper(),
            "curator": "cara", "budget": "5000.00", "currency": "EUR"})
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ContractorScreen), type(screen)
        assert f"{earlier} earlier engagements" in text_of(screen, "#contractor-note")
        assert screen.record is not None and screen.record["engagements"]["total"] == earlier + 1
        under = app.screen_stack[-2]
        assert isinstance(under, EngagementScreen) and under.engagement_id in screen.row_ids
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is under


async def test_a_new_contractor_goes_straight_to_the_new_engagement(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.open_form("OpenEngagement", None, {
            "title": "Data lake", "client": "Acme", "contractor": "Somebody Entirely New",
            "curator": "cara", "budget": "5000.00", "currency": "EUR"})
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, EngagementScreen)


# Export ---------------------------------------------------------------------------------


async def run_export(pilot: Any, app: LedgerApp, output: Path, fmt: str = "csv",
                     **fields: str) -> ExportDialog:
    await pilot.press("e")
    await settle(pilot, app)
    dialog = app.screen
    assert isinstance(dialog, ExportDialog)
    if fmt != "csv":
        await pilot.click(f"#format-{fmt}")
        await settle(pilot, app)
        assert dialog.query_one("#export-output", Input).value.endswith(f".{fmt}")
    for name, value in fields.items():
        dialog.query_one(f"#export-{name}", Input).value = value
    dialog.query_one("#export-output", Input).value = str(output)
    dialog.query_one("#export-output", Input).focus()
    await pilot.press("enter")
    await settle(pilot, app)
    return dialog


def entries_in_trail(app: LedgerApp, engagement_id: str | None = None) -> int:
    where, params = (" WHERE engagement_id = ?", [engagement_id]) if engagement_id else ("", [])
    return int(app.service.models.query(f"SELECT COUNT(*) AS n FROM {{audit}}{where}",
                                        params)[0]["n"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "md", "pdf"])
async def test_the_export_dialog_writes_each_format_for_an_engagement(
        db: str, tmp_path: Path, fmt: str) -> None:
    app = make_app(db)
    output = tmp_path / f"trail.{fmt}"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")  # the engagement under the cursor: its id fills the range
        await settle(pilot, app)
        engagement = app.screen
        assert isinstance(engagement, EngagementScreen) and engagement.state is not None
        engagement_id = engagement.engagement_id
        dialog = await run_export(pilot, app, output, fmt)
        assert dialog.query_one("#export-engagement", Input).value == engagement_id
        result = text_of(dialog, "#dialog-result")
        expected = entries_in_trail(app, engagement_id)
        assert expected == engagement.state["version"]
        assert f"✓ {expected} entries written to" in result, result
        assert str(output.resolve()) in result.replace("\n", "")  # a long path folds
        assert dialog.result.entries == expected and dialog.result.path == str(output.resolve())
        assert f"digest {dialog.result.digest}" in result
        bar = dialog.query_one(ProgressBar)
        assert bar.total and bar.progress == bar.total
    assert output.exists()
    if fmt == "csv":
        with output.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert len(rows) == 1 + expected  # one header row
        assert all(engagement_id in row for row in rows[1:])
    elif fmt == "jsonl":
        records = [json.loads(line) for line in output.read_text("utf-8").splitlines()]
        events = [r for r in records if r["record"] == "event"]
        assert len(events) == expected
        assert all(event["engagement_id"] == engagement_id for event in events)
        assert records[0]["record"] == "header" and records[0]["digest"] in result
    elif fmt == "md":
        text = output.read_text("utf-8")
        assert engagement_id in text and "EngagementOpened" in text
    else:
        from pypdf import PdfReader

        assert output.read_bytes().startswith(b"%PDF")
        text = "".join(page.extract_text() for page in PdfReader(output).pages)
        assert "EngagementOpened" in text


async def test_the_whole_trail_exports_to_csv_from_the_dashboard(db: str, tmp_path: Path) -> None:
    app = make_app(db)
    output = tmp_path / "all.csv"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        dialog = await run_export(pilot, app, output)
        assert dialog.query_one("#export-engagement", Input).value == ""
        expected = entries_in_trail(app)
        assert f"{expected} entries written" in text_of(dialog, "#dialog-result")
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, DashboardScreen)
    with output.open(newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == 1 + expected


async def test_an_invalid_since_date_is_shown_inline_and_nothing_is_written(
        db: str, tmp_path: Path) -> None:
    app = make_app(db)
    output = tmp_path / "never.csv"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        dialog = await run_export(pilot, app, output, since="2026-13-45")
        assert isinstance(app.screen, ExportDialog)
        result = text_of(dialog, "#dialog-result")
        assert "since" in result.lower() and "\n" not in result.strip(), result
        assert "written" not in result
    assert not output.exists()


async def test_the_output_path_follows_the_format_and_an_existing_file_needs_a_second_press(
        db: str, tmp_path: Path) -> None:
    app = make_app(db)
    existing = tmp_path / "kept.csv"
    existing.write_text("mine\n")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("e")
        await settle(pilot, app)
        dialog = app.screen
        output = dialog.query_one("#export-output", Input)
        assert output.value == "audit-20261102.csv"
        assert dialog.query_one("#format-csv", RadioButton).value
        await pilot.click("#format-md")
        await settle(pilot, app)
        assert output.value == "audit-20261102.md"
        await pilot.click("#format-csv")
        output.value = str(existing)
        output.focus()
        await pilot.press("enter")
        await settle(pilot, app)
        assert "press Export again to replace it" in text_of(dialog, "#dialog-result")
        assert existing.read_text() == "mine\n"
        await pilot.press("enter")
        await settle(pilot, app)
        assert "entries written" in text_of(dialog, "#dialog-result")
    assert existing.read_text() != "mine\n"


# Verify ---------------------------------------------------------------------------------


def change_stored_event(url: str, position: int) -> None:
    """One byte of a stored event rewritten behind the ledger's back (as in
    tests/test_audit_verify.py): the JSON still parses, the hash no longer matches."""
    with sqlite3.connect(url[len("sqlite:///"):]) as conn:
        state = bytes(conn.execute("SELECT state FROM stored_events WHERE rowid = ?",
                                   (position,)).fetchone()[0])
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                     (state.replace(b'"actor":"', b'"actor":"X', 1), position))


async def run_verify(pilot: Any, app: LedgerApp, digest: str = "") -> VerifyDialog:
    await pilot.press("v")
    await settle(pilot, app)
    dialog = app.screen
    assert isinstance(dialog, VerifyDialog)
    dialog.query_one("#verify-digest", Input).value = digest
    await pilot.press("enter")
    await settle(pilot, app)
    return dialog


async def test_verify_says_intact_on_an_untouched_ledger(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        from projections.audit import digest

        head = digest(app.service.models.store)["digest"]
        dialog = await run_verify(pilot, app, head)
        result = text_of(dialog, "#dialog-result")
        assert result.startswith("✓ audit trail intact") and "matches the head" in result
        bar = dialog.query_one(ProgressBar)
        assert bar.total and bar.progress == bar.total
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, DashboardScreen)


async def test_verify_names_the_entry_changed_behind_the_ledgers_back(db: str) -> None:
    change_stored_event(db, 17)
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        dialog = await run_verify(pilot, app)
        result = text_of(dialog, "#dialog-result")
        assert "NOT intact" in result and "entry at position 17 (" in result, result
        assert "does not match its recorded hash" in result


async def test_a_malformed_digest_is_shown_inline(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        dialog = await run_verify(pilot, app, "not-a-digest")
        assert text_of(dialog, "#dialog-result") == (
            "a digest is 64 hexadecimal characters, optionally after POSITION:")


# PostgreSQL ---------------------------------------------------------------------------


async def test_export_and_verify_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    build_demo(postgres_url, engagements=12, seed=3)
    app = make_app(postgres_url)
    output = tmp_path / "pg.csv"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        dialog = await run_export(pilot, app, output)
        expected = entries_in_trail(app)
        assert f"{expected} entries written" in text_of(dialog, "#dialog-result")
        await pilot.press("escape")
        await settle(pilot, app)
        dialog = await run_verify(pilot, app)
        assert text_of(dialog, "#dialog-result").startswith("✓ audit trail intact")
    with output.open(newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == 1 + expected


# Keys --------------------------------------------------------------------------------


async def test_the_footer_and_the_help_name_the_new_keys(db: str) -> None:
    from tui.help_screen import HELP

    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("c")
        await settle(pilot, app)
        shown = {key: b.binding.description for key, b in app.screen.active_bindings.items()
                 if b.binding.show}
        assert shown["enter"] == "Open" and shown["escape"] == "Back" and shown["r"] == "Refresh"
        await pilot.press("e")
        await settle(pilot, app)
        shown = {key: b.binding.description for key, b in app.screen.active_bindings.items()
                 if b.binding.show}
        assert shown == {"escape": "Cancel", "ctrl+s": "Export"}
    for key in ("`c`", "`e` / `v`", "`enter` / `ctrl+s`", "`escape`"):
        assert key in HELP
    assert "contractor | `enter`" in HELP
