"""Who may do what: every cell of DESIGN section 1's table for the engagement, interview,
agreement and milestone commands, and reading.

Each command is tried by every role on a fresh in-memory engagement brought to where the
command would succeed. The roles the table allows succeed and are recorded as themselves; every
other role is refused with NotPermitted (exit 4) and nothing is recorded: the same last
notification id, engagement version, stored events, and state through the cache and replayed.
An admin may do everything, and sign for either party.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Engagements
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
    ReviewAgreement,
    SignAgreement,
    SubmitWork,
)
from ledger.engagement import Engagement
from ledger.errors import LedgerError, NotPermitted
from ledger.roles import Actor
from ledger.views import engagement_state, history_row

ACTORS = {
    "curator": Actor.parse("curator:cara"),
    "client": Actor.parse("client:acme"),
    "contractor": Actor.parse("contractor:bo"),
    "auditor": Actor.parse("auditor:ann"),
    "admin": Actor.parse("admin:root"),
}
ROLES = tuple(ACTORS)
CURATOR, CLIENT, CONTRACTOR, AUDITOR = (ACTORS[r] for r in ("curator", "client", "contractor",
                                                            "auditor"))
HASH_A, HASH_B, HASH_C, HASH_D = "a" * 64, "b" * 64, "c" * 64, "d" * 64


# Observing and building ---------------------------------------------------------------------------


def stored(app: Engagements, eid: UUID) -> list[tuple[int, str, bytes]]:
    return [(e.originator_version, e.topic, bytes(e.state)) for e in app.recorder.select_events(eid)]


def snapshot(app: Engagements, eid: UUID) -> dict[str, Any]:
    current = app.engagement(eid, AUDITOR)
    seen = engagement_state(current, AUDITOR)
    replayed = app.repository.get(eid, version=current.version)
    assert engagement_state(replayed, AUDITOR) == seen, "the cached engagement differs from the store"
    return {"last": app.recorder.max_notification_id(), "version": current.version,
            "state": seen, "events": stored(app, eid)}


def run(app: Engagements, eid: UUID, command: type[Command], actor: Actor, **fields: Any) -> Any:
    return app.execute(command.build(engagement_id=eid, **fields), actor)


def open_engagement(app: Engagements, status: str = "vetting") -> UUID:
    eid = app.open_engagement(OpenEngagement.build(
        title="Data pipeline", client="Acme", contractor="Bo", curator="cara", budget="10000",
        currency="EUR"), CURATOR)
    if status == "vetting":
        return eid
    run(app, eid, RecordInterview, CURATOR, interviewer="cara", scores={"qualifications": 4},
        decision="advance")
    if status == "contracting":
        return eid
    for aid, kind, sha in (("A1", "nda", HASH_A), ("A2", "sow", HASH_B)):
        assert run(app, eid, DraftAgreement, CURATOR, kind=kind, jurisdiction="US-CA",
                   sha256=sha) == aid
        run(app, eid, SignAgreement, CLIENT, agreement_id=aid, party="client", signer="Ann")
        run(app, eid, SignAgreement, CONTRACTOR, agreement_id=aid, party="contractor",
            signer="Bo")
    assert app.engagement(eid, AUDITOR).status == "active"
    return eid


def milestone_in(app: Engagements, eid: UUID, status: str) -> str:
    m = run(app, eid, DefineMilestone, CURATOR, title="Phase", amount="1000", due="2027-01-31")
    steps = [("funded", FundMilestone, CLIENT, {}),
             ("submitted", SubmitWork, CONTRACTOR, {"note": "PR #1"}),
             ("accepted", AcceptMilestone, CLIENT, {})]
    for reached, command, actor, fields in steps:
        if status == "defined":
            break
        run(app, eid, command, actor, milestone_id=m, **fields)
        if status == reached:
            break
    assert app.engagement(eid, AUDITOR).milestones[m].status == status
    return m


@dataclass
class Case:
    """A command, the roles section 1 gives it, and how to set up an engagement where it succeeds."""

    command: type[Command]
    allowed: tuple[str, ...]
    setup: Callable[[Engagements], tuple[UUID, dict[str, Any]]]
    then: Callable[[Engagement], bool]
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.command.__name__


def at(status: str, **fields: Any) -> Callable[[Engagements], tuple[UUID, dict[str, Any]]]:
    return lambda app: (open_engagement(app, status), fields)


def with_milestone(status: str, **fields: Any) -> Callable[[Engagements], tuple[UUID, dict[str, Any]]]:
    def setup(app: Engagements) -> tuple[UUID, dict[str, Any]]:
        eid = open_engagement(app, "active")
        return eid, {"milestone_id": milestone_in(app, eid, status), **fields}
    return setup


def with_draft(**fields: Any) -> Callable[[Engagements], tuple[UUID, dict[str, Any]]]:
    def setup(app: Engagements) -> tuple[UUID, dict[str, Any]]:
        eid = open_engagement(app, "active")
        aid = run(app, eid, DraftAgreement, CURATOR, kind="ip", jurisdiction="DE", sha256=HASH_C)
        return eid, {"agreement_id": aid, **fields}
    return setup


def milestone_is(status: str) -> Callable[[Engagement], bool]:
    return lambda e: e.milestones["M1"].status == status


CURATOR_ONLY = ("curator", "admin")
CLIENT_ONLY = ("client", "admin")
CONTRACTOR_ONLY = ("contractor", "admin")

CASES = [
    Case(ReassignCurator, CURATOR_ONLY, at("active", curator="dan", reason="Cara on leave"),
         lambda e: e.curator == "dan"),
    Case(ChangeBudget, CLIENT_ONLY, at("active", budget="12000.50", reason="More scope"),
         lambda e: str(e.budget) == "12000.50"),
    Case(LogNote, CURATOR_ONLY, at("active", text="Contractor asked about staging access"),
         lambda e: e.notes[-1].text == "Contractor asked about staging access"),
    Case(RecordCorrection, CURATOR_ONLY, at("active", version=2, reason="Wrong interviewer"),
         lambda e: e.corrections[-1].ref == "2"),
    Case(CloseEngagement, CURATOR_ONLY, at("active", outcome="terminated", reason="Budget cut"),
         lambda e: (e.status, e.outcome) == ("closed", "terminated")),
    Case(AcknowledgePlaybook, CONTRACTOR_ONLY, at("active", policy_version="2026.1"),
         lambda e: e.playbook[-1].text == "2026.1"),
    Case(RecordInterview, CURATOR_ONLY,
         at("vetting", interviewer="cara", scores={"scope_understanding": 4},
            scenarios={"missed_deadline": "pass"}, red_flags=["Vague on testing"],
            notes="Strong", decision="advance"),
         lambda e: "I1" in e.interviews and e.status == "contracting"),
    Case(DraftAgreement, CURATOR_ONLY,
         at("active", kind="nca", jurisdiction="DE", sha256=HASH_D),
         lambda e: e.agreements["A3"].kind == "nca"),
    Case(ReviewAgreement, CURATOR_ONLY, at("active", agreement_id="A1", reviewer="Counsel CA"),
         lambda e: e.agreements["A1"].latest.reviewed_by == "Counsel CA"),
    Case(SignAgreement, CLIENT_ONLY, with_draft(party="client", signer="Ann"),
         lambda e: "client" in e.agreements["A3"].latest.signatures, name="SignAgreement-client"),
    Case(SignAgreement, CONTRACTOR_ONLY, with_draft(party="contractor", signer="Bo"),
         lambda e: "contractor" in e.agreements["A3"].latest.signatures,
         name="SignAgreement-contractor"),
    Case(AmendAgreement, CURATOR_ONLY,
         at("active", agreement_id="A2", sha256=HASH_D, reason="New rates"),
         lambda e: e.agreements["A2"].latest.version == 2),
    Case(DefineMilestone, CURATOR_ONLY,
         at("active", title="Design", amount="2500", due="2027-01-31", criteria="Reviewed"),
         lambda e: e.milestones["M1"].status == "defined"),
    Case(FundMilestone, CLIENT_ONLY, with_milestone("defined"), milestone_is("funded")),
    Case(SubmitWork, CONTRACTOR_ONLY, with_milestone("funded", note="PR #7"),
         milestone_is("submitted")),
    Case(RequestChanges, CLIENT_ONLY, with_milestone("submitted", reason="No tests"),
         milestone_is("changes_requested")),
    Case(AcceptMilestone, CLIENT_ONLY, with_milestone("submitted"), milestone_is("accepted")),
    Case(ReleasePayment, CLIENT_ONLY, with_milestone("accepted"), milestone_is("released")),
    Case(CancelMilestone, CLIENT_ONLY, with_milestone("funded", reason="Descoped"),
         milestone_is("cancelled")),
]
CELLS = [pytest.param(case, role, id=f"{case.name}-{role}") for case in CASES for role in ROLES]


def test_the_table_matches_design_section_1() -> None:
    """The cases below hold the table as DESIGN states it; a typo here would hide a hole."""
    table = {case.name: case.allowed for case in CASES}
    curator = {"ReassignCurator", "LogNote", "RecordCorrection", "CloseEngagement",
               "RecordInterview", "DraftAgreement", "ReviewAgreement", "AmendAgreement",
               "DefineMilestone"}
    client = {"ChangeBudget", "FundMilestone", "RequestChanges", "AcceptMilestone",
              "ReleasePayment", "CancelMilestone", "SignAgreement-client"}
    contractor = {"AcknowledgePlaybook", "SubmitWork", "SignAgreement-contractor"}
    assert set(table) == curator | client | contractor
    for name, allowed in table.items():
        who = "curator" if name in curator else "client" if name in client else "contractor"
        assert allowed == (who, "admin"), name


@pytest.mark.parametrize("case,role", CELLS)
def test_role_table(app: Engagements, case: Case, role: str) -> None:
    actor = ACTORS[role]
    eid, fields = case.setup(app)
    before = snapshot(app, eid)
    command = case.command.build(engagement_id=eid, **fields)

    if role in case.allowed:
        app.execute(command, actor)
        after = snapshot(app, eid)
        assert after["last"] > before["last"]
        new = list(app.events.get(eid))[before["version"]:]
        assert new, "nothing was recorded"
        assert {(e.actor, e.role) for e in new} == {(actor.name, role)}
        assert case.then(app.engagement(eid, AUDITOR)), "the command did not take effect"
    else:
        with pytest.raises(LedgerError) as info:
            app.execute(command, actor)
        assert type(info.value) is NotPermitted, f"{type(info.value).__name__}: {info.value}"
        assert info.value.exit_code == 4
        assert snapshot(app, eid) == before, "a refused command changed the store or the cache"


@pytest.mark.parametrize("role", ROLES)
def test_open_engagement(app: Engagements, role: str) -> None:
    actor = ACTORS[role]
    command = OpenEngagement.build(title="Data pipeline", client="Acme", contractor="Bo",
                                   curator="cara", budget="10000", currency="EUR",
                                   command_id=f"open-{role}")
    if role in CURATOR_ONLY:
        eid = app.open_engagement(command, actor)
        assert eid == Engagement.create_id(f"open-{role}")
        [opened] = list(app.events.get(eid))
        assert (opened.actor, opened.role) == (actor.name, role)
        assert app.engagement(eid, AUDITOR).status == "vetting"
    else:
        last = app.recorder.max_notification_id()
        with pytest.raises(LedgerError) as info:
            app.open_engagement(command, actor)
        assert type(info.value) is NotPermitted
        assert info.value.exit_code == 4
        assert app.recorder.max_notification_id() == last
        assert list(app.recorder.select_events(Engagement.create_id(f"open-{role}"))) == []


@pytest.mark.parametrize("party,other", [("client", "contractor"), ("contractor", "client")])
def test_a_party_signs_only_as_itself_and_an_admin_for_either(app: Engagements, party: str,
                                                             other: str) -> None:
    eid, fields = with_draft()(app)
    before = snapshot(app, eid)
    with pytest.raises(NotPermitted):
        run(app, eid, SignAgreement, ACTORS[party], party=other, signer="Someone", **fields)
    assert snapshot(app, eid) == before
    run(app, eid, SignAgreement, ACTORS["admin"], party=other, signer="Notary", **fields)
    run(app, eid, SignAgreement, ACTORS["admin"], party=party, signer="Notary", **fields)
    signed = app.engagement(eid, AUDITOR).agreements[fields["agreement_id"]]
    assert (signed.status, set(signed.latest.signatures)) == ("signed", {"client", "contractor"})


def test_the_name_after_the_role_is_recorded_not_matched_against_the_parties(
        app: Engagements) -> None:
    eid, fields = with_milestone("defined")(app)
    stranger = Actor.parse("client:someone-else")  # the engagement's client is Acme
    run(app, eid, FundMilestone, stranger, **fields)
    last = list(app.events.get(eid))[-1]
    assert (last.actor, last.role, type(last).__name__) == ("someone-else", "client",
                                                            "MilestoneFunded")
    assert last.os_user


@pytest.mark.parametrize("role", ["curator", "client", "contractor", "auditor"])
def test_replaying_another_roles_command_id_is_still_not_permitted(app: Engagements,
                                                                   role: str) -> None:
    """A role the table refuses must not get an answer by re-sending a command id it saw."""
    eid = open_engagement(app, "active")
    allowed_by_role = {
        "curator": (ChangeBudget, CLIENT, {"budget": "20000", "reason": "More"}),
        "client": (DraftAgreement, CURATOR, {"kind": "nca", "jurisdiction": "DE",
                                             "sha256": HASH_D}),
        "contractor": (DraftAgreement, CURATOR, {"kind": "nca", "jurisdiction": "DE",
                                                 "sha256": HASH_D}),
        "auditor": (LogNote, CURATOR, {"text": "Kick-off on Monday"}),
    }
    command, owner, fields = allowed_by_role[role]
    built = command.build(engagement_id=eid, command_id="cmd-1", **fields)
    first = app.execute(built, owner)
    assert app.execute(built, owner) == first  # the same command, same answer (rule 12)
    before = snapshot(app, eid)
    with pytest.raises(NotPermitted):
        app.execute(built, ACTORS[role])
    assert snapshot(app, eid) == before


@pytest.mark.parametrize("text", [None, "", "boss:bob", "curator", "curator:", "curator:  ",
                                  "auditor:" + "x" * 201, "client:a\x07b"])
def test_unknown_roles_and_bad_actors_are_invalid_input(text: str | None) -> None:
    from ledger.errors import InvalidInput

    with pytest.raises(InvalidInput):
        Actor.parse(text)


def test_roles_are_read_case_insensitively_and_names_kept() -> None:
    actor = Actor.parse("Client:Acme Ltd")
    assert (actor.role.value, actor.name) == ("client", "Acme Ltd")


# Reading -----------------------------------------------------------------------------------------


@pytest.fixture
def interviewed(app: Engagements) -> UUID:
    eid = app.open_engagement(OpenEngagement.build(
        title="Data pipeline", client="Acme", contractor="Bo", curator="cara", budget="10000",
        currency="EUR"), CURATOR)
    run(app, eid, RecordInterview, CURATOR, interviewer="cara",
        scores={"scope_understanding": 2}, red_flags=["Evasive about references"],
        notes="Private assessment", decision="advance")
    return eid


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_read_and_only_the_contractor_reads_redacted(app: Engagements,
                                                                   interviewed: UUID,
                                                                   role: str) -> None:
    actor = ACTORS[role]
    before = app.recorder.max_notification_id()
    seen = engagement_state(app.engagement(interviewed, actor), actor)
    assert seen["id"] == str(interviewed)
    assert seen["status"] == "contracting"
    if role == "contractor":
        assert seen["redacted"] is True
        assert seen["interviews"] is None
        assert "Evasive" not in str(seen) and "Private assessment" not in str(seen)
    else:
        assert seen["redacted"] is False
        [interview] = seen["interviews"]
        assert interview["red_flags"] == ["Evasive about references"]
        assert interview["notes"] == "Private assessment"
    past = engagement_state(app.engagement(interviewed, actor, version=1), actor)
    assert past["redacted"] is (role == "contractor")
    rows = [history_row(e, actor) for e in app.history(interviewed, actor)]
    assert [r["type"] for r in rows] == ["EngagementOpened", "InterviewRecorded"]
    if role == "contractor":
        assert "Evasive" not in str(rows)
    assert app.recorder.max_notification_id() == before  # reading records nothing
