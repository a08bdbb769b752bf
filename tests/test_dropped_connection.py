"""Idempotency where it is hardest: the PostgreSQL connection drops right after COMMIT.

The ledger talks to PostgreSQL through a small TCP proxy in this test. When armed, the proxy
lets the next COMMIT through to the server and holds back everything the server answers on
that connection. The test then waits until the command's events are committed (another
session sees them), ends that server process with `pg_terminate_backend` from another
session, and the proxy closes the ledger's socket: the writer never hears that its COMMIT
succeeded. Its retry reconnects and meets the primary key; the ledger must reload the
engagement, find the command id already recorded (rule 12), and answer as the first time:
success once, the same answer, the events stored once. (No fix was needed for this: the
library's recorder retries the insert on a new connection and its IntegrityError takes the
application's conflict path, which reloads the engagement first.)
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import psycopg
import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import AcceptMilestone, GrantAccess, ReleasePayment, SubmitWork
from ledger.postgres_recorders import INSERT_FUNCTION as INSERT_FUNCTION_NAME

from cli_helpers import describe, ledger_argv, ledger_env
from factories import AUDITOR, CLIENT, CONTRACTOR, CURATOR, active_engagement, funded_milestone

pytestmark = pytest.mark.postgres
INSERT_FUNCTION = INSERT_FUNCTION_NAME.encode()

DEADLINE = 60  # seconds; only to stop a hung test, never asserted on


class CommitCuttingProxy:
    """Forwards TCP between the ledger and PostgreSQL; armed, it cuts one connection after
    the COMMIT of a transaction that inserted (or the call of the insert function, which
    commits on its own) has gone to the server, before the server's answer comes back. (Other transactions commit too: psycopg looks up the composite types
    in one when a recorder starts.)"""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.commit_sent = threading.Event()
        #: The victim's local port towards the server: pg_stat_activity.client_port.
        self.victim_port: int | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        victim = False
        inserting = False  # this connection's transaction wrote events (not, say, a type lookup)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return  # either side closed: close both
                    if source is client and b"INSERT INTO" in data:
                        inserting = True
                    # The events table's insert is one autocommitted statement (the ledger's
                    # insert function: ledger.postgres_recorders); anything else commits with
                    # COMMIT after its INSERT.
                    commits = (inserting and b"COMMIT" in data) or INSERT_FUNCTION in data
                    if source is client and commits and self.armed.is_set():
                        self.armed.clear()
                        victim = True
                        self.victim_port = server.getsockname()[1]
                        server.sendall(data)
                        self.commit_sent.set()
                        continue
                    if source is server and victim:
                        continue  # the server's answer to COMMIT never reaches the ledger
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            client.close()
            server.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[CommitCuttingProxy]:
    parts = urlsplit(postgres_url)
    proxy = CommitCuttingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy
    proxy.close()


def admin_connect(postgres_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(postgres_url.split("?")[0], autocommit=True)


def events_of_command(postgres_url: str, command_id: str) -> list[tuple[int, str]]:
    """(version, topic) of every stored event of the command, straight from the table."""
    schema = postgres_url.split("schema=")[1]
    with admin_connect(postgres_url) as conn:
        rows = conn.execute(
            f'SELECT originator_version, topic FROM "{schema}".engagements_events '
            "WHERE position(%s in convert_from(state, 'UTF8')) > 0 ORDER BY notification_id",
            (f'"command_id":"{command_id}"',)).fetchall()
    return [(version, topic.rsplit(":", 1)[1]) for version, topic in rows]


def cut_after_commit(proxy: CommitCuttingProxy, postgres_url: str, command_id: str,
                     writer_done: Any) -> list[tuple[int, str]]:
    """Waits for the armed COMMIT, checks it is durable, then ends that server process."""
    give_up = time.monotonic() + DEADLINE
    while not proxy.commit_sent.wait(0.05):
        assert not writer_done(), "the writer finished without a COMMIT passing the proxy"
        assert time.monotonic() < give_up, "no COMMIT came"
    while not (committed := events_of_command(postgres_url, command_id)):
        assert time.monotonic() < give_up, "the COMMIT never became visible"
        time.sleep(0.01)
    with admin_connect(postgres_url) as conn:
        [(pid,)] = conn.execute("SELECT pid FROM pg_stat_activity WHERE client_port = %s",
                                (proxy.victim_port,)).fetchall()
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return committed


def test_a_command_whose_commit_answer_is_lost_reports_success_once(
        proxy: CommitCuttingProxy, postgres_url: str) -> None:
    """Through the command line: `milestone add` prints its id once, and it is stored once."""
    app = open_ledger(postgres_url)
    try:
        eid = active_engagement(app)
        funded_milestone(app, eid)  # M1
    finally:
        app.close()
    argv = ledger_argv(proxy.url(postgres_url), "curator:cara", "milestone", "add", str(eid),
                       "--title", "Loader", "--amount", "250", "--due", "2027-03-31",
                       "--command-id", "add-loader")
    proxy.armed.set()
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ledger_env())
    try:
        committed = cut_after_commit(proxy, postgres_url, "add-loader",
                                     lambda: writer.poll() is not None)
        stdout, stderr = writer.communicate(timeout=DEADLINE)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    result = subprocess.CompletedProcess(argv, writer.returncode, stdout, stderr)
    assert committed == [(committed[0][0], "MilestoneDefined")]
    assert result.returncode == 0, describe(result)
    assert result.stdout == "M2\n", describe(result)
    assert result.stderr == "", describe(result)
    assert events_of_command(postgres_url, "add-loader") == committed, "recorded twice"

    # A later retry by the user gets the same answer, and still records nothing more.
    again = subprocess.run(ledger_argv(postgres_url, "curator:cara", *argv[len(ledger_argv(
        proxy.url(postgres_url), "curator:cara")):]), capture_output=True, text=True,
        env=ledger_env(), timeout=DEADLINE, check=False)
    assert (again.returncode, again.stdout) == (0, "M2\n"), describe(again)
    assert events_of_command(postgres_url, "add-loader") == committed


def test_a_release_whose_commit_answer_is_lost_is_stored_whole_once(
        proxy: CommitCuttingProxy, postgres_url: str) -> None:
    """In process, a command of several events (a release and its grant's revocation): the
    application answers once, every event is there once, and it did reconnect to get there."""
    setup = open_ledger(postgres_url)
    try:
        eid = active_engagement(setup)
        milestone = funded_milestone(setup, eid, due="2027-03-31")
        setup.execute(GrantAccess.build(engagement_id=eid, resource="repo", level="read",
                                        milestone_id=milestone), CURATOR)
        setup.execute(SubmitWork.build(engagement_id=eid, milestone_id=milestone,
                                       note="PR #4"), CONTRACTOR)
        setup.execute(AcceptMilestone.build(engagement_id=eid, milestone_id=milestone), CLIENT)
    finally:
        setup.close()
    app = open_ledger(proxy.url(postgres_url))
    answers: list[Any] = []
    try:
        app.engagement(eid, AUDITOR)  # loaded and cached, as a long-running writer would have it
        release = ReleasePayment.build(engagement_id=eid, milestone_id=milestone,
                                       command_id="release-m1")
        proxy.armed.set()
        writer = threading.Thread(target=lambda: answers.append(_answer(app, release)))
        writer.start()
        committed = cut_after_commit(proxy, postgres_url, "release-m1",
                                     lambda: not writer.is_alive())
        writer.join(DEADLINE)
        assert not writer.is_alive()
        assert answers == [("ok", None)]
        assert [topic for _, topic in committed] == ["PaymentReleased", "AccessRevoked"]
        assert events_of_command(postgres_url, "release-m1") == committed
        assert app.conflicts_retried == 1, "the retry after the drop meets the primary key"
        state = app.engagement(eid, AUDITOR)
        assert state.milestones[milestone].status == "released"
        assert [g.status for g in state.grants.values()] == ["revoked"]
        assert _answer(app, release) == ("ok", None)  # and once more: still the same
        versions = [e.originator_version for e in app.events.get(UUID(str(eid)))]
        assert versions == list(range(1, len(versions) + 1))
    finally:
        app.close()


def _answer(app: Engagements, command: Any) -> tuple[str, Any]:
    try:
        return "ok", app.execute(command, CLIENT)
    except Exception as error:  # the test wants to see it, not a thread's traceback
        return type(error).__name__, str(error)


def test_when_the_library_gives_up_the_command_fails_with_one_line(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the library's own retries (an outage longer than they last), the command fails
    with exit 1 and says how to retry safely; a lock timeout is exit 5 instead."""
    from eventsourcing.persistence import OperationalError

    from ledger.commands import LogNote
    from ledger.errors import ConcurrentChange, DatabaseUnavailable

    app = open_ledger(postgres_url)
    try:
        eid = active_engagement(app)
        for cause, expected in ((psycopg.OperationalError("server closed the connection "
                                                          "unexpectedly"), DatabaseUnavailable),
                                (psycopg.errors.LockNotAvailable("canceling statement due to "
                                                                 "lock timeout"),
                                 ConcurrentChange)):
            def give_up(*_args: Any, cause: Exception = cause, **_kwargs: Any) -> None:
                raise OperationalError(str(cause)) from cause

            monkeypatch.setattr(app.recorder, "insert_events", give_up)
            with pytest.raises(expected) as refused:
                app.execute(LogNote.build(engagement_id=eid, text="x", command_id="n1"),
                            CURATOR)
            assert len(refused.value.message.splitlines()) == 1
            if expected is DatabaseUnavailable:
                assert refused.value.exit_code == 1
                assert "same --command-id" in refused.value.message
            else:
                assert refused.value.exit_code == 5 and "for 10 s" in refused.value.message
        monkeypatch.undo()
        assert app.execute(LogNote.build(engagement_id=eid, text="x", command_id="n1"),
                           CURATOR) is None
        assert [type(e).__name__ for e in app.events.get(eid)][-1] == "NoteLogged"
    finally:
        app.close()
