"""The base of every engagement event: who did it, as what role, from which OS user, in which command.

Stored events are forever, so every event class names its own `TOPIC`; moving or renaming a
class never breaks decoding. A changed event gets a `class_version` and `upcast_vN_vN+1`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

TOPIC_PREFIX = "engagement-ledger:"

#: Every event class by its short name; the JSON contract's list of `type` values.
EVENT_CLASSES: dict[str, type[EngagementEvent]] = {}


class EngagementEvent(Aggregate.Event):
    """Facts about one engagement; subclasses are named in the past tense."""

    TOPIC = TOPIC_PREFIX + "EngagementEvent"

    actor: str
    role: str
    os_user: str
    command_id: str
    command_digest: str

    #: Fields holding the contractor's personal text: sealed with their key on an encrypted
    #: ledger, so `forget-contractor` can make them unreadable (ledger.personal_data).
    PERSONAL: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        topic = cls.__dict__.get("TOPIC")
        if not topic or not topic.startswith(TOPIC_PREFIX):
            raise TypeError(f"{cls.__qualname__} must define its own TOPIC starting {TOPIC_PREFIX!r}")
        register_topic(topic, cls)
        EVENT_CLASSES[cls.__name__] = cls

    def apply(self, aggregate: Any) -> None:
        self.change(aggregate)
        aggregate.remember_command(self.command_id, self.command_digest, self.created_id())

    def change(self, engagement: Any) -> None:
        """Changes the engagement's state; never checks anything (checks run before)."""

    def created_id(self) -> str | None:
        """The short id this event created, answered to the command that caused it."""
        return None

    def summary(self) -> str:
        """One human line for the history and the audit trail."""
        return type(self).__name__


register_topic(EngagementEvent.TOPIC, EngagementEvent)


class Stamp:
    """Who acts, in which command, and when: the metadata every event of one command shares."""

    __slots__ = ("actor", "command_id", "command_digest", "timestamp")

    def __init__(self, actor: Any, command_id: str, command_digest: str, timestamp: Any) -> None:
        self.actor = actor
        self.command_id = command_id
        self.command_digest = command_digest
        self.timestamp = timestamp

    def fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor.name,
            "role": self.actor.role.value,
            "os_user": self.actor.os_user,
            "command_id": self.command_id,
            "command_digest": self.command_digest,
            "timestamp": self.timestamp,
        }
