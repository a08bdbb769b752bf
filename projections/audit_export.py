"""`ledger audit export`: the audit trail, or a range of it, as CSV, JSONL, Markdown or PDF.

An export is a consistent snapshot: the head of the whole-log chain is read first and nothing
after it is written. Rows are read in keyset-paged batches (and, for JSONL, the stored events
beside them), so memory stays flat however long the log is; the file is written under a
temporary name in the same folder and renamed into place only when complete.

A range is always a contiguous run of the chain it is verified on, so that it verifies "entry
by entry and as a contiguous run" (DESIGN section 4): the whole log, or the run of the log from
the first to the last entry recorded within `since`..`until`; with `engagement`, the run of that
engagement's versions. The JSONL format is the one to verify (`projections.export_verify`) and
to restore from (`projections.restore`); its `stored_event` is the canonical JSON that the hash
chain covers, byte for byte.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

from ledger.errors import InvalidInput, LedgerError, RuleViolation
from ledger.views import timestamp
from projections.hash_chain import canonical_event
from projections.store import query_tuples

Progress = Callable[[int, int], None]

FORMATS = ("csv", "jsonl", "md", "pdf")
#: The JSONL export's format name, in its header record.
EXPORT_FORMAT = "engagement-ledger-audit/1"
#: Rows read per query (and stored events per query beside them).
BATCH = 2000
#: The fields of one entry, in the CSV's column order (JSONL adds `stored_event`).
FIELDS = ("position", "engagement_id", "version", "timestamp", "actor", "role", "type",
          "summary", "event_sha256", "prev_hash", "hash", "engagement_prev_hash",
          "engagement_hash")
POSITION, VERSION, HASH, ENGAGEMENT_HASH = (FIELDS.index(name) for name in
                                            ("position", "version", "hash", "engagement_hash"))

dumps = partial(json.dumps, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class ExportResult:
    entries: int
    digest: str  # POSITION:HASH, the head of the whole log when the export was made
    path: str


@dataclass
class Selection:
    """What one export covers, fixed before a byte is written."""

    head_position: int
    head_hash: str
    engagement: str | None
    since: str | None  # normalised bounds (ISO 8601 UTC, `Z`), inclusive
    until: str | None
    low: int  # first and last position (log chain) or version (engagement chain), inclusive
    high: int
    entries: int
    outside: int  # entries inside the run recorded with a time outside since..until
    made_at: str
    made_by: str
    redacted: bool

    @property
    def chain(self) -> str:
        return "engagement" if self.engagement else "log"

    @property
    def digest(self) -> str:
        return f"{self.head_position}:{self.head_hash}"

    def range(self) -> dict[str, Any]:
        return {"engagement": self.engagement, "since": self.since, "until": self.until}


def export_audit(models: Any, fmt: str, output: str | Path, *, engagement: str | None = None,
                 since: str | None = None, until: str | None = None,
                 progress: Progress | None = None) -> ExportResult:
    """Writes the audit trail (or the range asked for) to `output` in `fmt`.

    Every input is checked before the file is created; a bad one is `InvalidInput`.
    """
    writer = WRITERS.get(fmt)
    if writer is None:
        raise InvalidInput(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    since_at = _bound(since, "since", end_of_day=False)
    until_at = _bound(until, "until", end_of_day=True)
    if since_at and until_at and since_at > until_at:
        raise InvalidInput(f"since {since} is after until {until}")
    target = check_output(output)
    selection = select(models, engagement, since_at, until_at)
    report = progress or (lambda done, total: None)
    with atomic_file(target) as temporary:
        writer(models, selection, temporary, report)
    return ExportResult(selection.entries, selection.digest, str(target))


# Input -------------------------------------------------------------------------------------


def _bound(text: str | None, what: str, end_of_day: bool) -> str | None:
    """A date (the whole day: from its start, or to its end) or a time, as stored text."""
    from ledger.validation import end_of_day as day_end
    from ledger.validation import parse_date, parse_time

    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if len(text) == 10:
        day = parse_date(text, what)
        moment = day_end(day) if end_of_day else datetime.combine(day, time.min, tzinfo=UTC)
    else:
        moment = parse_time(text, what)
    return timestamp(moment)


def check_output(output: str | Path) -> Path:
    if not str(output).strip():
        raise InvalidInput("give the path of the file to write (--output)")
    target = Path(output).expanduser()
    folder = target.parent.resolve()
    if not folder.is_dir():
        raise InvalidInput(f"folder {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise InvalidInput(f"{str(target)!r} is a folder; give a file name")
    return folder / target.name


def select(models: Any, engagement: str | None, since: str | None,
           until: str | None) -> Selection:
    """Fixes the head, then the run of the chain that the range covers."""
    from projections.audit import digest

    store = models.store
    head = digest(store)
    engagement_id = None
    if engagement is not None and str(engagement).strip():
        from ledger.application import parse_engagement_id

        engagement_id = str(parse_engagement_id(engagement))
    where, params = ["position <= ?"], [head["position"]]
    if engagement_id:
        where.append("engagement_id = ?")
        params.append(engagement_id)
        known = store.query(f"SELECT COUNT(*) AS n FROM {{audit}} WHERE {' AND '.join(where)}",
                            params)
        if not int(known[0]["n"]):
            raise InvalidInput(f"no engagement {engagement_id}")
    timed, timed_params = list(where), list(params)
    if since:
        timed.append("timestamp >= ?")
        timed_params.append(since)
    if until:
        timed.append("timestamp <= ?")
        timed_params.append(until)
    key = "version" if engagement_id else "position"
    bounds = store.query(f"SELECT MIN({key}) AS low, MAX({key}) AS high FROM {{audit}} "
                         f"WHERE {' AND '.join(timed)}", timed_params)[0]
    low, high = int(bounds["low"] or 0), int(bounds["high"] or -1)
    entries = outside = 0
    if bounds["low"] is not None:
        run = where + [f"{key} >= ?", f"{key} <= ?"]
        run_params = params + [low, high]
        counted = store.query(f"SELECT COUNT(*) AS n FROM {{audit}} WHERE {' AND '.join(run)}",
                              run_params)
        entries = int(counted[0]["n"])
        if since or until:
            outside_clause = " OR ".join(
                clause for clause, bound in (("timestamp < ?", since), ("timestamp > ?", until))
                if bound)
            extra = [bound for bound in (since, until) if bound]
            counted = store.query(f"SELECT COUNT(*) AS n FROM {{audit}} WHERE "
                                  f"{' AND '.join(run)} AND ({outside_clause})",
                                  run_params + extra)
            outside = int(counted[0]["n"])
    actor = models.actor
    return Selection(head_position=head["position"], head_hash=head["hash"],
                     engagement=engagement_id, since=since, until=until, low=low, high=high,
                     entries=entries, outside=outside, made_at=timestamp(datetime.now(UTC)),
                     made_by=f"{actor.role.value}:{actor.name}", redacted=bool(models.redacted))


# Reading, in batches -----------------------------------------------------------------------


def fetch(store: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples: the CSV runs at the speed of reading them (no dict per row)."""
    return query_tuples(store, store.sql(sql), params)


