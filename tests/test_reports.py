"""Reports over the read models: `ledger alerts`, `ledger contractor show`, and the JSON of
`engagement list` and `projections status` (docs/json-contract.md, tests/schemas/).

Engagements are built through the application on a FixedClock at known dates into a real
database (read models need SQLite or PostgreSQL), then the alerts are asked for on fixed days
either side of each boundary. The key tests run on both backends (`db_url`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from ledger.application import Engagements, open_ledger
from ledger.commands import (
    AcceptMilestone,
    CancelMilestone,
    CloseEngagement,
    DefineMilestone,
    DraftAgreement,
    EscalateDispute,
    FundMilestone,
    GrantAccess,
    GrantExtension,
    OpenDispute,
    OpenEngagement,
    RecertifyAccess,
    RecordInterview,
    ReleasePayment,
    RequestChanges,
    RequestExtension,
    ResolveDispute,
    SignAgreement,
    SubmitWork,
)
from ledger.errors import InvalidInput
from ledger.roles import Actor
from projections.alerts import KINDS, alerts, curator_workload, urgency
from projections.contractor_record import close_names, contractor_record
from projections.queries import ReadModels

from factories import AUDITOR, CLIENT, CONTRACTOR, CURATOR, FixedClock
from tests.cli_helpers import expect_json, expect_ok, expect_refusal, run_ledger

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DOC = ROOT / "docs" / "json-contract.md"
REPORTS = ("engagement-list", "contractor", "alerts", "projections-status")


def at(day: int, hour: int = 9, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def nov(day: int) -> date:
    return date(2026, 11, day)


# Schemas --------------------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


SCHEMA = {name: _load(name) for name in (*REPORTS, "engagement")}
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMA.values())
VALIDATORS = {name: Draft202012Validator(SCHEMA[name], registry=REGISTRY) for name in REPORTS}


def schema_errors(name: str, instance: Any) -> list[str]:
    errors = sorted(VALIDATORS[name].iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def assert_valid(name: str, instance: Any) -> None:
    plain = json.loads(json.dumps(instance))
    assert plain == instance, "the output does not survive a JSON round trip unchanged"
    errors = schema_errors(name, plain)
    assert not errors, f"{name} output breaks the schema:\n  " + "\n  ".join(errors[:15])


# Building engagements on a clock ---------------------------------------------------------


class Ledger:
    """The application on a clock the test sets; commands as one-liners."""

    def __init__(self, url: str, start: datetime = at(2)) -> None:
        self.clock = FixedClock(start)
        self.app: Engagements = open_ledger(url, clock=self.clock)

    def close(self) -> None:
        self.app.close()

    def at(self, moment: datetime) -> Ledger:
        self.clock.now = moment
        return self

    def do(self, eid: UUID, command: type, actor: Actor, **fields: Any) -> str | None:
        return self.app.execute(command.build(engagement_id=eid, **fields), actor)

    def open(self, title: str, contractor: str = "Bo Chen", curator: str = "cara",
             red_flags: tuple[str, ...] = (), budget: str = "10000") -> UUID:
        """Interviewed (advance), NDA (A1) and SOW (A2) signed by both: active."""
        eid = self.app.open_engagement(OpenEngagement.build(
            title=title, client="Acme", contractor=contractor, curator=curator, budget=budget,
            currency="EUR"), CURATOR)
        self.do(eid, RecordInterview, CURATOR, interviewer=curator, scores={"fit": 4},
                red_flags=list(red_flags), decision="advance")
        for kind in ("nda", "sow"):
            agreement = self.do(eid, DraftAgreement, CURATOR, kind=kind, jurisdiction="DE",
                                sha256="c" * 64)
            self.do(eid, SignAgreement, CLIENT, agreement_id=agreement, party="client",
                    signer="Ann")
            self.do(eid, SignAgreement, CONTRACTOR, agreement_id=agreement,
                    party="contractor", signer="Bo")
        return eid

    def milestone(self, eid: UUID, due: str, fund: bool = True, amount: str = "1000") -> str:
        m = self.do(eid, DefineMilestone, CURATOR, title=f"Phase due {due}", amount=amount,
                    due=due)
        if fund:
            self.do(eid, FundMilestone, CLIENT, milestone_id=m)
        return m

    def grant(self, eid: UUID, milestone: str, until: str | None = None,
              resource: str = "staging DB") -> str:
        return self.do(eid, GrantAccess, CURATOR, resource=resource, level="read",
                       milestone_id=milestone, until=until)

    def models(self, actor: Actor = CURATOR) -> ReadModels:
        return ReadModels(self.app, actor)


@pytest.fixture
def sqlite_ledger(sqlite_url: str) -> Iterator[Ledger]:
    ledger = Ledger(sqlite_url)
    yield ledger
    ledger.close()


@pytest.fixture
def any_ledger(db_url: str) -> Iterator[Ledger]:
    ledger = Ledger(db_url)
    yield ledger
    ledger.close()


class Scenario:
    """Two engagements whose every alert has a known day.

    "Pipeline" (curator cara, contractor Dee Park), from 2 November:
      M1 funded, due 20 Nov;  G1 on M1 until 25 Nov (its 30-day recertification, 2 Dec, is
      after it ends);  M2 funded, due 20 Dec; G2 on M2 until 27 Dec, recertification due 2 Dec;
      M3 funded, due 10 Dec; G3 on M3; M3 submitted 3 Nov 09:00 (G3's milestone changed stage;
      the inspection ends 17 Nov 09:00);  M4 funded, disputed by the client 4 Nov (D1).
    "Portal" (curator dev, contractor Ana): M1 defined (never funded), due 10 Nov.
    """

    def __init__(self, ledger: Ledger) -> None:
        ledger.at(at(2))
        self.pipeline = p = ledger.open("Pipeline", contractor="Dee Park")
        self.m1 = ledger.milestone(p, "2026-11-20")
        self.g1 = ledger.grant(p, self.m1, until="2026-11-25")
        self.m2 = ledger.milestone(p, "2026-12-20")
        self.g2 = ledger.grant(p, self.m2)
        self.m3 = ledger.milestone(p, "2026-12-10")
        self.g3 = ledger.grant(p, self.m3)
        self.m4 = ledger.milestone(p, "2026-12-15")
        ledger.at(at(2, 10))
        self.portal = ledger.open("Portal", contractor="Ana Souza", curator="dev")
        self.portal_m1 = ledger.milestone(self.portal, "2026-11-10", fund=False)
        ledger.at(at(3)).do(p, SubmitWork, CONTRACTOR, milestone_id=self.m3, note="PR #1")
        self.d1 = ledger.at(at(4)).do(p, OpenDispute, CLIENT, milestone_id=self.m4,
                                      party="client", reason="Nothing delivered")


def found(models: ReadModels, today: date, within: int = 7,
          engagement: str = "Pipeline") -> dict[tuple[str, str], dict[str, Any]]:
    """One engagement's alerts of a day by (kind, item); each appears at most once."""
    listed = alerts(models, today=today, within=within)
    everything = {(a["engagement_id"], a["kind"], a["item"]) for a in listed}
    assert len(everything) == len(listed), "an alert appears twice"
    return {(a["kind"], a["item"]): a for a in listed if a["title"] == engagement}


