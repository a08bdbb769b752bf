"""The keys of an encrypted ledger: a check of LEDGER_CIPHER_KEY, and one key per contractor.

Table `ledger_keys`, beside the events, one row per key:

- `subject`: `ledger` for the check row, else the contractor key's random id;
- `name_mac`: HMAC-SHA256 of the contractor's casefolded name under the ledger's key, so the
  same contractor (in any spelling that casefolds alike) finds their key without the table
  holding their name; empty for the check row;
- `wrapped`: the contractor's key, AES-GCM encrypted with the ledger's key.

Forgetting a contractor deletes their row (SQLite with `secure_delete`, then a WAL checkpoint;
PostgreSQL with `VACUUM FULL` of this table), after which their sealed text cannot be read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import uuid
from base64 import b64decode
from binascii import Error as Base64Error
from typing import Any

from ledger.errors import InvalidInput, LedgerError, RuleViolation
from ledger.personal_data import PersonalText, forgotten_text

TABLE = "ledger_keys"
CHECK_SUBJECT = "ledger"
CHECK_TEXT = b"engagement-ledger key check"


class DamagedPersonalText(LedgerError):
    """Sealed text that does not decrypt under its contractor's key: changed after it was written."""

    exit_code = 3


def parse_cipher_key(text: str) -> bytes:
    """LEDGER_CIPHER_KEY as bytes: base64 of 16, 24 or 32 bytes (`ledger keygen` makes 32)."""
    try:
        key = b64decode(text.strip().encode("ascii"), validate=True)
    except (Base64Error, UnicodeEncodeError, ValueError):
        key = b""
    if len(key) not in (16, 24, 32):
        raise InvalidInput("LEDGER_CIPHER_KEY is not a key: use one printed by `ledger keygen` "
                           "(base64 of 16, 24 or 32 bytes)")
    return key


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    from Crypto.Cipher import AES

    nonce = os.urandom(12)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return nonce + tag + ciphertext


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Raises ValueError when the blob was changed or the key is not the one it was sealed with."""
    from Crypto.Cipher import AES

    if len(blob) < 28:
        raise ValueError("too short")
    cipher = AES.new(key, AES.MODE_GCM, nonce=blob[:12])
    cipher.update(aad)
    return cipher.decrypt_and_verify(blob[28:], blob[12:28])


class Keyring:
    """The ledger's key and its contractors' keys; seals and opens personal text."""

    def __init__(self, master: bytes) -> None:
        self.master = master
        self.store: KeyStore = MemoryKeyStore()
        self._keys: dict[str, bytes] = {}
        self._subjects: dict[str, str] = {}  # name_mac -> subject, as found or made

    def attach(self, store: KeyStore) -> None:
        self.store = store

    # The ledger's key ----------------------------------------------------------------

    def check(self, ledger_has_events: bool) -> None:
        """Refuses a key that is not this ledger's, and encryption of an unencrypted ledger."""
        self.store.create()
        wrapped = self.store.get(CHECK_SUBJECT)
        if wrapped is None:
            if ledger_has_events:
                raise InvalidInput("this ledger was created without encryption: unset "
                                   "LEDGER_CIPHER_KEY to use it")
            self.store.insert(CHECK_SUBJECT, None,
                              encrypt(self.master, CHECK_TEXT, CHECK_SUBJECT.encode()))
            wrapped = self.store.get(CHECK_SUBJECT)  # another process may have been first
        try:
            decrypt(self.master, wrapped or b"", CHECK_SUBJECT.encode())
        except ValueError:
            raise InvalidInput("LEDGER_CIPHER_KEY does not open this ledger: it was encrypted "
                               "with another key") from None

    # Contractors' keys ---------------------------------------------------------------

    def name_mac(self, name: str) -> str:
        # Casefolded, as the contractor record matches names (docs/decisions.md).
        return hmac.new(self.master, name.casefold().encode(), hashlib.sha256).hexdigest()

    def subject_for(self, name: str) -> str:
        """The key id of the contractor with this name, made (and stored) the first time."""
        mac = self.name_mac(name)
        found = self._subjects.get(mac) or self.store.find(mac)
        if found is None:
            subject = uuid.uuid4().hex
            key = os.urandom(32)
            self.store.insert(subject, mac, encrypt(self.master, key, subject.encode()))
            found = self.store.find(mac)  # a process that stored one first wins
            if found is None:
                raise LedgerError(f"could not store a key for contractor {name!r}")
        self._subjects[mac] = found
        return found

    def subjects_of(self, name: str) -> list[str]:
        found = self.store.find(self.name_mac(name))
        return [found] if found else []

    def backup(self) -> dict[str, Any]:
        """Every key as stored (wrapped with the ledger's key), for a full JSONL export."""
        from base64 import b64encode

        rows = self.store.all()
        return {"check": next((b64encode(w).decode() for s, _, w in rows if s == CHECK_SUBJECT),
                              None),
                "contractors": [[s, mac, b64encode(w).decode()] for s, mac, w in rows
                                if s != CHECK_SUBJECT]}

    def restore(self, backup: dict[str, Any]) -> int:
        """Stores a backup's contractor keys; refuses one made under another ledger key."""
        try:
            decrypt(self.master, b64decode(backup.get("check") or ""), CHECK_SUBJECT.encode())
        except (ValueError, TypeError):
            raise InvalidInput("LEDGER_CIPHER_KEY is not the key of the ledger this backup was "
                               "made from") from None
        for subject, mac, wrapped in backup.get("contractors") or []:
            self.store.insert(subject, mac, b64decode(wrapped))
        return len(backup.get("contractors") or [])

    def forget(self, subjects: list[str]) -> None:
        """Deletes the keys for good; text sealed with them can never be opened again."""
        for subject in subjects:
            self._keys.pop(subject, None)
        self._subjects = {mac: s for mac, s in self._subjects.items() if s not in subjects}
        self.store.delete(subjects)

    def _key(self, subject: str) -> bytes | None:
        key = self._keys.get(subject)
        if key is None:
            wrapped = self.store.get(subject)
            if wrapped is None:
                return None
            try:
                key = decrypt(self.master, wrapped, subject.encode())
            except ValueError:
                raise DamagedPersonalText(f"the key of contractor {subject[:8]} was changed in "
                                          f"the {TABLE} table; it does not open") from None
            self._keys[subject] = key
        return key

    # Personal text -------------------------------------------------------------------

    def seal(self, subject: str, text: str) -> bytes:
        key = self._key(subject)
        if key is None:
            raise RuleViolation("this engagement's contractor was forgotten: no personal text "
                                "about them can be recorded any more")
        return encrypt(key, text.encode("utf-8"), subject.encode())

    def open(self, subject: str, blob: bytes) -> PersonalText:
        key = self._key(subject) if blob else None
        if key is None:
            return forgotten_text(subject)
        try:
            return PersonalText(decrypt(key, blob, subject.encode()).decode("utf-8"), subject)
        except ValueError:
            raise DamagedPersonalText(f"personal text sealed for contractor {subject[:8]} does "
                                      "not decrypt: it was changed after it was recorded") from None


