"""Who may do what, for the part-2 commands: every cell of DESIGN section 1's table.

Each command is tried by every role (and, where a party acts, for each party) on a fresh
engagement where it would succeed. The roles the table allows succeed and are recorded as
themselves; every other role is refused with NotPermitted (exit 4) and nothing is recorded;
an admin may do everything, and act for either party. Also: the contractor's redacted view has
no mediation notes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import (
    DenyExtension,
    EscalateDispute,
    GrantAccess,
    GrantExtension,
    NoteMediation,
    OpenDispute,
    ProposeMilestoneAmendment,
    RecertifyAccess,
    RecordDisclosure,
    RequestExtension,
    ResolveDispute,
    RevokeAccess,
    SignMilestoneAmendment,
    SubmitEvidence,
    SubmitWork,
)
from ledger.errors import NotPermitted
from ledger.roles import Actor
from ledger.views import engagement_state

from factories import CLIENT, CONTRACTOR, CURATOR, FixedClock, active_engagement, funded_milestone

ACTORS = {
    "curator": Actor.parse("curator:cara"),
    "client": Actor.parse("client:acme"),
    "contractor": Actor.parse("contractor:bo"),
    "auditor": Actor.parse("auditor:ann"),
    "admin": Actor.parse("admin:root"),
}
READER = ACTORS["auditor"]


# Setups: each brings a fresh engagement to where the command would succeed ----------------------


def _milestone(app: Engagements, eid: UUID) -> str:
    return funded_milestone(app, eid, amount="1000", due="2027-01-31")


def _granted(app: Engagements, eid: UUID) -> str:
    m = _milestone(app, eid)
    return app.execute(GrantAccess.build(engagement_id=eid, resource="repo", level="read",
                                         milestone_id=m), CURATOR)


def _extension_waiting(app: Engagements, eid: UUID) -> str:
    m = _milestone(app, eid)
    app.execute(RequestExtension.build(engagement_id=eid, milestone_id=m, due="2027-02-28",
                                       reason="API delay"), CONTRACTOR)
    return m


def _amendment_waiting(app: Engagements, eid: UUID) -> str:
    m = _milestone(app, eid)
    app.execute(ProposeMilestoneAmendment.build(engagement_id=eid, milestone_id=m,
                                                title="Loader v2", reason="Re-planned"), CURATOR)
    return m


def _dispute_open(app: Engagements, eid: UUID) -> str:
    m = _milestone(app, eid)
    dispute = app.execute(OpenDispute.build(engagement_id=eid, milestone_id=m, party="client",
                                            reason="Not to spec"), CLIENT)
    app.execute(SubmitEvidence.build(engagement_id=eid, dispute_id=dispute, party="client",
                                     description="Spec"), CLIENT)
    return dispute


Setup = Callable[[Engagements, UUID, Path], tuple[type, dict[str, Any]]]

#: name -> (setup returning the command and its fields, the roles that may run it)
CASES: dict[str, tuple[Setup, set[str]]] = {
    "GrantAccess": (
        lambda app, eid, _p: (GrantAccess, {"resource": "repo", "level": "read",
                                            "milestone_id": _milestone(app, eid)}),
        {"curator", "admin"}),
    "RecertifyAccess": (
        lambda app, eid, _p: (RecertifyAccess, {"grant_id": _granted(app, eid)}),
        {"curator", "admin"}),
    "RevokeAccess": (
        lambda app, eid, _p: (RevokeAccess, {"grant_id": _granted(app, eid), "reason": "Done"}),
        {"curator", "admin"}),
    "RecordDisclosure": (
        lambda app, eid, _p: (RecordDisclosure, {"description": "Schema dump",
                                                 "agreement_id": "A1"}),
        {"curator", "admin"}),
    "RequestExtension": (
        lambda app, eid, _p: (RequestExtension, {"milestone_id": _milestone(app, eid),
                                                 "due": "2027-02-28", "reason": "API delay"}),
        {"contractor", "admin"}),
    "GrantExtension": (
        lambda app, eid, _p: (GrantExtension, {"milestone_id": _extension_waiting(app, eid)}),
        {"client", "curator", "admin"}),
    "DenyExtension": (
        lambda app, eid, _p: (DenyExtension, {"milestone_id": _extension_waiting(app, eid),
                                              "reason": "Launch is fixed"}),
        {"client", "curator", "admin"}),
    "ProposeMilestoneAmendment": (
        lambda app, eid, _p: (ProposeMilestoneAmendment, {"milestone_id": _milestone(app, eid),
                                                          "due": "2027-03-01",
                                                          "reason": "Re-planned"}),
        {"curator", "admin"}),
    "SignMilestoneAmendment as client": (
        lambda app, eid, _p: (SignMilestoneAmendment, {"milestone_id": _amendment_waiting(app, eid),
                                                       "party": "client"}),
        {"client", "admin"}),
    "SignMilestoneAmendment as contractor": (
        lambda app, eid, _p: (SignMilestoneAmendment, {"milestone_id": _amendment_waiting(app, eid),
                                                       "party": "contractor"}),
        {"contractor", "admin"}),
    "OpenDispute as client": (
        lambda app, eid, _p: (OpenDispute, {"milestone_id": _milestone(app, eid),
                                            "party": "client", "reason": "Not to spec"}),
        {"client", "admin"}),
    "OpenDispute as contractor": (
        lambda app, eid, _p: (OpenDispute, {"milestone_id": _milestone(app, eid),
                                            "party": "contractor", "reason": "Unpaid"}),
        {"contractor", "admin"}),
    "SubmitEvidence as client": (
        lambda app, eid, _p: (SubmitEvidence, {"dispute_id": _dispute_open(app, eid),
                                               "party": "client", "description": "Email"}),
        {"client", "admin"}),
    "SubmitEvidence as contractor": (
        lambda app, eid, _p: (SubmitEvidence, {"dispute_id": _dispute_open(app, eid),
                                               "party": "contractor", "description": "Log"}),
        {"contractor", "admin"}),
    "NoteMediation": (
        lambda app, eid, _p: (NoteMediation, {"dispute_id": _dispute_open(app, eid),
                                              "text": "Both agree the loader works"}),
        {"curator", "admin"}),
    "ResolveDispute": (
        lambda app, eid, _p: (ResolveDispute, {"dispute_id": _dispute_open(app, eid),
                                               "release": "600", "refund": "400",
                                               "reason": "Split", "findings": {"E1": "Signed"}}),
        {"curator", "admin"}),
    "EscalateDispute": (
        lambda app, eid, folder: (EscalateDispute, {"dispute_id": _dispute_open(app, eid),
                                                    "to": "Arbitration Ltd",
                                                    "packet": str(folder / "packet.zip")}),
        {"curator", "admin"}),
}


def test_the_table_covers_every_role() -> None:
    for _setup, allowed in CASES.values():
        assert "admin" in allowed and "auditor" not in allowed
        assert allowed <= set(ACTORS)


def snapshot(app: Engagements, eid: UUID) -> tuple[int, dict[str, Any]]:
    current = app.engagement(eid, READER)
    replayed = app.repository.get(eid, version=current.version)
    state = engagement_state(current, READER)
    assert engagement_state(replayed, READER) == state
    return app.recorder.max_notification_id(), state


@pytest.mark.parametrize("role", list(ACTORS))
@pytest.mark.parametrize("case", list(CASES))
def test_each_role_may_do_only_what_the_table_gives_it(app: Engagements, tmp_path: Path,
                                                      case: str, role: str) -> None:
    setup, allowed = CASES[case]
    eid = active_engagement(app)
    command_class, fields = setup(app, eid, tmp_path)
    command = command_class.build(engagement_id=eid, **fields)
    actor = ACTORS[role]
    before = snapshot(app, eid)

    if role in allowed:
        app.execute(command, actor)
        assert app.recorder.max_notification_id() > before[0]
        new = list(app.events.get(eid, gt=before[1]["version"]))
        assert new, "nothing recorded"
        assert {(e.role, e.actor) for e in new} == {(actor.role.value, actor.name)}
        if command_class is EscalateDispute:
            assert Path(fields["packet"]).is_file()
    else:
        with pytest.raises(NotPermitted) as info:
            app.execute(command, actor)
        assert info.value.exit_code == 4
        assert snapshot(app, eid) == before, "a refused command changed the store"
        if command_class is EscalateDispute:
            assert not Path(fields["packet"]).exists(), "a refused escalation wrote a packet"


# Sweeps -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["milestones", "access"])
@pytest.mark.parametrize("role", list(ACTORS))
def test_sweeps_are_for_the_curator_and_the_admin(role: str, what: str) -> None:
    clock = FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    app = open_ledger("memory://", clock=clock)
    try:
        eid = active_engagement(app, inspection_days=14)
        m = funded_milestone(app, eid, due="2026-11-20")
        grant = app.execute(GrantAccess.build(engagement_id=eid, resource="repo", level="read",
                                              milestone_id=m, until="2026-11-10"), CURATOR)
        app.execute(SubmitWork.build(engagement_id=eid, milestone_id=m, note="PR"), CONTRACTOR)
        clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # past the expiry and the inspection
        actor = ACTORS[role]
        before = snapshot(app, eid)
        expected = [(eid, m if what == "milestones" else grant)]

        if role in ("curator", "admin"):
            assert app.sweep(what, actor) == expected
            new = list(app.events.get(eid, gt=before[1]["version"]))
            assert [type(e).__name__ for e in new] == [
                "MilestoneDeemedAccepted" if what == "milestones" else "AccessExpired"]
            assert (new[0].role, new[0].actor) == (actor.role.value, actor.name)
        else:
            for engagement_id in (None, eid):
                with pytest.raises(NotPermitted) as info:
                    app.sweep(what, actor, engagement_id)
                assert info.value.exit_code == 4
                assert snapshot(app, eid) == before
    finally:
        app.close()


# The contractor's view ----------------------------------------------------------------------------


def test_the_contractor_reads_no_mediation_notes(app: Engagements, tmp_path: Path) -> None:
    eid = active_engagement(app)
    d1 = _dispute_open(app, eid)
    m2 = _milestone(app, eid)
    d2 = app.execute(OpenDispute.build(engagement_id=eid, milestone_id=m2, party="contractor",
                                       reason="Unpaid"), CONTRACTOR)
    for dispute, text in ((d1, "Client admits the spec changed"), (d2, "Contractor was late"),
                          (d2, "Offer: 50/50")):
        app.execute(NoteMediation.build(engagement_id=eid, dispute_id=dispute, text=text), CURATOR)
    app.execute(EscalateDispute.build(engagement_id=eid, dispute_id=d2, to="Arbitration Ltd",
                                      packet=str(tmp_path / "d2.zip")), CURATOR)

    contractor = ACTORS["contractor"]
    hidden = engagement_state(app.engagement(eid, contractor), contractor)
    assert hidden["redacted"] is True and hidden["interviews"] is None
    assert [d["id"] for d in hidden["disputes"]] == [d1, d2]
    for dispute in hidden["disputes"]:
        assert dispute["mediation_notes"] is None, dispute
        assert dispute["evidence"] is not None
    assert "Offer: 50/50" not in repr(hidden)

    for role in ("curator", "client", "auditor", "admin"):
        seen = engagement_state(app.engagement(eid, ACTORS[role]), ACTORS[role])
        assert seen["redacted"] is False
        assert [[n["text"] for n in d["mediation_notes"]] for d in seen["disputes"]] == [
            ["Client admits the spec changed"], ["Contractor was late", "Offer: 50/50"]]
        # Apart from what is hidden, the contractor reads the same engagement.
        for shown, full in zip(hidden["disputes"], seen["disputes"], strict=True):
            assert {k: v for k, v in shown.items() if k != "mediation_notes"} == {
                k: v for k, v in full.items() if k != "mediation_notes"}
