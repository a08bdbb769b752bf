"""Where events live: a database URL mapped onto the library's own SQLite and PostgreSQL recorders.

`sqlite:///relative.db` and `sqlite:////absolute.db` follow SQLAlchemy's convention;
`postgresql://user@host:port/db?schema=name` selects a schema (default `public`);
`memory://` keeps everything in this process (for tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.errors import InvalidInput

DEFAULT_URL = "sqlite:///ledger.db"
#: One key for every ledger's schema creation, so processes starting together take turns.
SCHEMA_LOCK_KEY = 0x1ED6E7
#: Seconds a statement waits for a lock another transaction holds (env LEDGER_LOCK_TIMEOUT);
#: past it the command is refused with exit 5 and nothing is recorded.
DEFAULT_LOCK_TIMEOUT = {"sqlite": 30, "postgres": 10}


@dataclass(frozen=True)
class Database:
    url: str
    kind: str  # sqlite | postgres | memory
    env: dict[str, str]

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"

    def psycopg_conninfo(self) -> str:
        e = self.env
        parts = [f"dbname={e['POSTGRES_DBNAME']}", f"host={e['POSTGRES_HOST']}",
                 f"port={e['POSTGRES_PORT']}", f"user={e['POSTGRES_USER']}"]
        if e.get("POSTGRES_PASSWORD"):
            parts.append(f"password={e['POSTGRES_PASSWORD']}")
        return " ".join(parts)

    @property
    def schema(self) -> str:
        return self.env.get("POSTGRES_SCHEMA", "public")

    @property
    def lock_timeout(self) -> int | None:
        """Seconds a statement waits for a lock (None in memory, where nothing waits)."""
        value = self.env.get("POSTGRES_LOCK_TIMEOUT") or self.env.get("SQLITE_LOCK_TIMEOUT")
        return int(value) if value else None


def resolve(url: str | None) -> Database:
    if url is not None and not url.strip():  # `--db ""` is a mistake, not "the default"
        raise InvalidInput("the database URL is empty: give sqlite:///PATH or postgresql://…")
    url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL
    if url.startswith("memory:"):
        return Database(url, "memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    if url.startswith("sqlite://"):
        return Database(url, "sqlite", _sqlite_env(url))
    if url.startswith(("postgresql://", "postgres://")):
        return Database(url, "postgres", _postgres_env(url))
    raise InvalidInput(f"database URL {url!r} is not sqlite:///PATH or postgresql://…")


def _sqlite_env(url: str) -> dict[str, str]:
    path = url[len("sqlite://"):]
    if not path.startswith("/") or len(path) < 2:
        raise InvalidInput(f"database URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db")
    path = path[1:]  # sqlite:///x.db -> x.db ; sqlite:////abs/x.db -> /abs/x.db
    if path != ":memory:":
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            raise InvalidInput(f"database URL {url!r}: folder {str(parent)!r} does not exist")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": str(seconds_from_env("LEDGER_LOCK_TIMEOUT",
                                                    DEFAULT_LOCK_TIMEOUT["sqlite"])),
    }


def _postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise InvalidInput(f"database URL {url!r} names no database")
    env = {
        # The library's PostgreSQL recorders, except that a lock timeout is not retried.
        "PERSISTENCE_MODULE": "ledger.postgres_recorders:Factory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "localhost",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or os.environ.get("PGUSER", "postgres")),
        "POSTGRES_PASSWORD": unquote(parts.password or os.environ.get("PGPASSWORD", "")),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": str(seconds_from_env("LEDGER_LOCK_TIMEOUT",
                                                      DEFAULT_LOCK_TIMEOUT["postgres"])),
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "4",
    }
    schema = query.get("schema", [""])[0]
    if schema:
        if not schema.replace("_", "").isalnum():
            raise InvalidInput(f"database URL {url!r}: schema must be letters, digits and _")
        env["POSTGRES_SCHEMA"] = schema
    return env


def seconds_from_env(name: str, default: int) -> int:
    """A whole number of seconds from the environment, 1 to 3600."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise InvalidInput(f"{name}={text!r}: give a whole number of seconds from 1 to 3600")
    return int(text)


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it was raised from (the library wraps the driver's errors)."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return chain


def is_lock_timeout(error: BaseException) -> bool:
    """A statement gave up waiting for a lock: PostgreSQL's lock_timeout, SQLite's busy timeout."""
    for cause in _causes(error):
        if getattr(cause, "sqlstate", None) == "55P03":  # psycopg: lock_not_available
            return True
        if type(cause).__module__ == "sqlite3" and "locked" in str(cause):
            return True
    return False


def permission_denied(error: BaseException) -> str | None:
    """PostgreSQL's own refusal (SQLSTATE 42501: the database role lacks a privilege, e.g. the
    writer role of `init --postgres-roles` asked to change history): its first line, else None."""
    for cause in _causes(error):
        if getattr(cause, "sqlstate", None) == "42501":
            text = str(cause).strip()
            return text.splitlines()[0] if text else "permission denied"
    return None


def is_connection_lost(error: BaseException) -> bool:
    """PostgreSQL could not be reached, or the connection broke (a restart, a dropped socket).

    Not a lock timeout, nor a cancelled statement: those are answers from a working server.
    """
    if is_lock_timeout(error):
        return False
    for cause in _causes(error):
        module = type(cause).__module__
        if module.startswith(("psycopg", "psycopg_pool")):
            return getattr(cause, "sqlstate", None) != "57014" and any(
                base.__name__ in ("OperationalError", "InterfaceError")
                for base in type(cause).__mro__)
    return False


#: Created in this order; the last one existing means all do.
LEDGER_TABLES = ("engagements_events", "engagements_snapshots")


def _tables_exist(conn: object, schema: str) -> bool:
    row = conn.execute(  # type: ignore[attr-defined]
        "SELECT bool_and(to_regclass(name) IS NOT NULL) FROM unnest(%s::text[]) AS name",
        ([f'"{schema}".{table}' for table in LEDGER_TABLES],),
    ).fetchone()
    return bool(row[0])


def prepare_postgres(database: Database, create_tables: object) -> None:
    """Creates schema and tables once, under an advisory lock, if they are not there yet.

    Several processes starting at once on a fresh database would otherwise race on
    CREATE TABLE / CREATE TYPE ("tuple concurrently updated").
    """
    import psycopg

    from ledger.errors import LedgerError

    try:
        with psycopg.connect(database.psycopg_conninfo(), autocommit=True,
                             connect_timeout=10) as conn:
            if _tables_exist(conn, database.schema):
                return
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
            try:
                if not _tables_exist(conn, database.schema):  # another process may have won
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"')
                    create_tables()  # type: ignore[operator]
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
    except psycopg.OperationalError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
        raise LedgerError(f"cannot reach PostgreSQL at {database.url}: {first_line}") from None
