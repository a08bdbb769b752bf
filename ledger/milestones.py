"""Milestones: the money path from definition through escrow to release, refund or settlement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.agreements import AgreementKind
from ledger.errors import RuleViolation
from ledger.events import EngagementEvent, Stamp

OPEN_STATUSES = ("defined", "funded", "submitted", "changes_requested", "accepted", "disputed")
CLOSED_STATUSES = ("released", "settled", "cancelled")
#: Statuses in which the milestone's money sits in escrow.
ESCROW_STATUSES = ("funded", "submitted", "changes_requested", "accepted", "disputed")

#: DESIGN section 2's transition table: the statuses each command may start from.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "fund": ("defined",),
    "extend": ("funded", "changes_requested"),
    "amend": ("defined", "funded", "submitted", "changes_requested"),
    "submit": ("funded", "changes_requested"),
    "request changes on": ("submitted",),
    "accept": ("submitted",),
    "release": ("accepted",),
    "cancel": ("defined", "funded", "changes_requested"),
}


@dataclass
class Milestone:
    id: str
    title: str
    criteria: str | None
    amount: Decimal
    due: date
    status: str
    defined_at: datetime
    funded_at: datetime | None = None
    submitted_at: datetime | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    submissions: int = 0
    changes_requested: int = 0
    original_due: date | None = None
    extensions: int = 0
    extension_request: dict[str, Any] | None = None  # {"due", "reason", "at"} while pending
    amendment: dict[str, Any] | None = None  # {"number", "changes", "reason", "signatures"}
    amendments: int = 0
    deemed: bool = False


class MilestoneDefined(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneDefined"

    milestone_id: str
    title: str
    criteria: str | None
    amount: Decimal
    due: date

    def change(self, engagement: Any) -> None:
        engagement.milestones[self.milestone_id] = Milestone(
            id=self.milestone_id, title=self.title, criteria=self.criteria, amount=self.amount,
            due=self.due, status="defined", defined_at=self.timestamp,
        )

    def created_id(self) -> str:
        return self.milestone_id

    def summary(self) -> str:
        return f"milestone {self.milestone_id} defined: {self.title}, {self.amount}, due {self.due}"


class MilestoneFunded(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneFunded"

    milestone_id: str
    amount: Decimal

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "funded"
        milestone.funded_at = self.timestamp
        engagement.funded += self.amount

    def summary(self) -> str:
        return f"milestone {self.milestone_id} funded: {self.amount} into escrow"


class WorkSubmitted(EngagementEvent):
    TOPIC = "engagement-ledger:WorkSubmitted"

    milestone_id: str
    note: str

    PERSONAL = ("note",)

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "submitted"
        milestone.submitted_at = self.timestamp
        milestone.submissions += 1

    def summary(self) -> str:
        return f"work submitted for {self.milestone_id}"


class ChangesRequested(EngagementEvent):
    TOPIC = "engagement-ledger:ChangesRequested"

    milestone_id: str
    reason: str

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "changes_requested"
        milestone.changes_requested += 1

    def summary(self) -> str:
        return f"changes requested on {self.milestone_id}: {_first_line(self.reason)}"


class MilestoneAccepted(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneAccepted"

    milestone_id: str

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "accepted"
        milestone.accepted_at = self.timestamp

    def summary(self) -> str:
        return f"milestone {self.milestone_id} accepted"


class PaymentReleased(EngagementEvent):
    TOPIC = "engagement-ledger:PaymentReleased"

    milestone_id: str
    amount: Decimal

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "released"
        milestone.closed_at = self.timestamp
        engagement.released += self.amount

    def summary(self) -> str:
        return f"payment of {self.amount} released for {self.milestone_id}"


class MilestoneCancelled(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneCancelled"

    milestone_id: str
    reason: str
    refunded: Decimal

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "cancelled"
        milestone.closed_at = self.timestamp
        engagement.refunded += self.refunded

    def summary(self) -> str:
        refund = f", {self.refunded} refunded" if self.refunded else ""
        return f"milestone {self.milestone_id} cancelled{refund}: {_first_line(self.reason)}"


class MilestoneDeemedAccepted(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneDeemedAccepted"

    milestone_id: str
    inspection_ended: datetime

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        milestone.status = "accepted"
        milestone.accepted_at = self.timestamp
        milestone.deemed = True

    def created_id(self) -> str:  # answered by the sweep that recorded it
        return self.milestone_id

    def summary(self) -> str:
        return (f"milestone {self.milestone_id} deemed accepted: the inspection period ended "
                f"{self.inspection_ended:%Y-%m-%d %H:%M} UTC unanswered")


class ExtensionRequested(EngagementEvent):
    TOPIC = "engagement-ledger:ExtensionRequested"

    milestone_id: str
    due: date
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.milestones[self.milestone_id].extension_request = {
            "due": self.due, "reason": self.reason, "at": self.timestamp,
        }

    def summary(self) -> str:
        return f"extension of {self.milestone_id} to {self.due} requested"


class ExtensionGranted(EngagementEvent):
    TOPIC = "engagement-ledger:ExtensionGranted"

    milestone_id: str
    due: date
    reason: str | None

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        if milestone.original_due is None:
            milestone.original_due = milestone.due
        milestone.due = self.due
        milestone.extensions += 1
        milestone.extension_request = None

    def summary(self) -> str:
        return f"extension of {self.milestone_id} to {self.due} granted"


class ExtensionDenied(EngagementEvent):
    TOPIC = "engagement-ledger:ExtensionDenied"

    milestone_id: str
    reason: str | None

    def change(self, engagement: Any) -> None:
        engagement.milestones[self.milestone_id].extension_request = None

    def summary(self) -> str:
        return f"extension of {self.milestone_id} denied"


class MilestoneAmendmentProposed(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneAmendmentProposed"

    milestone_id: str
    number: int
    changes: dict[str, Any]
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.milestones[self.milestone_id].amendment = {
            "number": self.number, "changes": dict(self.changes), "reason": self.reason,
            "signatures": {},
        }

    def created_id(self) -> str:
        return f"amendment {self.number}"

    def summary(self) -> str:
        return (f"amendment {self.number} of {self.milestone_id} proposed: "
                f"{', '.join(sorted(self.changes))}")


class MilestoneAmendmentSigned(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneAmendmentSigned"

    milestone_id: str
    number: int
    party: str

    def change(self, engagement: Any) -> None:
        amendment = engagement.milestones[self.milestone_id].amendment
        amendment["signatures"][self.party] = {"signer": self.actor, "at": self.timestamp}

    def summary(self) -> str:
        return f"amendment {self.number} of {self.milestone_id} signed by the {self.party}"


class MilestoneAmended(EngagementEvent):
    TOPIC = "engagement-ledger:MilestoneAmended"

    milestone_id: str
    number: int
    changes: dict[str, Any]

    def change(self, engagement: Any) -> None:
        milestone = engagement.milestones[self.milestone_id]
        for name, value in self.changes.items():
            if name == "due" and milestone.original_due is None:
                milestone.original_due = milestone.due
            setattr(milestone, name, value)
        milestone.amendment = None
        milestone.amendments += 1

    def summary(self) -> str:
        return f"amendment {self.number} of {self.milestone_id} in effect"


class MilestonesMixin:
    """The engagement's milestone commands."""

    milestones: dict[str, Milestone]
    budget: Decimal
    status: str

    def define_milestone(self, by: Stamp, title: str, criteria: str | None, amount: Decimal,
                         due: date) -> str:
        self.check_not_closed()  # type: ignore[attr-defined]
        check_milestones_allowed(self)
        check_within_budget(self, extra=amount)
        milestone_id = f"M{len(self.milestones) + 1}"
        self.record(by, MilestoneDefined, milestone_id=milestone_id, title=title,  # type: ignore[attr-defined]
                    criteria=criteria, amount=amount, due=due)
        return milestone_id

    def fund_milestone(self, by: Stamp, milestone_id: str) -> None:
        milestone = self.milestone_for(milestone_id, "fund")
        check_sow_in_force(self)
        self.record(by, MilestoneFunded, milestone_id=milestone_id, amount=milestone.amount)  # type: ignore[attr-defined]

    def submit_work(self, by: Stamp, milestone_id: str, note: str) -> None:
        self.milestone_for(milestone_id, "submit")
        self.record(by, WorkSubmitted, milestone_id=milestone_id, note=note)  # type: ignore[attr-defined]

    def request_changes(self, by: Stamp, milestone_id: str, reason: str) -> None:
        self.milestone_for(milestone_id, "request changes on")
        self.record(by, ChangesRequested, milestone_id=milestone_id, reason=reason)  # type: ignore[attr-defined]

    def accept_milestone(self, by: Stamp, milestone_id: str) -> None:
        self.milestone_for(milestone_id, "accept")
        self.record(by, MilestoneAccepted, milestone_id=milestone_id)  # type: ignore[attr-defined]

    def release_payment(self, by: Stamp, milestone_id: str) -> None:
        milestone = self.milestone_for(milestone_id, "release")
        self.record(by, PaymentReleased, milestone_id=milestone_id, amount=milestone.amount)  # type: ignore[attr-defined]
        self.revoke_grants_serving(by, milestone_id, f"milestone {milestone_id} released")  # type: ignore[attr-defined]

    def cancel_milestone(self, by: Stamp, milestone_id: str, reason: str) -> None:
        milestone = self.milestone_for(milestone_id, "cancel")
        refund = milestone.amount if milestone.status in ESCROW_STATUSES else Decimal(0)
        self.record(by, MilestoneCancelled, milestone_id=milestone_id, reason=reason,  # type: ignore[attr-defined]
                    refunded=refund)
        self.revoke_grants_serving(by, milestone_id, f"milestone {milestone_id} cancelled")  # type: ignore[attr-defined]

    def deem_accepted(self, by: Stamp, now: datetime) -> list[str]:
        """Records deemed acceptance of submissions unanswered past the inspection period."""
        deemed = []
        for milestone in self.milestones.values():
            ends = self.inspection_ends(milestone)
            if ends is not None and ends < now:
                self.record(by, MilestoneDeemedAccepted, milestone_id=milestone.id,  # type: ignore[attr-defined]
                            inspection_ended=ends)
                deemed.append(milestone.id)
        return deemed

    def inspection_ends(self, milestone: Milestone) -> datetime | None:
        if milestone.status != "submitted" or milestone.submitted_at is None:
            return None
        return milestone.submitted_at + timedelta(days=self.inspection_days)  # type: ignore[attr-defined]

    def request_extension(self, by: Stamp, milestone_id: str, due: date, reason: str) -> None:
        milestone = self.milestone_for(milestone_id, "extend")
        if due <= milestone.due:
            raise RuleViolation(f"an extension must move {milestone_id}'s due date past {milestone.due}")
        if milestone.extension_request is not None:
            raise RuleViolation(f"an extension of {milestone_id} to "
                                f"{milestone.extension_request['due']} is already waiting for a decision")
        self.record(by, ExtensionRequested, milestone_id=milestone_id, due=due, reason=reason)  # type: ignore[attr-defined]

    def decide_extension(self, by: Stamp, milestone_id: str, grant: bool, reason: str | None) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        milestone = self.milestones[milestone_id]
        if milestone.extension_request is None:
            raise RuleViolation(f"no extension of {milestone_id} is waiting for a decision")
        if milestone.status in CLOSED_STATUSES or milestone.status == "disputed":
            raise RuleViolation(f"{milestone_id} is {milestone.status}; its extension can no "
                                "longer be decided")
        if grant:
            if milestone.extension_request["due"] <= milestone.due:
                raise RuleViolation(f"the requested due date {milestone.extension_request['due']} "
                                    f"is not later than {milestone_id}'s due date {milestone.due}; "
                                    "deny the request instead")
            self.record(by, ExtensionGranted, milestone_id=milestone_id,  # type: ignore[attr-defined]
                        due=milestone.extension_request["due"], reason=reason)
        else:
            self.record(by, ExtensionDenied, milestone_id=milestone_id, reason=reason)  # type: ignore[attr-defined]

    def propose_amendment(self, by: Stamp, milestone_id: str, changes: dict[str, Any],
                          reason: str) -> int:
        milestone = self.milestone_for(milestone_id, "amend")
        check_amendment_limits(self, milestone, changes)
        number = milestone.amendments + 1
        self.record(by, MilestoneAmendmentProposed, milestone_id=milestone_id, number=number,  # type: ignore[attr-defined]
                    changes=changes, reason=reason)
        return number

    def sign_amendment(self, by: Stamp, milestone_id: str, party: str) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        milestone = self.milestones[milestone_id]
        amendment = milestone.amendment
        if amendment is None:
            raise RuleViolation(f"no amendment of {milestone_id} is waiting for signatures")
        if party in amendment["signatures"]:
            raise RuleViolation(f"the {party} already signed amendment {amendment['number']} "
                                f"of {milestone_id}")
        check_transition(milestone, "amend")  # a frozen or finished milestone takes no signature
        completes = len(amendment["signatures"]) == 1
        if completes:  # it takes effect now: its limits are checked again at this moment
            check_amendment_limits(self, milestone, amendment["changes"])
        self.record(by, MilestoneAmendmentSigned, milestone_id=milestone_id,  # type: ignore[attr-defined]
                    number=amendment["number"], party=party)
        if completes:
            self.record(by, MilestoneAmended, milestone_id=milestone_id,  # type: ignore[attr-defined]
                        number=amendment["number"], changes=amendment["changes"])

    def milestone_for(self, milestone_id: str, command: str) -> Milestone:
        """The milestone, once the engagement is open and the transition table allows `command`."""
        self.check_not_closed()  # type: ignore[attr-defined]
        milestone = self.milestones[milestone_id]
        check_transition(milestone, command)
        return milestone

    def committed_amount(self) -> Decimal:
        """What milestones not cancelled already total."""
        total = Decimal(0)
        for milestone in self.milestones.values():
            if milestone.status != "cancelled":
                total += milestone.amount
        return total


