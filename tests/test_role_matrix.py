"""DESIGN section 1's whole table, role by action, through the command line.

tests/test_roles.py and tests/test_roles_part2.py walk every writing command through the
application service. This walks every cell through `ledger` itself: every subcommand that
needs an actor, for each of the four roles and admin, on a SQLite ledger brought to where the
command would succeed. A refused cell exits 4 with one line on stderr, prints nothing, records
nothing (no event anywhere in the log, no packet, no restored database); an allowed cell
exits 0, and a writing command is recorded under the role that sent it. A party acts only as
itself: the party commands are rows of their own per `--party`.

The cells run in process through `ledger.cli.main`, the function the `ledger` console script
calls, with its output captured: about 300 interpreter starts would cost minutes.
`test_in_process_answers_as_the_real_command` shows on a handful of cells that a real `ledger`
process answers exactly the same. `test_every_command_is_in_the_matrix` keeps the table whole
as commands are added.

Not here: `ledger demo` (records as admin:demo, no actor), `ledger tui` (interactive; its role
check is the read row's, and tests/test_tui.py drives it) and `audit verify --export` (an
outsider holding only the file needs no actor).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import click
import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import (
    AcceptMilestone,
    DraftAgreement,
    OpenDispute,
    ProposeMilestoneAmendment,
    RequestExtension,
    SubmitEvidence,
    SubmitWork,
)
from ledger.roles import Actor

from cli_helpers import _LEDGER_ENV, expect_ok, expect_refusal, ledger_argv, run_ledger_together
from factories import CLIENT, CONTRACTOR, CURATOR, active_engagement, funded_milestone

ROLES = ("curator", "client", "contractor", "auditor", "admin")
ACTOR = {"curator": "curator:cara", "client": "client:acme", "contractor": "contractor:bo",
         "auditor": "auditor:ann", "admin": "admin:root"}
EVERYONE = {"curator", "client", "contractor", "auditor"}
#: keygen needs no actor; forget-contractor needs an encrypted ledger, and its roles are
#: walked in tests/test_personal_data.py (admin only, exit 4 and nothing recorded otherwise).
NOT_IN_THE_MATRIX = {"demo", "tui", "keygen", "forget-contractor"}


def run_in_process(db_url: str, actor: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`ledger --db URL --as ACTOR ARGS...` through `ledger.cli.main`, output captured."""
    from ledger.cli import main

    argv = ledger_argv(db_url, actor, *args)[3:]  # without the interpreter and `-m ledger.cli`
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess(["ledger", *argv], code, out.getvalue(), err.getvalue())


@dataclass
class World:
    """One SQLite ledger for a row; the application service brings engagements to a stage."""

    url: str
    folder: Path
    app: Engagements

    def file(self, name: str, content: bytes = b"%PDF-1.4 contract") -> str:
        path = self.folder / name
        path.write_bytes(content)
        return str(path)

    def recorded(self) -> list[tuple[Any, ...]]:
        """Every stored event of the whole ledger, as stored."""
        return [(n.id, n.originator_id, n.originator_version, n.topic, n.state)
                for n in self.app.recorder.select_notifications(start=1, limit=100_000)]

    def new_events(self, before: list[tuple[Any, ...]]) -> list[Any]:
        return [self.app.mapper.to_domain_event(n) for n in self.app.recorder.select_notifications(
            start=len(before) + 1, limit=100_000)]


Setup = Callable[[World], list[str]]


def active(w: World) -> UUID:
    return active_engagement(w.app)


def milestone_at(w: World, status: str) -> tuple[UUID, str]:
    eid = active(w)
    m = funded_milestone(w.app, eid, due="2027-01-31")
    if status in ("submitted", "accepted"):
        w.app.execute(SubmitWork.build(engagement_id=eid, milestone_id=m, note="PR"), CONTRACTOR)
    if status == "accepted":
        w.app.execute(AcceptMilestone.build(engagement_id=eid, milestone_id=m), CLIENT)
    return eid, m


