"""DESIGN section 3's rules 1, 2, 5 (release and cancel), 7, 8, 9, 10 and 11, and section 2's
lifecycle, in process through the application service on the in-memory ledger.

Every rule has a passing case and a refused case. A refusal must raise exactly the right error
(InvalidInput 2, RuleViolation 3, NotPermitted 4) and leave everything as it was: the same last
notification id, the same engagement version, the same stored events byte for byte, and the same
state whether read through the application (its cache) or replayed from the stored events.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import (
    AcceptMilestone,
    AcknowledgePlaybook,
    AmendAgreement,
    CancelMilestone,
    ChangeBudget,
    CloseEngagement,
    Command,
    DefineMilestone,
    DraftAgreement,
    FundMilestone,
    LogNote,
    OpenDispute,
    OpenEngagement,
    ReassignCurator,
    RecordCorrection,
    RecordInterview,
    ReleasePayment,
    RequestChanges,
    ResolveDispute,
    ReviewAgreement,
    SignAgreement,
    SubmitWork,
)
from ledger.errors import InvalidInput, LedgerError, NotPermitted, RuleViolation
from ledger.roles import Actor
from ledger.views import engagement_state

CURATOR = Actor.parse("curator:cara")
CLIENT = Actor.parse("client:acme")
CONTRACTOR = Actor.parse("contractor:bo")
AUDITOR = Actor.parse("auditor:ann")
ADMIN = Actor.parse("admin:root")

EXIT_CODES = {InvalidInput: 2, RuleViolation: 3, NotPermitted: 4}
HASH_A, HASH_B, HASH_C, HASH_D = "a" * 64, "b" * 64, "c" * 64, "d" * 64
STATUSES = ("defined", "funded", "submitted", "changes_requested", "accepted", "released",
            "cancelled", "disputed", "settled")


# Observing the store ---------------------------------------------------------------------------


def stored(app: Engagements, eid: UUID) -> list[tuple[int, str, bytes]]:
    """The engagement's stored events exactly as recorded."""
    return [(e.originator_version, e.topic, bytes(e.state)) for e in app.recorder.select_events(eid)]


def state(app: Engagements, eid: UUID, actor: Actor = AUDITOR) -> dict[str, Any]:
    return engagement_state(app.engagement(eid, actor), actor)


def snapshot(app: Engagements, eid: UUID) -> dict[str, Any]:
    """Everything a refusal must leave alone; the cached state must equal a replay of the store."""
    current = app.engagement(eid, AUDITOR)
    seen = engagement_state(current, AUDITOR)
    replayed = app.repository.get(eid, version=current.version)
    assert engagement_state(replayed, AUDITOR) == seen, "the cached engagement differs from the store"
    return {"last": app.recorder.max_notification_id(), "version": current.version,
            "state": seen, "events": stored(app, eid)}


def refuse(app: Engagements, eid: UUID, error: type[LedgerError], command: type[Command],
           actor: Actor, match: str | None = None, **fields: Any) -> str:
    """The command (built and executed) is refused with exactly `error`; nothing changes."""
    before = snapshot(app, eid)
    with pytest.raises(LedgerError, match=match) as info:
        app.execute(command.build(engagement_id=eid, **fields), actor)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value.message}"
    assert info.value.exit_code == EXIT_CODES[error]
    assert snapshot(app, eid) == before, "a refused command changed the store or the cache"
    return info.value.message


def do(app: Engagements, eid: UUID, command: type[Command], actor: Actor, events: int = 1,
       **fields: Any) -> str | None:
    """The command succeeds and records exactly `events` events."""
    last = app.recorder.max_notification_id() or 0
    version = app.engagement(eid, AUDITOR).version
    result = app.execute(command.build(engagement_id=eid, **fields), actor)
    assert app.recorder.max_notification_id() == last + events
    assert app.engagement(eid, AUDITOR).version == version + events
    return result


def refuse_open(app: Engagements, error: type[LedgerError], actor: Actor = CURATOR,
                **fields: Any) -> str:
    """Opening is refused with exactly `error`, and no event is recorded anywhere."""
    last = app.recorder.max_notification_id()
    with pytest.raises(LedgerError) as info:
        app.open_engagement(OpenEngagement.build(**open_fields(**fields)), actor)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value.message}"
    assert info.value.exit_code == EXIT_CODES[error]
    assert app.recorder.max_notification_id() == last
    return info.value.message


def event_types(app: Engagements, eid: UUID) -> list[str]:
    return [type(e).__name__ for e in app.events.get(eid)]


def milestone(app: Engagements, eid: UUID, mid: str) -> dict[str, Any]:
    [found] = [m for m in state(app, eid)["milestones"] if m["id"] == mid]
    return found


def agreement(app: Engagements, eid: UUID, aid: str) -> dict[str, Any]:
    [found] = [a for a in state(app, eid)["agreements"] if a["id"] == aid]
    return found


# Bringing an engagement to a stage ----------------------------------------------------------------


def open_fields(**fields: Any) -> dict[str, Any]:
    base = {"title": "Data pipeline", "client": "Acme", "contractor": "Bo", "curator": "cara",
            "budget": "10000", "currency": "EUR"}
    return {**base, **fields}


def vetting(app: Engagements, **fields: Any) -> UUID:
    return app.open_engagement(OpenEngagement.build(**open_fields(**fields)), CURATOR)


def interview(app: Engagements, eid: UUID, decision: str, events: int = 1) -> str:
    return do(app, eid, RecordInterview, CURATOR, events=events, interviewer="cara",
              scores={"scope_understanding": 4, "timeline_realism": 3},
              scenarios={"missed_deadline": "pass"}, red_flags=[], decision=decision)


def contracting(app: Engagements, **fields: Any) -> UUID:
    eid = vetting(app, **fields)
    interview(app, eid, "advance")
    return eid


def sign_both(app: Engagements, eid: UUID, aid: str) -> None:
    do(app, eid, SignAgreement, CLIENT, agreement_id=aid, party="client", signer="Ann")
    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=aid, party="contractor", signer="Bo")


def draft(app: Engagements, eid: UUID, kind: str, sha256: str = HASH_A) -> str:
    return do(app, eid, DraftAgreement, CURATOR, kind=kind, jurisdiction="DE", sha256=sha256)


