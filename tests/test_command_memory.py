"""The command memory (retries answered the same, rule 12) packed into snapshots.

A memory loaded from a snapshot is split into entries only when first looked in, with the
events after the snapshot applied then: it must hold exactly what remembering every event
in order holds. Snapshots stored before hold a plain dict, and still work."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.application import open_ledger
from ledger.command_memory import CommandMemory, CommandMemoryAsPacked
from ledger.commands import LogNote, OpenEngagement, RecordInterview
from ledger.errors import InvalidInput
from factories import AUDITOR, CURATOR

IDS = st.sampled_from(["c1", "c2", "c3", "with\ttab", "line\nbreak", "ünï"])
CALLS = st.lists(st.tuples(IDS, st.sampled_from(["d1", "d2", None]),
                           st.sampled_from([None, "M1", "G2", "I3"])), max_size=30)


def remembered_plainly(calls):  # type: ignore[no-untyped-def]
    """What the plain dict held (the rule the memory must keep)."""
    entries: dict = {}
    for command_id, digest, created in calls:
        remembered = entries.get(command_id)
        if remembered is None:
            entries[command_id] = [digest, created]
        elif created is not None:
            remembered[1] = created if remembered[1] is None else f"{remembered[1]} {created}"
    return entries


@given(CALLS, st.integers(min_value=0, max_value=30), st.booleans())
def test_a_memory_packed_at_any_point_holds_what_remembering_everything_holds(
        calls, split, through_json):  # type: ignore[no-untyped-def]
    before, after = calls[:split], calls[split:]
    memory = CommandMemory()
    for call in before:
        memory.remember(*call)
    packed = CommandMemoryAsPacked().encode(memory)
    if through_json:
        packed = json.loads(json.dumps(packed))
    loaded = CommandMemoryAsPacked().decode(packed)
    for call in after:  # the events after the snapshot, before anyone looks
        loaded.remember(*call)
    again = CommandMemoryAsPacked().decode(CommandMemoryAsPacked().encode(loaded))
    expected = remembered_plainly(calls)
    assert loaded == expected and again == expected
    assert {key: loaded[key] for key in expected} == expected and len(loaded) == len(expected)


def test_clean_ids_pack_as_lines_and_others_as_a_list():
    memory = CommandMemory()
    memory.remember("c1", "d" * 64, None)
    memory.remember("c2", "e" * 64, "M1")
    memory.remember("c2", "e" * 64, "G1")
    assert memory.packed() == f"c1\t{'d' * 64}\t\nc2\t{'e' * 64}\tM1 G1"
    memory.remember("odd\tid", "f" * 64, None)
    assert isinstance(memory.packed(), list)
    assert CommandMemory.from_packed(memory.packed()) == memory


@pytest.fixture
def long_engagement(sqlite_url):  # type: ignore[no-untyped-def]
    """An engagement with a snapshot (at 200) and commands after it, by id."""
    app = open_ledger(sqlite_url)
    eid = app.open_engagement(OpenEngagement.build(title="Long", client="Acme", contractor="Bo",
                                                   curator="cara", budget="1000",
                                                   currency="EUR"), CURATOR)
    for number in range(205):
        app.execute(LogNote.build(engagement_id=eid, text=f"note {number}",
                                  command_id=f"note-{number}"), CURATOR)
    app.close()
    return sqlite_url, eid


def test_a_snapshot_stored_with_a_plain_dict_still_answers_retries(long_engagement):
    url, eid = long_engagement
    path = url[len("sqlite:///"):]
    with sqlite3.connect(path) as conn:
        (state,) = conn.execute("SELECT state FROM stored_snapshots").fetchone()
        snapshot = json.loads(state)
        packed = snapshot["state"]["commands"]
        assert packed["_type_"] == "ledger.CommandMemory/packed"
        # As snapshots were stored before the memory was packed: a plain dict.
        snapshot["state"]["commands"] = dict(CommandMemory.from_packed(packed["_data_"]).items())
        conn.execute("UPDATE stored_snapshots SET state = ?",
                     (json.dumps(snapshot, separators=(",", ":")).encode(),))
    app = open_ledger(url)
    try:
        # An id from before the snapshot and one from after it: answered as the first time.
        for command_id in ("note-3", "note-203"):
            app.execute(LogNote.build(engagement_id=eid, text=command_id.replace("-", " "),
                                      command_id=command_id), CURATOR)
        with pytest.raises(InvalidInput, match="different command"):
            app.execute(LogNote.build(engagement_id=eid, text="other", command_id="note-5"),
                        CURATOR)
        interview = RecordInterview.build(engagement_id=eid, interviewer="cara",
                                          scores={"scope": 4}, decision="advance",
                                          command_id="define")
        created = app.execute(interview, CURATOR)
        assert created and app.execute(interview, CURATOR) == created
        engagement = app.engagement(eid, AUDITOR)
        assert engagement.version == 1 + 205 + 1
        assert engagement.commands["define"][1] == created
    finally:
        app.close()


def test_readers_never_unpack_and_commands_do(long_engagement):
    url, eid = long_engagement
    app = open_ledger(url)
    try:
        loaded = app.engagement(eid, AUDITOR)  # snapshot at 200, then 6 events
        assert loaded.commands._entries is None and len(loaded.commands._pending) == 6
        assert "note-204" in loaded.commands and loaded.commands._entries is not None
        assert len(loaded.commands) == 1 + 205
    finally:
        app.close()
