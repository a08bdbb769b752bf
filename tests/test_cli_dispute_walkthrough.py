"""Acceptance: a disputed engagement walked through the `ledger` command line, on SQLite and
PostgreSQL.

The engagement is brought to `active` (interview, NDA A1 and SOW A2 signed by both) through
the application service on the same database, to keep the number of processes down; the
command line's own path through those steps is walked in test_cli_walkthrough.py. From there
every step runs as `ledger ...` in its own process:

M1: defined and funded, a disclosure recorded, access granted (a grant past due-plus-grace is
refused, exit 3), work submitted, a dispute opened (accept and release refused while it is
open, exit 3), evidence from both parties (each as itself; the wrong party is exit 4), a
resolution missing a finding refused (exit 3), a split resolution accepted: the grant is
revoked in the same save, the money adds up, and `engagement show --version` at the dispute's
opening still shows the grant active and the money in escrow.

M2: defined and funded, an extension requested by the contractor and granted by the client,
an amendment proposed by the curator and signed by both parties (in effect only after the
second signature), a second dispute opened and escalated: the evidence packet is a ZIP with
packet.json and summary.pdf naming the dispute and the evidence hashes, and its SHA-256 is
the one recorded. Finally both sweeps run. `engagement show --format json` is checked after
every step.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import uuid
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf

from cli_helpers import (
    describe,
    expect_json,
    expect_ok,
    expect_refusal,
    run_ledger,
    run_ledger_together,
)
from factories import active_engagement

from ledger.application import open_ledger
from ledger.roles import Actor

CURATOR = "curator:cara"
CLIENT = "client:acme"
CONTRACTOR = "contractor:bo"
AUDITOR = "auditor:ann"

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")

#: A command that must be refused, run beside the step's `show`: (actor, arguments, exit code).
Refusal = tuple[str | None, tuple[str, ...], int]
#: Another JSON read of the state a step leaves, run beside its `show`: (actor, arguments).
Read = tuple[str, tuple[str, ...]]


class Walk:
    """One engagement driven through the CLI; keeps the JSON state seen at each version."""

    def __init__(self, db_url: str, folder: Path, engagement_id: str) -> None:
        self.db_url = db_url
        self.folder = folder
        self.id = engagement_id
        self.states: dict[int, dict[str, Any]] = {}
        self.version = 0
        self.read: list[Any] = []

    def run(self, actor: str | None, *args: str) -> subprocess.CompletedProcess[str]:
        return run_ledger(self.db_url, actor, *args, cwd=self.folder)

    def step(self, actor: str, *args: str, prints: str | None = None, events: int = 1,
             refusals: tuple[Refusal, ...] = (),
             reads: tuple[Read, ...] = ()) -> dict[str, Any]:
        """A writing command that must succeed and record `events` events; then the state.

        The refusals run side by side with the `show` that follows, against the same state;
        that they recorded nothing is seen by the next step's version. So do `reads`, other
        JSON reads of the same state, parsed into `self.read`.
        """
        result = expect_ok(self.run(actor, *args))
        if prints is not None:
            assert result.stdout == prints + "\n", describe(result)
        state = self.show(refusals=refusals, reads=reads)
        assert state["version"] == self.version + events, (
            f"`{' '.join(args)}` moved the version from {self.version} to {state['version']}; "
            f"expected {events} event(s)")
        self.version = state["version"]
        self.states[self.version] = state
        return state

    def show(self, *extra: str, actor: str = AUDITOR, refusals: tuple[Refusal, ...] = (),
             reads: tuple[Read, ...] = ()) -> dict[str, Any]:
        show = (self.db_url, actor, ("engagement", "show", self.id, *extra, "--format", "json"))
        results = run_ledger_together(
            [show] + [(self.db_url, who, tuple(argv)) for who, argv in reads]
            + [(self.db_url, who, tuple(argv)) for who, argv, _code in refusals],
            cwd=self.folder)
        for (_who, _argv, code), refused in zip(refusals, results[1 + len(reads):], strict=True):
            expect_refusal(refused, code)
        self.read = [expect_json(result) for result in results[1:1 + len(reads)]]
        state = expect_json(results[0])
        check_invariants(state)
        return state


def check_invariants(state: dict[str, Any]) -> None:
    """What holds in every state: money is conserved (rule 7), formats of the JSON contract."""
    assert str(uuid.UUID(state["id"])) == state["id"]
    money = state["money"]
    for key in ("funded", "released", "refunded", "escrow", "committed"):
        assert re.fullmatch(r"\d+\.\d\d", money[key]), (key, money[key])
    funded, released, refunded, escrow = (Decimal(money[k]) for k in
                                          ("funded", "released", "refunded", "escrow"))
    assert funded == released + refunded + escrow, money
    held = sum((Decimal(m["amount"]) for m in state["milestones"]
                if m["status"] in ("funded", "submitted", "changes_requested", "accepted",
                                   "disputed")), Decimal(0))
    assert escrow == held, (money, [(m["id"], m["status"]) for m in state["milestones"]])
    assert Decimal(money["committed"]) <= Decimal(state["budget"]), money
    for grant in state["grants"]:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", grant["until"]), grant
        assert TIMESTAMP.fullmatch(grant["granted_at"]), grant
    for dispute in state["disputes"]:
        # Mediation notes are hidden exactly from the contractor (the redacted view).
        assert (dispute["mediation_notes"] is None) == state["redacted"], dispute
        for evidence in dispute["evidence"]:
            assert TIMESTAMP.fullmatch(evidence["at"]), evidence


def one(items: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    found = [item for item in items if item["id"] == item_id]
    assert len(found) == 1, (item_id, items)
    return found[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_disputed_engagement_through_the_command_line(db_url: str, tmp_path: Path) -> None:
    # -- Set-up in process: an active engagement with NDA A1 and SOW A2 in force. ------------------
    app = open_ledger(db_url)
    try:
        engagement_id = active_engagement(app, budget="5000", currency="EUR")
        active = app.engagement(engagement_id, Actor.parse(AUDITOR))
        assert (active.status, active.grace_days, active.inspection_days) == ("active", 7, 14)
        assert [(a.id, a.kind, a.status) for a in active.agreements.values()] == [
            ("A1", "nda", "signed"), ("A2", "sow", "signed")]
        active_version = active.version
    finally:
        app.close()
    walk = Walk(db_url, tmp_path, str(engagement_id))
    walk.version = active_version
    eid = walk.id

    documents = {name: tmp_path / name for name in
                 ("schema.sql", "spec.pdf", "delivery-log.txt", "timeline.txt",
                  "requests.eml")}
    for name, path in documents.items():
        path.write_bytes(f"{name}: content of the {name} file\n".encode())

    # -- M1 defined and funded. --------------------------------------------------------------------
    state = walk.step(CURATOR, "milestone", "add", eid, "--title", "Schema design",
                      "--amount", "1000", "--due", "2027-01-31",
                      "--criteria", "Reviewed ERD", prints="M1")
    assert one(state["milestones"], "M1")["status"] == "defined"
    state = walk.step(CLIENT, "milestone", "fund", eid, "M1")
    assert one(state["milestones"], "M1")["status"] == "funded"
    assert state["money"]["funded"] == "1000.00" and state["money"]["escrow"] == "1000.00"

    # -- A disclosure under the NDA. ---------------------------------------------------------------
    state = walk.step(CURATOR, "disclosure", "record", eid, "--description", "Schema dump",
                      "--agreement", "A1", "--document", str(documents["schema.sql"]))
    [disclosure] = state["disclosures"]
    assert (disclosure["description"], disclosure["agreement"], disclosure["sha256"],
            disclosure["agreement_in_force"], disclosure["by"]) == (
        "Schema dump", "A1", sha256(documents["schema.sql"]), True, "cara")
    assert TIMESTAMP.fullmatch(disclosure["at"])

    # -- Access granted on the funded milestone; a grant past due + grace is refused. -------------
    state = walk.step(CURATOR, "access", "grant", eid, "--resource", "staging DB",
                      "--level", "read", "--milestone", "M1", prints="G1", refusals=(
                          (CURATOR, ("access", "grant", eid, "--resource", "prod DB",
                                     "--level", "read", "--milestone", "M1",
                                     "--until", "2027-02-08"), 3),
                      ))
    [g1] = state["grants"]
    assert (g1["id"], g1["resource"], g1["level"], g1["milestone"], g1["status"]) == (
        "G1", "staging DB", "read", "M1", "active")
    assert g1["until"] == "2027-02-07", "the default expiry is the due date plus 7 days' grace"
    assert g1["ended_at"] is None and g1["end_reason"] is None

    # -- Work submitted. ---------------------------------------------------------------------------
    state = walk.step(CONTRACTOR, "milestone", "submit", eid, "M1", "--note", "PR #7")
    assert one(state["milestones"], "M1")["status"] == "submitted"

    # -- A dispute opened by the client: accept and release are refused while it is open. ---------
    state = walk.step(CLIENT, "dispute", "open", eid, "--milestone", "M1",
                      "--reason", "Not to spec", "--claim", "400", prints="D1", refusals=(
                          (CLIENT, ("milestone", "accept", eid, "M1"), 3),
                          (CLIENT, ("milestone", "release", eid, "M1"), 3),
                      ))
    dispute_version = state["version"]
    d1 = one(state["disputes"], "D1")
    assert (d1["milestone"], d1["status"], d1["party"], d1["reason"], d1["claim"]) == (
        "M1", "open", "client", "Not to spec", "400.00")
    assert d1["opened_version"] == dispute_version
    assert (d1["evidence"], d1["mediation_notes"], d1["resolution"], d1["escalation"]) == (
        [], [], None, None)
    assert one(state["milestones"], "M1")["status"] == "disputed"
    assert one(state["grants"], "G1")["status"] == "active"
    assert state["money"]["escrow"] == "1000.00"

    # -- Evidence from both parties, each as itself. -----------------------------------------------
    state = walk.step(CLIENT, "dispute", "evidence", eid, "D1", "--party", "client",
                      "--description", "Signed spec v2", "--document", str(documents["spec.pdf"]),
                      prints="E1", refusals=(
                          (CONTRACTOR, ("dispute", "evidence", eid, "D1", "--party", "client",
                                        "--description", "Posing as the client"), 4),
                      ))
    [e1] = one(state["disputes"], "D1")["evidence"]
    assert (e1["id"], e1["party"], e1["description"], e1["sha256"]) == (
        "E1", "client", "Signed spec v2", sha256(documents["spec.pdf"]))

    state = walk.step(CONTRACTOR, "dispute", "evidence", eid, "D1", "--party", "contractor",
                      "--description", "Delivery log",
                      "--document", str(documents["delivery-log.txt"]), prints="E2", refusals=(
                          (CLIENT, ("dispute", "evidence", eid, "D1", "--party", "contractor",
                                    "--description", "Posing as the contractor"), 4),
                          # A resolution without a finding for E2: exit 3.
                          (CURATOR, ("dispute", "resolve", eid, "D1", "--release", "600",
                                     "--refund", "400", "--reason", "Split",
                                     "--finding", "E1=The spec was signed"), 3),
                          # A finding for evidence the dispute does not have: exit 2.
                          (CURATOR, ("dispute", "resolve", eid, "D1", "--release", "600",
                                     "--refund", "400", "--reason", "Split",
                                     "--finding", "E1=a", "--finding", "E2=b",
                                     "--finding", "E7=c"), 2),
                      ))
    evidence = one(state["disputes"], "D1")["evidence"]
    assert [(e["id"], e["party"], e["sha256"]) for e in evidence] == [
        ("E1", "client", sha256(documents["spec.pdf"])),
        ("E2", "contractor", sha256(documents["delivery-log.txt"]))]

    # -- A mediation note: hidden from the contractor. ---------------------------------------------
    state = walk.step(CURATOR, "dispute", "note", eid, "D1",
                      "--text", "Both agree the loader part works", reads=(
                          (CONTRACTOR, ("engagement", "show", eid, "--format", "json")),
                      ))
    [note] = one(state["disputes"], "D1")["mediation_notes"]
    assert (note["text"], note["by"]) == ("Both agree the loader part works", "cara")
    [redacted] = walk.read
    check_invariants(redacted)
    assert redacted["redacted"] is True and redacted["interviews"] is None
    assert one(redacted["disputes"], "D1")["mediation_notes"] is None
    assert redacted["version"] == walk.version
    assert "Both agree the loader part works" not in json.dumps(redacted)

    # -- A split resolution: M1 settled, G1 revoked in the same save. ------------------------------
    state = walk.step(CURATOR, "dispute", "resolve", eid, "D1", "--release", "600",
                      "--refund", "400", "--reason", "Partly delivered",
                      "--finding", "E1=The spec was signed",
                      "--finding", "E2=The loader works", events=2, reads=(
                          (AUDITOR, ("engagement", "show", eid, "--version",
                                     str(dispute_version), "--format", "json")),
                      ))
    [then] = walk.read
    d1 = one(state["disputes"], "D1")
    assert d1["status"] == "resolved"
    assert d1["resolution"]["release"] == "600.00" and d1["resolution"]["refund"] == "400.00"
    assert d1["resolution"]["reason"] == "Partly delivered"
    assert d1["resolution"]["findings"] == {"E1": "The spec was signed",
                                            "E2": "The loader works"}
    assert TIMESTAMP.fullmatch(d1["resolution"]["at"])
    m1 = one(state["milestones"], "M1")
    assert m1["status"] == "settled" and m1["closed_at"] == d1["resolution"]["at"]
    g1 = one(state["grants"], "G1")
    assert (g1["status"], g1["end_reason"]) == ("revoked", "milestone M1 settled")
    assert g1["ended_at"] == d1["resolution"]["at"], "the revocation is not in the same save"
    assert state["money"] == {"funded": "1000.00", "released": "600.00", "refunded": "400.00",
                              "escrow": "0.00", "committed": "1000.00"}
    money = {k: Decimal(v) for k, v in state["money"].items()}
    assert money["funded"] == money["released"] + money["refunded"] + money["escrow"]

    # The engagement as it stood when the dispute was opened: the grant active, money in escrow.
    check_invariants(then)
    assert then == walk.states[dispute_version]
    assert then["version"] == dispute_version
    assert one(then["grants"], "G1")["status"] == "active"
    assert one(then["milestones"], "M1")["status"] == "disputed"
    assert one(then["disputes"], "D1")["status"] == "open"
    assert then["money"] == {"funded": "1000.00", "released": "0.00", "refunded": "0.00",
                             "escrow": "1000.00", "committed": "1000.00"}

    # -- M2: defined, funded; an extension requested by the contractor, granted by the client. ----
    state = walk.step(CURATOR, "milestone", "add", eid, "--title", "Loader", "--amount", "2000",
                      "--due", "2027-02-28", prints="M2")
    state = walk.step(CLIENT, "milestone", "fund", eid, "M2")
    assert one(state["milestones"], "M2")["status"] == "funded"
    assert state["money"]["escrow"] == "2000.00"

    state = walk.step(CONTRACTOR, "milestone", "extend", eid, "M2", "--due", "2027-03-31",
                      "--reason", "API delay")
    m2 = one(state["milestones"], "M2")
    assert (m2["due"], m2["original_due"], m2["extensions"]) == ("2027-02-28", None, 0)
    assert (m2["extension_request"]["due"], m2["extension_request"]["reason"]) == (
        "2027-03-31", "API delay")

    state = walk.step(CLIENT, "milestone", "extension", "grant", eid, "M2")
    m2 = one(state["milestones"], "M2")
    assert (m2["due"], m2["original_due"], m2["extensions"], m2["extension_request"]) == (
        "2027-03-31", "2027-02-28", 1, None)

    # -- An amendment proposed by the curator, in effect after the second signature. ---------------
    state = walk.step(CURATOR, "milestone", "amend", eid, "M2", "--title", "Loader v2",
                      "--due", "2027-04-30", "--reason", "Re-planned")
    m2 = one(state["milestones"], "M2")
    assert (m2["title"], m2["due"]) == ("Loader", "2027-03-31")
    assert m2["amendment"] == {"number": 1, "changes": {"title": "Loader v2", "due": "2027-04-30"},
                               "reason": "Re-planned",
                               "signatures": {"client": None, "contractor": None}}

    state = walk.step(CLIENT, "milestone", "sign-amendment", eid, "M2", "--party", "client",
                      refusals=(
                          # The same party twice: exit 3.
                          (CLIENT, ("milestone", "sign-amendment", eid, "M2", "--party",
                                    "client"), 3),
                      ))
    m2 = one(state["milestones"], "M2")
    assert (m2["title"], m2["due"]) == ("Loader", "2027-03-31"), "in effect after one signature"
    signatures = m2["amendment"]["signatures"]
    assert signatures["client"]["signer"] == "acme" and signatures["contractor"] is None

    state = walk.step(CONTRACTOR, "milestone", "sign-amendment", eid, "M2",
                      "--party", "contractor", events=2)
    m2 = one(state["milestones"], "M2")
    assert (m2["title"], m2["due"], m2["original_due"], m2["amendment"], m2["status"]) == (
        "Loader v2", "2027-04-30", "2027-02-28", None, "funded")

    # -- A second dispute, escalated with an evidence packet. --------------------------------------
    state = walk.step(CONTRACTOR, "dispute", "open", eid, "--milestone", "M2",
                      "--reason", "Client unresponsive", prints="D2")
    d2 = one(state["disputes"], "D2")
    assert (d2["milestone"], d2["party"], d2["status"], d2["claim"]) == (
        "M2", "contractor", "open", None)
    state = walk.step(CONTRACTOR, "dispute", "evidence", eid, "D2", "--party", "contractor",
                      "--description", "Timeline of requests",
                      "--document", str(documents["timeline.txt"]), prints="E3")
    [e3] = one(state["disputes"], "D2")["evidence"]
    assert (e3["id"], e3["sha256"]) == ("E3", sha256(documents["timeline.txt"]))
    state = walk.step(CLIENT, "dispute", "evidence", eid, "D2", "--party", "client",
                      "--description", "Change requests sent",
                      "--document", str(documents["requests.eml"]), prints="E4")
    assert [(e["id"], e["party"]) for e in one(state["disputes"], "D2")["evidence"]] == [
        ("E3", "contractor"), ("E4", "client")]

    packet = tmp_path / "d2-packet.zip"
    other_packet = tmp_path / "again.zip"
    state = walk.step(CURATOR, "dispute", "escalate", eid, "D2", "--to", "Arbitration Ltd",
                      "--packet", str(packet), refusals=(
                          (CURATOR, ("dispute", "escalate", eid, "D2", "--to", "Court",
                                     "--packet", str(other_packet)), 3),
                      ))
    assert not other_packet.exists(), "a refused escalation wrote a packet"
    d2 = one(state["disputes"], "D2")
    assert d2["status"] == "escalated"
    assert d2["escalation"]["to"] == "Arbitration Ltd"
    assert TIMESTAMP.fullmatch(d2["escalation"]["at"])
    assert d2["escalation"]["packet_sha256"] == sha256(packet)
    assert one(state["milestones"], "M2")["status"] == "disputed"

    with zipfile.ZipFile(packet) as archive:
        assert sorted(archive.namelist()) == ["packet.json", "summary.pdf"]
        content = json.loads(archive.read("packet.json"))
        pdf = pypdf.PdfReader(io.BytesIO(archive.read("summary.pdf")))
    assert content["dispute"]["id"] == "D2"
    assert content["engagement"]["id"] == eid
    assert content["escalated_to"] == "Arbitration Ltd"
    assert content["milestone"]["id"] == "M2"
    hashes = [sha256(documents["timeline.txt"]), sha256(documents["requests.eml"])]
    assert [(e["id"], e["party"], e["sha256"]) for e in content["evidence"]] == [
        ("E3", "contractor", hashes[0]), ("E4", "client", hashes[1])]
    assert content["dispute"]["reason"] == "Client unresponsive"
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "dispute D2 on M2" in text, text
    # The PDF's table wraps a long hash over lines: compare without the white space.
    for digest in hashes:
        assert digest in re.sub(r"\s+", "", text), (digest, text)
    assert "E3" in text and "E4" in text, text

    # -- The sweeps run (nothing is due yet) and record nothing. -----------------------------------
    for swept in run_ledger_together([(db_url, CURATOR, ("milestone", "sweep")),
                                      (db_url, CURATOR, ("access", "sweep"))], cwd=tmp_path):
        expect_ok(swept)
        assert swept.stdout == "", describe(swept)
    state = walk.show(reads=((AUDITOR, ("history", eid, "--format", "json")),))
    assert state == walk.states[walk.version]

    # -- In the end: funded = released + refunded + escrow, with the split amounts. ----------------
    assert state["money"] == {"funded": "3000.00", "released": "600.00", "refunded": "400.00",
                              "escrow": "2000.00", "committed": "3000.00"}
    [history] = walk.read
    types = [row["type"] for row in history]
    assert len(types) == walk.version
    resolved_at = types.index("DisputeResolved")
    assert types[resolved_at + 1] == "AccessRevoked"
    assert history[resolved_at]["command_id"] == history[resolved_at + 1]["command_id"]
    assert types[-7:] == ["MilestoneAmendmentSigned", "MilestoneAmendmentSigned",
                          "MilestoneAmended", "DisputeOpened", "EvidenceSubmitted",
                          "EvidenceSubmitted", "DisputeEscalated"]
