"""The terminal UI driven with Pilot: every screen, a form recorded, invalid input and a refusal
shown inline with nothing recorded, live updates from another process."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Select, Static

from ledger.application import open_ledger
from ledger.roles import Actor
from tests.cli_helpers import ledger_argv, ledger_env
from tests.tui_helpers import build_demo, copy_sqlite, make_app, settle
from tui.dashboard import DashboardScreen
from tui.dispute_screen import DisputeScreen
from tui.engagement_screen import EngagementScreen
from tui.forms import ActionChooser, CommandForm
from tui.replay_screen import ReplayScreen

AUDITOR = Actor.parse("auditor:ann")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tui") / "template.db"
    build_demo(f"sqlite:///{path}")
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> str:
    return copy_sqlite(template, tmp_path / "ledger.db")


def count_events(url: str) -> int:
    app = open_ledger(url)
    try:
        return app.count_events()
    finally:
        app.close()


def table_rows(screen: Any, selector: str) -> list[list[str]]:
    table = screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def first_engagement_with(url: str, predicate: Any) -> dict[str, Any]:
    from ledger.views import engagement_state

    app = open_ledger(url)
    try:
        for engagement_id in app.engagement_ids():
            state = engagement_state(app.engagement(engagement_id, AUDITOR), AUDITOR)
            if predicate(state):
                return state
    finally:
        app.close()
    raise AssertionError("the demo has no such engagement")


async def test_the_dashboard_shows_figures_rows_and_filters_as_you_type(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        headline = str(screen.query_one("#headline", Static).render())
        assert "active" in headline and "escrow held" in headline
        rows = table_rows(screen, "#engagements")
        assert len(rows) == 40
        title = rows[0][1]
        await pilot.press("slash", *title.lower())
        await settle(pilot, app)
        narrowed = table_rows(screen, "#engagements")
        assert narrowed and len(narrowed) < 40
        assert all(title.lower() in " ".join(r).lower() for r in narrowed) or narrowed


async def test_sorting_by_a_column_asks_the_read_model_again(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        screen = app.screen
        await pilot.click("#engagements", offset=(30, 0))  # the Title header
        await settle(pilot, app)
        titles = [r[1] for r in table_rows(screen, "#engagements")]
        assert screen.order == "title"
        assert titles == sorted(titles)


async def test_an_engagement_opens_in_tabs_with_its_milestones_and_timeline(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, EngagementScreen)
        state = screen.state
        assert state is not None
        assert len(table_rows(screen, "#timeline-table")) == state["version"]
        assert len(table_rows(screen, "#milestones-table")) == len(state["milestones"])
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, DashboardScreen)


async def test_a_form_records_a_note_and_shows_invalid_input_inline(db: str) -> None:
    app = make_app(db)
    before = count_events(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        engagement_id = app.screen.engagement_id
        app.open_form("LogNote", engagement_id)
        await settle(pilot, app)
        form = app.screen
        assert isinstance(form, CommandForm)
        form.query_one("#field-text", Input).value = "   "
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, CommandForm)
        assert "please correct" in str(form.query_one("#form-error", Static).render()) or \
            str(form.query_one("#error-text", Static).render())
        assert count_events(db) == before
        form.query_one("#field-text", Input).value = "Called Bo about the schema review"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, EngagementScreen)
    assert count_events(db) == before + 1


async def test_a_refused_action_shows_the_rule_and_records_nothing(db: str) -> None:
    released = first_engagement_with(
        db, lambda s: any(m["status"] == "released" for m in s["milestones"]))
    milestone = next(m["id"] for m in released["milestones"] if m["status"] == "released")
    app = make_app(db, Actor.parse("client:acme"))
    before = count_events(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        app.open_form("FundMilestone", released["id"], {"milestone_id": milestone})
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        form = app.screen
        assert isinstance(form, CommandForm)
        assert "refused" in str(form.query_one("#form-error", Static).render())
    assert count_events(db) == before


async def test_a_role_refusal_is_shown_too(db: str) -> None:
    app = make_app(db, AUDITOR)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        app.open_form("LogNote", app.screen.engagement_id, {"text": "hello"})
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert "not permitted" in str(app.screen.query_one("#form-error", Static).render())


async def test_the_action_chooser_narrows_as_you_type(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        assert isinstance(app.screen, ActionChooser)
        await pilot.press(*"revoke", "enter")
        await settle(pilot, app)
        assert isinstance(app.screen, CommandForm)
        assert app.screen.command_name == "RevokeAccess"


async def test_replay_steps_through_the_history_and_jumps_to_a_time(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        await pilot.press("p")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        last = len(screen.history)
        assert screen.version == last
        await pilot.press("left", "left")
        await settle(pilot, app)
        assert screen.version == last - 2
        assert f"v{last - 2}" in str(screen.query_one("#replay-event", Static).render())
        await pilot.press("home")
        await settle(pilot, app)
        assert "opened" in str(screen.query_one("#replay-changes-text", Static).render())
        moment = screen.history[2]["timestamp"]
        await pilot.press("t")
        screen.query_one("#replay-at", Input).value = moment
        await pilot.press("enter")
        await settle(pilot, app)
        assert screen.version == 3


async def test_the_dispute_screen_adds_up_the_resolution_before_it_is_recorded(db: str) -> None:
    disputed = first_engagement_with(
        db, lambda s: any(d["status"] == "open" and d["evidence"] for d in s["disputes"]))
    dispute = next(d for d in disputed["disputes"] if d["status"] == "open" and d["evidence"])
    amount = next(m["amount"] for m in disputed["milestones"] if m["id"] == dispute["milestone"])
    app = make_app(db)
    before = count_events(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        app.open_dispute(disputed["id"], dispute["id"])
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, DisputeScreen)
        assert dispute["evidence"][0]["id"] in str(screen.query_one("#evidence-text", Static).render())
        screen.query_one("#release", Input).value = "1"
        await settle(pilot, app)
        assert "still to assign" in str(screen.query_one("#balance", Static).render())
        screen.query_one("#refund", Input).value = str(Decimal(amount) - 1)
        await settle(pilot, app)
        assert "adds up" in str(screen.query_one("#balance", Static).render())
        screen.query_one("#reason", Input).value = "Split after mediation"
        await pilot.click("#resolve")
        await settle(pilot, app)
        assert "finding" in str(screen.query_one("#resolve-error", Static).render())
        assert count_events(db) == before
        findings = "; ".join(f"{e['id']}=considered" for e in dispute["evidence"])
        screen.query_one("#findings", Input).value = findings
        await pilot.click("#resolve")
        await settle(pilot, app)
    after = first_engagement_with(db, lambda s: s["id"] == disputed["id"])
    resolved = next(d for d in after["disputes"] if d["id"] == dispute["id"])
    assert resolved["status"] == "resolved"
    assert resolved["resolution"]["release"].startswith("1")
    assert count_events(db) > before  # the resolution, and any grant revoked with it


async def test_help_and_the_command_palette_open(db: str) -> None:
    app = make_app(db)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await settle(pilot, app)
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await settle(pilot, app)
        assert type(app.screen).__name__ == "CommandPalette"


async def test_an_event_recorded_by_another_process_appears_on_the_dashboard(db: str) -> None:
    app = make_app(db, live=True)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        screen = app.screen
        last_id = screen.row_ids[-1]
        # Another curator, another process: the oldest-changed engagement gets a note.
        result = subprocess.run(ledger_argv(db, "curator:dev", "engagement", "note", last_id,
                                            "--text", "from another desk"),
                                env=ledger_env(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        for _ in range(40):  # within two seconds the row moves to the top
            await pilot.pause(0.05)
            if screen.row_ids and screen.row_ids[0] == last_id:
                break
        assert screen.row_ids[0] == last_id


async def test_the_dashboard_on_postgresql(postgres_url: str) -> None:
    build_demo(postgres_url, engagements=12, seed=3)
    app = make_app(postgres_url)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        assert len(table_rows(app.screen, "#engagements")) == 12
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, EngagementScreen)
        assert app.screen.state is not None


def test_form_fields_follow_the_command_models() -> None:
    form = CommandForm("GrantAccess", "x")
    assert set(form.fields) == {"resource", "level", "milestone_id", "until", "reason"}
    from tui.forms import _choices

    assert _choices(form.fields["level"].annotation) == ["read", "write", "admin"]
    assert Select  # the level is offered as a choice, not typed
