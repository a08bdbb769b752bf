"""Acceptance: one engagement walked through the `ledger` command line, as a user would.

Open, interview, NDA and SOW drafted, reviewed and signed by both parties, two milestones
defined and funded, one submitted, sent back, submitted again, accepted and released, the
other cancelled, the engagement closed; on SQLite and on PostgreSQL, checking
`ledger engagement show ID --format json` after every step, then the history, a replay and
earlier versions, and a few refusals on the way (exit codes of DESIGN section 5).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from cli_helpers import (
    UUID_LINE,
    describe,
    expect_json,
    expect_ok,
    expect_refusal,
    run_ledger,
    run_ledger_together,
)

CURATOR = "curator:cara"
CLIENT = "client:acme"
CONTRACTOR = "contractor:bo"
AUDITOR = "auditor:ann"

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")

#: Every event the walk records, in order (DESIGN: past-tense short names).
EXPECTED_TYPES = [
    ("EngagementOpened", "curator", "cara"),
    ("InterviewRecorded", "curator", "cara"),
    ("AgreementDrafted", "curator", "cara"),
    ("AgreementDrafted", "curator", "cara"),
    ("AgreementReviewed", "curator", "cara"),
    ("AgreementReviewed", "curator", "cara"),
    ("AgreementSigned", "client", "acme"),
    ("AgreementSigned", "contractor", "bo"),
    ("AgreementSigned", "client", "acme"),
    ("AgreementSigned", "contractor", "bo"),
    ("MilestoneDefined", "curator", "cara"),
    ("MilestoneDefined", "curator", "cara"),
    ("MilestoneFunded", "client", "acme"),
    ("MilestoneFunded", "client", "acme"),
    ("WorkSubmitted", "contractor", "bo"),
    ("ChangesRequested", "client", "acme"),
    ("WorkSubmitted", "contractor", "bo"),
    ("MilestoneAccepted", "client", "acme"),
    ("PaymentReleased", "client", "acme"),
    ("MilestoneCancelled", "client", "acme"),
    ("EngagementClosed", "curator", "cara"),
]


#: A command that must be refused: (actor or None, arguments, exit code).
Refusal = tuple[str | None, tuple[str, ...], int]


class Walk:
    """One engagement driven through the CLI; remembers the JSON state seen after each step."""

    def __init__(self, db_url: str, folder: Path) -> None:
        self.db_url = db_url
        self.folder = folder
        self.id: str | None = None
        self.states: dict[int, dict[str, Any]] = {}

    def run(self, actor: str | None, *args: str) -> subprocess.CompletedProcess[str]:
        return run_ledger(self.db_url, actor, *args, cwd=self.folder)

    def step(self, actor: str, *args: str, prints: str | None = None,
             refusals: tuple[Refusal, ...] = ()) -> dict[str, Any]:
        """Runs a writing command that must succeed, then returns `engagement show` as JSON.

        `refusals` are commands that must be refused, run side by side with that `show` (they
        read the same state and must record nothing: the next step's version would show it).
        """
        result = expect_ok(self.run(actor, *args))
        if prints is not None:
            assert result.stdout == prints + "\n", describe(result)
        state = self.show(refusals=refusals)
        assert state["version"] == len(self.states) + 1, (
            f"after `{' '.join(args)}` expected version {len(self.states) + 1}, got "
            f"{state['version']}: a command recorded more or less than one event")
        self.states[state["version"]] = state
        return state

    def show(self, *extra: str, actor: str = AUDITOR,
             refusals: tuple[Refusal, ...] = ()) -> dict[str, Any]:
        assert self.id is not None
        show = (self.db_url, actor, ("engagement", "show", self.id, *extra, "--format", "json"))
        results = run_ledger_together(
            [show] + [(self.db_url, who, tuple(argv)) for who, argv, _code in refusals],
            cwd=self.folder)
        for (_who, _argv, code), refused in zip(refusals, results[1:], strict=True):
            expect_refusal(refused, code)
        state = expect_json(results[0])
        check_invariants(state)
        return state

    def milestone(self, state: dict[str, Any], milestone_id: str) -> dict[str, Any]:
        found = [m for m in state["milestones"] if m["id"] == milestone_id]
        assert len(found) == 1, state["milestones"]
        return found[0]


def check_invariants(state: dict[str, Any]) -> None:
    """What holds in every state: ids, timestamps, decimal strings, money conserved (rule 7)."""
    assert str(uuid.UUID(state["id"])) == state["id"]
    assert state["currency"] == "EUR"
    assert TIMESTAMP.fullmatch(state["opened_at"]), state["opened_at"]
    assert TIMESTAMP.fullmatch(state["updated_at"]), state["updated_at"]
    money = state["money"]
    for key in ("funded", "released", "refunded", "escrow", "committed"):
        assert re.fullmatch(r"\d+\.\d\d", money[key]), (key, money[key])
    assert re.fullmatch(r"\d+\.\d\d", state["budget"]), state["budget"]
    funded, released, refunded, escrow = (Decimal(money[k]) for k in
                                          ("funded", "released", "refunded", "escrow"))
    assert funded == released + refunded + escrow, money
    assert Decimal(money["committed"]) <= Decimal(state["budget"]), money
    for milestone in state["milestones"]:
        assert re.fullmatch(r"\d+\.\d\d", milestone["amount"]), milestone
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", milestone["due"]), milestone
    # Every field is always present (null or [] when empty).
    for key in ("outcome", "closed_at", "interviews", "agreements", "milestones", "grants",
                "disputes", "disclosures", "notes", "corrections", "playbook_acknowledgements"):
        assert key in state, key


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_engagement_through_the_command_line(db_url: str, tmp_path: Path) -> None:
    walk = Walk(db_url, tmp_path)
    nda = tmp_path / "nda.pdf"
    nda.write_bytes(b"%PDF-1.4 mutual non-disclosure agreement, Acme and Bo Chen\n")
    sow = tmp_path / "sow.pdf"
    sow.write_bytes(b"%PDF-1.4 statement of work: data pipeline, two milestones\n")

    # -- 1. Open. -----------------------------------------------------------------------------
    opened = expect_ok(walk.run(
        CURATOR, "engagement", "open", "--title", "Data pipeline", "--client", "Acme",
        "--contractor", "Bo Chen", "--curator", "cara", "--budget", "2500", "--currency", "EUR",
    ))
    assert UUID_LINE.fullmatch(opened.stdout), describe(opened)
    walk.id = opened.stdout.strip()
    state = walk.show()
    walk.states[1] = state
    assert state["id"] == walk.id
    assert state["version"] == 1
    assert state["status"] == "vetting"
    assert state["outcome"] is None and state["closed_at"] is None
    assert (state["title"], state["client"], state["contractor"], state["curator"]) == (
        "Data pipeline", "Acme", "Bo Chen", "cara")
    assert state["budget"] == "2500.00"
    assert (state["inspection_days"], state["grace_days"]) == (14, 7)
    assert state["redacted"] is False
    assert state["interviews"] == [] and state["agreements"] == [] and state["milestones"] == []
    assert state["money"] == {"funded": "0.00", "released": "0.00", "refunded": "0.00",
                              "escrow": "0.00", "committed": "0.00"}
    assert state["opened_at"] == state["updated_at"]

    # -- 2. Interview: advance takes the engagement to contracting. ---------------------------
    state = walk.step(CURATOR, "interview", "record", walk.id, "--interviewer", "cara",
                      "--score", "scope_understanding=4", "--score", "timeline_realism=3",
                      "--scenario", "missed_deadline=pass",
                      "--red-flag", "Vague about past clients", "--notes", "Strong on SQL",
                      "--decision", "advance", prints="I1")
    assert state["status"] == "contracting"
    [interview] = state["interviews"]
    assert interview["id"] == "I1"
    assert interview["interviewer"] == "cara"
    assert interview["scores"] == {"scope_understanding": 4, "timeline_realism": 3}
    assert interview["scenarios"] == {"missed_deadline": "pass"}
    assert interview["red_flags"] == ["Vague about past clients"]
    assert interview["notes"] == "Strong on SQL"
    assert interview["decision"] == "advance"
    assert TIMESTAMP.fullmatch(interview["at"])

    # -- 3-4. NDA and SOW drafted. --------------------------------------------------------------
    state = walk.step(CURATOR, "agreement", "draft", walk.id, "--kind", "nda",
                      "--jurisdiction", "US-CA", "--document", str(nda), prints="A1")
    [a1] = state["agreements"]
    assert (a1["id"], a1["kind"], a1["jurisdiction"]) == ("A1", "nda", "US-CA")
    assert a1["status"] == "draft" and a1["in_force_version"] is None
    [v1] = a1["versions"]
    assert v1["version"] == 1 and v1["status"] == "draft"
    assert v1["sha256"] == sha256(nda)
    assert v1["reviewed_by"] is None and v1["reviewed_at"] is None
    assert v1["signatures"] == {"client": None, "contractor": None}

    # A contractor may not define a milestone: exit 4, nothing recorded (the next step's
    # version would show it).
    state = walk.step(CURATOR, "agreement", "draft", walk.id, "--kind", "sow",
                      "--jurisdiction", "DE", "--document", str(sow), prints="A2", refusals=(
                          (CONTRACTOR, ("milestone", "add", walk.id, "--title", "Schema",
                                        "--amount", "100", "--due", "2027-01-31"), 4),
                      ))
    a1, a2 = state["agreements"]
    assert (a2["id"], a2["kind"], a2["jurisdiction"], a2["status"]) == ("A2", "sow", "DE", "draft")
    assert a2["versions"][0]["sha256"] == sha256(sow)
    assert state["status"] == "contracting"

    # -- 5-6. Counsel reviews both. ---------------------------------------------------------------
    state = walk.step(CURATOR, "agreement", "review", walk.id, "A1", "--reviewer", "L. Ortiz")
    v1 = state["agreements"][0]["versions"][0]
    assert v1["reviewed_by"] == "L. Ortiz" and TIMESTAMP.fullmatch(v1["reviewed_at"])
    assert state["agreements"][0]["status"] == "draft"
    state = walk.step(CURATOR, "agreement", "review", walk.id, "A2", "--reviewer", "K. Braun")
    assert state["agreements"][1]["versions"][0]["reviewed_by"] == "K. Braun"

    # -- 7-8. NDA signed by both parties. --------------------------------------------------------
    state = walk.step(CLIENT, "agreement", "sign", walk.id, "A1", "--party", "client",
                      "--signer", "Ann Lee")
    a1 = state["agreements"][0]
    assert a1["status"] == "draft" and a1["in_force_version"] is None
    signatures = a1["versions"][0]["signatures"]
    assert signatures["client"]["signer"] == "Ann Lee"
    assert TIMESTAMP.fullmatch(signatures["client"]["at"])
    assert signatures["contractor"] is None

    state = walk.step(CONTRACTOR, "agreement", "sign", walk.id, "A1", "--party", "contractor",
                      "--signer", "Bo Chen")
    a1, a2 = state["agreements"]
    assert a1["status"] == "signed" and a1["in_force_version"] == 1
    assert a1["versions"][0]["status"] == "signed"
    assert a1["versions"][0]["signatures"]["contractor"]["signer"] == "Bo Chen"
    assert a1["versions"][0]["signatures"]["client"]["signer"] == "Ann Lee"
    assert a2["status"] == "draft"
    assert state["status"] == "contracting", "an NDA alone does not make the engagement active"

    # -- 9-10. SOW signed by both parties: the engagement becomes active. -------------------------
    state = walk.step(CLIENT, "agreement", "sign", walk.id, "A2", "--party", "client",
                      "--signer", "Ann Lee")
    assert state["agreements"][1]["status"] == "draft"
    assert state["status"] == "contracting"
    state = walk.step(CONTRACTOR, "agreement", "sign", walk.id, "A2", "--party", "contractor",
                      "--signer", "Bo Chen")
    a2 = state["agreements"][1]
    assert a2["status"] == "signed" and a2["in_force_version"] == 1
    assert a2["versions"][0]["status"] == "signed"
    assert {p: s["signer"] for p, s in a2["versions"][0]["signatures"].items()} == {
        "client": "Ann Lee", "contractor": "Bo Chen"}
    assert state["status"] == "active"
    active_version = state["version"]

    # -- 11-12. Two milestones defined. -----------------------------------------------------------
    state = walk.step(CURATOR, "milestone", "add", walk.id, "--title", "Schema design",
                      "--amount", "1500", "--due", "2027-01-31",
                      "--criteria", "Reviewed ERD and migration plan", prints="M1")
    [m1] = state["milestones"]
    expected_m1 = {
        "id": "M1", "title": "Schema design", "criteria": "Reviewed ERD and migration plan",
        "status": "defined", "amount": "1500.00", "due": "2027-01-31", "submitted_at": None,
        "submissions": 0, "changes_requested": 0,
    }
    assert {key: m1.get(key, "<missing>") for key in expected_m1} == expected_m1
    assert state["money"]["committed"] == "1500.00"
    assert state["money"]["funded"] == "0.00"

    # A third milestone would break the budget (exit 3); a contractor may not fund (exit 4);
    # without --as nobody may (exit 2).
    state = walk.step(CURATOR, "milestone", "add", walk.id, "--title", "Loader",
                      "--amount", "1000.00", "--due", "2027-03-15", prints="M2", refusals=(
                          (CURATOR, ("milestone", "add", walk.id, "--title", "Extra",
                                     "--amount", "0.01", "--due", "2027-03-15"), 3),
                          (CONTRACTOR, ("milestone", "fund", walk.id, "M1"), 4),
                          (None, ("milestone", "fund", walk.id, "M1"), 2),
                      ))
    m2 = walk.milestone(state, "M2")
    assert (m2["status"], m2["amount"], m2["due"], m2["criteria"]) == (
        "defined", "1000.00", "2027-03-15", None)
    assert state["money"]["committed"] == "2500.00"

    # -- 13-14. Both funded into escrow. ----------------------------------------------------------
    # Funding twice is refused by the transition table: exit 3, nothing recorded.
    state = walk.step(CLIENT, "milestone", "fund", walk.id, "M1", refusals=(
        (CLIENT, ("milestone", "fund", walk.id, "M1"), 3),
    ))
    assert walk.milestone(state, "M1")["status"] == "funded"
    assert walk.milestone(state, "M2")["status"] == "defined"
    assert state["money"] == {"funded": "1500.00", "released": "0.00", "refunded": "0.00",
                              "escrow": "1500.00", "committed": "2500.00"}
    funded_m1_version = state["version"]

    state = walk.step(CLIENT, "milestone", "fund", walk.id, "M2")
    assert [m["status"] for m in state["milestones"]] == ["funded", "funded"]
    assert state["money"] == {"funded": "2500.00", "released": "0.00", "refunded": "0.00",
                              "escrow": "2500.00", "committed": "2500.00"}

    # -- 15-17. Submitted, sent back, submitted again. -------------------------------------------
    state = walk.step(CONTRACTOR, "milestone", "submit", walk.id, "M1", "--note", "PR #42")
    m1 = walk.milestone(state, "M1")
    assert (m1["status"], m1["submissions"], m1["changes_requested"]) == ("submitted", 1, 0)
    assert TIMESTAMP.fullmatch(m1["submitted_at"])
    first_submission = m1["submitted_at"]

    state = walk.step(CLIENT, "milestone", "request-changes", walk.id, "M1",
                      "--reason", "No migration tests")
    m1 = walk.milestone(state, "M1")
    assert (m1["status"], m1["submissions"], m1["changes_requested"]) == (
        "changes_requested", 1, 1)
    assert state["money"]["escrow"] == "2500.00"

    state = walk.step(CONTRACTOR, "milestone", "submit", walk.id, "M1", "--note", "PR #43, tests")
    m1 = walk.milestone(state, "M1")
    assert (m1["status"], m1["submissions"], m1["changes_requested"]) == ("submitted", 2, 1)
    assert m1["submitted_at"] > first_submission

    # -- 18-19. Accepted and released. -----------------------------------------------------------
    state = walk.step(CLIENT, "milestone", "accept", walk.id, "M1")
    assert walk.milestone(state, "M1")["status"] == "accepted"
    assert state["money"]["escrow"] == "2500.00" and state["money"]["released"] == "0.00"

    # Closing with M2 still funded is refused: exit 3.
    state = walk.step(CLIENT, "milestone", "release", walk.id, "M1", refusals=(
        (CURATOR, ("engagement", "close", walk.id, "--outcome", "completed",
                   "--reason", "Delivered"), 3),
    ))
    assert walk.milestone(state, "M1")["status"] == "released"
    assert walk.milestone(state, "M2")["status"] == "funded"
    assert state["money"] == {"funded": "2500.00", "released": "1500.00", "refunded": "0.00",
                              "escrow": "1000.00", "committed": "2500.00"}

    # -- 20. The other milestone cancelled: its escrow is refunded. ------------------------------
    state = walk.step(CLIENT, "milestone", "cancel", walk.id, "M2", "--reason", "Descoped")
    assert walk.milestone(state, "M2")["status"] == "cancelled"
    assert walk.milestone(state, "M1")["status"] == "released"
    assert state["money"] == {"funded": "2500.00", "released": "1500.00", "refunded": "1000.00",
                              "escrow": "0.00", "committed": "1500.00"}

    # -- 21. Closed. ------------------------------------------------------------------------------
    # A closed engagement refuses every write but notes and corrections: exit 3.
    state = walk.step(CURATOR, "engagement", "close", walk.id, "--outcome", "completed",
                      "--reason", "Delivered", refusals=(
                          (CLIENT, ("milestone", "fund", walk.id, "M2"), 3),
                      ))
    assert state["status"] == "closed" and state["outcome"] == "completed"
    assert TIMESTAMP.fullmatch(state["closed_at"])
    assert state["closed_at"] == state["updated_at"]
    assert state["money"]["escrow"] == "0.00"
    final_version = state["version"]
    assert final_version == len(EXPECTED_TYPES)
    assert sorted(walk.states) == list(range(1, final_version + 1))

    # -- Reading afterwards (independent reads, run side by side). ------------------------------
    earlier = (1, active_version, funded_m1_version)
    reads = run_ledger_together([
        (db_url, AUDITOR, ("history", walk.id, "--format", "json")),
        (db_url, CURATOR, ("replay", walk.id, "--version", str(funded_m1_version),
                           "--format", "json")),
        *[(db_url, AUDITOR, ("engagement", "show", walk.id, "--version", str(version),
                             "--format", "json")) for version in earlier],
        (db_url, CLIENT, ("engagement", "show", walk.id, "--at",
                          walk.states[active_version]["updated_at"], "--format", "json")),
        # Refused as input (exit 2), one line on stderr, no traceback: a version that does not
        # exist yet, and an engagement that does not exist.
        (db_url, AUDITOR, ("engagement", "show", walk.id, "--version", str(final_version + 1),
                           "--format", "json")),
        (db_url, AUDITOR, ("engagement", "show", str(uuid.uuid4()), "--format", "json")),
        (db_url, CLIENT, ("milestone", "fund", str(uuid.uuid4()), "M1")),
    ], cwd=tmp_path)
    history_result, replay_result, *version_results, at_result = reads[:-3]
    for refused in reads[-3:]:
        expect_refusal(refused, 2)

    # History: every event, versions 1..N, past-tense types, the actors who acted.
    history = expect_json(history_result)
    assert [row["version"] for row in history] == list(range(1, final_version + 1))
    assert [(row["type"], row["role"], row["actor"]) for row in history] == EXPECTED_TYPES
    for row in history:
        assert TIMESTAMP.fullmatch(row["timestamp"]), row
        assert row["summary"], row
    assert [row["timestamp"] for row in history] == sorted(row["timestamp"] for row in history)
    # Each step's `updated_at` is the timestamp of the event it recorded.
    assert [row["timestamp"] for row in history] == [
        walk.states[v]["updated_at"] for v in range(1, final_version + 1)]

    # Earlier versions show exactly what was seen then; so does the time of one.
    for version, result in zip(earlier, version_results, strict=True):
        then = expect_json(result)
        assert then == walk.states[version], f"engagement show --version {version} differs"
    assert expect_json(at_result) == walk.states[active_version]

    # Replay: the state then, and what the event changed.
    replay = expect_json(replay_result)
    assert set(replay) == {"state", "changes"}
    assert replay["state"] == walk.states[funded_m1_version]
    changes = {c["path"]: (c["before"], c["after"]) for c in replay["changes"]}
    assert changes["milestones.M1.status"] == ("defined", "funded")
    assert changes["money.funded"] == ("0.00", "1500.00")
    assert changes["money.escrow"] == ("0.00", "1500.00")
    assert "milestones.M2.status" not in changes
    assert "version" not in changes


def test_unknown_and_malformed_engagement_ids_on_an_empty_database(db_url: str,
                                                                     tmp_path: Path) -> None:
    """Any command works on a new, empty database: an id it does not hold is refused as input."""
    for actor, args in (
        (AUDITOR, ("engagement", "show", str(uuid.uuid4()), "--format", "json")),
        (AUDITOR, ("history", "not-a-uuid", "--format", "json")),
        (CLIENT, ("milestone", "fund", "6f1c", "M1")),
    ):
        expect_refusal(run_ledger(db_url, actor, *args, cwd=tmp_path), 2)