def on(models: ReadModels, today: date, kind: str, item: str, within: int = 7,
       engagement: str = "Pipeline") -> dict[str, Any] | None:
    return found(models, today, within, engagement).get((kind, item))


# Alerts: each kind on either side of its boundary (both backends) ---------------------------


def test_each_alert_appears_exactly_from_its_day(any_ledger: Ledger) -> None:
    s = Scenario(any_ledger)
    models = any_ledger.models()

    # A grant expiring at the end of 25 Nov: from 7 days before, "due"; then "overdue".
    assert on(models, nov(17), "grant_expiring", s.g1) is None
    first = on(models, nov(18), "grant_expiring", s.g1)
    assert first and (first["severity"], first["days_left"], first["date"]) == ("due", 7, "2026-11-25")
    last = on(models, nov(25), "grant_expiring", s.g1)
    assert last and (last["severity"], last["days_left"]) == ("due", 0)
    assert on(models, nov(25), "grant_overdue", s.g1) is None
    assert on(models, nov(26), "grant_expiring", s.g1) is None
    overdue = on(models, nov(26), "grant_overdue", s.g1)
    assert overdue and (overdue["severity"], overdue["days_left"]) == ("overdue", -1)
    # G1 ends before its 30-day recertification would fall due: no recertification alert.
    assert on(models, date(2026, 12, 3), "recertification_due", s.g1, within=30) is None

    # G2, granted 2 Nov 09:00: recertification due by 2 Dec.
    assert on(models, nov(24), "recertification_due", s.g2) is None
    soon = on(models, nov(25), "recertification_due", s.g2)
    assert soon and (soon["severity"], soon["days_left"], soon["date"]) == ("due", 7, "2026-12-02")
    assert on(models, date(2026, 12, 2), "recertification_due", s.g2)["severity"] == "due"
    late = on(models, date(2026, 12, 3), "recertification_due", s.g2)
    assert late and (late["severity"], late["days_left"]) == ("overdue", -1)

    # G3: its milestone moved from funded to submitted on 3 Nov: due since then.
    staged = on(models, nov(12), "recertification_due", s.g3)
    assert staged and (staged["severity"], staged["date"], staged["days_left"], staged["at"]) == (
        "overdue", "2026-11-03", -9, "2026-11-03T09:00:00.000000Z")
    assert "funded to submitted" in staged["message"]

    # Work due 20 Nov (M1 funded, nothing submitted): overdue from 21 Nov.
    assert on(models, nov(20), "milestone_overdue", s.m1) is None
    m1 = on(models, nov(21), "milestone_overdue", s.m1)
    assert m1 and (m1["severity"], m1["days_left"], m1["title"]) == ("overdue", -1, "Pipeline")
    # An unfunded milestone's work is due as well.
    portal = on(models, nov(11), "milestone_overdue", s.portal_m1, engagement="Portal")
    assert portal and (portal["curator"], portal["contractor"]) == ("dev", "Ana Souza")
    assert portal["engagement_id"] == str(s.portal)
    assert on(models, nov(10), "milestone_overdue", s.portal_m1, engagement="Portal") is None

    # M3 submitted 3 Nov 09:00, 14 days' inspection: ends 17 Nov 09:00.
    assert on(models, nov(9), "inspection_ending", s.m3) is None
    ending = on(models, nov(10), "inspection_ending", s.m3)
    assert ending and (ending["severity"], ending["days_left"], ending["at"]) == (
        "due", 7, "2026-11-17T09:00:00.000000Z")
    assert on(models, nov(17), "inspection_ending", s.m3)["days_left"] == 0
    assert on(models, nov(18), "inspection_ending", s.m3) is None
    passed = on(models, nov(18), "inspection_passed", s.m3)
    assert passed and (passed["severity"], passed["days_left"]) == ("overdue", -1)
    assert "deem" in passed["message"]

    # D1 opened 4 Nov: older than 7 days from 12 Nov; older than 10 days from 15 Nov.
    assert on(models, nov(11), "dispute_ageing", s.d1) is None
    ageing = on(models, nov(12), "dispute_ageing", s.d1)
    assert ageing and (ageing["severity"], ageing["days_left"], ageing["milestone"]) == (
        "overdue", -8, s.m4)
    assert on(models, nov(14), "dispute_ageing", s.d1, within=10) is None
    assert on(models, nov(15), "dispute_ageing", s.d1, within=10) is not None

    # Every alert of every day fits the contract.
    for day in range(1, 31):
        report = alerts(models, today=nov(day), within=7)
        assert_valid("alerts", {"today": nov(day).isoformat(), "within": 7,
                                "counts": {"overdue": sum(a["severity"] == "overdue" for a in report),
                                           "due": sum(a["severity"] == "due" for a in report)},
                                "alerts": report})


