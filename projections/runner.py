"""Keeps read models up to date with the application's event log.

`Projector.catch_up()` reads the log after the lowest tracked position in batches
(`select_notifications`), decodes each event once with the application's mapper, and applies
the batch to every read model that has not seen it, in ONE transaction that also writes each
model's tracked position. The transaction first takes the database's write lock (SQLite
`BEGIN IMMEDIATE`, a PostgreSQL transaction advisory lock) and re-reads the positions inside
it, so two processes catching up at once never apply an event twice, and a process killed at
any point leaves rows and positions that agree.

`Projector.follow()` is `ledger projections run --follow`: on PostgreSQL it first becomes the
leader (a session advisory lock; the others stand by and take over within a second when the
leader's connection ends) and wakes on the library's LISTEN/NOTIFY channel; on SQLite, whose
recorder cannot be subscribed to, it polls.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ledger.gc_pause import gc_paused
from projections.catalog import READ_MODELS, read_model_class
from projections.readmodel import Item, ReadModel
from projections.store import LEADER_LOCK_KEY, ReadModelStore, open_store

BATCH_SIZE = 10_000
#: A catch-up that applied this many events refreshes the planner's statistics (PostgreSQL).
ANALYZE_AFTER = 20_000
META_TABLE = ("CREATE TABLE IF NOT EXISTS {meta} ("
              "name TEXT PRIMARY KEY, schema_version INTEGER NOT NULL)")

Progress = Callable[[int, int], None]  # (applied so far, to apply in all)


class Projector:
    def __init__(self, app: Any, names: Sequence[str] | None = None) -> None:
        self.app = app
        self.store: ReadModelStore = open_store(app)
        classes = [read_model_class(n) for n in names] if names else list(READ_MODELS)
        self.models: list[ReadModel] = [cls(self.store, app.name) for cls in classes]
        statements = [META_TABLE]
        for cls in READ_MODELS:  # every model's tables exist, whichever this projector runs
            statements.extend(cls.tables)
        self.store.ensure_tables(statements)
        self._upgrade_changed_models()

    # Positions ------------------------------------------------------------------------

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def status(self) -> list[dict[str, Any]]:
        head = self.head()
        rows = []
        for model in self.models:
            position = self.store.position(model.tracking_key)
            rows.append({"name": model.name, "title": model.title, "position": position,
                         "head": head, "behind": max(head - position, 0)})
        return rows

    # Catching up ----------------------------------------------------------------------

    def catch_up(self, progress: Progress | None = None, batch_size: int = BATCH_SIZE,
                 until: int | None = None) -> int:
        """Applies every event up to the log's head now (or `until`); returns how many."""
        models = self.models
        target = self.head() if until is None else until
        low = min(self.store.position(m.tracking_key) for m in models)
        total = max(target - low, 0)
        applied = 0
        recorder, mapper = self.app.recorder, self.app.mapper
        while low < target:
            # A batch makes millions of objects, almost none garbage, beside the kept
            # engagements: the collector's full passes took a third of a large catch-up.
            with gc_paused():
                notifications = recorder.select_notifications(start=low + 1, limit=batch_size,
                                                              stop=target)
                if not notifications:
                    break
                items = [Item(n, mapper.to_domain_event(n), str(n.originator_id))
                         for n in notifications]
                positions = [item.position for item in items]
                with self.store.transaction() as tx:
                    for model in models:
                        tracked = tx.position(model.tracking_key)
                        todo = items[bisect.bisect_right(positions, tracked):]
                        if todo:
                            model.apply(tx, todo)
                            tx.track(model.tracking_key, todo[-1].position)
            low = positions[-1]
            applied += len(items)
            if progress is not None:
                progress(min(low - (target - total), total), total)
        if applied >= ANALYZE_AFTER:
            self.store.refresh_statistics([t for m in models for t in m.table_names()])
        return applied

    def rebuild(self, progress: Progress | None = None) -> int:
        """Empties this projector's read models and builds them again from the first event."""
        with self.store.transaction() as tx:
            for model in self.models:
                self._reset(tx, model)
        return self.catch_up(progress)

    def _reset(self, tx: Any, model: ReadModel) -> None:
        for table in model.table_names():
            tx.execute(f"DROP TABLE IF EXISTS {{{table}}}")
        for statement in model.tables:
            tx.execute(statement)
        tx.execute(f"DELETE FROM {self.store.tracking_table_sql()} WHERE application_name = ?",
                   (model.tracking_key,))
        tx.execute("DELETE FROM {meta} WHERE name = ?", (model.name,))
        tx.execute("INSERT INTO {meta} (name, schema_version) VALUES (?, ?)",
                   (model.name, model.schema_version))

    def _upgrade_changed_models(self) -> None:
        known = {row["name"]: row["schema_version"]
                 for row in self.store.query("SELECT name, schema_version FROM {meta}")}
        stale = [cls for cls in READ_MODELS if known.get(cls.name) != cls.schema_version]
        if stale:
            with self.store.transaction() as tx:
                again = {row["name"]: row["schema_version"]
                         for row in tx.query("SELECT name, schema_version FROM {meta}")}
                for cls in stale:
                    if again.get(cls.name) != cls.schema_version:
                        self._reset(tx, cls(self.store, self.app.name))

    # Following ------------------------------------------------------------------------

    def follow(self, stop: threading.Event, poll: float = 0.5,
               say: Callable[[str], None] = print, progress: Progress | None = None) -> None:
        """Keeps every model up to date until `stop` is set."""
        if self.store.kind == "postgres":
            self._follow_postgres(stop, poll, say, progress)
            return
        say("following the event log (SQLite: polling every "
            f"{poll:g} s); Ctrl+C stops")
        while not stop.is_set():
            self.catch_up(progress)
            stop.wait(poll)

    def _follow_postgres(self, stop: threading.Event, poll: float,
                         say: Callable[[str], None], progress: Progress | None) -> None:
        import psycopg
        from psycopg import sql

        conninfo = self.app.database.psycopg_conninfo()
        channel = self.app.recorder.channel_name
        standing_by = False
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                    while not stop.is_set():
                        got = conn.execute(
                            "SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS got",
                            (LEADER_LOCK_KEY, self.store.datastore.schema)).fetchone()
                        if got and got[0]:
                            break
                        if not standing_by:
                            say("another runner leads; standing by to take over")
                            standing_by = True
                        stop.wait(1.0)
                    if stop.is_set():
                        return
                    say("leading: following the event log (LISTEN/NOTIFY); Ctrl+C stops")
                    standing_by = False
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    while not stop.is_set():
                        self.catch_up(progress)
                        for _ in conn.notifies(timeout=poll, stop_after=1):
                            pass
            except psycopg.OperationalError as error:
                # The LISTEN connection dropped: leadership is lost with it; start again.
                say(f"connection lost ({str(error).strip().splitlines()[0]}); reconnecting")
                time.sleep(1.0)
