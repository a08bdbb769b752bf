"""Commands: what a person asks the ledger to do, as imperative pydantic models checked at the boundary.

Each command names the action it needs a role for (`action`), the ids it refers to, and the
one aggregate method it calls (`apply_to`). Checks that need the engagement (does M3 exist,
has the amount too many decimals for this currency) run in `check_against`, still as input.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError,
                      model_validator)

from ledger.agreements import AgreementKind
from ledger.errors import InvalidInput
from ledger.interviews import Decision
from ledger.money import PLAIN_DECIMAL, check_currency, parse_amount
from ledger.roles import Action, Party
from ledger.validation import check_jurisdiction, check_name, check_sha256, check_text, parse_date

#: Stands for the field's name in messages; `describe` puts the name in front.
FIELD = "\x00"

if TYPE_CHECKING:
    from ledger.engagement import Engagement
    from ledger.events import Stamp

Name = Annotated[str, AfterValidator(lambda v: check_name(v, FIELD))]
Text = Annotated[str, AfterValidator(lambda v: check_text(v, FIELD))]
Reason = Annotated[str, AfterValidator(lambda v: check_text(v, FIELD))]
CommandId = Annotated[str, AfterValidator(lambda v: check_name(v, FIELD))]
Sha256 = Annotated[str, AfterValidator(check_sha256)]
Due = Annotated[date, BeforeValidator(lambda v: parse_date(v, FIELD))]
MilestoneId = Annotated[str, Field(pattern=r"^M[1-9][0-9]{0,5}$")]
AgreementId = Annotated[str, Field(pattern=r"^A[1-9][0-9]{0,5}$")]
GrantId = Annotated[str, Field(pattern=r"^G[1-9][0-9]{0,5}$")]
DisputeId = Annotated[str, Field(pattern=r"^D[1-9][0-9]{0,5}$")]
EvidenceId = Annotated[str, Field(pattern=r"^E[1-9][0-9]{0,5}$")]
Amount = Annotated[Decimal, BeforeValidator(lambda v: _decimal_text(v)),
                   AfterValidator(lambda v: _positive(v))]
#: A part of an escrow: zero or more.
Share = Annotated[Decimal, BeforeValidator(lambda v: _decimal_text(v))]


def _decimal_text(value: object) -> object:
    """Refuses floats and the forms Python's Decimal allows but people do not write ("1_000")."""
    if isinstance(value, float):
        raise InvalidInput(f"{FIELD} must be given as a decimal string, not a float")
    if isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value.strip()):
        raise InvalidInput(f"{FIELD} {value!r} is not a plain decimal number such as 1500.00")
    return value