def _columns(redacted: bool) -> str:
    summary = "COALESCE(redacted_summary, summary)" if redacted else "summary"
    return ", ".join(summary if name == "summary" else name for name in FIELDS)


def entry_batches(store: Any, selection: Selection) -> Iterator[list[tuple[Any, ...]]]:
    """The entries of the selection in chain order, BATCH rows at a time (keyset paging):
    tuples in the order of FIELDS, the summary redacted for a contractor."""
    if not selection.entries:
        return
    columns = _columns(selection.redacted)
    if selection.engagement:
        sql = (f"SELECT {columns} FROM {{audit}} WHERE engagement_id = ? AND version > ? "
               f"AND version <= ? ORDER BY version LIMIT {BATCH}")
        fixed: tuple[Any, ...] = (selection.engagement,)
        key = VERSION
    else:
        sql = (f"SELECT {columns} FROM {{audit}} WHERE position > ? AND position <= ? "
               f"ORDER BY position LIMIT {BATCH}")
        fixed, key = (), POSITION
    after = selection.low - 1
    while after < selection.high:
        rows = fetch(store, sql, (*fixed, after, selection.high))
        if not rows:
            return
        yield rows
        after = int(rows[-1][key])


def engagement_batches(store: Any, engagement_id: str, low: int, high: int,
                       redacted: bool) -> Iterator[list[dict[str, Any]]]:
    """One engagement's entries with versions low..high, in order, BATCH at a time."""
    sql = (f"SELECT {_columns(redacted)} FROM {{audit}} WHERE engagement_id = ? AND "
           f"version > ? AND version <= ? ORDER BY version LIMIT {BATCH}")
    after = low - 1
    while after < high:
        rows = fetch(store, sql, (engagement_id, after, high))
        if not rows:
            return
        yield [dict(zip(FIELDS, row, strict=True)) for row in rows]
        after = int(rows[-1][VERSION])


