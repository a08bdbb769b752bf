"""The Engagement aggregate: one engagement's whole story, and its lifecycle.

Each concept's commands, events and guards live in their own module (interviews, agreements,
milestones); this module joins them and holds the engagement-wide facts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from ledger.access import AccessMixin
from ledger.agreements import AgreementKind, AgreementsMixin
from ledger.command_memory import CommandMemory
from ledger.disclosures import DisclosuresMixin
from ledger.disputes import DisputesMixin
from ledger.errors import InvalidInput, RuleViolation
from ledger.events import EngagementEvent, Stamp
from ledger.interviews import InterviewsMixin
from ledger.milestones import CLOSED_STATUSES, MilestonesMixin, check_within_budget
from ledger.personal_data import personal

#: Engagement ids are derived from the opening command's id, so a retried open makes no second one.
ENGAGEMENT_NAMESPACE = uuid.UUID("5b0e7c1e-7a43-4f4e-9d43-6f1c1c0de001")

LIFECYCLE = ("vetting", "contracting", "active", "closed")


class Outcome(StrEnum):
    COMPLETED = "completed"
    TERMINATED = "terminated"
    NOT_HIRED = "not_hired"


@dataclass
class Entry:
    """A dated line of the engagement's record: a note, a correction, an acknowledgement."""

    at: datetime
    by: str
    text: str
    ref: str | None = None


class EngagementOpened(EngagementEvent, Aggregate.Created):
    TOPIC = "engagement-ledger:EngagementOpened"

    title: str
    client: str
    contractor: str
    curator: str
    budget: Decimal
    currency: str
    inspection_days: int
    grace_days: int

    PERSONAL = ("contractor",)

    def change(self, engagement: Any) -> None:
        engagement.start(self)

    def summary(self) -> str:
        return (f"engagement opened: {self.title} ({self.client} with {self.contractor}), "
                f"budget {self.budget} {self.currency}, curator {self.curator}")


class CuratorReassigned(EngagementEvent):
    TOPIC = "engagement-ledger:CuratorReassigned"

    curator: str
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.curator = self.curator

    def summary(self) -> str:
        return f"curator reassigned to {self.curator}"


class BudgetChanged(EngagementEvent):
    TOPIC = "engagement-ledger:BudgetChanged"

    budget: Decimal
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.budget = self.budget

    def summary(self) -> str:
        return f"budget changed to {self.budget}"


class PlaybookAcknowledged(EngagementEvent):
    TOPIC = "engagement-ledger:PlaybookAcknowledged"

    policy_version: str

    def change(self, engagement: Any) -> None:
        engagement.playbook.append(Entry(self.timestamp, self.actor, self.policy_version))

    def summary(self) -> str:
        return f"playbook {self.policy_version} acknowledged by {self.actor}"


class NoteLogged(EngagementEvent):
    TOPIC = "engagement-ledger:NoteLogged"

    text: str

    PERSONAL = ("text",)

    def change(self, engagement: Any) -> None:
        engagement.notes.append(Entry(self.timestamp, self.actor, self.text))

    def summary(self) -> str:
        return f"note by {self.actor}"


class CorrectionRecorded(EngagementEvent):
    TOPIC = "engagement-ledger:CorrectionRecorded"

    corrected_version: int
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.corrections.append(
            Entry(self.timestamp, self.actor, self.reason, ref=str(self.corrected_version))
        )

    def summary(self) -> str:
        return f"correction of version {self.corrected_version}"


class ContractorKeyDestroyed(EngagementEvent):
    """The contractor's key was deleted: their personal text here can never be read again."""

    TOPIC = "engagement-ledger:ContractorKeyDestroyed"

    subject: str
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.contractor_forgotten = True

    def summary(self) -> str:
        return f"contractor's personal text forgotten (key {self.subject[:8]} deleted): {self.reason}"


class EngagementClosed(EngagementEvent):
    TOPIC = "engagement-ledger:EngagementClosed"

    outcome: str
    reason: str

    def change(self, engagement: Any) -> None:
        engagement.status = "closed"
        engagement.outcome = self.outcome
        engagement.closed_at = self.timestamp

    def summary(self) -> str:
        return f"engagement closed: {self.outcome}"


