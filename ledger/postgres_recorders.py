"""The library's PostgreSQL recorders with one change: a lock timeout is not retried.

The library retries every `OperationalError` of a recorder method 10 times, 0.2 s apart, to
ride out a dropped connection. PostgreSQL reports a lock timeout as an `OperationalError`
too (SQLSTATE 55P03), so a writer behind a stuck transaction waited ten lock timeouts (about
100 s with the default 10 s) before giving up. Here the library's own retry is kept for
everything else, and a lock timeout goes straight to the application, which refuses the
command (exit 5). Every connection also waits at most the lock timeout for any lock (the
library sets it only around its insert), so a stuck transaction holding the table in ACCESS
EXCLUSIVE mode cannot hold up reading an engagement for ever either.

`open_ledger` selects these through `PERSISTENCE_MODULE=ledger.postgres_recorders:Factory`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier

from ledger.storage import is_lock_timeout

#: The events table's insert: the library's lock, notify and insert in one statement.
INSERT_FUNCTION = "ledger_insert_events"
#: As the library's own `@retry` on its recorder methods.
ATTEMPTS = 10
WAIT = 0.2


def _retried_except_lock_timeouts(method: Callable[..., Any]) -> Callable[..., Any]:
    """The library's method without its `@retry`, retried the same way except on a lock timeout."""
    inner = getattr(method, "__wrapped__", method)  # the library's @retry sets __wrapped__

    @functools.wraps(inner)
    def retried(self: Any, *args: Any, **kwargs: Any) -> Any:
        attempts = 0
        while True:
            try:
                return inner(self, *args, **kwargs)
            except (InterfaceError, OperationalError) as error:
                attempts += 1
                if is_lock_timeout(error) or attempts >= ATTEMPTS:
                    raise
                time.sleep(WAIT * (1 + 0.1 * (random.random() - 0.5)))

    return retried


def _select_events_in_binary(self: Any, originator_id: Any, *, gt: int | None = None,
                             lte: int | None = None, desc: bool = False,
                             limit: int | None = None) -> Sequence[StoredEvent]:
    """The library's `select_events` (its statement, parameters and rows) with the rows sent
    in PostgreSQL's binary format. A snapshot's state is `bytea`, which the text format sends
    as hex, twice its size, for the client to parse: a 10,000-event engagement's 1.2 MB
    snapshot took 7-9 ms to fetch that way and 1 ms in binary (uuid, bigint, text and bytea
    come back as the same Python values either way)."""
    statement = self.select_events_statement
    params: list[Any] = [originator_id]
    if gt is not None:
        params.append(gt)
        statement += SQL(" AND originator_version > %s")
    if lte is not None:
        params.append(lte)
        statement += SQL(" AND originator_version <= %s")
    statement += SQL(" ORDER BY originator_version")
    statement += SQL(" DESC") if desc else SQL(" ASC")
    if limit is not None:
        params.append(limit)
        statement += SQL(" LIMIT %s")
    with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
        curs.execute(statement, params, prepare=True)
        return [StoredEvent(originator_id=row["originator_id"],
                            originator_version=row["originator_version"],
                            topic=row["topic"], state=bytes(row["state"]))
                for row in curs.fetchall()]


class LedgerPostgresAggregateRecorder(PostgresAggregateRecorder):
    """The snapshots table."""

    insert_events = _retried_except_lock_timeouts(PostgresAggregateRecorder.insert_events)
    select_events = _retried_except_lock_timeouts(_select_events_in_binary)


class LedgerPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The events table and its notification log.

    Inserts are the library's statements (`LOCK TABLE … IN EXCLUSIVE MODE`, `NOTIFY`, the
    `INSERT … SELECT FROM unnest(…) RETURNING notification_id`) inside one PL/pgSQL function,
    called as one autocommitted statement: one round trip instead of two, and the table lock
    is held by the server for the insert and its commit only, never across a round trip to a
    client process that 2 cores may not schedule at once. The lock, and so the promise that
    notification ids commit in order, is the library's.
    """

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema, table = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        self.ledger_insert_function = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
            # SECURITY DEFINER: a role that may only append (issue 7 point 9) inserts through
            # this function, with the owner's right to take the library's table lock.
            "RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS $BODY$ BEGIN "
            # No SET LOCAL lock_timeout here: every connection has the ledger's as a setting.
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t "
            "(originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(schema=schema, table=table, function=Identifier(INSERT_FUNCTION),
                 event=Identifier(self.stored_event_type_name),
                 channel=Identifier(self.channel_name))
        self.sql_create_statements.append(self.ledger_insert_function)
        # The events go in binary (`%b`): as text, psycopg escapes every field of every
        # composite with a regular expression and writes the state as hex, ~25 us of a
        # command's client CPU; on 2 cores that CPU is what two writers share.
        self.ledger_insert_call = SQL("SELECT n FROM {schema}.{function}(%b) AS n").format(
            schema=schema, function=Identifier(INSERT_FUNCTION))

    def _insert_in_one_statement(self, stored_events: Sequence[StoredEvent],
                                 **_: Any) -> Sequence[int] | None:
        events = [self.construct_pg_stored_event(e.originator_id, e.originator_version,
                                                 e.topic, e.state) for e in stored_events]
        for attempt in (1, 2):
            try:
                with self.datastore.get_connection() as conn, conn.cursor() as curs:
                    curs.execute(self.ledger_insert_call, (events,))
                    return [row["n"] for row in curs.fetchall()]
            except ProgrammingError as error:
                # A ledger created before this function existed: create it, once.
                if attempt == 2 or getattr(error.__cause__, "sqlstate", None) != "42883":
                    raise
                with self.datastore.get_connection() as conn:
                    conn.execute(self.ledger_insert_function)
        return None  # unreachable

    insert_events = _retried_except_lock_timeouts(_insert_in_one_statement)
    select_events = _retried_except_lock_timeouts(PostgresApplicationRecorder.select_events)
    select_notifications = _retried_except_lock_timeouts(
        PostgresApplicationRecorder.select_notifications)
    max_notification_id = _retried_except_lock_timeouts(
        PostgresApplicationRecorder.max_notification_id)


class Factory(PostgresFactory):
    aggregate_recorder_class = LedgerPostgresAggregateRecorder
    application_recorder_class = LedgerPostgresApplicationRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        seconds = self.datastore.lock_timeout
        if seconds:
            # libpq's `options`: every statement of every pooled connection, reads included,
            # waits at most this long for a lock. The pool opens on first use, after this.
            self.datastore.pool.kwargs["options"] = f"-c lock_timeout={int(seconds * 1000)}"