def test_alerts_come_most_urgent_first(sqlite_ledger: Ledger) -> None:
    s = Scenario(sqlite_ledger)
    listed = alerts(sqlite_ledger.models(), today=nov(12), within=7)
    assert [(a["kind"], a["item"], a["days_left"]) for a in listed] == [
        ("recertification_due", s.g3, -9),  # overdue: the longest overdue first
        ("dispute_ageing", s.d1, -8),
        ("milestone_overdue", s.portal_m1, -2),
        ("inspection_ending", s.m3, 5),     # then what falls due soonest
    ]
    assert listed == sorted(listed, key=urgency)
    assert {a["engagement_id"] for a in listed} == {str(s.pipeline), str(s.portal)}


def test_within_widens_the_window_and_zero_keeps_only_today_and_past(sqlite_ledger: Ledger) -> None:
    s = Scenario(sqlite_ledger)
    models = sqlite_ledger.models()
    # The same number of days looks ahead for dates and back for a dispute's age: with 0,
    # any dispute opened before today is ageing.
    assert set(found(models, nov(5), within=0)) == {("recertification_due", s.g3),
                                                    ("dispute_ageing", s.d1)}
    assert set(found(models, nov(5), within=7)) == {("recertification_due", s.g3)}
    assert set(found(models, nov(5), within=30)) == {
        ("recertification_due", s.g3), ("recertification_due", s.g2),
        ("grant_expiring", s.g1), ("inspection_ending", s.m3),
    }
    # G1's last day with a window of 0: due today, not overdue.
    assert on(models, nov(25), "grant_expiring", s.g1, within=0)["days_left"] == 0
    with pytest.raises(ValueError):
        alerts(models, today=nov(5), within=-1)


