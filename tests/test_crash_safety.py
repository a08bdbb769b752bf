"""Crash safety: writers killed with SIGKILL at random moments leave a ledger that is whole.

Round after round (50 per backend; 500 with LEDGER_SOAK=1) a writer process issues a realistic
mix of commands across three engagements (tests/crash_writer.py) and is killed with SIGKILL at
a random moment: one round in ten while it is still opening the ledger, the others after a
random number of acknowledged commands (0 to 4) and a random pause, so inside a save, between a
save and its acknowledgement, or inside a read models' catch-up. Then:

- every command the writer heard acknowledged is stored: its command id is in the events;
- every stored command is whole: its events are contiguous, stamped alike, and exactly the
  events the command makes when applied again to the engagement as it stood just before (a
  release and its grant revocations together, or nothing); no command id is stored twice, and
  the answer the writer heard is the one recorded;
- every engagement's versions run 1..n without a gap;
- the rules of DESIGN section 3 hold after every command: money conserved (funded = released +
  refunded + escrow, escrow = what open milestones hold), committed within the budget, no
  active grant serving a closed milestone, a disputed milestone held by exactly one unresolved
  dispute, every settlement adding up to the milestone's amount;
- the read models, caught up across all those kills, equal a rebuild from zero, row for row;
- `ledger audit verify` passes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import ledger.commands as commands
from ledger.application import Engagements, open_ledger
from ledger.events import Stamp
from ledger.roles import Actor
from projections.runner import Projector

from cli_helpers import expect_ok, ledger_env, run_ledger
from factories import active_engagement
from test_projections import (assert_every_model_at_the_head, assert_same_read_models,
                              dump_read_models)

ROUNDS = 500 if os.environ.get("LEDGER_SOAK") else 50
WRITER = Path(__file__).with_name("crash_writer.py")
DEADLINE = 60  # seconds; only to stop a hung test, never asserted on
OPEN_STATUSES = ("funded", "submitted", "changes_requested", "accepted", "disputed")
CLOSED = ("released", "settled", "cancelled")


class Zygote:
    """The writer process factory of crash_writer.py, driven over its standard input."""

    def __init__(self, db_url: str, engagements: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), db_url, json.dumps(engagements)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ledger_env())
        assert self.answer() == ["ready"]

    def answer(self) -> list[str]:
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        assert line, "the writer factory ended"
        return line.split()

    def tell(self, *words: object) -> list[str]:
        self.process.stdin.write(" ".join(map(str, words)) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return self.answer()

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=DEADLINE)


def writer_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_acks(out: Path, count: int, round_number: int) -> None:
    give_up = time.monotonic() + DEADLINE
    while True:
        lines = writer_lines(out)
        assert not any(line.startswith("crash") for line in lines), lines
        if "ready" in lines and sum(line.startswith("ack ") for line in lines) >= count:
            return
        assert time.monotonic() < give_up, f"round {round_number} got nowhere: {lines}"
        time.sleep(0.005)


def run_rounds(db_url: str, engagements: list[str], folder: Path) -> list[Path]:
    rng = random.Random(20261128)
    zygote = Zygote(db_url, engagements)
    outputs = []
    try:
        for round_number in range(ROUNDS):
            out = folder / f"round-{round_number}.log"
            outputs.append(out)
            [_, pid] = zygote.tell("go", round_number, rng.randrange(10**9), out)
            if rng.random() < 0.1:  # now and then while it is still opening the ledger
                time.sleep(rng.uniform(0, 0.05))
            else:
                # After a few commands (however slow a loaded machine makes them), at a random
                # moment: inside a save, between the save and the acknowledgement, ...
                wait_for_acks(out, rng.randint(0, 4), round_number)
                time.sleep(rng.uniform(0, 0.15))
            os.kill(int(pid), signal.SIGKILL)
            zygote.tell("reap", pid)
    finally:
        zygote.close()
    return outputs


def read_rounds(outputs: list[Path]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """What the writers sent (id -> [class, fields, actor]) and heard acknowledged (id -> answer)."""
    sent: dict[str, list[Any]] = {}
    acked: dict[str, Any] = {}
    for out in outputs:
        for line in writer_lines(out):
            word, _, rest = line.partition(" ")
            if word == "sent":
                command_id, *spec = json.loads(rest)
                sent[command_id] = spec
            elif word == "ack":
                command_id, _, answer = rest.partition(" ")
                acked[command_id] = json.loads(answer)
            elif word == "crash":
                pytest.fail(f"{out.name}: {rest}")
    return sent, acked


def check_rules(e: Any) -> None:
    """DESIGN section 3, rules 2 to 7, on the engagement as it stands after a command."""
    assert e.funded == e.released + e.refunded + e.escrow, "rule 7: money not conserved"
    held = sum((m.amount for m in e.milestones.values() if m.status in OPEN_STATUSES), Decimal(0))
    assert e.escrow == held, "rule 7: escrow is not what the open milestones hold"
    assert e.committed_amount() <= e.budget, "rule 2: milestones exceed the budget"
    for grant in e.grants.values():
        if grant.status == "active":
            assert e.milestones[grant.milestone].status not in CLOSED, \
                f"rule 4: {grant.id} still active on a closed milestone"
    for m in e.milestones.values():
        unresolved = [d for d in e.disputes.values()
                      if d.milestone == m.id and d.status in ("open", "escalated")]
        assert len(unresolved) == (1 if m.status == "disputed" else 0), f"rule 5: {m.id}"
        if m.status == "settled":
            [resolved] = [d for d in e.disputes.values()
                          if d.milestone == m.id and d.status == "resolved"]
            assert resolved.release + resolved.refund == m.amount, "rule 6"


def check_engagement(app: Engagements, engagement_id: UUID, sent: dict[str, list[Any]],
                     acked: dict[str, Any]) -> set[str]:
    """Walks the engagement command by command; returns the writers' command ids stored."""
    stored = list(app.recorder.select_events(engagement_id))
    assert [s.originator_version for s in stored] == list(range(1, len(stored) + 1)), \
        "versions are not contiguous"
    events = [app.mapper.to_domain_event(s) for s in stored]
    engagement: Any = None
    seen: set[str] = set()
    i = 0
    while i < len(events):
        command_id = events[i].command_id
        assert command_id not in seen, f"{command_id} is stored in two places"
        seen.add(command_id)
        j = i
        while j < len(events) and events[j].command_id == command_id:
            j += 1
        group, group_stored = events[i:j], stored[i:j]
        assert len({e.timestamp for e in group}) == 1, f"{command_id}: not one save"
        if command_id in sent:
            engagement = reapply(app, engagement, command_id, sent[command_id], group,
                                 group_stored)
            if command_id in acked:
                assert acked[command_id] == engagement.commands[command_id][1], \
                    f"{command_id}: the writer heard another answer than the one recorded"
        else:  # the set-up before the rounds
            for event in group:
                engagement = event.mutate(engagement)
        check_rules(engagement)
        i = j
    return seen & set(sent)


