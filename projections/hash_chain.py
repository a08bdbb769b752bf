"""The audit trail's two SHA-256 hash chains (DESIGN section 4), standard library only.

The canonical JSON of a stored event is its four stored fields with sorted keys and no spaces,
the state embedded exactly as stored (it is JSON already):

    {"originator_id":"<uuid>","originator_version":<n>,"state":<stored state>,"topic":"<topic>"}

Each entry hashes its event once (`event_sha256`) and then chains it:

    hash = sha256(previous hash + event_sha256)   (hex text; the first previous hash is 64 zeros)

once over the whole log in log order (its head is the digest an auditor keeps) and once per
engagement over its versions, so one engagement's export verifies on its own. The position in
the log is deliberately not hashed: a restored database numbers its events afresh but must
verify against the same digest. Hashing the stored bytes (not decoded values) means any change
of a stored byte is seen.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical_event(originator_id: Any, originator_version: int, topic: str,
                    state: bytes | str) -> bytes:
    if isinstance(state, str):  # a value rewritten by hand as text still hashes its bytes
        state = state.encode()
    if state[:1] == b"{" and state[-1:] == b"}" and _is_utf8(state):
        embedded = state
    else:  # not JSON text (encrypted state may start with "{"): embed it as base64 text
        embedded = json.dumps("base64:" + base64.b64encode(state).decode()).encode()
    return b"".join((b'{"originator_id":"', str(originator_id).encode(),
                     b'","originator_version":', str(int(originator_version)).encode(),
                     b',"state":', embedded,
                     b',"topic":', _topic_json(topic), b"}"))


@functools.lru_cache(maxsize=1024)  # a few dozen topics, one call per event
def _topic_json(topic: str) -> bytes:
    return json.dumps(topic).encode()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def event_sha256(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def chain(previous: str, event_hash: str) -> str:
    return hashlib.sha256((previous + event_hash).encode()).hexdigest()


def wanted_digest(text: str | None) -> tuple[int | None, str] | None:
    """A digest to verify against, as `verify` and `verify --export` take it: None when none
    was given; a malformed one is invalid input (exit 2)."""
    if not text:
        return None
    try:
        return parse_digest(text)
    except ValueError as error:
        from ledger.errors import InvalidInput

        raise InvalidInput(str(error)) from None


def parse_digest(text: str) -> tuple[int | None, str]:
    """`POSITION:HASH` (as `ledger audit digest` prints it) or a bare HASH."""
    text = text.strip()
    position: int | None = None
    if ":" in text:
        head, _, text = text.partition(":")
        if not head.isdigit():
            raise ValueError(f"digest {head}:{text} is not POSITION:HASH")
        position = int(head)
    text = text.lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("a digest is 64 hexadecimal characters, optionally after POSITION:")
    return position, text
