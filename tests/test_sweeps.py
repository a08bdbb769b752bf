"""Sweeps on a fixed clock: nothing before the period ends, exactly one event after, none again."""

from __future__ import annotations

from ledger.application import open_ledger
from ledger.commands import GrantAccess, SubmitWork

from factories import AUDITOR, CONTRACTOR, CURATOR, FixedClock, active_engagement, funded_milestone


def event_types(app, eid):  # type: ignore[no-untyped-def]
    return [type(e).__name__ for e in app.events.get(eid)]


def test_deemed_acceptance_after_the_inspection_period(sqlite_url):
    clock = FixedClock()
    app = open_ledger(sqlite_url, clock=clock)
    eid = active_engagement(app, inspection_days=14)
    milestone = funded_milestone(app, eid)
    app.execute(SubmitWork.build(engagement_id=eid, milestone_id=milestone, note="PR"), CONTRACTOR)
    submitted_at = clock.now

    clock.now = submitted_at.replace(hour=8) + __import__("datetime").timedelta(days=14)
    assert app.sweep("milestones", CURATOR) == []  # an hour before the period ends
    assert app.engagement(eid, AUDITOR).milestones[milestone].status == "submitted"

    clock.advance(hours=1, seconds=1)
    assert app.sweep("milestones", CURATOR) == [(eid, milestone)]
    after = app.engagement(eid, AUDITOR)
    assert after.milestones[milestone].status == "accepted" and after.milestones[milestone].deemed
    assert event_types(app, eid).count("MilestoneDeemedAccepted") == 1

    clock.advance(days=3)
    assert app.sweep("milestones", CURATOR) == []
    assert app.sweep("milestones", CURATOR, engagement_id=eid) == []
    assert event_types(app, eid).count("MilestoneDeemedAccepted") == 1
    app.close()


def test_access_expires_after_its_last_day(sqlite_url):
    clock = FixedClock()
    app = open_ledger(sqlite_url, clock=clock)
    eid = active_engagement(app)
    milestone = funded_milestone(app, eid, due="2026-11-20")
    grant = app.execute(GrantAccess.build(engagement_id=eid, resource="repo", level="read",
                                          milestone_id=milestone, until="2026-11-10"), CURATOR)
    from datetime import UTC, datetime

    clock.now = datetime(2026, 11, 10, 23, 59, 59, tzinfo=UTC)  # still the last day
    assert app.sweep("access", CURATOR) == []
    assert app.engagement(eid, AUDITOR).grants[grant].status == "active"

    clock.now = datetime(2026, 11, 11, 0, 0, 1, tzinfo=UTC)
    assert app.sweep("access", CURATOR) == [(eid, grant)]
    assert app.engagement(eid, AUDITOR).grants[grant].status == "expired"
    assert app.sweep("access", CURATOR) == []
    assert event_types(app, eid).count("AccessExpired") == 1
    app.close()


def test_sweeps_are_for_curators_and_admins(app):
    import pytest

    from ledger.errors import NotPermitted
    from ledger.roles import Actor

    for role in ("client", "contractor", "auditor"):
        with pytest.raises(NotPermitted):
            app.sweep("milestones", Actor.parse(f"{role}:x"))
    assert app.sweep("access", Actor.parse("admin:ops")) == []