def defined_milestone(w: World) -> tuple[UUID, str]:
    from ledger.commands import DefineMilestone

    eid = active(w)
    return eid, w.app.execute(DefineMilestone.build(engagement_id=eid, title="Phase",
                                                    amount="1000", due="2027-01-31"), CURATOR)


def granted(w: World) -> tuple[UUID, str]:
    from ledger.commands import GrantAccess

    eid, m = milestone_at(w, "funded")
    return eid, w.app.execute(GrantAccess.build(engagement_id=eid, resource="repo",
                                                level="read", milestone_id=m), CURATOR)


def extension_waiting(w: World) -> tuple[UUID, str]:
    eid, m = milestone_at(w, "funded")
    w.app.execute(RequestExtension.build(engagement_id=eid, milestone_id=m, due="2027-02-28",
                                         reason="API delay"), CONTRACTOR)
    return eid, m


def amendment_waiting(w: World) -> tuple[UUID, str]:
    eid, m = milestone_at(w, "funded")
    w.app.execute(ProposeMilestoneAmendment.build(engagement_id=eid, milestone_id=m,
                                                  title="Loader v2", reason="Re-planned"),
                  CURATOR)
    return eid, m


def dispute_open(w: World) -> tuple[UUID, str]:
    eid, m = milestone_at(w, "funded")
    d = w.app.execute(OpenDispute.build(engagement_id=eid, milestone_id=m, party="client",
                                        reason="Not to spec"), CLIENT)
    w.app.execute(SubmitEvidence.build(engagement_id=eid, dispute_id=d, party="client",
                                       description="Spec"), CLIENT)
    return eid, d


def draft(w: World) -> tuple[UUID, str]:
    eid = active(w)
    return eid, w.app.execute(DraftAgreement.build(engagement_id=eid, kind="ip",
                                                   jurisdiction="DE", sha256="c" * 64), CURATOR)


def drafted_from_file(w: World) -> tuple[UUID, str, str]:
    import hashlib

    path = w.file("ip.pdf")
    eid = active(w)
    sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return eid, w.app.execute(DraftAgreement.build(engagement_id=eid, kind="ip",
                                                   jurisdiction="DE", sha256=sha256),
                              CURATOR), path


def vetting(w: World) -> UUID:
    from ledger.commands import OpenEngagement

    return w.app.open_engagement(OpenEngagement.build(
        title="Data pipeline", client="Acme", contractor="Bo", curator="cara", budget="10000",
        currency="EUR"), CURATOR)


def exported(w: World) -> str:
    path = w.folder / "trail.jsonl"
    if not path.exists():
        active(w)
        expect_ok(run_in_process(w.url, ACTOR["auditor"], "audit", "export", "--format", "jsonl",
                                 "--output", str(path)))
    return str(path)


def _(e: Any) -> str:
    return str(e)


@dataclass
class Row:
    command: str  # the subcommand as typed, e.g. "milestone fund"
    allowed: set[str]  # besides admin
    setup: Setup
    writes: bool = True
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.command


def _milestone_command(verb: str, status: str, *extra: str) -> Setup:
    def setup(w: World) -> list[str]:
        eid, m = milestone_at(w, status) if status != "defined" else defined_milestone(w)
        return [*verb.split(), _(eid), m, *extra]
    return setup


def _sign_agreement(party: str) -> Setup:
    return lambda w: (lambda e: ["agreement", "sign", _(e[0]), e[1], "--party", party,
                                 "--signer", "Ann"])(draft(w))


def _sign_amendment(party: str) -> Setup:
    return lambda w: (lambda e: ["milestone", "sign-amendment", _(e[0]), e[1], "--party",
                                 party])(amendment_waiting(w))


def _open_dispute(party: str) -> Setup:
    return lambda w: (lambda e: ["dispute", "open", _(e[0]), "--milestone", e[1], "--party",
                                 party, "--reason", "Not to spec"])(milestone_at(w, "funded"))


