"""Agreements (NDA, non-compete, SOW, MSA, IP): drafts, counsel review, signatures, amendments as versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.errors import RuleViolation
from ledger.events import EngagementEvent, Stamp
from ledger.roles import Party


class AgreementKind(StrEnum):
    NDA = "nda"
    NCA = "nca"
    SOW = "sow"
    MSA = "msa"
    IP = "ip"


@dataclass
class Signature:
    signer: str
    at: datetime


@dataclass
class AgreementVersion:
    version: int
    sha256: str
    status: str  # draft | signed | superseded
    drafted_at: datetime
    reason: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    signatures: dict[str, Signature] = field(default_factory=dict)


@dataclass
class Agreement:
    id: str
    kind: str
    jurisdiction: str
    versions: list[AgreementVersion]

    @property
    def latest(self) -> AgreementVersion:
        return self.versions[-1]

    @property
    def in_force(self) -> AgreementVersion | None:
        for version in reversed(self.versions):
            if version.status == "signed":
                return version
        return None

    @property
    def status(self) -> str:
        return "signed" if self.in_force is not None else "draft"

    def version(self, number: int) -> AgreementVersion | None:
        return self.versions[number - 1] if 1 <= number <= len(self.versions) else None


class AgreementDrafted(EngagementEvent):
    TOPIC = "engagement-ledger:AgreementDrafted"

    agreement_id: str
    kind: str
    jurisdiction: str
    sha256: str

    def change(self, engagement: Any) -> None:
        engagement.agreements[self.agreement_id] = Agreement(
            id=self.agreement_id, kind=self.kind, jurisdiction=self.jurisdiction,
            versions=[AgreementVersion(1, self.sha256, "draft", self.timestamp)],
        )

    def created_id(self) -> str:
        return self.agreement_id

    def summary(self) -> str:
        return f"{self.kind.upper()} {self.agreement_id} drafted for {self.jurisdiction}"


class AgreementReviewed(EngagementEvent):
    TOPIC = "engagement-ledger:AgreementReviewed"

    agreement_id: str
    version: int
    reviewer: str
    jurisdiction: str

    def change(self, engagement: Any) -> None:
        reviewed = engagement.agreements[self.agreement_id].version(self.version)
        reviewed.reviewed_by = self.reviewer
        reviewed.reviewed_at = self.timestamp

    def summary(self) -> str:
        return (f"{self.agreement_id} v{self.version} reviewed by {self.reviewer} "
                f"for {self.jurisdiction}")


class AgreementSigned(EngagementEvent):
    TOPIC = "engagement-ledger:AgreementSigned"

    agreement_id: str
    version: int
    party: str
    signer: str

    def change(self, engagement: Any) -> None:
        agreement = engagement.agreements[self.agreement_id]
        signed = agreement.version(self.version)
        signed.signatures[self.party] = Signature(self.signer, self.timestamp)
        if all(party.value in signed.signatures for party in Party):
            for earlier in agreement.versions:
                if earlier is not signed and earlier.status != "superseded":
                    earlier.status = "superseded"
            signed.status = "signed"
            engagement.advance_status()

    def summary(self) -> str:
        return f"{self.agreement_id} v{self.version} signed by {self.party} {self.signer}"


class AgreementAmended(EngagementEvent):
    TOPIC = "engagement-ledger:AgreementAmended"

    agreement_id: str
    version: int
    sha256: str
    reason: str

    def change(self, engagement: Any) -> None:
        agreement = engagement.agreements[self.agreement_id]
        for earlier in agreement.versions:
            if earlier.status == "draft":  # an unsigned draft is replaced by the amendment
                earlier.status = "superseded"
        agreement.versions.append(
            AgreementVersion(self.version, self.sha256, "draft", self.timestamp, reason=self.reason)
        )

    def created_id(self) -> str:
        return f"v{self.version}"

    def summary(self) -> str:
        return f"{self.agreement_id} amended to v{self.version}"


class AgreementsMixin:
    """The engagement's agreement commands."""

    agreements: dict[str, Agreement]

    def draft_agreement(self, by: Stamp, kind: AgreementKind, jurisdiction: str, sha256: str) -> str:
        self.check_not_closed()  # type: ignore[attr-defined]
        agreement_id = f"A{len(self.agreements) + 1}"
        self.record(by, AgreementDrafted, agreement_id=agreement_id, kind=kind.value,  # type: ignore[attr-defined]
                    jurisdiction=jurisdiction, sha256=sha256)
        return agreement_id

    def review_agreement(self, by: Stamp, agreement_id: str, reviewer: str) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        agreement = self.agreements[agreement_id]
        latest = agreement.latest
        if latest.reviewed_by is not None:
            raise RuleViolation(f"{agreement_id} v{latest.version} was already reviewed by "
                                f"{latest.reviewed_by}")
        self.record(by, AgreementReviewed, agreement_id=agreement_id, version=latest.version,  # type: ignore[attr-defined]
                    reviewer=reviewer, jurisdiction=agreement.jurisdiction)

    def sign_agreement(self, by: Stamp, agreement_id: str, party: Party, signer: str) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        latest = self.agreements[agreement_id].latest
        check_can_sign(agreement_id, latest, party)
        self.record(by, AgreementSigned, agreement_id=agreement_id, version=latest.version,  # type: ignore[attr-defined]
                    party=party.value, signer=signer)

    def amend_agreement(self, by: Stamp, agreement_id: str, sha256: str, reason: str) -> int:
        self.check_not_closed()  # type: ignore[attr-defined]
        agreement = self.agreements[agreement_id]
        if agreement.latest.sha256 == sha256:
            raise RuleViolation(f"{agreement_id} v{agreement.latest.version} already has this "
                                "document; an amendment needs a changed document")
        version = agreement.latest.version + 1
        self.record(by, AgreementAmended, agreement_id=agreement_id, version=version,  # type: ignore[attr-defined]
                    sha256=sha256, reason=reason)
        return version

    def agreement_in_force(self, kind: AgreementKind) -> Agreement | None:
        for agreement in self.agreements.values():
            if agreement.kind == kind.value and agreement.in_force is not None:
                return agreement
        return None


def check_can_sign(agreement_id: str, latest: AgreementVersion, party: Party) -> None:
    if latest.status != "draft":
        raise RuleViolation(f"{agreement_id} v{latest.version} is already {latest.status}; "
                            "amend it to sign a new version")
    if party.value in latest.signatures:
        raise RuleViolation(f"the {party.value} already signed {agreement_id} v{latest.version}")


def verify_document(engagement: Any, agreement_id: str, sha256: str, version: int | None) -> str:
    """Says which recorded version the document is; refuses (exit 3) when it is not the one."""
    from ledger.errors import InvalidInput

    agreement = engagement.agreements.get(agreement_id)
    if agreement is None:
        raise InvalidInput(f"engagement has no agreement {agreement_id}")
    if version is None:
        chosen = agreement.in_force or agreement.latest
    else:
        chosen = agreement.version(version)
        if chosen is None:
            raise InvalidInput(f"{agreement_id} has no version {version}")
    if chosen.sha256 != sha256:
        raise RuleViolation(f"the document is NOT {agreement_id} v{chosen.version} as recorded "
                            f"(recorded SHA-256 {chosen.sha256[:16]}…, file {sha256[:16]}…)")
    return f"the document is {agreement_id} v{chosen.version} as recorded ({chosen.status})"
