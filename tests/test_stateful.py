"""Stateful property test: random command sequences against one engagement.

A hypothesis `RuleBasedStateMachine` opens ONE engagement in an in-memory ledger and drives it
through the application service with random commands, random milestone, agreement, grant,
dispute and evidence ids (existing or not), random amounts (sometimes beyond the budget or the
escrow, sometimes malformed), random dates and random actors (sometimes of the wrong role, or
acting for the other party). The application's clock is the test's own: every command is one
second after the one before, and a rule lets days pass, so that access expires and inspection
periods run out (the sweeps). Next to the ledger it keeps a shadow model: its own, deliberately
simple reading of DESIGN sections 1-3 (and of docs/decisions.md where DESIGN is silent),
written without the product's code.

Part 1 drives interviews, agreements, the milestone money path, budget, notes, corrections,
reassignment, playbook and closing. Part 2 adds access grants (grant, recertify, revoke, expiry
by the access sweep), deemed acceptance (the milestone sweep), extensions (request, grant, deny),
milestone amendments (proposal, a signature by each party, in effect only with the second) and
disputes (open, evidence, mediation note, resolution with a release/refund split and findings,
escalation with its evidence packet written to a temporary folder).

Each step predicts its outcome from the shadow model (done, or refused as InvalidInput,
NotPermitted or RuleViolation, checked in that order as rule 9 says) and checks the ledger
answered exactly that. A refusal must record nothing (and write no packet); a success records
all its events in one save: one command id, one timestamp. After every step:

- the engagement (from the application's cache) equals the same version replayed from the store,
  and the contractor's view is the auditor's with the interviews and mediation notes redacted;
- it equals the shadow model: lifecycle status, outcome, budget, curator, grace and inspection
  days, each milestone (status, amount, title, criteria, due and original due, extensions, the
  waiting extension request and amendment, deemed acceptance), each agreement version's status
  and signatures, each grant (milestone, level, expiry, status, why it ended), each dispute
  (milestone, party, claim, status, evidence, notes, resolution, escalation), the money totals,
  the version;
- rule 2: milestones not cancelled never total more than the budget, and every milestone that
  was ever funded was funded while a SOW signed by both parties was in force;
- rule 3: every grant was given while an NDA signed by both parties was in force, to a milestone
  that was funded and not closed (nor frozen), until at most its due date plus the grace period
  then; no active grant on a closed engagement;
- rule 4: no active grant serves a released, settled or cancelled milestone; a grant only ends by
  a revocation (its own, its milestone's end, the engagement's close) or by the access sweep;
- rule 5: released money only grows by a release of an accepted milestone (by its amount) or a
  resolution (by its release), refunded money only by cancelling a milestone holding escrow (by
  its amount) or a resolution (by its refund), funded money only by funding; an open or
  escalated dispute freezes its milestone: nothing about it changes until the resolution, which
  settles it; a disputed milestone has exactly one unresolved dispute, a settled one exactly one
  resolved dispute;
- rule 6: every resolution's release + refund equals the milestone's escrowed amount, with a
  finding for each of the dispute's evidence items and no other;
- rule 7: funded == released + refunded + escrow, escrow == the amounts of the milestones in
  funded/submitted/changes_requested/accepted/disputed (a disputed milestone's money stays in
  escrow until the resolution), and each total is what the milestones and resolutions account for;
- statuses only move forward (lifecycle, milestone transition table, agreement versions, grants,
  disputes).

Every state the test saw is kept by version; at teardown, replaying to each of those versions
(`--version N`) and to each version's timestamp (`--at T`) must give exactly that state again.

Adding a command: give the shadow model what it needs, add a `@rule` that predicts the outcome
with `self.expect(...)` and calls `self.attempt(...)` with an `on_success` that updates the shadow
(and counts any extra events the command records in the same save), and extend the checks where
the new command moves money or statuses. Rules named `progress_*` drive the usual path with the
right actor and well-formed input, so that deep states are reached often.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.application import open_ledger
from ledger.commands import (
    AcceptMilestone,
    AcknowledgePlaybook,
    AmendAgreement,
    CancelMilestone,
    ChangeBudget,
    CloseEngagement,
    Command,
    DefineMilestone,
    DenyExtension,
    DraftAgreement,
    EscalateDispute,
    FundMilestone,
    GrantAccess,
    GrantExtension,
    LogNote,
    NoteMediation,
    OpenDispute,
    OpenEngagement,
    ProposeMilestoneAmendment,
    ReassignCurator,
    RecertifyAccess,
    RecordCorrection,
    RecordInterview,
    ReleasePayment,
    RequestChanges,
    RequestExtension,
    ResolveDispute,
    RevokeAccess,
    SignAgreement,
    SignMilestoneAmendment,
    SubmitEvidence,
    SubmitWork,
    Sweep,
)
from ledger.errors import InvalidInput, NotPermitted, RuleViolation
from ledger.roles import Actor
from ledger.views import engagement_state

# The spec, as this test reads it (DESIGN sections 1-3), independent of the product's tables ----

ACTORS = {
    "curator": Actor.parse("curator:cara"),
    "client": Actor.parse("client:acme"),
    "contractor": Actor.parse("contractor:bo"),
    "auditor": Actor.parse("auditor:ann"),
    "admin": Actor.parse("admin:root"),
}
AUDITOR = ACTORS["auditor"]
CONTRACTOR = ACTORS["contractor"]

#: Who may do what besides admin (DESIGN section 1).
MAY: dict[str, set[str]] = {
    "interview": {"curator"}, "draft": {"curator"}, "amend agreement": {"curator"},
    "define": {"curator"}, "note": {"curator"}, "correct": {"curator"}, "close": {"curator"},
    "reassign": {"curator"},
    "sign": {"client", "contractor"},
    "budget": {"client"}, "fund": {"client"}, "request changes": {"client"},
    "accept": {"client"}, "release": {"client"}, "cancel": {"client"},
    "submit": {"contractor"}, "playbook": {"contractor"},
    # Part 2.
    "grant access": {"curator"}, "recertify": {"curator"}, "revoke": {"curator"},
    "sweep": {"curator"}, "propose amendment": {"curator"}, "mediate": {"curator"},
    "resolve": {"curator"}, "escalate": {"curator"},
    "sign amendment": {"client", "contractor"},
    "dispute": {"client", "contractor"}, "evidence": {"client", "contractor"},
    "request extension": {"contractor"},
    "decide extension": {"client", "curator"},  # the curator: "– (extension: yes)"
}

LIFECYCLE = ["vetting", "contracting", "active", "closed"]
ESCROW = ("funded", "submitted", "changes_requested", "accepted", "disputed")
FINAL = ("released", "settled", "cancelled")

#: Milestone commands of part 1: the statuses each may start from, and the status it leads to.
MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "fund": (("defined",), "funded"),
    "submit": (("funded", "changes_requested"), "submitted"),
    "request changes": (("submitted",), "changes_requested"),
    "accept": (("submitted",), "accepted"),
    "release": (("accepted",), "released"),
    "cancel": (("defined", "funded", "changes_requested"), "cancelled"),
}
#: Each milestone command: its class, the role it belongs to, and well-formed extra fields.
MILESTONE_COMMANDS: dict[str, tuple[type[Command], str, dict[str, Any]]] = {
    "fund": (FundMilestone, "client", {}),
    "submit": (SubmitWork, "contractor", {"note": "done"}),
    "request changes": (RequestChanges, "client", {"reason": "fix the tests"}),
    "accept": (AcceptMilestone, "client", {}),
    "release": (ReleasePayment, "client", {}),
    "cancel": (CancelMilestone, "client", {"reason": "no longer needed"}),
}
#: The whole transition table of DESIGN section 2 (disputes and deemed acceptance included).
SUCCESSORS: dict[str, set[str]] = {
    "defined": {"funded", "cancelled"},
    "funded": {"submitted", "cancelled", "disputed"},
    "submitted": {"accepted", "changes_requested", "disputed"},
    "changes_requested": {"submitted", "cancelled", "disputed"},
    "accepted": {"released", "disputed"},
    "disputed": {"settled"},
    "released": set(), "settled": set(), "cancelled": set(),
}
VERSION_SUCCESSORS = {"draft": {"signed", "superseded"}, "signed": {"superseded"},
                      "superseded": set()}
GRANT_SUCCESSORS = {"active": {"revoked", "expired"}, "revoked": set(), "expired": set()}
DISPUTE_SUCCESSORS = {"open": {"escalated", "resolved"}, "escalated": {"resolved"},
                      "resolved": set()}
#: Rule 3: access serves a funded milestone that is not closed; a disputed one is frozen, so it
#: gets no new access either (docs/decisions.md).
GRANTABLE = ("funded", "submitted", "changes_requested", "accepted")
#: The transition table's "dispute open -> disputed": money in escrow, not already disputed.
DISPUTABLE = ("funded", "submitted", "changes_requested", "accepted")
#: The table's "extend" (a request) and "amend" (a proposal, and each signature of it).
EXTENDABLE = ("funded", "changes_requested")
AMENDABLE = ("defined", "funded", "submitted", "changes_requested")
UNRESOLVED = ("open", "escalated")

# Inputs: mostly well formed, some not (membership in the BAD lists is the test's own verdict) --


class Long(str):
    """A long text that prints as the expression making it, so failing examples stay readable."""

    def __repr__(self) -> str:
        return f"'x' * {len(self)}"


GOOD_NAMES = ["Design", "API build", "Phase 2 — rollout", Long("x" * 200)]
BAD_NAMES = ["", Long("x" * 201), "bell\x07"]
GOOD_TEXTS = ["Looks good", "line one\nline two", "see\tthe attachment"]
BAD_TEXTS = ["", "nul\x00byte", Long("x" * 10_001)]
GOOD_JURISDICTIONS = ["DE", "US-CA", "FR"]
BAD_JURISDICTIONS = ["XX", "Germany", "US-ZZ"]
DOCS = [hashlib.sha256(f"document {n}".encode()).hexdigest() for n in range(3)]
BAD_DOCS = ["not-a-hash"]
GOOD_KINDS = ["sow", "nda", "msa"]
BAD_KINDS = ["contract"]
GOOD_DECISIONS = ["advance", "hold", "reject"]
GOOD_DATES = ["2025-06-30", "2026-01-15", "2024-02-29"]
BAD_DATES = ["2025-02-30", "31/12/2025", "soon"]
BAD_AMOUNTS = ["0", "0.00", "-5.00", "10.001", "abc", "NaN"]
#: Picks an id: mostly an existing one (newest first), sometimes an unknown or malformed one.
picks = st.integers(0, 9)
UNKNOWN_PICKS = {7: "next", 8: "far", 9: "malformed"}
PARTIES = ["client", "contractor", "client", "contractor", "curator"]
CURATORS = ["cara", "dana", "eve"]
#: How a resolution splits the escrow, and which findings it gives.
SPLITS = ["exact", "exact", "exact", "all released", "all refunded", "a cent short", "a cent over",
          "negative", "three places", "not a number"]
FINDINGS = ["all", "all", "all", "one missing", "unknown evidence", "another dispute's",
            "empty text", "malformed id"]
#: What the part-2 drivers may do next.
#: (Hypothesis leans towards the first entry: the longest walk comes first.)
CHANGES = ["extend, then grant", "amend, then both sign", "extend", "grant", "deny", "amend",
           "sign", "extend, then deny"]
DISPUTE_STEPS = ["open, evidence, resolve", "escalate, then resolve", "evidence", "resolve",
                 "open", "escalate", "note", "evidence"]
GOOD_LEVELS = ["read", "write", "admin"]
BAD_LEVELS = ["root"]
GOOD_RESOURCES = ["staging DB", "repo", "wiki"]
#: Where an example starts: the engagement is walked there first, so deep states come often.
STAGES = ["vetting", "contracting", "contracting with milestones", "active with milestones",
          "delivering", "changing", "in dispute", "vetting with a signed SOW"]


def mostly(good: list[Any], bad: list[Any], weight: int = 4) -> st.SearchStrategy[Any]:
    """A good value most of the time, a bad one sometimes (shrinks towards the first good one)."""
    return st.sampled_from(good * weight + bad)


def actors(role: str) -> st.SearchStrategy[Actor]:
    """Mostly the role the action needs, sometimes admin, sometimes a wrong role."""
    right = ACTORS[role]
    others = [actor for name, actor in ACTORS.items() if name not in (role, "admin")]
    return st.sampled_from([right] * 5 + [ACTORS["admin"], *others])


#: An amount as given on the command line, or an edge token resolved against the shadow model.
amounts = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1200"), places=2)
    .map(lambda d: f"{d:f}"),
    st.decimals(min_value=Decimal("1"), max_value=Decimal("400"), places=0).map(lambda d: f"{d:f}"),
    st.sampled_from(["EDGE", "EDGE", "EDGE+0.01", "EDGE-0.01"]),
    st.sampled_from(BAD_AMOUNTS),
)


def resolve_amount(token: str, edge: Decimal) -> str:
    if token == "EDGE":
        return f"{edge:f}"
    if token == "EDGE+0.01":
        return f"{edge + Decimal('0.01'):f}"
    if token == "EDGE-0.01":
        return f"{edge - Decimal('0.01'):f}"
    return token


def amount_is_bad(text: str) -> bool:
    """Rule 8 for EUR: a positive decimal with at most 2 decimal places."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return True
    return not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01"))