def check_transition(milestone: Milestone, command: str) -> None:
    if milestone.status == "disputed":
        raise RuleViolation(f"{milestone.id} is frozen by an open dispute; "
                            f"it cannot {command} until the dispute is resolved")
    if milestone.status not in TRANSITIONS[command]:
        allowed = " or ".join(TRANSITIONS[command])
        raise RuleViolation(f"cannot {command} {milestone.id}: it is {milestone.status}, "
                            f"and only a {allowed} milestone can be")


def check_amendment_limits(engagement: Any, milestone: Milestone, changes: dict[str, Any]) -> None:
    """The amount may change only while defined; title, criteria and due until accepted."""
    if not changes:
        raise RuleViolation("an amendment must change the title, amount, due date or criteria")
    if "amount" in changes:
        if milestone.status != "defined":
            raise RuleViolation(f"the amount of {milestone.id} can change only while it is "
                                f"defined; it is {milestone.status}")
        check_within_budget(engagement, extra=changes["amount"] - milestone.amount)


def check_milestones_allowed(engagement: Any) -> None:
    if engagement.status not in ("contracting", "active"):
        raise RuleViolation("milestones are defined only once the engagement is contracting or "
                            f"active; this one is {engagement.status}")


def check_within_budget(engagement: Any, extra: Decimal = Decimal(0), budget: Decimal | None = None) -> None:
    limit = engagement.budget if budget is None else budget
    committed = engagement.committed_amount() + extra
    if committed > limit:
        raise RuleViolation(f"milestones would total {committed} {engagement.currency}, "
                            f"more than the budget of {limit} {engagement.currency}")


def check_sow_in_force(engagement: Any) -> None:
    if engagement.agreement_in_force(AgreementKind.SOW) is None:
        raise RuleViolation("a milestone can be funded only when a SOW signed by both parties "
                            "is in force")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 80 else line[:77] + "..."
