"""What each command recorded on an engagement was answered with, for retries (rule 12).

`CommandMemory` maps a command id to `[digest, created ids]`, as the plain dict it replaces
did. Only commands ever look in it, yet it is a third of a long engagement's snapshot: 9,000
small entries took 1.9 of the ~6.5 ms that parsing a 10,000-event engagement's snapshot took,
on every load, readers' included (the replay screen, `show --version`). A snapshot therefore
stores it as one string, a line per command id (`id TAB digest TAB created`), and a memory
loaded from a snapshot is split into entries only when first looked in. Events replayed after
the snapshot are remembered in order and applied then, so the result is exactly what the
dict would have held.

Command ids and digests never hold a tab or a line break (`check_name`); should one ever, the
snapshot stores the entries as a JSON list of triples instead. Snapshots stored before this
hold a plain dict, which still loads: the engagement turns it into a memory when it next
remembers a command.
"""

from __future__ import annotations

from collections.abc import ItemsView
from typing import Any

from eventsourcing.persistence import Transcoding

Entry = list[Any]  # [digest, created ids or None]


class CommandMemory:
    __slots__ = ("_entries", "_packed", "_pending")

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self._entries: dict[str, Entry] | None = {} if entries is None else entries
        self._packed: str | list[Any] | None = None
        self._pending: list[tuple[str, Any, str | None]] = []

    @classmethod
    def from_packed(cls, packed: str | list[Any]) -> CommandMemory:
        memory = cls.__new__(cls)
        memory._entries, memory._packed, memory._pending = None, packed, []
        return memory

    def remember(self, command_id: str, digest: Any, created: str | None) -> None:
        """A command's event: its id and digest, and the id it created (if any)."""
        if self._entries is None:
            self._pending.append((command_id, digest, created))
        else:
            _remember(self._entries, command_id, digest, created)

    def _unpacked(self) -> dict[str, Entry]:
        entries = self._entries
        if entries is None:
            entries = self._entries = _unpack(self._packed)  # type: ignore[arg-type]
            pending, self._packed, self._pending = self._pending, None, []
            for call in pending:
                _remember(entries, *call)
        return entries

    def get(self, command_id: str) -> Entry | None:
        return self._unpacked().get(command_id)

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._unpacked()

    def __getitem__(self, command_id: str) -> Entry:
        return self._unpacked()[command_id]

    def __len__(self) -> int:
        return len(self._unpacked())

    def items(self) -> ItemsView[str, Entry]:
        return self._unpacked().items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommandMemory):
            other = other._unpacked()
        return self._unpacked() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CommandMemory({self._unpacked()!r})"

    def packed(self) -> str | list[Any]:
        if self._entries is None and not self._pending:
            return self._packed  # type: ignore[return-value]  # as loaded: nothing to redo
        entries = self._unpacked()
        lines = []
        for command_id, (digest, created) in entries.items():
            fields = (command_id, digest, created or "")
            if not all(type(f) is str and "\t" not in f and "\n" not in f for f in fields) \
                    or created == "":
                return [[command_id, digest, created] for command_id, (digest, created)
                        in entries.items()]
            lines.append("\t".join(fields))
        return "\n".join(lines)


def _remember(entries: dict[str, Entry], command_id: str, digest: Any,
              created: str | None) -> None:
    remembered = entries.get(command_id)
    if remembered is None:
        entries[command_id] = [digest, created]
    elif created is not None:
        remembered[1] = created if remembered[1] is None else f"{remembered[1]} {created}"


def _unpack(packed: str | list[Any]) -> dict[str, Entry]:
    if isinstance(packed, list):
        return {command_id: [digest, created] for command_id, digest, created in packed}
    entries: dict[str, Entry] = {}
    if packed:
        for line in packed.split("\n"):
            command_id, digest, created = line.split("\t")
            entries[command_id] = [digest, created or None]
    return entries


class CommandMemoryAsPacked(Transcoding):
    type = CommandMemory
    name = "ledger.CommandMemory/packed"

    def encode(self, obj: CommandMemory) -> str | list[Any]:
        return obj.packed()

    def decode(self, data: str | list[Any]) -> CommandMemory:
        return CommandMemory.from_packed(data)
