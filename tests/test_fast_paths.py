"""The fast paths of issue 6 keep their guarantees: commands decide on the cached engagement
without asking the database, yet never record on stale state nor refuse because of it; new
snapshots are compact, and snapshots stored before in the first format still load."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

from ledger.application import Engagements, open_ledger
from ledger.commands import DefineMilestone, FundMilestone, LogNote, SubmitWork
from ledger.errors import RuleViolation
from ledger.milestones import Milestone
from ledger.storage import resolve
from ledger.transcodings import DataclassAsDict, register_ledger_transcodings
from ledger.views import engagement_state
from factories import AUDITOR, CLIENT, CONTRACTOR, CURATOR, active_engagement


@pytest.fixture
def two(db_url):  # type: ignore[no-untyped-def]
    """Two applications on one database, as two processes would be: each its own cache."""
    first, second = open_ledger(db_url), open_ledger(db_url)
    yield first, second
    first.close()
    second.close()


def _notes(app, eid):  # type: ignore[no-untyped-def]
    return [n.text for n in app.engagement(eid, AUDITOR).notes]


def test_a_command_on_a_cached_engagement_another_process_moved_on_is_recorded_once(two):
    first, second = two
    eid = active_engagement(first)  # cached in `first`
    second.execute(LogNote.build(engagement_id=eid, text="from the other process"), CURATOR)
    first.execute(LogNote.build(engagement_id=eid, text="from this one"), CURATOR)
    assert first.conflicts_retried == 1  # the stale cache met the primary key, then reloaded
    assert _notes(first, eid) == ["from the other process", "from this one"]
    assert _notes(second, eid) == ["from the other process", "from this one"]


def test_a_refusal_on_a_stale_cached_engagement_is_checked_again_on_fresh_state(two):
    first, second = two
    eid = active_engagement(first)
    milestone = first.execute(DefineMilestone.build(engagement_id=eid, title="Phase",
                                                    amount="100", due="2027-01-31"), CURATOR)
    # Funded by another process: this one's cache still says "defined", where submitting
    # work is refused.
    second.execute(FundMilestone.build(engagement_id=eid, milestone_id=milestone), CLIENT)
    first.execute(SubmitWork.build(engagement_id=eid, milestone_id=milestone, note="PR 1"),
                  CONTRACTOR)
    state = engagement_state(second.engagement(eid, AUDITOR), AUDITOR)
    assert [m["status"] for m in state["milestones"]] == ["submitted"]


def test_a_refusal_that_holds_on_fresh_state_is_reported(two):
    first, second = two
    eid = active_engagement(first)
    milestone = first.execute(DefineMilestone.build(engagement_id=eid, title="Phase",
                                                    amount="100", due="2027-01-31"), CURATOR)
    second.execute(LogNote.build(engagement_id=eid, text="moved on"), CURATOR)
    with pytest.raises(RuleViolation):  # not funded, on the cached and on the fresh state
        first.execute(SubmitWork.build(engagement_id=eid, milestone_id=milestone,
                                       note="PR 1"), CONTRACTOR)
    assert _notes(first, eid) == ["moved on"]


def _transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    register_ledger_transcodings(transcoder)
    return transcoder


def test_compact_entities_round_trip_even_values_not_of_their_declared_kind():
    transcoder = _transcoder()
    moment = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)
    milestone = Milestone(
        id="M1", title="Phase", criteria=None, amount=Decimal("10.50"), due=date(2027, 1, 31),
        status="funded", defined_at=moment, funded_at="not a time", submitted_at=moment.date(),
        accepted_at=None, closed_at=None, submissions=0, changes_requested=0, original_due=None,
        extensions=0, extension_request={"due": date(2027, 2, 1), "at": moment, "reason": "x"},
        amendment=None, amendments=0, deemed=False)
    stored = transcoder.encode({"m": milestone})
    assert b'"_type_":"ledger.Milestone/list"' in stored
    assert transcoder.decode(stored) == {"m": milestone}


class FirstSnapshotFormat(Engagements):
    """The application as it was before the compact snapshots: entities as dicts of fields."""

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        from ledger.access import Grant
        from ledger.agreements import Agreement, AgreementVersion, Signature
        from ledger.disclosures import Disclosure
        from ledger.disputes import Dispute, Evidence
        from ledger.engagement import Entry
        from ledger.interviews import Interview

        for cls in (Agreement, AgreementVersion, Signature, Entry, Interview, Milestone, Grant,
                    Disclosure, Dispute, Evidence):
            transcoder.register(DataclassAsDict(cls, f"ledger.{cls.__name__}"))


def test_snapshots_stored_in_the_first_format_still_load(sqlite_url):
    from test_snapshots import busy_engagement

    old = FirstSnapshotFormat(env=dict(resolve(sqlite_url).env))
    try:
        eid = busy_engagement(old, CURATOR, CLIENT, CONTRACTOR)
    finally:
        old.close()
    path = sqlite_url[len("sqlite:///"):]
    with sqlite3.connect(path) as conn:
        states = [row[0] for row in conn.execute("SELECT state FROM stored_snapshots")]
    assert states and all(b'"_type_":"ledger.Milestone","_data_":{' in s for s in states)

    app = open_ledger(sqlite_url)
    try:
        head = app.engagement(eid, AUDITOR)
        for version in (199, 200, 201, 400, 401, head.version):
            from_snapshot = app.engagement(eid, AUDITOR, version=version)
            replayed = project_aggregate(None, app.events.get(eid, lte=version))
            assert engagement_state(from_snapshot, AUDITOR) == engagement_state(replayed, AUDITOR)
            assert from_snapshot.commands == replayed.commands
        app.execute(LogNote.build(engagement_id=eid, text="one more"), CURATOR)
    finally:
        app.close()


def test_save_takes_the_library_save_steps_in_its_order():
    # `Engagements.save` repeats the library's `Application.save` with a cheaper collection of
    # events: if the library's steps change, this says so before the copy drifts.
    import inspect
    import re

    from eventsourcing.application import Application

    def steps(func):  # type: ignore[no-untyped-def]
        return re.findall(r"self\.(_record|_take_snapshots|_notify|notify)\(",
                          inspect.getsource(func))

    assert steps(Application.save) == steps(Engagements.save) == \
        ["_record", "_take_snapshots", "_notify", "notify"]


def test_save_records_caches_snapshots_and_tells_subscribers(sqlite_url):
    from test_snapshots import busy_engagement

    app = open_ledger(sqlite_url)
    told = []
    app._notify = lambda recordings: told.append(len(recordings))  # type: ignore[method-assign]
    try:
        eid = busy_engagement(app, CURATOR, CLIENT, CONTRACTOR)
        version = app.engagement(eid, AUDITOR).version
        assert version > 400 and sum(told) == version  # every event told, in its save
        assert app.repository.cache.get(eid).version == version  # the saved one is cached
        snapshots = [s.originator_version for s in app.snapshots.get(eid)]
        assert snapshots == list(range(200, version + 1, 200))
        saved = app.save(None)  # what the library accepts, this accepts
        assert saved == []
    finally:
        app.close()


def test_generated_command_ids_are_random_version_4_uuids():
    from uuid import UUID

    from ledger.application import new_command_id

    ids = [new_command_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == "specified in RFC 4122"