def _evidence(party: str) -> Setup:
    return lambda w: (lambda e: ["dispute", "evidence", _(e[0]), e[1], "--party", party,
                                 "--description", "Log", "--document",
                                 w.file("log.pdf")])(dispute_open(w))


CURATOR_ONLY = {"curator"}
ROWS = [
    # The curator's work.
    Row("engagement open", CURATOR_ONLY, lambda w: [
        "engagement", "open", "--title", "T", "--client", "Acme", "--contractor", "Bo",
        "--curator", "cara", "--budget", "100", "--currency", "EUR"]),
    Row("engagement reassign", CURATOR_ONLY, lambda w: [
        "engagement", "reassign", _(active(w)), "--curator", "dan", "--reason", "Leave"]),
    Row("engagement note", CURATOR_ONLY, lambda w: [
        "engagement", "note", _(active(w)), "--text", "Asked about staging"]),
    Row("engagement correct", CURATOR_ONLY, lambda w: [
        "engagement", "correct", _(active(w)), "--version", "2", "--reason", "Wrong name"]),
    Row("engagement close", CURATOR_ONLY, lambda w: [
        "engagement", "close", _(active(w)), "--outcome", "terminated", "--reason", "Cut"]),
    Row("interview record", CURATOR_ONLY, lambda w: [
        "interview", "record", _(vetting(w)), "--interviewer", "cara", "--score",
        "qualifications=4", "--decision", "advance"]),
    Row("agreement draft", CURATOR_ONLY, lambda w: [
        "agreement", "draft", _(active(w)), "--kind", "nca", "--jurisdiction", "DE",
        "--document", w.file("nca.pdf")]),
    Row("agreement review", CURATOR_ONLY, lambda w: [
        "agreement", "review", _(active(w)), "A1", "--reviewer", "Counsel CA"]),
    Row("agreement amend", CURATOR_ONLY, lambda w: [
        "agreement", "amend", _(active(w)), "A2", "--document", w.file("sow2.pdf", b"v2"),
        "--reason", "New rates"]),
    Row("disclosure record", CURATOR_ONLY, lambda w: [
        "disclosure", "record", _(active(w)), "--description", "Schema", "--agreement", "A1"]),
    Row("milestone add", CURATOR_ONLY, lambda w: [
        "milestone", "add", _(active(w)), "--title", "Design", "--amount", "500", "--due",
        "2027-01-31"]),
    Row("milestone amend", CURATOR_ONLY,
        _milestone_command("milestone amend", "funded", "--due", "2027-03-01", "--reason",
                           "Re-planned")),
    Row("access grant", CURATOR_ONLY, lambda w: (lambda e: [
        "access", "grant", _(e[0]), "--resource", "repo", "--level", "read", "--milestone",
        e[1]])(milestone_at(w, "funded"))),
    Row("access recertify", CURATOR_ONLY, lambda w: (lambda e: [
        "access", "recertify", _(e[0]), e[1]])(granted(w))),
    Row("access revoke", CURATOR_ONLY, lambda w: (lambda e: [
        "access", "revoke", _(e[0]), e[1], "--reason", "Done"])(granted(w))),
    Row("dispute note", CURATOR_ONLY, lambda w: (lambda e: [
        "dispute", "note", _(e[0]), e[1], "--text", "Both agree"])(dispute_open(w))),
    Row("dispute resolve", CURATOR_ONLY, lambda w: (lambda e: [
        "dispute", "resolve", _(e[0]), e[1], "--release", "600", "--refund", "400",
        "--reason", "Split", "--finding", "E1=Signed"])(dispute_open(w))),
    Row("dispute escalate", CURATOR_ONLY, lambda w: (lambda e: [
        "dispute", "escalate", _(e[0]), e[1], "--to", "Arbitration Ltd", "--packet",
        str(w.folder / "packet.zip")])(dispute_open(w))),
    Row("milestone sweep", CURATOR_ONLY, lambda w: ["milestone", "sweep", _(active(w))]),
    Row("access sweep", CURATOR_ONLY, lambda w: ["access", "sweep", _(active(w))]),
    # Either party, as itself.
    Row("agreement sign", {"client"}, _sign_agreement("client"), label="agreement sign (client)"),
    Row("agreement sign", {"contractor"}, _sign_agreement("contractor"),
        label="agreement sign (contractor)"),
    Row("milestone sign-amendment", {"client"}, _sign_amendment("client"),
        label="milestone sign-amendment (client)"),
    Row("milestone sign-amendment", {"contractor"}, _sign_amendment("contractor"),
        label="milestone sign-amendment (contractor)"),
    Row("dispute open", {"client"}, _open_dispute("client"), label="dispute open (client)"),
    Row("dispute open", {"contractor"}, _open_dispute("contractor"),
        label="dispute open (contractor)"),
    Row("dispute evidence", {"client"}, _evidence("client"), label="dispute evidence (client)"),
    Row("dispute evidence", {"contractor"}, _evidence("contractor"),
        label="dispute evidence (contractor)"),
    # The client's money decisions (and the curator decides extensions too).
    Row("engagement rebudget", {"client"}, lambda w: [
        "engagement", "rebudget", _(active(w)), "--budget", "12000", "--reason", "Scope"]),
    Row("milestone fund", {"client"}, _milestone_command("milestone fund", "defined")),
    Row("milestone accept", {"client"}, _milestone_command("milestone accept", "submitted")),
    Row("milestone request-changes", {"client"},
        _milestone_command("milestone request-changes", "submitted", "--reason", "No tests")),
    Row("milestone release", {"client"}, _milestone_command("milestone release", "accepted")),
    Row("milestone cancel", {"client"},
        _milestone_command("milestone cancel", "funded", "--reason", "Descoped")),
    Row("milestone extension grant", {"client", "curator"}, lambda w: (lambda e: [
        "milestone", "extension", "grant", _(e[0]), e[1]])(extension_waiting(w))),
    Row("milestone extension deny", {"client", "curator"}, lambda w: (lambda e: [
        "milestone", "extension", "deny", _(e[0]), e[1], "--reason", "Fixed date"])(
        extension_waiting(w))),
    # The contractor's work.
    Row("milestone submit", {"contractor"},
        _milestone_command("milestone submit", "funded", "--note", "PR #7")),
    Row("milestone extend", {"contractor"},
        _milestone_command("milestone extend", "funded", "--due", "2027-02-28", "--reason",
                           "API delay")),
    Row("playbook acknowledge", {"contractor"}, lambda w: [
        "playbook", "acknowledge", _(active(w)), "--policy-version", "2026.1"]),
    # Reading: everyone (the contractor redacted).
    Row("engagement show", EVERYONE, lambda w: [
        "engagement", "show", _(active(w)), "--format", "json"], writes=False),
    Row("engagement list", EVERYONE, lambda w: (active(w), ["engagement", "list"])[1],
        writes=False),
    Row("history", EVERYONE, lambda w: ["history", _(active(w))], writes=False),
    Row("replay", EVERYONE, lambda w: ["replay", _(active(w)), "--version", "2"], writes=False),
    Row("alerts", EVERYONE, lambda w: (active(w), ["alerts"])[1], writes=False),
    Row("contractor show", EVERYONE, lambda w: (active(w), ["contractor", "show", "Bo"])[1],
        writes=False),
    Row("agreement verify-document", EVERYONE, lambda w: (lambda e: [
        "agreement", "verify-document", _(e[0]), e[1], "--document", e[2]])(drafted_from_file(w)),
        writes=False),
    Row("audit digest", EVERYONE, lambda w: (active(w), ["audit", "digest"])[1], writes=False),
    Row("audit verify", EVERYONE, lambda w: (active(w), ["audit", "verify"])[1], writes=False),
    Row("audit export", EVERYONE, lambda w: (active(w), [
        "audit", "export", "--format", "csv", "--output", str(w.folder / "a.csv")])[1],
        writes=False),
    Row("projections status", EVERYONE, lambda w: (active(w), ["projections", "status"])[1],
        writes=False),
    # Operations: admin only.
    Row("init", set(), lambda w: ["init"], writes=False),
    Row("projections run", set(), lambda w: (active(w), ["projections", "run"])[1],
        writes=False),
    Row("projections rebuild", set(), lambda w: (active(w), ["projections", "rebuild"])[1],
        writes=False),
    Row("restore", set(), lambda w: ["restore", exported(w), "--db",
                                     f"sqlite:///{w.folder / 'restored.db'}"], writes=False),
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LEDGER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def world(tmp_path: Path, clean_env: None) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = open_ledger(url)
    yield World(url, tmp_path, app)
    app.close()


def side_effects(w: World) -> set[str]:
    """Files a command may leave behind: an evidence packet, a restored database, an export."""
    return {p.name for p in w.folder.iterdir() if p.suffix in (".zip", ".db", ".csv")
            and p.name != "ledger.db"}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_role_matrix_row(world: World, row: Row) -> None:
    w = world
    allowed = row.allowed | {"admin"}
    # The refusals first, all on one set-up (they change nothing, so it stays valid), and then
    # the first allowed role on that same set-up.
    args = row.setup(w)
    before, files = w.recorded(), side_effects(w)
    for role in sorted(set(ROLES) - allowed):
        result = run_in_process(w.url, ACTOR[role], *args)
        message = expect_refusal(result, 4)
        assert f"a {role} may not" in message, message
        assert w.recorded() == before, f"a refused {row.name} by the {role} recorded something"
        assert side_effects(w) == files, f"a refused {row.name} by the {role} left a file"
    for number, role in enumerate(sorted(allowed)):
        if number:  # a fresh set-up for each further allowed role
            args = row.setup(w)
        before = w.recorded()
        result = run_in_process(w.url, ACTOR[role], *args)
        expect_ok(result)
        if row.writes:
            new = w.new_events(before)
            if row.command not in ("milestone sweep", "access sweep"):  # nothing is due yet
                assert new, f"{row.name} by the {role} recorded nothing"
            assert {(e.role, e.actor) for e in new} <= {(role, Actor.parse(ACTOR[role]).name)}
        elif row.command == "engagement show":
            assert ('"redacted": true' in result.stdout) is (role == "contractor")


def leaf_commands() -> set[str]:
    from ledger.cli import cli, load_plugins

    load_plugins()
    found: set[str] = set()

    def walk(command: click.Command, prefix: list[str]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])
        else:
            found.add(" ".join(prefix))

    walk(cli, [])
    return found