def test_alerts_end_when_what_they_warn_of_is_done(sqlite_ledger: Ledger) -> None:
    ledger = sqlite_ledger
    s = Scenario(ledger)
    p = s.pipeline
    models = ledger.models()
    day = nov(21)
    assert {("milestone_overdue", s.m1), ("recertification_due", s.g3),
            ("inspection_passed", s.m3), ("dispute_ageing", s.d1)} <= set(found(models, day))

    ledger.at(at(21, 8)).do(p, SubmitWork, CONTRACTOR, milestone_id=s.m1, note="Late, sorry")
    ledger.do(p, RecertifyAccess, CURATOR, grant_id=s.g3)
    ledger.do(p, AcceptMilestone, CLIENT, milestone_id=s.m3)
    ledger.do(p, ResolveDispute, CURATOR, dispute_id=s.d1, release="0", refund="1000",
              reason="Never started")
    models.refresh()
    now = found(models, day)
    assert ("milestone_overdue", s.m1) not in now
    assert ("inspection_passed", s.m3) not in now
    assert ("dispute_ageing", s.d1) not in now
    # M1 now waits for the client: its inspection runs to 5 Dec; G1 (serving M1) changed stage.
    assert ("inspection_ending", s.m1) not in now  # 14 days away, beyond 7
    assert on(models, day, "inspection_ending", s.m1, within=14)["days_left"] == 14
    g1 = now[("recertification_due", s.g1)]
    assert (g1["date"], g1["at"]) == ("2026-11-21", "2026-11-21T08:00:00.000000Z")
    # G3 was recertified while M3 was submitted; acceptance moved it on again today.
    assert now[("recertification_due", s.g3)]["date"] == "2026-11-21"


def test_a_stage_change_the_tables_keep_no_time_for_is_dated_today(sqlite_ledger: Ledger) -> None:
    ledger = sqlite_ledger
    s = Scenario(ledger)
    ledger.at(at(5)).do(s.pipeline, RecertifyAccess, CURATOR, grant_id=s.g3)
    models = ledger.models()
    assert on(models, nov(6), "recertification_due", s.g3) is None  # confirmed as submitted
    ledger.at(at(6)).do(s.pipeline, RequestChanges, CLIENT, milestone_id=s.m3, reason="No tests")
    models.refresh()
    alert = on(models, nov(9), "recertification_due", s.g3)
    assert alert and (alert["severity"], alert["date"], alert["days_left"], alert["at"]) == (
        "overdue", "2026-11-09", 0, None)
    assert "submitted to changes_requested" in alert["message"]
    assert_valid("alerts", {"today": "2026-11-09", "within": 7,
                            "counts": {"overdue": 1, "due": 0}, "alerts": [alert]})


def test_an_escalated_dispute_still_ages_and_a_closed_engagement_raises_nothing(
        sqlite_ledger: Ledger, tmp_path: Path) -> None:
    ledger = sqlite_ledger
    eid = ledger.open("Escalated")
    m = ledger.milestone(eid, "2027-01-31")
    d = ledger.do(eid, OpenDispute, CLIENT, milestone_id=m, party="client", reason="Bad")
    ledger.at(at(5)).do(eid, EscalateDispute, CURATOR, dispute_id=d, to="Arbitration Ltd",
                        packet=str(tmp_path / "d1.zip"))
    closed = ledger.at(at(5)).open("Closed early")
    cm = ledger.milestone(closed, "2026-11-03", fund=False)
    ledger.do(closed, CancelMilestone, CLIENT, milestone_id=cm, reason="Descoped")
    ledger.do(closed, CloseEngagement, CURATOR, outcome="terminated", reason="Budget cut")
    models = ledger.models()
    listed = alerts(models, today=nov(20), within=7)
    assert [(a["kind"], a["item"]) for a in listed] == [("dispute_ageing", d)]
    assert "escalated to Arbitration Ltd on 2026-11-05" in listed[0]["message"]
    assert alerts(models, today=date(2030, 1, 1), within=7)[0]["engagement_id"] == str(eid)


def test_a_contractor_sees_the_same_alerts(sqlite_ledger: Ledger) -> None:
    Scenario(sqlite_ledger)
    as_curator = alerts(sqlite_ledger.models(), today=nov(21))
    assert as_curator
    assert alerts(sqlite_ledger.models(CONTRACTOR), today=nov(21)) == as_curator


# Curator workload -------------------------------------------------------------------------


