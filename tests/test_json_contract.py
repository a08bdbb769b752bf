"""The JSON contract (docs/json-contract.md): `engagement show`, `history` and `replay` with
`--format json`, checked against the JSON Schemas in tests/schemas/ and their conventions.

Engagements are built through the in-process application, as real commands; one test runs the
real `ledger` command line on SQLite. The list of event type names lives in code
(`ledger.events.EVENT_CLASSES`, added to the history schema's `eventType` at run time) and in the
documentation; a test keeps the two in step.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import ledger
from ledger.application import Engagements, open_ledger
from ledger.commands import (
    AcceptMilestone,
    AcknowledgePlaybook,
    AmendAgreement,
    CancelMilestone,
    ChangeBudget,
    CloseEngagement,
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
    RecordDisclosure,
    RecordInterview,
    ReleasePayment,
    RequestChanges,
    RequestExtension,
    ResolveDispute,
    ReviewAgreement,
    RevokeAccess,
    SignAgreement,
    SignMilestoneAmendment,
    SubmitEvidence,
    SubmitWork,
)
from ledger.events import EVENT_CLASSES
from ledger.roles import Actor
from ledger.views import changes, engagement_state, history_row

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DOC = ROOT / "docs" / "json-contract.md"

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
LOOKS_LIKE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP_KEYS = {"timestamp", "at"}  # plus every key ending in `_at`
DATE_KEYS = {"due", "until"}
AMOUNT_KEYS = {"budget", "amount", "funded", "released", "refunded", "escrow", "committed",
               "claim", "release", "refund"}
#: ISO 4217 minor units, written out here so the test does not trust the code it checks.
EXPONENTS = {"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3}


# Schemas ------------------------------------------------------------------------------


def _import_every_ledger_module() -> None:
    """Event classes register themselves on import: load them all before reading the registry."""
    for module in pkgutil.iter_modules(ledger.__path__):
        importlib.import_module(f"ledger.{module.name}")


def load_schemas() -> dict[str, dict[str, Any]]:
    _import_every_ledger_module()
    schemas = {
        name: json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
        for name in ("engagement", "history", "replay")
    }
    schemas["history"]["$defs"]["eventType"]["enum"] = sorted(EVENT_CLASSES)
    return schemas


SCHEMA = load_schemas()
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMA.values()
)
VALIDATORS = {name: Draft202012Validator(schema, registry=REGISTRY) for name, schema in SCHEMA.items()}


def schema_errors(name: str, instance: Any) -> list[str]:
    errors = sorted(VALIDATORS[name].iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def assert_valid(name: str, instance: Any) -> None:
    plain = json.loads(json.dumps(instance))  # exactly what a reader of the output gets
    assert plain == instance, "the output does not survive a JSON round trip unchanged"
    errors = schema_errors(name, plain)
    assert not errors, f"{name} output breaks the schema:\n  " + "\n  ".join(errors[:15])


# Building engagements through real commands --------------------------------------------

CURATOR = Actor.parse("curator:cara")
CLIENT = Actor.parse("client:acme")
CONTRACTOR = Actor.parse("contractor:bo")
AUDITOR = Actor.parse("auditor:ann")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Clock:
    """A clock for the application: each command a few minutes after the last; `jump` skips days."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=7, microseconds=250_001)
        return self.now

    def jump(self, days: int) -> None:
        self.now += timedelta(days=days)


class Builder:
    """Runs commands on one engagement and remembers the version after each step of note."""

    def __init__(self, app: Engagements, **opening: Any) -> None:
        self.app = app
        if not isinstance(app.clock, Clock):
            app.clock = Clock()
        self.clock: Clock = app.clock
        self.id: UUID = app.open_engagement(OpenEngagement.build(**opening), CURATOR)
        self.marks: dict[str, int] = {}

    def run(self, actor: Actor, command: type, **fields: Any) -> str | None:
        return self.app.execute(command.build(engagement_id=self.id, **fields), actor)

    def mark(self, name: str) -> None:
        self.marks[name] = self.app.engagement(self.id, AUDITOR).version

    def sign_both(self, agreement_id: str) -> None:
        self.run(CLIENT, SignAgreement, agreement_id=agreement_id, party="client", signer="Ann Lee")
        self.run(CONTRACTOR, SignAgreement, agreement_id=agreement_id, party="contractor",
                 signer="Bo Chen")

    def milestone(self, title: str, amount: str, due: str, *steps: tuple[Actor, type, dict[str, Any]],
                  criteria: str | None = None) -> str:
        milestone_id = self.run(CURATOR, DefineMilestone, title=title, amount=amount, due=due,
                                criteria=criteria)
        assert milestone_id is not None
        for actor, command, fields in steps:
            self.run(actor, command, milestone_id=milestone_id, **fields)
        return milestone_id

    def sweep(self, what: str) -> None:
        self.app.sweep(what, CURATOR, self.id)


FUND = (CLIENT, FundMilestone, {})
SUBMIT = (CONTRACTOR, SubmitWork, {"note": "PR #42 merged; see the demo recording"})
CHANGES = (CLIENT, RequestChanges, {"reason": "No tests for the importer"})
ACCEPT = (CLIENT, AcceptMilestone, {})
RELEASE = (CLIENT, ReleasePayment, {})
CANCEL = (CLIENT, CancelMilestone, {"reason": "Descoped"})


