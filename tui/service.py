"""What the terminal UI asks of the ledger: one object, called from Textual workers only.

It wraps the application service (commands, one engagement's state and history, replay) and
the read models (dashboard figures, the engagement table, alerts, the contractor record). It
never hands out SQL: screens get plain dicts in the JSON contract's shapes. Workers may call
it from any thread: the application and the read-model store are safe to share, and catching
up runs one at a time (a long catch-up never holds up a query).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ledger.application import open_ledger
from ledger.roles import Actor
from ledger.views import changes, engagement_state, history_row
from projections.queries import ReadModels


@dataclass
class Dashboard:
    counts: dict[str, int]
    totals: list[dict[str, Any]]
    monthly: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    released_this_month: list[tuple[str, str]] = field(default_factory=list)
    open_disputes: int = 0
    grants_expiring: int = 0
    milestones_overdue: int = 0
    head: int = 0


class LedgerService:
    def __init__(self, db_url: str | None, actor: Actor, clock: Any = None) -> None:
        self.actor = actor
        self.app = open_ledger(db_url, clock=clock)
        self.models = ReadModels(self.app, actor, catch_up=False)
        self._catching_up = threading.Lock()
        self.today: date | None = None  # tests pin the day; otherwise today's UTC date

    def close(self) -> None:
        self.app.close()

    def day(self) -> date:
        return self.today or datetime.now(UTC).date()

    # Read models ----------------------------------------------------------------------

    def behind(self) -> int:
        status = self.models.projector.status()
        return max(row["behind"] for row in status) if status else 0

    def catch_up(self, progress: Any = None) -> int:
        with self._catching_up:
            return self.models.refresh(progress)

    def head(self) -> int:
        return self.models.projector.head()

    def dashboard(self, within: int = 7) -> Dashboard:
        m = self.models
        month = self.day().strftime("%Y-%m")
        monthly = m.monthly()
        released = [(row["currency"], row["released"]) for row in monthly
                    if row["month"] == month and row["released"] not in ("0", "0.00")]
        alerts, kinds = self._alerts(within)
        return Dashboard(
            counts=m.status_counts(), totals=m.totals(), monthly=monthly, alerts=alerts,
            released_this_month=released,
            open_disputes=int(m.query("SELECT COUNT(*) AS n FROM {disputes} "
                                      "WHERE status IN ('open', 'escalated')")[0]["n"]),
            grants_expiring=kinds["grant_expiring"],
            milestones_overdue=kinds["milestone_overdue"],
            head=m.projector.head(),
        )

    #: Alerts the dashboard lists (the most urgent); the figures count all of them.
    DASHBOARD_ALERTS = 200

    def _alerts(self, within: int) -> tuple[list[dict[str, Any]], Any]:
        from projections.alerts import first_alerts

        return first_alerts(self.models, within=within, today=self.day(),
                            limit=self.DASHBOARD_ALERTS)

    def engagements(self, search: str | None = None, status: str | None = None,
                    order: str = "updated", limit: int = 100, offset: int = 0
                    ) -> tuple[list[dict[str, Any]], int]:
        rows = self.models.engagements(status, search=search or None, order=order,
                                       limit=limit, offset=offset)
        return rows, self.models.count_engagements(status, search or None)

    def contractor(self, name: str) -> dict[str, Any]:
        from projections.contractor_record import contractor_record

        return contractor_record(self.models, name, today=self.day())

    def contractor_suggestions(self, name: str) -> list[str]:
        """The names on record closest to `name` (those the "did you mean" message offers)."""
        from projections.contractor_record import close_names, contractor_names

        return close_names(name.strip(), contractor_names(self.models))

    # The audit trail ------------------------------------------------------------------

    def export(self, fmt: str, output: str, *, engagement: str | None = None,
               since: str | None = None, until: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> Any:
        """Writes the audit trail (or a range of it) to `output`; returns the export's
        `ExportResult` (entries, digest, path). Raises the ledger's own errors."""
        from projections.audit_export import export_audit

        self.catch_up()  # everything recorded so far is in the trail
        return export_audit(self.models, fmt, output, engagement=engagement, since=since,
                            until=until, progress=progress)

    def verify(self, digest_text: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> Any:
        """Recomputes both hash chains from the stored bytes; returns a `VerifyReport`."""
        from projections.audit import verify

        self.catch_up()  # an event not yet in the trail would read as a missing entry
        return verify(self.app, self.models.store, digest_text or None, progress)

    # One engagement -------------------------------------------------------------------

    def engagement(self, engagement_id: str, version: int | None = None) -> dict[str, Any]:
        return engagement_state(self.app.engagement(engagement_id, self.actor, version=version),
                                self.actor)

    def history(self, engagement_id: str) -> list[dict[str, Any]]:
        return [history_row(e, self.actor) for e in self.app.history(engagement_id, self.actor)]

    def milestone_story(self, engagement_id: str, milestone_id: str) -> list[dict[str, Any]]:
        """Every event about one milestone, in order: its definition, funding, submissions,
        change requests, extensions, amendments, the grants serving it, its disputes."""
        grants: set[str] = set()
        disputes: set[str] = set()
        story = []
        for event in self.app.history(engagement_id, self.actor):
            fields = vars(event)
            about = fields.get("milestone_id") == milestone_id
            if about and "grant_id" in fields:
                grants.add(fields["grant_id"])
            if about and "dispute_id" in fields:
                disputes.add(fields["dispute_id"])
            if about or fields.get("grant_id") in grants or fields.get("dispute_id") in disputes:
                story.append(history_row(event, self.actor))
        return story

    def replay(self, engagement_id: str, version: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The state after event `version`, and what that event changed."""
        after = self.engagement(engagement_id, version)
        before = self.engagement(engagement_id, version - 1) if version > 1 else {}
        return after, changes(before, after) if before else []

    def version_at(self, engagement_id: str, moment: str) -> int:
        from ledger.application import parse_engagement_id

        return self.app.version_at(parse_engagement_id(engagement_id), moment)

    # Writing --------------------------------------------------------------------------

    def execute(self, command_class: type, fields: dict[str, Any]) -> str | None:
        """Builds and runs one command; raises the ledger's own errors (shown inline)."""
        from ledger.commands import OpenEngagement

        command = command_class.build(**fields)
        if isinstance(command, OpenEngagement):
            return str(self.app.open_engagement(command, self.actor))
        return self.app.execute(command, self.actor)
