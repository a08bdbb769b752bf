"""Tamper evidence beyond a changed byte (which tests/test_audit_verify.py shows, with a deleted
event in the middle and a foreign digest): on SQLite and PostgreSQL, `ledger audit verify`

- names two events whose stored bytes were swapped (topic and state of two rows);
- names a log whose last events were deleted while the audit trail still lists them;
- and, when the tamperer also rebuilt the audit trail over the changed log (so that every hash
  in it is recomputed and consistent), fails against a digest saved earlier: a truncated log,
  a forged event put in place of the last real one, an old event rewritten.

What is honestly not detectable: a forger who can write the events table and rebuild the trail
produces a chain that is consistent in itself, so `verify` without a digest passes over it (the
tests show that too). Only a digest kept elsewhere pins history: everything up to it is
proven; an event appended after the latest digest is indistinguishable, by the chain, from a
real new event, and `verify --digest` says plainly where the proven prefix ends. Against such
appends the database's own permissions are the gate (a writer role that may only insert,
issue 7 point 9), and digests taken often shorten what is unproven.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import LogNote
from ledger.demo import run_demo
from ledger.events import Stamp
from ledger.roles import Actor
from projections.runner import Projector

from cli_helpers import expect_ok, expect_refusal, run_ledger, run_ledger_together

AUDITOR = "auditor:ann"


class RawLog:
    """The events table and the audit trail, read and changed behind the ledger's back."""

    def __init__(self, db_url: str) -> None:
        self.sqlite = db_url.startswith("sqlite")
        if self.sqlite:
            self.path = db_url[len("sqlite:///"):]
            self.events, self.position, self.trail = "stored_events", "rowid", "rm_audit"
            self.mark = "?"
        else:
            self.base, _, query = db_url.partition("?")
            schema = query.split("schema=")[1]
            self.events = f'"{schema}".engagements_events'
            self.trail = f'"{schema}".rm_audit'
            self.position, self.mark = "notification_id", "%s"

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("?", self.mark)
        if self.sqlite:
            with sqlite3.connect(self.path) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def head(self) -> int:
        return int(self.run(f"SELECT MAX({self.position}) FROM {self.events}")[0][0])

    def swap(self, first: int, second: int) -> None:
        (a_topic, a_state), = self.run(f"SELECT topic, state FROM {self.events} "
                                       f"WHERE {self.position} = ?", (first,))
        (b_topic, b_state), = self.run(f"SELECT topic, state FROM {self.events} "
                                       f"WHERE {self.position} = ?", (second,))
        for position, topic, state in ((first, b_topic, b_state), (second, a_topic, a_state)):
            self.run(f"UPDATE {self.events} SET topic = ?, state = ? "
                     f"WHERE {self.position} = ?", (topic, bytes(state), position))

    def delete_after(self, position: int, trail_too: bool = False) -> None:
        self.run(f"DELETE FROM {self.events} WHERE {self.position} > ?", (position,))
        if trail_too:
            self.run(f"DELETE FROM {self.trail} WHERE position > ?", (position,))

    def insert(self, originator_id: UUID, version: int, topic: str, state: bytes) -> None:
        key = originator_id.hex if self.sqlite else originator_id
        self.run(f"INSERT INTO {self.events} (originator_id, originator_version, topic, state) "
                 "VALUES (?, ?, ?, ?)", (key, version, topic, state))

    def last_event(self) -> tuple[UUID, int]:
        (originator_id, version), = self.run(
            f"SELECT originator_id, originator_version FROM {self.events} "
            f"ORDER BY {self.position} DESC LIMIT 1")
        return UUID(str(originator_id)), int(version)


@pytest.fixture
def filled(db_url: str) -> Iterator[str]:
    """Six demo engagements, with the audit trail built."""
    app = open_ledger(db_url)
    try:
        run_demo(app, count=6, seed=4, force=False)
        Projector(app).catch_up()
    finally:
        app.close()
    yield db_url


def saved_digest(db_url: str) -> str:
    return expect_ok(run_ledger(db_url, AUDITOR, "audit", "digest")).stdout.strip()