def share_is_bad(text: str) -> bool:
    """Rule 8 for a resolution's release or refund: as an amount, but zero is allowed."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return True
    return not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01"))


def cents(value: Decimal) -> str:
    """An amount as the JSON output writes it for EUR."""
    return f"{value.quantize(Decimal('0.01')):f}"


def end_of_day(day: date) -> datetime:
    """DESIGN section 2: a date without a time means the end of that day, UTC."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


# The shadow model ------------------------------------------------------------------------


@dataclass
class ShadowVersion:
    sha: str
    status: str = "draft"
    signed_by: set[str] = field(default_factory=set)


@dataclass
class ShadowAgreement:
    kind: str
    versions: list[ShadowVersion]

    @property
    def latest(self) -> ShadowVersion:
        return self.versions[-1]

    @property
    def in_force_version(self) -> int | None:
        signed = [n for n, v in enumerate(self.versions, 1) if v.status == "signed"]
        return signed[-1] if signed else None


@dataclass
class ShadowAmendment:
    number: int
    #: The new values: title and criteria as text, amount as Decimal, due as date.
    changes: dict[str, Any]
    signed: set[str] = field(default_factory=set)

    def facts(self) -> tuple[Any, ...]:
        shown = {name: cents(v) if name == "amount" else v.isoformat() if name == "due" else v
                 for name, v in self.changes.items()}
        return self.number, shown, self.signed


@dataclass
class ShadowMilestone:
    amount: Decimal
    title: str
    due: date
    criteria: str | None = None
    status: str = "defined"
    #: Set when funded: was a SOW signed by both parties in force at that moment?
    funded_under_sow: bool | None = None
    original_due: date | None = None
    extensions: int = 0
    #: The due date a waiting extension request asks for.
    extension_request: date | None = None
    amendment: ShadowAmendment | None = None
    amendments: int = 0  # amendments that took effect
    submitted_at: datetime | None = None
    deemed: bool = False

    def move_due(self, due: date) -> None:
        if self.original_due is None:
            self.original_due = self.due
        self.due = due

    def facts(self) -> tuple[Any, ...]:
        return (self.status, self.amount, self.title, self.criteria, self.due.isoformat(),
                self.original_due and self.original_due.isoformat(), self.extensions,
                self.extension_request and self.extension_request.isoformat(),
                self.amendment and self.amendment.facts(), self.deemed)


@dataclass
class ShadowGrant:
    milestone: str
    level: str
    until: date
    #: What held when it was granted (rule 3).
    nda_in_force: bool
    milestone_status: str
    latest: date  # the milestone's due date plus the grace period, then
    status: str = "active"
    end_reason: str | None = None

    def facts(self) -> tuple[Any, ...]:
        return self.milestone, self.level, self.until.isoformat(), self.status, self.end_reason


@dataclass
class ShadowDispute:
    milestone: str
    party: str
    claim: Decimal | None
    opened_version: int
    status: str = "open"
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (E<n>, party)
    notes: int = 0
    release: Decimal | None = None
    refund: Decimal | None = None
    findings: dict[str, str] | None = None
    escalated_to: str | None = None

    def facts(self) -> tuple[Any, ...]:
        resolution = None if self.status != "resolved" else (
            self.release, self.refund, self.findings)
        return (self.milestone, self.party, self.status, self.claim, self.opened_version,
                self.evidence, self.notes, resolution, self.escalated_to)


@dataclass
class Shadow:
    budget: Decimal
    curator: str
    grace: int = 7
    inspection: int = 14
    status: str = "vetting"
    outcome: str | None = None
    advanced: bool = False
    version: int = 1
    interviews: int = 0
    notes: int = 0
    corrections: int = 0
    playbook: int = 0
    agreements: dict[str, ShadowAgreement] = field(default_factory=dict)
    milestones: dict[str, ShadowMilestone] = field(default_factory=dict)
    grants: dict[str, ShadowGrant] = field(default_factory=dict)
    disputes: dict[str, ShadowDispute] = field(default_factory=dict)
    funded: Decimal = Decimal(0)
    released: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    def in_force(self, kind: str) -> bool:
        return any(a.kind == kind and a.in_force_version for a in self.agreements.values())

    def sow_in_force(self) -> bool:
        return self.in_force("sow")

    def nda_in_force(self) -> bool:
        return self.in_force("nda")

    def committed(self) -> Decimal:
        return sum((m.amount for m in self.milestones.values() if m.status != "cancelled"),
                   Decimal(0))

    def escrow(self) -> Decimal:
        return sum((m.amount for m in self.milestones.values() if m.status in ESCROW), Decimal(0))

    def evidence_count(self) -> int:
        return sum(len(d.evidence) for d in self.disputes.values())

    def move_forward(self) -> None:
        if self.status == "vetting" and self.advanced:
            self.status = "contracting"
        if self.status == "contracting" and self.sow_in_force():
            self.status = "active"

    def end_grants(self, milestone_id: str | None, reason: str) -> int:
        """Rule 4: revokes the active grants serving a milestone (None: all); how many."""
        ended = 0
        for grant in self.grants.values():
            if grant.status == "active" and milestone_id in (None, grant.milestone):
                grant.status, grant.end_reason = "revoked", reason
                ended += 1
        if ended:
            event("part 2: grants revoked with their milestone or the engagement")
        return ended


@dataclass
class Sent:
    command: Command
    actor: Actor
    result: str | None


def money(state: dict[str, Any], name: str) -> Decimal:
    return Decimal(state["money"][name])


def kind_of(error: type[BaseException] | None) -> str:
    return "success" if error is None else error.__name__


def milestone_facts(m: dict[str, Any]) -> tuple[Any, ...]:
    request, amendment = m["extension_request"], m["amendment"]
    return (m["status"], Decimal(m["amount"]), m["title"], m["criteria"], m["due"],
            m["original_due"], m["extensions"], request and request["due"],
            amendment and (amendment["number"], amendment["changes"],
                           {p for p, s in amendment["signatures"].items() if s}),
            m["deemed_accepted"])


def grant_facts(g: dict[str, Any]) -> tuple[Any, ...]:
    return g["milestone"], g["level"], g["until"], g["status"], g["end_reason"]


def dispute_facts(d: dict[str, Any]) -> tuple[Any, ...]:
    resolution = d["resolution"] and (Decimal(d["resolution"]["release"]),
                                      Decimal(d["resolution"]["refund"]),
                                      d["resolution"]["findings"])
    return (d["milestone"], d["party"], d["status"],
            None if d["claim"] is None else Decimal(d["claim"]), d["opened_version"],
            [(e["id"], e["party"]) for e in d["evidence"]], len(d["mediation_notes"]),
            resolution, d["escalation"] and d["escalation"]["to"])


# The machine -------------------------------------------------------------------------------


class EngagementMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
        self.app = open_ledger("memory://", clock=self.tick)
        self.command_ids = itertools.count(1)
        self.seen: dict[int, dict[str, Any]] = {}  # every state observed, by version
        self.successes: list[Sent] = []
        self.shadow: Shadow | None = None
        self.snapshotted: set[int] = set()
        self.packets = Path(tempfile.mkdtemp(prefix="ledger-packets-"))  # escalation packets
        self.packet_numbers = itertools.count(1)

    def tick(self) -> datetime:
        """A clock one second further at each call: every command has its own timestamp."""
        self.now += timedelta(seconds=1)
        return self.now

    # Opening, and optionally fast-forwarding so that deep states are reached often ----------

    @initialize(
        budget=st.decimals(min_value=Decimal("100"), max_value=Decimal("3000"), places=2),
        stage=st.sampled_from(STAGES[:2] + STAGES[2:7] * 3 + STAGES[7:]),
        nda=st.sampled_from([True, True, True, False]),
        grace=st.sampled_from([7, 7, 0, 3]),
        inspection=st.sampled_from([14, 14, 2]),
    )
    def open_engagement(self, budget: Decimal, stage: str, nda: bool, grace: int,
                        inspection: int) -> None:
        """Opens the engagement, then walks it to `stage` through the same checked steps."""
        self.open_id = "open-1"
        event(f"stage: {stage}, NDA {nda}")
        self.open_fields = dict(title="Data platform", client="Acme", contractor="Bo Ltd",
                                curator="cara", budget=f"{budget:f}", currency="EUR",
                                grace_days=grace, inspection_days=inspection)
        command = OpenEngagement.build(command_id=self.open_id, **self.open_fields)
        self.eid = self.app.open_engagement(command, ACTORS["curator"])
        self.shadow = Shadow(budget=budget, curator="cara", grace=grace, inspection=inspection)
        self.prev = self.observe()
        self.seen[1] = self.prev
        self.check_state(self.prev)

        curator, client, contractor = ACTORS["curator"], ACTORS["client"], ACTORS["contractor"]
        if stage == "vetting with a signed SOW":  # an advance must then go straight to active
            self.draft_agreement(curator, "sow", "FR", DOCS[1])
            self.sign_agreement(contractor, "A1", "contractor", "Bo")
            self.sign_agreement(client, "A1", "client", "Alice")
            assert self.shadow.status == "vetting"
            return
        steps = STAGES.index(stage)
        quarter = f"{(budget / 4).quantize(Decimal('0.01')):f}"
        if steps >= 1:  # contracting
            self.record_interview(curator, "advance", 4, [])
        if steps >= 2:  # contracting with milestones, and a SOW signed by the client only
            self.define_milestone(curator, "Design", quarter, "2025-06-30")
            self.define_milestone(curator, "Build", quarter, "2025-09-30")
            self.draft_agreement(curator, "sow", "DE", DOCS[0])
            self.sign_agreement(client, "A1", "client", "Alice")
        if steps >= 3:  # active, M1 funded, and (mostly) an NDA in force as A2
            self.sign_agreement(contractor, "A1", "contractor", "Bo")
            assert self.shadow.status == "active"
            self.move("fund", FundMilestone, client, "M1", {})
            if nda:
                self.draft_agreement(curator, "nda", "DE", DOCS[2])
                self.sign_agreement(client, "A2", "client", "Alice")
                self.sign_agreement(contractor, "A2", "contractor", "Bo")
        if steps >= 4:  # delivering: M1 changes requested, M2 accepted, M3 submitted
            self.define_milestone(curator, "Rollout", quarter, "2025-12-31")
            for step, mid in [("fund", "M2"), ("fund", "M3"), ("submit", "M1"),
                              ("request changes", "M1"), ("submit", "M2"), ("accept", "M2"),
                              ("submit", "M3")]:
                self.move_as_usual(step, mid)
        if stage == "changing":  # an extension asked for M1, an amendment of M3 half signed
            self.request_extension_of(contractor, "M1", "later", "API delay")
            self.propose_amendment_of(curator, "M3", None, None, "later", "Loads 1M rows",
                                      "Re-planned")
            self.sign_amendment_of(client, "M3", "client")
        if stage == "in dispute":  # access to M1 and M3, D1 on M3 with evidence E1
            self.grant_access_to(curator, "M1", "repo", "write", None, None)
            self.grant_access_to(curator, "M3", "staging DB", "read", "soon", None)
            self.open_dispute_on(client, "M3", "client", "Not to spec", "EDGE")
            self.submit_evidence_to(contractor, "D1", "contractor", "Delivery log", DOCS[0])

    # Ids -----------------------------------------------------------------------------------

    def pick_id(self, prefix: str, existing: list[str], pick: int) -> str:
        """An existing id most of the time; else the next one, one far off, or a malformed one."""
        if pick in UNKNOWN_PICKS or not existing:
            return {"next": f"{prefix}{len(existing) + 1}", "far": f"{prefix}99",
                    "malformed": f"{prefix}0"}[UNKNOWN_PICKS.get(pick, "next")]
        return existing[-1 - pick % len(existing)]

    def milestone_id(self, pick: int) -> str:
        return self.pick_id("M", list(self.shadow.milestones), pick)

    def agreement_id(self, pick: int) -> str:
        return self.pick_id("A", list(self.shadow.agreements), pick)

    def grant_id(self, pick: int) -> str:
        return self.pick_id("G", list(self.shadow.grants), pick)

    def dispute_id(self, pick: int) -> str:
        return self.pick_id("D", list(self.shadow.disputes), pick)

    def one_of(self, candidates: list[str], pick: int, fallback: str) -> str:
        """One of `candidates` (newest first), or `fallback` when there are none."""
        return candidates[-1 - pick % len(candidates)] if candidates else fallback

    def milestones_in(self, statuses: tuple[str, ...]) -> list[str]:
        return [mid for mid, m in self.shadow.milestones.items() if m.status in statuses]

    # Running one command ---------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        return engagement_state(self.app.engagement(self.eid, AUDITOR), AUDITOR)

    def expect(self, action: str, actor: Actor, *, bad_input: bool = False,
               party: str | None = None, refused: bool = False) -> type[Exception] | None:
        """Rule 9's order: input (InvalidInput), role (NotPermitted), rules (RuleViolation)."""
        if bad_input:
            return InvalidInput
        role = actor.role.value
        if role != "admin":
            if role not in MAY[action]:
                return NotPermitted
            if party is not None and party != role:
                return NotPermitted
        if refused:
            return RuleViolation
        return None

    def attempt(self, step: str, command_class: type[Command], actor: Actor,
                expected: type[Exception] | None, fields: dict[str, Any],
                on_success: Callable[[str | None], None] | None = None) -> str | None:
        """Runs one command and checks it ended as `expected`; refusals must record nothing."""
        # The state now: what the last step observed (and the invariant saw unchanged since).
        before = self.prev
        assert before["version"] == self.shadow.version
        log_head = self.app.recorder.max_notification_id()
        error: Exception | None = None
        result: str | None = None
        try:
            command = command_class.build(engagement_id=self.eid,
                                          command_id=f"c{next(self.command_ids)}", **fields)
            result = self.app.execute(command, actor)  # type: ignore[arg-type]
        except (InvalidInput, NotPermitted, RuleViolation) as refusal:
            error = refusal
        outcome = None if error is None else type(error)
        event(f"{step}: {kind_of(outcome)}")  # shown by pytest --hypothesis-show-statistics
        assert outcome is expected, (
            f"{step} as {actor} with {fields!r} in a {self.shadow.status} engagement: expected "
            f"{kind_of(expected)}, got {kind_of(outcome)}"
            + (f" ({error})" if error else f" (result {result!r})")
        )
        if error is not None:
            assert str(error).strip() and "\n" not in str(error), f"unclear message: {error!r}"
            assert self.app.recorder.max_notification_id() == log_head, "a refusal recorded events"
        else:
            self.successes.append(Sent(command, actor, result))
            self.shadow.version += 1
            if on_success is not None:
                on_success(result)  # counts any further events of the same save
            # One command, one save: every event it recorded carries its id and its timestamp
            # (rule 4: the grants end in the same transaction as their milestone).
            recorded = list(self.app.events.get(self.eid, gt=before["version"]))
            assert len(recorded) == self.shadow.version - before["version"], (
                f"{step} recorded {[type(e).__name__ for e in recorded]}")
            assert {e.command_id for e in recorded} <= {command.command_id}
            assert len({e.timestamp for e in recorded}) <= 1
        self.after_step(step, before, succeeded=error is None)
        return result

    def after_step(self, step: str, before: dict[str, Any], succeeded: bool) -> None:
        now = self.observe()
        if not succeeded:
            assert now == before, f"a refused {step} changed the engagement"
        stored = self.app.repository.get(self.eid, version=now["version"])
        assert engagement_state(stored, AUDITOR) == now, "cached engagement differs from the store"
        if now["version"] in self.seen:
            assert self.seen[now["version"]] == now, f"version {now['version']} changed"
        else:
            self.seen[now["version"]] = now
        self.check_state(now)
        self.check_forward(before, now)
        self.check_money_moves(step, before, now, succeeded)
        self.check_grants_and_disputes_move(step, before, now, succeeded)
        self.prev = now

    # Checks ----------------------------------------------------------------------------

    def check_state(self, state: dict[str, Any]) -> None:
        shadow = self.shadow
        # The shadow model's expectations.
        assert state["version"] == shadow.version
        assert state["status"] == shadow.status
        assert state["outcome"] == shadow.outcome
        assert Decimal(state["budget"]) == shadow.budget
        assert state["curator"] == shadow.curator
        assert len(state["interviews"]) == shadow.interviews
        assert len(state["notes"]) == shadow.notes
        assert len(state["corrections"]) == shadow.corrections
        assert len(state["playbook_acknowledgements"]) == shadow.playbook
        assert (state["grace_days"], state["inspection_days"]) == (shadow.grace, shadow.inspection)
        assert {m["id"]: milestone_facts(m) for m in state["milestones"]} == {
            mid: m.facts() for mid, m in shadow.milestones.items()
        }
        assert {g["id"]: grant_facts(g) for g in state["grants"]} == {
            gid: g.facts() for gid, g in shadow.grants.items()
        }
        assert {d["id"]: dispute_facts(d) for d in state["disputes"]} == {
            did: d.facts() for did, d in shadow.disputes.items()
        }
        assert {
            a["id"]: (a["kind"], a["status"], a["in_force_version"],
                      [(v["status"], v["sha256"], {p for p, s in v["signatures"].items() if s})
                       for v in a["versions"]])
            for a in state["agreements"]
        } == {
            aid: (a.kind, "signed" if a.in_force_version else "draft", a.in_force_version,
                  [(v.status, v.sha, v.signed_by) for v in a.versions])
            for aid, a in shadow.agreements.items()
        }
        funded, released = money(state, "funded"), money(state, "released")
        refunded, escrow = money(state, "refunded"), money(state, "escrow")
        assert (funded, released, refunded, escrow) == (
            shadow.funded, shadow.released, shadow.refunded, shadow.escrow())

        # Rule 7, from the engagement alone.
        assert funded == released + refunded + escrow
        in_escrow = sum((Decimal(m["amount"]) for m in state["milestones"]
                         if m["status"] in ESCROW), Decimal(0))
        assert escrow == in_escrow >= 0

        # Rule 2: within the budget; funded only under a SOW in force.
        committed = sum((Decimal(m["amount"]) for m in state["milestones"]
                         if m["status"] != "cancelled"), Decimal(0))
        assert money(state, "committed") == committed <= Decimal(state["budget"])
        for m in state["milestones"]:
            if m["status"] in ESCROW or m["status"] in ("released", "settled"):
                assert shadow.milestones[m["id"]].funded_under_sow is True, (
                    f"{m['id']} is {m['status']} but was never funded under a SOW in force")

        self.check_rules_3_to_7(state)

        # A contractor reads the same, without the interviews and the mediation notes.
        contractor_view = engagement_state(self.app.engagement(self.eid, CONTRACTOR), CONTRACTOR)
        assert contractor_view == {
            **state, "interviews": None, "redacted": True,
            "disputes": [{**d, "mediation_notes": None} for d in state["disputes"]],
        }

    def check_rules_3_to_7(self, state: dict[str, Any]) -> None:
        """Rules 3 to 7 on one state, from the state itself (and, for what held when a grant was
        given, the shadow's record of that moment)."""
        milestones = {m["id"]: m for m in state["milestones"]}
        amount = {mid: Decimal(m["amount"]) for mid, m in milestones.items()}

        # Rule 3: what held when each grant was given; rules 3 and 4: who may still hold one.
        for g in state["grants"]:
            given = self.shadow.grants[g["id"]]
            assert given.nda_in_force, f"{g['id']} was granted without an NDA in force"
            assert given.milestone_status in GRANTABLE, (
                f"{g['id']} was granted to a {given.milestone_status} milestone")
            assert day(g["until"]) <= given.latest, (
                f"{g['id']} lasts until {g['until']}, past due + grace ({given.latest})")
            assert (g["status"] == "active") == (g["ended_at"] is None)
            if g["status"] == "active":
                assert state["status"] != "closed", f"{g['id']} is active on a closed engagement"
                assert milestones[g["milestone"]]["status"] not in FINAL, (
                    f"{g['id']} is still active for {g['milestone']}, which is "
                    f"{milestones[g['milestone']]['status']}")

        # Rule 5: an unresolved dispute freezes its milestone; a resolution settles it.
        disputes_on: dict[str, list[dict[str, Any]]] = {mid: [] for mid in milestones}
        for d in state["disputes"]:
            disputes_on[d["milestone"]].append(d)
        for mid, m in milestones.items():
            statuses = [d["status"] for d in disputes_on[mid]]
            if m["status"] == "disputed":
                assert len(statuses) == 1 and statuses[0] in UNRESOLVED, (mid, statuses)
            elif m["status"] == "settled":
                assert statuses == ["resolved"], (mid, statuses)
            else:
                assert statuses == [], f"{mid} is {m['status']} with disputes {statuses}"

        # Rule 6: a resolution pays out the escrow exactly, with a finding for each evidence item.
        for d in state["disputes"]:
            resolution = d["resolution"]
            assert (resolution is not None) == (d["status"] == "resolved")
            if resolution is not None:
                release, refund = Decimal(resolution["release"]), Decimal(resolution["refund"])
                assert release >= 0 and refund >= 0
                assert release + refund == amount[d["milestone"]], f"{d['id']}: {resolution}"
                assert set(resolution["findings"]) == {e["id"] for e in d["evidence"]}

        # Rule 7: each total is what the milestones and the resolutions account for.
        resolutions = [d["resolution"] for d in state["disputes"] if d["resolution"]]
        was_funded = [mid for mid, m in milestones.items() if m["funded_at"] is not None]
        assert money(state, "funded") == sum((amount[mid] for mid in was_funded), Decimal(0))
        assert money(state, "released") == sum(
            (amount[mid] for mid, m in milestones.items() if m["status"] == "released"),
            Decimal(0)) + sum((Decimal(r["release"]) for r in resolutions), Decimal(0))
        assert money(state, "refunded") == sum(
            (amount[mid] for mid in was_funded if milestones[mid]["status"] == "cancelled"),
            Decimal(0)) + sum((Decimal(r["refund"]) for r in resolutions), Decimal(0))

    def check_forward(self, before: dict[str, Any], now: dict[str, Any]) -> None:
        assert now["version"] >= before["version"]
        assert LIFECYCLE.index(now["status"]) >= LIFECYCLE.index(before["status"])
        if before["status"] == "closed":
            assert now["outcome"] == before["outcome"]
        after_milestones = {m["id"]: m for m in now["milestones"]}
        for m in before["milestones"]:
            new_status = after_milestones[m["id"]]["status"]
            assert new_status == m["status"] or new_status in SUCCESSORS[m["status"]], (
                f"{m['id']} went from {m['status']} to {new_status}")
        after_agreements = {a["id"]: a for a in now["agreements"]}
        for a in before["agreements"]:
            new_versions = after_agreements[a["id"]]["versions"]
            assert len(new_versions) >= len(a["versions"])
            for old, new in zip(a["versions"], new_versions):
                assert old["sha256"] == new["sha256"]
                allowed = {old["status"], *VERSION_SUCCESSORS[old["status"]]}
                assert new["status"] in allowed, (
                    f"{a['id']} v{old['version']}: {old['status']} -> {new['status']}")

    def check_money_moves(self, step: str, before: dict[str, Any], now: dict[str, Any],
                          succeeded: bool) -> None:
        """Rule 5: money leaves escrow only by release of an accepted milestone, by refund on
        cancelling, or by a dispute's resolution."""
        changed = {m["id"]: (m, n) for m in before["milestones"]
                   for n in now["milestones"] if n["id"] == m["id"] and n["status"] != m["status"]}
        deltas = {name: money(now, name) - money(before, name)
                  for name in ("funded", "released", "refunded")}
        assert all(delta >= 0 for delta in deltas.values()), f"money went backwards: {deltas}"
        if deltas["released"] or deltas["refunded"]:
            assert succeeded and step in ("release", "cancel", "resolve") and len(changed) == 1, (
                f"{step} moved money: {deltas}")
            (old, new), = changed.values()
            paid_out = deltas["released"] + deltas["refunded"]
            assert paid_out == Decimal(old["amount"]), f"{step} paid out {paid_out} of {old}"
            if step == "release":
                assert old["status"] == "accepted" and new["status"] == "released"
                assert deltas["refunded"] == 0
            elif step == "cancel":
                assert old["status"] in ESCROW and new["status"] == "cancelled"
                assert deltas["released"] == 0
            else:
                assert old["status"] == "disputed" and new["status"] == "settled"
        if deltas["funded"]:
            assert succeeded and step == "fund" and len(changed) == 1
            (old, new), = changed.values()
            assert old["status"] == "defined" and new["status"] == "funded"
            assert deltas["funded"] == Decimal(old["amount"])
        if money(now, "escrow") < money(before, "escrow"):
            assert step in ("release", "cancel", "resolve")

    def check_grants_and_disputes_move(self, step: str, before: dict[str, Any],
                                       now: dict[str, Any], succeeded: bool) -> None:
        """Grants and disputes only move forward, and only by the commands that may move them;
        a frozen milestone does not change at all until its dispute's resolution settles it."""
        grants = {g["id"]: g for g in now["grants"]}
        added = set(grants) - {g["id"] for g in before["grants"]}
        assert not added or (succeeded and step == "grant access" and len(added) == 1), added
        recertified = [g["id"] for g in before["grants"]
                       if grants[g["id"]]["recertified_at"] != g["recertified_at"]]
        assert not recertified or (succeeded and step == "recertify"
                                   and len(recertified) == 1), recertified
        for old in before["grants"]:
            new = grants[old["id"]]
            if new["status"] != old["status"]:
                assert new["status"] in GRANT_SUCCESSORS[old["status"]], (old, new)
                assert succeeded and step in (
                    ("sweep",) if new["status"] == "expired"
                    else ("revoke", "release", "cancel", "resolve", "close")), (step, old, new)
            new = {**new, "recertified_at": old["recertified_at"]}  # checked above
            if new["status"] == old["status"]:
                assert new == old, f"{old['id']} changed: {old} -> {new}"
            else:  # the grant's terms never change; only how and when it ended
                for name in ("status", "ended_at", "end_reason"):
                    new = {**new, name: old[name]}
                assert new == old, f"{old['id']} changed its terms: {old} -> {new}"

        disputes = {d["id"]: d for d in now["disputes"]}
        added = set(disputes) - {d["id"] for d in before["disputes"]}
        assert not added or (succeeded and step == "dispute" and len(added) == 1), added
        for old in before["disputes"]:
            new = disputes[old["id"]]
            assert new["status"] in {old["status"], *DISPUTE_SUCCESSORS[old["status"]]}, (
                f"{old['id']}: {old['status']} -> {new['status']}")
            assert new["evidence"][:len(old["evidence"])] == old["evidence"]
            if old["status"] == "resolved":
                assert new == old, f"resolved {old['id']} changed"

        milestones = {m["id"]: m for m in now["milestones"]}
        for old in before["milestones"]:
            if old["status"] != "disputed":
                continue
            new = milestones[old["id"]]
            if new["status"] == "disputed":
                assert new == old, f"frozen {old['id']} changed: {old} -> {new}"
            else:
                assert succeeded and step == "resolve" and new["status"] == "settled"
                assert {**new, "status": "disputed", "closed_at": None} == old

    @invariant()
    def nothing_changed_between_steps(self) -> None:
        if self.shadow is not None:
            assert self.observe() == self.prev

    # Engagement-wide rules -------------------------------------------------------------

    @rule(actor=actors("curator"), text=mostly(GOOD_TEXTS, BAD_TEXTS))
    def log_note(self, actor: Actor, text: str) -> None:
        expected = self.expect("note", actor, bad_input=text in BAD_TEXTS)

        def done(_: str | None) -> None:
            self.shadow.notes += 1

        self.attempt("note", LogNote, actor, expected, {"text": text}, done)

    @rule(actor=actors("curator"),
          which=st.sampled_from(["first", "current", "previous", "first", "next", "zero"]),
          reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def record_correction(self, actor: Actor, which: str, reason: str) -> None:
        current = self.shadow.version
        version = {"first": 1, "current": current, "previous": max(1, current - 1),
                   "next": current + 1, "zero": 0}[which]
        bad = reason in BAD_TEXTS or not 1 <= version <= current
        expected = self.expect("correct", actor, bad_input=bad)

        def done(_: str | None) -> None:
            self.shadow.corrections += 1

        self.attempt("correct", RecordCorrection, actor, expected,
                     {"version": version, "reason": reason}, done)

    @rule(actor=actors("curator"), curator=mostly(CURATORS, BAD_NAMES, 2),
          reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def reassign_curator(self, actor: Actor, curator: str, reason: str) -> None:
        expected = self.expect("reassign", actor,
                               bad_input=curator in BAD_NAMES or reason in BAD_TEXTS,
                               refused=self.shadow.closed or curator == self.shadow.curator)

        def done(_: str | None) -> None:
            self.shadow.curator = curator

        self.attempt("reassign", ReassignCurator, actor, expected,
                     {"curator": curator, "reason": reason}, done)

    @rule(actor=actors("contractor"), policy=mostly(["2025.1", "2025.2"], BAD_NAMES))
    def acknowledge_playbook(self, actor: Actor, policy: str) -> None:
        expected = self.expect("playbook", actor, bad_input=policy in BAD_NAMES,
                               refused=self.shadow.closed)

        def done(_: str | None) -> None:
            self.shadow.playbook += 1

        self.attempt("playbook", AcknowledgePlaybook, actor, expected,
                     {"policy_version": policy}, done)

    @rule(actor=actors("client"), token=amounts, reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def change_budget(self, actor: Actor, token: str, reason: str) -> None:
        budget = resolve_amount(token, self.shadow.committed())  # the edge: what is committed
        bad = amount_is_bad(budget) or reason in BAD_TEXTS
        expected = self.expect("budget", actor, bad_input=bad, refused=self.shadow.closed or (
            not bad and Decimal(budget) < self.shadow.committed()))

        def done(_: str | None) -> None:
            self.shadow.budget = Decimal(budget)

        self.attempt("budget", ChangeBudget, actor, expected,
                     {"budget": budget, "reason": reason}, done)

    @rule(actor=actors("curator"),
          outcome=mostly(["completed", "terminated"], ["not_hired", "abandoned"], 3),
          reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def close_engagement(self, actor: Actor, outcome: str, reason: str) -> None:
        open_milestones = [m for m in self.shadow.milestones.values() if m.status not in FINAL]
        expected = self.expect(
            "close", actor,
            bad_input=outcome not in ("completed", "terminated") or reason in BAD_TEXTS,
            refused=self.shadow.closed or bool(open_milestones))

        def done(_: str | None) -> None:
            self.shadow.status, self.shadow.outcome = "closed", outcome
            self.shadow.version += self.shadow.end_grants(None, "engagement closed")  # rule 4

        self.attempt("close", CloseEngagement, actor, expected,
                     {"outcome": outcome, "reason": reason}, done)

    # Interviews ------------------------------------------------------------------------

    @rule(actor=actors("curator"),
          decision=st.sampled_from(["advance", "hold", "advance", "hold", "reject", "maybe"]),
          score=st.sampled_from([4, 0, 5, 6]),
          red_flags=st.sampled_from([[], ["slow to reply"], ["\x01"]]))
    def record_interview(self, actor: Actor, decision: str, score: int,
                         red_flags: list[str]) -> None:
        bad = decision not in GOOD_DECISIONS or score > 5 or "\x01" in red_flags
        expected = self.expect("interview", actor, bad_input=bad,
                               refused=self.shadow.status != "vetting")
        number = self.shadow.interviews + 1

        def done(result: str | None) -> None:
            assert result == f"I{number}"
            shadow = self.shadow
            shadow.interviews += 1
            if decision == "advance":
                shadow.advanced = True
                shadow.move_forward()
            elif decision == "reject":  # the engagement closes as not hired, in the same save
                shadow.status, shadow.outcome = "closed", "not_hired"
                shadow.version += 1 + shadow.end_grants(None, "engagement closed")

        self.attempt("interview", RecordInterview, actor, expected, {
            "interviewer": "Ivy", "scores": {"scope_understanding": score, "qualifications": 3},
            "scenarios": {"missed_deadline": "pass"}, "red_flags": red_flags,
            "notes": "calm and precise", "decision": decision,
        }, done)

    # Agreements ------------------------------------------------------------------------

    @rule(actor=actors("curator"), kind=mostly(GOOD_KINDS, BAD_KINDS, 3),
          jurisdiction=mostly(GOOD_JURISDICTIONS, BAD_JURISDICTIONS, 3),
          sha=mostly(DOCS, BAD_DOCS, 3))
    def draft_agreement(self, actor: Actor, kind: str, jurisdiction: str, sha: str) -> None:
        bad = kind in BAD_KINDS or jurisdiction in BAD_JURISDICTIONS or sha in BAD_DOCS
        expected = self.expect("draft", actor, bad_input=bad, refused=self.shadow.closed)
        number = len(self.shadow.agreements) + 1

        def done(result: str | None) -> None:
            assert result == f"A{number}"
            self.shadow.agreements[result] = ShadowAgreement(kind, [ShadowVersion(sha)])

        self.attempt("draft", DraftAgreement, actor, expected,
                     {"kind": kind, "jurisdiction": jurisdiction, "sha256": sha}, done)

    @rule(actor=st.sampled_from(list(ACTORS.values())), pick=picks,
          party=st.sampled_from(PARTIES), signer=mostly(["Alice", "Bo"], BAD_NAMES))
    def sign(self, actor: Actor, pick: int, party: str, signer: str) -> None:
        self.sign_agreement(actor, self.agreement_id(pick), party, signer)

    def sign_agreement(self, actor: Actor, aid: str, party: str, signer: str) -> None:
        agreement = self.shadow.agreements.get(aid)
        bad = agreement is None or party not in ("client", "contractor") or signer in BAD_NAMES
        refused = self.shadow.closed or (agreement is not None and (
            agreement.latest.status != "draft" or party in agreement.latest.signed_by))
        expected = self.expect("sign", actor, bad_input=bad, party=party, refused=refused)

        def done(_: str | None) -> None:
            latest = agreement.latest
            latest.signed_by.add(party)
            if latest.signed_by == {"client", "contractor"}:
                for earlier in agreement.versions[:-1]:
                    if earlier.status != "superseded":
                        earlier.status = "superseded"
                latest.status = "signed"
                self.shadow.move_forward()

        self.attempt("sign", SignAgreement, actor, expected,
                     {"agreement_id": aid, "party": party, "signer": signer}, done)

    @rule(actor=actors("curator"), pick=picks,
          sha=mostly(DOCS, BAD_DOCS, 3), reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def amend_agreement(self, actor: Actor, pick: int, sha: str, reason: str) -> None:
        aid = self.agreement_id(pick)
        agreement = self.shadow.agreements.get(aid)
        bad = agreement is None or sha in BAD_DOCS or reason in BAD_TEXTS
        refused = self.shadow.closed or (agreement is not None and agreement.latest.sha == sha)
        expected = self.expect("amend agreement", actor, bad_input=bad, refused=refused)

        def done(result: str | None) -> None:
            for earlier in agreement.versions:
                if earlier.status == "draft":  # an unsigned draft gives way to the amendment
                    earlier.status = "superseded"
            agreement.versions.append(ShadowVersion(sha))
            assert result == f"v{len(agreement.versions)}"

        self.attempt("amend agreement", AmendAgreement, actor, expected,
                     {"agreement_id": aid, "sha256": sha, "reason": reason}, done)

    # Milestones ------------------------------------------------------------------------

    @rule(actor=actors("curator"), title=mostly(GOOD_NAMES, BAD_NAMES), token=amounts,
          due=mostly(GOOD_DATES, BAD_DATES))
    def define_milestone(self, actor: Actor, title: str, token: str, due: str) -> None:
        shadow = self.shadow
        amount = resolve_amount(token, shadow.budget - shadow.committed())  # the edge: what is left
        bad = title in BAD_NAMES or amount_is_bad(amount) or due in BAD_DATES
        refused = shadow.closed or shadow.status not in ("contracting", "active") or (
            not bad and shadow.committed() + Decimal(amount) > shadow.budget)
        expected = self.expect("define", actor, bad_input=bad, refused=refused)
        number = len(shadow.milestones) + 1

        def done(result: str | None) -> None:
            assert result == f"M{number}"
            shadow.milestones[result] = ShadowMilestone(Decimal(amount), title, day(due),
                                                        criteria="demo passes")

        self.attempt("define", DefineMilestone, actor, expected,
                     {"title": title, "amount": amount, "due": due, "criteria": "demo passes"},
                     done)

    def move(self, step: str, command_class: type[Command], actor: Actor, mid: str,
             extra: dict[str, Any], bad_extra: bool = False) -> None:
        """A milestone command of the transition table: fund, submit, accept, release..."""
        shadow = self.shadow
        milestone = shadow.milestones.get(mid)
        starts, target = MOVES[step]
        refused = shadow.closed or (milestone is not None and (
            milestone.status not in starts or (step == "fund" and not shadow.sow_in_force())))
        expected = self.expect(step, actor, bad_input=milestone is None or bad_extra,
                               refused=refused)

        def done(_: str | None) -> None:
            if step == "fund":
                milestone.funded_under_sow = shadow.sow_in_force()
                shadow.funded += milestone.amount
            elif step == "submit":
                milestone.submitted_at = self.now  # the command's own timestamp
            elif step == "release":
                shadow.released += milestone.amount
            elif step == "cancel" and milestone.status in ESCROW:
                shadow.refunded += milestone.amount
            milestone.status = target
            if target in FINAL:  # rule 4, in the same save
                shadow.version += shadow.end_grants(mid, f"milestone {mid} {target}")

        self.attempt(step, command_class, actor, expected, {"milestone_id": mid, **extra}, done)

    @rule(actor=actors("client"), pick=picks)
    def fund_milestone(self, actor: Actor, pick: int) -> None:
        self.move("fund", FundMilestone, actor, self.milestone_id(pick), {})

    @rule(actor=actors("contractor"), pick=picks, note=mostly(GOOD_TEXTS, BAD_TEXTS))
    def submit_work(self, actor: Actor, pick: int, note: str) -> None:
        self.move("submit", SubmitWork, actor, self.milestone_id(pick), {"note": note},
                  bad_extra=note in BAD_TEXTS)

    @rule(actor=actors("client"), pick=picks, reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def request_changes(self, actor: Actor, pick: int, reason: str) -> None:
        self.move("request changes", RequestChanges, actor, self.milestone_id(pick),
                  {"reason": reason}, bad_extra=reason in BAD_TEXTS)

    @rule(actor=actors("client"), pick=picks)
    def accept_milestone(self, actor: Actor, pick: int) -> None:
        self.move("accept", AcceptMilestone, actor, self.milestone_id(pick), {})

    @rule(actor=actors("client"), pick=picks)
    def release_payment(self, actor: Actor, pick: int) -> None:
        self.move("release", ReleasePayment, actor, self.milestone_id(pick), {})

    @rule(actor=actors("client"), pick=picks, reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def cancel_milestone(self, actor: Actor, pick: int, reason: str) -> None:
        self.move("cancel", CancelMilestone, actor, self.milestone_id(pick), {"reason": reason},
                  bad_extra=reason in BAD_TEXTS)

    def open_milestone_id(self, pick: int) -> str:
        """A milestone not yet released or cancelled, if there is one."""
        still_open = [mid for mid, m in self.shadow.milestones.items() if m.status not in FINAL]
        return still_open[-1 - pick % len(still_open)] if still_open else self.milestone_id(pick)

    def move_as_usual(self, step: str, mid: str) -> None:
        """A milestone command by the role it belongs to, with well-formed input."""
        command_class, role, extra = MILESTONE_COMMANDS[step]
        self.move(step, command_class, ACTORS[role], mid, extra)

    @rule(pick=st.integers(0, 6), choice=st.sampled_from(["onward", "other way"]))
    def progress_milestone(self, pick: int, choice: str) -> None:
        """Drives an open milestone along its usual path with the right actor, so that deep
        states (submitted, accepted, released) are reached often."""
        self.progress(pick, choice)

    @rule(pick=st.integers(0, 6), choice=st.sampled_from(["onward", "onward", "other way"]))
    def progress_a_milestone_onward(self, pick: int, choice: str) -> None:
        """progress_milestone again, leaning onward: a second rule so that it runs more often."""
        self.progress(pick, choice)

    def progress(self, pick: int, choice: str) -> None:
        mid = self.open_milestone_id(pick)
        milestone = self.shadow.milestones.get(mid)
        status = milestone.status if milestone else "defined"
        onward = choice == "onward"
        self.move_as_usual({
            "defined": "fund" if onward else "cancel",
            "funded": "submit" if onward else "cancel",
            "changes_requested": "submit" if onward else "cancel",
            "submitted": "accept" if onward else "request changes",
        }.get(status, "release"), mid)

    @rule(pick=st.integers(0, 6), step=st.sampled_from(list(MOVES)))
    def any_move_on_an_open_milestone(self, pick: int, step: str) -> None:
        """Any milestone command, by its own role, on an open milestone in whatever status it
        is: the transition table is tried from every status, not only along the usual path."""
        self.move_as_usual(step, self.open_milestone_id(pick))

    # Time and the sweeps (part 2) --------------------------------------------------------

    @rule(days=st.sampled_from([1, 4, 15, 40, 120]))
    def time_passes(self, days: int) -> None:
        """Days pass on the application's clock; nothing is recorded until a sweep runs."""
        before, log_head = self.observe(), self.app.recorder.max_notification_id()
        self.now += timedelta(days=days)
        self.check_nothing_recorded("time passes", before, log_head)

    @rule(actor=actors("curator"), what=mostly(["access", "milestones"], ["everything"], 3))
    def sweep(self, actor: Actor, what: str) -> None:
        self.run_sweep(actor, what)

    @rule(days=st.sampled_from([2, 15, 40, 120]), what=st.sampled_from(["access", "milestones"]))
    def wait_and_sweep(self, days: int, what: str) -> None:
        """Time passes, then the curator's sweep records what time alone has decided."""
        self.now += timedelta(days=days)
        self.run_sweep(ACTORS["curator"], what)

    def run_sweep(self, actor: Actor, what: str) -> None:
        shadow = self.shadow
        at = self.now + timedelta(seconds=1)  # the sweep's own timestamp: the clock's next tick
        due: list[str] = []
        if not shadow.closed and what == "milestones":  # deemed acceptance
            due = [mid for mid, m in shadow.milestones.items() if m.status == "submitted"
                   and m.submitted_at + timedelta(days=shadow.inspection) < at]
        elif not shadow.closed and what == "access":  # expiry after the last day
            due = [gid for gid, g in shadow.grants.items()
                   if g.status == "active" and end_of_day(g.until) < at]
        expected = self.expect("sweep", actor, bad_input=what not in ("access", "milestones"))

        def done(result: str | None) -> None:
            assert result == (" ".join(due) or None)
            for one in due:
                if what == "milestones":
                    milestone = shadow.milestones[one]
                    milestone.status, milestone.deemed = "accepted", True
                    event("part 2: deemed acceptance recorded")
                else:
                    grant = shadow.grants[one]
                    grant.status = "expired"
                    grant.end_reason = f"expired at the end of {grant.until.isoformat()}"
                    event("part 2: access expiry recorded")
            shadow.version += len(due) - 1  # one event each, in one save
            if not due:  # it recorded nothing, so there is nothing to answer the same way again
                self.successes.pop()

        self.attempt("sweep", Sweep, actor, expected, {"what": what}, done)

    # Access (part 2) ---------------------------------------------------------------------

    @rule(actor=actors("curator"), pick=picks, resource=mostly(GOOD_RESOURCES, BAD_NAMES),
          level=mostly(GOOD_LEVELS, BAD_LEVELS),
          until=st.sampled_from(["default", "edge", "edge", "edge+1", "soon", "past", "bad"]),
          reason=st.sampled_from([None, None, "Migration needs DDL rights", ""]))
    def grant_access(self, actor: Actor, pick: int, resource: str, level: str, until: str,
                     reason: str | None) -> None:
        self.grant_access_to(actor, self.milestone_id(pick), resource, level, until, reason)

    def grant_access_to(self, actor: Actor, mid: str, resource: str, level: str,
                        until_token: str | None, reason: str | None) -> None:
        shadow = self.shadow
        milestone = shadow.milestones.get(mid)
        latest = (milestone.due if milestone else date(2025, 6, 30)) + timedelta(days=shadow.grace)
        today = self.now.date()
        until = {None: None, "default": None, "edge": latest.isoformat(),
                 "edge+1": (latest + timedelta(days=1)).isoformat(),
                 "soon": (today + timedelta(days=3)).isoformat(),
                 "past": (today - timedelta(days=1)).isoformat(), "bad": "2025-02-30"}[until_token]
        bad = (milestone is None or resource in BAD_NAMES or level not in GOOD_LEVELS
               or until_token == "bad" or reason == "")
        last_day = latest if until is None or bad else day(until)
        refused = shadow.closed or (not bad and (
            not shadow.nda_in_force() or milestone.status not in GRANTABLE or last_day > latest
            or (level == "admin" and not reason)))
        expected = self.expect("grant access", actor, bad_input=bad, refused=refused)
        number = len(shadow.grants) + 1

        def done(result: str | None) -> None:
            assert result == f"G{number}"
            shadow.grants[result] = ShadowGrant(
                mid, level, last_day, nda_in_force=shadow.nda_in_force(),
                milestone_status=milestone.status, latest=latest)

        fields = {"resource": resource, "level": level, "milestone_id": mid, "until": until,
                  "reason": reason}
        self.attempt("grant access", GrantAccess, actor, expected,
                     {name: value for name, value in fields.items() if value is not None}, done)

    @rule(actor=actors("curator"), pick=picks,
          reason=st.one_of(st.none(), mostly(GOOD_TEXTS, BAD_TEXTS)))
    def recertify_grant(self, actor: Actor, pick: int, reason: str | None) -> None:
        self.recertify(actor, self.grant_id(pick), reason)

    def recertify(self, actor: Actor, gid: str, reason: str | None) -> None:
        grant = self.shadow.grants.get(gid)
        expected = self.expect("recertify", actor, bad_input=grant is None or reason in BAD_TEXTS,
                               refused=self.shadow.closed or (grant is not None
                                                              and grant.status != "active"))
        fields = {"grant_id": gid} if reason is None else {"grant_id": gid, "reason": reason}
        self.attempt("recertify", RecertifyAccess, actor, expected, fields)

    @rule(actor=actors("curator"), pick=picks, reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def revoke_grant(self, actor: Actor, pick: int, reason: str) -> None:
        self.revoke(actor, self.grant_id(pick), reason)

    def revoke(self, actor: Actor, gid: str, reason: str) -> None:
        grant = self.shadow.grants.get(gid)
        expected = self.expect("revoke", actor, bad_input=grant is None or reason in BAD_TEXTS,
                               refused=self.shadow.closed or (grant is not None
                                                              and grant.status != "active"))

        def done(_: str | None) -> None:
            grant.status, grant.end_reason = "revoked", reason

        self.attempt("revoke", RevokeAccess, actor, expected,
                     {"grant_id": gid, "reason": reason}, done)

    @rule(what=st.sampled_from(["milestones", "access"]), hours=st.sampled_from([30, 1]))
    def progress_time_again(self, what: str, hours: int) -> None:
        """progress_time again: a second rule so that it runs more often."""
        self.progress_time(what, hours)

    @rule(what=st.sampled_from(["access", "milestones"]), hours=st.sampled_from([1, 30]))
    def progress_time(self, what: str, hours: int) -> None:
        """The clock runs just past the next deadline (the last day of the first active grant to
        expire, or the end of the first inspection period), and the curator's sweep runs."""
        shadow = self.shadow
        if what == "access":
            if not any(g.status == "active" for g in shadow.grants.values()):
                self.progress_access(hours % 7, "grant soon")  # nothing to expire yet: grant
            ends = [end_of_day(g.until) for g in shadow.grants.values() if g.status == "active"]
        else:
            if not self.milestones_in(("submitted",)) and self.milestones_in(EXTENDABLE):
                self.move_as_usual("submit", self.milestones_in(EXTENDABLE)[0])  # work first
            ends = [m.submitted_at + timedelta(days=shadow.inspection)
                    for m in shadow.milestones.values() if m.status == "submitted"]
        if ends and min(ends) > self.now:
            self.now = min(ends) + timedelta(hours=hours) - timedelta(seconds=1)
        self.run_sweep(ACTORS["curator"], what)

    @rule(pick=st.integers(0, 6),
          choice=st.sampled_from(["revoke", "grant soon", "recertify", "grant"]))
    def progress_access_again(self, pick: int, choice: str) -> None:
        """progress_access again: a second rule so that it runs more often."""
        self.progress_access(pick, choice)

    @rule(pick=st.integers(0, 6),
          choice=st.sampled_from(["grant", "revoke", "recertify", "grant soon", "grant"]))
    def progress_access(self, pick: int, choice: str) -> None:
        """The curator grants access to a milestone that may have it, or recertifies or revokes
        an active grant (granting one first if there is none)."""
        shadow, curator = self.shadow, ACTORS["curator"]
        active = [gid for gid, g in shadow.grants.items() if g.status == "active"]
        if not active and not choice.startswith("grant"):
            self.progress_access(pick, "grant")
            active = [gid for gid, g in shadow.grants.items() if g.status == "active"]
        if choice.startswith("grant") or not active:
            if choice == "grant" and not shadow.nda_in_force() and shadow.status == "active":
                # No NDA in force yet: the curator drafts one and both parties sign it first.
                aid = f"A{len(shadow.agreements) + 1}"
                self.draft_agreement(curator, "nda", "US-CA", DOCS[pick % 3])
                self.sign_agreement(ACTORS["contractor"], aid, "contractor", "Bo")
                self.sign_agreement(ACTORS["client"], aid, "client", "Alice")
            if not self.milestones_in(GRANTABLE) and self.milestones_in(("defined",)):
                self.move_as_usual("fund", self.milestones_in(("defined",))[0])
            mid = self.one_of(self.milestones_in(GRANTABLE), pick, self.milestone_id(pick))
            self.grant_access_to(curator, mid, GOOD_RESOURCES[pick % 3], GOOD_LEVELS[pick % 2],
                                 "soon" if choice == "grant soon" else "default", None)
        elif choice == "recertify":
            self.recertify(curator, self.one_of(active, pick, "G1"), None)
        else:
            self.revoke(curator, self.one_of(active, pick, "G1"), "Task done")

    # Extensions (part 2) -----------------------------------------------------------------

    @rule(actor=actors("contractor"), pick=picks,
          due=st.sampled_from(["later", "later", "same", "earlier", "bad"]),
          reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def request_extension(self, actor: Actor, pick: int, due: str, reason: str) -> None:
        self.request_extension_of(actor, self.milestone_id(pick), due, reason)

    def request_extension_of(self, actor: Actor, mid: str, due_token: str, reason: str) -> None:
        milestone = self.shadow.milestones.get(mid)
        current = milestone.due if milestone else date(2025, 6, 30)
        due = {"later": current + timedelta(days=30), "same": current,
               "earlier": current - timedelta(days=1)}.get(due_token)
        bad = milestone is None or due is None or reason in BAD_TEXTS
        refused = self.shadow.closed or (not bad and (
            milestone.status not in EXTENDABLE or due <= milestone.due
            or milestone.extension_request is not None))
        expected = self.expect("request extension", actor, bad_input=bad, refused=refused)

        def done(_: str | None) -> None:
            milestone.extension_request = due

        self.attempt("request extension", RequestExtension, actor, expected,
                     {"milestone_id": mid, "due": due.isoformat() if due else "31/12/2025",
                      "reason": reason}, done)

    @rule(actor=actors("client"), pick=picks, grant=st.booleans(),
          reason=st.one_of(st.none(), mostly(GOOD_TEXTS, BAD_TEXTS)))
    def decide_extension(self, actor: Actor, pick: int, grant: bool, reason: str | None) -> None:
        self.decide_extension_of(actor, self.milestone_id(pick), grant, reason)

    def decide_extension_of(self, actor: Actor, mid: str, grant: bool,
                            reason: str | None) -> None:
        milestone = self.shadow.milestones.get(mid)
        # docs/decisions.md: refused once the milestone is closed or disputed; a grant may never
        # move the due date earlier (an amendment may have moved it past the date asked for).
        refused = self.shadow.closed or (milestone is not None and (
            milestone.extension_request is None or milestone.status in (*FINAL, "disputed")
            or (grant and milestone.extension_request <= milestone.due)))
        expected = self.expect("decide extension", actor,
                               bad_input=milestone is None or reason in BAD_TEXTS,
                               refused=refused)

        def done(_: str | None) -> None:
            if grant:
                milestone.move_due(milestone.extension_request)
                milestone.extensions += 1
            milestone.extension_request = None

        fields = {"milestone_id": mid} if reason is None else {"milestone_id": mid,
                                                               "reason": reason}
        self.attempt("grant extension" if grant else "deny extension",
                     GrantExtension if grant else DenyExtension, actor, expected, fields, done)

    # Milestone amendments (part 2) -------------------------------------------------------

    @rule(actor=actors("curator"), pick=picks,
          title=st.one_of(st.none(), mostly(GOOD_NAMES, BAD_NAMES)),
          token=st.one_of(st.none(), st.none(), amounts),
          due=st.sampled_from([None, None, "later", "earlier", "bad"]),
          criteria=st.sampled_from([None, None, "Loads 1M rows", ""]),
          reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def propose_amendment(self, actor: Actor, pick: int, title: str | None, token: str | None,
                          due: str | None, criteria: str | None, reason: str) -> None:
        self.propose_amendment_of(actor, self.milestone_id(pick), title, token, due, criteria,
                                  reason)

    def amendment_refused(self, milestone: ShadowMilestone, changes: dict[str, Any]) -> bool:
        """The table's "amend" and its limits: the amount only while defined, within budget."""
        shadow = self.shadow
        if milestone.status not in AMENDABLE:
            return True
        return "amount" in changes and (
            milestone.status != "defined"
            or shadow.committed() - milestone.amount + changes["amount"] > shadow.budget)

    def propose_amendment_of(self, actor: Actor, mid: str, title: str | None, token: str | None,
                             due_token: str | None, criteria: str | None, reason: str) -> None:
        shadow = self.shadow
        milestone = shadow.milestones.get(mid)
        current = milestone.due if milestone else date(2025, 6, 30)
        room = shadow.budget - shadow.committed() + (
            milestone.amount if milestone and milestone.status != "cancelled" else Decimal(0))
        amount = None if token is None else resolve_amount(token, room)  # the edge: all that fits
        due = {"later": (current + timedelta(days=14)).isoformat(),
               "earlier": (current - timedelta(days=10)).isoformat(),
               "bad": "31/12/2025"}.get(due_token)  # type: ignore[arg-type]
        asked = {"title": title, "amount": amount, "due": due, "criteria": criteria}
        asked = {name: value for name, value in asked.items() if value is not None}
        bad = (milestone is None or not asked or title in BAD_NAMES or due_token == "bad"
               or (amount is not None and amount_is_bad(amount)) or criteria in BAD_TEXTS
               or reason in BAD_TEXTS)
        changes = {} if bad else {
            name: Decimal(value) if name == "amount" else day(value) if name == "due" else value
            for name, value in asked.items()}
        refused = shadow.closed or (not bad and self.amendment_refused(milestone, changes))
        expected = self.expect("propose amendment", actor, bad_input=bad, refused=refused)

        def done(result: str | None) -> None:
            number = milestone.amendments + 1
            assert result == f"amendment {number}"
            milestone.amendment = ShadowAmendment(number, changes)  # replaces a waiting one

        self.attempt("propose amendment", ProposeMilestoneAmendment, actor, expected,
                     {"milestone_id": mid, **asked, "reason": reason}, done)

    @rule(actor=st.sampled_from(list(ACTORS.values())), pick=picks,
          party=st.sampled_from(PARTIES))
    def sign_amendment(self, actor: Actor, pick: int, party: str) -> None:
        self.sign_amendment_of(actor, self.milestone_id(pick), party)

    def sign_amendment_of(self, actor: Actor, mid: str, party: str) -> None:
        shadow = self.shadow
        milestone = shadow.milestones.get(mid)
        amendment = milestone.amendment if milestone else None
        completes = amendment is not None and amendment.signed == {"client", "contractor"} - {party}
        # A frozen (disputed) or finished milestone takes no signature, not even the first; the
        # second one re-checks the amendment's limits at that moment.
        refused = shadow.closed or (milestone is not None and (
            amendment is None or party in amendment.signed or milestone.status not in AMENDABLE
            or (completes and self.amendment_refused(milestone, amendment.changes))))
        expected = self.expect("sign amendment", actor, party=party, refused=refused,
                               bad_input=milestone is None or party not in ("client",
                                                                            "contractor"))

        def done(_: str | None) -> None:
            amendment.signed.add(party)
            if completes:  # in effect now, recorded in the same save
                for name, value in amendment.changes.items():
                    if name == "due":
                        milestone.move_due(value)
                    else:
                        setattr(milestone, name, value)
                milestone.amendment = None
                milestone.amendments += 1
                shadow.version += 1
                event("part 2: amendment took effect")

        self.attempt("sign amendment", SignMilestoneAmendment, actor, expected,
                     {"milestone_id": mid, "party": party}, done)

    @rule(pick=st.integers(0, 6), choice=st.sampled_from(CHANGES), bigger=st.booleans())
    def progress_change(self, pick: int, choice: str, bigger: bool) -> None:
        """The usual path of extensions and amendments, each by the role it belongs to."""
        self.change(pick, choice, bigger)

    @rule(pick=st.integers(0, 6), choice=st.sampled_from(CHANGES), bigger=st.booleans())
    def progress_a_change_again(self, pick: int, choice: str, bigger: bool) -> None:
        """progress_change again: a second rule so that it runs more often."""
        self.change(pick, choice, bigger)

    def change(self, pick: int, choice: str, bigger: bool, walk: bool = True) -> None:
        """One step of an extension or amendment; with `walk`, the steps leading to it first
        when there is nothing to act on yet."""
        shadow = self.shadow
        fallback = self.milestone_id(pick)
        if choice in ("extend, then grant", "extend, then deny"):
            self.change(pick, "extend", bigger)
            self.change(pick, choice.split()[-1], bigger, walk=False)
        elif choice == "amend, then both sign":
            self.change(pick, "amend", bigger)
            self.change(pick, "sign", bigger, walk=False)
            self.change(pick, "sign", bigger, walk=False)
        elif choice == "extend":
            waiting = [mid for mid in self.milestones_in(EXTENDABLE)
                       if shadow.milestones[mid].extension_request is None]
            self.request_extension_of(ACTORS["contractor"], self.one_of(waiting, pick, fallback),
                                      "later", "API delay")
        elif choice in ("grant", "deny"):
            asked = [mid for mid, m in shadow.milestones.items()
                     if m.extension_request and m.status not in (*FINAL, "disputed")]
            if not asked and walk:  # nothing to decide yet: ask first
                self.change(pick, f"extend, then {choice}", bigger)
                return
            self.decide_extension_of(ACTORS[("client", "curator")[pick % 2]],
                                     self.one_of(asked, pick, fallback), choice == "grant", None)
        elif choice == "amend":
            mid = self.one_of(self.milestones_in(AMENDABLE), pick, fallback)
            milestone = shadow.milestones.get(mid)
            bigger = bigger and milestone is not None and milestone.status == "defined"
            self.propose_amendment_of(ACTORS["curator"], mid, "Phase 1b" if pick % 2 else None,
                                      "25.00" if bigger else None,
                                      "later" if not pick % 2 else None, None, "Re-planned")
        else:
            waiting = [mid for mid, m in shadow.milestones.items()
                       if m.amendment and m.status in AMENDABLE]
            if not waiting and walk:  # nothing to sign yet: propose first
                self.change(pick, "amend, then both sign", bigger)
                return
            mid = self.one_of(waiting, pick, fallback)
            milestone = shadow.milestones.get(mid)
            signed = milestone.amendment.signed if milestone and milestone.amendment else set()
            party = "contractor" if "client" in signed else "client"
            self.sign_amendment_of(ACTORS["admin" if pick == 6 else party], mid, party)

    # Disputes (part 2) -------------------------------------------------------------------

    @rule(actor=st.sampled_from([ACTORS["client"], ACTORS["contractor"]] * 3 + [
              ACTORS["admin"], ACTORS["curator"], ACTORS["auditor"]]),
          pick=picks, party=st.sampled_from(PARTIES), reason=mostly(GOOD_TEXTS, BAD_TEXTS),
          claim=st.one_of(st.none(), amounts))
    def open_dispute(self, actor: Actor, pick: int, party: str, reason: str,
                     claim: str | None) -> None:
        self.open_dispute_on(actor, self.milestone_id(pick), party, reason, claim)

    def open_dispute_on(self, actor: Actor, mid: str, party: str, reason: str,
                        token: str | None) -> None:
        shadow = self.shadow
        milestone = shadow.milestones.get(mid)
        claim = None if token is None else resolve_amount(  # the edge: the escrowed amount
            token, milestone.amount if milestone else Decimal("100.00"))
        bad = (milestone is None or party not in ("client", "contractor") or reason in BAD_TEXTS
               or (claim is not None and amount_is_bad(claim)))
        refused = shadow.closed or (not bad and (
            milestone.status not in DISPUTABLE
            or (claim is not None and Decimal(claim) > milestone.amount)))  # docs/decisions.md
        expected = self.expect("dispute", actor, bad_input=bad, party=party, refused=refused)
        number = len(shadow.disputes) + 1

        def done(result: str | None) -> None:
            assert result == f"D{number}"
            shadow.disputes[result] = ShadowDispute(
                mid, party, None if claim is None else Decimal(claim), shadow.version)
            milestone.status = "disputed"

        fields = {"milestone_id": mid, "party": party, "reason": reason}
        self.attempt("dispute", OpenDispute, actor, expected,
                     fields if claim is None else {**fields, "claim": claim}, done)

    @rule(actor=st.sampled_from([ACTORS["client"], ACTORS["contractor"]] * 3 + [
              ACTORS["admin"], ACTORS["curator"], ACTORS["auditor"]]),
          pick=picks, party=st.sampled_from(PARTIES), description=mostly(GOOD_TEXTS, BAD_TEXTS),
          sha=st.sampled_from([None, *DOCS, *BAD_DOCS]))
    def submit_evidence(self, actor: Actor, pick: int, party: str, description: str,
                        sha: str | None) -> None:
        self.submit_evidence_to(actor, self.dispute_id(pick), party, description, sha)

    def submit_evidence_to(self, actor: Actor, did: str, party: str, description: str,
                           sha: str | None) -> None:
        shadow = self.shadow
        dispute = shadow.disputes.get(did)
        bad = (dispute is None or party not in ("client", "contractor")
               or description in BAD_TEXTS or sha in BAD_DOCS)
        refused = shadow.closed or (dispute is not None and dispute.status not in UNRESOLVED)
        expected = self.expect("evidence", actor, bad_input=bad, party=party, refused=refused)
        number = shadow.evidence_count() + 1  # numbered across the engagement

        def done(result: str | None) -> None:
            assert result == f"E{number}"
            dispute.evidence.append((result, party))

        fields = {"dispute_id": did, "party": party, "description": description}
        self.attempt("evidence", SubmitEvidence, actor, expected,
                     fields if sha is None else {**fields, "sha256": sha}, done)

    @rule(actor=actors("curator"), pick=picks, text=mostly(GOOD_TEXTS, BAD_TEXTS))
    def note_mediation(self, actor: Actor, pick: int, text: str) -> None:
        self.mediate(actor, self.dispute_id(pick), text)

    def mediate(self, actor: Actor, did: str, text: str) -> None:
        dispute = self.shadow.disputes.get(did)
        expected = self.expect("mediate", actor, bad_input=dispute is None or text in BAD_TEXTS,
                               refused=self.shadow.closed or (
                                   dispute is not None and dispute.status not in UNRESOLVED))

        def done(_: str | None) -> None:
            dispute.notes += 1

        self.attempt("mediate", NoteMediation, actor, expected,
                     {"dispute_id": did, "text": text}, done)

    @rule(actor=actors("curator"), pick=picks, split=st.sampled_from(SPLITS),
          share=st.integers(0, 100), findings=st.sampled_from(FINDINGS),
          reason=mostly(GOOD_TEXTS, BAD_TEXTS))
    def resolve_dispute(self, actor: Actor, pick: int, split: str, share: int, findings: str,
                        reason: str) -> None:
        self.resolve(actor, self.dispute_id(pick), split, share, findings, reason)

    def resolve(self, actor: Actor, did: str, split: str, share: int, findings_kind: str,
                reason: str) -> None:
        shadow = self.shadow
        dispute = shadow.disputes.get(did)
        escrowed = shadow.milestones[dispute.milestone].amount if dispute else Decimal("100.00")
        part = (escrowed * share / 100).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        cent = Decimal("0.01")
        release, refund = {
            "exact": (cents(part), cents(escrowed - part)),
            "all released": (cents(escrowed), "0"),
            "all refunded": ("0", cents(escrowed)),
            "a cent short": (cents(part), cents(escrowed - part - cent)),
            "a cent over": (cents(part), cents(escrowed - part + cent)),
            "negative": ("-1.00", cents(escrowed + 1)),
            "three places": (cents(part) + "1", cents(escrowed - part)),
            "not a number": ("NaN", cents(escrowed)),
        }[split]
        evidence = [e for e, _ in dispute.evidence] if dispute else []
        others = [e for d in shadow.disputes.values() if d is not dispute for e, _ in d.evidence]
        findings = {e: f"Finding on {e}" for e in evidence}
        if findings_kind == "one missing" and evidence:
            del findings[evidence[-1]]
        elif findings_kind == "unknown evidence":
            findings["E99"] = "No such item"
        elif findings_kind == "another dispute's" and others:
            findings[others[0]] = "Belongs elsewhere"
        elif findings_kind == "empty text" and evidence:
            findings[evidence[0]] = ""
        elif findings_kind == "malformed id":
            findings["X1"] = "Not an evidence id"
        # Findings naming evidence the dispute does not have are input (docs/decisions.md).
        bad = (dispute is None or share_is_bad(release) or share_is_bad(refund)
               or reason in BAD_TEXTS or bool(set(findings) - set(evidence))
               or "" in findings.values())
        refused = shadow.closed or (not bad and (
            dispute.status not in UNRESOLVED
            or Decimal(release) + Decimal(refund) != escrowed  # rule 6
            or bool(set(evidence) - set(findings))))
        expected = self.expect("resolve", actor, bad_input=bad, refused=refused)

        def done(_: str | None) -> None:
            if dispute.status == "escalated":
                event("part 2: an escalated dispute resolved")
            dispute.status = "resolved"
            dispute.release, dispute.refund = Decimal(release), Decimal(refund)
            dispute.findings = findings
            shadow.milestones[dispute.milestone].status = "settled"
            shadow.released += dispute.release
            shadow.refunded += dispute.refund
            if evidence:
                event("part 2: a dispute with evidence resolved")
            shadow.version += shadow.end_grants(dispute.milestone,  # rule 4, in the same save
                                                f"milestone {dispute.milestone} settled")

        self.attempt("resolve", ResolveDispute, actor, expected,
                     {"dispute_id": did, "release": release, "refund": refund, "reason": reason,
                      "findings": findings}, done)

    @rule(actor=actors("curator"), pick=picks, to=mostly(["Arbitration Ltd", "Court"], BAD_NAMES),
          folder=st.sampled_from(["ok"] * 5 + ["missing"]))
    def escalate_dispute(self, actor: Actor, pick: int, to: str, folder: str) -> None:
        self.escalate(actor, self.dispute_id(pick), to, folder)

    def escalate(self, actor: Actor, did: str, to: str, folder: str) -> None:
        dispute = self.shadow.disputes.get(did)
        packet = (self.packets / ("missing" if folder == "missing" else ".")
                  / f"packet-{next(self.packet_numbers)}.zip")
        refused = self.shadow.closed or (dispute is not None and dispute.status != "open")
        expected = self.expect("escalate", actor,
                               bad_input=dispute is None or to in BAD_NAMES or folder == "missing",
                               refused=refused)

        def done(_: str | None) -> None:
            dispute.status, dispute.escalated_to = "escalated", to

        self.attempt("escalate", EscalateDispute, actor, expected,
                     {"dispute_id": did, "to": to, "packet": str(packet)}, done)
        assert not list(self.packets.rglob("*.part")), "a half-written packet was left behind"
        if expected is not None:
            assert not packet.exists(), "a refused escalation wrote its packet"
            return
        [escalation] = [d["escalation"] for d in self.prev["disputes"] if d["id"] == did]
        assert hashlib.sha256(packet.read_bytes()).hexdigest() == escalation["packet_sha256"]
        with zipfile.ZipFile(packet) as archive:
            assert sorted(archive.namelist()) == ["packet.json", "summary.pdf"]
            content = json.loads(archive.read("packet.json"))
            assert archive.read("summary.pdf").startswith(b"%PDF")
        assert (content["dispute"]["id"], content["milestone"]["id"]) == (did, dispute.milestone)
        assert [e["id"] for e in content["evidence"]] == [e for e, _ in dispute.evidence]

    @rule(pick=st.integers(0, 6), choice=st.sampled_from(DISPUTE_STEPS),
          share=st.integers(0, 100))
    def progress_dispute(self, pick: int, choice: str, share: int) -> None:
        """A party opens a dispute on money in escrow, or an unresolved one moves on: evidence
        from either party, a mediation note, an escalation, a resolution that adds up."""
        self.dispute_step(pick, choice, share)

    @rule(pick=st.integers(0, 6), choice=st.sampled_from(DISPUTE_STEPS),
          share=st.integers(0, 100))
    def progress_a_dispute_again(self, pick: int, choice: str, share: int) -> None:
        """progress_dispute again: a second rule so that it runs more often."""
        self.dispute_step(pick, choice, share)

    def dispute_step(self, pick: int, choice: str, share: int) -> None:
        shadow = self.shadow
        curator = ACTORS["curator"]
        unresolved = [did for did, d in shadow.disputes.items() if d.status in UNRESOLVED]
        if choice == "open, evidence, resolve" or (choice != "open" and not unresolved):
            self.dispute_step(pick, "open", share)  # then go on with this dispute
        unresolved = [did for did, d in shadow.disputes.items() if d.status in UNRESOLVED]
        still_open = [did for did in unresolved if shadow.disputes[did].status == "open"]
        if choice == "open, evidence, resolve" and unresolved:  # the newest: just opened
            party = ("contractor", "client")[pick % 2]  # the other party answers
            self.submit_evidence_to(ACTORS[party], unresolved[-1], party, "Delivery log", DOCS[0])
            self.resolve(curator, unresolved[-1], "exact", share, "all", "Split as agreed")
            return
        if choice == "escalate, then resolve" and still_open:
            did = self.one_of(still_open, pick, "D1")
            self.escalate(curator, did, "Arbitration Ltd", "ok")
            self.resolve(curator, did, "exact", share, "all", "The arbitrator's award")
            return
        party = ("client", "contractor")[pick % 2]
        if choice == "open":
            mid = self.one_of(self.milestones_in(DISPUTABLE), pick, self.milestone_id(pick))
            self.open_dispute_on(ACTORS[party], mid, party, "Not to spec",
                                 "EDGE-0.01" if pick % 3 == 0 else None)
            return
        if not unresolved:  # none could be opened
            return
        did = self.one_of(unresolved, pick, "D1")
        if choice.startswith("escalate") and still_open:
            self.escalate(curator, self.one_of(still_open, pick, did), "Arbitration Ltd", "ok")
        elif choice == "evidence":
            self.submit_evidence_to(ACTORS[party], did, party, "Delivery log",
                                    DOCS[pick % 3] if pick % 2 else None)
        elif choice == "note":
            self.mediate(curator, did, "Called both parties")
        else:
            self.resolve(curator, did, "exact", share, "all", "Split as agreed")

    # Rule 12: command ids, and the library's snapshots -----------------------------------

    def check_nothing_recorded(self, step: str, before: dict[str, Any],
                               log_head: int | None) -> None:
        assert self.app.recorder.max_notification_id() == log_head, f"{step} recorded events"
        self.after_step(step, before, succeeded=False)
        assert self.prev == before, f"{step} changed the engagement"

    @precondition(lambda self: bool(self.successes))
    @rule(pick=st.integers(0, 10_000))
    def resend_a_command(self, pick: int) -> None:
        """The same command id sent again is answered the same way and recorded once."""
        sent = self.successes[pick % len(self.successes)]
        before, log_head = self.observe(), self.app.recorder.max_notification_id()
        answer = sent.result
        assert self.app.execute(sent.command, sent.actor) == answer  # type: ignore[arg-type]
        self.check_nothing_recorded("resend", before, log_head)

    @precondition(lambda self: bool(self.successes))
    @rule(pick=st.integers(0, 10_000), actor=actors("curator"))
    def reuse_a_command_id(self, pick: int, actor: Actor) -> None:
        """The same command id with a different command is refused as invalid input."""
        sent = self.successes[pick % len(self.successes)]
        before, log_head = self.observe(), self.app.recorder.max_notification_id()
        other = LogNote.build(engagement_id=self.eid, command_id=sent.command.command_id,
                              text=f"a different command {pick}")
        try:
            self.app.execute(other, actor)
        except InvalidInput:
            pass
        else:
            raise AssertionError(f"command id {sent.command.command_id} reused for another "
                                 "command was accepted")
        self.check_nothing_recorded("reuse id", before, log_head)

    @rule(same=st.booleans())
    def reopen(self, same: bool) -> None:
        """Opening again with the opening command's id makes no second engagement."""
        before, log_head = self.observe(), self.app.recorder.max_notification_id()
        fields = self.open_fields if same else {**self.open_fields, "title": "Another title"}
        command = OpenEngagement.build(command_id=self.open_id, **fields)
        if same:
            assert self.app.open_engagement(command, ACTORS["curator"]) == self.eid
        else:
            try:
                self.app.open_engagement(command, ACTORS["curator"])
            except InvalidInput:
                pass
            else:
                raise AssertionError("the opening command id was reused for another engagement")
        self.check_nothing_recorded("reopen", before, log_head)

    @precondition(lambda self: self.shadow is not None
                  and self.shadow.version not in self.snapshotted)
    @rule()
    def take_snapshot(self) -> None:
        """The library snapshots every 200 events; replays must not notice the snapshot."""
        before, log_head = self.observe(), self.app.recorder.max_notification_id()
        self.app.take_snapshot(self.eid)  # one snapshot per version: the library refuses two
        self.snapshotted.add(self.shadow.version)
        self.check_nothing_recorded("snapshot", before, log_head)

    # The end: every state seen is what a replay gives -------------------------------------

    def teardown(self) -> None:
        try:
            if self.shadow is None:
                return
            current = self.observe()["version"]
            for version, state in sorted(self.seen.items()):
                replayed = self.app.engagement(self.eid, AUDITOR, version=version)
                assert engagement_state(replayed, AUDITOR) == state, f"replay of version {version}"
                moment = datetime.fromisoformat(state["updated_at"].replace("Z", "+00:00"))
                for at in (state["updated_at"], moment + timedelta(milliseconds=500)):
                    then = self.app.engagement(self.eid, AUDITOR, at=at)
                    assert engagement_state(then, AUDITOR) == state, f"replay at {at}"
            for version in (0, current + 1):
                try:
                    self.app.engagement(self.eid, AUDITOR, version=version)
                except InvalidInput:
                    pass
                else:
                    raise AssertionError(f"version {version} of {current} was not refused")
        finally:
            self.app.close()
            shutil.rmtree(self.packets, ignore_errors=True)


TestEngagementMachine = EngagementMachine.TestCase
TestEngagementMachine.settings = settings(
    max_examples=100, stateful_step_count=45, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