def active(app: Engagements, **fields: Any) -> UUID:
    """Interviewed (advance), NDA A1 and SOW A2 signed by both: active, no milestones."""
    eid = contracting(app, **fields)
    sign_both(app, eid, draft(app, eid, "nda"))
    sign_both(app, eid, draft(app, eid, "sow", HASH_B))
    assert state(app, eid)["status"] == "active"
    return eid


def milestone_in(app: Engagements, eid: UUID, status: str, amount: str = "1000",
                 due: str = "2027-01-31") -> str:
    """A new milestone brought to `status` through the ordinary commands."""
    m = do(app, eid, DefineMilestone, CURATOR, title="Phase", amount=amount, due=due)
    if status == "defined":
        return m
    do(app, eid, FundMilestone, CLIENT, milestone_id=m)
    if status == "funded":
        return m
    if status == "cancelled":
        do(app, eid, CancelMilestone, CLIENT, milestone_id=m, reason="Descoped")
        return m
    if status in ("disputed", "settled"):
        d = do(app, eid, OpenDispute, CLIENT, milestone_id=m, party="client", reason="Late")
        if status == "settled":
            do(app, eid, ResolveDispute, CURATOR, dispute_id=d, release="0", refund=amount,
               reason="Never started")
        return m
    do(app, eid, SubmitWork, CONTRACTOR, milestone_id=m, note="PR #1")
    if status == "submitted":
        return m
    if status == "changes_requested":
        do(app, eid, RequestChanges, CLIENT, milestone_id=m, reason="No tests")
        return m
    do(app, eid, AcceptMilestone, CLIENT, milestone_id=m)
    if status == "accepted":
        return m
    assert status == "released", status
    do(app, eid, ReleasePayment, CLIENT, milestone_id=m)
    return m


@pytest.fixture
def eid(app: Engagements) -> UUID:
    """Active: NDA A1 and SOW A2 in force, budget 10000 EUR, no milestones."""
    return active(app)


# Section 2: the lifecycle ----------------------------------------------------------------------


def test_an_engagement_opens_in_vetting(app: Engagements) -> None:
    eid = vetting(app)
    seen = state(app, eid)
    assert (seen["status"], seen["outcome"], seen["version"]) == ("vetting", None, 1)
    assert (seen["budget"], seen["currency"]) == ("10000.00", "EUR")


def test_hold_keeps_vetting_and_advance_moves_to_contracting(app: Engagements) -> None:
    eid = vetting(app)
    assert interview(app, eid, "hold") == "I1"
    assert state(app, eid)["status"] == "vetting"
    assert interview(app, eid, "advance") == "I2"
    assert state(app, eid)["status"] == "contracting"


def test_reject_closes_the_engagement_as_not_hired(app: Engagements) -> None:
    eid = vetting(app)
    interview(app, eid, "hold")
    assert interview(app, eid, "reject", events=2) == "I2"
    seen = state(app, eid)
    assert (seen["status"], seen["outcome"]) == ("closed", "not_hired")
    assert seen["closed_at"] is not None
    assert event_types(app, eid)[-2:] == ["InterviewRecorded", "EngagementClosed"]
    # Closed: no further interview, no agreement; a note still goes in.
    refuse(app, eid, RuleViolation, RecordInterview, CURATOR, match="closed", interviewer="cara",
           scores={"q": 5}, decision="advance")
    refuse(app, eid, RuleViolation, DraftAgreement, CURATOR, match="closed", kind="nda",
           jurisdiction="DE", sha256=HASH_A)
    do(app, eid, LogNote, CURATOR, text="Told the contractor")


@pytest.mark.parametrize("stage", ["contracting", "active", "closed"])
def test_interviews_happen_only_in_vetting(app: Engagements, stage: str) -> None:
    eid = contracting(app) if stage == "contracting" else active(app)
    if stage == "closed":
        do(app, eid, CloseEngagement, CURATOR, outcome="terminated", reason="Budget cut")
    refuse(app, eid, RuleViolation, RecordInterview, CURATOR, interviewer="cara",
           scores={"q": 3}, decision="advance")


def test_a_sow_signed_by_both_makes_a_contracting_engagement_active(app: Engagements) -> None:
    eid = contracting(app)
    nda = draft(app, eid, "nda")
    sign_both(app, eid, nda)
    assert state(app, eid)["status"] == "contracting"  # an NDA is not a SOW
    sow = draft(app, eid, "sow", HASH_B)
    do(app, eid, SignAgreement, CLIENT, agreement_id=sow, party="client", signer="Ann")
    assert state(app, eid)["status"] == "contracting"  # one signature is not enough
    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=sow, party="contractor", signer="Bo")
    assert state(app, eid)["status"] == "active"


def test_a_sow_signed_while_vetting_goes_active_when_the_interview_advances(
        app: Engagements) -> None:
    eid = vetting(app)
    sow = draft(app, eid, "sow")
    sign_both(app, eid, sow)
    assert state(app, eid)["status"] == "vetting"  # no interview has advanced yet
    interview(app, eid, "hold")
    assert state(app, eid)["status"] == "vetting"
    interview(app, eid, "advance")  # one event: through contracting to active in the same save
    assert state(app, eid)["status"] == "active"
    version = state(app, eid)["version"]
    assert engagement_state(app.engagement(eid, AUDITOR, version=version - 1),
                            AUDITOR)["status"] == "vetting"


@pytest.mark.parametrize("stage,allowed", [("vetting", False), ("contracting", True),
                                           ("active", True), ("closed", False)])
def test_milestones_are_defined_only_in_contracting_or_active(app: Engagements, stage: str,
                                                              allowed: bool) -> None:
    eid = {"vetting": vetting, "contracting": contracting}.get(stage, active)(app)
    if stage == "closed":
        do(app, eid, CloseEngagement, CURATOR, outcome="terminated", reason="Budget cut")
    fields = {"title": "Design", "amount": "1000", "due": "2027-01-31"}
    if allowed:
        assert do(app, eid, DefineMilestone, CURATOR, **fields) == "M1"
        assert milestone(app, eid, "M1")["status"] == "defined"
    else:
        refuse(app, eid, RuleViolation, DefineMilestone, CURATOR, **fields)