# Where keys are kept ------------------------------------------------------------------


class KeyStore:
    def create(self) -> None:
        raise NotImplementedError

    def holds_check(self) -> bool:
        """Whether this database is an encrypted ledger (without creating anything)."""
        raise NotImplementedError

    def get(self, subject: str) -> bytes | None:
        raise NotImplementedError

    def find(self, name_mac: str) -> str | None:
        raise NotImplementedError

    def insert(self, subject: str, name_mac: str | None, wrapped: bytes) -> None:
        raise NotImplementedError

    def delete(self, subjects: list[str]) -> None:
        raise NotImplementedError

    def all(self) -> list[tuple[str, str | None, bytes]]:
        raise NotImplementedError


class MemoryKeyStore(KeyStore):
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str | None, bytes]] = {}

    def create(self) -> None:
        pass

    def holds_check(self) -> bool:
        return CHECK_SUBJECT in self.rows

    def get(self, subject: str) -> bytes | None:
        row = self.rows.get(subject)
        return row[1] if row else None

    def find(self, name_mac: str) -> str | None:
        return next((s for s, (mac, _) in self.rows.items() if mac == name_mac), None)

    def insert(self, subject: str, name_mac: str | None, wrapped: bytes) -> None:
        if subject not in self.rows and (name_mac is None or self.find(name_mac) is None):
            self.rows[subject] = (name_mac, wrapped)

    def delete(self, subjects: list[str]) -> None:
        for subject in subjects:
            self.rows.pop(subject, None)

    def all(self) -> list[tuple[str, str | None, bytes]]:
        return [(s, mac, w) for s, (mac, w) in sorted(self.rows.items())]


