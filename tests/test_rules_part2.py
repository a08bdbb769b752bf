"""Rules added in part 2 of the domain core, in process: each with a passing and a refused case.

Access (rule 3) and its end with the milestone (rule 4), the freeze of a disputed milestone
(rule 5), dispute resolutions (rule 6), where disputes may be opened and what they may claim,
evidence numbering, recertification and revocation, extensions, milestone amendments,
disclosures and a closed engagement. Every refusal must raise the right error (InvalidInput 2,
RuleViolation 3, NotPermitted 4) and leave the store exactly as it was: the same last
notification id, the same state through the application and the same state replayed from the
stored events. Choices the spec left open follow docs/decisions.md.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import (
    AcceptMilestone,
    CancelMilestone,
    CloseEngagement,
    DefineMilestone,
    DenyExtension,
    DraftAgreement,
    EscalateDispute,
    FundMilestone,
    GrantAccess,
    GrantExtension,
    NoteMediation,
    OpenDispute,
    OpenEngagement,
    ProposeMilestoneAmendment,
    RecertifyAccess,
    RecordDisclosure,
    RecordInterview,
    ReleasePayment,
    RequestChanges,
    RequestExtension,
    ResolveDispute,
    RevokeAccess,
    SignAgreement,
    SignMilestoneAmendment,
    SubmitEvidence,
    SubmitWork,
)
from ledger.errors import InvalidInput, LedgerError, NotPermitted, RuleViolation
from ledger.roles import Actor
from ledger.views import engagement_state

from factories import (
    AUDITOR,
    CLIENT,
    CONTRACTOR,
    CURATOR,
    FixedClock,
    active_engagement,
)

ADMIN = Actor.parse("admin:root")
EXIT_CODES = {InvalidInput: 2, RuleViolation: 3, NotPermitted: 4}
HASH_A = "a" * 64
HASH_B = "b" * 64


# Helpers ------------------------------------------------------------------------------------


def snapshot(app: Engagements, eid: UUID) -> tuple[int, dict[str, Any]]:
    """The last notification id and the engagement's state, checked against a fresh replay."""
    current = app.engagement(eid, AUDITOR)
    replayed = app.repository.get(eid, version=current.version)  # from the stored events
    state = engagement_state(current, AUDITOR)
    assert engagement_state(replayed, AUDITOR) == state
    return app.recorder.max_notification_id(), state


def refuse(app: Engagements, eid: UUID, error: type[LedgerError], command: type, actor: Actor,
           match: str | None = None, **fields: Any) -> str:
    """The command is refused with exactly `error`, and nothing is recorded."""
    before = snapshot(app, eid)
    with pytest.raises(LedgerError, match=match) as info:
        app.execute(command.build(engagement_id=eid, **fields), actor)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value.message}"
    assert info.value.exit_code == EXIT_CODES[error]
    assert snapshot(app, eid) == before, "a refused command changed the store"
    return info.value.message


def do(app: Engagements, eid: UUID, command: type, actor: Actor, events: int = 1,
       **fields: Any) -> str | None:
    """The command succeeds and records exactly `events` events."""
    before = app.recorder.max_notification_id()
    result = app.execute(command.build(engagement_id=eid, **fields), actor)
    assert app.recorder.max_notification_id() == before + events
    return result


def event_types(app: Engagements, eid: UUID) -> list[str]:
    return [type(e).__name__ for e in app.events.get(eid)]


def show(app: Engagements, eid: UUID, actor: Actor = AUDITOR) -> dict[str, Any]:
    return engagement_state(app.engagement(eid, actor), actor)


def one(items: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    [found] = [item for item in items if item["id"] == item_id]
    return found


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


def grant(app: Engagements, eid: UUID, milestone: str, **fields: Any) -> str:
    fields.setdefault("resource", "staging DB")
    fields.setdefault("level", "read")
    return do(app, eid, GrantAccess, CURATOR, milestone_id=milestone, **fields)


@pytest.fixture
def eid(app: Engagements) -> UUID:
    """Active: NDA (A1) and SOW (A2) in force, budget 10000 EUR, grace 7 days."""
    return active_engagement(app)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def clocked(clock: FixedClock) -> Engagements:
    """An in-memory ledger on a clock the test moves (for expiries)."""
    ledger = open_ledger("memory://", clock=clock)
    yield ledger
    ledger.close()


# Rule 3: access ------------------------------------------------------------------------------


def test_a_grant_needs_an_nda_signed_by_both_parties_in_force(app: Engagements) -> None:
    eid = app.open_engagement(OpenEngagement.build(
        title="Data pipeline", client="Acme", contractor="Bo", curator="cara", budget="10000",
        currency="EUR"), CURATOR)
    do(app, eid, RecordInterview, CURATOR, interviewer="cara", scores={"q": 4}, decision="advance")
    sow = do(app, eid, DraftAgreement, CURATOR, kind="sow", jurisdiction="DE", sha256=HASH_A)
    do(app, eid, SignAgreement, CLIENT, agreement_id=sow, party="client", signer="Ann")
    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=sow, party="contractor", signer="Bo")
    m = milestone_in(app, eid, "funded")

    # No NDA at all, then an NDA signed by one party only: refused.
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, match="NDA", resource="repo",
           level="read", milestone_id=m)
    nda = do(app, eid, DraftAgreement, CURATOR, kind="nda", jurisdiction="DE", sha256=HASH_B)
    do(app, eid, SignAgreement, CLIENT, agreement_id=nda, party="client", signer="Ann")
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, match="NDA", resource="repo",
           level="read", milestone_id=m)

    do(app, eid, SignAgreement, CONTRACTOR, agreement_id=nda, party="contractor", signer="Bo")
    assert grant(app, eid, m, resource="repo") == "G1"
    g1 = one(show(app, eid)["grants"], "G1")
    assert (g1["status"], g1["milestone"], g1["resource"], g1["level"]) == (
        "active", m, "repo", "read")


