"""A realistic mix of commands against existing, active engagements (command path and scale).

Each engagement goes round a milestone's life: defined, funded, access granted, a note,
work submitted, changes requested, submitted again, access recertified, accepted, paid (the
release also ends the grant: two events). Engagements take turns, so every command loads a
different engagement, and the three parties act in their own roles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import ledger.commands as commands
from ledger.roles import Actor

CURATOR = Actor.parse("curator:cara")
CLIENT = Actor.parse("client:acme")
CONTRACTOR = Actor.parse("contractor:bo")


@dataclass
class Engaged:
    """One engagement under load, and the ids its current milestone round created."""

    id: UUID
    milestone: str = ""
    grant: str = ""
    rounds: int = 0
    seen: dict[str, Any] = field(default_factory=dict)


Step = Callable[[Any, Engaged], Any]


def _due() -> str:
    return (datetime.now(UTC) + timedelta(days=60)).date().isoformat()


def _define(app: Any, e: Engaged) -> None:
    e.rounds += 1
    e.milestone = app.execute(commands.DefineMilestone.build(
        engagement_id=e.id, title=f"Phase {e.rounds}", amount="10.00", due=_due(),
        criteria="Delivered, reviewed and documented"), CURATOR)


def _fund(app: Any, e: Engaged) -> None:
    app.execute(commands.FundMilestone.build(engagement_id=e.id, milestone_id=e.milestone),
                CLIENT)


def _grant(app: Any, e: Engaged) -> None:
    e.grant = app.execute(commands.GrantAccess.build(
        engagement_id=e.id, resource="staging database", level="read",
        milestone_id=e.milestone), CURATOR)


def _note(app: Any, e: Engaged) -> None:
    app.execute(commands.LogNote.build(
        engagement_id=e.id, text="Curator relayed the client's questions to the contractor."),
        CURATOR)


def _submit(app: Any, e: Engaged) -> None:
    app.execute(commands.SubmitWork.build(engagement_id=e.id, milestone_id=e.milestone,
                                          note="Delivered; see the linked pull request."),
                CONTRACTOR)


def _request_changes(app: Any, e: Engaged) -> None:
    app.execute(commands.RequestChanges.build(engagement_id=e.id, milestone_id=e.milestone,
                                              reason="Missing tests for the edge cases."), CLIENT)


def _recertify(app: Any, e: Engaged) -> None:
    app.execute(commands.RecertifyAccess.build(engagement_id=e.id, grant_id=e.grant,
                                               reason="Still needed for the current stage"),
                CURATOR)


def _accept(app: Any, e: Engaged) -> None:
    app.execute(commands.AcceptMilestone.build(engagement_id=e.id, milestone_id=e.milestone),
                CLIENT)


def _release(app: Any, e: Engaged) -> None:
    app.execute(commands.ReleasePayment.build(engagement_id=e.id, milestone_id=e.milestone),
                CLIENT)


#: One milestone round: ten commands, eleven events.
ROUND: tuple[Step, ...] = (_define, _fund, _grant, _note, _submit, _request_changes, _submit,
                           _recertify, _accept, _release)


def prepare(app: Any, count: int) -> list[Engaged]:
    """Opens `count` engagements and brings each to active (interview, NDA and SOW signed)."""
    engaged = []
    for number in range(count):
        eid = app.open_engagement(commands.OpenEngagement.build(
            title=f"Load {number}", client="Acme Corp", contractor="Bo Chen", curator="cara",
            budget="1000000", currency="EUR"), CURATOR)
        app.execute(commands.RecordInterview.build(
            engagement_id=eid, interviewer="cara", scores={"scope_understanding": 4},
            decision="advance"), CURATOR)
        for kind in ("nda", "sow"):
            agreement = app.execute(commands.DraftAgreement.build(
                engagement_id=eid, kind=kind, jurisdiction="US-CA", sha256="c" * 64), CURATOR)
            app.execute(commands.SignAgreement.build(
                engagement_id=eid, agreement_id=agreement, party="client", signer="Ann"), CLIENT)
            app.execute(commands.SignAgreement.build(
                engagement_id=eid, agreement_id=agreement, party="contractor", signer="Bo"),
                CONTRACTOR)
        app.execute(commands.AcknowledgePlaybook.build(engagement_id=eid,
                                                       policy_version="2026.1"), CONTRACTOR)
        engaged.append(Engaged(eid))
    return engaged


def run_rounds(app: Any, engaged: list[Engaged], rounds: int) -> int:
    """Runs `rounds` milestone rounds on every engagement, engagements taking turns."""
    done = 0
    for _ in range(rounds):
        for step in ROUND:
            for one in engaged:
                step(app, one)
                done += 1
    return done


def run_until(app: Any, engaged: list[Engaged], deadline: float, clock: Callable[[], float]) -> int:
    """Runs commands (engagements taking turns) until `clock()` passes `deadline`."""
    done = 0
    while True:
        for step in ROUND:
            for one in engaged:
                step(app, one)
                done += 1
                if clock() >= deadline:
                    return done
