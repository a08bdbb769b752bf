"""Commands: what a person asks the ledger to do, as imperative pydantic models checked at the boundary.

Each command names the action it needs a role for (`action`), the ids it refers to, and the
one aggregate method it calls (`apply_to`). Checks that need the engagement (does M3 exist,
has the amount too many decimals for this currency) run in `check_against`, still as input.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.agreements import AgreementKind
from ledger.errors import InvalidInput
from ledger.interviews import Decision
from ledger.money import check_currency, parse_amount
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
Sha256 = Annotated[str, AfterValidator(check_sha256)]
Due = Annotated[date, AfterValidator(lambda v: parse_date(v, FIELD))]
MilestoneId = Annotated[str, Field(pattern=r"^M[1-9][0-9]{0,5}$")]
AgreementId = Annotated[str, Field(pattern=r"^A[1-9][0-9]{0,5}$")]
Amount = Annotated[Decimal, AfterValidator(lambda v: _positive(v))]


def _positive(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise InvalidInput(f"{FIELD} must be a positive decimal, got {value}")
    return value


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    action: ClassVar[Action]
    #: Fields holding money, checked against the engagement's currency.
    amount_fields: ClassVar[tuple[str, ...]] = ()

    command_id: str | None = None

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
        for field_name, table in (("milestone_id", engagement.milestones),
                                  ("agreement_id", engagement.agreements)):
            ref = getattr(self, field_name, None)
            if ref is not None and ref not in table:
                raise InvalidInput(f"engagement has no {field_name.split('_')[0]} {ref}")
        for field_name in self.amount_fields:
            value = getattr(self, field_name)
            if value is not None:
                parse_amount(value, engagement.currency, field_name.replace("_", " "))

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


def describe(error: ValidationError) -> str:
    """The first problem pydantic found, as one line a person can act on."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    message = first.get("msg", "is invalid")
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidInput):
        message = cause.message.replace(FIELD + " ", "").replace(FIELD, "value")
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return f"{where.replace('_', ' ')}: {message}" if where else message