@pytest.mark.parametrize("status", ["funded", "submitted", "changes_requested", "accepted"])
def test_a_grant_serves_a_funded_milestone_that_is_not_closed(app: Engagements, eid: UUID,
                                                               status: str) -> None:
    m = milestone_in(app, eid, status)
    assert grant(app, eid, m) == "G1"
    assert one(show(app, eid)["grants"], "G1")["status"] == "active"


@pytest.mark.parametrize("status", ["defined", "disputed", "released", "settled", "cancelled"])
def test_no_grant_to_a_milestone_unfunded_closed_or_disputed(app: Engagements, eid: UUID,
                                                             status: str) -> None:
    m = milestone_in(app, eid, status)
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, match=status, resource="repo",
           level="read", milestone_id=m)


def test_a_grant_lasts_at_most_until_due_plus_grace_which_is_also_the_default(
        app: Engagements) -> None:
    eid = active_engagement(app, grace_days=3)
    m = milestone_in(app, eid, "funded", due="2027-01-31")

    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, match="2027-02-03", resource="repo",
           level="read", milestone_id=m, until="2027-02-04")
    assert grant(app, eid, m) == "G1"
    assert grant(app, eid, m, until="2027-02-03") == "G2"
    assert grant(app, eid, m, until="2027-01-10") == "G3"
    grants = show(app, eid)["grants"]
    assert [g["until"] for g in grants] == ["2027-02-03", "2027-02-03", "2027-01-10"]
    assert [g["status"] for g in grants] == ["active"] * 3


def test_the_latest_expiry_follows_the_current_due_date(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "funded", due="2027-01-31")
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, resource="repo", level="read",
           milestone_id=m, until="2027-02-20")
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-02-13", reason="API")
    do(app, eid, GrantExtension, CLIENT, milestone_id=m)
    assert grant(app, eid, m, until="2027-02-20") == "G1"
    assert grant(app, eid, m) == "G2"
    assert one(show(app, eid)["grants"], "G2")["until"] == "2027-02-20"
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, resource="repo", level="read",
           milestone_id=m, until="2027-02-21")


def test_admin_access_needs_a_reason(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "funded")
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, match="reason", resource="prod DB",
           level="admin", milestone_id=m)
    assert grant(app, eid, m, resource="prod DB", level="admin",
                 reason="Migration needs DDL rights") == "G1"
    assert grant(app, eid, m, resource="wiki", level="write") == "G2"
    g1, g2 = show(app, eid)["grants"]
    assert (g1["level"], g1["reason"]) == ("admin", "Migration needs DDL rights")
    assert (g2["level"], g2["reason"]) == ("write", None)


def test_grant_input_is_checked_first(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "funded")
    refuse(app, eid, InvalidInput, GrantAccess, CURATOR, resource="repo", level="root",
           milestone_id=m)
    refuse(app, eid, InvalidInput, GrantAccess, CURATOR, resource="repo", level="read",
           milestone_id="M9")
    refuse(app, eid, InvalidInput, GrantAccess, CURATOR, resource="repo", level="read",
           milestone_id=m, until="31/01/2027")


# Recertify and revoke only active grants ---------------------------------------------------------


def test_recertify_and_revoke_an_active_grant(clocked: Engagements, clock: FixedClock) -> None:
    app = clocked
    eid = active_engagement(app)
    m = milestone_in(app, eid, "funded")
    g = grant(app, eid, m)
    granted_at = one(show(app, eid)["grants"], g)["recertified_at"]

    clock.advance(days=30)
    do(app, eid, RecertifyAccess, CURATOR, grant_id=g, reason="Still migrating")
    recertified = one(show(app, eid)["grants"], g)
    assert recertified["status"] == "active"
    assert recertified["recertified_at"] > granted_at

    do(app, eid, RevokeAccess, CURATOR, grant_id=g, reason="Task done early")
    revoked = one(show(app, eid)["grants"], g)
    assert (revoked["status"], revoked["end_reason"]) == ("revoked", "Task done early")
    assert revoked["ended_at"] is not None

    # Revoked: neither recertified nor revoked again.
    refuse(app, eid, RuleViolation, RecertifyAccess, CURATOR, match="revoked", grant_id=g)
    refuse(app, eid, RuleViolation, RevokeAccess, CURATOR, match="revoked", grant_id=g,
           reason="Again")


def test_an_expired_grant_is_neither_recertified_nor_revoked(clocked: Engagements,
                                                              clock: FixedClock) -> None:
    app = clocked
    eid = active_engagement(app)
    m = milestone_in(app, eid, "funded", due="2026-11-20")
    g = grant(app, eid, m, until="2026-11-10")
    clock.now = datetime(2026, 11, 11, 0, 0, 1, tzinfo=UTC)
    assert app.sweep("access", CURATOR, eid) == [(eid, g)]
    assert one(show(app, eid)["grants"], g)["status"] == "expired"
    refuse(app, eid, RuleViolation, RecertifyAccess, CURATOR, match="expired", grant_id=g)
    refuse(app, eid, RuleViolation, RevokeAccess, CURATOR, match="expired", grant_id=g,
           reason="Done")
    refuse(app, eid, InvalidInput, RevokeAccess, CURATOR, grant_id="G2", reason="Done")


# Rule 4: grants end with their milestone, in the same save -------------------------------------


