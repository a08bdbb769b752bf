"""Access to company resources, in proportion to the task and in stages that follow the milestones.

Rule 3: a grant needs an NDA in force and a funded milestone, and expires no later than that
milestone's due date plus the grace period. Rule 4: grants end with their milestone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from ledger.agreements import AgreementKind
from ledger.errors import RuleViolation
from ledger.events import EngagementEvent, Stamp
from ledger.validation import end_of_day

RECERTIFY_EVERY_DAYS = 30
#: Milestone statuses a new grant may serve: funded and not closed, and not frozen by a dispute.
GRANTABLE_STATUSES = ("funded", "submitted", "changes_requested", "accepted")


class Level(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@dataclass
class Grant:
    id: str
    resource: str
    level: str
    milestone: str
    until: date
    status: str  # active | revoked | expired
    reason: str | None
    granted_at: datetime
    recertified_at: datetime
    recertified_stage: str
    ended_at: datetime | None = None
    end_reason: str | None = None


class AccessGranted(EngagementEvent):
    TOPIC = "engagement-ledger:AccessGranted"

    grant_id: str
    resource: str
    level: str
    milestone_id: str
    until: date
    reason: str | None

    def change(self, engagement: Any) -> None:
        stage = engagement.milestones[self.milestone_id].status
        engagement.grants[self.grant_id] = Grant(
            id=self.grant_id, resource=self.resource, level=self.level,
            milestone=self.milestone_id, until=self.until, status="active", reason=self.reason,
            granted_at=self.timestamp, recertified_at=self.timestamp, recertified_stage=stage,
        )

    def created_id(self) -> str:
        return self.grant_id

    def summary(self) -> str:
        return (f"{self.level} access to {self.resource} granted as {self.grant_id} for "
                f"{self.milestone_id}, until {self.until}")


class AccessRecertified(EngagementEvent):
    TOPIC = "engagement-ledger:AccessRecertified"

    grant_id: str
    reason: str | None

    def change(self, engagement: Any) -> None:
        grant = engagement.grants[self.grant_id]
        grant.recertified_at = self.timestamp
        grant.recertified_stage = engagement.milestones[grant.milestone].status

    def summary(self) -> str:
        return f"access {self.grant_id} recertified"


class AccessRevoked(EngagementEvent):
    TOPIC = "engagement-ledger:AccessRevoked"

    grant_id: str
    reason: str

    def change(self, engagement: Any) -> None:
        _end(engagement.grants[self.grant_id], "revoked", self.timestamp, self.reason)

    def summary(self) -> str:
        return f"access {self.grant_id} revoked: {self.reason}"


class AccessExpired(EngagementEvent):
    TOPIC = "engagement-ledger:AccessExpired"

    grant_id: str

    def change(self, engagement: Any) -> None:
        grant = engagement.grants[self.grant_id]
        _end(grant, "expired", self.timestamp, f"expired at the end of {grant.until}")

    def created_id(self) -> str:  # answered by the sweep that recorded it
        return self.grant_id

    def summary(self) -> str:
        return f"access {self.grant_id} expired"


def _end(grant: Grant, status: str, at: datetime, reason: str) -> None:
    grant.status = status
    grant.ended_at = at
    grant.end_reason = reason


class AccessMixin:
    """The engagement's access commands."""

    grants: dict[str, Grant]
    milestones: dict[str, Any]
    grace_days: int

    def grant_access(self, by: Stamp, resource: str, level: Level, milestone_id: str,
                     until: date | None, reason: str | None) -> str:
        self.check_not_closed()  # type: ignore[attr-defined]
        milestone = self.milestones[milestone_id]
        check_nda_in_force(self)
        check_milestone_grantable(milestone)
        latest = self.latest_grant_expiry(milestone_id)
        until = until or latest
        if until > latest:
            raise RuleViolation(f"access for {milestone_id} may last until {latest} at the latest "
                                f"(due {milestone.due} + {self.grace_days} days' grace)")
        if level is Level.ADMIN and not reason:
            raise RuleViolation("admin access needs a reason (--reason)")
        grant_id = f"G{len(self.grants) + 1}"
        self.record(by, AccessGranted, grant_id=grant_id, resource=resource, level=level.value,  # type: ignore[attr-defined]
                    milestone_id=milestone_id, until=until, reason=reason)
        return grant_id

    def recertify_access(self, by: Stamp, grant_id: str, reason: str | None) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        check_grant_active(self.grants[grant_id])
        self.record(by, AccessRecertified, grant_id=grant_id, reason=reason)  # type: ignore[attr-defined]

    def revoke_access(self, by: Stamp, grant_id: str, reason: str) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        check_grant_active(self.grants[grant_id])
        self.record(by, AccessRevoked, grant_id=grant_id, reason=reason)  # type: ignore[attr-defined]

    def expire_access(self, by: Stamp, now: datetime) -> list[str]:
        """Records the expiry of every active grant whose last day has passed (the sweep)."""
        expired = [g.id for g in self.grants.values()
                   if g.status == "active" and end_of_day(g.until) < now]
        for grant_id in expired:
            self.record(by, AccessExpired, grant_id=grant_id)  # type: ignore[attr-defined]
        return expired

    def revoke_grants_serving(self, by: Stamp, milestone_id: str | None, reason: str) -> None:
        """Rule 4: grants end with their milestone (or, with None, with the engagement)."""
        for grant in list(self.grants.values()):
            if grant.status == "active" and milestone_id in (None, grant.milestone):
                self.record(by, AccessRevoked, grant_id=grant.id, reason=reason)  # type: ignore[attr-defined]

    def latest_grant_expiry(self, milestone_id: str) -> date:
        return self.milestones[milestone_id].due + timedelta(days=self.grace_days)


def check_nda_in_force(engagement: Any) -> None:
    if engagement.agreement_in_force(AgreementKind.NDA) is None:
        raise RuleViolation("access can be granted only when an NDA signed by both parties is "
                            "in force")


def check_milestone_grantable(milestone: Any) -> None:
    if milestone.status not in GRANTABLE_STATUSES:
        raise RuleViolation(f"access serves a funded milestone that is not closed or disputed; "
                            f"{milestone.id} is {milestone.status}")


def check_grant_active(grant: Grant) -> None:
    if grant.status != "active":
        raise RuleViolation(f"access {grant.id} is already {grant.status}")
