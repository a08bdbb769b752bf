"""Alerts: what a curator checks every morning (and a cron job mails), read from the read models
as of a given day; and each curator's workload for the dashboard.

Nothing here is stored: the read models hold dates, and whether a date is near or past is
decided when asked, against an explicit `today` (tests pass a fixed day; the command line
passes today's UTC date). A date means the end of that day, UTC, so something due today has
0 days left and is "due", and becomes "overdue" the next day.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.access import RECERTIFY_EVERY_DAYS

#: Every kind of alert, in the order they are listed when equally urgent.
KINDS = ("grant_overdue", "recertification_due", "milestone_overdue", "inspection_passed",
         "dispute_ageing", "grant_expiring", "inspection_ending")
#: Past its date (or, for a dispute, older than the limit), then due within the window.
SEVERITIES = ("overdue", "due")
#: Milestones whose work is still to be delivered.
WORK_DUE = ("defined", "funded", "changes_requested")
#: Kinds that count as a curator's overdue items (an ageing dispute is counted as an open
#: dispute instead: how old is too old depends on the window asked for).
OVERDUE_ITEMS = ("grant_overdue", "recertification_due", "milestone_overdue",
                 "inspection_passed")

Row = dict[str, Any]


def alerts(models: Any, today: date, within: int = 7) -> list[dict[str, Any]]:
    """Every alert as of `today`, most urgent first.

    `models` is a `projections.queries.ReadModels` (or anything with its `query`). Each alert
    is a dict: `kind` (one of KINDS), `severity` (`overdue` or `due`), `engagement_id`,
    `title`, `curator`, `contractor`, `item` (the grant, milestone or dispute: `G1`, `M2`,
    `D1`), `milestone` (the milestone it concerns), `date` (the day concerned, ISO),
    `at` (the exact moment concerned when there is one, else None), `days_left`
    (`date - today` in days; negative when past) and `message` (one line).
    """
    if within < 0:
        raise ValueError("within must be zero or more days")
    found = [*grant_alerts(models, today, within),
             *milestone_alerts(models, today, within),
             *dispute_alerts(models, today, within)]
    return sorted(found, key=urgency)


def first_alerts(models: Any, today: date, within: int = 7,
                 limit: int = 200) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The `limit` most urgent alerts (as `alerts(...)[:limit]`) and how many of each kind
    there are in all: what the dashboard shows, without sorting every alert."""
    if within < 0:
        raise ValueError("within must be zero or more days")
    found = [*grant_alerts(models, today, within),
             *milestone_alerts(models, today, within, first=limit),
             *dispute_alerts(models, today, within)]
    kinds = Counter(a["kind"] for a in found)
    # Overdue milestones were read only as far as the list needs them: count them all.
    kinds["milestone_overdue"] = int(models.query(
        f"SELECT COUNT(*) AS n {_OVERDUE_WORK}", [*WORK_DUE, today.isoformat()])[0]["n"])
    return heapq.nsmallest(limit, found, key=urgency), kinds


def urgency(alert: dict[str, Any]) -> tuple[Any, ...]:
    """Overdue before due; then the least time left (the longest overdue) first."""
    return (SEVERITIES.index(alert["severity"]), alert["days_left"], KINDS.index(alert["kind"]),
            alert["title"], alert["engagement_id"], _natural(alert["item"]))


def counts(found: list[dict[str, Any]]) -> dict[str, int]:
    """How many alerts of each severity."""
    tally = Counter(alert["severity"] for alert in found)
    return {severity: tally[severity] for severity in SEVERITIES}


# Access grants --------------------------------------------------------------------------


