"""The `eventsourcing` library's own recorder tests, run against the ledger's storage.

Each case is one of the library's test cases (`eventsourcing.tests.persistence`) whose
`create_recorder` hands it the recorder the ledger itself uses: `open_ledger(url)` on a fresh
SQLite file or a fresh PostgreSQL schema, with the ledger's environment (lock timeout, pool
size and overflow, connect timeout, tables created once under the advisory lock, and on
PostgreSQL the ledger's recorder classes that do not retry a lock timeout). So:

- the application recorder is `app.recorder` (the events table and its notification log);
- the aggregate recorder is `app.snapshots.recorder` (the snapshots table);
- the tracking recorder is the read models' store (`Projector(app).store`: the library's
  tracking recorder on the ledger's datastore, with the ledger's tracking table);
- the non-interleaving test races two 1,000-event inserts on `app.recorder`.

The library's tests are `unittest.TestCase`s; pytest runs them as they are, nothing skipped
or changed. Their `test_performance` and `test_concurrent_throughput` only print timings (no
assertion on a time), so they are kept; `test_concurrent_no_conflicts` (10 threads writing
10,000 events while two threads read) takes well under a second.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
    TrackingRecorderTestCase,
)

from ledger.application import Engagements, open_ledger
from ledger.postgres_recorders import (
    LedgerPostgresAggregateRecorder,
    LedgerPostgresApplicationRecorder,
)

class LedgerDatabase:
    """Opens the ledger as `ledger` would, on a database of this test's own; closes it after."""

    url: str

    def open_ledger(self) -> Engagements:
        app = open_ledger(self.url)
        threads_before = set(threading.enumerate())
        self.addCleanup(close_after_threads, app, threads_before)  # type: ignore[attr-defined]
        return app


def close_after_threads(app: Engagements, threads_before: set[threading.Thread]) -> None:
    """`test_concurrent_no_conflicts` tells its two reader threads to stop but does not wait
    for them; closing the SQLite connections under a reader still inside `execute` crashes
    the interpreter (a segfault in sqlite3). Let them finish first."""
    for thread in set(threading.enumerate()) - threads_before:
        if not thread.daemon:  # the pool's own workers are daemons and live on
            thread.join(timeout=10)
    app.close()


class OnSQLite(LedgerDatabase):
    @pytest.fixture(autouse=True)
    def _fresh_sqlite_file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'ledger.db'}"


class OnPostgres(LedgerDatabase):
    @pytest.fixture(autouse=True)
    def _fresh_postgres_schema(self, postgres_url: str) -> None:
        self.url = postgres_url


# Application recorder: the events table ------------------------------------------------------


class TheEventsTable:
    def create_recorder(self) -> Any:
        return self.open_ledger().recorder  # type: ignore[attr-defined]


class TestSQLiteApplicationRecorder(OnSQLite, TheEventsTable, ApplicationRecorderTestCase[Any]):
    pass


@pytest.mark.postgres
class TestPostgresApplicationRecorder(OnPostgres, TheEventsTable,
                                      ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> Any:
        recorder = super().create_recorder()
        assert type(recorder) is LedgerPostgresApplicationRecorder
        return recorder

    def test_insert_subscribe(self) -> None:
        """Optional in the library; projections follow PostgreSQL through its NOTIFY channel."""
        self.optional_test_insert_subscribe()


# Aggregate recorder: the snapshots table -----------------------------------------------------


class TheSnapshotsTable:
    def create_recorder(self) -> Any:
        snapshots = self.open_ledger().snapshots  # type: ignore[attr-defined]
        assert snapshots is not None, "the ledger takes snapshots (every 200 events)"
        return snapshots.recorder


class TestSQLiteAggregateRecorder(OnSQLite, TheSnapshotsTable, AggregateRecorderTestCase):
    pass


@pytest.mark.postgres
class TestPostgresAggregateRecorder(OnPostgres, TheSnapshotsTable, AggregateRecorderTestCase):
    def create_recorder(self) -> Any:
        recorder = super().create_recorder()
        assert type(recorder) is LedgerPostgresAggregateRecorder
        return recorder


# Tracking recorder: the read models' positions -----------------------------------------------


class TheReadModelStore:
    def create_recorder(self) -> Any:
        from projections.runner import Projector

        return Projector(self.open_ledger()).store  # type: ignore[attr-defined]


class TestSQLiteTrackingRecorder(OnSQLite, TheReadModelStore, TrackingRecorderTestCase):
    pass


@pytest.mark.postgres
class TestPostgresTrackingRecorder(OnPostgres, TheReadModelStore, TrackingRecorderTestCase):
    pass


# Two writers racing: each one's notification ids in one unbroken run -------------------------


class TestSQLiteNonInterleavingNotificationIDs(OnSQLite, TheEventsTable,
                                               NonInterleavingNotificationIDsBaseCase):
    pass


@pytest.mark.postgres
class TestPostgresNonInterleavingNotificationIDs(OnPostgres, TheEventsTable,
                                                 NonInterleavingNotificationIDsBaseCase):
    pass