def _ending_command(app: Engagements, eid: UUID, how: str, m: str) -> tuple[type, Actor, dict]:
    if how == "release":
        do(app, eid, SubmitWork, CONTRACTOR, milestone_id=m, note="PR")
        do(app, eid, AcceptMilestone, CLIENT, milestone_id=m)
        return ReleasePayment, CLIENT, {"milestone_id": m}
    if how == "cancel":
        return CancelMilestone, CLIENT, {"milestone_id": m, "reason": "Descoped"}
    d = do(app, eid, OpenDispute, CLIENT, milestone_id=m, party="client", reason="Late")
    return ResolveDispute, CURATOR, {"dispute_id": d, "release": "250", "refund": "750",
                                     "reason": "Split"}


@pytest.mark.parametrize(("how", "first_event", "status"), [
    ("release", "PaymentReleased", "released"),
    ("cancel", "MilestoneCancelled", "cancelled"),
    ("resolve", "DisputeResolved", "settled"),
])
def test_closing_a_milestone_revokes_its_grants_in_the_same_save(
        app: Engagements, eid: UUID, how: str, first_event: str, status: str) -> None:
    m1 = milestone_in(app, eid, "funded")
    m2 = milestone_in(app, eid, "funded")
    g1 = grant(app, eid, m1, resource="repo")
    g2 = grant(app, eid, m1, resource="wiki")
    g3 = grant(app, eid, m2, resource="bucket")
    g4 = grant(app, eid, m1, resource="ci")
    do(app, eid, RevokeAccess, CURATOR, grant_id=g4, reason="Not needed")
    command, actor, fields = _ending_command(app, eid, how, m1)

    before = len(list(app.events.get(eid)))
    do(app, eid, command, actor, events=3, command_id=f"end-{how}", **fields)
    new = list(app.events.get(eid))[before:]
    assert [type(e).__name__ for e in new] == [first_event, "AccessRevoked", "AccessRevoked"]
    assert {e.command_id for e in new} == {f"end-{how}"}, "not one command, not one save"
    assert [e.grant_id for e in new[1:]] == [g1, g2]

    state = show(app, eid)
    assert one(state["milestones"], m1)["status"] == status
    for g in (g1, g2):
        ended = one(state["grants"], g)
        assert ended["status"] == "revoked"
        assert ended["end_reason"] == f"milestone {m1} {status}"
    assert one(state["grants"], g3)["status"] == "active", "a grant of another milestone ended"
    assert one(state["grants"], g4)["end_reason"] == "Not needed", "an ended grant was ended again"


def test_a_closed_engagement_has_no_active_grant(app: Engagements, eid: UUID) -> None:
    m1 = milestone_in(app, eid, "funded")
    m2 = milestone_in(app, eid, "funded")
    grant(app, eid, m1)
    grant(app, eid, m2)
    grant(app, eid, m2, resource="wiki")
    do(app, eid, CancelMilestone, CLIENT, events=2, milestone_id=m1, reason="Descoped")
    refuse(app, eid, RuleViolation, CloseEngagement, CURATOR, outcome="terminated",
           reason="Over")
    do(app, eid, CancelMilestone, CLIENT, events=3, milestone_id=m2, reason="Descoped")
    do(app, eid, CloseEngagement, CURATOR, outcome="terminated", reason="Over")
    state = show(app, eid)
    assert state["status"] == "closed"
    assert [g["status"] for g in state["grants"]] == ["revoked"] * 3


# Rule 5: an open or escalated dispute freezes its milestone --------------------------------------


@pytest.mark.parametrize("dispute_status", ["open", "escalated"])
def test_an_unresolved_dispute_freezes_its_milestone(app: Engagements, eid: UUID,
                                                     tmp_path: Path, dispute_status: str) -> None:
    m = milestone_in(app, eid, "funded")
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-02-28", reason="API")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, title="Phase 1b",
       reason="Re-planned")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m, party="client")
    d = do(app, eid, OpenDispute, CONTRACTOR, milestone_id=m, party="contractor",
           reason="Client silent")
    if dispute_status == "escalated":
        do(app, eid, EscalateDispute, CURATOR, dispute_id=d, to="Arbitration Ltd",
           packet=str(tmp_path / "d1.zip"))
    state = show(app, eid)
    assert one(state["milestones"], m)["status"] == "disputed"
    assert one(state["disputes"], d)["status"] == dispute_status

    frozen = "frozen|disputed|dispute"
    for command, actor, fields in (
        (FundMilestone, CLIENT, {}),
        (SubmitWork, CONTRACTOR, {"note": "PR"}),
        (RequestChanges, CLIENT, {"reason": "No"}),
        (AcceptMilestone, CLIENT, {}),
        (ReleasePayment, CLIENT, {}),
        (CancelMilestone, CLIENT, {"reason": "Stop"}),
        (RequestExtension, CONTRACTOR, {"due": "2027-03-31", "reason": "More"}),
        (GrantExtension, CLIENT, {}),
        (DenyExtension, CURATOR, {"reason": "No"}),
        (ProposeMilestoneAmendment, CURATOR, {"due": "2027-03-31", "reason": "Re-planned"}),
        (SignMilestoneAmendment, CONTRACTOR, {"party": "contractor"}),  # the second signature
        (GrantAccess, CURATOR, {"resource": "repo", "level": "read"}),
        (OpenDispute, CLIENT, {"party": "client", "reason": "Me too"}),
    ):
        refuse(app, eid, RuleViolation, command, actor, match=frozen, milestone_id=m, **fields)

    # Money moves only by the resolution; the milestone is then settled.
    do(app, eid, ResolveDispute, CURATOR, dispute_id=d, release="1000", refund="0",
       reason="Delivered")
    state = show(app, eid)
    assert one(state["milestones"], m)["status"] == "settled"
    assert state["money"]["released"] == "1000.00" and state["money"]["escrow"] == "0.00"


