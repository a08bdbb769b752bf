"""The read-model base: a library `Projection` that applies events in batches.

A read model names its tables (`tables`, DDL with `{name}` for each of its tables), and
handles the event types it cares about with methods decorated `@handles(EventName, ...)`.
`apply(tx, batch)` runs inside the runner's transaction, which also writes the model's tracked
position, so rows and position commit together (exactly once, resumable after a crash).

Rows that several events of a batch change are kept in a `RowCache`: loaded once per batch,
changed in memory, written back once, which is what makes catch-up from zero fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.projection import Projection

from projections.store import ReadModelStore, Tx


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs more per event
class Item:
    """One event of a batch: its place in the log, its stored form and its domain event.
    Read-only by convention: every read model of the batch sees the same items."""

    notification: Notification
    event: Any
    #: The engagement's id as text (computed once: str(UUID) is not free).
    engagement_id: str

    @property
    def position(self) -> int:
        return self.notification.id

    @property
    def type(self) -> str:
        return type(self.event).__name__


def handles(*event_names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a method as the handler of the named event types (`MilestoneFunded`, ...)."""

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        method.handles = event_names  # type: ignore[attr-defined]
        return method

    return mark


class ReadModel(Projection[ReadModelStore]):
    #: Short name: the CLI's `projections rebuild NAME`, the tracking key, the table prefix.
    name: ClassVar[str] = ""
    #: What this model shows, for `projections status`.
    title: ClassVar[str] = ""
    #: Bump when tables or meaning change: the model is then rebuilt from zero.
    schema_version: ClassVar[int] = 1
    #: DDL statements with {table} placeholders (table names without the rm_ prefix).
    tables: ClassVar[tuple[str, ...]] = ()
    handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                for event_name in getattr(value, "handles", ()):
                    found[event_name] = attribute
        cls.handlers = found

    def __init__(self, view: ReadModelStore, application_name: str) -> None:
        super().__init__(view)
        self.application_name = application_name

    @property
    def tracking_key(self) -> str:
        return f"{self.application_name}/{self.name}"

    def table_names(self) -> list[str]:
        import re

        return re.findall(r"CREATE TABLE IF NOT EXISTS \{([a-z_]+)\}", " ".join(self.tables))

    # The library's per-event entry point: one event, one transaction.
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        raise NotImplementedError("read models are applied in batches by projections.runner")

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        """Applies a batch of events (all after this model's tracked position)."""
        self.begin(tx, batch)
        handlers = self.handlers
        for item in batch:
            handler = handlers.get(item.type)
            if handler is not None:
                getattr(self, handler)(item)
        self.finish(tx)

    def begin(self, tx: Tx, batch: Sequence[Item]) -> None:
        """Loads what the batch needs (override)."""

    def finish(self, tx: Tx) -> None:
        """Writes what the batch changed (override)."""


class RowCache:
    """Rows of one table keyed by one column, loaded per batch and written back once.

    Columns named in `json_columns` hold JSON text in the table and Python values here.
    """

    def __init__(self, table: str, key: str, columns: Sequence[str],
                 json_columns: Iterable[str] = ()) -> None:
        self.table = table
        self.key = key
        self.columns = list(columns)
        self.json_columns = set(json_columns)
        self.rows: dict[Any, dict[str, Any]] = {}
        self.dirty: set[Any] = set()
        names = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != key)
        self.upsert = (f"INSERT INTO {{{table}}} ({names}) VALUES ({marks}) "
                       f"ON CONFLICT ({key}) DO UPDATE SET {updates}")

    def load(self, tx: Tx, keys: Iterable[Any]) -> None:
        self.rows.clear()
        self.dirty.clear()
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in tx.query(f"SELECT * FROM {{{self.table}}} WHERE {self.key} IN ({marks})",
                                chunk):
                for column in self.json_columns:
                    row[column] = json.loads(row[column]) if row[column] is not None else None
                self.rows[row[self.key]] = row

    def get(self, key: Any) -> dict[str, Any] | None:
        return self.rows.get(key)

    def put(self, row: dict[str, Any]) -> dict[str, Any]:
        self.rows[row[self.key]] = row
        self.dirty.add(row[self.key])
        return row

    def touch(self, key: Any) -> dict[str, Any]:
        """The row, marked to be written back."""
        self.dirty.add(key)
        return self.rows[key]

    def flush(self, tx: Tx) -> None:
        out = []
        for key in self.dirty:
            row = self.rows[key]
            out.append([json.dumps(row[c], separators=(",", ":"), sort_keys=True)
                        if c in self.json_columns else row[c] for c in self.columns])
        tx.executemany(self.upsert, out)
        self.dirty.clear()
        self.rows.clear()


