"""`ledger projections run` as a process: killed half-way it resumes, and nothing is applied
twice; two followers at once apply every event once; when the PostgreSQL leader dies a
standby takes over where it stopped (README, "When the leader dies").

The runners are real `ledger` processes, killed with SIGKILL (no chance to clean up) or
stopped with SIGTERM / SIGINT. The test watches their progress in the tracking table
directly, which is cheap enough to poll every few milliseconds. Afterwards the read models
must hold exactly what the events say (one audit entry per event, money that adds up) and
equal, table by table, a rebuild from zero.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.application import open_ledger
from ledger.money import to_minor
from projections.catalog import READ_MODELS
from projections.runner import Projector
from projections.store import POSTGRES_TRACKING_TABLE, SQLiteReadModelStore

from tests.cli_helpers import expect_ok, ledger_argv, ledger_env, run_ledger
from tests.test_projections import (
    LiveWriter,
    assert_every_model_at_the_head,
    assert_same_read_models,
    dump_read_models,
)

ADMIN = "admin:ops"
AUDITOR = "auditor:ann"
KEYS = [f"Engagements/{cls.name}" for cls in READ_MODELS]


class Log:
    """The head of a database's event log and its read models' tracked positions, read
    directly (a poll must not cost a `ledger` start-up)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.conn: Any = sqlite3.connect(url[len("sqlite:///"):], timeout=30)
            self.events, self.tracking, self.mark = "stored_events", "tracking", "?"
            self.event_id = "rowid"
        else:
            import psycopg

            base, _, query = url.partition("?")
            schema = query.split("schema=")[1]
            self.conn = psycopg.connect(base, autocommit=True)
            self.events = f'"{schema}".engagements_events'
            self.tracking = f'"{schema}".{POSTGRES_TRACKING_TABLE}'
            self.mark, self.event_id = "%s", "notification_id"

    def close(self) -> None:
        self.conn.close()

    def head(self) -> int:
        return self._one(f"SELECT MAX({self.event_id}) FROM {self.events}")

    def position(self) -> int:
        """The lowest position of any read model (0 before the first batch)."""
        marks = ", ".join(self.mark for _ in KEYS)
        try:
            rows = self.conn.execute(f"SELECT notification_id FROM {self.tracking} "
                                     f"WHERE application_name IN ({marks})", KEYS).fetchall()
        except Exception:  # the tracking table is not there yet
            return 0
        return min(row[0] for row in rows) if len(rows) == len(KEYS) else 0

    def _one(self, sql: str) -> int:
        return self.conn.execute(sql).fetchone()[0] or 0


@pytest.fixture
def log(db_url: str) -> Iterator[Log]:
    reader = Log(db_url)
    yield reader
    reader.close()