def grant(resource: str, level: str, **more: Any) -> tuple[Actor, type, dict[str, Any]]:
    return (CURATOR, GrantAccess, {"resource": resource, "level": level, **more})


def build_eur(app: Engagements, packets: Path) -> Builder:
    """Every part of the state: interviews, agreements with amendments, disclosures, milestones in
    all nine statuses, extensions and amendments, grants in all three statuses, disputes open,
    escalated and resolved, notes and corrections."""
    b = Builder(app, title="Data pipeline", client="Acme Corp", contractor="Bo Chen",
                curator="cara", budget="20000", currency="EUR", inspection_days=10, grace_days=5)
    b.run(CONTRACTOR, AcknowledgePlaybook, policy_version="2026.1")
    b.run(CURATOR, LogNote, text="Intro call booked.\nAgenda sent to Bo.")
    b.run(CURATOR, RecordInterview, interviewer="cara",
          scores={"scope_understanding": 3, "timeline_realism": 2},
          scenarios={"missed_deadline": "fail"}, red_flags=["Vague about previous clients"],
          notes="A second interview is needed", decision="hold")
    b.run(CURATOR, RecordInterview, interviewer="dev",
          scores={"scope_understanding": 5, "qualifications": 4, "similar_clients": 0},
          decision="advance")
    nda = b.run(CURATOR, DraftAgreement, kind="nda", jurisdiction="DE", sha256=sha("nda v1"))
    b.run(CURATOR, ReviewAgreement, agreement_id=nda, reviewer="L. Ortiz (counsel)")
    b.sign_both(nda)
    sow = b.run(CURATOR, DraftAgreement, kind="sow", jurisdiction="US-CA", sha256=sha("sow v1"))
    b.sign_both(sow)
    b.mark("active")
    b.run(CURATOR, AmendAgreement, agreement_id=sow, sha256=sha("sow v2"),
          reason="Scope adds the reporting API")
    b.run(CLIENT, SignAgreement, agreement_id=sow, party="client", signer="Ann Lee")
    b.mark("sow v2 half signed")
    b.run(CONTRACTOR, SignAgreement, agreement_id=sow, party="contractor", signer="Bo Chen")
    nca = b.run(CURATOR, DraftAgreement, kind="nca", jurisdiction="GB", sha256=sha("nca v1"))
    b.run(CURATOR, AmendAgreement, agreement_id=nca, sha256=sha("nca v2"), reason="Shorter term")
    b.run(CURATOR, RecordDisclosure, description="Warehouse schema dump", agreement_id=nda,
          sha256=sha("schema.sql"))
    b.run(CURATOR, RecordDisclosure, description="Customer list (names only)", agreement_id=nca)

    # M1: defined; an amendment of its amount and title, signed by both parties.
    m1 = b.milestone("Discovery", "1000", "2030-01-31", criteria="Written findings, reviewed")
    b.mark("first milestone")
    b.run(CURATOR, ProposeMilestoneAmendment, milestone_id=m1, amount="1200",
          title="Discovery and audit", reason="Audit added")
    b.run(CLIENT, SignMilestoneAmendment, milestone_id=m1, party="client")
    b.run(CONTRACTOR, SignMilestoneAmendment, milestone_id=m1, party="contractor")
    # M2: funded, an extension waiting; G1 stays active (recertified), G2 expires.
    b.milestone("Schema design", "2500.5", "2030-02-28", FUND, grant("staging DB", "read"),
                grant("github:acme/pipeline", "write", until="2026-03-10"),
                (CONTRACTOR, RequestExtension, {"due": "2030-03-31", "reason": "API delay"}))
    b.run(CURATOR, RecertifyAccess, grant_id="G1")
    # M3: submitted, then deemed accepted by the sweep once the inspection period has passed.
    b.milestone("Training", "600", "2030-08-31", FUND, SUBMIT)
    b.clock.jump(days=11)
    b.sweep("milestones")
    b.sweep("access")
    b.mark("swept")
    # M4: submitted, with an amendment half signed.
    m4 = b.milestone("Importer", "3000.00", "2030-03-31", FUND, SUBMIT)
    b.run(CURATOR, ProposeMilestoneAmendment, milestone_id=m4, due="2030-04-30",
          criteria="Imports all five sources", reason="Two more sources")
    b.run(CLIENT, SignMilestoneAmendment, milestone_id=m4, party="client")
    # M5: changes requested; one extension granted, a second denied.
    b.milestone("Reports", "1200", "2030-04-30", FUND, SUBMIT, CHANGES,
                (CONTRACTOR, RequestExtension, {"due": "2030-05-15", "reason": "Rework"}),
                (CLIENT, GrantExtension, {}),
                (CONTRACTOR, RequestExtension, {"due": "2030-06-15", "reason": "More rework"}),
                (CLIENT, DenyExtension, {"reason": "The launch date is fixed"}))
    # M6: accepted; G3 revoked by the curator.
    b.milestone("Dashboards", "800", "2030-05-31", FUND, grant("BI tool", "read"), SUBMIT, ACCEPT)
    b.run(CURATOR, RevokeAccess, grant_id="G3", reason="Dashboards delivered")
    # M7: released; its admin grant G4 is revoked with it.
    b.milestone("Hand-over", "2000", "2030-06-30", FUND,
                grant("prod replica", "admin", reason="Final data migration"),
                SUBMIT, CHANGES, SUBMIT, ACCEPT, RELEASE)
    # M8: cancelled after funding (refunded).
    b.milestone("Extras", "500", "2030-07-31", FUND, CANCEL)
    # M9: disputed by the client, evidence from both, mediation, settled.
    m9 = b.milestone("Migration", "900", "2030-09-30", FUND, SUBMIT)
    d1 = b.run(CLIENT, OpenDispute, milestone_id=m9, party="client", reason="Data loss",
               claim="400")
    b.run(CLIENT, SubmitEvidence, dispute_id=d1, party="client", description="Row counts differ",
          sha256=sha("counts.csv"))
    b.run(CONTRACTOR, SubmitEvidence, dispute_id=d1, party="contractor",
          description="Source had duplicates")
    b.run(CURATOR, NoteMediation, dispute_id=d1, text="Both agree 40% of rows were duplicates")
    b.run(CURATOR, ResolveDispute, dispute_id=d1, release="500", refund="400",
          reason="Partly delivered", findings={"E1": "Counts confirmed", "E2": "Duplicates real"})
    # M10: disputed by the contractor and escalated.
    m10 = b.milestone("Support", "700", "2030-10-31", FUND)
    d2 = b.run(CONTRACTOR, OpenDispute, milestone_id=m10, party="contractor",
               reason="Client unreachable")
    b.run(CONTRACTOR, SubmitEvidence, dispute_id=d2, party="contractor",
          description="Unanswered e-mails")
    b.run(CURATOR, NoteMediation, dispute_id=d2, text="Client did not answer either")
    b.run(CURATOR, EscalateDispute, dispute_id=d2, to="Arbitration Ltd",
          packet=str(packets / "d2.zip"))
    # M11: accepted, then disputed; open.
    m11 = b.milestone("Audit fixes", "300", "2030-11-30", FUND, SUBMIT, ACCEPT)
    b.run(CLIENT, OpenDispute, milestone_id=m11, party="client", reason="Fixes regressed")
    b.run(CLIENT, ChangeBudget, budget="25000", reason="Phase 2 approved")
    b.run(CURATOR, ReassignCurator, curator="dev", reason="Cara on leave")
    b.run(CURATOR, RecordCorrection, version=4, reason="Interview I1 was held by dev, not cara")
    b.mark("end")
    return b


