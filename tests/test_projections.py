"""Read models on SQLite and PostgreSQL: kept up to date live, they equal a rebuild from zero.

The main test writes events the way a team does (demo engagements, then commands on them
through the application service) and catches the read models up in small, uneven batches in
between, so every model sees each engagement's events split across many transactions. A
rebuild from the first event in one go must then give every table row for row. Beside it:
`projections status|rebuild` on the command line, the schema_version upgrade, and the fixes
to the summary's next milestone and the contractor record's on time / late / extended.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import (
    AcceptMilestone,
    CancelMilestone,
    DefineMilestone,
    FundMilestone,
    GrantExtension,
    LogNote,
    OpenDispute,
    ProposeMilestoneAmendment,
    RecertifyAccess,
    ReleasePayment,
    RequestChanges,
    RequestExtension,
    ResolveDispute,
    RevokeAccess,
    SignMilestoneAmendment,
    SubmitEvidence,
    SubmitWork,
    Sweep,
)
from ledger.demo import build_engagement
from ledger.errors import LedgerError
from ledger.milestones import CLOSED_STATUSES
from ledger.roles import Actor
from projections.catalog import READ_MODELS
from projections.contractor_record import contractor_record
from projections.queries import ReadModels
from projections.runner import Projector

from factories import CLIENT, CONTRACTOR, CURATOR, FixedClock, active_engagement
from tests.cli_helpers import expect_json, expect_ok, expect_refusal, run_ledger

ADMIN = "admin:ops"
AUDITOR = "auditor:ann"


# Writing events as a team does -------------------------------------------------------------


class LiveWriter:
    """New demo engagements now and then, and commands on the engagements already recorded,
    each through the application service (a refused command is simply not recorded)."""

    def __init__(self, app: Engagements, seed: int) -> None:
        self.app = app
        self.rng = random.Random(seed)
        # Engagement ids derive from command ids: unique per writer, whatever else wrote.
        self.prefix = f"live-{seed}-{uuid.uuid4().hex[:8]}"
        self.ids: list[UUID] = list(app.engagement_ids())
        self.made = 0

    def new_engagements(self, count: int) -> None:
        now = datetime.now(UTC)
        batch = [build_engagement(self.rng, f"{self.prefix}-{self.made + n}", now)
                 for n in range(count)]
        self.made += count
        self.app.save_many(batch)
        self.ids.extend(engagement.id for engagement in batch)

    def commands(self, count: int) -> None:
        for _ in range(count):
            for command, actor in self.next_step(self.pick_engagement()):
                try:
                    self.app.execute(command, actor)
                except LedgerError:
                    break  # refused by a rule: the rest of this step no longer applies

    def pick_engagement(self) -> Any:
        """Mostly one with milestones still moving: there are the interesting events."""
        for _ in range(6):
            engagement = self.app.repository.get(self.rng.choice(self.ids))
            if open_milestones(engagement):
                break
        return engagement

    def next_step(self, e: Any) -> list[tuple[Any, Actor]]:
        """One plausible next step for the engagement (a command, or a few in a row)."""
        rng, eid = self.rng, e.id
        moving = open_milestones(e)
        if not moving or rng.random() < 0.1:
            return [(LogNote.build(engagement_id=eid, text="Relayed a question."), CURATOR)]
        if rng.random() < 0.1:
            return [(Sweep.build(engagement_id=eid, what=rng.choice(["milestones", "access"])),
                     CURATOR)]
        active = [g for g in e.grants.values() if g.status == "active"]
        if active and rng.random() < 0.15:
            grant = rng.choice(active).id
            if rng.random() < 0.5:
                return [(RecertifyAccess.build(engagement_id=eid, grant_id=grant), CURATOR)]
            return [(RevokeAccess.build(engagement_id=eid, grant_id=grant,
                                        reason="No longer needed"), CURATOR)]
        m = rng.choice(moving)
        ref = {"engagement_id": eid, "milestone_id": m.id}
        pick = rng.random()
        if m.status == "defined":
            return self.amend_due(ref, m.due) if pick < 0.5 else [(FundMilestone.build(**ref),
                                                                   CLIENT)]
        if m.status in ("funded", "changes_requested"):
            if pick < 0.3:
                later = date.fromordinal(m.due.toordinal() + rng.randint(1, 20)).isoformat()
                return [(RequestExtension.build(**ref, due=later, reason="Waiting on keys"),
                         CONTRACTOR), (GrantExtension.build(**ref), CLIENT)]
            if pick < 0.45:
                return [(OpenDispute.build(**ref, party="client", reason="Not delivered"),
                         CLIENT)]
            if pick < 0.5:
                return [(CancelMilestone.build(**ref, reason="Descoped"), CLIENT)]
            return [(SubmitWork.build(**ref, note="Delivered."), CONTRACTOR)]
        if m.status == "submitted":
            if pick < 0.2:
                return self.amend_due(ref, m.due)
            if pick < 0.5:
                return [(RequestChanges.build(**ref, reason="Missing tests."), CLIENT)]
            return [(AcceptMilestone.build(**ref), CLIENT)]
        if m.status == "accepted":
            return [(ReleasePayment.build(**ref), CLIENT)]
        return self.settle(e, m)  # disputed

    def amend_due(self, ref: dict[str, Any], due: date) -> list[tuple[Any, Actor]]:
        moved = date.fromordinal(due.toordinal() + self.rng.choice([-3, 4, 9])).isoformat()
        return [(ProposeMilestoneAmendment.build(**ref, due=moved, reason="Re-planned"), CURATOR),
                (SignMilestoneAmendment.build(**ref, party="client"), CLIENT),
                (SignMilestoneAmendment.build(**ref, party="contractor"), CONTRACTOR)]

    def settle(self, e: Any, m: Any) -> list[tuple[Any, Actor]]:
        dispute = next(d for d in e.disputes.values()
                       if d.milestone == m.id and d.status in ("open", "escalated"))
        ref = {"engagement_id": e.id, "dispute_id": dispute.id}
        if not dispute.evidence and self.rng.random() < 0.5:
            return [(SubmitEvidence.build(**ref, party="contractor", description="The repo"),
                     CONTRACTOR)]
        release = m.amount if self.rng.random() < 0.5 else 0
        return [(ResolveDispute.build(
            **ref, release=str(release), refund=str(m.amount - release), reason="Mediated",
            findings={evidence.id: "Considered" for evidence in dispute.evidence}), CURATOR)]


def open_milestones(e: Any) -> list[Any]:
    if e.status == "closed":
        return []
    return [m for m in e.milestones.values() if m.status not in CLOSED_STATUSES]


# Reading every read-model table ------------------------------------------------------------


def model_tables(projector: Projector) -> list[str]:
    tables = [table for model in projector.models for table in model.table_names()]
    assert len(projector.models) == len(READ_MODELS)
    return tables


def dump_read_models(projector: Projector) -> dict[str, list[dict[str, Any]]]:
    """Every read-model table's rows, in a stable order."""
    dump = {}
    for table in model_tables(projector):
        rows = projector.store.query(f"SELECT * FROM {{{table}}}")
        dump[table] = sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))
    return dump


