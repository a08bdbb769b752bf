"""`ledger demo`: realistic engagements at every stage, built in memory and saved in batches.

Every engagement goes through the same aggregate methods as a real command (so every rule
holds), on a clock that walks forward from a start some months back. Same seed, same data.
"""

from __future__ import annotations

import hashlib
import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.agreements import AgreementKind
from ledger.engagement import Engagement, Outcome
from ledger.errors import RuleViolation
from ledger.events import Stamp
from ledger.interviews import Decision
from ledger.roles import Actor, Party, Role, os_user

BATCH = 100
TITLES = ["Data pipeline", "Mobile app", "Brand refresh", "Payroll migration", "Security audit",
          "Search tuning", "Onboarding flow", "Warehouse API", "Design system", "ML forecasting",
          "Support chatbot", "Billing rewrite", "Marketing site", "Analytics dashboard"]
CLIENTS = ["Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Retail",
           "Hooli", "Vandelay Imports"]
CONTRACTORS = ["Bo Chen", "Priya Nair", "Lukas Weber", "Ana Souza", "Kofi Mensah", "Yuki Sato",
               "Pixel Forge Ltd", "Northwind Devs", "Olga Ivanova", "Diego Ramos", "Maya Cohen",
               "Blue Harbor Studio"]
CURATORS = ["cara", "dev", "ines", "tomas"]
JURISDICTIONS = ["US-CA", "US-NY", "DE", "GB", "FR", "NL", "IN", "BR", "PL", "CA-ON"]
CURRENCIES = ["EUR", "USD", "GBP", "JPY"]
CRITERIA = ["scope_understanding", "timeline_realism", "qualifications", "adaptability",
            "working_process", "similar_clients"]
RED_FLAGS = ["Vague about previous clients", "Timeline looks optimistic", "No written process",
             "Asked for full database access up front"]


class DemoClock:
    """Walks forward in realistic steps; never past now."""

    def __init__(self, start: datetime, rng: random.Random, now: datetime) -> None:
        self.moment = start
        self.rng = rng
        self.now = now

    def step(self, max_hours: float = 72) -> datetime:
        self.moment = min(self.moment + timedelta(hours=self.rng.uniform(0.5, max_hours)), self.now)
        return self.moment


def run_demo(app: Any, count: int, seed: int, force: bool = False,
             now: datetime | None = None, progress: bool = True) -> int:
    """Builds `count` engagements and saves them; returns the number of events written."""
    existing = app.count_events()
    if existing and not force:
        raise RuleViolation(f"the database already holds {existing} events; "
                            "pass --force to add demo engagements anyway")
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    prefix = f"demo-{seed}-{existing}"
    written = 0
    batch: list[Engagement] = []
    show = progress and sys.stderr.isatty()
    for index in range(count):
        batch.append(build_engagement(rng, f"{prefix}-{index}", now, app.contractor_subject))
        if len(batch) == BATCH or index == count - 1:
            written += sum(len(e.pending_events) for e in batch)
            app.save_many(batch)
            batch = []
            if show:
                print(f"\rdemo: {index + 1}/{count} engagements, {written} events",
                      end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)
    print(f"demo: {count} engagements, {written} events written", file=sys.stderr)
    return written