def build_jpy(app: Engagements) -> Builder:
    """A zero-exponent currency, with an amendment of an amount and a dispute, to a completed close."""
    b = Builder(app, title="Mobile app", client="Globex", contractor="Yuki Sato", curator="ines",
                budget="150000", currency="JPY")
    b.run(CURATOR, RecordInterview, interviewer="ines", scores={"qualifications": 5},
          decision="advance")
    sow = b.run(CURATOR, DraftAgreement, kind="sow", jurisdiction="JP", sha256=sha("jpy sow"))
    b.sign_both(sow)
    b.milestone("Prototype", "1500", "2030-01-15", FUND, SUBMIT, ACCEPT, RELEASE)
    m2 = b.milestone("Store release", "2500", "2030-02-15")
    b.run(CURATOR, ProposeMilestoneAmendment, milestone_id=m2, amount="2000", reason="Smaller")
    b.mark("jpy amendment proposed")
    b.run(CLIENT, SignMilestoneAmendment, milestone_id=m2, party="client")
    b.run(CONTRACTOR, SignMilestoneAmendment, milestone_id=m2, party="contractor")
    b.run(CLIENT, FundMilestone, milestone_id=m2)
    b.run(CLIENT, CancelMilestone, milestone_id=m2, reason="Store launch dropped")
    m3 = b.milestone("Polish", "3000", "2030-03-15", FUND, SUBMIT)
    d1 = b.run(CLIENT, OpenDispute, milestone_id=m3, party="client", reason="Crashes",
               claim="1000")
    b.run(CLIENT, SubmitEvidence, dispute_id=d1, party="client", description="Crash logs")
    b.run(CURATOR, ResolveDispute, dispute_id=d1, release="2000", refund="1000",
          reason="Mostly done", findings={"E1": "Two crashes confirmed"})
    b.run(CURATOR, CloseEngagement, outcome="completed", reason="Delivered")
    b.mark("end")
    return b


def build_rejected(app: Engagements) -> Builder:
    b = Builder(app, title="Security audit", client="Initech", contractor="Olga Ivanova",
                curator="tomas", budget="9000", currency="USD")
    b.run(CURATOR, RecordInterview, interviewer="tomas", scores={"qualifications": 1},
          red_flags=["Asked for full database access up front"], decision="reject")
    return b


def build_kwd(app: Engagements) -> Builder:
    return Builder(app, title="Payroll migration", client="Hooli", contractor="Kofi Mensah",
                   curator="cara", budget="1000.5", currency="KWD")


def state(app: Engagements, engagement_id: UUID, actor: Actor, version: int | None = None,
          at: str | None = None) -> dict[str, Any]:
    return engagement_state(app.engagement(engagement_id, actor, version, at), actor)


def history(app: Engagements, engagement_id: UUID, actor: Actor) -> list[dict[str, Any]]:
    return [history_row(event, actor) for event in app.history(engagement_id, actor)]