def assert_same_read_models(live: dict[str, list[dict[str, Any]]],
                            rebuilt: dict[str, list[dict[str, Any]]]) -> None:
    assert live.keys() == rebuilt.keys()
    for table in live:
        if live[table] == rebuilt[table]:
            continue
        as_text = {json.dumps(row, sort_keys=True, default=str) for row in live[table]}
        again = {json.dumps(row, sort_keys=True, default=str) for row in rebuilt[table]}
        only_live, only_rebuilt = sorted(as_text - again)[:3], sorted(again - as_text)[:3]
        pytest.fail(f"rm_{table} differs: {len(live[table])} rows kept live, "
                    f"{len(rebuilt[table])} rebuilt\nonly live:\n  " + "\n  ".join(only_live)
                    + "\nonly rebuilt:\n  " + "\n  ".join(only_rebuilt))


def assert_every_model_at_the_head(projector: Projector) -> None:
    head = projector.head()
    assert head > 0
    assert [(row["name"], row["position"], row["behind"]) for row in projector.status()] == [
        (cls.name, head, 0) for cls in READ_MODELS]


@pytest.fixture
def ledger_app(db_url: str) -> Iterator[Engagements]:
    app = open_ledger(db_url)
    yield app
    app.close()


# Live equals rebuilt (both backends) -------------------------------------------------------


