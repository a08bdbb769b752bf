"""Access register: every grant ever made, active or not. A grant still active after its
`until` date is overdue: the sweep has not recorded its expiry yet (shown at read time)."""

from __future__ import annotations

from typing import Any

from ledger.views import timestamp
from projections.engagement_state import EngagementRows

COLUMNS = ("engagement_id", "grant_id", "contractor", "curator", "resource", "level",
           "milestone_id", "status", "until", "reason", "granted_at", "recertified_at",
           "recertified_stage", "ended_at", "end_reason")


class AccessRegister(EngagementRows):
    name = "access"
    title = "access register"
    tables = (
        "CREATE TABLE IF NOT EXISTS {access} ("
        "engagement_id TEXT NOT NULL, grant_id TEXT NOT NULL, contractor TEXT NOT NULL, "
        "curator TEXT NOT NULL, resource TEXT NOT NULL, level TEXT NOT NULL, "
        "milestone_id TEXT NOT NULL, status TEXT NOT NULL, until TEXT NOT NULL, reason TEXT, "
        "granted_at TEXT NOT NULL, recertified_at TEXT NOT NULL, recertified_stage TEXT, "
        "ended_at TEXT, end_reason TEXT, PRIMARY KEY (engagement_id, grant_id))",
        "CREATE INDEX IF NOT EXISTS rm_access_by_status ON {access} (status, until)",
    )
    columns = {"access": COLUMNS}

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {"access": [
            (str(e.id), g.id, e.contractor, e.curator, g.resource, g.level, g.milestone,
             g.status, g.until.isoformat(), g.reason, timestamp(g.granted_at),
             timestamp(g.recertified_at), g.recertified_stage, timestamp(g.ended_at),
             g.end_reason)
            for g in e.grants.values()
        ]}
