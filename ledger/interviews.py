"""Interviews: scope, timeline and qualifications scored 0-5, scenario questions pass/fail, red flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.errors import RuleViolation
from ledger.events import EngagementEvent, Stamp


class Decision(StrEnum):
    ADVANCE = "advance"
    HOLD = "hold"
    REJECT = "reject"


@dataclass
class Interview:
    id: str
    interviewer: str
    scores: dict[str, int]
    scenarios: dict[str, str]
    red_flags: list[str]
    notes: str | None
    decision: str
    at: datetime
    by: str = ""


class InterviewRecorded(EngagementEvent):
    TOPIC = "engagement-ledger:InterviewRecorded"

    interview_id: str
    interviewer: str
    scores: dict[str, int]
    scenarios: dict[str, str]
    red_flags: list[str]
    notes: str | None
    decision: str

    PERSONAL = ("notes", "red_flags")

    def change(self, engagement: Any) -> None:
        engagement.interviews[self.interview_id] = Interview(
            id=self.interview_id, interviewer=self.interviewer, scores=dict(self.scores),
            scenarios=dict(self.scenarios), red_flags=list(self.red_flags), notes=self.notes,
            decision=self.decision, at=self.timestamp, by=self.actor,
        )
        if self.decision == Decision.ADVANCE:
            engagement.advance_status()

    def created_id(self) -> str:
        return self.interview_id

    def summary(self) -> str:
        flags = f", {len(self.red_flags)} red flag(s)" if self.red_flags else ""
        return f"interview {self.interview_id} by {self.interviewer}: {self.decision}{flags}"


class InterviewsMixin:
    """The engagement's interview commands."""

    interviews: dict[str, Interview]

    def record_interview(self, by: Stamp, interviewer: str, scores: dict[str, int],
                         scenarios: dict[str, str], red_flags: list[str], notes: str | None,
                         decision: Decision) -> str:
        self.check_not_closed()  # type: ignore[attr-defined]
        check_interviews_allowed(self)
        interview_id = f"I{len(self.interviews) + 1}"
        self.record(by, InterviewRecorded, interview_id=interview_id, interviewer=interviewer,  # type: ignore[attr-defined]
                    scores=scores, scenarios=scenarios, red_flags=red_flags, notes=notes,
                    decision=decision.value)
        if decision is Decision.REJECT:
            self.record_closing(by, "not_hired", f"interview {interview_id} ended in reject")  # type: ignore[attr-defined]
        return interview_id


def check_interviews_allowed(engagement: Any) -> None:
    if engagement.status != "vetting":
        raise RuleViolation(
            f"interviews are recorded only while vetting; this engagement is {engagement.status}"
        )