def test_every_command_is_in_the_matrix() -> None:
    assert leaf_commands() - NOT_IN_THE_MATRIX == {row.command for row in ROWS}


def test_in_process_answers_as_the_real_command(world: World) -> None:
    """A few cells again through real `ledger` processes: the same exit code and output."""
    w = world
    eid, m = milestone_at(w, "funded")
    cells = [
        (ACTOR["auditor"], ("milestone", "submit", str(eid), m, "--note", "x")),
        (ACTOR["contractor"], ("milestone", "cancel", str(eid), m, "--reason", "x")),
        (ACTOR["client"], ("dispute", "open", str(eid), "--milestone", m, "--party",
                           "contractor", "--reason", "x")),
        (ACTOR["curator"], ("projections", "rebuild")),
        (ACTOR["auditor"], ("history", str(eid))),
    ]
    real = run_ledger_together([(w.url, actor, args) for actor, args in cells])
    for (actor, args), process in zip(cells, real, strict=True):
        here = run_in_process(w.url, actor, *args)
        assert (here.returncode, here.stdout, here.stderr) == (
            process.returncode, process.stdout, process.stderr), (args, here, process)
    assert [p.returncode for p in real] == [4, 4, 4, 4, 0]
    assert os.path.exists(w.url[len("sqlite:///"):])
