"""Personal text, sealed with a key per contractor so that it can be forgotten (crypto-shredding).

On an encrypted ledger (LEDGER_CIPHER_KEY set) each contractor gets a random key of their
own, kept in `ledger_keys` wrapped with the ledger's key (`ledger.keyring`). The fields an
event class lists in `PERSONAL` (the contractor's name, interview notes and red flags,
evidence descriptions, notes) hold `PersonalText`, which the mapper and the entity
transcodings store sealed with that key, in events and snapshots alike. Deleting the key
(`ledger forget-contractor`) makes the sealed text unreadable for ever; it then reads as
`[forgotten 1a2b3c4d]`, while money, dates, rules and the hash chain stay as they were.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import Mapper, StoredEvent, Transcoding
from eventsourcing.utils import get_topic

if TYPE_CHECKING:
    from ledger.keyring import Keyring


class PersonalText(str):
    """Text about a contractor as a person; `subject` names the key that seals it."""

    subject: str | None
    forgotten: bool

    def __new__(cls, text: str, subject: str | None, forgotten: bool = False) -> PersonalText:
        obj = super().__new__(cls, text)
        obj.subject = subject
        obj.forgotten = forgotten
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (PersonalText, (str(self), self.subject, self.forgotten))

    def __copy__(self) -> PersonalText:
        return self

    def __deepcopy__(self, memo: Any) -> PersonalText:
        return self


def forgotten_text(subject: str) -> PersonalText:
    """What sealed text reads as once its contractor was forgotten: a pseudonym, not a name."""
    return PersonalText(f"[forgotten {subject[:8]}]", subject, forgotten=True)


def personal(value: Any, subject: str | None) -> Any:
    """Marks text (or a list or dict of texts) as the contractor's personal text."""
    if subject is None or value is None:
        return value
    if isinstance(value, str):
        return PersonalText(value, subject)
    if isinstance(value, list):
        return [personal(item, subject) for item in value]
    if isinstance(value, dict):
        return {key: personal(item, subject) for key, item in value.items()}
    return value


class Sealed:
    """Personal text as stored: the key's subject and AES-GCM output."""

    __slots__ = ("blob", "subject")

    def __init__(self, subject: str, blob: bytes) -> None:
        self.subject = subject
        self.blob = blob


class SealedAsDict(Transcoding):
    type = Sealed
    name = "ledger.sealed"

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def encode(self, obj: Sealed) -> dict[str, str]:
        return {"k": obj.subject, "c": b64encode(obj.blob).decode("ascii")}

    def decode(self, data: dict[str, str]) -> PersonalText:
        return self.keyring.open(data["k"], b64decode(data["c"]))


def seal(value: Any, keyring: Keyring) -> Any:
    """`value` with every `PersonalText` in it (through dicts, lists and tuples) sealed.

    Entities are sealed by their own transcodings (`ledger.transcodings`); text that carries
    no subject (recorded before the ledger was encrypted) stays as it is.
    """
    kind = type(value)
    if kind is PersonalText:
        if value.subject is None:
            return str(value)
        if value.forgotten:
            return Sealed(value.subject, b"")  # nothing left to seal
        return Sealed(value.subject, keyring.seal(value.subject, str(value)))
    if kind is dict:
        return {key: seal(item, keyring) for key, item in value.items()}
    if kind is list:
        return [seal(item, keyring) for item in value]
    if kind is tuple:
        return tuple(seal(item, keyring) for item in value)
    return value


class SealingMapper(Mapper):  # type: ignore[type-arg]
    """The library's mapper, sealing personal text before it is encoded and encrypted."""

    def __init__(self, mapper: Mapper, keyring: Keyring) -> None:  # type: ignore[type-arg]
        super().__init__(mapper.transcoder, compressor=mapper.compressor, cipher=mapper.cipher)
        self.keyring = keyring

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        # As the library's Mapper.to_stored_event, with the state sealed first.
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        stored_state = self.transcoder.encode(seal(event_state, self.keyring))
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(originator_id=originator_id, originator_version=originator_version,
                           topic=get_topic(type(domain_event)), state=stored_state)