def _positive(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise InvalidInput(f"{FIELD} must be a positive decimal, got {value}")
    return value


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    action: ClassVar[Action]
    #: Fields holding money, checked against the engagement's currency.
    amount_fields: ClassVar[tuple[str, ...]] = ()

    #: The idempotency key: a name (1-200 characters, no control characters), as any other.
    command_id: CommandId | None = None

    @classmethod
    def build(cls, **fields: Any) -> Command:
        """Builds the command, turning any validation error into one line of InvalidInput."""
        try:
            return cls(**fields)
        except ValidationError as error:
            raise InvalidInput(describe(error)) from None

    def digest(self) -> str:
        """Identifies what was asked, so a reused command id with another command is caught."""
        body = self.model_dump_json(exclude={"command_id"})
        return hashlib.sha256(f"{type(self).__name__}:{body}".encode()).hexdigest()[:32]

    @property
    def party(self) -> Party | None:
        return None


class EngagementCommand(Command):
    engagement_id: UUID

    def check_against(self, engagement: Engagement) -> None:
        """Input checks that need the engagement: ids exist, amounts fit the currency."""
        values = self.__dict__  # pydantic keeps the fields here; a missing one costs a raise
        for field_name, table in (("milestone_id", engagement.milestones),
                                  ("agreement_id", engagement.agreements),
                                  ("grant_id", engagement.grants),
                                  ("dispute_id", engagement.disputes)):
            ref = values.get(field_name)
            if ref is not None and ref not in table:
                raise InvalidInput(f"engagement has no {field_name.split('_')[0]} {ref}")
        for field_name in self.amount_fields:
            value = getattr(self, field_name)
            if value is not None:
                parse_amount(value, engagement.currency, field_name.replace("_", " "))

    def before_apply(self, app: Any, engagement: Engagement) -> None:
        """Reads what the command needs beyond the engagement's state (most need nothing)."""

    def apply_to(self, engagement: Engagement, by: Stamp) -> str | None:
        raise NotImplementedError


# Engagement -------------------------------------------------------------------------


class OpenEngagement(Command):
    action = Action.OPEN_ENGAGEMENT

    title: Name
    client: Name
    contractor: Name
    curator: Name
    budget: Amount
    currency: Annotated[str, AfterValidator(check_currency)]
    inspection_days: int = Field(14, ge=1, le=365)
    grace_days: int = Field(7, ge=0, le=365)

    @model_validator(mode="after")
    def _budget_fits_currency(self) -> OpenEngagement:
        parse_amount(self.budget, self.currency, "budget")
        return self


class ReassignCurator(EngagementCommand):
    action = Action.REASSIGN_CURATOR
    curator: Name
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.reassign_curator(by, self.curator, self.reason)


class ChangeBudget(EngagementCommand):
    action = Action.CHANGE_BUDGET
    amount_fields = ("budget",)
    budget: Amount
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.change_budget(by, parse_amount(self.budget, engagement.currency), self.reason)


class LogNote(EngagementCommand):
    action = Action.LOG_NOTE
    text: Text

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.log_note(by, self.text)


class RecordCorrection(EngagementCommand):
    action = Action.RECORD_CORRECTION
    version: int = Field(ge=1)
    reason: Reason

    def check_against(self, engagement: Engagement) -> None:
        super().check_against(engagement)
        if self.version > engagement.version:
            raise InvalidInput(f"version {self.version} does not exist: this engagement has "
                               f"versions 1 to {engagement.version}")

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.record_correction(by, self.version, self.reason)


class CloseEngagement(EngagementCommand):
    action = Action.CLOSE_ENGAGEMENT
    outcome: Literal["completed", "terminated"]
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        from ledger.engagement import Outcome

        engagement.close(by, Outcome(self.outcome), self.reason)


class ForgetContractor(EngagementCommand):
    """Records, before the contractor's key is deleted, that their personal text is forgotten."""

    action = Action.ADMINISTER
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.forget_contractor(by, self.reason)


class AcknowledgePlaybook(EngagementCommand):
    action = Action.ACKNOWLEDGE_PLAYBOOK
    policy_version: Name

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.acknowledge_playbook(by, self.policy_version)


# Interviews -------------------------------------------------------------------------


class RecordInterview(EngagementCommand):
    action = Action.RECORD_INTERVIEW
    interviewer: Name
    scores: dict[Name, Annotated[int, Field(ge=0, le=5)]] = Field(min_length=1)
    scenarios: dict[Name, Literal["pass", "fail"]] = Field(default_factory=dict)
    red_flags: list[Text] = Field(default_factory=list, max_length=100)
    notes: Text | None = None
    decision: Decision

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        return engagement.record_interview(by, self.interviewer, dict(self.scores),
                                           dict(self.scenarios), list(self.red_flags),
                                           self.notes, self.decision)


# Agreements -------------------------------------------------------------------------


class DraftAgreement(EngagementCommand):
    action = Action.DRAFT_AGREEMENT
    kind: AgreementKind
    jurisdiction: Annotated[str, AfterValidator(check_jurisdiction)]
    sha256: Sha256

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        return engagement.draft_agreement(by, self.kind, self.jurisdiction, self.sha256)


class ReviewAgreement(EngagementCommand):
    action = Action.REVIEW_AGREEMENT
    agreement_id: AgreementId
    reviewer: Name

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.review_agreement(by, self.agreement_id, self.reviewer)


class SignAgreement(EngagementCommand):
    action = Action.SIGN
    agreement_id: AgreementId
    party_name: Party = Field(alias="party")
    signer: Name

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def party(self) -> Party:
        return self.party_name

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.sign_agreement(by, self.agreement_id, self.party_name, self.signer)


class AmendAgreement(EngagementCommand):
    action = Action.AMEND_AGREEMENT
    agreement_id: AgreementId
    sha256: Sha256
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        return f"v{engagement.amend_agreement(by, self.agreement_id, self.sha256, self.reason)}"


# Milestones -------------------------------------------------------------------------


class DefineMilestone(EngagementCommand):
    action = Action.DEFINE_MILESTONE
    amount_fields = ("amount",)
    title: Name
    amount: Amount
    due: Due
    criteria: Text | None = None

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        return engagement.define_milestone(by, self.title, self.criteria,
                                           parse_amount(self.amount, engagement.currency), self.due)


class MilestoneCommand(EngagementCommand):
    milestone_id: MilestoneId


class FundMilestone(MilestoneCommand):
    action = Action.FUND_MILESTONE

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.fund_milestone(by, self.milestone_id)


class SubmitWork(MilestoneCommand):
    action = Action.SUBMIT_WORK
    note: Text

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.submit_work(by, self.milestone_id, self.note)


class RequestChanges(MilestoneCommand):
    action = Action.REQUEST_CHANGES
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.request_changes(by, self.milestone_id, self.reason)


class AcceptMilestone(MilestoneCommand):
    action = Action.ACCEPT_MILESTONE

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.accept_milestone(by, self.milestone_id)


class ReleasePayment(MilestoneCommand):
    action = Action.RELEASE_PAYMENT

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.release_payment(by, self.milestone_id)


class CancelMilestone(MilestoneCommand):
    action = Action.CANCEL_MILESTONE
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.cancel_milestone(by, self.milestone_id, self.reason)


class RequestExtension(MilestoneCommand):
    action = Action.REQUEST_EXTENSION
    due: Due
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.request_extension(by, self.milestone_id, self.due, self.reason)


class GrantExtension(MilestoneCommand):
    action = Action.DECIDE_EXTENSION
    reason: Text | None = None

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.decide_extension(by, self.milestone_id, True, self.reason)


class DenyExtension(MilestoneCommand):
    action = Action.DECIDE_EXTENSION
    reason: Text | None = None

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.decide_extension(by, self.milestone_id, False, self.reason)


class ProposeMilestoneAmendment(MilestoneCommand):
    action = Action.PROPOSE_AMENDMENT
    amount_fields = ("amount",)
    title: Name | None = None
    amount: Amount | None = None
    due: Due | None = None
    criteria: Text | None = None
    reason: Reason

    @model_validator(mode="after")
    def _changes_something(self) -> ProposeMilestoneAmendment:
        if not self.changes_asked():
            raise InvalidInput("an amendment must change --title, --amount, --due or --criteria")
        return self

    def changes_asked(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("title", "amount", "due", "criteria")
                if getattr(self, name) is not None}

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        changes = self.changes_asked()
        if "amount" in changes:
            changes["amount"] = parse_amount(changes["amount"], engagement.currency)
        return f"amendment {engagement.propose_amendment(by, self.milestone_id, changes, self.reason)}"


class SignMilestoneAmendment(MilestoneCommand):
    action = Action.SIGN
    party_name: Party = Field(alias="party")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def party(self) -> Party:
        return self.party_name

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.sign_amendment(by, self.milestone_id, self.party_name.value)


class Sweep(EngagementCommand):
    """What time alone decides: deemed acceptances (`milestones`) or expired access (`access`)."""

    action = Action.SWEEP
    what: Literal["milestones", "access"]

    def apply_to(self, engagement: Engagement, by: Stamp) -> str | None:
        if engagement.status == "closed":
            return None
        if self.what == "milestones":
            recorded = engagement.deem_accepted(by, by.timestamp)
        else:
            recorded = engagement.expire_access(by, by.timestamp)
        return " ".join(recorded) or None


# Disclosures and access ----------------------------------------------------------------


class RecordDisclosure(EngagementCommand):
    action = Action.RECORD_DISCLOSURE
    description: Text
    agreement_id: AgreementId
    sha256: Sha256 | None = None

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.record_disclosure(by, self.description, self.agreement_id, self.sha256)


class GrantAccess(EngagementCommand):
    action = Action.GRANT_ACCESS
    resource: Name
    level: Literal["read", "write", "admin"]
    milestone_id: MilestoneId
    until: Due | None = None
    reason: Text | None = None

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        from ledger.access import Level

        return engagement.grant_access(by, self.resource, Level(self.level), self.milestone_id,
                                       self.until, self.reason)


class RecertifyAccess(EngagementCommand):
    action = Action.RECERTIFY_ACCESS
    grant_id: GrantId
    reason: Text | None = None

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.recertify_access(by, self.grant_id, self.reason)


class RevokeAccess(EngagementCommand):
    action = Action.REVOKE_ACCESS
    grant_id: GrantId
    reason: Reason

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.revoke_access(by, self.grant_id, self.reason)


# Disputes ------------------------------------------------------------------------------


class OpenDispute(MilestoneCommand):
    action = Action.OPEN_DISPUTE
    amount_fields = ("claim",)
    reason: Reason
    claim: Amount | None = None
    party_name: Party = Field(alias="party")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def party(self) -> Party:
        return self.party_name

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        claim = None if self.claim is None else parse_amount(self.claim, engagement.currency)
        return engagement.open_dispute(by, self.milestone_id, self.party_name, self.reason, claim)


class SubmitEvidence(EngagementCommand):
    action = Action.SUBMIT_EVIDENCE
    dispute_id: DisputeId
    party_name: Party = Field(alias="party")
    description: Text
    sha256: Sha256 | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def party(self) -> Party:
        return self.party_name

    def apply_to(self, engagement: Engagement, by: Stamp) -> str:
        return engagement.submit_evidence(by, self.dispute_id, self.party_name, self.description,
                                          self.sha256)


class NoteMediation(EngagementCommand):
    action = Action.MEDIATE_DISPUTE
    dispute_id: DisputeId
    text: Text

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        engagement.note_mediation(by, self.dispute_id, self.text)


class ResolveDispute(EngagementCommand):
    action = Action.RESOLVE_DISPUTE
    dispute_id: DisputeId
    release: Share
    refund: Share
    reason: Reason
    findings: dict[EvidenceId, Text] = Field(default_factory=dict)

    def check_against(self, engagement: Engagement) -> None:
        super().check_against(engagement)
        for what in ("release", "refund"):
            parse_amount(getattr(self, what), engagement.currency, what, allow_zero=True)
        known = {e.id for e in engagement.disputes[self.dispute_id].evidence}
        unknown = sorted(set(self.findings) - known)
        if unknown:
            raise InvalidInput(f"dispute {self.dispute_id} has no evidence {', '.join(unknown)}")

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        currency = engagement.currency
        engagement.resolve_dispute(by, self.dispute_id,
                                   parse_amount(self.release, currency, allow_zero=True),
                                   parse_amount(self.refund, currency, allow_zero=True),
                                   self.reason, dict(self.findings))


class EscalateDispute(EngagementCommand):
    action = Action.ESCALATE_DISPUTE
    dispute_id: DisputeId
    to: Name
    packet: Annotated[str, Field(min_length=1, max_length=4096)]

    _story: list[Any] = PrivateAttr(default_factory=list)

    def check_against(self, engagement: Engagement) -> None:
        super().check_against(engagement)
        from ledger.packets import check_packet_folder

        check_packet_folder(self.packet)

    def before_apply(self, app: Any, engagement: Engagement) -> None:
        self._story = list(app.events.get(engagement.id))

    def apply_to(self, engagement: Engagement, by: Stamp) -> None:
        from ledger.packets import write_evidence_packet

        engagement.check_escalation(self.dispute_id)
        digest = write_evidence_packet(self.packet, engagement, self.dispute_id, self.to,
                                       self._story, by)
        engagement.escalate_dispute(by, self.dispute_id, self.to, digest)


def describe(error: ValidationError) -> str:
    """The first problem pydantic found, as one line a person can act on."""
    first = error.errors()[0]
    # A dict key is part of the place (`scores.<criterion>`): shown as repr when it holds a
    # control character, so the message stays one line.
    where = ".".join(str(part) if str(part).isprintable() else repr(part)
                     for part in first.get("loc", ()) if part != "__root__")
    message = first.get("msg", "is invalid")
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidInput):
        message = cause.message.replace(FIELD + " ", "").replace(FIELD, "value")
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return f"{where.replace('_', ' ')}: {message}" if where else message
