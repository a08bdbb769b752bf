"""`ledger audit digest` and `ledger audit verify` against the database (issue 4, acceptance 4).

A stored event's bytes changed directly in the database (SQLite and PostgreSQL) make verify
fail naming that entry; with nothing changed it passes; a digest saved before more events were
appended still verifies as a prefix; a deleted event and a foreign digest are named too.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest

from tests.cli_helpers import expect_json, expect_ok, expect_refusal, run_ledger

AUDITOR = "auditor:ann"
CURATOR = "curator:cara"


@pytest.fixture
def filled(db_url: str) -> str:
    expect_ok(run_ledger(db_url, None, "demo", "--engagements", "6", "--seed", "4"))
    return db_url


def engagement_ids(db_url: str) -> list[str]:
    rows = expect_json(run_ledger(db_url, AUDITOR, "engagement", "list", "--format", "json"))
    return [row["id"] for row in rows]


def change_stored_event(db_url: str, position: int, change: Any) -> None:
    """Rewrites the state bytes of the event at `position`, behind the ledger's back."""
    if db_url.startswith("sqlite"):
        path = db_url[len("sqlite:///"):]
        with sqlite3.connect(path) as conn:
            state = conn.execute("SELECT state FROM stored_events WHERE rowid = ?",
                                 (position,)).fetchone()[0]
            conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                         (change(bytes(state)), position))
        return
    import psycopg

    base, _, query = db_url.partition("?")
    schema = query.split("schema=")[1]
    with psycopg.connect(base, autocommit=True) as conn:
        table = f'"{schema}".engagements_events'
        state = conn.execute(f"SELECT state FROM {table} WHERE notification_id = %s",
                             (position,)).fetchone()[0]
        conn.execute(f"UPDATE {table} SET state = %s WHERE notification_id = %s",
                     (change(bytes(state)), position))


def delete_stored_event(db_url: str, position: int) -> None:
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url[len("sqlite:///"):]) as conn:
            conn.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
        return
    import psycopg

    base, _, query = db_url.partition("?")
    schema = query.split("schema=")[1]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{schema}".engagements_events WHERE notification_id = %s',
                     (position,))


def test_an_untouched_log_verifies_and_the_digest_names_its_head(filled: str) -> None:
    digest = expect_ok(run_ledger(filled, AUDITOR, "audit", "digest")).stdout.strip()
    position, _, head = digest.partition(":")
    assert re.fullmatch(r"[0-9a-f]{64}", head) and int(position) > 50
    as_json = expect_json(run_ledger(filled, AUDITOR, "audit", "digest", "--format", "json"))
    assert as_json == {"position": int(position), "hash": head, "digest": digest}
    result = expect_ok(run_ledger(filled, AUDITOR, "audit", "verify", "--digest", digest))
    assert f"{position} events" in result.stdout and "matches the head" in result.stdout
    # A bare hash works as well as POSITION:HASH.
    expect_ok(run_ledger(filled, AUDITOR, "audit", "verify", "--digest", head))


def test_a_digest_saved_earlier_verifies_as_a_prefix(filled: str) -> None:
    earlier = expect_ok(run_ledger(filled, AUDITOR, "audit", "digest")).stdout.strip()
    engagement = engagement_ids(filled)[0]
    expect_ok(run_ledger(filled, CURATOR, "engagement", "note", engagement, "--text", "later"))
    later = expect_ok(run_ledger(filled, AUDITOR, "audit", "digest")).stdout.strip()
    assert later != earlier
    result = expect_ok(run_ledger(filled, AUDITOR, "audit", "verify", "--digest", earlier))
    assert f"a prefix ending at position {earlier.split(':')[0]}" in result.stdout
    expect_ok(run_ledger(filled, AUDITOR, "audit", "verify", "--digest", later))