def test_curator_workload_counts_open_engagements_disputes_and_overdue_items(
        any_ledger: Ledger) -> None:
    ledger = any_ledger
    s = Scenario(ledger)
    rejected = ledger.app.open_engagement(OpenEngagement.build(
        title="Not hired", client="Acme", contractor="Cy", curator="cara", budget="100",
        currency="EUR"), CURATOR)
    ledger.do(rejected, RecordInterview, CURATOR, interviewer="cara", scores={"fit": 1},
              decision="reject")
    models = ledger.models()
    empty = {"grant_overdue": 0, "recertification_due": 0, "milestone_overdue": 0,
             "inspection_passed": 0}
    assert curator_workload(models, nov(12)) == [
        {"curator": "cara", "engagements": 2, "open": 1, "open_disputes": 1, "active_grants": 3,
         "overdue": {**empty, "recertification_due": 1}, "overdue_items": 1},
        {"curator": "dev", "engagements": 1, "open": 1, "open_disputes": 0, "active_grants": 0,
         "overdue": {**empty, "milestone_overdue": 1}, "overdue_items": 1},
    ]
    # 26 Nov: G1 past its last day, M1 past due, M3's inspection over; the dispute is counted
    # among open disputes only, however old.
    cara = curator_workload(models, nov(26))[0]
    assert cara["curator"] == "cara"
    assert cara["overdue"] == {"grant_overdue": 1, "recertification_due": 1,
                               "milestone_overdue": 1, "inspection_passed": 1}
    assert cara["overdue_items"] == 4
    assert cara["open_disputes"] == 1 and s.d1 == "D1"


# Contractor record --------------------------------------------------------------------------


class TrackRecord:
    """Bo Chen's three engagements (one opened under the spelling "bo chen"), known by hand.

    Website (completed): M1 due 10 Nov, submitted 10 Nov 23:30 (on time, the last hour);
      M2 due 10 Nov, extended to 20 Nov, submitted 15 Nov (on time, extended);
      M3 due 12 Nov, submitted 14 Nov (late). Red flag "Vague about past clients".
    Mobile app ("bo chen", active): M1..M5 each disputed: refunded in full (for the client),
      split, released in full (for the contractor), escalated, open; M2 submitted on time
      first; M6 due 10 Nov, funded, never submitted (overdue).
    Data audit: interviews I1 hold (flag "Late to the call"), I2 reject (flag "Could not
      explain gaps"): closed, not hired.
    Others on record: "Bo Chenko", "Ana Souza".
    """

    def __init__(self, ledger: Ledger, packets: Path) -> None:
        do = ledger.do
        ledger.at(at(2, 9))
        self.website = w = ledger.open("Website", red_flags=("Vague about past clients",))
        ledger.at(at(2, 10))
        self.mobile = mob = ledger.open("Mobile app", contractor="bo chen")
        ms = [ledger.milestone(mob, "2026-12-31") for _ in range(5)]
        self.overdue_m6 = ledger.milestone(mob, "2026-11-10")
        ledger.at(at(2, 11))
        self.audit = a = ledger.app.open_engagement(OpenEngagement.build(
            title="Data audit", client="Initech", contractor="Bo Chen", curator="cara",
            budget="5000", currency="EUR"), CURATOR)
        do(a, RecordInterview, CURATOR, interviewer="cara", scores={"fit": 2},
           red_flags=["Late to the call"], decision="hold")
        do(a, RecordInterview, CURATOR, interviewer="cara", scores={"fit": 1},
           red_flags=["Could not explain gaps"], decision="reject")
        ledger.at(at(2, 12))
        ledger.open("Other work", contractor="Bo Chenko")
        ledger.open("Brand refresh", contractor="Ana Souza", curator="dev")

        ledger.at(at(2, 13))
        m1, m2, m3 = (ledger.milestone(w, "2026-11-10"), ledger.milestone(w, "2026-11-10"),
                      ledger.milestone(w, "2026-11-12"))
        ledger.at(at(3)).do(mob, SubmitWork, CONTRACTOR, milestone_id=ms[1], note="v1")
        ledger.at(at(4))
        outcomes = [("0", "1000"), ("600", "400"), ("1000", "0")]
        for milestone, (release, refund) in zip(ms[:3], outcomes, strict=True):
            d = do(mob, OpenDispute, CLIENT, milestone_id=milestone, party="client",
                   reason="Not as agreed")
            do(mob, ResolveDispute, CURATOR, dispute_id=d, release=release, refund=refund,
               reason="Mediated")
        d4 = do(mob, OpenDispute, CONTRACTOR, milestone_id=ms[3], party="contractor",
                reason="Brief changed")
        do(mob, EscalateDispute, CURATOR, dispute_id=d4, to="Arbitration Ltd",
           packet=str(packets / "d4.zip"))
        do(mob, OpenDispute, CLIENT, milestone_id=ms[4], party="client", reason="Late")

        ledger.at(at(8)).do(w, RequestExtension, CONTRACTOR, milestone_id=m2, due="2026-11-20",
                            reason="Vendor delay")
        do(w, GrantExtension, CLIENT, milestone_id=m2)
        for milestone, moment in ((m1, at(10, 23, 30)), (m3, at(14)), (m2, at(15))):
            ledger.at(moment).do(w, SubmitWork, CONTRACTOR, milestone_id=milestone, note="Done")
            do(w, AcceptMilestone, CLIENT, milestone_id=milestone)
            do(w, ReleasePayment, CLIENT, milestone_id=milestone)
        ledger.at(at(16)).do(w, CloseEngagement, CURATOR, outcome="completed", reason="Delivered")