@pytest.fixture
def closed(app: Engagements) -> UUID:
    """Closed as completed after M1 released and M2 cancelled; A3 (an IP draft) signed by no one."""
    eid = active(app)
    milestone_in(app, eid, "released")
    milestone_in(app, eid, "cancelled")
    assert draft(app, eid, "ip", HASH_C) == "A3"
    do(app, eid, CloseEngagement, CURATOR, outcome="completed", reason="Delivered")
    assert (state(app, eid)["status"], state(app, eid)["outcome"]) == ("closed", "completed")
    return eid


CLOSED_WRITES: list[tuple[type[Command], Actor, dict[str, Any]]] = [
    (ReassignCurator, CURATOR, {"curator": "dan", "reason": "Leave"}),
    (ChangeBudget, CLIENT, {"budget": "20000", "reason": "More work"}),
    (AcknowledgePlaybook, CONTRACTOR, {"policy_version": "2026.1"}),
    (CloseEngagement, CURATOR, {"outcome": "terminated", "reason": "Again"}),
    (RecordInterview, CURATOR, {"interviewer": "cara", "scores": {"q": 3}, "decision": "hold"}),
    (DraftAgreement, CURATOR, {"kind": "nda", "jurisdiction": "DE", "sha256": HASH_D}),
    (ReviewAgreement, CURATOR, {"agreement_id": "A1", "reviewer": "Counsel"}),
    (SignAgreement, CLIENT, {"agreement_id": "A3", "party": "client", "signer": "Ann"}),
    (AmendAgreement, CURATOR, {"agreement_id": "A1", "sha256": HASH_D, "reason": "Fix"}),
    (DefineMilestone, CURATOR, {"title": "More", "amount": "10", "due": "2027-01-31"}),
    (FundMilestone, CLIENT, {"milestone_id": "M1"}),
    (SubmitWork, CONTRACTOR, {"milestone_id": "M1", "note": "Late"}),
    (RequestChanges, CLIENT, {"milestone_id": "M1", "reason": "More"}),
    (AcceptMilestone, CLIENT, {"milestone_id": "M1"}),
    (ReleasePayment, CLIENT, {"milestone_id": "M1"}),
    (CancelMilestone, CLIENT, {"milestone_id": "M1", "reason": "Gone"}),
]


@pytest.mark.parametrize("command,actor,fields", CLOSED_WRITES,
                         ids=[c.__name__ for c, _, _ in CLOSED_WRITES])
def test_a_closed_engagement_refuses_every_write(app: Engagements, closed: UUID,
                                                 command: type[Command], actor: Actor,
                                                 fields: dict[str, Any]) -> None:
    refuse(app, closed, RuleViolation, command, actor, **fields)
    refuse(app, closed, RuleViolation, command, ADMIN, **fields)


def test_a_closed_engagement_still_takes_notes_and_corrections(app: Engagements,
                                                               closed: UUID) -> None:
    do(app, closed, LogNote, CURATOR, text="Final invoice sent")
    do(app, closed, RecordCorrection, CURATOR, version=2, reason="Wrong interviewer name")
    seen = state(app, closed)
    assert seen["status"] == "closed"
    assert seen["notes"][-1]["text"] == "Final invoice sent"
    assert seen["corrections"][-1]["version"] == 2


@pytest.mark.parametrize("status", ["defined", "funded", "submitted", "changes_requested",
                                    "accepted", "disputed"])
def test_close_is_refused_while_a_milestone_is_open(app: Engagements, eid: UUID,
                                                    status: str) -> None:
    milestone_in(app, eid, "released")
    m = milestone_in(app, eid, status)
    message = refuse(app, eid, RuleViolation, CloseEngagement, CURATOR, outcome="completed",
                     reason="Done")
    assert m in message


def test_close_succeeds_once_every_milestone_is_released_settled_or_cancelled(
        app: Engagements, eid: UUID) -> None:
    for status in ("released", "settled", "cancelled"):
        milestone_in(app, eid, status)
    do(app, eid, CloseEngagement, CURATOR, outcome="terminated", reason="Ended early")
    seen = state(app, eid)
    assert (seen["status"], seen["outcome"]) == ("closed", "terminated")


def test_close_without_milestones_is_allowed_and_not_hired_is_not_a_close_outcome(
        app: Engagements, eid: UUID) -> None:
    refuse(app, eid, InvalidInput, CloseEngagement, CURATOR, outcome="not_hired", reason="x")
    do(app, eid, CloseEngagement, CURATOR, outcome="completed", reason="Nothing to do")


# Rule 1: the milestone transition table -------------------------------------------------------------

#: command, actor, extra fields, the statuses it may start from, the status it leads to.
TRANSITIONS: list[tuple[type[Command], Actor, dict[str, Any], tuple[str, ...], str]] = [
    (FundMilestone, CLIENT, {}, ("defined",), "funded"),
    (SubmitWork, CONTRACTOR, {"note": "PR #2"}, ("funded", "changes_requested"), "submitted"),
    (RequestChanges, CLIENT, {"reason": "Fails on CI"}, ("submitted",), "changes_requested"),
    (AcceptMilestone, CLIENT, {}, ("submitted",), "accepted"),
    (ReleasePayment, CLIENT, {}, ("accepted",), "released"),
    (CancelMilestone, CLIENT, {"reason": "Descoped"}, ("defined", "funded", "changes_requested"),
     "cancelled"),
]
CELLS = [pytest.param(command, actor, fields, status, status in allowed, to,
                      id=f"{command.__name__}-from-{status}")
         for command, actor, fields, allowed, to in TRANSITIONS for status in STATUSES]


@pytest.mark.parametrize("command,actor,fields,status,allowed,to", CELLS)
def test_milestone_transition_table(app: Engagements, eid: UUID, command: type[Command],
                                    actor: Actor, fields: dict[str, Any], status: str,
                                    allowed: bool, to: str) -> None:
    m = milestone_in(app, eid, status)
    if allowed:
        do(app, eid, command, actor, milestone_id=m, **fields)
        assert milestone(app, eid, m)["status"] == to
    else:
        refuse(app, eid, RuleViolation, command, actor, milestone_id=m, **fields)
        refuse(app, eid, RuleViolation, command, ADMIN, milestone_id=m, **fields)
        assert milestone(app, eid, m)["status"] == status


# Rule 2: a SOW in force to fund; milestones within the budget ------------------------------------