@pytest.mark.parametrize("dispute_status", ["open", "escalated"])
def test_no_amendment_signature_on_a_frozen_milestone(app: Engagements, eid: UUID,
                                                      tmp_path: Path, dispute_status: str) -> None:
    """Rule 5: `disputed`: nothing else until the resolution. Not even the first signature."""
    m = milestone_in(app, eid, "funded")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, title="Phase 1b",
       reason="Re-planned")
    d = do(app, eid, OpenDispute, CLIENT, milestone_id=m, party="client", reason="Late")
    if dispute_status == "escalated":
        do(app, eid, EscalateDispute, CURATOR, dispute_id=d, to="Arbitration Ltd",
           packet=str(tmp_path / "d1.zip"))
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, CLIENT, milestone_id=m,
           party="client")


# Rule 6: resolutions ---------------------------------------------------------------------------


def _dispute_with_evidence(app: Engagements, eid: UUID, amount: str = "1000") -> tuple[str, str]:
    m = milestone_in(app, eid, "submitted", amount=amount)
    d = do(app, eid, OpenDispute, CLIENT, milestone_id=m, party="client", reason="Not to spec",
           claim="400")
    do(app, eid, SubmitEvidence, CLIENT, dispute_id=d, party="client", description="Spec",
       sha256=HASH_A)
    do(app, eid, SubmitEvidence, CONTRACTOR, dispute_id=d, party="contractor",
       description="Delivery log", sha256=HASH_B)
    return m, d


FINDINGS = {"E1": "The spec was signed", "E2": "The loader works"}


@pytest.mark.parametrize(("release", "refund"), [("600", "300"), ("600", "400.01"),
                                                 ("1000", "1"), ("0", "999.99")])
def test_release_plus_refund_must_equal_the_escrow_exactly(app: Engagements, eid: UUID,
                                                           release: str, refund: str) -> None:
    _m, d = _dispute_with_evidence(app, eid)
    refuse(app, eid, RuleViolation, ResolveDispute, CURATOR, match="escrow", dispute_id=d,
           release=release, refund=refund, reason="Split", findings=FINDINGS)


@pytest.mark.parametrize(("release", "refund"), [("600", "400"), ("1000", "0"), ("0", "1000"),
                                                 ("999.99", "0.01")])
def test_a_resolution_paying_out_the_escrow_settles_the_milestone(
        app: Engagements, eid: UUID, release: str, refund: str) -> None:
    m, d = _dispute_with_evidence(app, eid)
    do(app, eid, ResolveDispute, CURATOR, dispute_id=d, release=release, refund=refund,
       reason="Split", findings=FINDINGS)
    state = show(app, eid)
    dispute = one(state["disputes"], d)
    assert dispute["status"] == "resolved"
    assert dispute["resolution"]["findings"] == FINDINGS
    assert (dispute["resolution"]["release"], dispute["resolution"]["refund"]) == (
        f"{Decimal(release):.2f}", f"{Decimal(refund):.2f}")
    assert one(state["milestones"], m)["status"] == "settled"
    money = {k: Decimal(v) for k, v in state["money"].items()}
    assert money["released"] == Decimal(release) and money["refunded"] == Decimal(refund)
    assert money["escrow"] == 0 and money["funded"] == money["released"] + money["refunded"]


def test_a_resolution_needs_a_finding_for_every_evidence_item(app: Engagements,
                                                              eid: UUID) -> None:
    _m, d = _dispute_with_evidence(app, eid)
    message = refuse(app, eid, RuleViolation, ResolveDispute, CURATOR, dispute_id=d,
                     release="600", refund="400", reason="Split",
                     findings={"E1": "The spec was signed"})
    assert "E2" in message
    refuse(app, eid, RuleViolation, ResolveDispute, CURATOR, dispute_id=d, release="600",
           refund="400", reason="Split")


def test_a_finding_for_evidence_the_dispute_does_not_have_is_invalid_input(
        app: Engagements, eid: UUID) -> None:
    _m, d1 = _dispute_with_evidence(app, eid)  # E1, E2
    m2 = milestone_in(app, eid, "funded")
    d2 = do(app, eid, OpenDispute, CONTRACTOR, milestone_id=m2, party="contractor", reason="Late")
    assert do(app, eid, SubmitEvidence, CONTRACTOR, dispute_id=d2, party="contractor",
              description="Timeline") == "E3"
    refuse(app, eid, InvalidInput, ResolveDispute, CURATOR, match="E3", dispute_id=d1,
           release="600", refund="400", reason="Split", findings={**FINDINGS, "E3": "Other"})
    refuse(app, eid, InvalidInput, ResolveDispute, CURATOR, match="E1", dispute_id=d2,
           release="600", refund="400", reason="Split", findings={"E1": "x", "E3": "y"})
    refuse(app, eid, InvalidInput, ResolveDispute, CURATOR, dispute_id=d1, release="600",
           refund="400", reason="Split", findings={**FINDINGS, "X1": "bad id"})
    do(app, eid, ResolveDispute, CURATOR, dispute_id=d2, release="600", refund="400",
       reason="Split", findings={"E3": "Timeline holds"})


def test_resolution_amounts_are_checked_as_input(app: Engagements, eid: UUID) -> None:
    _m, d = _dispute_with_evidence(app, eid)
    for release, refund in (("-100", "1100"), ("600.001", "399.999"), ("abc", "400"),
                            ("NaN", "400")):
        refuse(app, eid, InvalidInput, ResolveDispute, CURATOR, dispute_id=d, release=release,
               refund=refund, reason="Split", findings=FINDINGS)
    refuse(app, eid, InvalidInput, ResolveDispute, CURATOR, dispute_id="D7", release="600",
           refund="400", reason="Split", findings=FINDINGS)