def replay(app: Engagements, engagement_id: UUID, actor: Actor, version: int,
           diff_from: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What `ledger replay --version N [--diff-from M] --format json` prints, and the base state."""
    base = version - 1 if diff_from is None else diff_from
    before = state(app, engagement_id, actor, base) if base >= 1 else {}
    after = state(app, engagement_id, actor, version)
    return {"state": after, "changes": changes(before, after)}, before


@pytest.fixture
def eur(app: Engagements, tmp_path: Path) -> Builder:
    return build_eur(app, tmp_path)


@pytest.fixture
def jpy(app: Engagements) -> Builder:
    return build_jpy(app)


# Conventions, checked on any output --------------------------------------------------


def walk(value: Any, key: str = "", path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (key, path, value) in a JSON tree; `key` is the nearest object key."""
    yield key, path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, key, f"{path}[{i}]")


def convention_problems(document: Any, currency: str) -> list[str]:
    places = EXPONENTS[currency]
    amount = re.compile(r"^\d+$" if places == 0 else rf"^\d+\.\d{{{places}}}$")
    problems = []
    for key, path, value in walk(document):
        if isinstance(value, str) and LOOKS_LIKE_TIME.match(value) and not TIMESTAMP.match(value):
            problems.append(f"{path}: time {value!r} is not UTC microseconds ending in Z")
        if key in TIMESTAMP_KEYS or key.endswith("_at"):
            if value is not None and not (isinstance(value, str) and TIMESTAMP.match(value)):
                problems.append(f"{path}: {value!r} is not a timestamp ending in Z")
        if key in DATE_KEYS and value is not None and not (isinstance(value, str) and DATE.match(value)):
            problems.append(f"{path}: {value!r} is not a YYYY-MM-DD date")
        if key in AMOUNT_KEYS and not isinstance(value, (dict, list)) and value is not None:
            if not (isinstance(value, str) and amount.match(value)):
                problems.append(f"{path}: amount {value!r} does not have {places} decimals "
                                f"for {currency}")
    return problems


def change_problems(replayed: dict[str, Any], currency: str) -> list[str]:
    """Conventions inside `changes`: before/after values keyed by the last part of the path."""
    problems = []
    for change in replayed["changes"]:
        key = change["path"].rsplit(".", 1)[-1]
        for side in ("before", "after"):
            problems += convention_problems({key: change[side]}, currency)
    return problems


# The schemas themselves ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["engagement", "history", "replay"])
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    raw = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(raw)
    Draft202012Validator.check_schema(SCHEMA[name])


def test_event_type_enum_comes_from_the_registry() -> None:
    names = SCHEMA["history"]["$defs"]["eventType"]["enum"]
    assert "EngagementOpened" in names and "MilestoneFunded" in names
    assert sorted(names) == sorted(EVENT_CLASSES)


# engagement show ------------------------------------------------------------------------


def test_show_matches_the_schema_at_every_version_for_every_reader(app: Engagements,
                                                                   eur: Builder) -> None:
    final = eur.marks["end"]
    for actor in (CURATOR, CONTRACTOR):  # the two views: full and redacted
        for version in range(1, final + 1):
            shown = state(app, eur.id, actor, version)
            assert shown["version"] == version
            assert_valid("engagement", shown)
            assert not convention_problems(shown, "EUR")
    for actor in (AUDITOR, CLIENT):
        assert_valid("engagement", state(app, eur.id, actor))