def test_read_models_kept_up_live_equal_a_rebuild_from_zero(ledger_app: Engagements) -> None:
    app = ledger_app
    writer = LiveWriter(app, seed=7)
    rng = random.Random(11)
    projector = Projector(app)
    another = Projector(app)  # as a second process would: each re-reads the positions
    for round_number in range(40):
        writer.new_engagements(1)
        projector.catch_up(batch_size=rng.randint(1, 30))
        writer.commands(6)
        # Now and then only part of the way, or by the other projector.
        head = projector.head()
        if round_number % 3 == 0:
            projector.catch_up(batch_size=rng.randint(1, 9), until=head - rng.randint(1, 12))
        else:
            another.catch_up(batch_size=rng.randint(2, 40))
    writer.commands(60)
    projector.catch_up(batch_size=5)
    assert_every_model_at_the_head(projector)
    live = dump_read_models(projector)
    empty = [table for table, rows in live.items() if not rows]
    assert not empty, f"the writer left these tables empty, so they prove nothing: {empty}"

    applied = projector.rebuild()
    assert applied == projector.head()
    assert_every_model_at_the_head(projector)
    assert_same_read_models(live, dump_read_models(projector))


def test_a_batch_rolled_back_after_the_state_moved_on_leaves_no_stale_engagement(
        ledger_app: Engagements) -> None:
    """The state model keeps engagements in memory between batches and moves them in place;
    a batch that fails after that is rolled back, and the next one must not build on them."""
    app = ledger_app
    writer = LiveWriter(app, seed=3)
    writer.new_engagements(3)
    projector = Projector(app)
    projector.catch_up()
    writer.commands(20)
    last = projector.models[-1]  # runs after the state model, in the same transaction

    def fail(tx: Any, batch: Any) -> None:
        raise RuntimeError("the connection went away")

    last.apply = fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        projector.catch_up()
    del last.apply
    projector.catch_up()
    assert_every_model_at_the_head(projector)
    live = dump_read_models(projector)
    projector.rebuild()
    assert_same_read_models(live, dump_read_models(projector))


def test_a_changed_schema_version_rebuilds_that_model_on_the_next_start(
        ledger_app: Engagements) -> None:
    app = ledger_app
    LiveWriter(app, seed=3).new_engagements(4)
    projector = Projector(app)
    projector.catch_up()
    before = dump_read_models(projector)
    # As if the database had been kept by an earlier release of the contractor record.
    with projector.store.transaction() as tx:
        tx.execute("UPDATE {meta} SET schema_version = 1 WHERE name = 'contractors'")
        tx.execute("DELETE FROM {contractor_milestones}")
        tx.execute("UPDATE {contractors} SET on_time = 99")
    reopened = Projector(app)
    status = {row["name"]: row for row in reopened.status()}
    assert status["contractors"]["position"] == 0  # emptied, to be built again
    assert status["summary"]["position"] == reopened.head()  # the others are left alone
    reopened.catch_up()
    assert_every_model_at_the_head(reopened)
    assert_same_read_models(before, dump_read_models(reopened))


# projections status | rebuild on the command line (both backends) -------------------------


