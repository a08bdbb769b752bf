"""Engagement state: each engagement's current state, kept for the models derived from it.

Rather than copy the domain's rules into every read model (when does an engagement become
active, what is in escrow), this model keeps one snapshot per engagement and moves it forward
with the domain's own event classes (`event.mutate`). The read models that show an
engagement's current state (summary, access register, money ledger, dispute docket, curator
workload, contractor record) then derive their rows from the real `Engagement` after each
batch. It runs first in every batch, so it is never behind the models that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent

from projections.readmodel import Item, ReadModel
from projections.store import Tx


class EngagementState(ReadModel):
    name = "state"
    title = "engagement state (read by the other models)"
    tables = (
        "CREATE TABLE IF NOT EXISTS {engagement_state} ("
        "engagement_id TEXT PRIMARY KEY, version INTEGER NOT NULL, topic TEXT NOT NULL, "
        "state TEXT NOT NULL)",
    )

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        ids = {item.engagement_id for item in batch}
        engagements = load_engagements(tx, ids)
        for item in batch:
            key = item.engagement_id
            engagements[key] = item.event.mutate(engagements.get(key))
        mapper = _plain_mapper(tx)
        rows = []
        for key in ids:
            engagement = engagements[key]
            snapshot = type(engagement).Snapshot.take(engagement)
            stored = mapper.to_stored_event(snapshot)
            rows.append((key, engagement.version, stored.topic, stored.state.decode()))
        tx.executemany("INSERT INTO {engagement_state} (engagement_id, version, topic, state) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (engagement_id) DO UPDATE SET "
                       "version = excluded.version, topic = excluded.topic, "
                       "state = excluded.state", rows)
        tx.cache.setdefault("engagements", {}).update(engagements)


def load_engagements(tx: Tx, ids: Iterable[str]) -> dict[str, Any]:
    """The engagements as this transaction sees them (after the state model's batch)."""
    cache: dict[str, Any] = tx.cache.setdefault("engagements", {})
    missing = sorted(set(ids) - cache.keys())
    mapper = _plain_mapper(tx)
    for start in range(0, len(missing), 500):
        chunk = missing[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.query(f"SELECT * FROM {{engagement_state}} WHERE engagement_id IN ({marks})",
                            chunk):
            stored = StoredEvent(originator_id=row["engagement_id"],
                                 originator_version=row["version"], topic=row["topic"],
                                 state=row["state"].encode())
            cache[row["engagement_id"]] = mapper.to_domain_event(stored).mutate(None)
    return {key: cache[key] for key in ids if key in cache}


def _plain_mapper(tx: Tx) -> Mapper[Any]:
    """The application's transcoder without compression or encryption: rows stay readable."""
    mapper = tx.cache.get("plain_mapper")
    if mapper is None:
        mapper = tx.cache["plain_mapper"] = Mapper(transcoder=tx.store.app_mapper.transcoder)
    return mapper


class EngagementRows(ReadModel):
    """A read model whose rows are a function of each engagement's current state.

    After each batch, the rows of every engagement the batch touched are replaced by
    `rows(engagement)`: `{table: [row, ...]}`, each row in the order of `columns[table]`, whose
    first column is `engagement_id`.
    """

    columns: dict[str, tuple[str, ...]] = {}

    def rows(self, engagement: Any) -> dict[str, list[tuple[Any, ...]]]:
        raise NotImplementedError

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        ids = sorted({item.engagement_id for item in batch})
        engagements = load_engagements(tx, ids)
        out: dict[str, list[tuple[Any, ...]]] = {table: [] for table in self.columns}
        for key in ids:
            for table, rows in self.rows(engagements[key]).items():
                out[table].extend(rows)
        for table, columns in self.columns.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                tx.execute(f"DELETE FROM {{{table}}} WHERE engagement_id IN ({marks})", chunk)
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            tx.executemany(f"INSERT INTO {{{table}}} ({names}) VALUES ({marks})", out[table])