def stored_events(app: Any, selection: Selection, rows: list[tuple[Any, ...]]) -> list[str]:
    """The canonical JSON of each row's stored event, read from the log in one query."""
    recorder = app.recorder
    found: dict[int, Any]
    if selection.engagement:
        events = recorder.select_events(UUID(selection.engagement), gt=rows[0][VERSION] - 1,
                                        lte=rows[-1][VERSION])
        found = {e.originator_version: e for e in events}
        key = VERSION
    else:
        notifications = recorder.select_notifications(
            start=rows[0][POSITION], limit=len(rows), stop=rows[-1][POSITION])
        found = {n.id: n for n in notifications}
        key = POSITION
    texts = []
    for row in rows:
        event = found.get(row[key])
        if event is None:
            raise RuleViolation(f"the stored event of the entry at position {row[POSITION]} "
                                "is gone from the log: run `ledger audit verify`")
        canonical = canonical_event(event.originator_id, event.originator_version, event.topic,
                                    event.state)
        try:
            texts.append(canonical.decode("utf-8"))
        except UnicodeDecodeError:
            raise RuleViolation(f"the stored event at position {row[POSITION]} is not UTF-8 "
                                "JSON: run `ledger audit verify`") from None
    return texts


def engagement_groups(store: Any, selection: Selection) -> Iterator[dict[str, Any]]:
    """Each engagement of the selection with its versions in it, in order of first entry.

    One small row per engagement, not per event (tens of bytes each).
    """
    if not selection.entries:
        return
    if selection.engagement:
        yield {"engagement_id": selection.engagement, "low": selection.low,
               "high": selection.high, "entries": selection.entries}
        return
    rows = fetch(store, "SELECT engagement_id, MIN(version), MAX(version), COUNT(*) "
                 "FROM {audit} WHERE position >= ? AND position <= ? GROUP BY engagement_id "
                 "ORDER BY MIN(position)", (selection.low, selection.high))
    for engagement_id, low, high, entries in rows:  # tuples: a few dozen bytes each
        yield {"engagement_id": engagement_id, "low": int(low), "high": int(high),
               "entries": int(entries)}


def titles(store: Any, groups: list[dict[str, Any]]) -> None:
    """Adds each group's title and parties from the summary read model."""
    if not groups:
        return
    marks = ", ".join("?" for _ in groups)
    rows = store.query(f"SELECT engagement_id, title, client, contractor, curator, status, "
                       f"outcome FROM {{summary}} WHERE engagement_id IN ({marks})",
                       [g["engagement_id"] for g in groups])
    found = {row["engagement_id"]: row for row in rows}
    for group in groups:
        row = found.get(group["engagement_id"], {})
        for name in ("title", "client", "contractor", "curator", "status", "outcome"):
            group[name] = row.get(name) or ("(unknown)" if name == "title" else "")


def titled_groups(store: Any, selection: Selection) -> Iterator[dict[str, Any]]:
    chunk: list[dict[str, Any]] = []
    for group in engagement_groups(store, selection):
        chunk.append(group)
        if len(chunk) == 500:
            titles(store, chunk)
            yield from chunk
            chunk = []
    titles(store, chunk)
    yield from chunk


