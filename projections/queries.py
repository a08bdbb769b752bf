"""Reading the read models: what the command line and the terminal UI ask of them.

`ReadModels(app)` first catches every model up (so one machine never sees stale data), then
answers from the tables alone: no replay. Amounts come back as decimal strings in the
currency's units, as in the JSON contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.money import format_amount, from_minor
from ledger.roles import Action, Actor, check_permitted
from ledger.views import is_redacted_for
from projections.runner import Progress, Projector

SUMMARY_ORDER = {
    "updated": "updated_at DESC, engagement_id",
    "opened": "opened_at DESC, engagement_id",
    "title": "title, engagement_id",
    "status": "status, updated_at DESC, engagement_id",
    "escrow": "escrow DESC, engagement_id",
    "next_due": "next_due IS NULL, next_due, engagement_id",
}
STATUSES = ("vetting", "contracting", "active", "closed")


def money(minor: int | None, currency: str) -> str | None:
    return None if minor is None else format_amount(from_minor(minor, currency), currency)


class ReadModels:
    def __init__(self, app: Any, actor: Actor, *, catch_up: bool = True,
                 progress: Progress | None = None) -> None:
        check_permitted(actor, Action.READ)
        self.app = app
        self.actor = actor
        self.redacted = is_redacted_for(actor)
        self.projector = Projector(app)
        self.store = self.projector.store
        if catch_up:
            self.projector.catch_up(progress)

    def refresh(self, progress: Progress | None = None) -> int:
        return self.projector.catch_up(progress)

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        return self.store.query(sql, params)

    # Engagement summary ---------------------------------------------------------------

    def engagements(self, status: str | None = None, *, search: str | None = None,
                    order: str = "updated", limit: int | None = None,
                    offset: int = 0) -> list[dict[str, Any]]:
        where, params = self._summary_filter(status, search)
        sql = f"SELECT * FROM {{summary}}{where} ORDER BY {SUMMARY_ORDER[order]}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [self._summary_row(row) for row in self.query(sql, params)]

    def count_engagements(self, status: str | None = None, search: str | None = None) -> int:
        where, params = self._summary_filter(status, search)
        return int(self.query(f"SELECT COUNT(*) AS n FROM {{summary}}{where}", params)[0]["n"])

    @staticmethod
    def _summary_filter(status: str | None, search: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if search:
            clauses.append("(LOWER(title) LIKE ? OR LOWER(client) LIKE ? OR LOWER(contractor) "
                           "LIKE ? OR LOWER(curator) LIKE ? OR engagement_id LIKE ?)")
            params.extend([f"%{search.lower()}%"] * 5)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _summary_row(self, row: dict[str, Any]) -> dict[str, Any]:
        ccy = row["currency"]
        return {
            "id": row["engagement_id"],
            "title": row["title"],
            "status": row["status"],
            "outcome": row["outcome"],
            "client": row["client"],
            "contractor": row["contractor"],
            "curator": row["curator"],
            "currency": ccy,
            "budget": money(row["budget"], ccy),
            "money": {name: money(row[name], ccy)
                      for name in ("funded", "released", "refunded", "escrow")},
            "next_due": row["next_due"],
            "next_milestone": row["next_milestone"],
            "milestones": row["milestones"],
            "milestones_open": row["milestones_open"],
            "open_disputes": row["open_disputes"],
            "active_grants": row["active_grants"],
            "red_flags": None if self.redacted else row["red_flags"],
            "opened_at": row["opened_at"],
            "updated_at": row["updated_at"],
            "closed_at": row["closed_at"],
            "version": row["version"],
            "redacted": self.redacted,
        }

    # Totals ---------------------------------------------------------------------------

    def totals(self) -> list[dict[str, Any]]:
        """Money per currency over every engagement (the money ledger's totals)."""
        rows = self.query("SELECT currency, COUNT(*) AS engagements, SUM(budget) AS budget, "
                          "SUM(funded) AS funded, SUM(released) AS released, "
                          "SUM(refunded) AS refunded, SUM(escrow) AS escrow FROM {money} "
                          "GROUP BY currency ORDER BY currency")
        return [{"currency": r["currency"], "engagements": int(r["engagements"]),
                 **{k: money(int(r[k]), r["currency"])
                    for k in ("budget", "funded", "released", "refunded", "escrow")}}
                for r in rows]

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.query("SELECT status, COUNT(*) AS n FROM {summary} GROUP BY status"):
            counts[row["status"]] = int(row["n"])
        return counts

    def monthly(self) -> list[dict[str, Any]]:
        """Money moved and disputes opened/closed per month and currency, oldest first."""
        return [{"month": r["month"], "currency": r["currency"],
                 "funded": money(r["funded"], r["currency"]),
                 "released": money(r["released"], r["currency"]),
                 "refunded": money(r["refunded"], r["currency"]),
                 "disputes_opened": r["disputes_opened"], "disputes_closed": r["disputes_closed"]}
                for r in self.query("SELECT * FROM {monthly} ORDER BY month, currency")]


def open_read_models(app: Any, actor: Actor, progress: Callable[[int, int], None] | None = None
                     ) -> ReadModels:
    return ReadModels(app, actor, progress=progress)
