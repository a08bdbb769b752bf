"""Compact transcodings of the entities, for snapshots (`ledger.<Class>/list`).

The first transcodings (`ledger.<Class>`, `ledger.transcodings.DataclassAsDict`) store each
entity as a dict of its fields, every date, time and amount in it as the library's typed
object (`{"_type_": "datetime_iso", "_data_": ...}`): a 10,000-event engagement's snapshot was
1.9 MB and took ~23 ms to decode, most of it the JSON decoder's hook running for each of those
small objects. These store an entity as the list of its field values in the class's field
order, with a field declared `datetime`, `date` or `Decimal` (or one of those `| None`) as the
plain ISO or decimal string: a quarter of the objects, and decoding is a `fromisoformat` per
field.

Snapshots are derived data: new snapshots are written this way; every snapshot stored before
still decodes, since the old names stay registered. Events never hold these entities. A change
to an entity's fields (other than a new field with a default, added last) needs a new name
here, so snapshots of the old shape fail to decode by name rather than silently misread.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import Transcoding

from ledger.personal_data import seal

if TYPE_CHECKING:
    from ledger.keyring import Keyring

#: Field annotations stored as plain strings, and how each is read back.
_KINDS: dict[str, type] = {
    "datetime": datetime, "datetime | None": datetime,
    "date": date, "date | None": date,
    "Decimal": Decimal, "Decimal | None": Decimal,
}
_PARSE: dict[type, Any] = {datetime: datetime.fromisoformat, date: date.fromisoformat,
                           Decimal: Decimal}


class DataclassAsList(Transcoding):
    """One dataclass type as the list of its field values (see the module's docstring)."""

    def __init__(self, cls: type, name: str, keyring: Keyring | None = None) -> None:
        self.type = cls
        self.name = name
        fields = dataclasses.fields(cls)
        self._names = tuple(f.name for f in fields)
        self._kinds = tuple(_KINDS.get(f.type) if isinstance(f.type, str) else None
                            for f in fields)
        self.keyring = keyring
        self._decode_whole = _whole_decoder(cls, self._names, self._kinds)

    def encode(self, obj: Any) -> list[Any]:
        values = []
        keyring = self.keyring
        for name, kind in zip(self._names, self._kinds):
            value = getattr(obj, name)
            if kind is not None and value is not None:
                if type(value) is kind:
                    value = value.isoformat() if kind is not Decimal else str(value)
                elif isinstance(value, (str, list)):  # not the declared kind: a list of
                    # one says "as it is" (the generic transcoder encodes anything else typed)
                    value = [seal(value, keyring) if keyring is not None else value]
            elif keyring is not None:  # an encrypted ledger: personal text is sealed
                value = seal(value, keyring)
            values.append(value)
        return values

    def decode(self, data: list[Any]) -> Any:
        if len(data) == len(self._names):
            return self._decode_whole(data)
        if len(data) > len(self._names):
            raise ValueError(f"{self.name}: {len(data)} values for {len(self._names)} fields")
        fields = {}
        for name, kind, value in zip(self._names, self._kinds, data):
            if kind is not None:
                if type(value) is str:
                    value = _PARSE[kind](value)
                elif type(value) is list:
                    value = value[0]
            fields[name] = value
        return self.type(**fields)


def _read_as(kind: type) -> Any:
    """A stored value of a field declared `kind`: the plain string, a list holding a value
    that was not of the kind, or None."""
    parse = _PARSE[kind]

    def read(value: Any) -> Any:
        kind_of = type(value)
        if kind_of is str:
            return parse(value)
        if kind_of is list:
            return value[0]
        return value

    return read


def _whole_decoder(cls: type, names: tuple[str, ...], kinds: tuple[type | None, ...]) -> Any:
    """`decode` for a list holding every field, as one generated expression (as `dataclasses`
    generates `__init__`): a third of the time of a loop over the fields, for the thousands
    of entities in a long engagement's snapshot."""
    readers = {kind: _read_as(kind) for kind in set(kinds) if kind is not None}
    names_of = {datetime: "_datetime", date: "_date", Decimal: "_decimal"}
    arguments = ", ".join(
        f"{name}=data[{i}]" if kind is None else f"{name}={names_of[kind]}(data[{i}])"
        for i, (name, kind) in enumerate(zip(names, kinds)))
    scope: dict[str, Any] = {"cls": cls, **{names_of[k]: r for k, r in readers.items()}}
    exec(f"def decode(data):\n    return cls({arguments})\n", scope)  # noqa: S102
    return scope["decode"]