def reapply(app: Engagements, engagement: Any, command_id: str, spec: list[Any],
            group: list[Any], group_stored: list[Any]) -> Any:
    """Applies the command again to the engagement as it stood just before its first event;
    it must make exactly the events stored (topic, version and bytes)."""
    name, fields, actor = spec
    command = getattr(commands, name).build(**fields)
    command.check_against(engagement)
    stamp = Stamp(Actor.parse(actor), command_id, command.digest(), group[0].timestamp)
    command.apply_to(engagement, stamp)
    again = [app.mapper.to_stored_event(event) for event in engagement.collect_events()]
    assert [(s.originator_version, s.topic) for s in again] == [
        (s.originator_version, s.topic) for s in group_stored], f"{command_id} is not whole"
    assert [s.state for s in again] == [s.state for s in group_stored], \
        f"{command_id}: stored events differ from what the command makes"
    return engagement


@pytest.fixture
def ledger_db(db_url: str) -> Iterator[tuple[str, list[str]]]:
    app = open_ledger(db_url)
    try:
        engagements = [str(active_engagement(app, budget="1000000")) for _ in range(3)]
    finally:
        app.close()
    yield db_url, engagements


def test_writers_killed_at_random_leave_a_whole_ledger(ledger_db: tuple[str, list[str]],
                                                       tmp_path: Path) -> None:
    db_url, engagements = ledger_db
    outputs = run_rounds(db_url, engagements, tmp_path)
    sent, acked = read_rounds(outputs)
    assert len(acked) > ROUNDS, "the writers hardly got anything done: the test proves little"

    app = open_ledger(db_url)
    try:
        stored: set[str] = set()
        for engagement_id in engagements:
            stored |= check_engagement(app, UUID(engagement_id), sent, acked)
        missing = set(acked) - stored
        assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
        assert stored <= set(sent)
        kinds = {sent[c][0] for c in stored}
        assert {"ReleasePayment", "CancelMilestone", "GrantAccess", "ResolveDispute"} <= kinds

        projector = Projector(app)
        projector.catch_up()
        assert_every_model_at_the_head(projector)
        live = dump_read_models(projector)
        projector.rebuild()
        assert_same_read_models(live, dump_read_models(projector))
    finally:
        app.close()
    verified = expect_ok(run_ledger(db_url, "auditor:ann", "audit", "verify"))
    assert "audit trail intact" in verified.stdout
    print(f"\n{ROUNDS} writers killed: {len(sent)} commands sent, {len(acked)} acknowledged, "
          f"{len(stored)} stored ({len(stored) - len(acked)} stored but never acknowledged)")