def test_funding_needs_a_sow_signed_by_both_in_force(app: Engagements) -> None:
    eid = contracting(app)
    m = do(app, eid, DefineMilestone, CURATOR, title="Design", amount="1000", due="2027-01-31")
    refuse(app, eid, RuleViolation, FundMilestone, CLIENT, match="SOW", milestone_id=m)
    sign_both(app, eid, draft(app, eid, "nda"))  # another kind does not count
    refuse(app, eid, RuleViolation, FundMilestone, CLIENT, match="SOW", milestone_id=m)
    sow = draft(app, eid, "sow", HASH_B)
    refuse(app, eid, RuleViolation, FundMilestone, CLIENT, match="SOW", milestone_id=m)
    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=sow, party="contractor", signer="Bo")
    refuse(app, eid, RuleViolation, FundMilestone, CLIENT, match="SOW", milestone_id=m)
    do(app, eid, SignAgreement, CLIENT, agreement_id=sow, party="client", signer="Ann")
    do(app, eid, FundMilestone, CLIENT, milestone_id=m)
    assert milestone(app, eid, m)["status"] == "funded"
    assert state(app, eid)["money"]["escrow"] == "1000.00"


def test_milestones_never_total_more_than_the_budget(app: Engagements, eid: UUID) -> None:
    do(app, eid, DefineMilestone, CURATOR, title="One", amount="6000", due="2027-01-31")
    refuse(app, eid, RuleViolation, DefineMilestone, CURATOR, match="budget", title="Two",
           amount="4000.01", due="2027-01-31")
    do(app, eid, DefineMilestone, CURATOR, title="Two", amount="4000", due="2027-01-31")
    refuse(app, eid, RuleViolation, DefineMilestone, CURATOR, match="budget", title="Three",
           amount="0.01", due="2027-01-31")
    # A cancelled milestone no longer counts.
    do(app, eid, CancelMilestone, CLIENT, milestone_id="M1", reason="Descoped")
    do(app, eid, DefineMilestone, CURATOR, title="Three", amount="6000", due="2027-01-31")
    assert state(app, eid)["money"]["committed"] == "10000.00"


def test_the_budget_never_drops_below_what_milestones_total(app: Engagements, eid: UUID) -> None:
    milestone_in(app, eid, "funded", amount="4000")
    milestone_in(app, eid, "defined", amount="3000")
    m3 = milestone_in(app, eid, "defined", amount="2000")
    refuse(app, eid, RuleViolation, ChangeBudget, CLIENT, match="budget", budget="8999.99",
           reason="Cut")
    do(app, eid, ChangeBudget, CLIENT, budget="9000", reason="Cut to what is planned")
    assert state(app, eid)["budget"] == "9000.00"
    do(app, eid, CancelMilestone, CLIENT, milestone_id=m3, reason="Descoped")
    do(app, eid, ChangeBudget, CLIENT, budget="7000", reason="Descoped")
    refuse(app, eid, RuleViolation, ChangeBudget, CLIENT, budget="6999", reason="Cut")
    do(app, eid, ChangeBudget, CLIENT, budget="25000.50", reason="Phase two")
    assert state(app, eid)["budget"] == "25000.50"


def test_funding_goes_on_while_an_amended_sow_waits_for_signatures(app: Engagements,
                                                                   eid: UUID) -> None:
    m = milestone_in(app, eid, "defined")
    do(app, eid, AmendAgreement, CURATOR, agreement_id="A2", sha256=HASH_D, reason="New rates")
    do(app, eid, FundMilestone, CLIENT, milestone_id=m)
    assert state(app, eid)["status"] == "active"


# Rule 5: money leaves escrow only by release of an accepted milestone or by cancellation --------


@pytest.mark.parametrize("status", ["funded", "changes_requested"])
def test_cancelling_a_funded_milestone_refunds_its_escrow(app: Engagements, eid: UUID,
                                                          status: str) -> None:
    m = milestone_in(app, eid, status, amount="1500.50")
    assert state(app, eid)["money"]["escrow"] == "1500.50"
    do(app, eid, CancelMilestone, CLIENT, milestone_id=m, reason="Descoped")
    money = state(app, eid)["money"]
    assert (money["funded"], money["refunded"], money["released"], money["escrow"]) == (
        "1500.50", "1500.50", "0.00", "0.00")
    [cancelled] = [e for e in app.events.get(eid) if type(e).__name__ == "MilestoneCancelled"]
    assert cancelled.refunded == Decimal("1500.50")


def test_cancelling_an_unfunded_milestone_refunds_nothing(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "defined")
    do(app, eid, CancelMilestone, CLIENT, milestone_id=m, reason="Descoped")
    money = state(app, eid)["money"]
    assert (money["funded"], money["refunded"], money["escrow"]) == ("0.00", "0.00", "0.00")


def test_release_pays_only_an_accepted_milestone(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "submitted", amount="2500")
    refuse(app, eid, RuleViolation, ReleasePayment, CLIENT, milestone_id=m)
    assert state(app, eid)["money"]["escrow"] == "2500.00"
    do(app, eid, AcceptMilestone, CLIENT, milestone_id=m)
    do(app, eid, ReleasePayment, CLIENT, milestone_id=m)
    money = state(app, eid)["money"]
    assert (money["released"], money["escrow"], money["refunded"]) == ("2500.00", "0.00", "0.00")
    refuse(app, eid, RuleViolation, ReleasePayment, CLIENT, milestone_id=m)
    refuse(app, eid, RuleViolation, CancelMilestone, CLIENT, milestone_id=m, reason="Refund")


@pytest.mark.parametrize("command,fields", [(ReleasePayment, {}),
                                            (CancelMilestone, {"reason": "Refund me"})])
def test_a_disputed_milestone_is_frozen(app: Engagements, eid: UUID, command: type[Command],
                                        fields: dict[str, Any]) -> None:
    m = milestone_in(app, eid, "disputed")
    refuse(app, eid, RuleViolation, command, CLIENT, match="dispute", milestone_id=m, **fields)
    assert state(app, eid)["money"]["escrow"] == "1000.00"


# Rule 7: money is conserved at every version -------------------------------------------------------


