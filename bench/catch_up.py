"""Projection catch-up: `Projector.rebuild()` of every read model from zero over the demo log,
beside the library's own rate of reading and decoding the same notifications
(`select_notifications` + `mapper.to_domain_event`, in the projector's batch size).

For information, it also times the library's one-transaction-per-event projection pattern: a
`Projection` whose `process_event` counts the event and records its tracking position in one
transaction (the event counters of the library's own projection tests), fed in log order as
`ProjectionRunner` feeds it. SQLite's recorder cannot be subscribed to, so the feed is read here
with `select_notifications` on both backends.
"""

from __future__ import annotations

import time
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder

from bench.bulk import demo_dataset
from bench.common import Backend, Result, Sizes

BAR = 0.5


def read_and_decode(app: Any, batch_size: int, limit: int | None = None) -> tuple[int, float]:
    """The library's own rate: read the log in batches and decode every event."""
    recorder, mapper = app.recorder, app.mapper
    count, position = 0, 1
    started = time.perf_counter()
    while True:
        notifications = recorder.select_notifications(start=position, limit=batch_size)
        if not notifications:
            break
        for notification in notifications:
            mapper.to_domain_event(notification)
        count += len(notifications)
        position = notifications[-1].id + 1
        if limit is not None and count >= limit:
            break
    return count, time.perf_counter() - started


# The library's one-transaction-per-event pattern ------------------------------------------

SQLITE_COUNTERS = ("CREATE TABLE IF NOT EXISTS bench_counters ("
                   "name TEXT PRIMARY KEY, n INTEGER NOT NULL)")


class SQLiteCounters(SQLiteTrackingRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), SQLITE_COUNTERS]

    def incr(self, name: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute("INSERT INTO bench_counters VALUES (?, 1) "
                      "ON CONFLICT (name) DO UPDATE SET n = n + 1", (name,))
            self._insert_tracking(c, tracking)


class PostgresCounters(PostgresTrackingRecorder):
    def __init__(self, datastore: Any) -> None:
        super().__init__(datastore, tracking_table_name="bench_tracking")
        from psycopg.sql import SQL, Identifier

        self.counters = SQL("{0}.bench_counters").format(Identifier(datastore.schema))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {0} (name TEXT PRIMARY KEY, n BIGINT NOT NULL)"
        ).format(self.counters))

    def incr(self, name: str, tracking: Tracking) -> None:
        from psycopg.sql import SQL

        with self.datastore.transaction(commit=True) as c:
            c.execute(SQL("INSERT INTO {0} VALUES (%s, 1) ON CONFLICT (name) DO UPDATE "
                          "SET n = {0}.n + 1").format(self.counters), (name,))
            self._insert_tracking(c, tracking)


class EventCounters(Projection[Any]):
    """Counts created and subsequent events, one transaction per event."""

    name = "bench_counters"

    @singledispatchmethod
    def process_event(self, _: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _created(self, _: Aggregate.Created, tracking: Tracking) -> None:
        self.view.incr("created", tracking)

    @process_event.register
    def _subsequent(self, _: Aggregate.Event, tracking: Tracking) -> None:
        self.view.incr("subsequent", tracking)


def one_transaction_per_event(app: Any, events: int) -> tuple[int, float]:
    recorder = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        view: Any = PostgresCounters(recorder.datastore)
    else:
        view = SQLiteCounters(recorder.datastore)
    view.create_table()
    projection = EventCounters(view)
    mapper = app.mapper
    count, position = 0, 1
    started = time.perf_counter()
    while count < events:
        notifications = recorder.select_notifications(start=position,
                                                      limit=min(1000, events - count))
        if not notifications:
            break
        for notification in notifications:
            projection.process_event(mapper.to_domain_event(notification),
                                     Tracking(app.name, notification.id))
        count += len(notifications)
        position = notifications[-1].id + 1
    return count, time.perf_counter() - started


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    from ledger.application import open_ledger
    from projections.runner import BATCH_SIZE, Projector

    demo = demo_dataset(backend, sizes, context)
    backend.settle()  # the demo's load has just set the server's autovacuum off
    app = open_ledger(demo["url"])
    try:
        decoded, decode_seconds = read_and_decode(app, BATCH_SIZE)
    finally:
        app.close()
    app = open_ledger(demo["url"])  # a fresh application, as `ledger projections rebuild`
    try:
        projector = Projector(app)
        started = time.perf_counter()
        applied = projector.rebuild()
        seconds = time.perf_counter() - started
        pattern_events, pattern_seconds = one_transaction_per_event(
            app, sizes.catch_up_pattern_events)
    finally:
        app.close()
    context["demo"]["projected"] = True
    rate, baseline = applied / seconds, decoded / decode_seconds
    ratio = rate / baseline
    return [
        Result(backend=backend.name, name="projection catch-up", figure=rate, unit="events/s",
               baseline=baseline, baseline_unit="events/s",
               baseline_what="library read + decode (select_notifications + to_domain_event)",
               ratio=ratio, bar=f"≥ {BAR:.0%} of baseline (200,000 events)",
               held=ratio >= BAR,
               details={"events": applied, "seconds": seconds, "models": len(projector.models),
                        "baseline_events": decoded, "baseline_seconds": decode_seconds}),
        Result(backend=backend.name, name="(info) library 1 tx/event projection",
               figure=pattern_events / pattern_seconds, unit="events/s",
               baseline=baseline, baseline_unit="events/s",
               baseline_what="library read + decode",
               ratio=pattern_events / pattern_seconds / baseline, bar="information",
               details={"events": pattern_events, "seconds": pattern_seconds}),
    ]