def expected_record(t: TrackRecord) -> dict[str, Any]:
    no_disputes = {"total": 0, "open": 0, "escalated": 0, "for_client": 0,
                   "for_contractor": 0, "split": 0}
    return {
        "name": "Bo Chen",  # as written on the latest engagement
        "redacted": False,
        "today": "2026-11-20",
        "engagements": {"total": 3,
                        "by_status": {"vetting": 0, "contracting": 0, "active": 1, "closed": 2},
                        "by_outcome": {"completed": 1, "terminated": 0, "not_hired": 1}},
        "milestones": {"total": 9, "submitted": 4, "on_time": 3, "late": 1, "extended": 1,
                       "overdue": 1},
        "disputes": {"total": 5, "open": 1, "escalated": 1, "for_client": 1,
                     "for_contractor": 1, "split": 1},
        "interviews": 4,
        "red_flags": [
            {"engagement_id": str(t.audit), "title": "Data audit", "flag": "Late to the call"},
            {"engagement_id": str(t.audit), "title": "Data audit",
             "flag": "Could not explain gaps"},
            {"engagement_id": str(t.website), "title": "Website",
             "flag": "Vague about past clients"},
        ],
        "track_record": [
            {"id": str(t.audit), "title": "Data audit", "client": "Initech", "status": "closed",
             "outcome": "not_hired", "opened_at": "2026-11-02T11:00:00.000000Z",
             "closed_at": "2026-11-02T11:00:00.000000Z",
             "milestones": {"total": 0, "submitted": 0, "on_time": 0, "late": 0, "extended": 0,
                            "overdue": 0},
             "disputes": no_disputes, "interviews": 2, "red_flags": 2},
            {"id": str(t.mobile), "title": "Mobile app", "client": "Acme", "status": "active",
             "outcome": None, "opened_at": "2026-11-02T10:00:00.000000Z", "closed_at": None,
             "milestones": {"total": 6, "submitted": 1, "on_time": 1, "late": 0, "extended": 0,
                            "overdue": 1},
             "disputes": {"total": 5, "open": 1, "escalated": 1, "for_client": 1,
                          "for_contractor": 1, "split": 1},
             "interviews": 1, "red_flags": 0},
            {"id": str(t.website), "title": "Website", "client": "Acme", "status": "closed",
             "outcome": "completed", "opened_at": "2026-11-02T09:00:00.000000Z",
             "closed_at": "2026-11-16T09:00:00.000000Z",
             "milestones": {"total": 3, "submitted": 3, "on_time": 2, "late": 1, "extended": 1,
                            "overdue": 0},
             "disputes": no_disputes, "interviews": 1, "red_flags": 1},
        ],
    }


def test_the_contractor_record_adds_up_a_hand_built_history(any_ledger: Ledger,
                                                             tmp_path: Path) -> None:
    t = TrackRecord(any_ledger, tmp_path)
    models = any_ledger.models()
    record = contractor_record(models, "BO CHEN", today=nov(20))
    assert record == expected_record(t)
    assert_valid("contractor", record)
    # The same record whatever the case of the name asked for.
    assert contractor_record(models, "bo chen", today=nov(20)) == record
    # M6 (due 10 Nov) is not overdue on its due day.
    assert contractor_record(models, "Bo Chen", today=nov(10))["milestones"]["overdue"] == 0


def test_a_contractor_reads_the_record_without_red_flags(any_ledger: Ledger,
                                                         tmp_path: Path) -> None:
    t = TrackRecord(any_ledger, tmp_path)
    record = contractor_record(any_ledger.models(CONTRACTOR), "Bo Chen", today=nov(20))
    expected = expected_record(t)
    expected["redacted"] = True
    expected["red_flags"] = None
    for row in expected["track_record"]:
        row["red_flags"] = None
    assert record == expected
    assert_valid("contractor", record)
    leaked = {**record, "red_flags": []}
    assert schema_errors("contractor", leaked)