def test_money_is_conserved_at_every_version(app: Engagements) -> None:
    eid = active(app, budget="100000")
    released = milestone_in(app, eid, "released", amount="1000.10")
    refunded = milestone_in(app, eid, "cancelled", amount="2000.20")
    held = milestone_in(app, eid, "submitted", amount="3000.30")
    changes = milestone_in(app, eid, "changes_requested", amount="400.40")
    settled = milestone_in(app, eid, "settled", amount="500.50")
    never_funded = milestone_in(app, eid, "defined", amount="600.60")
    do(app, eid, CancelMilestone, CLIENT, milestone_id=never_funded, reason="Not needed")
    do(app, eid, CancelMilestone, CLIENT, milestone_id=changes, reason="Gave up")

    current = app.engagement(eid, AUDITOR).version
    for version in range(1, current + 1):
        engagement = app.engagement(eid, AUDITOR, version=version)
        events = [e for e in app.events.get(eid) if e.originator_version <= version]
        funded = sum((e.amount for e in events if type(e).__name__ == "MilestoneFunded"),
                     Decimal(0))
        paid = sum((e.amount for e in events if type(e).__name__ == "PaymentReleased"), Decimal(0))
        paid += sum((e.release for e in events if type(e).__name__ == "DisputeResolved"),
                    Decimal(0))
        back = sum((e.refunded for e in events if type(e).__name__ == "MilestoneCancelled"),
                   Decimal(0))
        back += sum((e.refund for e in events if type(e).__name__ == "DisputeResolved"),
                    Decimal(0))
        escrow = sum((m.amount for m in engagement.milestones.values()
                      if m.status in ("funded", "submitted", "changes_requested", "accepted",
                                      "disputed")), Decimal(0))
        assert (engagement.funded, engagement.released, engagement.refunded) == (funded, paid, back)
        assert engagement.escrow == escrow, f"version {version}"
        assert funded == paid + back + escrow, f"money not conserved at version {version}"

    money = state(app, eid)["money"]
    assert money == {"funded": "6901.50", "released": "1000.10", "refunded": "2901.10",
                     "escrow": "3000.30", "committed": "4500.90"}
    assert {m: milestone(app, eid, m)["status"] for m in (released, refunded, held, settled)} == {
        released: "released", refunded: "cancelled", held: "submitted", settled: "settled"}


# Agreements: signatures and amendments -------------------------------------------------------------


def test_a_party_signs_a_version_once(app: Engagements) -> None:
    eid = contracting(app)
    a = draft(app, eid, "nda")
    do(app, eid, SignAgreement, CLIENT, agreement_id=a, party="client", signer="Ann")
    refuse(app, eid, RuleViolation, SignAgreement, CLIENT, match="already signed",
           agreement_id=a, party="client", signer="Ann")
    refuse(app, eid, RuleViolation, SignAgreement, ADMIN, agreement_id=a, party="client",
           signer="Someone else")
    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=a, party="contractor", signer="Bo")
    # In force: neither party signs it again.
    refuse(app, eid, RuleViolation, SignAgreement, CONTRACTOR, agreement_id=a, party="contractor",
           signer="Bo")
    refuse(app, eid, RuleViolation, SignAgreement, CLIENT, agreement_id=a, party="client",
           signer="Ann")
    assert agreement(app, eid, a)["status"] == "signed"


def test_an_amendment_takes_over_only_when_both_parties_sign_it(app: Engagements,
                                                                eid: UUID) -> None:
    assert do(app, eid, AmendAgreement, CURATOR, agreement_id="A2", sha256=HASH_D,
              reason="New rates") == "v2"
    sow = agreement(app, eid, "A2")
    assert (sow["status"], sow["in_force_version"]) == ("signed", 1)
    assert [v["status"] for v in sow["versions"]] == ["signed", "draft"]
    assert sow["versions"][1]["sha256"] == HASH_D

    do(app, eid, SignAgreement, CONTRACTOR, agreement_id="A2", party="contractor", signer="Bo")
    sow = agreement(app, eid, "A2")
    assert sow["in_force_version"] == 1
    assert [v["status"] for v in sow["versions"]] == ["signed", "draft"]

    do(app, eid, SignAgreement, CLIENT, agreement_id="A2", party="client", signer="Ann")
    sow = agreement(app, eid, "A2")
    assert (sow["status"], sow["in_force_version"]) == ("signed", 2)
    assert [v["status"] for v in sow["versions"]] == ["superseded", "signed"]
    assert state(app, eid)["status"] == "active"


def test_an_amendment_needs_a_changed_document(app: Engagements, eid: UUID) -> None:
    refuse(app, eid, RuleViolation, AmendAgreement, CURATOR, agreement_id="A1", sha256=HASH_A,
           reason="Same file")
    do(app, eid, AmendAgreement, CURATOR, agreement_id="A1", sha256=HASH_D, reason="New file")


def test_an_unsigned_draft_amended_is_superseded_and_signatures_start_again(
        app: Engagements) -> None:
    eid = contracting(app)
    a = draft(app, eid, "sow")
    do(app, eid, SignAgreement, CLIENT, agreement_id=a, party="client", signer="Ann")
    do(app, eid, AmendAgreement, CURATOR, agreement_id=a, sha256=HASH_D, reason="Typo")
    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=a, party="contractor", signer="Bo")
    assert (agreement(app, eid, a)["status"], state(app, eid)["status"]) == ("draft",
                                                                             "contracting")
    do(app, eid, SignAgreement, CLIENT, agreement_id=a, party="client", signer="Ann")
    sow = agreement(app, eid, a)
    assert (sow["in_force_version"], [v["status"] for v in sow["versions"]]) == (
        2, ["superseded", "signed"])
    assert state(app, eid)["status"] == "active"


def test_a_version_is_reviewed_once(app: Engagements, eid: UUID) -> None:
    do(app, eid, ReviewAgreement, CURATOR, agreement_id="A1", reviewer="Counsel DE")
    refuse(app, eid, RuleViolation, ReviewAgreement, CURATOR, agreement_id="A1",
           reviewer="Counsel DE")
    assert agreement(app, eid, "A1")["versions"][0]["reviewed_by"] == "Counsel DE"


# Rule 8: input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("currency,good,bad", [("EUR", "10.25", "10.255"),
                                               ("JPY", "1500", "1500.5"),
                                               ("KWD", "1.125", "1.1255")])