# Writing atomically ------------------------------------------------------------------------


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """A temporary file beside `target`, renamed over it only when the block completes."""
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise InvalidInput(f"cannot write in {str(target.parent)!r}: "
                           f"{error.strerror or error}") from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        with temporary.open("rb") as written:
            os.fsync(written.fileno())  # the rename must not land before the bytes do
        os.chmod(temporary, 0o666 & ~_umask())  # as any new file, not mkstemp's 0600
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise LedgerError(f"cannot write {target}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


# CSV and JSONL -----------------------------------------------------------------------------


def write_csv(models: Any, selection: Selection, path: Path, progress: Progress) -> None:
    done = 0
    with path.open("w", encoding="utf-8", newline="", buffering=1 << 20) as stream:
        writer = csv.writer(stream)
        writer.writerow(FIELDS)
        for rows in entry_batches(models.store, selection):
            writer.writerows(rows)
            done += len(rows)
            progress(done, selection.entries)


def key_backup(app: Any, selection: Selection) -> dict[str, Any] | None:
    """An encrypted ledger's keys, wrapped with its key, in a full export (so that it restores
    with the contractors' text readable); none in a range or a contractor's export."""
    keyring = getattr(app, "keyring", None)
    whole = not any(selection.range().get(k) for k in ("engagement", "since", "until"))
    if keyring is None or selection.redacted or not whole:
        return None
    return keyring.backup()


def write_jsonl(models: Any, selection: Selection, path: Path, progress: Progress) -> None:
    last_hash = None
    hash_field = ENGAGEMENT_HASH if selection.engagement else HASH
    done = 0
    with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as stream:
        stream.write(dumps({"record": "header", "format": EXPORT_FORMAT,
                            "made_at": selection.made_at, "digest": selection.digest,
                            "range": selection.range(), "chain": selection.chain,
                            "redacted": selection.redacted,
                            "keys": key_backup(models.app, selection)}) + "\n")
        for rows in entry_batches(models.store, selection):
            texts = ([None] * len(rows) if selection.redacted
                     else stored_events(models.app, selection, rows))
            lines = []
            for row, text in zip(rows, texts, strict=True):
                record = dict(zip(FIELDS, row, strict=True))
                record["record"] = "event"
                record["stored_event"] = text
                lines.append(dumps(record))
            stream.write("\n".join(lines) + "\n")
            last_hash = rows[-1][hash_field]
            done += len(rows)
            progress(done, selection.entries)
        stream.write(dumps({"record": "end", "entries": done, "last_hash": last_hash}) + "\n")


# Markdown ----------------------------------------------------------------------------------


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, lines joined with <br>."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
    return "<br>".join(line.strip() for line in text.splitlines()) if "\n" in text or "\r" in text \
        else text


def describe_range(selection: Selection) -> str:
    parts = [f"engagement {selection.engagement}" if selection.engagement else "all engagements"]
    if selection.since:
        parts.append(f"since {selection.since}")
    if selection.until:
        parts.append(f"until {selection.until}")
    return ", ".join(parts)


def describe_run(selection: Selection) -> str:
    if not selection.entries:
        return "no entries"
    unit = "versions" if selection.engagement else "log positions"
    return f"{selection.entries} entries, {unit} {selection.low} to {selection.high}"


def outside_note(selection: Selection) -> str | None:
    if not selection.outside:
        return None
    return (f"{selection.outside} entries of this run carry times outside the period: the log "
            "recorded them between the period's first and last entries (imported or backdated "
            "events). A range is a contiguous run of the chain, so that it verifies.")


def write_markdown(models: Any, selection: Selection, path: Path, progress: Progress) -> None:
    store = models.store
    with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        out.write("# Audit trail export\n\n")
        out.write(f"- **Range:** {md_cell(describe_range(selection))} "
                  f"({md_cell(describe_run(selection))}; {selection.chain} chain)\n")
        out.write(f"- **Head digest at export:** `{selection.digest}`\n")
        out.write(f"- **Made at:** {selection.made_at} by {md_cell(selection.made_by)}\n")
        if selection.redacted:
            out.write("- **Redacted for a contractor:** interview and mediation-note summaries "
                      "are withheld.\n")
        note = outside_note(selection)
        if note:
            out.write(f"- **Note:** {note}\n")
        out.write("\n## Engagements covered\n\n| Engagement | Title | Client | Contractor | "
                  "Status | Entries | Versions |\n|---|---|---|---|---|---:|---|\n")
        for g in titled_groups(store, selection):
            status = g["status"] + (f"/{g['outcome']}" if g["outcome"] else "")
            out.write(f"| `{g['engagement_id']}` | {md_cell(g['title'])} | {md_cell(g['client'])}"
                      f" | {md_cell(g['contractor'])} | {status} | {g['entries']} | "
                      f"{g['low']}–{g['high']} |\n")
        done = 0
        for g in titled_groups(store, selection):
            out.write(f"\n## {md_cell(g['title'])} — `{g['engagement_id']}`\n\n"
                      f"{md_cell(g['client'])} with {md_cell(g['contractor'])}, curator "
                      f"{md_cell(g['curator'])}; versions {g['low']}–{g['high']}.\n\n"
                      "| Position | Version | Recorded (UTC) | Actor | Event | Summary | "
                      "Entry hash |\n|---:|---:|---|---|---|---|---|\n")
            for rows in engagement_batches(store, g["engagement_id"], g["low"], g["high"],
                                           selection.redacted):
                out.write("".join(
                    f"| {r['position']} | {r['version']} | {r['timestamp']} | "
                    f"{md_cell(r['role'])}:{md_cell(r['actor'])} | {r['type']} | "
                    f"{md_cell(r['summary'])} | `{r['hash']}` |\n" for r in rows))
                done += len(rows)
                progress(done, selection.entries)


# PDF ---------------------------------------------------------------------------------------


def write_pdf(models: Any, selection: Selection, path: Path, progress: Progress) -> None:
    from projections import audit_pdf

    audit_pdf.write(models, selection, path, progress)


WRITERS: dict[str, Callable[[Any, Selection, Path, Progress], None]] = {
    "csv": write_csv, "jsonl": write_jsonl, "md": write_markdown, "pdf": write_pdf,
}
