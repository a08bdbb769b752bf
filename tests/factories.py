"""Builders for tests: an engagement brought to a given stage through the application service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.commands import (DefineMilestone, DraftAgreement, FundMilestone, OpenEngagement,
                             RecordInterview, SignAgreement)
from ledger.roles import Actor

CURATOR = Actor.parse("curator:cara")
CLIENT = Actor.parse("client:acme")
CONTRACTOR = Actor.parse("contractor:bo")
AUDITOR = Actor.parse("auditor:ann")


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: Any) -> None:
        self.now += timedelta(**delta)


def active_engagement(app: Any, budget: str = "10000", currency: str = "EUR",
                      inspection_days: int = 14, grace_days: int = 7,
                      contractor: str = "Bo") -> UUID:
    """Interviewed, NDA (A1) and SOW (A2) signed by both: active, no milestones yet."""
    eid = app.open_engagement(OpenEngagement.build(
        title="Data pipeline", client="Acme", contractor=contractor, curator="cara", budget=budget,
        currency=currency, inspection_days=inspection_days, grace_days=grace_days), CURATOR)
    app.execute(RecordInterview.build(engagement_id=eid, interviewer="cara",
                                      scores={"scope_understanding": 4}, decision="advance"), CURATOR)
    for kind in ("nda", "sow"):
        agreement = app.execute(DraftAgreement.build(engagement_id=eid, kind=kind,
                                                     jurisdiction="US-CA", sha256="c" * 64), CURATOR)
        app.execute(SignAgreement.build(engagement_id=eid, agreement_id=agreement, party="client",
                                        signer="Ann"), CLIENT)
        app.execute(SignAgreement.build(engagement_id=eid, agreement_id=agreement,
                                        party="contractor", signer="Bo"), CONTRACTOR)
    return eid


def funded_milestone(app: Any, eid: UUID, amount: str = "1000", due: str = "2026-12-31") -> str:
    milestone = app.execute(DefineMilestone.build(engagement_id=eid, title="Phase", amount=amount,
                                                  due=due), CURATOR)
    app.execute(FundMilestone.build(engagement_id=eid, milestone_id=milestone), CLIENT)
    return milestone
