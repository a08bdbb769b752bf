"""Offline verification of a JSONL audit export (`ledger audit verify --export FILE`).

Needs no database: only the file, the standard library and `hash_chain`. Checks, line by line:
the header and end records; each entry's `event_sha256` against its `stored_event` (a redacted
export carries none, so only its chain can be checked) and the entry's fields against the
stored event; each entry's hashes on both chains; that the entries form one contiguous run of
the export's chain (each `prev_hash` is the hash of the entry before it, positions increase)
and that every engagement's versions follow on; the entry count and last hash against the end
record; and, given a digest, that the chain passes through it. The first failure is named by
line number and position.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from projections.audit import VerifyReport
from projections.hash_chain import GENESIS, chain, wanted_digest

EXPORT_FORMAT = "engagement-ledger-audit/1"
TOPIC_PREFIX = "engagement-ledger:"
ENTRY_TEXT = ("engagement_id", "timestamp", "type", "summary", "event_sha256", "prev_hash", "hash",
              "engagement_prev_hash", "engagement_hash")
HEX = frozenset("0123456789abcdef")
#: Report progress every so many lines.
EVERY = 5000


class Broken(Exception):
    """The first thing found wrong with the file, with its line and position."""

    def __init__(self, problem: str, position: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.position = position


def verify_export(path: str | Path, digest_text: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    from ledger.errors import InvalidInput

    wanted = wanted_digest(digest_text)
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no file {str(path)!r}")
    check = ExportCheck(wanted)
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            read = 0
            for number, line in enumerate(stream, start=1):
                read += len(line)
                check.line(number, line)
                if progress is not None and number % EVERY == 0:
                    progress(read, size)
        check.finish()
    except Broken as broken:
        return VerifyReport(False, check.count, problem=broken.problem, position=broken.position)
    if progress is not None:
        progress(size, size)
    return VerifyReport(True, check.count, message=check.message())


class ExportCheck:
    """The state of one pass over an export: the header, the run so far, what the digest hit."""

    def __init__(self, wanted: tuple[int | None, str] | None) -> None:
        self.wanted = wanted
        self.header: dict[str, Any] | None = None
        self.ended = False
        self.count = 0
        self.previous: dict[str, Any] | None = None  # the entry before
        self.anchor: str | None = None  # the first entry's previous hash on the export's chain
        self.first_position: int | None = None
        self.engagements: dict[str, tuple[int, str]] = {}  # id -> (version, engagement hash)
        self.digest_at: int | None = None

    # One line ---------------------------------------------------------------------------

    def line(self, number: int, raw: bytes) -> None:
        where = f"line {number}"
        if not raw.strip():
            raise Broken(f"{where} is empty: an export has no blank lines")
        try:
            record = json.loads(raw)
        except UnicodeDecodeError:  # a ValueError without the JSON error's line and column
            raise Broken(f"{where} is not UTF-8 text: the file was changed or cut") from None
        except ValueError as error:
            raise Broken(f"{where} is not JSON ({error.msg} at column {error.colno}): the file "
                         "was changed or cut") from None
        if not isinstance(record, dict):
            raise Broken(f"{where} is not a JSON object")
        if self.ended:
            raise Broken(f"{where} comes after the end record")
        kind = record.get("record")
        if self.header is None:
            self.check_header(where, record)
        elif kind == "event":
            self.check_entry(number, record)
        elif kind == "end":
            self.check_end(where, record)
        else:
            raise Broken(f"{where} is a {kind!r} record; expected an event or the end record")

    def check_header(self, where: str, record: dict[str, Any]) -> None:
        if record.get("record") != "header":
            raise Broken(f"{where}: an export starts with its header record")
        if record.get("format") != EXPORT_FORMAT:
            raise Broken(f"{where}: format {record.get('format')!r} is not {EXPORT_FORMAT}")
        if record.get("chain") not in ("log", "engagement"):
            raise Broken(f"{where}: chain {record.get('chain')!r} is neither 'log' nor "
                         "'engagement'")
        selection = record.get("range")
        if not isinstance(selection, dict):
            raise Broken(f"{where}: the header has no range")
        if record["chain"] == "engagement" and not selection.get("engagement"):
            raise Broken(f"{where}: an engagement-chain export names its engagement")
        self.header = record

    def check_entry(self, number: int, e: dict[str, Any]) -> None:
        assert self.header is not None
        position = e.get("position")
        name = f"line {number} (position {position})"
        self.check_shape(name, e)
        name = (f"line {number} (position {position}, engagement {e['engagement_id']} version "
                f"{e['version']}, {e['type']})")

        def broken(what: str) -> Broken:
            return Broken(f"{name}: {what}", position)

        if self.previous is not None and position <= self.previous["position"]:
            what = "repeats" if position == self.previous["position"] else "comes after"
            raise broken(f"{what} position {self.previous['position']} on the line before: a "
                         "line was duplicated or moved")
        self.check_stored_event(e, broken)
        if e["hash"] != chain(e["prev_hash"], e["event_sha256"]):
            raise broken("its whole-log hash is not SHA-256(prev_hash + event_sha256): the "
                         "entry was changed")
        if e["engagement_hash"] != chain(e["engagement_prev_hash"], e["event_sha256"]):
            raise broken("its engagement hash is not SHA-256(engagement_prev_hash + "
                         "event_sha256): the entry was changed")
        self.check_run(e, broken)
        self.check_engagement(e, broken)
        if self.wanted is not None and self.digest_at is None and e["hash"] == self.wanted[1]:
            self.digest_at = position
        self.previous = e
        self.count += 1

    def check_shape(self, name: str, e: dict[str, Any]) -> None:
        position, version = e.get("position"), e.get("version")
        if type(position) is not int or type(version) is not int or version < 1:
            raise Broken(f"{name}: position and version must be whole numbers", None)
        for field in ENTRY_TEXT:
            if not isinstance(e.get(field), str):
                raise Broken(f"{name}: {field} is missing or not text", position)
        for field in ("event_sha256", "prev_hash", "hash", "engagement_prev_hash",
                      "engagement_hash"):
            if len(e[field]) != 64 or not HEX.issuperset(e[field]):
                raise Broken(f"{name}: {field} is not a SHA-256 in hex", position)
        if "stored_event" not in e:
            raise Broken(f"{name}: stored_event is missing", position)

    def check_stored_event(self, e: dict[str, Any], broken: Callable[[str], Broken]) -> None:
        assert self.header is not None
        text = e["stored_event"]
        if text is None:
            if not self.header.get("redacted"):
                raise broken("stored_event is null in an export that is not redacted")
            return
        if self.header.get("redacted"):
            raise broken("a redacted export carries no stored events")
        if not isinstance(text, str):
            raise broken("stored_event is not text")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != e["event_sha256"]:
            raise broken("the stored event does not match its event_sha256: it was changed")
        try:
            stored = json.loads(text)
            state = stored["state"]
            fields = {"engagement_id": stored["originator_id"],
                      "version": stored["originator_version"],
                      "type": stored["topic"].removeprefix(TOPIC_PREFIX)}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise broken("the stored event is not an event's canonical JSON") from None
        if isinstance(state, dict):  # not encrypted: the entry's own words can be checked too
            fields.update(actor=state.get("actor"), role=state.get("role"),
                          timestamp=_utc_text(state.get("timestamp")))
        for field, value in fields.items():
            if value is not None and e.get(field) != value:  # a field may have been removed
                raise broken(f"{field} says {e.get(field)!r} but the stored event says "
                             f"{value!r}")

    def check_run(self, e: dict[str, Any], broken: Callable[[str], Broken]) -> None:
        """One contiguous run of the export's chain: each entry follows on from the last."""
        assert self.header is not None
        engagement_chain = self.header["chain"] == "engagement"
        previous_field, hash_field = (("engagement_prev_hash", "engagement_hash")
                                      if engagement_chain else ("prev_hash", "hash"))
        if engagement_chain and e["engagement_id"] != self.header["range"]["engagement"]:
            raise broken(f"belongs to another engagement than the export's "
                         f"{self.header['range']['engagement']}")
        if self.previous is None:
            self.anchor = e[previous_field]
            self.first_position = e["position"]
            return
        if e[previous_field] != self.previous[hash_field]:
            which = "engagement's" if engagement_chain else "whole-log"
            raise broken(f"the {which} hash chain breaks here: its previous hash is not the hash "
                         f"of the entry before it (position {self.previous['position']}): a line "
                         "was dropped, added or moved")

    def check_engagement(self, e: dict[str, Any], broken: Callable[[str], Broken]) -> None:
        """Within the export, each engagement's versions and chain follow on."""
        seen = self.engagements.get(e["engagement_id"])
        if seen is None:
            if e["version"] == 1 and e["engagement_prev_hash"] != GENESIS:
                raise broken("version 1 of an engagement must start its chain from 64 zeros")
        else:
            version, engagement_hash = seen
            if e["version"] != version + 1:
                raise broken(f"the engagement jumps from version {version} to {e['version']}: "
                             "a line was dropped or moved")
            if e["engagement_prev_hash"] != engagement_hash:
                raise broken("the engagement's hash chain breaks here")
        self.engagements[e["engagement_id"]] = (e["version"], e["engagement_hash"])

    def check_end(self, where: str, record: dict[str, Any]) -> None:
        assert self.header is not None
        last = None
        if self.previous is not None:
            last = self.previous["engagement_hash" if self.header["chain"] == "engagement"
                                 else "hash"]
        if record.get("entries") != self.count:
            raise Broken(f"{where}: the end record says {record.get('entries')} entries, the file "
                         f"holds {self.count}: lines were dropped or added")
        if record.get("last_hash") != last:
            raise Broken(f"{where}: the end record's last hash is not the last entry's")
        self.ended = True

    def finish(self) -> None:
        if self.header is None:
            raise Broken("the file is empty: no header record")
        if not self.ended:
            raise Broken(f"there is no end record after line {self.count + 1}: the export was cut "
                         "short")
        if self.wanted is not None and self.digest_at is None and not (
                self.wanted[1] == GENESIS and self.anchor in (None, GENESIS)):
            raise Broken(self._digest_missed())

    def _digest_missed(self) -> str:
        assert self.wanted is not None and self.header is not None
        position, digest_hash = self.wanted
        where = f" (position {position})" if position is not None else ""
        text = f"the digest {digest_hash[:16]}…{where} matches no entry of this export"
        if self.header["chain"] == "engagement":
            return (text + ": an engagement's export holds only its own entries, so only a digest "
                    "taken right after one of them can match")
        if (position is not None and self.first_position is not None
                and position < self.first_position):
            return text + f": it is older than the export's first entry ({self.first_position})"
        return text + (": the log up to that digest was changed, the digest is from another "
                       "ledger, or it is newer than the export")

    def message(self) -> str:
        assert self.header is not None
        kind = "engagement's" if self.header["chain"] == "engagement" else "whole-log"
        text = f"export intact: {self.count} entries, one contiguous run of the {kind} chain"
        if self.previous is not None:
            text += f" ending at position {self.previous['position']}"
        if self.header.get("redacted"):
            text += " (redacted: the chain is checked, the events themselves cannot be)"
        if self.anchor not in (None, GENESIS):
            text += (f"; it starts mid-chain, so it is anchored at its first prev_hash "
                     f"{self.anchor}")
        if self.digest_at is not None:
            assert self.wanted is not None and self.previous is not None
            prefix = ("the last entry" if self.digest_at == self.previous["position"]
                      else f"a prefix ending at position {self.digest_at}")
            text += f"; the digest matches {prefix}"
            if self.wanted[0] is not None and self.wanted[0] != self.digest_at:
                text += f" (the digest named position {self.wanted[0]}: the log was renumbered)"
        return text


def _utc_text(value: Any) -> str | None:
    """The library's stored datetime as the audit trail writes it (ISO 8601 UTC ending Z)."""
    if isinstance(value, dict):
        value = value.get("_data_")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.utcoffset() is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"