def test_a_dispute_is_resolved_once_and_an_escalated_one_can_be(app: Engagements, eid: UUID,
                                                               tmp_path: Path) -> None:
    _m, d1 = _dispute_with_evidence(app, eid)
    do(app, eid, EscalateDispute, CURATOR, dispute_id=d1, to="Arbitration Ltd",
       packet=str(tmp_path / "d1.zip"))
    do(app, eid, ResolveDispute, CURATOR, dispute_id=d1, release="600", refund="400",
       reason="The arbitrator's award", findings=FINDINGS)
    state = show(app, eid)
    assert one(state["disputes"], d1)["status"] == "resolved"
    assert one(state["disputes"], d1)["escalation"]["to"] == "Arbitration Ltd"
    refuse(app, eid, RuleViolation, ResolveDispute, CURATOR, match="resolved", dispute_id=d1,
           release="600", refund="400", reason="Again", findings=FINDINGS)
    refuse(app, eid, RuleViolation, SubmitEvidence, CLIENT, match="resolved", dispute_id=d1,
           party="client", description="Late evidence")
    refuse(app, eid, RuleViolation, NoteMediation, CURATOR, match="resolved", dispute_id=d1,
           text="After the fact")


# Opening disputes ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["funded", "submitted", "changes_requested", "accepted"])
def test_a_dispute_opens_on_money_in_escrow(app: Engagements, eid: UUID, status: str) -> None:
    m = milestone_in(app, eid, status)
    assert do(app, eid, OpenDispute, CLIENT, milestone_id=m, party="client",
              reason="Not to spec") == "D1"
    state = show(app, eid)
    dispute = one(state["disputes"], "D1")
    assert (dispute["status"], dispute["milestone"], dispute["party"]) == ("open", m, "client")
    assert dispute["opened_version"] == state["version"]
    assert one(state["milestones"], m)["status"] == "disputed"
    assert state["money"]["escrow"] == "1000.00"


@pytest.mark.parametrize("status", ["defined", "disputed", "released", "settled", "cancelled"])
def test_no_dispute_on_a_milestone_without_money_in_escrow_or_already_disputed(
        app: Engagements, eid: UUID, status: str) -> None:
    m = milestone_in(app, eid, status)
    refuse(app, eid, RuleViolation, OpenDispute, CONTRACTOR, match=status, milestone_id=m,
           party="contractor", reason="Unpaid")


def test_a_claim_is_at_most_the_escrowed_amount(app: Engagements, eid: UUID) -> None:
    m1 = milestone_in(app, eid, "funded", amount="1000")
    refuse(app, eid, RuleViolation, OpenDispute, CLIENT, match="escrow", milestone_id=m1,
           party="client", reason="Refund", claim="1000.01")
    refuse(app, eid, InvalidInput, OpenDispute, CLIENT, milestone_id=m1, party="client",
           reason="Refund", claim="999.999")
    refuse(app, eid, InvalidInput, OpenDispute, CLIENT, milestone_id=m1, party="client",
           reason="Refund", claim="0")
    assert do(app, eid, OpenDispute, CLIENT, milestone_id=m1, party="client", reason="Refund",
              claim="1000") == "D1"
    m2 = milestone_in(app, eid, "funded", amount="1000")
    assert do(app, eid, OpenDispute, CONTRACTOR, milestone_id=m2, party="contractor",
              reason="Unpaid", claim="0.01") == "D2"
    assert [d["claim"] for d in show(app, eid)["disputes"]] == ["1000.00", "0.01"]


def test_evidence_is_numbered_across_the_engagement(app: Engagements, eid: UUID) -> None:
    m1 = milestone_in(app, eid, "funded")
    m2 = milestone_in(app, eid, "funded")
    d1 = do(app, eid, OpenDispute, CLIENT, milestone_id=m1, party="client", reason="Late")
    assert do(app, eid, SubmitEvidence, CLIENT, dispute_id=d1, party="client",
              description="Email", sha256=HASH_A) == "E1"
    assert do(app, eid, SubmitEvidence, CONTRACTOR, dispute_id=d1, party="contractor",
              description="Log") == "E2"
    d2 = do(app, eid, OpenDispute, CONTRACTOR, milestone_id=m2, party="contractor",
            reason="Unpaid")
    assert (d1, d2) == ("D1", "D2")
    assert do(app, eid, SubmitEvidence, CONTRACTOR, dispute_id=d2, party="contractor",
              description="Invoice", sha256=HASH_B) == "E3"
    disputes = show(app, eid)["disputes"]
    assert [(e["id"], e["party"], e["sha256"]) for e in one(disputes, "D1")["evidence"]] == [
        ("E1", "client", HASH_A), ("E2", "contractor", None)]
    assert [(e["id"], e["party"]) for e in one(disputes, "D2")["evidence"]] == [
        ("E3", "contractor")]
    refuse(app, eid, InvalidInput, SubmitEvidence, CLIENT, dispute_id="D3", party="client",
           description="Nowhere")
    refuse(app, eid, InvalidInput, SubmitEvidence, CLIENT, dispute_id=d1, party="client",
           description="Bad hash", sha256="not-a-hash")