def test_the_built_engagement_covers_the_contract(app: Engagements, eur: Builder) -> None:
    """Guards the scenario itself: the schema checks above are only as good as what they see."""
    shown = state(app, eur.id, CURATOR)
    assert shown["status"] == "active" and shown["outcome"] is None and shown["closed_at"] is None
    assert shown["budget"] == "25000.00" and shown["curator"] == "dev"
    milestones = {m["id"]: m for m in shown["milestones"]}
    assert {m["status"] for m in milestones.values()} == {
        "defined", "funded", "submitted", "changes_requested", "accepted", "disputed", "released",
        "settled", "cancelled"}
    assert [i["decision"] for i in shown["interviews"]] == ["hold", "advance"]
    first = shown["interviews"][0]
    assert first["scores"] == {"scope_understanding": 3, "timeline_realism": 2}
    assert first["scenarios"] == {"missed_deadline": "fail"}
    assert first["red_flags"] == ["Vague about previous clients"]
    assert shown["interviews"][1]["scenarios"] == {} and shown["interviews"][1]["notes"] is None

    nda, sow, nca = shown["agreements"]
    assert (nda["status"], nda["in_force_version"], nda["versions"][0]["reviewed_by"]) == (
        "signed", 1, "L. Ortiz (counsel)")
    assert [(v["version"], v["status"]) for v in sow["versions"]] == [(1, "superseded"), (2, "signed")]
    assert sow["in_force_version"] == 2 and sow["versions"][1]["reason"]
    assert (nca["status"], nca["in_force_version"]) == ("draft", None)
    assert [v["status"] for v in nca["versions"]] == ["superseded", "draft"]
    assert nca["versions"][1]["signatures"] == {"client": None, "contractor": None}
    half = state(app, eur.id, CURATOR, eur.marks["sow v2 half signed"])["agreements"][1]
    assert (half["status"], half["in_force_version"]) == ("signed", 1)
    assert half["versions"][1]["status"] == "draft"
    assert half["versions"][1]["signatures"]["client"]["signer"] == "Ann Lee"
    assert half["versions"][1]["signatures"]["contractor"] is None

    assert [(d["agreement"], d["agreement_in_force"], d["sha256"] is None)
            for d in shown["disclosures"]] == [("A1", True, False), ("A3", False, True)]

    assert (milestones["M1"]["amount"], milestones["M1"]["title"]) == ("1200.00", "Discovery and audit")
    assert milestones["M1"]["amendment"] is None
    assert milestones["M2"]["amount"] == "2500.50"
    assert milestones["M2"]["extension_request"]["due"] == "2030-03-31"
    assert (milestones["M3"]["status"], milestones["M3"]["deemed_accepted"]) == ("accepted", True)
    pending = milestones["M4"]["amendment"]
    assert pending["changes"] == {"due": "2030-04-30", "criteria": "Imports all five sources"}
    assert pending["signatures"]["client"] is not None and pending["signatures"]["contractor"] is None
    assert (milestones["M5"]["due"], milestones["M5"]["original_due"],
            milestones["M5"]["extensions"], milestones["M5"]["extension_request"]) == (
        "2030-05-15", "2030-04-30", 1, None)

    grants = {g["id"]: g for g in shown["grants"]}
    assert {g: grants[g]["status"] for g in grants} == {
        "G1": "active", "G2": "expired", "G3": "revoked", "G4": "revoked"}
    assert grants["G1"]["until"] == "2030-03-05" and grants["G4"]["level"] == "admin"

    disputes = {d["id"]: d for d in shown["disputes"]}
    assert {d: disputes[d]["status"] for d in disputes} == {
        "D1": "resolved", "D2": "escalated", "D3": "open"}
    assert disputes["D1"]["claim"] == "400.00"
    assert disputes["D1"]["resolution"]["release"] == "500.00"
    assert disputes["D1"]["resolution"]["findings"] == {"E1": "Counts confirmed",
                                                         "E2": "Duplicates real"}
    assert [e["id"] for e in disputes["D2"]["evidence"]] == ["E3"]
    assert disputes["D2"]["escalation"]["to"] == "Arbitration Ltd"
    assert disputes["D3"]["claim"] is None and disputes["D3"]["evidence"] == []

    assert shown["money"] == {"funded": "12500.50", "released": "2500.00", "refunded": "900.00",
                              "escrow": "9100.50", "committed": "13200.50"}
    assert shown["corrections"][0]["version"] == 4
    assert shown["notes"][0]["text"] == "Intro call booked.\nAgenda sent to Bo."
    assert shown["playbook_acknowledgements"][0]["policy_version"] == "2026.1"
    types = {row["type"] for row in history(app, eur.id, AUDITOR)}
    # ContractorKeyDestroyed needs an encrypted ledger: tests/test_personal_data.py checks it.
    assert types == set(EVENT_CLASSES) - {"EngagementClosed", "ContractorKeyDestroyed"}, \
        "the scenario misses event types"


