"""Long engagements: snapshots round-trip every entity, and replay before and after them agrees."""

from __future__ import annotations

from ledger.application import open_ledger
from ledger.commands import (DefineMilestone, DraftAgreement, FundMilestone, GrantAccess,
                             LogNote, OpenDispute, OpenEngagement, RecordDisclosure,
                             RecordInterview, SignAgreement, SubmitEvidence, SubmitWork)
from ledger.views import engagement_state


def busy_engagement(app, curator, client, contractor):  # type: ignore[no-untyped-def]
    run = app.execute
    eid = app.open_engagement(OpenEngagement.build(
        title="Long one", client="Acme", contractor="Bo", curator="cara", budget="100000",
        currency="EUR"), curator)
    run(RecordInterview.build(engagement_id=eid, interviewer="cara", scores={"scope": 4},
                              scenarios={"missed_deadline": "pass"}, red_flags=["vague"],
                              decision="advance"), curator)
    for kind in ("nda", "sow"):
        agreement = run(DraftAgreement.build(engagement_id=eid, kind=kind, jurisdiction="DE",
                                             sha256="b" * 64), curator)
        run(SignAgreement.build(engagement_id=eid, agreement_id=agreement, party="client",
                                signer="Ann"), client)
        run(SignAgreement.build(engagement_id=eid, agreement_id=agreement, party="contractor",
                                signer="Bo"), contractor)
    run(RecordDisclosure.build(engagement_id=eid, description="ERD", agreement_id="A1"), curator)
    run(DefineMilestone.build(engagement_id=eid, title="M", amount="10.50", due="2027-02-01"), curator)
    run(FundMilestone.build(engagement_id=eid, milestone_id="M1"), client)
    run(GrantAccess.build(engagement_id=eid, resource="repo", level="read", milestone_id="M1"), curator)
    run(SubmitWork.build(engagement_id=eid, milestone_id="M1", note="done"), contractor)
    run(OpenDispute.build(engagement_id=eid, milestone_id="M1", reason="late", party="client"), client)
    run(SubmitEvidence.build(engagement_id=eid, dispute_id="D1", party="client",
                             description="log"), client)
    for number in range(450):
        run(LogNote.build(engagement_id=eid, text=f"note {number}"), curator)
    return eid


def test_snapshots_round_trip_every_entity(sqlite_url, curator, client, contractor, auditor):
    app = open_ledger(sqlite_url)
    eid = busy_engagement(app, curator, client, contractor)
    head = app.engagement(eid, auditor)
    assert head.version > 400
    assert app.snapshots is not None and list(app.snapshots.get(eid))  # snapshots were taken
    at_head = engagement_state(head, auditor)
    app.close()

    fresh = open_ledger(sqlite_url)  # a new process would load from the latest snapshot
    assert engagement_state(fresh.engagement(eid, auditor), auditor) == at_head
    for version in (5, 199, 200, 201, 399, 400, head.version - 1):
        from_snapshot = fresh.engagement(eid, auditor, version=version)
        assert from_snapshot.version == version
    # Replaying without snapshots gives the same state as with them.
    from eventsourcing.application import project_aggregate

    without = project_aggregate(None, fresh.events.get(eid, lte=head.version - 1))
    assert engagement_state(without, auditor) == engagement_state(
        fresh.engagement(eid, auditor, version=head.version - 1), auditor)
    fresh.close()