class SQLiteKeyStore(KeyStore):
    """Short connections of its own to the ledger's file (keys are read once per process)."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def create(self) -> None:
        self._query(f"CREATE TABLE IF NOT EXISTS {TABLE} (subject TEXT PRIMARY KEY, "
                    "name_mac TEXT UNIQUE, wrapped BLOB NOT NULL)")

    def holds_check(self) -> bool:
        if not self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                           (TABLE,)):
            return False
        return bool(self._query(f"SELECT 1 FROM {TABLE} WHERE subject = ?", (CHECK_SUBJECT,)))

    def get(self, subject: str) -> bytes | None:
        rows = self._query(f"SELECT wrapped FROM {TABLE} WHERE subject = ?", (subject,))
        return bytes(rows[0][0]) if rows else None

    def find(self, name_mac: str) -> str | None:
        rows = self._query(f"SELECT subject FROM {TABLE} WHERE name_mac = ?", (name_mac,))
        return rows[0][0] if rows else None

    def insert(self, subject: str, name_mac: str | None, wrapped: bytes) -> None:
        self._query(f"INSERT INTO {TABLE} (subject, name_mac, wrapped) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING", (subject, name_mac, wrapped))

    def all(self) -> list[tuple[str, str | None, bytes]]:
        return [(s, mac, bytes(w)) for s, mac, w in
                self._query(f"SELECT subject, name_mac, wrapped FROM {TABLE} ORDER BY subject")]

    def delete(self, subjects: list[str]) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left behind
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"DELETE FROM {TABLE} WHERE subject = ?", [(s,) for s in subjects])
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and the WAL holds no old copy
        finally:
            conn.close()


class PostgresKeyStore(KeyStore):
    """On the application's own connection pool."""

    def __init__(self, datastore: Any, schema: str) -> None:
        self.datastore = datastore
        self.table = f'"{schema}".{TABLE}'
        self.schema = schema

    def _query(self, sql: str, params: tuple[Any, ...] = (), commit: bool = False) -> list[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def create(self) -> None:
        if not self.holds_table():
            self._query(f"CREATE TABLE IF NOT EXISTS {self.table} (subject TEXT PRIMARY KEY, "
                        "name_mac TEXT UNIQUE, wrapped BYTEA NOT NULL)", commit=True)

    def holds_table(self) -> bool:
        rows = self._query("SELECT to_regclass(%s) IS NOT NULL AS found", (self.table,))
        return bool(rows[0]["found"])

    def holds_check(self) -> bool:
        return self.holds_table() and self.get(CHECK_SUBJECT) is not None

    def get(self, subject: str) -> bytes | None:
        rows = self._query(f"SELECT wrapped FROM {self.table} WHERE subject = %s", (subject,))
        return bytes(rows[0]["wrapped"]) if rows else None

    def find(self, name_mac: str) -> str | None:
        rows = self._query(f"SELECT subject FROM {self.table} WHERE name_mac = %s", (name_mac,))
        return rows[0]["subject"] if rows else None

    def insert(self, subject: str, name_mac: str | None, wrapped: bytes) -> None:
        self._query(f"INSERT INTO {self.table} (subject, name_mac, wrapped) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING", (subject, name_mac, wrapped), commit=True)

    def all(self) -> list[tuple[str, str | None, bytes]]:
        return [(r["subject"], r["name_mac"], bytes(r["wrapped"])) for r in self._query(
            f"SELECT subject, name_mac, wrapped FROM {self.table} ORDER BY subject")]

    def delete(self, subjects: list[str]) -> None:
        self._query(f"DELETE FROM {self.table} WHERE subject = ANY(%s)", (subjects,), commit=True)
        # VACUUM FULL writes the table afresh, so the deleted rows are in no file of the
        # database any more (a plain VACUUM only marks their space free).
        with self.datastore.get_connection() as conn:
            conn.rollback()
            autocommit = conn.autocommit
            conn.autocommit = True
            try:
                conn.execute(f"VACUUM FULL {self.table}")
            finally:
                conn.autocommit = autocommit


def key_store_for(database: Any, recorder: Any) -> KeyStore:
    if database.kind == "sqlite":
        return SQLiteKeyStore(database.env["SQLITE_DBNAME"],
                              float(database.env.get("SQLITE_LOCK_TIMEOUT", "30")))
    if database.kind == "postgres":
        return PostgresKeyStore(recorder.datastore, database.schema)
    return MemoryKeyStore()
