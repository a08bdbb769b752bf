"""Replay: one engagement 10,000 events long, loaded at its head and at ten random versions
through the application (`Engagements.engagement(id, actor, version)`, as the replay screen and
`engagement show --version` do; snapshots every 200 events), beside the library's default load
of the same versions without snapshots (`Repository(event_store)` with `project_aggregate`).

The engagement is built in memory through the aggregate's own methods (every rule checked) and
saved in one transaction; the application takes its snapshots as it saves. The figure is the
slowest of the eleven loads with the cache warm (the replay screen's case), each the median of
three; the first, cold load at the head is reported beside it.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import Backend, Result, Sizes, median

BAR_MS = 20.0
REPEATS = 3


def build_long_engagement(app: Any, events: int) -> Any:
    """An active engagement that goes round milestone after milestone until it has `events`."""
    from ledger.agreements import AgreementKind
    from ledger.engagement import Engagement
    from ledger.events import Stamp
    from ledger.interviews import Decision
    from ledger.roles import Actor, Party

    actor = Actor.parse("admin:bench")
    moment = [datetime.now(UTC) - timedelta(days=400)]
    step = [0]

    def by() -> Stamp:
        step[0] += 1
        moment[0] += timedelta(minutes=50)
        return Stamp(actor, f"replay-{step[0]}", f"{step[0]:032x}", moment[0])

    e = Engagement.open(by(), "Long engagement", "Acme Corp", "Bo Chen", "cara",
                        Decimal("100000000"), "EUR", 14, 7)
    e.record_interview(by(), "cara", {"scope_understanding": 4}, {}, [], None, Decision.ADVANCE)
    for kind in (AgreementKind.NDA, AgreementKind.SOW):
        agreement = e.draft_agreement(by(), kind, "US-CA", "c" * 64)
        e.sign_agreement(by(), agreement, Party.CLIENT, "Ann Lee")
        e.sign_agreement(by(), agreement, Party.CONTRACTOR, "Bo Chen")
    e.acknowledge_playbook(by(), "2026.1")
    while e.version + 11 <= events:
        due = (moment[0] + timedelta(days=30)).date()
        milestone = e.define_milestone(by(), f"Phase {len(e.milestones) + 1}",
                                       "Delivered and documented", Decimal("10"), due)
        e.fund_milestone(by(), milestone)
        grant = e.grant_access(by(), "staging database", _read_level(), milestone, None, None)
        e.log_note(by(), "Curator relayed the client's questions to the contractor.")
        e.submit_work(by(), milestone, "Delivered; see the linked pull request.")
        e.request_changes(by(), milestone, "Missing tests for the edge cases.")
        e.submit_work(by(), milestone, "Tests added.")
        e.recertify_access(by(), grant, "Still needed for the current stage")
        e.accept_milestone(by(), milestone)
        e.release_payment(by(), milestone)  # also ends the grant: two events
    while e.version < events:
        e.log_note(by(), "Weekly check-in held; nothing blocking.")
    app.save(e)
    return e.id


def _read_level() -> Any:
    from ledger.access import Level

    return Level.READ


def _timed_ms(func: Any) -> float:
    started = time.perf_counter()
    func()
    return (time.perf_counter() - started) * 1000


def _median_ms(func: Any, repeats: int = REPEATS) -> float:
    """Each version is loaded a few times and the median kept: one load is a few ms, and a
    single sample on a busy machine says more about the machine than about the load."""
    return median([_timed_ms(func) for _ in range(repeats)])


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    from eventsourcing.application import Repository

    from ledger.application import open_ledger
    from ledger.roles import Actor

    url = backend.fresh_url("replay")
    app = open_ledger(url)
    try:
        engagement_id = build_long_engagement(app, sizes.replay_events)
    finally:
        app.close()
    settled = backend.settle(url=url)
    context["long_engagement"] = {"url": url, "id": str(engagement_id),
                                  "events": sizes.replay_events}
    rng = random.Random(6)
    versions = [None] + sorted(rng.sample(range(1, sizes.replay_events),
                                          sizes.replay_versions))
    auditor = Actor.parse("auditor:bench")
    app = open_ledger(url)
    try:
        cold_head = _timed_ms(lambda: app.engagement(engagement_id, auditor))
        loads = {str(v or "head"): _median_ms(lambda v=v: app.engagement(engagement_id, auditor, v))
                 for v in versions}
        without_snapshots = Repository(event_store=app.events)  # the library's default load
        plain = {str(v or "head"): _median_ms(lambda v=v: without_snapshots.get(engagement_id,
                                                                                   version=v))
                 for v in versions}
        head = app.engagement(engagement_id, auditor)
    finally:
        app.close()
    assert head.version == sizes.replay_events, head.version
    worst, worst_plain = max(loads.values()), max(plain.values())
    return [Result(
        backend=backend.name, name="replay (10,000 events, worst of 11)" if not sizes.quick
        else f"replay ({sizes.replay_events:,} events, worst of 11)",
        figure=worst, unit="ms", baseline=worst_plain, baseline_unit="ms",
        baseline_what="library default load, no snapshots (same versions)",
        ratio=worst / worst_plain, bar=f"< {BAR_MS:g} ms", held=worst < BAR_MS,
        details={"events": sizes.replay_events, "settled_s": settled, "cold_head_ms": cold_head,
                 "mean_ms": sum(loads.values()) / len(loads), "loads_ms": loads,
                 "baseline_mean_ms": sum(plain.values()) / len(plain), "baseline_ms": plain})]