def grant_alerts(models: Any, today: date, within: int) -> Iterator[dict[str, Any]]:
    """Grants past their last day or expiring within the window, and recertifications due."""
    horizon = today + timedelta(days=within)
    disputed_since = _unresolved_disputes_opened(models)
    for row in models.query(
        "SELECT a.engagement_id, a.grant_id, a.resource, a.level, a.milestone_id, a.until, "
        "a.recertified_at, a.recertified_stage, s.title, s.curator, s.contractor, "
        "m.status AS milestone_status, m.funded_at, m.submitted_at, m.accepted_at "
        "FROM {access} a JOIN {summary} s ON s.engagement_id = a.engagement_id "
        "LEFT JOIN {milestones} m ON m.engagement_id = a.engagement_id "
        "AND m.milestone_id = a.milestone_id "
        # Only the grants that can raise an alert in the window (ISO dates compare as text):
        # past or within the window's last day, a milestone whose stage moved since the last
        # recertification, or a 30-day recertification falling due by the window's end.
        "WHERE a.status = 'active' AND (a.until <= ? OR (m.status IS NOT NULL AND "
        "(a.recertified_stage IS NULL OR m.status <> a.recertified_stage)) "
        "OR a.recertified_at < ?)",
        [horizon.isoformat(),
         (horizon - timedelta(days=RECERTIFY_EVERY_DAYS - 1)).isoformat()],
    ):
        until = date.fromisoformat(row["until"])
        access = f"{row['level']} access to {row['resource']} ({row['grant_id']})"
        if until < today:
            yield _alert("grant_overdue", row, row["grant_id"], until, today,
                         f"{access} passed its last day {until} but is still active: the "
                         "access sweep has not recorded its expiry")
            continue  # recertifying a grant that should have ended is beside the point
        if until <= horizon:
            yield _alert("grant_expiring", row, row["grant_id"], until, today,
                         f"{access} for {row['milestone_id']} expires at the end of {until} "
                         f"({_in_days((until - today).days)})")
        alert = _recertification(row, today, horizon, until, disputed_since)
        if alert is not None:
            yield alert


def _recertification(row: Row, today: date, horizon: date, until: date,
                     disputed_since: dict[tuple[str, str], str]) -> dict[str, Any] | None:
    """Due every RECERTIFY_EVERY_DAYS days, and at once when the milestone changed stage."""
    grant, milestone = row["grant_id"], row["milestone_id"]
    stage = row["milestone_status"]
    last = _day(row["recertified_at"])
    if stage is not None and stage != row["recertified_stage"]:
        changed = _stage_changed_at(row, disputed_since.get((row["engagement_id"], milestone)))
        day = _day(changed) if changed else today
        return _alert("recertification_due", row, grant, min(day, today), today,
                      f"{grant} ({row['level']} access to {row['resource']}) needs "
                      f"recertifying: {milestone} moved from "
                      f"{row['recertified_stage']} to {stage} since it was last confirmed "
                      f"on {last}", at=changed, severity="overdue")
    due = last + timedelta(days=RECERTIFY_EVERY_DAYS)
    if due > horizon or due >= until:
        return None  # not yet, or the grant ends first (its expiry is the alert then)
    when = f"was due on {due}" if due < today else f"is due by {due} ({_in_days((due - today).days)})"
    return _alert("recertification_due", row, grant, due, today,
                  f"{grant} ({row['level']} access to {row['resource']}) was last recertified "
                  f"on {last}; its {RECERTIFY_EVERY_DAYS}-day recertification {when}")


def _stage_changed_at(row: Row, disputed_at: str | None) -> str | None:
    """The first recorded moment after the last recertification at which the milestone moved.

    The milestones table keeps when a milestone was funded, last submitted and accepted, and
    the disputes table when a dispute was opened; a change request keeps no time there, so a
    stage change known only from it has none (the alert is then dated today).
    """
    since = row["recertified_at"]
    moments = [row["funded_at"], row["submitted_at"], row["accepted_at"], disputed_at]
    later = sorted(moment for moment in moments if moment is not None and moment > since)
    return later[0] if later else None


def _unresolved_disputes_opened(models: Any) -> dict[tuple[str, str], str]:
    return {(row["engagement_id"], row["milestone_id"]): row["opened_at"]
            for row in models.query("SELECT engagement_id, milestone_id, opened_at "
                                    "FROM {disputes} WHERE status IN ('open', 'escalated')")}


# Milestones -------------------------------------------------------------------------------