def test_amounts_have_at_most_the_currencys_minor_units(app: Engagements, currency: str,
                                                        good: str, bad: str) -> None:
    refuse_open(app, InvalidInput, budget=bad, currency=currency)
    eid = active(app, budget="100000", currency=currency)
    refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, match="decimal places", title="T",
           amount=bad, due="2027-01-31")
    refuse(app, eid, InvalidInput, ChangeBudget, CLIENT, match="decimal places",
           budget=f"9{bad}", reason="More")
    assert do(app, eid, DefineMilestone, CURATOR, title="T", amount=good, due="2027-01-31") == "M1"
    do(app, eid, ChangeBudget, CLIENT, budget=f"9{good}", reason="Less")
    assert Decimal(milestone(app, eid, "M1")["amount"]) == Decimal(good)
    assert Decimal(state(app, eid)["budget"]) == Decimal(f"9{good}")


@pytest.mark.parametrize("amount", ["-5", "0", "0.00", "abc", "1,5", "", "NaN", "Infinity",
                                    "10 EUR"])
def test_amounts_are_positive_decimals(app: Engagements, eid: UUID, amount: str) -> None:
    refuse_open(app, InvalidInput, budget=amount)
    refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, title="T", amount=amount,
           due="2027-01-31")
    refuse(app, eid, InvalidInput, ChangeBudget, CLIENT, budget=amount, reason="x")


@pytest.mark.parametrize("due", ["31/12/2026", "2026-13-01", "2026-02-30", "tomorrow", "",
                                 "2026-12-31T10:00:00", "1767139200", "Dec 31 2026"])
def test_dates_are_iso_8601(app: Engagements, eid: UUID, due: str) -> None:
    refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, title="T", amount="10", due=due)


@pytest.mark.parametrize("due", ["2026-12-31T00:00:00", "2026-12-31T00:00:00Z"])
def test_a_due_date_is_a_calendar_date_not_a_time(app: Engagements, eid: UUID, due: str) -> None:
    """`--due YYYY-MM-DD`; ledger.validation.parse_date refuses times ("must be a date")."""
    refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, title="T", amount="10", due=due)


def test_an_iso_date_is_accepted(app: Engagements, eid: UUID) -> None:
    do(app, eid, DefineMilestone, CURATOR, title="T", amount="10", due="2027-02-28")
    assert milestone(app, eid, "M1")["due"] == "2027-02-28"


def test_names_are_1_to_200_characters(app: Engagements, eid: UUID) -> None:
    for name in ("x" * 201, "", "   "):
        refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, title=name, amount="10",
               due="2027-01-31")
        refuse(app, eid, InvalidInput, ReassignCurator, CURATOR, curator=name, reason="Leave")
        refuse_open(app, InvalidInput, title=name)
        refuse_open(app, InvalidInput, contractor=name)
    do(app, eid, DefineMilestone, CURATOR, title="x" * 200, amount="10", due="2027-01-31")
    do(app, eid, ReassignCurator, CURATOR, curator="é" * 200, reason="Leave")
    assert milestone(app, eid, "M1")["title"] == "x" * 200
    vetting(app, title="t" * 200, contractor="B")


def test_free_text_is_at_most_10000_characters(app: Engagements, eid: UUID) -> None:
    refuse(app, eid, InvalidInput, LogNote, CURATOR, text="x" * 10_001)
    refuse(app, eid, InvalidInput, ChangeBudget, CLIENT, budget="20000", reason="x" * 10_001)
    refuse(app, eid, InvalidInput, LogNote, CURATOR, text="")
    do(app, eid, LogNote, CURATOR, text="x" * 10_000)
    assert state(app, eid)["notes"][-1]["text"] == "x" * 10_000


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\r", "\x7f", "\x85", "\u2028"])
def test_control_characters_are_refused(app: Engagements, eid: UUID, char: str) -> None:
    refuse(app, eid, InvalidInput, LogNote, CURATOR, text=f"before{char}after")
    refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, title=f"T{char}", amount="10",
           due="2027-01-31")
    refuse_open(app, InvalidInput, client=f"Acme{char}")


def test_newline_and_tab_are_allowed_in_free_text_but_not_in_names(app: Engagements,
                                                                   eid: UUID) -> None:
    text = "Line one\nLine two\n\tindented"
    do(app, eid, LogNote, CURATOR, text=text)
    assert state(app, eid)["notes"][-1]["text"] == text
    do(app, eid, DefineMilestone, CURATOR, title="T", amount="10", due="2027-01-31",
       criteria="1. tests\n2. docs\tall green")
    for name in ("Line\nbreak", "Tab\there"):
        refuse(app, eid, InvalidInput, DefineMilestone, CURATOR, title=name, amount="10",
               due="2027-01-31")


def test_unknown_engagements_are_invalid_input(app: Engagements) -> None:
    last = app.recorder.max_notification_id()
    for actor in (CURATOR, AUDITOR):  # input is checked before the role
        with pytest.raises(InvalidInput):
            app.execute(LogNote.build(engagement_id=uuid4(), text="Hello"), actor)
    with pytest.raises(InvalidInput):
        LogNote.build(engagement_id="not-a-uuid", text="Hello")
    with pytest.raises(InvalidInput):
        app.engagement(uuid4(), AUDITOR)
    with pytest.raises(InvalidInput):
        app.engagement("E-42", AUDITOR)
    assert app.recorder.max_notification_id() == last


def test_unknown_milestones_and_agreements_are_invalid_input(app: Engagements, eid: UUID) -> None:
    milestone_in(app, eid, "defined")
    for mid in ("M2", "M99", "X1", "m1", "M0", ""):
        refuse(app, eid, InvalidInput, FundMilestone, CLIENT, milestone_id=mid)
        refuse(app, eid, InvalidInput, CancelMilestone, CLIENT, milestone_id=mid, reason="x")
    for aid in ("A3", "A99", "B1", ""):
        refuse(app, eid, InvalidInput, SignAgreement, CLIENT, agreement_id=aid, party="client",
               signer="Ann")
        refuse(app, eid, InvalidInput, ReviewAgreement, CURATOR, agreement_id=aid, reviewer="C")
        refuse(app, eid, InvalidInput, AmendAgreement, CURATOR, agreement_id=aid, sha256=HASH_D,
               reason="x")
    do(app, eid, FundMilestone, CLIENT, milestone_id="M1")


