"""Contractor record: one row per engagement, grouped by contractor when read: outcomes,
milestones on time / late / extended, disputes and how they ended, interview red flags.

Whether a milestone was delivered on time depends on its due date *when it was delivered*,
which the engagement's current state no longer tells (a later extension or amendment moves
the due date). So this model also follows each milestone's due date through the events
(`contractor_milestones`) and notes the first delivery against the due date then in force.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date
from typing import Any

from ledger.views import timestamp
from projections.engagement_state import EngagementRows
from projections.readmodel import Item, handles
from projections.store import Tx

COLUMNS = ("engagement_id", "contractor", "title", "client", "status", "outcome", "opened_at",
           "closed_at", "milestones", "on_time", "late", "extended", "disputes",
           "disputes_open", "disputes_escalated", "disputes_for_client",
           "disputes_for_contractor", "disputes_split", "interviews", "red_flags")
#: Each milestone's due date as the events moved it, and its first delivery.
MILESTONE_COLUMNS = ("engagement_id", "milestone_id", "due", "extended", "delivered_at",
                     "due_when_delivered")


def dispute_outcome(dispute: Any) -> str:
    """open, escalated, for_client (all refunded), for_contractor (all released) or split."""
    if dispute.status != "resolved":
        return dispute.status
    if not dispute.release:
        return "for_client"
    if not dispute.refund:
        return "for_contractor"
    return "split"


def delivered_on_time(fact: dict[str, Any]) -> bool:
    """Delivered by the end (UTC) of the due date in force at the first delivery."""
    return fact["delivered_on"] <= date.fromisoformat(fact["due_when_delivered"])


class ContractorRecord(EngagementRows):
    name = "contractors"
    title = "contractor record"
    #: 2: on time / late judged at the first delivery; amendments moving the due date later
    #: count as extended (docs/decisions.md, "On time, late and extended").
    schema_version = 2
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
        "CREATE TABLE IF NOT EXISTS {contractor_milestones} ("
        "engagement_id TEXT NOT NULL, milestone_id TEXT NOT NULL, due TEXT NOT NULL, "
        "extended INTEGER NOT NULL, delivered_at TEXT, due_when_delivered TEXT, "
        "PRIMARY KEY (engagement_id, milestone_id))",
    )
    columns = {"contractors": COLUMNS}

    def __init__(self, view: Any, application_name: str) -> None:
        super().__init__(view, application_name)
        #: The milestone facts of the batch being applied: {engagement_id: {milestone_id: row}}.
        self.facts: dict[str, dict[str, dict[str, Any]]] = {}

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        # The facts move event by event first; the rows are then derived from the engagement
        # after the batch (EngagementRows), reading the facts.
        self.facts = self._load_facts(tx, sorted({item.engagement_id for item in batch}))
        touched: set[str] = set()
        for item in batch:
            handler = self.handlers.get(item.type)
            if handler is not None:
                getattr(self, handler)(item, self.facts.setdefault(item.engagement_id, {}))
                touched.add(item.engagement_id)
        self._store_facts(tx, sorted(touched))
        try:
            super().apply(tx, batch)
        finally:
            self.facts = {}

    @handles("MilestoneDefined")
    def _defined(self, item: Item, milestones: dict[str, dict[str, Any]]) -> None:
        event = item.event
        milestones[event.milestone_id] = {"due": event.due, "extended": False,
                                          "delivered_at": None, "delivered_on": None,
                                          "due_when_delivered": None}

    @handles("ExtensionGranted")
    def _extended(self, item: Item, milestones: dict[str, dict[str, Any]]) -> None:
        self._move_due(milestones[item.event.milestone_id], item.event.due)

    @handles("MilestoneAmended")
    def _amended(self, item: Item, milestones: dict[str, dict[str, Any]]) -> None:
        if "due" in item.event.changes:
            self._move_due(milestones[item.event.milestone_id], item.event.changes["due"])

    @handles("WorkSubmitted", "MilestoneAccepted", "MilestoneDeemedAccepted")
    def _delivered(self, item: Item, milestones: dict[str, dict[str, Any]]) -> None:
        fact = milestones[item.event.milestone_id]
        if fact["delivered_at"] is None:  # the first delivery decides; later ones are rework
            moment = item.event.timestamp
            fact["delivered_at"] = timestamp(moment)
            fact["delivered_on"] = moment.astimezone(UTC).date()
            fact["due_when_delivered"] = fact["due"].isoformat()

    @staticmethod
    def _move_due(fact: dict[str, Any], due: date) -> None:
        if due > fact["due"]:  # only more time is an extension; an earlier date is not
            fact["extended"] = True
        fact["due"] = due

    def _load_facts(self, tx: Tx, ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        facts: dict[str, dict[str, dict[str, Any]]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in tx.query(f"SELECT * FROM {{contractor_milestones}} "
                                f"WHERE engagement_id IN ({marks})", chunk):
                delivered = row["delivered_at"]
                facts.setdefault(row["engagement_id"], {})[row["milestone_id"]] = {
                    "due": date.fromisoformat(row["due"]), "extended": bool(row["extended"]),
                    "delivered_at": delivered,
                    "delivered_on": date.fromisoformat(delivered[:10]) if delivered else None,
                    "due_when_delivered": row["due_when_delivered"],
                }
        return facts

    def _store_facts(self, tx: Tx, ids: list[str]) -> None:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            tx.execute(f"DELETE FROM {{contractor_milestones}} WHERE engagement_id IN ({marks})",
                       chunk)
        names = ", ".join(MILESTONE_COLUMNS)
        marks = ", ".join("?" for _ in MILESTONE_COLUMNS)
        tx.executemany(
            f"INSERT INTO {{contractor_milestones}} ({names}) VALUES ({marks})",
            [(key, milestone_id, fact["due"].isoformat(), int(fact["extended"]),
              fact["delivered_at"], fact["due_when_delivered"])
             for key in ids for milestone_id, fact in sorted(self.facts[key].items())])

    def rows(self, e: Any) -> dict[str, list[tuple[Any, ...]]]:
        facts = list(self.facts.get(str(e.id), {}).values())
        delivered = [fact for fact in facts if fact["delivered_at"] is not None]
        on_time = sum(1 for fact in delivered if delivered_on_time(fact))
        outcomes = [dispute_outcome(d) for d in e.disputes.values()]
        flags = [flag for i in e.interviews.values() for flag in i.red_flags]
        return {"contractors": [(
            str(e.id), e.contractor, e.title, e.client, e.status, e.outcome,
            timestamp(e.created_on), timestamp(e.closed_at), len(e.milestones), on_time,
            len(delivered) - on_time, sum(1 for fact in facts if fact["extended"]),
            len(outcomes), outcomes.count("open"), outcomes.count("escalated"),
            outcomes.count("for_client"), outcomes.count("for_contractor"),
            outcomes.count("split"), len(e.interviews), json.dumps(flags),
        )]}


# Reading the record -----------------------------------------------------------------------

ENGAGEMENT_STATUSES = ("vetting", "contracting", "active", "closed")
OUTCOMES = ("completed", "terminated", "not_hired")
DISPUTE_OUTCOMES = ("open", "escalated", "for_client", "for_contractor", "split")
#: Milestones whose work is still to be delivered (overdue once past their due date).
WORK_DUE = ("defined", "funded", "changes_requested")


def contractor_names(models: Any) -> list[str]:
    """Every contractor name on record, as written when their engagements were opened."""
    # Sorted here, not by the database: PostgreSQL's collation depends on its locale.
    return sorted(row["contractor"] for row in
                  models.query("SELECT DISTINCT contractor FROM {contractors}"))


def match_contractor(models: Any, name: str) -> list[str]:
    """The spellings on record that are `name`, ignoring case; unknown: InvalidInput naming
    the closest names (`ledger contractor show` exits 2 with it)."""
    from ledger.errors import InvalidInput

    wanted = name.strip().casefold()
    names = contractor_names(models)
    found = [n for n in names if n.casefold() == wanted]
    if found:
        return found
    suggestions = close_names(wanted, names)
    hint = (f"; did you mean {_or_list(suggestions)}?" if suggestions
            else f" among the {len(names)} on record" if names else "; none is on record yet")
    raise InvalidInput(f"no contractor named {name.strip()!r}{hint}")


def close_names(wanted: str, names: list[str], limit: int = 3) -> list[str]:
    """Names that contain `wanted`, then those difflib finds close to it (case ignored)."""
    import difflib

    folded: dict[str, str] = {}
    for n in names:
        folded.setdefault(n.casefold(), n)
    wanted = wanted.casefold()
    containing = [f for f in folded if wanted and wanted in f]
    close = difflib.get_close_matches(wanted, list(folded), n=limit, cutoff=0.6)
    picked = list(dict.fromkeys(close + sorted(containing)))[:limit]
    return [folded[f] for f in picked]


def contractor_record(models: Any, name: str, today: Any = None) -> dict[str, Any]:
    """The contractor's track record across every engagement (`contractor show --format json`).

    `name` matches exactly, ignoring case. Milestones `overdue` are counted as of `today`
    (a date; default today's UTC date) from the money ledger's milestones. A contractor
    reading their own record gets it redacted: red flags come from interviews, which are
    hidden from contractors, so `red_flags` is null and `redacted` true.
    The shape is documented in docs/json-contract.md ("contractor show").
    """
    from datetime import datetime

    today = today or datetime.now(UTC).date()
    spellings = match_contractor(models, name)
    marks = ", ".join("?" for _ in spellings)
    rows = models.query(f"SELECT * FROM {{contractors}} WHERE contractor IN ({marks}) "
                        "ORDER BY opened_at DESC, engagement_id", spellings)
    overdue = _overdue_milestones(models, [row["engagement_id"] for row in rows], today)
    redacted = bool(models.redacted)
    track = [_engagement(row, overdue.get(row["engagement_id"], 0), redacted) for row in rows]
    flags = [{"engagement_id": row["engagement_id"], "title": row["title"], "flag": flag}
             for row in rows for flag in json.loads(row["red_flags"])]
    return {
        "name": rows[0]["contractor"],  # as written on the latest engagement
        "redacted": redacted,
        "today": today.isoformat(),
        "engagements": {
            "total": len(rows),
            "by_status": {s: sum(1 for r in rows if r["status"] == s) for s in ENGAGEMENT_STATUSES},
            "by_outcome": {o: sum(1 for r in rows if r["outcome"] == o) for o in OUTCOMES},
        },
        "milestones": {key: sum(t["milestones"][key] for t in track)
                       for key in ("total", "submitted", "on_time", "late", "extended", "overdue")},
        "disputes": {key: sum(t["disputes"][key] for t in track)
                     for key in ("total", *DISPUTE_OUTCOMES)},
        "interviews": sum(t["interviews"] for t in track),
        "red_flags": None if redacted else flags,
        "track_record": track,
    }


def _engagement(row: dict[str, Any], overdue: int, redacted: bool) -> dict[str, Any]:
    return {
        "id": row["engagement_id"],
        "title": row["title"],
        "client": row["client"],
        "status": row["status"],
        "outcome": row["outcome"],
        "opened_at": row["opened_at"],
        "closed_at": row["closed_at"],
        "milestones": {"total": row["milestones"], "submitted": row["on_time"] + row["late"],
                       "on_time": row["on_time"], "late": row["late"],
                       "extended": row["extended"], "overdue": overdue},
        "disputes": {"total": row["disputes"], "open": row["disputes_open"],
                     "escalated": row["disputes_escalated"],
                     "for_client": row["disputes_for_client"],
                     "for_contractor": row["disputes_for_contractor"],
                     "split": row["disputes_split"]},
        "interviews": row["interviews"],
        "red_flags": None if redacted else len(json.loads(row["red_flags"])),
    }


def _overdue_milestones(models: Any, engagement_ids: list[str], today: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    status_marks = ", ".join("?" for _ in WORK_DUE)
    for start in range(0, len(engagement_ids), 500):
        chunk = engagement_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in models.query(
            f"SELECT engagement_id, COUNT(*) AS n FROM {{milestones}} "
            f"WHERE engagement_id IN ({marks}) AND status IN ({status_marks}) AND due < ? "
            "GROUP BY engagement_id", [*chunk, *WORK_DUE, today.isoformat()],
        ):
            found[row["engagement_id"]] = int(row["n"])
    return found


def _or_list(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
