"""Curator workload: who curates which engagement and its open disputes. Per curator, `queries`
adds the overdue items (grants, milestones) as of today from the access register and the
money ledger."""

from __future__ import annotations

from typing import Any

from projections.engagement_state import EngagementRows

COLUMNS = ("engagement_id", "curator", "status", "open_disputes", "active_grants")


class CuratorWorkload(EngagementRows):
    name = "workload"
    title = "curator workload"
    tables = (
        "CREATE TABLE IF NOT EXISTS {workload} ("
        "engagement_id TEXT PRIMARY KEY, curator TEXT NOT NULL, status TEXT NOT NULL, "
        "open_disputes INTEGER NOT NULL, active_grants INTEGER NOT NULL)",
        "CREATE INDEX IF NOT EXISTS rm_workload_by_curator ON {workload} (curator)",
    )
    columns = {"workload": COLUMNS}

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {"workload": [(
            str(e.id), e.curator, e.status,
            sum(1 for d in e.disputes.values() if d.status in ("open", "escalated")),
            sum(1 for g in e.grants.values() if g.status == "active"),
        )]}
