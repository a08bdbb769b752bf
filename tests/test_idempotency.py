"""Rule 12: the same --command-id is recorded once and answered the same; another command with
that id is refused; a retry after the process died between save and reply makes no second event."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ledger.application import open_ledger
from ledger.commands import DefineMilestone, LogNote, OpenEngagement
from ledger.errors import InvalidInput

from factories import AUDITOR, CURATOR, active_engagement

OPEN = dict(title="T", client="Acme", contractor="Bo", curator="cara", budget="100", currency="EUR")


def count_events(app) -> int:  # type: ignore[no-untyped-def]
    return app.recorder.max_notification_id() or 0


def test_same_command_id_twice_is_recorded_once_and_answered_the_same(app):
    eid = active_engagement(app)
    command = DefineMilestone.build(engagement_id=eid, title="A", amount="10", due="2027-01-01",
                                    command_id="cmd-1")
    assert app.execute(command, CURATOR) == "M1"
    before = count_events(app)
    assert app.execute(command, CURATOR) == "M1"
    assert count_events(app) == before
    assert list(app.engagement(eid, AUDITOR).milestones) == ["M1"]


def test_same_command_id_for_another_command_is_refused(app):
    eid = active_engagement(app)
    app.execute(LogNote.build(engagement_id=eid, text="one", command_id="cmd-2"), CURATOR)
    before = count_events(app)
    with pytest.raises(InvalidInput, match="already used for a different command"):
        app.execute(LogNote.build(engagement_id=eid, text="two", command_id="cmd-2"), CURATOR)
    assert count_events(app) == before


def test_a_retried_open_makes_no_second_engagement(app):
    first = app.open_engagement(OpenEngagement.build(command_id="open-1", **OPEN), CURATOR)
    again = app.open_engagement(OpenEngagement.build(command_id="open-1", **OPEN), CURATOR)
    assert first == again
    assert list(app.engagement_ids()) == [first]
    with pytest.raises(InvalidInput):
        app.open_engagement(OpenEngagement.build(command_id="open-1", **{**OPEN, "title": "U"}),
                            CURATOR)


def test_retry_after_the_process_was_killed_between_save_and_reply(db_url):
    app = open_ledger(db_url)
    eid = active_engagement(app)
    app.close()
    # A writer that saves and then dies before it can answer.
    script = textwrap.dedent(f"""
        import os, signal
        from ledger.application import open_ledger
        from ledger.commands import DefineMilestone
        from ledger.roles import Actor
        app = open_ledger({db_url!r})
        app.execute(DefineMilestone.build(engagement_id={str(eid)!r}, title="A", amount="10",
                    due="2027-01-01", command_id="killed-1"), Actor.parse("curator:cara"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert died.returncode == -9, died.stderr
    # The user retries the same command with the command line.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    retried = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--db", db_url, "--as", "curator:cara",
         "milestone", "add", str(eid), "--title", "A", "--amount", "10", "--due", "2027-01-01",
         "--command-id", "killed-1"], capture_output=True, text=True, env=env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "M1"
    app = open_ledger(db_url)
    types = [type(e).__name__ for e in app.events.get(eid)]
    assert types.count("MilestoneDefined") == 1
    app.close()
