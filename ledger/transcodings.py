"""JSON transcodings for what the library does not know: dates and our entity dataclasses.

Snapshots store `vars(engagement)`, so every entity must round-trip; names are stable strings,
like event topics, so moving a class never breaks a stored snapshot.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.personal_data import SealedAsDict, seal

if TYPE_CHECKING:
    from ledger.keyring import Keyring


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class DataclassAsDict(Transcoding):
    """Encodes one dataclass type as a dict of its fields."""

    def __init__(self, cls: type, name: str, keyring: Keyring | None = None) -> None:
        self.type = cls
        self.name = name
        self._fields = tuple(f.name for f in dataclasses.fields(cls))
        self.keyring = keyring

    def encode(self, obj: Any) -> dict[str, Any]:
        if self.keyring is not None:  # an encrypted ledger: personal text is sealed
            return {name: seal(getattr(obj, name), self.keyring) for name in self._fields}
        return {name: getattr(obj, name) for name in self._fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


def register_ledger_transcodings(transcoder: JSONTranscoder, keyring: Keyring | None = None) -> None:
    from ledger.access import Grant
    from ledger.agreements import Agreement, AgreementVersion, Signature
    from ledger.disclosures import Disclosure
    from ledger.disputes import Dispute, Evidence
    from ledger.engagement import Entry
    from ledger.interviews import Interview
    from ledger.milestones import Milestone

    transcoder.register(DateAsISO())
    for cls in (Agreement, AgreementVersion, Signature, Entry, Interview, Milestone, Grant,
                Disclosure, Dispute, Evidence):
        transcoder.register(DataclassAsDict(cls, f"ledger.{cls.__name__}", keyring))
    # Registered after the dicts, so new snapshots are written compactly; snapshots stored
    # before still decode by the names above (ledger/compact_transcodings.py).
    from ledger.compact_transcodings import DataclassAsList

    for cls in (Agreement, AgreementVersion, Signature, Entry, Interview, Milestone, Grant,
                Disclosure, Dispute, Evidence):
        transcoder.register(DataclassAsList(cls, f"ledger.{cls.__name__}/list", keyring))
    from ledger.command_memory import CommandMemoryAsPacked

    transcoder.register(CommandMemoryAsPacked())
    if keyring is not None:
        transcoder.register(SealedAsDict(keyring))