def test_an_unknown_contractor_is_refused_naming_close_names(any_ledger: Ledger,
                                                             tmp_path: Path) -> None:
    TrackRecord(any_ledger, tmp_path)
    models = any_ledger.models()
    with pytest.raises(InvalidInput, match=r"no contractor named 'Bo Chan'; did you mean "
                                           r"'Bo Chen' or 'Bo Chenko'\?") as error:
        contractor_record(models, "Bo Chan")
    assert error.value.exit_code == 2
    with pytest.raises(InvalidInput, match="did you mean 'Ana Souza'"):
        contractor_record(models, "souza")
    with pytest.raises(InvalidInput, match=r"no contractor named 'Zed' among the 4 on record$"):
        contractor_record(models, "Zed")
    # Exact means exact: a prefix is a suggestion, never a match.
    with pytest.raises(InvalidInput):
        contractor_record(models, "Bo")


def test_close_names_ignore_case_and_list_each_spelling_once() -> None:
    names = ["Ana Souza", "Bo Chen", "Bo Chenko", "bo chen"]
    assert close_names("BO CHN", names) == ["Bo Chen", "Bo Chenko"]
    assert close_names("chen", names) == ["Bo Chen", "Bo Chenko"]
    assert close_names("xyz", names) == []


def test_an_empty_ledger_has_no_contractors(sqlite_ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="none is on record yet"):
        contractor_record(sqlite_ledger.models(), "Bo Chen")


# engagement list and projections status: the JSON contract ----------------------------------


def test_engagement_list_rows_match_the_schema_for_every_reader(any_ledger: Ledger,
                                                                tmp_path: Path) -> None:
    t = TrackRecord(any_ledger, tmp_path)
    Scenario(any_ledger)
    rows = any_ledger.models(AUDITOR).engagements()
    assert_valid("engagement-list", rows)
    by_id = {row["id"]: row for row in rows}
    assert (by_id[str(t.audit)]["outcome"], by_id[str(t.audit)]["red_flags"]) == ("not_hired", 2)
    assert by_id[str(t.mobile)]["open_disputes"] == 2
    redacted = any_ledger.models(CONTRACTOR).engagements()
    assert_valid("engagement-list", redacted)
    assert all(row["redacted"] and row["red_flags"] is None for row in redacted)
    assert schema_errors("engagement-list", [{**rows[0], "red_flags": None}])
    assert schema_errors("engagement-list", [{**redacted[0], "red_flags": 0}])
    assert schema_errors("engagement-list", [{**by_id[str(t.audit)], "outcome": None}])


# The command line ---------------------------------------------------------------------------


@pytest.fixture
def filled_sqlite(sqlite_url: str, tmp_path: Path) -> tuple[str, TrackRecord, Scenario]:
    ledger = Ledger(sqlite_url)
    try:
        record = TrackRecord(ledger, tmp_path)
        scenario = Scenario(ledger)
    finally:
        ledger.close()
    return sqlite_url, record, scenario


def test_cli_contractor_show_prints_a_table_and_json(filled_sqlite: Any) -> None:
    url, t, _ = filled_sqlite
    shown = expect_ok(run_ledger(url, "curator:cara", "contractor", "show", "bo chen")).stdout
    assert shown.splitlines()[0] == "Bo Chen"
    assert "engagements  3: 1 active, 2 closed (outcomes: 1 completed, 1 not hired)" in shown
    assert "4 submitted: 3 on time, 1 late; 1 extended" in shown
    assert "disputes     5: 1 open, 1 escalated, 1 for client, 1 for contractor, 1 split" in shown
    assert f"Could not explain gaps  (Data audit, {t.audit})" in shown
    assert all(str(eid) in shown for eid in (t.website, t.mobile, t.audit))

    record = expect_json(run_ledger(url, "auditor:ann", "contractor", "show", "BO CHEN",
                                    "--format", "json"))
    assert_valid("contractor", record)
    today = datetime.now(UTC).date().isoformat()
    assert record["today"] == today
    expected = expected_record(t)
    for part in ("name", "engagements", "disputes", "interviews", "red_flags"):
        assert record[part] == expected[part], part

    redacted = expect_json(run_ledger(url, "contractor:bo", "contractor", "show", "Bo Chen",
                                      "--format", "json"))
    assert_valid("contractor", redacted)
    assert redacted["redacted"] is True and redacted["red_flags"] is None
    table = expect_ok(run_ledger(url, "contractor:bo", "contractor", "show", "Bo Chen")).stdout
    assert "hidden from contractors" in table and "Could not explain" not in table


def test_cli_contractor_show_refuses_an_unknown_name_with_suggestions(filled_sqlite: Any) -> None:
    url, _, _ = filled_sqlite
    line = expect_refusal(run_ledger(url, "curator:cara", "contractor", "show", "Bo Chan"), 2)
    assert line == "ledger: no contractor named 'Bo Chan'; did you mean 'Bo Chen' or 'Bo Chenko'?"
    expect_refusal(run_ledger(url, None, "contractor", "show", "Bo Chen"), 2)  # no actor


