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
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType

from ledger.storage import is_lock_timeout

#: As the library's own `@retry` on its recorder methods.
ATTEMPTS = 10
WAIT = 0.2


def _retried_except_lock_timeouts(method: Callable[..., Any]) -> Callable[..., Any]:
    """The library's method without its `@retry`, retried the same way except on a lock timeout."""
    inner = method.__wrapped__  # type: ignore[attr-defined]  # set by the library's @retry

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


class LedgerPostgresAggregateRecorder(PostgresAggregateRecorder):
    """The snapshots table."""

    insert_events = _retried_except_lock_timeouts(PostgresAggregateRecorder.insert_events)
    select_events = _retried_except_lock_timeouts(PostgresAggregateRecorder.select_events)


class LedgerPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The events table and its notification log."""

    insert_events = _retried_except_lock_timeouts(PostgresApplicationRecorder.insert_events)
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
