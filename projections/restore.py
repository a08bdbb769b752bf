"""`ledger restore`: rebuild a new database from a full JSONL export of the audit trail.

A full, unredacted JSONL export holds every stored event byte for byte (its `stored_event`
is the canonical JSON that the hash chain covers), so it is also a backup. Restoring reads
the file twice, streaming: first it checks every line (each event's hash, both hash chains,
the versions of each engagement, the end record), and only when all of it holds does it
write the events, in order, into an empty database through the library's recorder. Then it
brings the read models up to date and checks that the new audit trail ends at the export's
last hash, so the restored database verifies against the same digest.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.errors import InvalidInput, LedgerError, RuleViolation
from projections.hash_chain import GENESIS, chain, event_sha256

BATCH = 1000
STATE_MARK = b',"state":'
TOPIC_MARK = b',"topic":'


@dataclass
class RestoreResult:
    events: int
    engagements: int
    digest: str


def stored_event_from(canonical: str) -> StoredEvent:
    """The stored event whose canonical JSON (`hash_chain.canonical_event`) this is.

    The state is taken as the exact bytes between `"state":` and the final `,"topic":`, so
    the restored bytes are the recorded bytes, not a re-encoding of their decoded value.
    """
    raw = canonical.encode()
    fields = json.loads(raw)
    start = raw.index(STATE_MARK) + len(STATE_MARK)
    end = raw.rindex(TOPIC_MARK)
    state = raw[start:end]
    if state[:1] == b'"':  # state that was not JSON text was embedded as base64 text
        text = json.loads(state)
        if not text.startswith("base64:"):
            raise ValueError("the state is neither JSON nor base64 text")
        state = base64.b64decode(text[len("base64:"):])
    return StoredEvent(originator_id=UUID(fields["originator_id"]),
                       originator_version=int(fields["originator_version"]),
                       topic=fields["topic"], state=state)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise RuleViolation(f"line {number} of {path} is not JSON") from None
            if not isinstance(record, dict):
                raise RuleViolation(f"line {number} of {path} is not a JSON object")
            yield number, record


def check_backup(path: Path, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[int, int, str]:
    """Checks a full JSONL export line by line; returns (events, engagements, last hash)."""
    header: dict[str, Any] | None = None
    previous = GENESIS
    heads: dict[str, tuple[int, str]] = {}
    count = 0
    ended: dict[str, Any] | None = None
    for number, record in _lines(path):
        where = f"line {number}"
        kind = record.get("record")
        if ended is not None:
            raise RuleViolation(f"{where}: there is more after the end record")
        if header is None:
            if kind != "header":
                raise RuleViolation(f"{where}: a backup starts with the export's header record")
            header = record
            selection = record.get("range") or {}
            if any(selection.get(key) for key in ("engagement", "since", "until")):
                raise InvalidInput(f"{path} is a partial export ({_describe(selection)}); only "
                                   "a full export of the whole log can be restored")
            continue
        if kind == "end":
            ended = record
            continue
        if kind != "event":
            raise RuleViolation(f"{where}: unknown record {kind!r}")
        canonical = record.get("stored_event")
        if canonical is None:
            raise InvalidInput(f"{path} is a redacted export (made for a contractor); it holds "
                               "no stored events and cannot be restored")
        name = f"{where} (position {record.get('position')})"
        if event_sha256(canonical.encode()) != record.get("event_sha256"):
            raise RuleViolation(f"{name}: the stored event does not match its hash")
        if record.get("prev_hash") != previous:
            raise RuleViolation(f"{name}: the whole-log hash chain breaks here (a line was "
                                "dropped, added or moved)")
        entry_hash = chain(previous, record["event_sha256"])
        if record.get("hash") != entry_hash:
            raise RuleViolation(f"{name}: the whole-log hash chain breaks here")
        try:
            event = stored_event_from(canonical)
        except (ValueError, KeyError, TypeError):
            raise RuleViolation(f"{name}: the stored event cannot be read") from None
        engagement = str(event.originator_id)
        version, engagement_previous = heads.get(engagement, (0, GENESIS))
        if event.originator_version != version + 1:
            raise RuleViolation(f"{name}: engagement {engagement} jumps from version {version} "
                                f"to {event.originator_version}")
        if (record.get("engagement_prev_hash") != engagement_previous
                or record.get("engagement_hash") != chain(engagement_previous, record["event_sha256"])):
            raise RuleViolation(f"{name}: the engagement's hash chain breaks here")
        heads[engagement] = (event.originator_version, record["engagement_hash"])
        previous = entry_hash
        count += 1
        if progress is not None and count % BATCH == 0:
            progress(count, 0)
    if header is None:
        raise InvalidInput(f"{path} is empty")
    if ended is None:
        raise RuleViolation(f"{path} has no end record: the export was cut short")
    if ended.get("entries") != count or (count and ended.get("last_hash") != previous):
        raise RuleViolation(f"the end record says {ended.get('entries')} entries ending at "
                            f"{str(ended.get('last_hash'))[:16]}…, the file holds {count} ending "
                            f"at {previous[:16]}…")
    return count, len(heads), previous


def _describe(selection: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in selection.items() if value)


def restore_keys(path: Path, app: Any) -> None:
    """An encrypted ledger's backup carries its contractors' keys (wrapped): they go first."""
    _number, header = next(_lines(path))
    keys = header.get("keys")
    keyring = getattr(app, "keyring", None)
    if keys and keyring is None:
        raise InvalidInput(f"{path} is a backup of an encrypted ledger: set LEDGER_CIPHER_KEY "
                           "to that ledger's key")
    if keys:
        keyring.restore(keys)
    elif keyring is not None:
        raise InvalidInput(f"{path} is a backup of an unencrypted ledger: unset "
                           "LEDGER_CIPHER_KEY to restore it")


def restore(path: str | Path, app: Any, actor: Any,
            progress: Callable[[str, int, int], None] | None = None) -> RestoreResult:
    """Checks the export, writes its events into `app`'s empty store, and verifies the result."""
    from projections.audit import digest
    from projections.queries import ReadModels

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no file {str(path)!r}")
    recorder = app.recorder
    if recorder.max_notification_id():
        raise InvalidInput("the target database already holds events; restore only into a new, "
                           "empty database")

    def report(stage: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(stage, done, total))

    count, engagements, last_hash = check_backup(path, report("checking"))
    restore_keys(path, app)
    written = 0
    batch: list[StoredEvent] = []
    step = report("writing")
    for _number, record in _lines(path):
        if record.get("record") != "event":
            continue
        batch.append(stored_event_from(record["stored_event"]))
        if len(batch) >= BATCH:
            recorder.insert_events(batch)
            written += len(batch)
            batch = []
            if step is not None:
                step(written, count)
    if batch:
        recorder.insert_events(batch)
        written += len(batch)
        if step is not None:
            step(written, count)
    models = ReadModels(app, actor, progress=report("read models"))
    head = digest(models.store)
    if head["hash"] != last_hash:
        raise LedgerError(f"the restored audit trail ends at {head['hash'][:16]}…, the export at "
                          f"{last_hash[:16]}…")
    return RestoreResult(events=written, engagements=engagements, digest=head["digest"])
