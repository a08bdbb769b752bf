"""Stateful property test: random command sequences against one engagement.

A hypothesis `RuleBasedStateMachine` opens ONE engagement in an in-memory ledger and drives it
through the application service with random commands, random milestone and agreement ids
(existing or not), random amounts (sometimes beyond the budget, sometimes malformed) and random
actors (sometimes of the wrong role). Next to the ledger it keeps a shadow model: its own,
deliberately simple reading of DESIGN sections 1-3, written without the product's code.

Each step predicts its outcome from the shadow model (done, or refused as InvalidInput,
NotPermitted or RuleViolation, checked in that order as rule 9 says) and checks the ledger
answered exactly that. A refusal must record nothing. After every step:

- the engagement (from the application's cache) equals the same version replayed from the store,
  and the contractor's view is the auditor's with the interviews redacted;
- it equals the shadow model: lifecycle status, outcome, budget, curator, each milestone's status
  and amount, each agreement version's status and signatures, the money totals, the version;
- rule 2: milestones not cancelled never total more than the budget, and every milestone that
  was ever funded was funded while a SOW signed by both parties was in force;
- rule 5: released money only grows by a release of an accepted milestone (by its amount),
  refunded money only by cancelling a milestone holding escrow (by its amount), funded money
  only by funding;
- rule 7: funded == released + refunded + escrow, and escrow == the amounts of the milestones
  in funded/submitted/changes_requested/accepted/disputed;
- statuses only move forward (lifecycle, milestone transition table, agreement versions).

Every state the test saw is kept by version; at teardown, replaying to each of those versions
(`--version N`) and to each version's timestamp (`--at T`) must give exactly that state again.

Adding a command (part 2: access, disputes, extensions, milestone amendments): give the shadow
model what it needs, add a `@rule` that predicts the outcome with `self.expect(...)` and calls
`self.attempt(...)` with an `on_success` that updates the shadow, and extend `SUCCESSORS`/checks
where the new command moves money or statuses.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
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
    DraftAgreement,
    FundMilestone,
    LogNote,
    OpenEngagement,
    ReassignCurator,
    RecordCorrection,
    RecordInterview,
    ReleasePayment,
    RequestChanges,
    SignAgreement,
    SubmitWork,
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
#: Where an example starts: the engagement is walked there first, so deep states come often.
STAGES = ["vetting", "contracting", "contracting with milestones", "active with milestones",
          "delivering", "vetting with a signed SOW"]


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
class ShadowMilestone:
    amount: Decimal
    status: str = "defined"
    #: Set when funded: was a SOW signed by both parties in force at that moment?
    funded_under_sow: bool | None = None


@dataclass
class Shadow:
    budget: Decimal
    curator: str
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
    funded: Decimal = Decimal(0)
    released: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    def sow_in_force(self) -> bool:
        return any(a.kind == "sow" and a.in_force_version for a in self.agreements.values())

    def committed(self) -> Decimal:
        return sum((m.amount for m in self.milestones.values() if m.status != "cancelled"),
                   Decimal(0))

    def escrow(self) -> Decimal:
        return sum((m.amount for m in self.milestones.values() if m.status in ESCROW), Decimal(0))

    def move_forward(self) -> None:
        if self.status == "vetting" and self.advanced:
            self.status = "contracting"
        if self.status == "contracting" and self.sow_in_force():
            self.status = "active"


@dataclass
class Sent:
    command: Command
    actor: Actor
    result: str | None


def money(state: dict[str, Any], name: str) -> Decimal:
    return Decimal(state["money"][name])


def kind_of(error: type[BaseException] | None) -> str:
    return "success" if error is None else error.__name__


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

    def tick(self) -> datetime:
        """A clock one second further at each call: every command has its own timestamp."""
        self.now += timedelta(seconds=1)
        return self.now

    # Opening, and optionally fast-forwarding so that deep states are reached often ----------

    @initialize(
        budget=st.decimals(min_value=Decimal("100"), max_value=Decimal("3000"), places=2),
        stage=st.sampled_from(STAGES[:3] + STAGES[2:5] * 3 + STAGES[5:]),
    )
    def open_engagement(self, budget: Decimal, stage: str) -> None:
        """Opens the engagement, then walks it to `stage` through the same checked steps."""
        self.open_id = "open-1"
        self.open_fields = dict(title="Data platform", client="Acme", contractor="Bo Ltd",
                                curator="cara", budget=f"{budget:f}", currency="EUR")
        command = OpenEngagement.build(command_id=self.open_id, **self.open_fields)
        self.eid = self.app.open_engagement(command, ACTORS["curator"])
        self.shadow = Shadow(budget=budget, curator="cara")
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
        if steps >= 3:  # active, M1 funded
            self.sign_agreement(contractor, "A1", "contractor", "Bo")
            assert self.shadow.status == "active"
            self.move("fund", FundMilestone, client, "M1", {})
        if steps >= 4:  # delivering: M1 changes requested, M2 accepted, M3 submitted
            self.define_milestone(curator, "Rollout", quarter, "2025-12-31")
            for step, mid in [("fund", "M2"), ("fund", "M3"), ("submit", "M1"),
                              ("request changes", "M1"), ("submit", "M2"), ("accept", "M2"),
                              ("submit", "M3")]:
                self.move_as_usual(step, mid)

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
        before = self.observe()
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
            assert self.observe() == before, "a refusal changed the engagement"
        else:
            self.successes.append(Sent(command, actor, result))
            self.shadow.version += 1
            if on_success is not None:
                on_success(result)
        self.after_step(step, before, succeeded=error is None)
        return result

    def after_step(self, step: str, before: dict[str, Any], succeeded: bool) -> None:
        now = self.observe()
        stored = self.app.repository.get(self.eid, version=now["version"])
        assert engagement_state(stored, AUDITOR) == now, "cached engagement differs from the store"
        if now["version"] in self.seen:
            assert self.seen[now["version"]] == now, f"version {now['version']} changed"
        else:
            self.seen[now["version"]] = now
        self.check_state(now)
        self.check_forward(before, now)
        self.check_money_moves(step, before, now, succeeded)
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
        assert {m["id"]: (m["status"], Decimal(m["amount"])) for m in state["milestones"]} == {
            mid: (m.status, m.amount) for mid, m in shadow.milestones.items()
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

        # A contractor reads the same, without the interviews.
        contractor_view = engagement_state(self.app.engagement(self.eid, CONTRACTOR), CONTRACTOR)
        assert contractor_view == {**state, "interviews": None, "redacted": True}

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
        """Rule 5: money leaves escrow only by release of an accepted milestone or by refund."""
        changed = {m["id"]: (m, n) for m in before["milestones"]
                   for n in now["milestones"] if n["id"] == m["id"] and n["status"] != m["status"]}
        deltas = {name: money(now, name) - money(before, name)
                  for name in ("funded", "released", "refunded")}
        assert all(delta >= 0 for delta in deltas.values()), f"money went backwards: {deltas}"
        if deltas["released"]:
            assert succeeded and step == "release" and len(changed) == 1
            (old, new), = changed.values()
            assert old["status"] == "accepted" and new["status"] == "released"
            assert deltas["released"] == Decimal(old["amount"])
        if deltas["refunded"]:
            assert succeeded and step == "cancel" and len(changed) == 1
            (old, new), = changed.values()
            assert old["status"] in ESCROW and new["status"] == "cancelled"
            assert deltas["refunded"] == Decimal(old["amount"])
        if deltas["funded"]:
            assert succeeded and step == "fund" and len(changed) == 1
            (old, new), = changed.values()
            assert old["status"] == "defined" and new["status"] == "funded"
            assert deltas["funded"] == Decimal(old["amount"])
        if money(now, "escrow") < money(before, "escrow"):
            assert step in ("release", "cancel")

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
                shadow.version += 1

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
            shadow.milestones[result] = ShadowMilestone(Decimal(amount))

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
            elif step == "release":
                shadow.released += milestone.amount
            elif step == "cancel" and milestone.status in ESCROW:
                shadow.refunded += milestone.amount
            milestone.status = target

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
        assert self.app.execute(sent.command, sent.actor) == sent.result  # type: ignore[arg-type]
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


TestEngagementMachine = EngagementMachine.TestCase
TestEngagementMachine.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
