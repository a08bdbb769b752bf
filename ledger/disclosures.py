"""Disclosures: the curator's record of what company information the contractor was given, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.events import EngagementEvent, Stamp


@dataclass
class Disclosure:
    description: str
    agreement: str
    sha256: str | None
    agreement_in_force: bool
    at: datetime
    by: str


class DisclosureRecorded(EngagementEvent):
    TOPIC = "engagement-ledger:DisclosureRecorded"

    description: str
    agreement_id: str
    sha256: str | None
    agreement_in_force: bool

    def change(self, engagement: Any) -> None:
        engagement.disclosures.append(Disclosure(
            self.description, self.agreement_id, self.sha256, self.agreement_in_force,
            self.timestamp, self.actor,
        ))

    def summary(self) -> str:
        covered = "" if self.agreement_in_force else " (agreement NOT in force)"
        return f"disclosure under {self.agreement_id}{covered}"


class DisclosuresMixin:
    """What was shared is recorded even when the agreement is not yet in force: the record is
    the point, and an uncovered disclosure shows up as an alert rather than going unrecorded."""

    agreements: dict[str, Any]

    def record_disclosure(self, by: Stamp, description: str, agreement_id: str,
                          sha256: str | None) -> None:
        self.check_not_closed()  # type: ignore[attr-defined]
        in_force = self.agreements[agreement_id].in_force is not None
        self.record(by, DisclosureRecorded, description=description,  # type: ignore[attr-defined]
                    agreement_id=agreement_id, sha256=sha256, agreement_in_force=in_force)
