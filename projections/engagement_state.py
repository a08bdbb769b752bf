"""Engagement state: each engagement's current state, kept for the models derived from it.

Rather than copy the domain's rules into every read model (when does an engagement become
active, what is in escrow), this model moves each engagement forward with the domain's own
event classes (`event.mutate`). The read models that show an engagement's current state
(summary, access register, money ledger, dispute docket, curator workload, contractor record)
then derive their rows from the real `Engagement` after each batch. It runs first in every
batch, so it is never behind the models that read it.

Its table records only the version each engagement has reached. The engagements themselves
stay decoded in memory between batches (`CACHE_SIZE`, most recently used); one that is not
there, or not at the recorded version, is loaded by the application's repository at that
version, so it is decoded by the application's own mapper (its transcodings, its cipher) and
nothing about an engagement is stored here in plain, let alone personal text.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from projections.readmodel import Item, ReadModel
from projections.store import Tx

#: Engagements kept decoded between batches, per process (most recently used).
CACHE_SIZE = 1000


class EngagementState(ReadModel):
    name = "state"
    title = "engagement state (read by the other models)"
    #: 2: the row is (engagement_id, version) only; the state itself is the domain's own
    #: aggregate, kept in memory between batches or loaded from the log at that version.
    schema_version = 2
    tables = (
        "CREATE TABLE IF NOT EXISTS {engagement_state} ("
        "engagement_id TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    )

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        ids = {item.engagement_id for item in batch}
        engagements = load_engagements(tx, ids)
        for item in batch:
            key = item.engagement_id
            engagements[key] = item.event.mutate(engagements.get(key))
        tx.executemany("INSERT INTO {engagement_state} (engagement_id, version) VALUES (?, ?) "
                       "ON CONFLICT (engagement_id) DO UPDATE SET version = excluded.version",
                       [(key, engagements[key].version) for key in ids])
        tx.cache.setdefault("engagements", {}).update(engagements)
        _remember(tx, engagements)


def load_engagements(tx: Tx, ids: Iterable[str]) -> dict[str, Any]:
    """The engagements as this transaction sees them (after the state model's batch).

    Each is the domain's own `Engagement` at the version the state model recorded for it:
    the one kept in this process since an earlier batch when it is at that version (a
    rolled-back batch or another process's catch-up leaves it behind or ahead, and it is
    then not used), else loaded by the application's repository at that version (its
    snapshots, then the events after them, decoded by the application's own mapper).
    """
    cache: dict[str, Any] = tx.cache.setdefault("engagements", {})
    missing = sorted(set(ids) - cache.keys())
    kept = _kept(tx)
    repository = tx.store.app_repository
    for start in range(0, len(missing), 500):
        chunk = missing[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.query(f"SELECT engagement_id, version FROM {{engagement_state}} "
                            f"WHERE engagement_id IN ({marks})", chunk):
            key, version = row["engagement_id"], int(row["version"])
            engagement = kept.get(key)
            if engagement is None or engagement.version != version:
                engagement = kept[key] = repository.get(UUID(key), version=version)
            cache[key] = engagement
    _trim(kept)
    return {key: cache[key] for key in ids if key in cache}


def _kept(tx: Tx) -> OrderedDict[str, Any]:
    """This process's engagements between batches (one per store, so per ledger)."""
    kept = getattr(tx.store, "kept_engagements", None)
    if kept is None:
        kept = tx.store.kept_engagements = OrderedDict()
    return kept


def _remember(tx: Tx, engagements: dict[str, Any]) -> None:
    """Keeps the batch's engagements for the next batch. They are only used when the state
    model's row says they are at the right version, so a batch that is rolled back (or
    another process that moves an engagement on) cannot make a later batch use a wrong one."""
    kept = _kept(tx)
    for key, engagement in engagements.items():
        kept[key] = engagement
        kept.move_to_end(key)
    _trim(kept)


def _trim(kept: OrderedDict[str, Any]) -> None:
    while len(kept) > CACHE_SIZE:
        kept.popitem(last=False)


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
