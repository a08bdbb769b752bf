"""Audit trail: one row per event in log order, with both hash chains (see `hash_chain`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.views import REDACTED_SUMMARIES, timestamp
from projections.hash_chain import GENESIS, canonical_event, chain, event_sha256
from projections.readmodel import Item, ReadModel
from projections.store import Tx

COLUMNS = ("position", "engagement_id", "version", "timestamp", "actor", "role", "type",
           "summary", "redacted_summary", "event_sha256", "prev_hash", "hash",
           "engagement_prev_hash", "engagement_hash")


class AuditTrail(ReadModel):
    name = "audit"
    title = "audit trail (hash-chained)"
    tables = (
        "CREATE TABLE IF NOT EXISTS {audit} ("
        "position BIGINT PRIMARY KEY, engagement_id TEXT NOT NULL, version INTEGER NOT NULL, "
        "timestamp TEXT NOT NULL, actor TEXT, role TEXT, type TEXT NOT NULL, "
        "summary TEXT NOT NULL, redacted_summary TEXT, event_sha256 TEXT NOT NULL, "
        "prev_hash TEXT NOT NULL, hash TEXT NOT NULL, engagement_prev_hash TEXT NOT NULL, "
        "engagement_hash TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS rm_audit_by_engagement ON {audit} (engagement_id, version)",
        "CREATE INDEX IF NOT EXISTS rm_audit_by_time ON {audit} (timestamp)",
        "CREATE TABLE IF NOT EXISTS {audit_heads} ("
        "engagement_id TEXT PRIMARY KEY, version INTEGER NOT NULL, hash TEXT NOT NULL)",
    )

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        head = tx.query("SELECT hash FROM {audit} ORDER BY position DESC LIMIT 1")
        previous = head[0]["hash"] if head else GENESIS
        ids = sorted({item.engagement_id for item in batch})
        heads: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in tx.query(f"SELECT engagement_id, hash FROM {{audit_heads}} "
                                f"WHERE engagement_id IN ({marks})", chunk):
                heads[row["engagement_id"]] = row["hash"]
        rows: list[tuple[Any, ...]] = []
        for item in batch:
            n, event = item.notification, item.event
            engagement_id = item.engagement_id
            digest = event_sha256(canonical_event(engagement_id, n.originator_version,
                                                  n.topic, n.state))
            entry_hash = chain(previous, digest)
            engagement_previous = heads.get(engagement_id, GENESIS)
            engagement_hash = chain(engagement_previous, digest)
            name = type(event).__name__
            summary = event.summary()
            redacted = (REDACTED_SUMMARIES[name].format(**vars(event))
                        if name in REDACTED_SUMMARIES else None)
            rows.append((n.id, engagement_id, n.originator_version, timestamp(event.timestamp),
                         getattr(event, "actor", None), getattr(event, "role", None), name,
                         summary, redacted, digest, previous, entry_hash, engagement_previous,
                         engagement_hash))
            previous = entry_hash
            heads[engagement_id] = engagement_hash
        names = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        tx.executemany(f"INSERT INTO {{audit}} ({names}) VALUES ({marks})", rows)
        last_version: dict[str, int] = {i.engagement_id: i.notification.originator_version
                                        for i in batch}
        tx.executemany("INSERT INTO {audit_heads} (engagement_id, version, hash) VALUES (?, ?, ?) "
                       "ON CONFLICT (engagement_id) DO UPDATE SET version = excluded.version, "
                       "hash = excluded.hash",
                       [(eid, last_version[eid], heads[eid]) for eid in last_version])