def verify(db_url: str, digest: str) -> tuple[Any, Any]:
    """`audit verify` without and with the digest, side by side."""
    without, with_digest = run_ledger_together([
        (db_url, AUDITOR, ("audit", "verify")),
        (db_url, AUDITOR, ("audit", "verify", "--digest", digest)),
    ])
    return without, with_digest


def rebuild_the_trail(db_url: str) -> None:
    """What a tamperer with the database would do next: rebuild the read models, the audit
    trail among them, so that every hash is recomputed over the changed log."""
    app = open_ledger(db_url)
    try:
        Projector(app).rebuild()
    finally:
        app.close()


def forged_note(db_url: str, engagement_id: UUID, version: int) -> tuple[str, bytes]:
    """A well-formed event, as the ledger itself would store it, never sent as a command."""
    app: Engagements = open_ledger(db_url)
    try:
        engagement = app.repository.get(engagement_id, version=version - 1)
        command = LogNote.build(engagement_id=engagement_id, text="Client agreed to pay cash",
                                command_id="forged")
        command.apply_to(engagement, Stamp(Actor.parse("curator:cara"), "forged",
                                           command.digest(), datetime.now(UTC)))
        [event] = engagement.collect_events()
        stored = app.mapper.to_stored_event(event)
        assert stored.originator_version == version
        return stored.topic, stored.state
    finally:
        app.close()


def test_two_swapped_events_are_named(filled: str) -> None:
    log = RawLog(filled)
    log.swap(12, 40)
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify"), 3)
    assert "entry at position 12 " in message
    assert "does not match its recorded hash" in message


def test_a_truncated_log_is_caught_with_or_without_the_trail_rebuilt(filled: str) -> None:
    log = RawLog(filled)
    digest = saved_digest(filled)
    head = log.head()
    log.delete_after(head - 3)
    # The trail still lists the deleted events: named without any digest.
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify"), 3)
    assert f"entry at position {head - 2} " in message and "gone from the log" in message
    # The tamperer removes them from the trail as well: the shorter chain is consistent in
    # itself, and only the digest saved earlier shows that the log has lost its end.
    log.delete_after(head - 3, trail_too=True)
    without, with_digest = verify(filled, digest)
    expect_ok(without)
    assert "matches no entry" in expect_refusal(with_digest, 3)


def test_a_forged_event_in_place_of_the_last_one_is_caught_by_an_earlier_digest(
        filled: str) -> None:
    log = RawLog(filled)
    digest = saved_digest(filled)
    engagement_id, version = log.last_event()
    log.delete_after(log.head() - 1)
    topic, state = forged_note(filled, engagement_id, version)
    log.insert(engagement_id, version, topic, state)
    rebuild_the_trail(filled)  # every hash recomputed over the forged log
    without, with_digest = verify(filled, digest)
    expect_ok(without)  # consistent in itself: the chain alone cannot tell
    assert "matches no entry" in expect_refusal(with_digest, 3)


def test_an_old_event_rewritten_with_a_recomputed_chain_is_caught_by_an_earlier_digest(
        filled: str) -> None:
    log = RawLog(filled)
    digest = saved_digest(filled)
    (state,), = log.run(f"SELECT state FROM {log.events} WHERE {log.position} = ?", (20,))
    changed = bytes(state).replace(b'"actor":"', b'"actor":"X', 1)
    assert changed != bytes(state)
    log.run(f"UPDATE {log.events} SET state = ? WHERE {log.position} = ?", (changed, 20))
    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "verify"), 3)
    assert "entry at position 20 " in message  # the trail as it was names the change
    rebuild_the_trail(filled)
    without, with_digest = verify(filled, digest)
    expect_ok(without)
    assert "matches no entry" in expect_refusal(with_digest, 3)


def test_an_event_appended_after_the_digest_is_outside_what_it_proves(filled: str) -> None:
    """The limit, stated as a test: a forged event after the latest digest verifies like any
    new event, and `verify --digest` says where the proven prefix ends."""
    log = RawLog(filled)
    digest = saved_digest(filled)
    position = int(digest.split(":")[0])
    engagement_id, version = log.last_event()
    topic, state = forged_note(filled, engagement_id, version + 1)
    log.insert(engagement_id, version + 1, topic, state)
    without, with_digest = verify(filled, digest)
    expect_ok(without)
    assert f"a prefix ending at position {position}" in expect_ok(with_digest).stdout
