"""Dispute docket: every dispute, open or closed, with its evidence count; age is computed
when read (from `opened_at` to now, or to when it was resolved)."""

from __future__ import annotations

from typing import Any

from ledger.money import to_minor
from ledger.views import timestamp
from projections.engagement_state import EngagementRows

COLUMNS = ("engagement_id", "dispute_id", "milestone_id", "title", "contractor", "curator",
           "party", "status", "currency", "claim", "escrow", "reason", "opened_at",
           "evidence", "mediation_notes", "resolved_at", "release", "refund", "escalated_to",
           "escalated_at")


class DisputeDocket(EngagementRows):
    name = "disputes"
    title = "dispute docket"
    tables = (
        "CREATE TABLE IF NOT EXISTS {disputes} ("
        "engagement_id TEXT NOT NULL, dispute_id TEXT NOT NULL, milestone_id TEXT NOT NULL, "
        "title TEXT NOT NULL, contractor TEXT NOT NULL, curator TEXT NOT NULL, "
        "party TEXT NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL, claim BIGINT, "
        "escrow BIGINT NOT NULL, reason TEXT NOT NULL, opened_at TEXT NOT NULL, "
        "evidence INTEGER NOT NULL, mediation_notes INTEGER NOT NULL, resolved_at TEXT, "
        "release BIGINT, refund BIGINT, escalated_to TEXT, escalated_at TEXT, "
        "PRIMARY KEY (engagement_id, dispute_id))",
        "CREATE INDEX IF NOT EXISTS rm_disputes_by_status ON {disputes} (status, opened_at)",
    )
    columns = {"disputes": COLUMNS}

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        ccy = e.currency
        minor = lambda amount: None if amount is None else to_minor(amount, ccy)  # noqa: E731
        return {"disputes": [
            (str(e.id), d.id, d.milestone, e.title, e.contractor, e.curator, d.party, d.status,
             ccy, minor(d.claim), to_minor(e.milestones[d.milestone].amount, ccy), d.reason,
             timestamp(d.opened_at), len(d.evidence), len(d.notes), timestamp(d.resolved_at),
             minor(d.release), minor(d.refund), d.escalated_to, timestamp(d.escalated_at))
            for d in e.disputes.values()
        ]}