@pytest.mark.parametrize("code,good", [("DE", True), ("US-CA", True), ("gb", True),
                                       ("XX", False), ("US-ZZ", False), ("DEU", False),
                                       ("EU", False), ("", False), ("US-", False)])
def test_jurisdictions_are_iso_3166(app: Engagements, eid: UUID, code: str, good: bool) -> None:
    if good:
        assert do(app, eid, DraftAgreement, CURATOR, kind="nda", jurisdiction=code,
                  sha256=HASH_D) == "A3"
        assert agreement(app, eid, "A3")["jurisdiction"] == code.upper()
    else:
        refuse(app, eid, InvalidInput, DraftAgreement, CURATOR, kind="nda", jurisdiction=code,
               sha256=HASH_D)


def test_unknown_currencies_kinds_decisions_parties_and_outcomes_are_invalid(
        app: Engagements, eid: UUID) -> None:
    for currency in ("ABC", "EU", "EURO", "", "€"):
        refuse_open(app, InvalidInput, currency=currency)
    assert state(app, vetting(app, currency="jpy", budget="500"))["currency"] == "JPY"
    refuse(app, eid, InvalidInput, DraftAgreement, CURATOR, kind="contract", jurisdiction="DE",
           sha256=HASH_D)
    refuse(app, eid, InvalidInput, DraftAgreement, CURATOR, kind="nda", jurisdiction="DE",
           sha256="not-a-hash")
    refuse(app, eid, InvalidInput, SignAgreement, ADMIN, agreement_id="A1", party="vendor",
           signer="V")
    refuse(app, eid, InvalidInput, CloseEngagement, CURATOR, outcome="abandoned", reason="x")
    other = vetting(app)
    refuse(app, other, InvalidInput, RecordInterview, CURATOR, interviewer="cara",
           scores={"q": 3}, decision="maybe")
    refuse(app, other, InvalidInput, RecordInterview, CURATOR, interviewer="cara",
           scores={"q": 6}, decision="hold")
    refuse(app, other, InvalidInput, RecordInterview, CURATOR, interviewer="cara",
           scores={}, decision="hold")
    refuse(app, other, InvalidInput, RecordInterview, CURATOR, interviewer="cara",
           scores={"q": 3}, scenarios={"missed_deadline": "maybe"}, decision="hold")
    refuse(app, other, InvalidInput, LogNote, CURATOR, text="x", unexpected="field")


def test_correct_names_an_existing_version(app: Engagements, eid: UUID) -> None:
    current = state(app, eid)["version"]
    for version in (0, -1, current + 1, current + 100):
        refuse(app, eid, InvalidInput, RecordCorrection, CURATOR, match="version",
               version=version, reason="Wrong")
    do(app, eid, RecordCorrection, CURATOR, version=current, reason="Wrong signer name")
    do(app, eid, RecordCorrection, CURATOR, version=1, reason="Wrong title")
    assert [c["version"] for c in state(app, eid)["corrections"]] == [current, 1]


def test_reading_a_version_out_of_range_is_invalid_input(app: Engagements, eid: UUID) -> None:
    current = state(app, eid)["version"]
    for version in (0, current + 1):
        with pytest.raises(InvalidInput):
            app.engagement(eid, AUDITOR, version=version)
    assert engagement_state(app.engagement(eid, AUDITOR, version=1), AUDITOR)["status"] == "vetting"


# Rule 9: input, then role, then rules -----------------------------------------------------------------


def test_invalid_input_is_reported_before_the_role(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "funded")
    refuse(app, eid, InvalidInput, ChangeBudget, CONTRACTOR, budget="20000.001", reason="x")
    refuse(app, eid, InvalidInput, ChangeBudget, AUDITOR, budget="-1", reason="x")
    refuse(app, eid, InvalidInput, DefineMilestone, CONTRACTOR, title="T", amount="10.001",
           due="2027-01-31")
    refuse(app, eid, InvalidInput, DefineMilestone, CLIENT, title="T", amount="10",
           due="31/01/2027")
    refuse(app, eid, InvalidInput, FundMilestone, CONTRACTOR, milestone_id="M9")
    refuse(app, eid, InvalidInput, SubmitWork, CLIENT, milestone_id=m, note="x" * 10_001)
    refuse(app, eid, InvalidInput, RecordCorrection, CONTRACTOR, version=999, reason="x")
    refuse(app, eid, InvalidInput, SignAgreement, AUDITOR, agreement_id="A9", party="client",
           signer="Ann")


def test_the_role_is_reported_before_the_rules(app: Engagements, eid: UUID) -> None:
    funded = milestone_in(app, eid, "funded", amount="4000")
    refuse(app, eid, NotPermitted, FundMilestone, CONTRACTOR, milestone_id=funded)  # not fundable
    refuse(app, eid, NotPermitted, ReleasePayment, CURATOR, milestone_id=funded)  # not accepted
    refuse(app, eid, NotPermitted, ChangeBudget, CONTRACTOR, budget="1", reason="x")  # < committed
    refuse(app, eid, NotPermitted, DefineMilestone, CLIENT, title="T", amount="9000",
           due="2027-01-31")  # over the budget
    refuse(app, eid, NotPermitted, SignAgreement, CLIENT, agreement_id="A1", party="contractor",
           signer="Bo")  # already in force, and not the client's party
    refuse(app, eid, NotPermitted, RecordInterview, CONTRACTOR, interviewer="bo",
           scores={"q": 5}, decision="advance")  # not vetting


def test_on_a_closed_engagement_the_role_comes_before_the_rule(app: Engagements,
                                                               closed: UUID) -> None:
    refuse(app, closed, NotPermitted, CloseEngagement, CLIENT, outcome="completed", reason="x")
    refuse(app, closed, NotPermitted, ChangeBudget, CONTRACTOR, budget="5", reason="x")
    refuse(app, closed, NotPermitted, LogNote, AUDITOR, text="Not mine to write")
    refuse(app, closed, InvalidInput, FundMilestone, CONTRACTOR, milestone_id="M7")


# Rule 10: two writers never lose an update ---------------------------------------------------------


@pytest.fixture
def two_writers(sqlite_url: str) -> tuple[Engagements, Engagements]:
    first, second = open_ledger(sqlite_url), open_ledger(sqlite_url)
    yield first, second
    first.close()
    second.close()