class Engagement(InterviewsMixin, AgreementsMixin, DisclosuresMixin, MilestonesMixin, AccessMixin,
                 DisputesMixin, Aggregate):
    """One engagement with a freelancer or contractor firm."""

    TOPIC = "engagement-ledger:Engagement"
    Event = EngagementEvent
    Created = EngagementOpened
    #: Snapshots taken before encryption existed have no `subject`; text there is plain.
    subject: str | None = None
    contractor_forgotten = False

    @staticmethod
    def create_id(command_id: str) -> uuid.UUID:
        return uuid.uuid5(ENGAGEMENT_NAMESPACE, command_id)

    @classmethod
    def open(cls, by: Stamp, title: str, client: str, contractor: str, curator: str,
             budget: Decimal, currency: str, inspection_days: int, grace_days: int,
             subject: str | None = None) -> Engagement:
        """`subject` is the contractor's key on an encrypted ledger (ledger.keyring)."""
        return cls._create(
            EngagementOpened, id=cls.create_id(by.command_id), **by.fields(), title=title,
            client=client, contractor=personal(contractor, subject), curator=curator, budget=budget,
            currency=currency, inspection_days=inspection_days, grace_days=grace_days,
        )

    def start(self, opened: EngagementOpened) -> None:
        self.title = opened.title
        self.client = opened.client
        self.contractor = opened.contractor
        #: The contractor's key id on an encrypted ledger; None where text is kept plain.
        self.subject: str | None = getattr(opened.contractor, "subject", None)
        self.curator = opened.curator
        self.budget = opened.budget
        self.currency = opened.currency
        self.inspection_days = opened.inspection_days
        self.grace_days = opened.grace_days
        self.status = "vetting"
        self.outcome: str | None = None
        self.closed_at: datetime | None = None
        self.funded = Decimal(0)
        self.released = Decimal(0)
        self.refunded = Decimal(0)
        self.interviews = {}
        self.agreements = {}
        self.milestones = {}
        self.grants = {}
        self.disputes = {}
        self.disclosures = []
        self.playbook: list[Entry] = []
        self.notes: list[Entry] = []
        self.corrections: list[Entry] = []
        self.commands = CommandMemory()

    # Recording ------------------------------------------------------------------

    def record(self, by: Stamp, event_class: type[EngagementEvent], **fields: Any) -> None:
        if self.subject is not None:
            if self.contractor_forgotten and any(fields[name] for name in event_class.PERSONAL):
                # (Checked here too, not only by the missing key: another process may still
                # hold the key in memory.)
                raise RuleViolation("this engagement's contractor was forgotten: no personal "
                                    "text about them can be recorded any more")
            for name in event_class.PERSONAL:
                fields[name] = personal(fields[name], self.subject)
        self.trigger_event(event_class, **by.fields(), **fields)

    def remember_command(self, command_id: str, digest: str, created: str | None) -> None:
        """A command's events record its answer (the ids they created, in order), so that a
        retry is answered the same."""
        commands = self.commands
        if type(commands) is dict:  # loaded from a snapshot stored before the packed memory
            commands = self.commands = CommandMemory(commands)
        commands.remember(command_id, digest, created)

    def advance_status(self) -> None:
        """The lifecycle only moves forward: vetting -> contracting -> active."""
        if self.status == "vetting" and any(
            interview.decision == "advance" for interview in self.interviews.values()
        ):
            self.status = "contracting"
        if self.status == "contracting" and self.agreement_in_force(AgreementKind.SOW):
            self.status = "active"

    # Engagement-wide commands ---------------------------------------------------------

    def reassign_curator(self, by: Stamp, curator: str, reason: str) -> None:
        self.check_not_closed()
        if curator == self.curator:
            raise RuleViolation(f"{curator} is already the curator")
        self.record(by, CuratorReassigned, curator=curator, reason=reason)

    def change_budget(self, by: Stamp, budget: Decimal, reason: str) -> None:
        self.check_not_closed()
        check_within_budget(self, budget=budget)
        self.record(by, BudgetChanged, budget=budget, reason=reason)

    def acknowledge_playbook(self, by: Stamp, policy_version: str) -> None:
        self.check_not_closed()
        self.record(by, PlaybookAcknowledged, policy_version=policy_version)

    def log_note(self, by: Stamp, text: str) -> None:
        self.record(by, NoteLogged, text=text)

    def record_correction(self, by: Stamp, version: int, reason: str) -> None:
        if not 1 <= version <= self.version:
            raise InvalidInput(f"version {version} does not exist: this engagement has "
                               f"versions 1 to {self.version}")
        self.record(by, CorrectionRecorded, corrected_version=version, reason=reason)

    def forget_contractor(self, by: Stamp, reason: str) -> None:
        """Records that the contractor's key is being deleted (allowed on a closed engagement)."""
        if self.subject is None:
            raise RuleViolation("this engagement's personal text is not sealed with a "
                                "contractor's key (it was recorded without LEDGER_CIPHER_KEY)")
        self.record(by, ContractorKeyDestroyed, subject=self.subject, reason=reason)

    def close(self, by: Stamp, outcome: Outcome, reason: str) -> None:
        self.check_not_closed()
        check_all_milestones_closed(self)
        self.record_closing(by, outcome.value, reason)

    def record_closing(self, by: Stamp, outcome: str, reason: str) -> None:
        self.record(by, EngagementClosed, outcome=outcome, reason=reason)
        self.revoke_grants_serving(by, None, "engagement closed")

    def sweep(self, by: Stamp, now: datetime) -> list[str]:
        """Records what time alone has decided: deemed acceptances and expired access."""
        if self.status == "closed":
            return []
        return self.deem_accepted(by, now) + self.expire_access(by, now)

    # Guards and queries ---------------------------------------------------------

    def check_not_closed(self) -> None:
        if self.status == "closed":
            raise RuleViolation(f"the engagement is closed ({self.outcome}); only notes and "
                                "corrections can still be recorded")

    @property
    def escrow(self) -> Decimal:
        return self.funded - self.released - self.refunded


def check_all_milestones_closed(engagement: Engagement) -> None:
    still_open = [m.id for m in engagement.milestones.values() if m.status not in CLOSED_STATUSES]
    if still_open:
        raise RuleViolation(
            f"cannot close: milestone(s) {', '.join(still_open)} not yet released, settled or "
            "cancelled"
        )