def build_engagement(rng: random.Random, key: str, now: datetime,
                     subject_for: Any = lambda name: None) -> Engagement:
    demo = Actor(Role.ADMIN, "demo", os_user())
    clock = DemoClock(now - timedelta(days=rng.uniform(5, 270)), rng, now)
    step = 0

    def by(max_hours: float = 72) -> Stamp:
        nonlocal step
        step += 1
        command_id = f"{key}-{step}"
        return Stamp(demo, command_id, hashlib.sha256(command_id.encode()).hexdigest()[:32],
                     clock.step(max_hours))

    currency = rng.choice(CURRENCIES)
    scale = 100 if currency == "JPY" else 1
    budget = Decimal(rng.randrange(20, 200) * 500 * scale)
    curator = rng.choice(CURATORS)
    opened = by(0.1)  # the same draws in the same order: the same seed, the same demo
    title, client, contractor = rng.choice(TITLES), rng.choice(CLIENTS), rng.choice(CONTRACTORS)
    engagement = Engagement.open(opened, title, client, contractor, curator, budget, currency,
                                 rng.choice([7, 14, 14, 21]), rng.choice([3, 7, 7, 14]),
                                 subject=subject_for(contractor))
    stage = rng.choices(["vetting", "not_hired", "contracting", "active", "completed"],
                        weights=[10, 8, 12, 45, 25])[0]
    interviews = 1 + (rng.random() < 0.3)
    for number in range(interviews):
        last = number == interviews - 1
        decision = Decision.HOLD
        if last and stage == "not_hired":
            decision = Decision.REJECT
        elif last and stage != "vetting":
            decision = Decision.ADVANCE
        flags = rng.sample(RED_FLAGS, k=rng.choice([0, 0, 0, 1, 2]))
        engagement.record_interview(
            by(), curator, {c: rng.randint(1, 5) for c in rng.sample(CRITERIA, k=4)},
            {"missed_deadline": rng.choice(["pass", "pass", "fail"])}, flags,
            "Discussed scope, timeline and qualifications.", decision,
        )
    if stage in ("vetting", "not_hired"):
        return engagement
    jurisdiction = rng.choice(JURISDICTIONS)
    for kind in (AgreementKind.NDA, AgreementKind.SOW):
        agreement_id = engagement.draft_agreement(by(), kind, jurisdiction, _fake_sha(rng))
        if rng.random() < 0.7:
            engagement.review_agreement(by(), agreement_id, "L. Ortiz (counsel)")
        if stage == "contracting" and kind is AgreementKind.SOW:
            break
        engagement.sign_agreement(by(), agreement_id, Party.CLIENT, "Ann Lee")
        engagement.sign_agreement(by(), agreement_id, Party.CONTRACTOR, engagement.contractor)
    if stage == "contracting":
        return engagement
    engagement.acknowledge_playbook(by(), "2026.1")
    engagement.record_disclosure(by(), "Architecture overview and staging credentials policy",
                                 "A1", _fake_sha(rng))
    _run_milestones(engagement, rng, by, budget, scale, finish=stage == "completed")
    if stage == "completed":
        engagement.close(by(), Outcome.COMPLETED, "All milestones delivered")
    else:
        engagement.sweep(by(1), now)  # what time alone has decided by now
    return engagement


def _run_milestones(engagement: Engagement, rng: random.Random, by: Any, budget: Decimal,
                    scale: int, finish: bool) -> None:
    count = rng.randint(2, 5)
    share = budget / count
    for _ in range(count):
        amount = Decimal(int(share * Decimal(rng.uniform(0.5, 0.95)) / scale) * scale)
        due = (engagement.modified_on + timedelta(days=rng.randint(14, 60))).date()
        milestone_id = engagement.define_milestone(by(), f"Phase: {rng.choice(TITLES).lower()}",
                                                   "Delivered, reviewed and documented", amount, due)
        target = "released" if finish else rng.choice(
            ["defined", "funded", "submitted", "changes_requested", "accepted", "released",
             "released", "cancelled", "disputed"])
        if target == "defined" and rng.random() < 0.5:
            _amend(engagement, milestone_id, rng, by, scale)
        _advance_milestone(engagement, milestone_id, target, rng, by)
    if rng.random() < 0.3:
        engagement.log_note(by(), "Curator relayed the client's questions to the contractor.")


