"""Engagement summary: one row per engagement, what the dashboard's table and `engagement list` show."""

from __future__ import annotations

from typing import Any

from ledger.milestones import CLOSED_STATUSES
from ledger.money import to_minor
from ledger.views import timestamp
from projections.engagement_state import EngagementRows

#: Milestones whose work is still due (the "next milestone due").
WORK_DUE = ("defined", "funded", "changes_requested")

COLUMNS = ("engagement_id", "title", "client", "contractor", "curator", "status", "outcome",
           "currency", "budget", "funded", "released", "refunded", "escrow", "next_due",
           "next_milestone", "milestones", "milestones_open", "open_disputes", "active_grants",
           "red_flags", "opened_at", "updated_at", "closed_at", "version")


def milestone_number(milestone_id: str) -> int:
    """The number in a milestone id ("M10" -> 10): ids sort by it, not as text."""
    return int(milestone_id[1:])


class EngagementSummary(EngagementRows):
    name = "summary"
    title = "engagement summary"
    #: 2: ties on the due date are broken by the milestone's number (M2 before M10).
    schema_version = 2
    tables = (
        "CREATE TABLE IF NOT EXISTS {summary} ("
        "engagement_id TEXT PRIMARY KEY, title TEXT NOT NULL, client TEXT NOT NULL, "
        "contractor TEXT NOT NULL, curator TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT, "
        "currency TEXT NOT NULL, budget BIGINT NOT NULL, funded BIGINT NOT NULL, "
        "released BIGINT NOT NULL, refunded BIGINT NOT NULL, escrow BIGINT NOT NULL, "
        "next_due TEXT, next_milestone TEXT, milestones INTEGER NOT NULL, "
        "milestones_open INTEGER NOT NULL, open_disputes INTEGER NOT NULL, "
        "active_grants INTEGER NOT NULL, red_flags INTEGER NOT NULL, opened_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, closed_at TEXT, version INTEGER NOT NULL)",
        "CREATE INDEX IF NOT EXISTS rm_summary_by_status ON {summary} (status, updated_at)",
        "CREATE INDEX IF NOT EXISTS rm_summary_by_updated ON {summary} (updated_at)",
    )
    columns = {"summary": COLUMNS}

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        ccy = e.currency
        due = sorted((m.due, milestone_number(m.id), m.id)
                     for m in e.milestones.values() if m.status in WORK_DUE)
        row = (
            str(e.id), e.title, e.client, e.contractor, e.curator, e.status, e.outcome, ccy,
            to_minor(e.budget, ccy), to_minor(e.funded, ccy), to_minor(e.released, ccy),
            to_minor(e.refunded, ccy), to_minor(e.escrow, ccy),
            due[0][0].isoformat() if due else None, due[0][2] if due else None,
            len(e.milestones),
            sum(1 for m in e.milestones.values() if m.status not in CLOSED_STATUSES),
            sum(1 for d in e.disputes.values() if d.status in ("open", "escalated")),
            sum(1 for g in e.grants.values() if g.status == "active"),
            sum(len(i.red_flags) for i in e.interviews.values()),
            timestamp(e.created_on), timestamp(e.modified_on), timestamp(e.closed_at), e.version,
        )
        return {"summary": [row]}