def test_one_changed_byte_in_a_stored_event_is_named(filled: str) -> None:
    digest = expect_ok(run_ledger(filled, AUDITOR, "audit", "digest")).stdout.strip()
    position = 17
    change_stored_event(filled, position, lambda state: state.replace(b'"actor":"', b'"actor":"X', 1))
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify"), 3)
    assert f"entry at position {position} " in message
    assert "does not match its recorded hash" in message
    # With the digest given too, the same entry is named (the change comes first).
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify", "--digest", digest), 3)
    assert f"entry at position {position} " in message


def test_a_changed_amount_is_named_even_when_the_json_stays_valid(filled: str) -> None:
    # A funding event, found through the engagements' histories.
    for engagement in engagement_ids(filled):
        history = expect_json(run_ledger(filled, AUDITOR, "history", engagement, "--format", "json"))
        funded = [row for row in history if row["type"] == "MilestoneFunded"]
        if funded:
            break
    else:
        pytest.fail("the demo made no funded milestone")
    version = funded[0]["version"]
    position = _position_of(filled, engagement, version)
    change_stored_event(filled, position, _raise_amount)
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify"), 3)
    assert f"entry at position {position} (engagement {engagement} version {version}, MilestoneFunded)" in message


def _raise_amount(state: bytes) -> bytes:
    changed = re.sub(rb'("amount":\{"_type_":"decimal_str","_data_":")(\d)', rb"\g<1>9\2", state,
                     count=1)
    assert changed != state
    return changed


def _position_of(db_url: str, engagement: str, version: int) -> int:
    from ledger.application import open_ledger
    from ledger.roles import Actor
    from projections.queries import ReadModels

    app = open_ledger(db_url)
    try:
        models = ReadModels(app, Actor.parse(AUDITOR))
        rows = models.query("SELECT position FROM {audit} WHERE engagement_id = ? AND version = ?",
                            (engagement, version))
        return int(rows[0]["position"])
    finally:
        app.close()


def test_a_deleted_event_is_named(filled: str) -> None:
    expect_ok(run_ledger(filled, AUDITOR, "audit", "digest"))  # the trail is built first
    delete_stored_event(filled, 30)
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify"), 3)
    assert "entry at position 30 " in message and "gone from the log" in message


def test_a_digest_of_another_ledger_fails(filled: str) -> None:
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify", "--digest",
                                        "12:" + "ab" * 32), 3)
    assert "matches no entry" in message
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify", "--digest", "xyz"), 2)
    assert "64 hexadecimal" in message


@pytest.mark.parametrize("changed", [3, 7, 8, 64])
def test_verify_reads_the_log_in_ranges_and_names_a_change_in_any_of_them(
        filled: str, changed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ranges of 7 events: on PostgreSQL the next range is read in a thread while this one is
    # checked. Every range boundary, and a change in the first, at an edge and far along.
    from ledger.application import open_ledger
    from ledger.roles import Actor
    from projections import audit
    from projections.queries import ReadModels

    monkeypatch.setattr(audit, "BATCH", 7)
    app = open_ledger(filled)
    try:
        models = ReadModels(app, Actor.parse(AUDITOR))
        events = app.recorder.max_notification_id()
        whole = audit.verify(app, models.store)
        assert whole.ok and whole.checked == events, whole.problem
        change_stored_event(filled, changed, lambda state: state.replace(b'"actor":"', b'"actor":"Y', 1))
        broken = audit.verify(app, models.store)
        assert not broken.ok and broken.position == changed and broken.checked == changed - 1
        assert "does not match its recorded hash" in broken.problem
    finally:
        app.close()


def test_a_run_of_deleted_events_longer_than_a_range_is_named(
        filled: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.application import open_ledger
    from ledger.roles import Actor
    from projections import audit
    from projections.queries import ReadModels

    monkeypatch.setattr(audit, "BATCH", 7)
    app = open_ledger(filled)
    try:
        models = ReadModels(app, Actor.parse(AUDITOR))
        assert audit.verify(app, models.store).ok
        for position in range(20, 40):
            delete_stored_event(filled, position)
        report = audit.verify(app, models.store)
        assert not report.ok and report.position == 20 and "gone from the log" in report.problem
    finally:
        app.close()