def test_only_an_open_dispute_is_escalated_and_a_refusal_writes_no_packet(
        app: Engagements, eid: UUID, tmp_path: Path) -> None:
    _m, d = _dispute_with_evidence(app, eid)
    packet = tmp_path / "d1.zip"
    do(app, eid, EscalateDispute, CURATOR, dispute_id=d, to="Arbitration Ltd",
       packet=str(packet))
    escalation = one(show(app, eid)["disputes"], d)["escalation"]
    assert escalation["packet_sha256"] == hashlib.sha256(packet.read_bytes()).hexdigest()
    again = tmp_path / "again.zip"
    refuse(app, eid, RuleViolation, EscalateDispute, CURATOR, match="escalated", dispute_id=d,
           to="Court", packet=str(again))
    assert not again.exists()
    refuse(app, eid, InvalidInput, EscalateDispute, CURATOR, dispute_id="D2", to="Court",
           packet=str(again))
    assert not again.exists()


# Extensions ------------------------------------------------------------------------------------


def test_an_extension_moves_the_due_date_later_and_keeps_the_original(app: Engagements,
                                                                      eid: UUID) -> None:
    m = milestone_in(app, eid, "funded", due="2027-01-31")
    refuse(app, eid, RuleViolation, RequestExtension, CONTRACTOR, match="2027-01-31",
           milestone_id=m, due="2027-01-31", reason="Same day")
    refuse(app, eid, RuleViolation, RequestExtension, CONTRACTOR, milestone_id=m,
           due="2027-01-15", reason="Earlier")
    refuse(app, eid, RuleViolation, GrantExtension, CLIENT, match="no extension",
           milestone_id=m)
    refuse(app, eid, RuleViolation, DenyExtension, CURATOR, match="no extension",
           milestone_id=m)

    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-02-14", reason="API")
    waiting = one(show(app, eid)["milestones"], m)
    assert waiting["due"] == "2027-01-31" and waiting["original_due"] is None
    assert (waiting["extension_request"]["due"], waiting["extension_request"]["reason"]) == (
        "2027-02-14", "API")
    refuse(app, eid, RuleViolation, RequestExtension, CONTRACTOR, match="already waiting",
           milestone_id=m, due="2027-02-28", reason="More")

    do(app, eid, GrantExtension, CLIENT, milestone_id=m, reason="Fine")
    granted = one(show(app, eid)["milestones"], m)
    assert (granted["due"], granted["original_due"], granted["extensions"]) == (
        "2027-02-14", "2027-01-31", 1)
    assert granted["extension_request"] is None
    refuse(app, eid, RuleViolation, GrantExtension, CLIENT, milestone_id=m)

    # A second extension: the original due date stays the first one; a denial moves nothing.
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-02-28", reason="More")
    do(app, eid, GrantExtension, CURATOR, milestone_id=m)
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-03-31", reason="Again")
    do(app, eid, DenyExtension, CLIENT, milestone_id=m, reason="Launch is fixed")
    final = one(show(app, eid)["milestones"], m)
    assert (final["due"], final["original_due"], final["extensions"]) == (
        "2027-02-28", "2027-01-31", 2)
    assert final["extension_request"] is None


@pytest.mark.parametrize("status", ["defined", "submitted", "accepted", "released",
                                    "cancelled"])
def test_an_extension_is_requested_only_while_work_is_due(app: Engagements, eid: UUID,
                                                          status: str) -> None:
    m = milestone_in(app, eid, status)
    refuse(app, eid, RuleViolation, RequestExtension, CONTRACTOR, milestone_id=m,
           due="2027-06-30", reason="More time")


def test_an_extension_requested_while_changes_are_requested(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "changes_requested")
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-06-30", reason="Rework")
    do(app, eid, GrantExtension, CLIENT, milestone_id=m)
    assert one(show(app, eid)["milestones"], m)["due"] == "2027-06-30"


def test_an_extension_decision_is_refused_once_the_milestone_is_closed(app: Engagements,
                                                                     eid: UUID) -> None:
    m = milestone_in(app, eid, "funded")
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-06-30", reason="More")
    do(app, eid, CancelMilestone, CLIENT, milestone_id=m, reason="Descoped")
    refuse(app, eid, RuleViolation, GrantExtension, CLIENT, match="cancelled", milestone_id=m)
    refuse(app, eid, RuleViolation, DenyExtension, CLIENT, match="cancelled", milestone_id=m)


def test_granting_an_extension_never_moves_the_due_date_earlier(app: Engagements,
                                                                eid: UUID) -> None:
    """A request waits while an amendment moves the due date past the date it asked for;
    granting it then would shorten the deadline, which an extension may never do."""
    m = milestone_in(app, eid, "funded", due="2027-01-31")
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m, due="2027-02-15", reason="API")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, due="2027-03-31",
       reason="Re-planned")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m, party="client")
    do(app, eid, SignMilestoneAmendment, CONTRACTOR, events=2, milestone_id=m, party="contractor")
    assert one(show(app, eid)["milestones"], m)["due"] == "2027-03-31"
    refuse(app, eid, RuleViolation, GrantExtension, CLIENT, milestone_id=m)
    assert one(show(app, eid)["milestones"], m)["due"] == "2027-03-31"


# Milestone amendments ------------------------------------------------------------------------