#: Milestones whose work is overdue on `today` (FROM and WHERE; parameters WORK_DUE, today).
_OVERDUE_WORK = ("FROM {milestones} m JOIN {summary} s ON s.engagement_id = m.engagement_id "
                 f"WHERE m.status IN ({', '.join('?' for _ in WORK_DUE)}) AND m.due < ?")


def milestone_alerts(models: Any, today: date, within: int,
                     first: int | None = None) -> Iterator[dict[str, Any]]:
    """Work still due past its due date; inspection periods ending within the window or past.

    With `first`, only the overdue milestones that can be among the `first` most urgent
    alerts: those due on or before the `first`-th earliest due date (ties included). Any
    other is preceded by at least `first` alerts of its own kind that are longer overdue.
    """
    after_horizon = (today + timedelta(days=within + 1)).isoformat()
    marks = ", ".join("?" for _ in WORK_DUE)
    bound, bound_params = "", []
    if first is not None:
        bound = (f" AND m.due <= COALESCE((SELECT m.due {_OVERDUE_WORK} ORDER BY m.due "
                 f"LIMIT 1 OFFSET ?), '9999-12-31')")
        bound_params = [*WORK_DUE, today.isoformat(), max(first - 1, 0)]
    for row in models.query(
        "SELECT m.engagement_id, m.milestone_id, m.title AS milestone_title, m.status, m.due, "
        "m.extension_requested, m.inspection_ends_at, s.title, s.curator, s.contractor "
        "FROM {milestones} m JOIN {summary} s ON s.engagement_id = m.engagement_id "
        f"WHERE (m.status IN ({marks}) AND m.due < ?{bound}) "
        "OR (m.status = 'submitted' AND m.inspection_ends_at < ?)",
        [*WORK_DUE, today.isoformat(), *bound_params, after_horizon],
    ):
        milestone = row["milestone_id"]
        if row["status"] == "submitted":
            yield _inspection(row, today)
            continue
        due = date.fromisoformat(row["due"])
        waiting = (f"; an extension to {row['extension_requested']} waits for a decision"
                   if row["extension_requested"] else "")
        yield _alert("milestone_overdue", row, milestone, due, today,
                     f"{milestone} {row['milestone_title']} was due on {due} and is still "
                     f"{row['status']} ({_late((today - due).days)}){waiting}")


def _inspection(row: Row, today: date) -> dict[str, Any]:
    ends_at = row["inspection_ends_at"]
    ends = _moment(ends_at)
    when = f"{ends:%Y-%m-%d %H:%M} UTC"
    milestone = row["milestone_id"]
    if ends.date() < today:
        return _alert("inspection_passed", row, milestone, ends.date(), today,
                      f"the client's inspection of {milestone} {row['milestone_title']} ended "
                      f"{when} unanswered: the milestone sweep will deem it accepted",
                      at=ends_at)
    return _alert("inspection_ending", row, milestone, ends.date(), today,
                  f"the client has until {when} to accept {milestone} "
                  f"{row['milestone_title']} or request changes; after that it is deemed "
                  f"accepted ({_in_days((ends.date() - today).days)})", at=ends_at)


# Disputes ---------------------------------------------------------------------------------


def dispute_alerts(models: Any, today: date, within: int) -> Iterator[dict[str, Any]]:
    """Disputes still open or escalated more than `within` days after they were opened."""
    cutoff = (today - timedelta(days=within)).isoformat()  # opened before this day: too old
    for row in models.query(
        "SELECT engagement_id, dispute_id, milestone_id, title, curator, contractor, party, "
        "status, opened_at, evidence, escalated_to, escalated_at FROM {disputes} "
        "WHERE status IN ('open', 'escalated') AND opened_at < ?", [cutoff],
    ):
        opened = _day(row["opened_at"])
        age = (today - opened).days
        story = f"{row['dispute_id']} on {row['milestone_id']}, opened by the {row['party']} on {opened}"
        if row["status"] == "escalated":
            story += (f" and escalated to {row['escalated_to']} on {_day(row['escalated_at'])},"
                      " is still unresolved")
        else:
            story += ", is still open"
        count = row["evidence"]
        evidence = ("no evidence yet" if not count
                    else f"{count} evidence item{'s' if count != 1 else ''}")
        yield _alert("dispute_ageing", row, row["dispute_id"], opened, today,
                     f"{story} after {age} days ({evidence}); {row['milestone_id']} stays "
                     "frozen", at=row["opened_at"], severity="overdue")


