"""Digest and verification of the audit trail against the stored events.

`verify` re-reads every stored event in log order, recomputes both hash chains from the
stored bytes (`hash_chain`), and checks each entry against the audit trail: the event's hash,
the whole-log chain, the engagement's chain, and that the trail and the log hold the same
positions. Given a digest saved earlier, it also checks that the chain passes through it, so
a digest taken before more events were appended still verifies as a prefix. The digest's
position is a hint, not part of the proof: a restored log may number its events differently.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, NamedTuple

from projections.hash_chain import GENESIS, canonical_event, wanted_digest
from projections.store import ReadModelStore, query_tuples

BATCH = 5000


@dataclass
class VerifyReport:
    ok: bool
    checked: int
    message: str = ""
    problem: str = ""
    position: int | None = None


def digest(store: ReadModelStore) -> dict[str, Any]:
    """The head of the whole-log chain: `{"position", "hash", "digest": "POSITION:HASH"}`."""
    rows = store.query("SELECT position, hash FROM {audit} ORDER BY position DESC LIMIT 1")
    position, head = (rows[0]["position"], rows[0]["hash"]) if rows else (0, GENESIS)
    return {"position": int(position), "hash": head, "digest": f"{position}:{head}"}


class _Entry(NamedTuple):
    position: int
    engagement_id: str
    version: int
    type: str
    event_sha256: str
    prev_hash: str
    hash: str
    engagement_prev_hash: str
    engagement_hash: str


def _hyphenated(originator_id: Any) -> str:
    text = originator_id if type(originator_id) is str else str(originator_id)
    if len(text) == 32:  # SQLite keeps the UUID's hex
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


def _stored_events(app: Any, store: ReadModelStore, after: int,
                   stop: int) -> list[tuple[int, Any, int, str, bytes]]:
    """The log's stored events after position `after`, up to `stop`, BATCH at a time, as
    (position, originator id, version, topic, state), read straight from the library's table:
    its recorder would build a UUID and a Notification for each, which costs more than the
    hashing. The state is the stored bytes, as the recorder would return them."""
    table = app.recorder.events_table_name
    if store.kind == "postgres":  # the id as text: the hyphenated form, no UUID object
        sql = (f'SELECT notification_id, originator_id::text, originator_version, topic, state '
               f'FROM "{store.datastore.schema}"."{table}" WHERE notification_id > %s AND '
               f'notification_id <= %s ORDER BY notification_id LIMIT {BATCH}')
    else:
        sql = (f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} "
               f"WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT {BATCH}")
    return query_tuples(store, sql, (after, stop))


def _next_event_before(app: Any, store: ReadModelStore, after: int, last: int) -> int:
    """The position just before the log's next event after `after` (or `last` if none)."""
    table = app.recorder.events_table_name
    column = "notification_id" if store.kind == "postgres" else "rowid"
    name = f'"{store.datastore.schema}"."{table}"' if store.kind == "postgres" else table
    mark = "%s" if store.kind == "postgres" else "?"
    rows = query_tuples(store, f"SELECT MIN({column}) FROM {name} WHERE {column} > {mark}",
                        (after,))
    following = rows[0][0] if rows else None
    return last if following is None else min(last, int(following) - 1)


def _entry_name(position: int, row: _Entry | None) -> str:
    if row is None:
        return f"entry at position {position}"
    return (f"entry at position {position} (engagement {row.engagement_id} version "
            f"{row.version}, {row.type})")