def test_an_amendment_takes_effect_only_with_the_second_signature(app: Engagements,
                                                                  eid: UUID) -> None:
    m = milestone_in(app, eid, "funded", due="2027-01-31")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, title="Loader v2",
       due="2027-02-28", criteria="Loads 1M rows", reason="Re-planned")
    proposed = one(show(app, eid)["milestones"], m)
    assert (proposed["title"], proposed["due"], proposed["criteria"]) == (
        "Phase", "2027-01-31", None)
    assert proposed["amendment"]["number"] == 1
    assert proposed["amendment"]["changes"] == {"title": "Loader v2", "due": "2027-02-28",
                                                "criteria": "Loads 1M rows"}
    assert proposed["amendment"]["signatures"] == {"client": None, "contractor": None}

    do(app, eid, SignMilestoneAmendment, CONTRACTOR, milestone_id=m, party="contractor")
    half = one(show(app, eid)["milestones"], m)
    assert (half["title"], half["due"]) == ("Phase", "2027-01-31")
    assert half["amendment"]["signatures"]["client"] is None
    assert half["amendment"]["signatures"]["contractor"]["signer"] == "bo"
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, CONTRACTOR, match="already signed",
           milestone_id=m, party="contractor")

    do(app, eid, SignMilestoneAmendment, CLIENT, events=2, milestone_id=m, party="client")
    amended = one(show(app, eid)["milestones"], m)
    assert (amended["title"], amended["due"], amended["criteria"], amended["original_due"]) == (
        "Loader v2", "2027-02-28", "Loads 1M rows", "2027-01-31")
    assert amended["amendment"] is None and amended["status"] == "funded"
    assert event_types(app, eid)[-2:] == ["MilestoneAmendmentSigned", "MilestoneAmended"]
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, CLIENT, match="no amendment",
           milestone_id=m, party="client")


def test_an_admin_signs_for_either_party(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "defined")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, amount="1500",
       reason="Bigger")
    do(app, eid, SignMilestoneAmendment, ADMIN, milestone_id=m, party="client")
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, ADMIN, match="already signed",
           milestone_id=m, party="client")
    do(app, eid, SignMilestoneAmendment, ADMIN, events=2, milestone_id=m, party="contractor")
    assert one(show(app, eid)["milestones"], m)["amount"] == "1500.00"


def test_the_amount_changes_only_while_defined(app: Engagements, eid: UUID) -> None:
    m1 = milestone_in(app, eid, "defined")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m1, amount="1200.50",
       reason="Bigger")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m1, party="client")
    do(app, eid, SignMilestoneAmendment, CONTRACTOR, events=2, milestone_id=m1,
       party="contractor")
    state = show(app, eid)
    assert one(state["milestones"], m1)["amount"] == "1200.50"
    assert state["money"]["committed"] == "1200.50"

    for status in ("funded", "submitted", "changes_requested"):
        m = milestone_in(app, eid, status, amount="100")
        refuse(app, eid, RuleViolation, ProposeMilestoneAmendment, CURATOR, match="amount",
               milestone_id=m, amount="150", reason="Bigger")
        do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, title="Renamed",
           reason="Clearer")
    refuse(app, eid, InvalidInput, ProposeMilestoneAmendment, CURATOR, milestone_id=m1,
           amount="1.001", reason="Odd")
    refuse(app, eid, InvalidInput, ProposeMilestoneAmendment, CURATOR, milestone_id=m1,
           reason="Nothing")


def test_an_amount_proposed_while_defined_is_refused_once_funded(app: Engagements,
                                                                 eid: UUID) -> None:
    m = milestone_in(app, eid, "defined")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, amount="1500",
       reason="Bigger")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m, party="client")
    do(app, eid, FundMilestone, CLIENT, milestone_id=m)
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, CONTRACTOR, match="amount",
           milestone_id=m, party="contractor")
    state = show(app, eid)
    assert one(state["milestones"], m)["amount"] == "1000.00"
    assert state["money"]["funded"] == "1000.00"


def test_the_budget_is_checked_at_the_proposal_and_again_at_the_second_signature(
        app: Engagements, eid: UUID) -> None:
    m1 = milestone_in(app, eid, "defined", amount="1000")  # budget 10000
    refuse(app, eid, RuleViolation, ProposeMilestoneAmendment, CURATOR, match="budget",
           milestone_id=m1, amount="10000.01", reason="Too big")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m1, amount="5000",
       reason="Bigger")
    do(app, eid, SignMilestoneAmendment, CONTRACTOR, milestone_id=m1, party="contractor")
    milestone_in(app, eid, "defined", amount="5000.01")  # fits now: 6000.01 committed
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, CLIENT, match="budget",
           milestone_id=m1, party="client")
    assert show(app, eid)["money"]["committed"] == "6000.01"


def test_title_criteria_and_due_change_until_accepted(app: Engagements, eid: UUID) -> None:
    for status in ("accepted", "released", "settled", "cancelled"):
        m = milestone_in(app, eid, status, amount="100")
        refuse(app, eid, RuleViolation, ProposeMilestoneAmendment, CURATOR, match=status,
               milestone_id=m, title="Renamed", reason="Clearer")

    m = milestone_in(app, eid, "submitted", amount="100")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, criteria="Also docs",
       reason="Clearer")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m, party="client")
    do(app, eid, AcceptMilestone, CLIENT, milestone_id=m)
    refuse(app, eid, RuleViolation, SignMilestoneAmendment, CONTRACTOR, match="accepted",
           milestone_id=m, party="contractor")
    assert one(show(app, eid)["milestones"], m)["criteria"] is None


def test_a_new_proposal_replaces_a_waiting_one(app: Engagements, eid: UUID) -> None:
    m = milestone_in(app, eid, "funded")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, title="First idea",
       reason="Idea")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m, party="client")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m, title="Second idea",
       reason="Better")
    waiting = one(show(app, eid)["milestones"], m)["amendment"]
    assert waiting["changes"] == {"title": "Second idea"}
    assert waiting["signatures"] == {"client": None, "contractor": None}
    do(app, eid, SignMilestoneAmendment, CONTRACTOR, milestone_id=m, party="contractor")
    assert one(show(app, eid)["milestones"], m)["title"] == "Phase"
    do(app, eid, SignMilestoneAmendment, CLIENT, events=2, milestone_id=m, party="client")
    assert one(show(app, eid)["milestones"], m)["title"] == "Second idea"