def test_cli_alerts_prints_a_table_and_json_and_always_exits_0(filled_sqlite: Any,
                                                                tmp_path: Path) -> None:
    url, _, s = filled_sqlite
    report = expect_json(run_ledger(url, "curator:cara", "alerts", "--today", "2026-11-12",
                                    "--format", "json"))
    assert_valid("alerts", report)
    assert (report["today"], report["within"]) == ("2026-11-12", 7)
    pipeline = [(a["kind"], a["item"]) for a in report["alerts"]
                if a["engagement_id"] == str(s.pipeline)]
    assert pipeline == [("recertification_due", s.g3), ("dispute_ageing", s.d1),
                        ("inspection_ending", s.m3)]
    assert report["counts"] == {
        "overdue": sum(a["severity"] == "overdue" for a in report["alerts"]),
        "due": sum(a["severity"] == "due" for a in report["alerts"])}

    wider = expect_json(run_ledger(url, "curator:cara", "alerts", "--today", "2026-11-12",
                                   "--within", "30", "--format", "json"))
    assert wider["within"] == 30
    assert [(a["kind"], a["item"]) for a in wider["alerts"]
            if a["engagement_id"] == str(s.pipeline)] == [
        ("recertification_due", s.g3), ("inspection_ending", s.m3), ("grant_expiring", s.g1),
        ("recertification_due", s.g2)]  # D1, 8 days old, is not older than 30

    table = expect_ok(run_ledger(url, "curator:cara", "alerts", "--today", "2026-11-12")).stdout
    lines = table.splitlines()
    assert lines[0].startswith("alerts on 2026-11-12, looking 7 days ahead: ")
    assert lines[2].split()[:5] == ["severity", "days", "date", "kind", "item"]
    assert any(line.split()[:5] == ["overdue", "-9", "2026-11-03", "recertification_due", s.g3]
               for line in lines)

    # Today by default (UTC): still a valid report, exit 0.
    assert_valid("alerts", expect_json(run_ledger(url, "auditor:ann", "alerts", "--format",
                                                  "json")))
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    nothing = expect_ok(run_ledger(empty, "curator:cara", "alerts", "--today", "2026-11-12"))
    assert nothing.stdout.strip() == "no alerts on 2026-11-12, looking 7 days ahead"
    expect_refusal(run_ledger(url, "curator:cara", "alerts", "--today", "12/11/2026"), 2)
    expect_refusal(run_ledger(url, "curator:cara", "alerts", "--within", "-1"), 2)


def test_cli_engagement_list_and_projections_status_match_their_schemas(filled_sqlite: Any) -> None:
    url, _, _ = filled_sqlite
    rows = expect_json(run_ledger(url, "auditor:ann", "engagement", "list", "--format", "json"))
    assert_valid("engagement-list", rows)
    assert len(rows) == 7
    status = expect_json(run_ledger(url, "auditor:ann", "projections", "status", "--format",
                                    "json"))
    assert_valid("projections-status", status)
    assert {row["name"] for row in status} >= {"summary", "contractors", "access", "money"}
    assert all(row["behind"] == row["head"] - row["position"] >= 0 for row in status)


# The documentation ---------------------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def required_fields(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema.get("required", []))
        for value in schema.values():
            found |= required_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= required_fields(value)
    return found


@pytest.mark.parametrize("name", REPORTS)
def test_report_schemas_are_valid_and_every_field_is_documented(name: str) -> None:
    raw = SCHEMA[name]
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(raw)
    text = doc_text()
    missing = sorted(f for f in required_fields(raw) if f"`{f}`" not in text)
    assert not missing, f"docs/json-contract.md does not describe field(s) {missing}"


def test_every_alert_kind_is_in_the_schema_and_documented() -> None:
    assert set(SCHEMA["alerts"]["$defs"]["alert"]["properties"]["kind"]["enum"]) == set(KINDS)
    missing = [kind for kind in KINDS if f"`{kind}`" not in doc_text()]
    assert not missing, f"docs/json-contract.md does not describe alert kind(s) {missing}"


REPORT_EXAMPLE = re.compile(r"<!-- report-example: ([\w-]+) -->\s*```json\n(.*?)```", re.DOTALL)


def test_the_documented_report_examples_match_their_schemas() -> None:
    examples = REPORT_EXAMPLE.findall(doc_text())
    assert sorted(name for name, _ in examples) == sorted(REPORTS)
    for name, body in examples:
        assert_valid(name, json.loads(body))
