"""Digest and verification of the audit trail against the stored events.

`verify` re-reads every stored event in log order, recomputes both hash chains from the
stored bytes (`hash_chain`), and checks each entry against the audit trail: the event's hash,
the whole-log chain, the engagement's chain, and that the trail and the log hold the same
positions. Given a digest saved earlier, it also checks that the chain passes through it, so
a digest taken before more events were appended still verifies as a prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from projections.hash_chain import GENESIS, canonical_event, chain, event_sha256, parse_digest
from projections.store import ReadModelStore

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


def _entry_name(position: int, row: dict[str, Any] | None) -> str:
    if row is None:
        return f"entry at position {position}"
    return (f"entry at position {position} (engagement {row['engagement_id']} version "
            f"{row['version']}, {row['type']})")


def verify(app: Any, store: ReadModelStore, digest_text: str | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    wanted: tuple[int | None, str] | None = None
    if digest_text:
        try:
            wanted = parse_digest(digest_text)
        except ValueError as error:
            from ledger.errors import InvalidInput

            raise InvalidInput(str(error)) from None
    recorder = app.recorder
    head = recorder.max_notification_id() or 0
    trail_head = store.query("SELECT MAX(position) AS p FROM {audit}")[0]["p"] or 0
    last = max(head, int(trail_head))
    previous = GENESIS
    engagement_heads: dict[str, str] = {}
    checked = 0
    digest_at: int | None = None
    position = 0

    def fail(at: int, row: dict[str, Any] | None, what: str) -> VerifyReport:
        return VerifyReport(False, checked, problem=f"{_entry_name(at, row)}: {what}",
                            position=at)

    while position < last:
        notifications = recorder.select_notifications(start=position + 1, limit=BATCH,
                                                      stop=last)
        stop = notifications[-1].id if notifications else last
        rows = store.query("SELECT position, engagement_id, version, type, event_sha256, "
                           "prev_hash, hash, engagement_prev_hash, engagement_hash "
                           "FROM {audit} WHERE position > ? AND position <= ? ORDER BY position",
                           (position, stop))
        by_position = {int(row["position"]): row for row in rows}
        for n in notifications:
            row = by_position.pop(n.id, None)
            if by_position and min(by_position) < n.id:
                missing = min(by_position)
                return fail(missing, by_position[missing],
                            "is in the audit trail but its stored event is gone from the log")
            if row is None:
                return fail(n.id, None, "the stored event has no audit-trail entry")
            engagement_id = str(n.originator_id)
            if engagement_id != row["engagement_id"] or n.originator_version != row["version"]:
                return fail(n.id, row, f"the stored event now claims engagement {engagement_id} "
                                       f"version {n.originator_version}")
            event_hash = event_sha256(canonical_event(n.originator_id, n.originator_version,
                                                      n.topic, n.state))
            if event_hash != row["event_sha256"]:
                return fail(n.id, row, "the stored event does not match its recorded hash "
                                       "(it was changed after it was recorded)")
            entry_hash = chain(previous, event_hash)
            if row["prev_hash"] != previous or row["hash"] != entry_hash:
                return fail(n.id, row, "the whole-log hash chain breaks here")
            engagement_previous = engagement_heads.get(engagement_id, GENESIS)
            if (row["engagement_prev_hash"] != engagement_previous
                    or row["engagement_hash"] != chain(engagement_previous, event_hash)):
                return fail(n.id, row, "the engagement's hash chain breaks here")
            engagement_heads[engagement_id] = row["engagement_hash"]
            previous = entry_hash
            checked += 1
            if wanted is not None and digest_at is None and entry_hash == wanted[1]:
                if wanted[0] is not None and wanted[0] != n.id:
                    return fail(n.id, row, f"the digest's hash is here, not at position {wanted[0]}")
                digest_at = n.id
        if by_position:
            missing = min(by_position)
            return fail(missing, by_position[missing],
                        "is in the audit trail but its stored event is gone from the log")
        position = stop
        if progress is not None:
            progress(position, last)
    if wanted is not None and digest_at is None and not (wanted[1] == GENESIS and checked == 0):
        where = f" (position {wanted[0]})" if wanted[0] is not None else ""
        return VerifyReport(False, checked, problem=(
            f"the digest {wanted[1][:16]}…{where} matches no entry of the chain: the log up to "
            "that digest has been changed, or the digest is from another ledger"))
    message = f"audit trail intact: {checked} events, head {position}:{previous}"
    if digest_at is not None:
        prefix = "the head" if digest_at == position else f"a prefix ending at position {digest_at}"
        message += f"; the digest matches {prefix}"
    return VerifyReport(True, checked, message=message)
