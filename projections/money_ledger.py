"""Money ledger: per engagement budget, funded, released, refunded and escrow held (totals per
currency are sums over it), and per milestone its amount, status and dates."""

from __future__ import annotations

from typing import Any

from ledger.money import to_minor
from ledger.views import timestamp
from projections.engagement_state import EngagementRows

MONEY_COLUMNS = ("engagement_id", "currency", "budget", "committed", "funded", "released",
                 "refunded", "escrow")
MILESTONE_COLUMNS = ("engagement_id", "milestone_id", "title", "status", "currency", "amount",
                     "due", "original_due", "extensions", "extension_requested", "funded_at",
                     "submitted_at", "inspection_ends_at", "accepted_at", "deemed",
                     "closed_at")


class MoneyLedger(EngagementRows):
    name = "money"
    title = "money ledger"
    tables = (
        "CREATE TABLE IF NOT EXISTS {money} ("
        "engagement_id TEXT PRIMARY KEY, currency TEXT NOT NULL, budget BIGINT NOT NULL, "
        "committed BIGINT NOT NULL, funded BIGINT NOT NULL, released BIGINT NOT NULL, "
        "refunded BIGINT NOT NULL, escrow BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {milestones} ("
        "engagement_id TEXT NOT NULL, milestone_id TEXT NOT NULL, title TEXT NOT NULL, "
        "status TEXT NOT NULL, currency TEXT NOT NULL, amount BIGINT NOT NULL, "
        "due TEXT NOT NULL, original_due TEXT, extensions INTEGER NOT NULL, "
        "extension_requested TEXT, funded_at TEXT, submitted_at TEXT, inspection_ends_at TEXT, "
        "accepted_at TEXT, deemed INTEGER NOT NULL, closed_at TEXT, "
        "PRIMARY KEY (engagement_id, milestone_id))",
        "CREATE INDEX IF NOT EXISTS rm_milestones_by_status ON {milestones} (status, due)",
    )
    columns = {"money": MONEY_COLUMNS, "milestones": MILESTONE_COLUMNS}

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        ccy = e.currency
        money = (str(e.id), ccy, to_minor(e.budget, ccy), to_minor(e.committed_amount(), ccy),
                 to_minor(e.funded, ccy), to_minor(e.released, ccy), to_minor(e.refunded, ccy),
                 to_minor(e.escrow, ccy))
        milestones = [
            (str(e.id), m.id, m.title, m.status, ccy, to_minor(m.amount, ccy), m.due.isoformat(),
             m.original_due.isoformat() if m.original_due else None, m.extensions,
             m.extension_request["due"].isoformat() if m.extension_request else None,
             timestamp(m.funded_at), timestamp(m.submitted_at),
             timestamp(e.inspection_ends(m)), timestamp(m.accepted_at), int(m.deemed),
             timestamp(m.closed_at))
            for m in e.milestones.values()
        ]
        return {"money": [money], "milestones": milestones}