def test_projections_status_rebuild_and_an_unknown_name(db_url: str) -> None:
    expect_ok(run_ledger(db_url, None, "demo", "--engagements", "8", "--seed", "7"))
    names = [cls.name for cls in READ_MODELS]
    before = expect_json(run_ledger(db_url, AUDITOR, "projections", "status", "--format", "json"))
    head = before[0]["head"]
    assert head > 100
    assert [(r["name"], r["position"], r["behind"]) for r in before] == [
        (name, 0, head) for name in names]

    ran = expect_ok(run_ledger(db_url, ADMIN, "projections", "run"))
    assert ran.stdout.strip() == f"read models up to date: {head} events applied"
    status = expect_json(run_ledger(db_url, AUDITOR, "projections", "status", "--format", "json"))
    assert status == [{"name": cls.name, "title": cls.title, "position": head, "head": head,
                       "behind": 0} for cls in READ_MODELS]
    table = expect_ok(run_ledger(db_url, AUDITOR, "projections", "status")).stdout.splitlines()
    assert table[0].split() == ["read", "model", "position", "head", "behind", "what"]
    assert [line.split()[:4] for line in table[1:]] == [
        [name, str(head), str(head), "0"] for name in names]

    engagements = expect_json(run_ledger(db_url, AUDITOR, "engagement", "list", "--format",
                                         "json"))
    rebuilt = expect_ok(run_ledger(db_url, ADMIN, "projections", "rebuild", "summary"))
    assert rebuilt.stdout.strip() == f"rebuilt summary: {head} events applied"
    assert expect_json(run_ledger(db_url, AUDITOR, "engagement", "list", "--format",
                                  "json")) == engagements
    assert all(r["behind"] == 0 for r in expect_json(
        run_ledger(db_url, AUDITOR, "projections", "status", "--format", "json")))

    line = expect_refusal(run_ledger(db_url, ADMIN, "projections", "rebuild", "summry"), 2)
    assert line == ("ledger: no read model named 'summry'; the read models are "
                    + ", ".join(names))
    # Rebuilding is for admins only; reading the status is for every reader.
    expect_refusal(run_ledger(db_url, "curator:cara", "projections", "rebuild", "summary"), 4)


# The summary's next milestone --------------------------------------------------------------


def define(app: Engagements, eid: UUID, due: str, amount: str = "100") -> str:
    return app.execute(DefineMilestone.build(engagement_id=eid, title=f"Due {due}",
                                             amount=amount, due=due), CURATOR)


def test_next_milestone_breaks_a_tie_on_the_due_date_by_number(ledger_app: Engagements) -> None:
    app = ledger_app
    eid = active_engagement(app)
    ids = [define(app, eid, "2026-12-01") for _ in range(11)]
    assert ids[-1] == "M11"
    app.execute(CancelMilestone.build(engagement_id=eid, milestone_id="M1", reason="Dropped"),
                CLIENT)
    models = ReadModels(app, CURATOR)
    row = models.engagements()[0]
    # As text "M10" < "M11" < "M2"; by number M2 comes first.
    assert (row["next_due"], row["next_milestone"]) == ("2026-12-01", "M2")
    # An earlier date still wins over a lower number.
    define(app, eid, "2026-11-30")
    models.refresh()
    row = models.engagements()[0]
    assert (row["next_due"], row["next_milestone"]) == ("2026-11-30", "M12")


# The contractor record: on time, late and extended -----------------------------------------


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


class Milestones:
    """One engagement for contractor "Bo" whose milestones are moved on a clock."""

    def __init__(self, url: str) -> None:
        self.clock = FixedClock(at(1))
        self.app = open_ledger(url, clock=self.clock)
        self.eid = active_engagement(self.app)

    def on(self, day: int, hour: int = 9, minute: int = 0) -> Milestones:
        self.clock.now = at(day, hour, minute)
        return self

    def do(self, command: type, actor: Actor, milestone: str, **fields: Any) -> None:
        self.app.execute(command.build(engagement_id=self.eid, milestone_id=milestone, **fields),
                         actor)

    def funded(self, due: str) -> str:
        milestone = define(self.app, self.eid, due)
        self.do(FundMilestone, CLIENT, milestone)
        return milestone

    def submit(self, milestone: str) -> None:
        self.do(SubmitWork, CONTRACTOR, milestone, note="Done")

    def rework(self, milestone: str) -> None:
        self.do(RequestChanges, CLIENT, milestone, reason="Not yet")

    def extend(self, milestone: str, due: str) -> None:
        self.do(RequestExtension, CONTRACTOR, milestone, due=due, reason="Vendor delay")
        self.do(GrantExtension, CLIENT, milestone)

    def amend_due(self, milestone: str, due: str) -> None:
        self.do(ProposeMilestoneAmendment, CURATOR, milestone, due=due, reason="Re-planned")
        self.do(SignMilestoneAmendment, CLIENT, milestone, party="client")
        self.do(SignMilestoneAmendment, CONTRACTOR, milestone, party="contractor")

    def record(self, batch_size: int = 2000) -> dict[str, int]:
        """The record's milestone counts, caught up in batches of `batch_size`."""
        models = ReadModels(self.app, CURATOR, catch_up=False)
        models.projector.catch_up(batch_size=batch_size)
        return contractor_record(models, "Bo", today=date(2026, 11, 30))["milestones"]