def test_show_at_a_time_is_the_state_after_the_last_event_then(app: Engagements,
                                                               eur: Builder) -> None:
    rows = history(app, eur.id, CURATOR)
    stamps = [row["timestamp"] for row in rows]
    unique = [row for row in rows if stamps.count(row["timestamp"]) == 1]
    for row in (unique[1], unique[len(unique) // 2]):
        shown = state(app, eur.id, CURATOR, at=row["timestamp"])
        assert shown["version"] == row["version"]
        assert_valid("engagement", shown)


def test_a_contractor_reads_a_redacted_view(app: Engagements, eur: Builder) -> None:
    theirs = state(app, eur.id, CONTRACTOR)
    assert theirs["redacted"] is True and theirs["interviews"] is None
    assert [d["mediation_notes"] for d in theirs["disputes"]] == [None, None, None]
    ours = state(app, eur.id, CURATOR)
    assert ours["redacted"] is False and len(ours["interviews"]) == 2
    assert [len(d["mediation_notes"]) for d in ours["disputes"]] == [1, 1, 0]
    hidden = ("redacted", "interviews", "disputes")
    assert {k: v for k, v in theirs.items() if k not in hidden} == {
        k: v for k, v in ours.items() if k not in hidden}
    assert [{**d, "mediation_notes": None} for d in ours["disputes"]] == theirs["disputes"]

    rows = history(app, eur.id, CONTRACTOR)
    assert_valid("history", rows)
    interview_rows = [row for row in rows if row["type"] == "InterviewRecorded"]
    assert [row["summary"] for row in interview_rows] == ["interview I1 recorded",
                                                          "interview I2 recorded"]
    assert {row["summary"] for row in rows if row["type"] == "MediationNoted"} == {"mediation note"}
    assert not any("Both agree" in row["summary"] for row in rows)
    replayed, _ = replay(app, eur.id, CONTRACTOR, eur.marks["active"])
    assert_valid("replay", replayed)
    assert not any(c["path"].startswith("interviews.") for c in replayed["changes"])


def test_the_schema_requires_hidden_fields_exactly_when_redacted(app: Engagements,
                                                                   eur: Builder) -> None:
    leaked = state(app, eur.id, CONTRACTOR)
    leaked["interviews"] = state(app, eur.id, CURATOR)["interviews"]
    assert schema_errors("engagement", leaked)
    hidden = state(app, eur.id, CURATOR)
    hidden["interviews"] = None
    assert schema_errors("engagement", hidden)
    notes_leaked = state(app, eur.id, CONTRACTOR)
    notes_leaked["disputes"][0]["mediation_notes"] = []
    assert schema_errors("engagement", notes_leaked)


def test_closed_engagements_have_an_outcome(app: Engagements, jpy: Builder) -> None:
    done = state(app, jpy.id, AUDITOR)
    assert (done["status"], done["outcome"]) == ("closed", "completed")
    assert TIMESTAMP.match(done["closed_at"])
    assert_valid("engagement", done)

    rejected = build_rejected(app)
    not_hired = state(app, rejected.id, AUDITOR)
    assert (not_hired["status"], not_hired["outcome"]) == ("closed", "not_hired")
    assert_valid("engagement", not_hired)
    assert [row["type"] for row in history(app, rejected.id, AUDITOR)] == [
        "EngagementOpened", "InterviewRecorded", "EngagementClosed"]


# Amounts and timestamps --------------------------------------------------------------------


def test_jpy_amounts_have_no_decimal_places(app: Engagements, jpy: Builder) -> None:
    shown = state(app, jpy.id, CURATOR)
    assert shown["budget"] == "150000"
    assert [m["amount"] for m in shown["milestones"]] == ["1500", "2000", "3000"]
    assert shown["money"] == {"funded": "6500", "released": "3500", "refunded": "3000",
                              "escrow": "0", "committed": "4500"}
    resolution = shown["disputes"][0]["resolution"]
    assert (shown["disputes"][0]["claim"], resolution["release"], resolution["refund"]) == (
        "1000", "2000", "1000")
    proposed = state(app, jpy.id, CURATOR, jpy.marks["jpy amendment proposed"])
    assert proposed["milestones"][1]["amendment"]["changes"] == {"amount": "2000"}
    for version in range(1, jpy.marks["end"] + 1):
        replayed, _ = replay(app, jpy.id, CURATOR, version)
        assert_valid("replay", replayed)
        assert not convention_problems(replayed["state"], "JPY")
        assert not change_problems(replayed, "JPY")


def test_three_decimal_currencies_keep_three_places(app: Engagements) -> None:
    shown = state(app, build_kwd(app).id, CURATOR)
    assert shown["budget"] == "1000.500" and shown["money"]["escrow"] == "0.000"
    assert_valid("engagement", shown)
    assert not convention_problems(shown, "KWD")


def test_every_time_in_every_output_is_utc_ending_in_z(app: Engagements, eur: Builder) -> None:
    outputs: list[Any] = [state(app, eur.id, CURATOR), history(app, eur.id, CURATOR)]
    outputs += [replay(app, eur.id, CURATOR, v)[0] for v in (1, eur.marks["end"])]
    strings = [v for output in outputs for _, _, v in walk(output) if isinstance(v, str)]
    times = [s for s in strings if LOOKS_LIKE_TIME.match(s)]
    assert len(times) > 50
    assert all(s.endswith("Z") and TIMESTAMP.match(s) for s in times), times
    for output in outputs:
        assert not convention_problems(output, "EUR")


def test_money_is_conserved_at_every_version(app: Engagements, eur: Builder) -> None:
    from decimal import Decimal

    for version in range(1, eur.marks["end"] + 1):
        money = state(app, eur.id, AUDITOR, version)["money"]
        funded, released, refunded, escrow = (Decimal(money[k]) for k in
                                              ("funded", "released", "refunded", "escrow"))
        assert funded == released + refunded + escrow, (version, money)


# history ---------------------------------------------------------------------------------


def test_history_matches_the_schema(app: Engagements, eur: Builder, jpy: Builder) -> None:
    for built in (eur, jpy):
        rows = history(app, built.id, AUDITOR)
        assert_valid("history", rows)
        assert [row["version"] for row in rows] == list(range(1, len(rows) + 1))
        assert rows[0]["type"] == "EngagementOpened"
        assert [row["timestamp"] for row in rows] == sorted(row["timestamp"] for row in rows)
    roles = {row["role"] for row in history(app, eur.id, AUDITOR)}
    assert roles == {"curator", "client", "contractor"}


def test_history_rejects_an_undocumented_event_type(app: Engagements, eur: Builder) -> None:
    rows = history(app, eur.id, AUDITOR)
    rows[1]["type"] = "MilestoneTeleported"
    assert schema_errors("history", rows)


# replay ----------------------------------------------------------------------------------


def test_replay_matches_the_schema_at_every_version(app: Engagements, eur: Builder) -> None:
    for version in range(1, eur.marks["end"] + 1):
        replayed, _ = replay(app, eur.id, CURATOR, version)
        assert_valid("replay", replayed)
        assert not change_problems(replayed, "EUR")
        assert replayed["changes"], f"version {version} changed nothing"
    replayed, _ = replay(app, eur.id, AUDITOR, eur.marks["end"], diff_from=eur.marks["active"])
    assert_valid("replay", replayed)


def version_of(app: Engagements, engagement_id: UUID, event_type: str, mentions: str) -> int:
    """The version of the first event of that type whose summary mentions the text."""
    return next(row["version"] for row in history(app, engagement_id, AUDITOR)
                if row["type"] == event_type and mentions in row["summary"])


def test_replay_reports_the_documented_example_paths(app: Engagements, eur: Builder) -> None:
    replayed, _ = replay(app, eur.id, CURATOR, version_of(app, eur.id, "DisputeOpened", "M10"))
    assert {"path": "milestones.M10.status", "before": "funded", "after": "disputed"} in replayed["changes"]
    assert {"path": "disputes.D2.status", "before": None, "after": "open"} in replayed["changes"]
    replayed, _ = replay(app, eur.id, CURATOR, version_of(app, eur.id, "MilestoneFunded", "M2"))
    assert {"path": "milestones.M2.status", "before": "defined", "after": "funded"} in replayed["changes"]
    assert {"path": "money.funded", "before": "0.00", "after": "2500.50"} in replayed["changes"]
    replayed, _ = replay(app, eur.id, CURATOR, eur.marks["active"])
    assert {"path": "status", "before": "contracting", "after": "active"} in replayed["changes"]
    assert all(c["path"] not in ("version", "updated_at") for c in replayed["changes"])


def resolve(document: Any, path: str) -> Any:
    """The value at a change's path, by the documented keys; None where there is nothing."""
    node = document
    parent = ""
    for key in path.split("."):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list):
            if node and all(isinstance(item, dict) and item.get("id") is not None for item in node):
                found = [item for item in node if item["id"] == key]
            elif parent == "versions":
                found = [item for item in node if f"v{item.get('version')}" == key]
            else:
                found = [node[int(key)]] if key.isdigit() and int(key) < len(node) else []
            node = found[0] if found else None
        else:
            return None
        parent = key
        if node is None:
            return None
    return node


def test_every_change_says_truly_what_was_there_before_and_after(app: Engagements,
                                                                 eur: Builder) -> None:
    """Each change's `before` and `after` are the values at its path in the two states."""
    wrong = []
    for version in range(1, eur.marks["end"] + 1):
        replayed, before = replay(app, eur.id, CURATOR, version)
        for change in replayed["changes"]:
            was, now = resolve(before, change["path"]), resolve(replayed["state"], change["path"])
            if (was, now) != (change["before"], change["after"]):
                wrong.append(f"v{version} {change}: the states hold {was!r} -> {now!r}")
    assert not wrong, "\n".join(wrong[:10])


def test_a_list_filling_up_is_not_reported_as_becoming_null(app: Engagements,
                                                            eur: Builder) -> None:
    replayed, _ = replay(app, eur.id, CURATOR, eur.marks["first milestone"])
    assert {"path": "milestones.M1.status", "before": None, "after": "defined"} in replayed["changes"]
    bogus = [c for c in replayed["changes"] if c["path"] == "milestones"]
    assert not bogus, f"milestones now holds M1, yet the change says {bogus}"


def test_a_second_correction_of_the_same_version_is_an_addition(app: Engagements,
                                                                eur: Builder) -> None:
    """Corrections are appended, never edited: a replay must not show the first one changing."""
    eur.run(CURATOR, RecordCorrection, version=4, reason="And the date was the 3rd, not the 4th")
    version = app.engagement(eur.id, CURATOR).version
    replayed, _ = replay(app, eur.id, CURATOR, version)
    corrections = [c for c in replayed["changes"] if c["path"].startswith("corrections.")]
    assert corrections and all(c["before"] is None for c in corrections), corrections


# schema negative checks: the schema is not vacuous -------------------------------------

MUTATIONS = {
    "field left out": lambda s: s.pop("closed_at"),
    "milestone field left out": lambda s: s["milestones"][0].pop("due"),
    "amount as a number": lambda s: s.__setitem__("budget", 25000),
    "amount with a sign": lambda s: s["money"].__setitem__("escrow", "-1.00"),
    "timestamp with an offset": lambda s: s.__setitem__("opened_at", "2026-01-01T10:00:00+00:00"),
    "date with a time": lambda s: s["milestones"][0].__setitem__("due", "2030-01-31T00:00:00Z"),
    "unknown engagement status": lambda s: s.__setitem__("status", "paused"),
    "unknown milestone status": lambda s: s["milestones"][0].__setitem__("status", "paid"),
    "unknown agreement version status": lambda s: s["agreements"][0]["versions"][0].__setitem__(
        "status", "void"),
    "score above 5": lambda s: s["interviews"][0]["scores"].__setitem__("qualifications", 6),
    "scenario not pass/fail": lambda s: s["interviews"][0]["scenarios"].__setitem__("x", "maybe"),
    "short id of the wrong kind": lambda s: s["milestones"][0].__setitem__("id", "A1"),
    "id not a canonical UUID": lambda s: s.__setitem__("id", s["id"].upper()),
    "open with an outcome": lambda s: s.__setitem__("outcome", "completed"),
    "signed agreement without a version in force": lambda s: s["agreements"][0].__setitem__(
        "in_force_version", None),
    "signed version missing a signature": lambda s: s["agreements"][0]["versions"][0][
        "signatures"].__setitem__("contractor", None),
    "grant with an unknown level": lambda s: s["grants"][0].__setitem__("level", "root"),
    "unknown grant status": lambda s: s["grants"][0].__setitem__("status", "paused"),
    "active grant with an end": lambda s: s["grants"][0].__setitem__("ended_at",
                                                                      s["grants"][1]["ended_at"]),
    "grant until a time": lambda s: s["grants"][0].__setitem__("until", "2030-03-05T00:00:00Z"),
    "unknown dispute status": lambda s: s["disputes"][0].__setitem__("status", "closed"),
    "resolved dispute without a resolution": lambda s: s["disputes"][0].__setitem__(
        "resolution", None),
    "evidence without a party": lambda s: s["disputes"][0]["evidence"][0].pop("party"),
    "evidence id of the wrong kind": lambda s: s["disputes"][0]["evidence"][0].__setitem__(
        "id", "D1"),
    "claim as a number": lambda s: s["disputes"][0].__setitem__("claim", 400),
    "mediation notes hidden from a curator": lambda s: s["disputes"][0].__setitem__(
        "mediation_notes", None),
    "disclosure under a milestone id": lambda s: s["disclosures"][0].__setitem__(
        "agreement", "M1"),
    "amendment changing the status": lambda s: s["milestones"][3]["amendment"][
        "changes"].__setitem__("status", "accepted"),
    "released milestone without closed_at": lambda s: s["milestones"][6].__setitem__(
        "closed_at", None),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_schema_refuses_what_breaks_the_contract(app: Engagements, eur: Builder,
                                                     mutation: str) -> None:
    shown = state(app, eur.id, CURATOR)
    assert not schema_errors("engagement", shown)
    broken = copy.deepcopy(shown)
    MUTATIONS[mutation](broken)
    assert schema_errors("engagement", broken), f"the schema accepts: {mutation}"


def test_the_schema_accepts_fields_added_later(app: Engagements, eur: Builder) -> None:
    """Readers must ignore unknown fields, so the schema allows them everywhere."""
    shown = state(app, eur.id, CURATOR)
    shown["risk_score"] = 3
    shown["milestones"][0]["invoice"] = None
    shown["grants"][0]["ticket"] = "OPS-7"
    shown["disputes"][0]["evidence"][0]["pages"] = 4
    assert_valid("engagement", shown)


# The real command line ---------------------------------------------------------------------


def ledger_command() -> list[str]:
    script = Path(sys.executable).with_name("ledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run([*ledger_command(), "--db", url, "--as", "curator:c", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_cli_prints_json_that_matches_the_schemas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    on_disk = open_ledger(url, clock=Clock())
    try:
        built = build_eur(on_disk, tmp_path)
        expected = state(on_disk, built.id, CURATOR)
    finally:
        on_disk.close()
    eid = str(built.id)

    shown = run_cli(url, "engagement", "show", eid, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout)
    assert_valid("engagement", printed)
    assert printed == expected
    assert not convention_problems(printed, "EUR")

    listed = run_cli(url, "history", eid, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert_valid("history", rows)
    assert len(rows) == printed["version"]

    at = run_cli(url, "engagement", "show", eid, "--at", rows[4]["timestamp"], "--format", "json")
    assert at.returncode == 0, at.stderr
    assert_valid("engagement", json.loads(at.stdout))
    assert json.loads(at.stdout)["version"] == 5

    replayed = run_cli(url, "replay", eid, "--version", "3", "--format", "json")
    assert replayed.returncode == 0, replayed.stderr
    assert_valid("replay", json.loads(replayed.stdout))

    refused = run_cli(url, "engagement", "show", eid, "--version", "0", "--format", "json")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.startswith("ledger: ") and refused.stderr.count("\n") == 1


# The documentation -------------------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_event_type_is_documented() -> None:
    text = doc_text()
    missing = sorted(name for name in EVENT_CLASSES if f"`{name}`" not in text)
    assert not missing, f"docs/json-contract.md does not list event type(s) {missing}"


def test_every_status_value_is_documented() -> None:
    defs = SCHEMA["engagement"]["$defs"]
    enums = [defs["engagementStatus"]["enum"], SCHEMA["engagement"]["properties"]["outcome"]["enum"],
             defs["agreement"]["properties"]["status"]["enum"],
             defs["agreementVersion"]["properties"]["status"]["enum"],
             defs["milestone"]["properties"]["status"]["enum"],
             defs["grant"]["properties"]["status"]["enum"],
             defs["dispute"]["properties"]["status"]["enum"]]
    text = doc_text()
    missing = sorted({v for enum in enums for v in enum if v is not None and f"`{v}`" not in text})
    assert not missing, f"docs/json-contract.md does not name status value(s) {missing}"


def required_fields(schema: Any) -> set[str]:
    """Every field name any object of the schema requires, at any depth."""
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema.get("required", []))
        for value in schema.values():
            found |= required_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= required_fields(value)
    return found


def test_every_field_is_documented() -> None:
    text = doc_text()
    fields = set().union(*(required_fields(schema) for schema in SCHEMA.values()))
    assert {"id", "money", "signatures", "mediation_notes", "command_id", "path"} <= fields
    missing = sorted(f for f in fields if f"`{f}`" not in text)
    assert not missing, f"docs/json-contract.md does not describe field(s) {missing}"


EXAMPLE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.DOTALL)


def test_the_documented_examples_match_the_schemas() -> None:
    examples = EXAMPLE.findall(doc_text())
    assert sorted(name for name, _ in examples) == ["engagement", "history", "replay"]
    for name, body in examples:
        assert_valid(name, json.loads(body))