# Curator workload -------------------------------------------------------------------------


def curator_workload(models: Any, today: date) -> list[dict[str, Any]]:
    """Each curator's load as of `today`, for the dashboard: busiest (most overdue) first.

    One dict per curator who curates any engagement:

    - `curator`: the name;
    - `engagements`: engagements curated, any status; `open`: those not `closed`;
    - `open_disputes`: disputes `open` or `escalated` on them;
    - `active_grants`: access grants still `active`;
    - `overdue`: overdue items by kind (`grant_overdue`, `recertification_due`,
      `milestone_overdue`, `inspection_passed`: the kinds of `alerts` that are past a date
      whatever the window), and `overdue_items`, their total.

    Sorted by `overdue_items`, then `open` engagements (both most first), then name.
    """
    overdue: dict[str, Counter[str]] = {}
    for alert in [*grant_alerts(models, today, 0), *milestone_alerts(models, today, 0)]:
        if alert["severity"] == "overdue" and alert["kind"] in OVERDUE_ITEMS:
            overdue.setdefault(alert["curator"], Counter())[alert["kind"]] += 1
    rows = models.query(
        "SELECT curator, COUNT(*) AS engagements, "
        "SUM(CASE WHEN status <> 'closed' THEN 1 ELSE 0 END) AS open, "
        "SUM(open_disputes) AS open_disputes, SUM(active_grants) AS active_grants "
        "FROM {workload} GROUP BY curator")
    result = []
    for row in rows:
        tally = overdue.get(row["curator"], Counter())
        result.append({
            "curator": row["curator"],
            "engagements": int(row["engagements"]),
            "open": int(row["open"] or 0),
            "open_disputes": int(row["open_disputes"] or 0),
            "active_grants": int(row["active_grants"] or 0),
            "overdue": {kind: tally[kind] for kind in OVERDUE_ITEMS},
            "overdue_items": sum(tally.values()),
        })
    return sorted(result, key=lambda r: (-r["overdue_items"], -r["open"], r["curator"]))


# Helpers ----------------------------------------------------------------------------------


def _alert(kind: str, row: Row, item: str, day: date, today: date, message: str,
           at: str | None = None, severity: str | None = None) -> dict[str, Any]:
    days_left = (day - today).days
    return {
        "kind": kind,
        "severity": severity or ("overdue" if days_left < 0 else "due"),
        "engagement_id": row["engagement_id"],
        "title": row["title"],
        "curator": row["curator"],
        "contractor": row["contractor"],
        "item": item,
        "milestone": row["milestone_id"],
        "date": day.isoformat(),
        "at": at,
        "days_left": days_left,
        "message": message,
    }


def _moment(text: str) -> datetime:
    """A read-model timestamp (`2026-11-02T09:00:00.000000Z`) as an aware datetime (UTC).

    `fromisoformat` (C) rather than `strptime`: ten times faster, and it runs per row."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _day(text: str) -> date:
    """The UTC day of a read-model timestamp (they are stored in UTC, `...Z`)."""
    return date.fromisoformat(text[:10])


def _in_days(days: int) -> str:
    return {0: "today", 1: "tomorrow"}.get(days, f"in {days} days")


def _late(days: int) -> str:
    return f"{days} day{'s' if days != 1 else ''} late"


@functools.lru_cache(maxsize=4096)  # a few dozen item names, tens of thousands of alerts
def _natural(item: str) -> tuple[str, int]:
    """`G2` before `G10`."""
    match = re.fullmatch(r"([A-Z]+)(\d+)", item)
    return (match.group(1), int(match.group(2))) if match else (item, 0)
