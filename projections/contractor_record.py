"""Contractor record: one row per engagement, grouped by contractor when read: outcomes,
milestones on time / late / extended, disputes and how they ended, interview red flags."""

from __future__ import annotations

import json
from typing import Any

from ledger.views import timestamp
from projections.engagement_state import EngagementRows

COLUMNS = ("engagement_id", "contractor", "title", "client", "status", "outcome", "opened_at",
           "closed_at", "milestones", "on_time", "late", "extended", "disputes",
           "disputes_open", "disputes_escalated", "disputes_for_client",
           "disputes_for_contractor", "disputes_split", "interviews", "red_flags")


def dispute_outcome(dispute: Any) -> str:
    """open, escalated, for_client (all refunded), for_contractor (all released) or split."""
    if dispute.status != "resolved":
        return dispute.status
    if not dispute.release:
        return "for_client"
    if not dispute.refund:
        return "for_contractor"
    return "split"


class ContractorRecord(EngagementRows):
    name = "contractors"
    title = "contractor record"
    tables = (
        "CREATE TABLE IF NOT EXISTS {contractors} ("
        "engagement_id TEXT PRIMARY KEY, contractor TEXT NOT NULL, title TEXT NOT NULL, "
        "client TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT, opened_at TEXT NOT NULL, "
        "closed_at TEXT, milestones INTEGER NOT NULL, on_time INTEGER NOT NULL, "
        "late INTEGER NOT NULL, extended INTEGER NOT NULL, disputes INTEGER NOT NULL, "
        "disputes_open INTEGER NOT NULL, disputes_escalated INTEGER NOT NULL, "
        "disputes_for_client INTEGER NOT NULL, disputes_for_contractor INTEGER NOT NULL, "
        "disputes_split INTEGER NOT NULL, interviews INTEGER NOT NULL, red_flags TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS rm_contractors_by_name ON {contractors} (contractor)",
    )
    columns = {"contractors": COLUMNS}

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        submitted = [m for m in e.milestones.values() if m.submitted_at is not None]
        on_time = sum(1 for m in submitted if m.submitted_at.date() <= m.due)
        outcomes = [dispute_outcome(d) for d in e.disputes.values()]
        flags = [flag for i in e.interviews.values() for flag in i.red_flags]
        return {"contractors": [(
            str(e.id), e.contractor, e.title, e.client, e.status, e.outcome,
            timestamp(e.created_on), timestamp(e.closed_at), len(e.milestones), on_time,
            len(submitted) - on_time, sum(1 for m in e.milestones.values() if m.extensions),
            len(outcomes), outcomes.count("open"), outcomes.count("escalated"),
            outcomes.count("for_client"), outcomes.count("for_contractor"),
            outcomes.count("split"), len(e.interviews), json.dumps(flags),
        )]}