def race(late: Engagements, before_save: Callable[[], None]) -> None:
    """Makes `late`'s next save find that another writer saved first (a version conflict)."""
    real_save = late.save
    calls = []

    def save(*aggregates: Any, **kwargs: Any) -> Any:
        if not calls:
            calls.append(1)
            before_save()
        return real_save(*aggregates, **kwargs)

    late.save = save  # type: ignore[method-assign]


def test_a_conflicting_note_is_retried_against_the_fresh_state(
        two_writers: tuple[Engagements, Engagements]) -> None:
    first, second = two_writers
    eid = active(first)
    assert state(second, eid) == state(first, eid)  # both have loaded it
    version = state(first, eid)["version"]
    race(second, lambda: first.execute(LogNote.build(engagement_id=eid, text="From the first"),
                                       CURATOR))
    second.execute(LogNote.build(engagement_id=eid, text="From the second"), CURATOR)

    assert second.conflicts_retried == 1
    for app in (first, second):
        seen = state(app, eid)
        assert seen["version"] == version + 2
        assert [n["text"] for n in seen["notes"]] == ["From the first", "From the second"]
    assert [v for v, _, _ in stored(first, eid)] == list(range(1, version + 3))


def test_a_conflicting_command_is_refused_when_the_rule_no_longer_holds(
        two_writers: tuple[Engagements, Engagements]) -> None:
    first, second = two_writers
    eid = active(first)  # budget 10000
    assert state(second, eid) == state(first, eid)
    last = first.recorder.max_notification_id()
    race(second, lambda: first.execute(DefineMilestone.build(
        engagement_id=eid, title="First", amount="6000", due="2027-01-31"), CURATOR))

    with pytest.raises(RuleViolation, match="budget"):
        second.execute(DefineMilestone.build(engagement_id=eid, title="Second", amount="6000",
                                             due="2027-01-31"), CURATOR)
    assert second.conflicts_retried == 1
    assert first.recorder.max_notification_id() == last + 1
    for app in (first, second):
        seen = state(app, eid)
        assert [(m["id"], m["title"], m["amount"]) for m in seen["milestones"]] == [
            ("M1", "First", "6000.00")]
        assert seen["money"]["committed"] == "6000.00"


def test_without_a_conflict_the_second_writer_reads_the_first_writers_events(
        two_writers: tuple[Engagements, Engagements]) -> None:
    first, second = two_writers
    eid = active(first)
    state(second, eid)  # cached in the second application
    first.execute(DefineMilestone.build(engagement_id=eid, title="First", amount="6000",
                                        due="2027-01-31"), CURATOR)
    with pytest.raises(RuleViolation, match="budget"):
        second.execute(DefineMilestone.build(engagement_id=eid, title="Second", amount="6000",
                                             due="2027-01-31"), CURATOR)
    assert second.execute(DefineMilestone.build(engagement_id=eid, title="Second",
                                                amount="4000", due="2027-01-31"), CURATOR) == "M2"
    assert state(first, eid)["money"]["committed"] == "10000.00"


def test_an_engagement_read_before_a_conflict_never_shows_the_lost_attempt(
        two_writers: tuple[Engagements, Engagements]) -> None:
    """What the application handed out must never show a fact that was not recorded."""
    first, second = two_writers
    eid = active(first)
    held = second.engagement(eid, AUDITOR)  # e.g. the engagement a TUI screen is showing
    version = held.version
    race(second, lambda: first.execute(DefineMilestone.build(
        engagement_id=eid, title="First", amount="6000", due="2027-01-31"), CURATOR))
    with pytest.raises(RuleViolation):
        second.execute(DefineMilestone.build(engagement_id=eid, title="Second", amount="6000",
                                             due="2027-01-31"), CURATOR)
    recorded = {m.id: m.title for m in second.repository.get(eid, version=version + 1)
                .milestones.values()}
    assert recorded == {"M1": "First"}
    shown = {m.id: m.title for m in held.milestones.values()}
    assert "Second" not in shown.values(), (
        f"a reader's engagement at version {held.version} shows {shown}, never recorded")


# Rule 11: nothing recorded is ever edited --------------------------------------------------------------


def test_a_correction_adds_an_event_and_leaves_the_earlier_ones_as_they_were(
        app: Engagements, eid: UUID) -> None:
    do(app, eid, ChangeBudget, CLIENT, budget="1000", reason="Typo: meant 10000")
    wrong = state(app, eid)["version"]
    before = stored(app, eid)

    do(app, eid, RecordCorrection, CURATOR, version=wrong, reason="Budget typed without a zero")
    do(app, eid, ChangeBudget, CLIENT, budget="10000", reason="Compensates the typo")
    after = stored(app, eid)

    assert after[:len(before)] == before, "an earlier event was edited"
    assert [v for v, _, _ in after] == list(range(1, wrong + 3))
    assert event_types(app, eid)[-3:] == ["BudgetChanged", "CorrectionRecorded", "BudgetChanged"]
    seen = state(app, eid)
    assert seen["budget"] == "10000.00"
    assert seen["corrections"][0]["version"] == wrong
    assert seen["corrections"][0]["reason"] == "Budget typed without a zero"
    # The wrong fact is still there to read, at its version.
    assert engagement_state(app.engagement(eid, AUDITOR, version=wrong),
                            AUDITOR)["budget"] == "1000.00"


def test_refusals_leave_every_stored_event_as_it_was(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "accepted")
    before = stored(app, eid)
    for command, actor, fields in [
        (FundMilestone, CLIENT, {"milestone_id": m}),
        (SubmitWork, CONTRACTOR, {"milestone_id": m, "note": "Again"}),
        (CancelMilestone, CLIENT, {"milestone_id": m, "reason": "x"}),
        (ReleasePayment, CONTRACTOR, {"milestone_id": m}),
        (DefineMilestone, CURATOR, {"title": "T", "amount": "9500", "due": "2027-01-31"}),
    ]:
        with pytest.raises(LedgerError):
            app.execute(command.build(engagement_id=eid, **fields), actor)
    assert stored(app, eid) == before
    do(app, eid, ReleasePayment, CLIENT, milestone_id=m)
    assert stored(app, eid)[:len(before)] == before