@pytest.fixture
def milestones(db_url: str) -> Iterator[Milestones]:
    built = Milestones(db_url)
    yield built
    built.app.close()


def test_on_time_is_judged_at_the_first_delivery_against_the_due_date_then(
        milestones: Milestones) -> None:
    s = milestones
    on_time_then_reworked_late = s.on(1).funded("2026-11-10")   # M1
    late_then_extended = s.funded("2026-11-10")                  # M2
    extended_first = s.funded("2026-11-10")                      # M3
    last_minute = s.funded("2026-11-10")                         # M4
    due_moved_after = s.funded("2026-11-10")                     # M5
    s.on(8).extend(extended_first, "2026-11-20")
    s.on(9).submit(on_time_then_reworked_late)
    s.submit(due_moved_after)
    s.on(10, 23, 30).submit(last_minute)                         # the end of the due day
    s.on(11).rework(on_time_then_reworked_late)
    s.on(12).submit(late_then_extended)
    s.rework(late_then_extended)
    s.extend(late_then_extended, "2026-11-20")
    # Moved earlier after its delivery: the delivery was on time when it came.
    s.amend_due(due_moved_after, "2026-11-05")
    s.on(15).submit(on_time_then_reworked_late)                  # the latest submission is late
    s.submit(late_then_extended)                                 # ... and this one on time
    s.submit(extended_first)
    expected = {"total": 5, "submitted": 5, "on_time": 4, "late": 1, "extended": 2,
                "overdue": 0}
    assert s.record() == expected
    # Event by event gives the same as all at once.
    assert rebuilt_record(s) == expected


def rebuilt_record(s: Milestones) -> dict[str, int]:
    models = ReadModels(s.app, CURATOR, catch_up=False)
    models.projector.rebuild()
    return contractor_record(models, "Bo", today=date(2026, 11, 30))["milestones"]


def test_an_amendment_moving_the_due_date_later_counts_as_an_extension(
        milestones: Milestones) -> None:
    s = milestones
    s.on(1)
    later_by_amendment = s.funded("2026-11-10")       # M1: on time against the amended date
    earlier_by_amendment = define(s.app, s.eid, "2026-11-20")   # M2: moved earlier: late
    only_the_title = s.funded("2026-11-10")           # M3: amended, due date unchanged
    s.on(3).amend_due(later_by_amendment, "2026-11-20")
    s.amend_due(earlier_by_amendment, "2026-11-12")
    s.do(FundMilestone, CLIENT, earlier_by_amendment)
    s.do(ProposeMilestoneAmendment, CURATOR, only_the_title, title="Renamed", reason="Clearer")
    s.do(SignMilestoneAmendment, CLIENT, only_the_title, party="client")
    s.do(SignMilestoneAmendment, CONTRACTOR, only_the_title, party="contractor")
    s.on(14).submit(later_by_amendment)
    s.submit(earlier_by_amendment)
    s.submit(only_the_title)
    expected = {"total": 3, "submitted": 3, "on_time": 1, "late": 2, "extended": 1,
                "overdue": 0}
    assert s.record(batch_size=1) == expected
    assert rebuilt_record(s) == expected