def _advance_milestone(engagement: Engagement, milestone_id: str, target: str,
                       rng: random.Random, by: Any) -> None:
    if target == "defined":
        return
    if target == "cancelled":
        if rng.random() < 0.5:
            engagement.fund_milestone(by(), milestone_id)
        engagement.cancel_milestone(by(), milestone_id, "Descoped after review")
        return
    engagement.fund_milestone(by(), milestone_id)
    _grant_access(engagement, milestone_id, rng, by)
    if rng.random() < 0.2:
        _extend(engagement, milestone_id, rng, by)
    if target == "funded":
        return
    engagement.submit_work(by(240), milestone_id, "Delivered; see the linked pull request.")
    if target == "disputed":
        _dispute(engagement, milestone_id, rng, by)
        return
    if target == "submitted":
        return
    if rng.random() < 0.35 or target == "changes_requested":
        engagement.request_changes(by(), milestone_id, "Missing tests for the edge cases.")
        if target == "changes_requested":
            return
        engagement.submit_work(by(120), milestone_id, "Tests added.")
    engagement.accept_milestone(by(), milestone_id)
    if target == "accepted":
        return
    engagement.release_payment(by(), milestone_id)


def _grant_access(engagement: Engagement, milestone_id: str, rng: random.Random, by: Any) -> None:
    from ledger.access import Level

    resource = rng.choice(["staging database", "GitHub repo", "Figma project", "Jira board",
                           "analytics warehouse"])
    level = rng.choice([Level.READ, Level.READ, Level.WRITE])
    latest = engagement.latest_grant_expiry(milestone_id)
    until = latest - timedelta(days=rng.randint(0, 5))
    grant_id = engagement.grant_access(by(), resource, level, milestone_id, until, None)
    if rng.random() < 0.3:
        engagement.recertify_access(by(), grant_id, "Still needed for the current stage")
    elif rng.random() < 0.1:
        engagement.revoke_access(by(), grant_id, "No longer needed")


def _extend(engagement: Engagement, milestone_id: str, rng: random.Random, by: Any) -> None:
    due = engagement.milestones[milestone_id].due + timedelta(days=rng.randint(5, 20))
    engagement.request_extension(by(), milestone_id, due, "Waiting on the client's API keys")
    engagement.decide_extension(by(), milestone_id, rng.random() < 0.7, None)


def _amend(engagement: Engagement, milestone_id: str, rng: random.Random, by: Any, scale: int) -> None:
    milestone = engagement.milestones[milestone_id]
    changes: dict[str, Any] = {"due": milestone.due + timedelta(days=rng.randint(3, 15))}
    if rng.random() < 0.5:
        changes["amount"] = max(Decimal(scale), milestone.amount - Decimal(100 * scale))
    engagement.propose_amendment(by(), milestone_id, changes, "Re-planned with both parties")
    engagement.sign_amendment(by(), milestone_id, "client")
    if rng.random() < 0.8:
        engagement.sign_amendment(by(), milestone_id, "contractor")


def _dispute(engagement: Engagement, milestone_id: str, rng: random.Random, by: Any) -> None:
    amount = engagement.milestones[milestone_id].amount
    dispute_id = engagement.open_dispute(by(), milestone_id, Party.CLIENT,
                                         "Delivery does not meet the acceptance criteria", None)
    engagement.submit_evidence(by(), dispute_id, Party.CLIENT, "Test report showing failures",
                               _fake_sha(rng))
    engagement.submit_evidence(by(), dispute_id, Party.CONTRACTOR, "Signed-off specification",
                               _fake_sha(rng))
    engagement.note_mediation(by(), dispute_id, "Both parties agree part of the work is usable.")
    ending = rng.choice(["open", "resolved", "resolved", "escalated"])
    if ending == "resolved":
        release = (amount * Decimal(rng.choice(["0", "0.5", "0.6", "1"]))).quantize(amount)
        findings = {e.id: "Considered" for e in engagement.disputes[dispute_id].evidence}
        engagement.resolve_dispute(by(), dispute_id, release, amount - release,
                                   "Split according to the usable share of the work", findings)
    elif ending == "escalated":
        # The demo records the escalation with a packet digest but writes no packet file.
        engagement.escalate_dispute(by(), dispute_id, "Independent arbitrator", _fake_sha(rng))


def _fake_sha(rng: random.Random) -> str:
    return "%064x" % rng.getrandbits(256)


__all__ = ["run_demo", "build_engagement"]
