"""The writer that tests/test_crash_safety.py kills with SIGKILL, round after round.

Run as `python crash_writer.py DB_URL ENGAGEMENTS_JSON`, it imports the ledger once and then
waits on standard input. Each `go ROUND SEED FILE` forks one writer process (a round costs a
fork and opening the ledger, not a new interpreter) and answers `pid PID`; `reap PID` waits
for that process to end and answers `reaped PID`. The zygote itself never opens a database,
so every writer starts with connections of its own.

A writer opens the ledger, writes `ready`, then issues a realistic mix of commands through
the application service across the given engagements until it is killed: milestones defined,
funded, worked on, accepted, released or cancelled, access granted (so that a release, a
cancellation or a settlement revokes grants in the same save), disputes opened and resolved,
notes. Before each command it writes `sent [ID, CLASS, FIELDS, ACTOR]`, after it `ack ID
ANSWER` (or `refused ID EXIT_CODE`); every dozenth step it catches the read models up instead
(so that some kills land inside a projection's transaction). Each line is one `os.write`, so a
kill leaves whole lines.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from typing import Any
from uuid import UUID

CURATOR, CLIENT, CONTRACTOR = "curator:cara", "client:acme", "contractor:bo"
CLOSED = ("released", "settled", "cancelled")
AMOUNT = 100


def next_command(rng: random.Random, e: Any) -> tuple[str, dict[str, Any], str]:
    """One plausible next command for the engagement: (command class, fields, actor)."""
    if rng.random() < 0.08:
        return "LogNote", {"text": "Relayed a question."}, CURATOR
    open_milestones = [m for m in e.milestones.values() if m.status not in CLOSED]
    if not open_milestones or (len(open_milestones) < 4 and rng.random() < 0.2):
        return "DefineMilestone", {"title": "Phase", "amount": str(AMOUNT),
                                   "due": "2027-06-30"}, CURATOR
    m = rng.choice(open_milestones)
    ref = {"milestone_id": m.id}
    grants = [g for g in e.grants.values() if g.status == "active" and g.milestone == m.id]
    p = rng.random()
    if m.status == "defined":
        if p < 0.9:
            return "FundMilestone", ref, CLIENT
        return "CancelMilestone", {**ref, "reason": "Descoped"}, CLIENT
    if m.status in ("funded", "changes_requested"):
        if len(grants) < 2 and p < 0.35:
            return "GrantAccess", {**ref, "resource": f"repo-{rng.randint(1, 99)}",
                                   "level": "read"}, CURATOR
        if p < 0.45:
            return "CancelMilestone", {**ref, "reason": "Descoped"}, CLIENT
        if p < 0.55:
            return "OpenDispute", {**ref, "party": "client", "reason": "Not to spec"}, CLIENT
        return "SubmitWork", {**ref, "note": "Delivered."}, CONTRACTOR
    if m.status == "submitted":
        if p < 0.3:
            return "RequestChanges", {**ref, "reason": "Missing tests."}, CLIENT
        return "AcceptMilestone", ref, CLIENT
    if m.status == "accepted":
        return "ReleasePayment", ref, CLIENT
    dispute = next(d for d in e.disputes.values()
                   if d.milestone == m.id and d.status in ("open", "escalated"))
    release = rng.choice([0, 40, AMOUNT])
    return "ResolveDispute", {
        "dispute_id": dispute.id, "release": str(release), "refund": str(AMOUNT - release),
        "reason": "Mediated", "findings": {ev.id: "Considered" for ev in dispute.evidence},
    }, CURATOR


def write_until_killed(db_url: str, engagements: list[str], round_number: int, seed: int,
                       fd: int) -> None:
    import ledger.commands as commands
    from ledger.application import open_ledger
    from ledger.errors import LedgerError
    from ledger.roles import Actor
    from projections.runner import Projector

    def say(text: str) -> None:
        os.write(fd, (text + "\n").encode())

    rng = random.Random(seed)
    app = open_ledger(db_url)
    say("ready")
    projector = None
    give_up = time.monotonic() + 10  # killed long before; only so that a lost writer ends
    step = 0
    while time.monotonic() < give_up:
        step += 1
        if step % 12 == 0:
            projector = projector or Projector(app)
            projector.catch_up(batch_size=rng.randint(5, 60))
            say("caught-up")
            continue
        engagement_id = rng.choice(engagements)
        name, fields, actor = next_command(rng, app.repository.get(UUID(engagement_id)))
        command_id = f"r{round_number}-{step}"
        fields = {**fields, "engagement_id": engagement_id, "command_id": command_id}
        say("sent " + json.dumps([command_id, name, fields, actor]))
        try:
            answer = app.execute(getattr(commands, name).build(**fields), Actor.parse(actor))
        except LedgerError as error:
            say(f"refused {command_id} {error.exit_code}")
            continue
        say(f"ack {command_id} {json.dumps(answer)}")
    app.close()


def serve(db_url: str, engagements: list[str]) -> None:
    # Everything a writer needs, imported once before any fork.
    import ledger.application  # noqa: F401
    import ledger.commands  # noqa: F401
    import projections.runner  # noqa: F401

    print("ready", flush=True)
    while line := sys.stdin.readline():
        word, *args = line.split()
        if word == "go":
            round_number, seed, path = int(args[0]), int(args[1]), args[2]
            pid = os.fork()
            if pid == 0:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                code = 0
                try:
                    os.close(0)
                    write_until_killed(db_url, engagements, round_number, seed, fd)
                except BaseException:
                    os.write(fd, ("crash " + traceback.format_exc().replace("\n", " | ")
                                  + "\n").encode())
                    code = 1
                os._exit(code)
            print(f"pid {pid}", flush=True)
        elif word == "reap":
            pid = int(args[0])
            _, status = os.waitpid(pid, 0)
            print(f"reaped {pid} {status}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(sys.argv[2]))