def verify(app: Any, store: ReadModelStore, digest_text: str | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    wanted = wanted_digest(digest_text)
    try:
        return _verify(app, store, wanted, progress)
    except _Malformed as error:
        return VerifyReport(False, error.checked, problem=(
            f"{_entry_name(error.position, None)}: the audit trail or the stored event holds a "
            f"value of the wrong kind ({error.detail}): it was changed behind the ledger's back"),
            position=error.position)


class _Malformed(Exception):
    """A trail row or stored event whose values are not even of the right type (text where a
    number belongs, a missing topic): tampering, reported like any other broken entry."""

    def __init__(self, position: int, checked: int, detail: str) -> None:
        super().__init__(detail)
        self.position, self.checked, self.detail = position, checked, detail


def _verify(app: Any, store: ReadModelStore, wanted: tuple[int | None, str] | None,
            progress: Callable[[int, int], None] | None) -> VerifyReport:
    recorder = app.recorder
    head = recorder.max_notification_id() or 0
    trail_head = store.query("SELECT MAX(position) AS p FROM {audit}")[0]["p"] or 0
    try:
        last = max(head, int(trail_head))
    except (TypeError, ValueError):
        raise _Malformed(head + 1, 0, f"position {trail_head!r}") from None
    previous = GENESIS
    engagement_heads: dict[str, str] = {}
    checked = 0
    digest_at: int | None = None
    position = 0

    def fail(at: int, row: _Entry | None, what: str) -> VerifyReport:
        return VerifyReport(False, checked, problem=f"{_entry_name(at, row)}: {what}",
                            position=at)

    def fetch(after: int) -> tuple[int, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The next range's stored events and trail rows, and where the range ends."""
        # A range of at most BATCH ids, never "the rest, LIMIT BATCH": PostgreSQL plans the
        # latter as a scan and sort of the whole rest while the table has no statistics
        # (right after a large import), 40,000 instead of 90,000 events/s.
        stop = min(last, after + BATCH)
        notifications = _stored_events(app, store, after, stop)
        if not notifications and stop < last:  # a gap in the ids: on to the next event
            stop = _next_event_before(app, store, after, last)
        rows = query_tuples(store, store.sql(
            "SELECT position, engagement_id, version, type, event_sha256, prev_hash, hash, "
            "engagement_prev_hash, engagement_hash FROM {audit} WHERE position > ? AND "
            "position <= ? ORDER BY position"), (after, stop))
        return stop, notifications, rows

    # On PostgreSQL the next range is read in a thread while this one is hashed: the wait for
    # the server releases the GIL (SQLite's reads are local and already faster than the bar).
    ahead = ThreadPoolExecutor(1) if store.kind == "postgres" and last > BATCH else None
    at = position + 1
    try:
        pending = ahead.submit(fetch, position) if ahead is not None else None
        while position < last:
            if pending is not None:
                stop, notifications, rows = pending.result()
                pending = ahead.submit(fetch, stop) if stop < last else None  # type: ignore
            else:
                stop, notifications, rows = fetch(position)
            by_position = {int(row[0]): row for row in rows}
            # The lowest entry not yet matched, moving up (rows come ordered by position).
            ascending = iter(list(by_position))
            lowest = next(ascending, None)
            # Plain tuples, unpacked: this loop runs once per event of the log.
            for n_id, stored_id, version, topic, state in notifications:
                at = n_id
                row = by_position.pop(n_id, None)
                while lowest is not None and lowest not in by_position:
                    lowest = next(ascending, None)
                if lowest is not None and lowest < n_id:
                    return fail(lowest, _Entry._make(by_position[lowest]),
                                "is in the audit trail but its stored event is gone from the log")
                if row is None:
                    return fail(n_id, None, "the stored event has no audit-trail entry")
                (_, row_engagement, row_version, _, row_event_hash, row_previous, row_hash,
                 row_engagement_previous, row_engagement_hash) = row
                engagement_id = _hyphenated(stored_id)
                if engagement_id != row_engagement or version != row_version:
                    return fail(n_id, _Entry._make(row), f"the stored event now claims engagement "
                                                          f"{engagement_id} version {version}")
                event_hash = sha256(canonical_event(engagement_id, version, topic,
                                                    state)).hexdigest()
                if event_hash != row_event_hash:
                    return fail(n_id, _Entry._make(row), "the stored event does not match its "
                                "recorded hash (it was changed after it was recorded)")
                entry_hash = sha256((previous + event_hash).encode()).hexdigest()  # chain()
                if row_previous != previous or row_hash != entry_hash:
                    return fail(n_id, _Entry._make(row), "the whole-log hash chain breaks here")
                engagement_previous = engagement_heads.get(engagement_id, GENESIS)
                if (row_engagement_previous != engagement_previous or row_engagement_hash
                        != sha256((engagement_previous + event_hash).encode()).hexdigest()):
                    return fail(n_id, _Entry._make(row), "the engagement's hash chain breaks here")
                engagement_heads[engagement_id] = row_engagement_hash
                previous = entry_hash
                checked += 1
                if wanted is not None and digest_at is None and entry_hash == wanted[1]:
                    digest_at = n_id
            if by_position:
                missing = min(by_position)
                return fail(missing, _Entry._make(by_position[missing]),
                            "is in the audit trail but its stored event is gone from the log")
            position = stop
            if progress is not None:
                progress(position, last)
    except (TypeError, ValueError, AttributeError, UnicodeError, OverflowError) as error:
        raise _Malformed(at, checked, f"{type(error).__name__}: {error}".splitlines()[0][:200]) \
            from None
    finally:
        if ahead is not None:
            ahead.shutdown(wait=True, cancel_futures=True)
    if wanted is not None and digest_at is None and not (wanted[1] == GENESIS and checked == 0):
        where = f" (position {wanted[0]})" if wanted[0] is not None else ""
        return VerifyReport(False, checked, problem=(
            f"the digest {wanted[1][:16]}…{where} matches no entry of the chain: the log up to "
            "that digest has been changed, or the digest is from another ledger"))
    message = f"audit trail intact: {checked} events, head {position}:{previous}"
    if digest_at is not None:
        prefix = "the head" if digest_at == position else f"a prefix ending at position {digest_at}"
        message += f"; the digest matches {prefix}"
        if wanted is not None and wanted[0] is not None and wanted[0] != digest_at:
            # Positions are not hashed: a restore numbers the log afresh (DESIGN section 4).
            message += f" (the digest named position {wanted[0]}: the log has been renumbered)"
    return VerifyReport(True, checked, message=message)