class Runner:
    """One `ledger projections run` process, its output in a file."""

    def __init__(self, url: str, output: Path, *args: str) -> None:
        self.output = output
        with output.open("w") as sink:
            self.process = subprocess.Popen(
                ledger_argv(url, ADMIN, "projections", "run", *args), stdout=sink,
                stderr=subprocess.STDOUT, env=ledger_env(), text=True)

    def said(self, text: str) -> bool:
        return text in self.output.read_text()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, how: signal.Signals) -> str:
        """Sends `how` and returns what the runner printed; it must exit 0, no traceback."""
        self.process.send_signal(how)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # say what it was doing, then fail
            self.process.send_signal(signal.SIGUSR1)  # the runner dumps its threads' stacks
            time.sleep(1)
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            raise AssertionError(f"still running 20 s after {how.name}; it said:\n"
                                 f"{self.output.read_text()}") from None
        said = self.output.read_text()
        assert code == 0 and "Traceback" not in said, f"exit {code} after {how.name}:\n{said}"
        assert said.rstrip().endswith("stopped"), said
        return said

    def end(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[Callable[..., Runner]]:
    """Starts runners; ends any still running when the test ends. (Leadership is per ledger
    schema, so other tests' followers running at the same time never lead in ours.)"""
    started: list[Runner] = []

    def start(url: str, *args: str) -> Runner:
        runner = Runner(url, tmp_path / f"runner-{len(started)}.out", *args)
        started.append(runner)
        return runner

    yield start
    for runner in started:  # a failed test leaves no process behind
        runner.end()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30,
             every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(every)


def assert_every_event_applied_once(url: str) -> None:
    """One audit entry per event, money that adds up to the engagements', and tables equal to
    a rebuild from zero."""
    app = open_ledger(url)
    try:
        projector = Projector(app)
        assert_every_model_at_the_head(projector)
        query = projector.store.query
        head = projector.head()
        positions = [n.id for n in app.recorder.select_notifications(start=1, limit=head + 1)]
        assert [row["position"] for row in query("SELECT position FROM {audit} "
                                                 "ORDER BY position")] == positions
        engagements = [app.repository.get(eid) for eid in app.engagement_ids()]
        assert query("SELECT COUNT(*) AS n FROM {summary}")[0]["n"] == len(engagements)
        money = {row["engagement_id"]: row for row in query("SELECT * FROM {money}")}
        totals: dict[str, dict[str, int]] = {}
        for e in engagements:
            row, ccy = money[str(e.id)], e.currency
            sums = {"funded": e.funded, "released": e.released, "refunded": e.refunded}
            assert {key: row[key] for key in sums} == {
                key: to_minor(value, ccy) for key, value in sums.items()}, e.id
            assert row["escrow"] == to_minor(e.funded - e.released - e.refunded, ccy)
            total = totals.setdefault(ccy, dict.fromkeys(sums, 0))
            for key, value in sums.items():
                total[key] += to_minor(value, ccy)
        # Money over time adds event to event: an event applied twice would show here.
        monthly: dict[str, dict[str, int]] = {}
        for row in query("SELECT * FROM {monthly}"):
            total = monthly.setdefault(row["currency"], dict.fromkeys(("funded", "released",
                                                                       "refunded"), 0))
            for key in total:
                total[key] += row[key]
        assert monthly == {ccy: t for ccy, t in totals.items() if any(t.values())}
        opened = query("SELECT SUM(disputes_opened) AS n FROM {monthly}")[0]["n"] or 0
        assert opened == sum(len(e.disputes) for e in engagements)

        kept = dump_read_models(projector)
        projector.rebuild()
        assert_same_read_models(kept, dump_read_models(projector))
    finally:
        app.close()


# A runner killed half-way (both backends) --------------------------------------------------


def test_a_runner_killed_while_catching_up_resumes_and_applies_every_event_once(
        db_url: str, log: Log, runners: Callable[..., Runner]) -> None:
    expect_ok(run_ledger(db_url, None, "demo", "--engagements", "120", "--seed", "7"))
    head = log.head()
    assert head > 2500
    killed_at = [0]
    # Five events a transaction: some hundreds of transactions, so each kill falls half-way.
    for further in (1, 300, 600):
        runner = runners(db_url, "--batch", "5")
        wanted = killed_at[-1] + further
        wait_for(lambda: log.position() >= wanted or runner.process.poll() is not None,
                 f"the runner to pass position {wanted}")
        runner.kill()
        position = log.position()
        assert killed_at[-1] < position < head, (
            f"killed at {position} of {head}, after {killed_at[-1]}:\n"
            + runner.output.read_text())
        killed_at.append(position)
    finished = expect_ok(run_ledger(db_url, ADMIN, "projections", "run"))
    assert finished.stdout.strip() == (
        f"read models up to date: {head - killed_at[-1]} events applied")
    assert_every_event_applied_once(db_url)
    expect_ok(run_ledger(db_url, AUDITOR, "audit", "verify"))


# Two followers at once (both backends) -----------------------------------------------------


def test_two_followers_apply_every_event_once_and_stop_cleanly(
        db_url: str, log: Log, runners: Callable[..., Runner]) -> None:
    expect_ok(run_ledger(db_url, None, "demo", "--engagements", "20", "--seed", "5"))
    # The read-model tables exist before the followers start: two processes creating SQLite's
    # tracking table at the same moment collide (see the test below).
    expect_ok(run_ledger(db_url, AUDITOR, "projections", "status"))
    first = runners(db_url, "--follow", "--poll", "0.1", "--batch", "7")
    second = runners(db_url, "--follow", "--poll", "0.1", "--batch", "7")
    app = open_ledger(db_url)
    try:
        writer = LiveWriter(app, seed=21)
        for _ in range(15):  # while both are running
            writer.new_engagements(1)
            writer.commands(8)
            time.sleep(0.05)
    finally:
        app.close()
    wait_for(lambda: log.position() == log.head(), "the followers to reach the head")
    if db_url.startswith("postgresql"):
        leader, standby = (first, second) if first.said("leading:") else (second, first)
        # The standby first: stopped second, it would take over from the leader.
        waited = standby.stop(signal.SIGINT)
        assert "standing by" in waited and "leading:" not in waited, waited
        assert "leading:" in leader.stop(signal.SIGTERM)
    else:
        for runner, how in ((first, signal.SIGTERM), (second, signal.SIGINT)):
            assert "polling" in runner.stop(how)
    assert_every_event_applied_once(db_url)


def test_two_processes_creating_the_sqlite_tracking_table_at_once_both_start(
        sqlite_url: str) -> None:
    """The race the followers above sidestep, made certain: one process looks for SQLite's
    tracking table and finds none, another creates it, then the first creates it too."""
    first, second = open_ledger(sqlite_url), open_ledger(sqlite_url)
    try:
        late = SQLiteReadModelStore(second.recorder)
        looks = late.max_tracking_id

        def not_there_yet(application_name: str) -> int | None:
            # Its first look came before the other process created the table.
            late.max_tracking_id = looks  # type: ignore[method-assign]
            raise OperationalError("no such table: tracking")

        late.max_tracking_id = not_there_yet  # type: ignore[method-assign]
        Projector(first)  # meanwhile the other process creates every table
        late.ensure_tables([])  # raises IntegrityError: Failed to record tracking for __migration__
    finally:
        first.close()
        second.close()


# When the leader dies (PostgreSQL) ---------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_when_the_leader_dies_a_standby_takes_over_where_it_stopped(
        db_url: str, runners: Callable[..., Runner]) -> None:
    url = db_url
    expect_ok(run_ledger(url, None, "demo", "--engagements", "10", "--seed", "5"))
    log = Log(url)
    try:
        leader = runners(url, "--follow", "--batch", "5")
        wait_for(lambda: leader.said("leading:"), "the first runner to lead")
        standby = runners(url, "--follow", "--batch", "50")
        wait_for(lambda: standby.said("standing by"), "the second runner to stand by")
        wait_for(lambda: log.position() == log.head(), "the leader to reach the head")

        # A burst of events: the leader follows five at a time and dies half-way through.
        before = log.head()
        expect_ok(run_ledger(url, None, "demo", "--engagements", "80", "--seed", "8",
                             "--force"))
        head = log.head()
        wait_for(lambda: log.position() > before + 300, "the leader to be half-way")
        assert not standby.said("leading:")  # (after the kill it may lead at any moment)
        leader.kill()
        died_at = log.position()
        assert before < died_at < head

        wait_for(lambda: standby.said("leading:"), "the standby to take over")
        wait_for(lambda: log.position() == head, "the new leader to reach the head")
        # It follows what is written from now on too.
        app = open_ledger(url)
        try:
            writer = LiveWriter(app, seed=4)
            writer.new_engagements(2)
            writer.commands(20)
        finally:
            app.close()
        assert log.head() > head
        wait_for(lambda: log.position() == log.head(), "the new leader to follow new events")
        standby.stop(signal.SIGTERM)
    finally:
        log.close()
    assert_every_event_applied_once(url)


@pytest.fixture
def another_ledger_url(postgres_url: str) -> Iterator[str]:
    """A second schema in the same PostgreSQL database: another ledger beside the first."""
    import psycopg

    base, _, query = postgres_url.partition("?")
    schema = query.split("schema=")[1] + "_b"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_followers_of_two_ledgers_in_one_database_each_lead(
        db_url: str, another_ledger_url: str, runners: Callable[..., Runner]) -> None:
    for url in (db_url, another_ledger_url):
        expect_ok(run_ledger(url, None, "demo", "--engagements", "2", "--seed", "5"))
    followers = [runners(db_url, "--follow"), runners(another_ledger_url, "--follow")]
    wait_for(lambda: all(f.said("leading:") for f in followers)
             or any(f.said("standing by") for f in followers), "the followers to settle")
    assert [f.said("leading:") for f in followers] == [True, True], [
        f.output.read_text() for f in followers]
