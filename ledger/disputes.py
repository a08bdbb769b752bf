"""Disputes: opened on money still in escrow, evidence from both parties, mediation, resolution.

Rule 5: an open or escalated dispute freezes its milestone. Rule 6: a resolution pays out the
escrowed amount exactly (release + refund) and gives a finding for every evidence item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.errors import RuleViolation
from ledger.events import EngagementEvent, Stamp
from ledger.roles import Party

DISPUTABLE_STATUSES = ("funded", "submitted", "changes_requested", "accepted")
UNRESOLVED = ("open", "escalated")


@dataclass
class Evidence:
    id: str
    party: str
    description: str
    sha256: str | None
    at: datetime
    by: str


@dataclass
class Dispute:
    id: str
    milestone: str
    party: str
    reason: str
    claim: Decimal | None
    status: str  # open | resolved | escalated
    opened_at: datetime
    opened_version: int
    milestone_status_before: str
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)
    release: Decimal | None = None
    refund: Decimal | None = None
    resolution: str | None = None
    findings: dict[str, str] = field(default_factory=dict)
    resolved_at: datetime | None = None
    escalated_to: str | None = None
    packet_sha256: str | None = None
    escalated_at: datetime | None = None


class DisputeOpened(EngagementEvent):
    TOPIC = "engagement-ledger:DisputeOpened"

    dispute_id: str
    milestone_id: str
    party: str
    reason: str
    claim: Decimal | None

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        engagement.disputes[self.dispute_id] = Dispute(
            id=self.dispute_id, milestone=self.milestone_id, party=self.party, reason=self.reason,
            claim=self.claim, status="open", opened_at=self.timestamp,
            opened_version=self.originator_version, milestone_status_before=milestone.status,
        )
        milestone.status = "disputed"

    def created_id(self) -> str:
        return self.dispute_id

    def summary(self) -> str:
        claim = f", claiming {self.claim}" if self.claim is not None else ""
        return f"dispute {self.dispute_id} opened on {self.milestone_id} by the {self.party}{claim}"


class EvidenceSubmitted(EngagementEvent):
    TOPIC = "engagement-ledger:EvidenceSubmitted"

    dispute_id: str
    evidence_id: str
    party: str
    description: str
    sha256: str | None

    PERSONAL = ("description",)

    def change(self, engagement: Any) -> None:
        engagement.disputes[self.dispute_id].evidence.append(Evidence(
            self.evidence_id, self.party, self.description, self.sha256, self.timestamp, self.actor,
        ))

    def created_id(self) -> str:
        return self.evidence_id

    def summary(self) -> str:
        return f"evidence {self.evidence_id} for {self.dispute_id} from the {self.party}"


class MediationNoted(EngagementEvent):
    TOPIC = "engagement-ledger:MediationNoted"

    dispute_id: str
    text: str

    PERSONAL = ("text",)

    def change(self, engagement: Any) -> None:
        from ledger.engagement import Entry

        engagement.disputes[self.dispute_id].notes.append(Entry(self.timestamp, self.actor, self.text))

    def summary(self) -> str:
        return f"mediation note on {self.dispute_id}"


class DisputeResolved(EngagementEvent):
    TOPIC = "engagement-ledger:DisputeResolved"

    dispute_id: str
    release: Decimal
    refund: Decimal
    reason: str
    findings: dict[str, str]

    def change(self, engagement: Any) -> None:
        dispute = engagement.disputes[self.dispute_id]
        dispute.status = "resolved"
        dispute.release = self.release
        dispute.refund = self.refund
        dispute.resolution = self.reason
        dispute.findings = dict(self.findings)
        dispute.resolved_at = self.timestamp
        milestone = engagement.milestones[dispute.milestone]
        milestone.status = "settled"
        milestone.closed_at = self.timestamp
        engagement.released += self.release
        engagement.refunded += self.refund

    def summary(self) -> str:
        return f"dispute {self.dispute_id} resolved: {self.release} released, {self.refund} refunded"


class DisputeEscalated(EngagementEvent):
    TOPIC = "engagement-ledger:DisputeEscalated"

    dispute_id: str
    to: str
    packet_sha256: str

    def change(self, engagement: Any) -> None:
        dispute = engagement.disputes[self.dispute_id]
        dispute.status = "escalated"
        dispute.escalated_to = self.to
        dispute.packet_sha256 = self.packet_sha256
        dispute.escalated_at = self.timestamp

    def summary(self) -> str:
        return f"dispute {self.dispute_id} escalated to {self.to}"


class DisputesMixin:
    """The engagement's dispute commands."""

    disputes: dict[str, Dispute]
    milestones: dict[str, Any]

    def open_dispute(self, by: Stamp, milestone_id: str, party: Party, reason: str,
                     claim: Decimal | None) -> str:
        self.check_not_closed()  # type: ignore[attr-defined]
        milestone = self.milestones[milestone_id]
        if milestone.status not in DISPUTABLE_STATUSES:
            raise RuleViolation(f"a dispute is opened only on money still in escrow; "
                                f"{milestone_id} is {milestone.status}")
        if claim is not None and claim > milestone.amount:
            raise RuleViolation(f"the claim of {claim} is more than the {milestone.amount} "
                                f"held in escrow for {milestone_id}")
        dispute_id = f"D{len(self.disputes) + 1}"
        self.record(by, DisputeOpened, dispute_id=dispute_id, milestone_id=milestone_id,  # type: ignore[attr-defined]
                    party=party.value, reason=reason, claim=claim)
        return dispute_id

    def submit_evidence(self, by: Stamp, dispute_id: str, party: Party, description: str,
                        sha256: str | None) -> str:
        self.check_not_closed()  # type: ignore[attr-defined]
        check_unresolved(self.disputes[dispute_id])
        evidence_id = f"E{sum(len(d.evidence) for d in self.disputes.values()) + 1}"
        self.record(by, EvidenceSubmitted, dispute_id=dispute_id, evidence_id=evidence_id,  # type: ignore[attr-defined]
                    party=party.value, description=description, sha256=sha256)
        return evidence_id

    def note_mediation(self, by: Stamp, dispute_id: str, text: str) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        check_unresolved(self.disputes[dispute_id])
        self.record(by, MediationNoted, dispute_id=dispute_id, text=text)  # type: ignore[attr-defined]

    def resolve_dispute(self, by: Stamp, dispute_id: str, release: Decimal, refund: Decimal,
                        reason: str, findings: dict[str, str]) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        dispute = self.disputes[dispute_id]
        check_unresolved(dispute)
        escrowed = self.milestones[dispute.milestone].amount
        check_resolution_adds_up(escrowed, release, refund)
        check_findings(dispute, findings)
        self.record(by, DisputeResolved, dispute_id=dispute_id, release=release, refund=refund,  # type: ignore[attr-defined]
                    reason=reason, findings=findings)
        self.revoke_grants_serving(by, dispute.milestone, f"milestone {dispute.milestone} settled")  # type: ignore[attr-defined]

    def escalate_dispute(self, by: Stamp, dispute_id: str, to: str, packet_sha256: str) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        self.check_escalation(dispute_id)
        self.record(by, DisputeEscalated, dispute_id=dispute_id, to=to,  # type: ignore[attr-defined]
                    packet_sha256=packet_sha256)

    def check_escalation(self, dispute_id: str) -> None:
        dispute = self.disputes[dispute_id]
        if dispute.status != "open":
            raise RuleViolation(f"dispute {dispute_id} is {dispute.status}; only an open dispute "
                                "can be escalated")


def check_unresolved(dispute: Dispute) -> None:
    if dispute.status not in UNRESOLVED:
        raise RuleViolation(f"dispute {dispute.id} is already {dispute.status}")


def check_resolution_adds_up(escrowed: Decimal, release: Decimal, refund: Decimal) -> None:
    if release + refund != escrowed:
        raise RuleViolation(f"release {release} + refund {refund} = {release + refund}, but "
                            f"{escrowed} is held in escrow: they must add up exactly")


def check_findings(dispute: Dispute, findings: dict[str, str]) -> None:
    missing = [e.id for e in dispute.evidence if e.id not in findings]
    if missing:
        raise RuleViolation(f"a resolution needs a finding for every evidence item; "
                            f"missing: {', '.join(missing)} (--finding E1=TEXT)")