# Disclosures ---------------------------------------------------------------------------------


def test_disclosures_are_recorded_with_whether_the_agreement_was_in_force(app: Engagements,
                                                                         eid: UUID) -> None:
    nca = do(app, eid, DraftAgreement, CURATOR, kind="nca", jurisdiction="DE", sha256=HASH_A)
    do(app, eid, RecordDisclosure, CURATOR, description="Schema dump", agreement_id="A1",
       sha256=HASH_B)
    do(app, eid, RecordDisclosure, CURATOR, description="Roadmap slides", agreement_id=nca)
    first, second = show(app, eid)["disclosures"]
    assert (first["agreement"], first["sha256"], first["agreement_in_force"], first["by"]) == (
        "A1", HASH_B, True, "cara")
    assert (second["agreement"], second["sha256"], second["agreement_in_force"]) == (
        nca, None, False)
    assert event_types(app, eid)[-2:] == ["DisclosureRecorded", "DisclosureRecorded"]
    refuse(app, eid, InvalidInput, RecordDisclosure, CURATOR, match="A9",
           description="Nowhere", agreement_id="A9")
    refuse(app, eid, InvalidInput, RecordDisclosure, CURATOR, description="Bad hash",
           agreement_id="A1", sha256="xyz")


# A closed engagement ------------------------------------------------------------------------------


def test_a_closed_engagement_refuses_every_part_2_command(app: Engagements, eid: UUID,
                                                          tmp_path: Path) -> None:
    m1 = milestone_in(app, eid, "funded")
    g1 = grant(app, eid, m1)
    d1 = do(app, eid, OpenDispute, CLIENT, milestone_id=m1, party="client", reason="Late")
    do(app, eid, SubmitEvidence, CLIENT, dispute_id=d1, party="client", description="Email")
    do(app, eid, ResolveDispute, CURATOR, events=2, dispute_id=d1, release="500", refund="500",
       reason="Split", findings={"E1": "Both late"})
    m2 = milestone_in(app, eid, "defined")
    do(app, eid, ProposeMilestoneAmendment, CURATOR, milestone_id=m2, title="X", reason="Y")
    do(app, eid, SignMilestoneAmendment, CLIENT, milestone_id=m2, party="client")
    do(app, eid, CancelMilestone, CLIENT, milestone_id=m2, reason="Descoped")
    m3 = milestone_in(app, eid, "funded")
    do(app, eid, RequestExtension, CONTRACTOR, milestone_id=m3, due="2027-06-30", reason="More")
    do(app, eid, CancelMilestone, CLIENT, milestone_id=m3, reason="Descoped")
    do(app, eid, CloseEngagement, CURATOR, outcome="terminated", reason="Over")

    closed = "engagement is closed"
    packet = tmp_path / "late.zip"
    for command, actor, fields in (
        (GrantAccess, CURATOR, {"resource": "repo", "level": "read", "milestone_id": m1}),
        (RecertifyAccess, CURATOR, {"grant_id": g1}),
        (RevokeAccess, CURATOR, {"grant_id": g1, "reason": "Over"}),
        (RecordDisclosure, CURATOR, {"description": "Late share", "agreement_id": "A1"}),
        (RequestExtension, CONTRACTOR, {"milestone_id": m3, "due": "2027-07-31",
                                        "reason": "More"}),
        (GrantExtension, CLIENT, {"milestone_id": m3}),
        (DenyExtension, CURATOR, {"milestone_id": m3}),
        (ProposeMilestoneAmendment, CURATOR, {"milestone_id": m2, "title": "Z", "reason": "Y"}),
        (SignMilestoneAmendment, CONTRACTOR, {"milestone_id": m2, "party": "contractor"}),
        (OpenDispute, CONTRACTOR, {"milestone_id": m1, "party": "contractor", "reason": "x"}),
        (SubmitEvidence, CONTRACTOR, {"dispute_id": d1, "party": "contractor",
                                      "description": "Late"}),
        (NoteMediation, CURATOR, {"dispute_id": d1, "text": "After the fact"}),
        (ResolveDispute, CURATOR, {"dispute_id": d1, "release": "500", "refund": "500",
                                   "reason": "Again", "findings": {"E1": "Both late"}}),
    ):
        refuse(app, eid, RuleViolation, command, actor, match=closed, **fields)
    refuse(app, eid, RuleViolation, EscalateDispute, CURATOR, dispute_id=d1, to="Court",
           packet=str(packet))
    assert not packet.exists()

    # Sweeps skip a closed engagement: nothing recorded.
    before = snapshot(app, eid)
    assert app.sweep("milestones", CURATOR) == []
    assert app.sweep("access", CURATOR, eid) == []
    assert snapshot(app, eid) == before


def test_input_refusals_come_before_role_refusals(app: Engagements, eid: UUID) -> None:
    """Rule 9's order, for part-2 commands: input (2) before role (4) before rules (3)."""
    m = milestone_in(app, eid, "defined")
    refuse(app, eid, InvalidInput, GrantAccess, CONTRACTOR, resource="repo", level="read",
           milestone_id="M9")
    refuse(app, eid, NotPermitted, GrantAccess, CONTRACTOR, resource="repo", level="read",
           milestone_id=m)
    refuse(app, eid, RuleViolation, GrantAccess, CURATOR, resource="repo", level="read",
           milestone_id=m)
    refuse(app, eid, InvalidInput, RequestExtension, CLIENT, milestone_id=m, due="2027-02-30",
           reason="x")
    refuse(app, eid, NotPermitted, RequestExtension, CLIENT, milestone_id=m, due="2027-02-28",
           reason="x")

