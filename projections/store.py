"""Where read models live: their own tables in the ledger's database, beside the events.

`ReadModelStore` is the library's tracking recorder for the backend (`SQLiteTrackingRecorder`
or `PostgresTrackingRecorder`) on the application's own datastore, plus what read models
need: a write transaction that holds the database's write lock from its first statement (so
the tracked position read inside it cannot move under it), and plain queries. SQL is written
once with `?` placeholders and `{table}` names; the store adapts both to the backend.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteTrackingRecorder

from ledger.errors import LedgerError

#: Read-model tables are named rm_<name>; the tracking rows are keyed "<app>/<model>".
TABLE_PREFIX = "rm_"
#: Serialises read-model writers on PostgreSQL (one transaction at a time applies events).
WRITE_LOCK_KEY = 0x1ED6E8
#: Held for a whole session by the runner that leads `projections run --follow`.
LEADER_LOCK_KEY = 0x1ED6E9
POSTGRES_TRACKING_TABLE = "ledger_projection_tracking"
#: SQLite page cache of a connection applying a batch, in KiB (the default is 2,000).
SQLITE_CACHE_KIB = 65536

_NAME = re.compile(r"\{([a-z_]+)\}")
#: `INSERT INTO {table} [AS alias] (columns) VALUES (?, ?, ...) [anything after]`.
_INSERT_VALUES = re.compile(r"INSERT INTO \{(?P<table>[a-z_]+)\}(?P<alias> AS [a-z_]+)? "
                            r"\((?P<names>[a-z0-9_, ]+)\) VALUES \(\?(?:, \?)*\)(?P<rest>.*)",
                            re.DOTALL)


class Tx:
    """One write transaction: `execute`, `executemany`, `query`, `track`."""

    def __init__(self, store: ReadModelStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor
        #: What models share within this transaction (the engagements after the batch).
        self.cache: dict[str, Any] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(self.store.sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.store.executemany_in(self.cursor, sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.cursor.execute(self.store.sql(sql), params)
        return [dict(row) for row in self.cursor.fetchall()]

    def position(self, key: str) -> int:
        return self.store.position_in(self.cursor, key)

    def track(self, key: str, notification_id: int) -> None:
        # The library's own single-row tracking upsert: it refuses to move backwards.
        self.store.insert_tracking_in(self.cursor, Tracking(key, notification_id))


class ReadModelStore:
    """Common face of the SQLite and PostgreSQL stores."""

    kind: str
    #: The application's mapper and repository (the engagement-state model loads
    #: engagements with the repository, at the version it recorded).
    app_mapper: Any = None
    app_repository: Any = None

    def sql(self, text: str) -> str:
        raise NotImplementedError

    def table(self, name: str) -> str:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        raise NotImplementedError
        yield  # pragma: no cover

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def position(self, key: str) -> int:
        return self.max_tracking_id(key) or 0  # type: ignore[attr-defined]

    def executemany_in(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor.executemany(self.sql(sql), rows)

    def ensure_tables(self, statements: Sequence[str]) -> None:
        raise NotImplementedError

    def refresh_statistics(self, tables: Sequence[str]) -> None:
        """After a large catch-up: let the planner know the tables' new sizes (no-op here)."""

    def tracking_table_sql(self) -> str:
        raise NotImplementedError

    def _expand(self, text: str) -> str:
        return _NAME.sub(lambda m: self.table(m.group(1)), text)


class SQLiteReadModelStore(SQLiteTrackingRecorder, ReadModelStore):
    kind = "sqlite"

    def __init__(self, recorder: SQLiteApplicationRecorder) -> None:
        super().__init__(recorder.datastore)
        self._sql_cache: dict[str, str] = {}

    def sql(self, text: str) -> str:
        cached = self._sql_cache.get(text)
        if cached is None:
            cached = self._sql_cache[text] = self._expand(text)
        return cached

    def table(self, name: str) -> str:
        return TABLE_PREFIX + name

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            # Read models insert under random keys (engagement ids) in several indexes; SQLite's
            # default page cache (2 MB) thrashes on a large ledger. Per connection, so set here,
            # and given back after: the pool hands this connection to readers too (an export
            # scanning the whole trail would otherwise fill 64 MB of cache it never reuses).
            cursor.execute("PRAGMA cache_size")
            normal = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            try:
                cursor.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write
                try:
                    yield Tx(self, cursor)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                cursor.execute(f"PRAGMA cache_size = {int(normal)}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(self.sql(sql), params)
            return [dict(row) for row in cursor.fetchall()]

    def position_in(self, cursor: Any, key: str) -> int:
        return self._max_tracking_id(key, cursor) or 0

    def insert_tracking_in(self, cursor: Any, tracking: Tracking) -> None:
        self._insert_tracking(cursor, tracking)

    def tracking_table_sql(self) -> str:
        return "tracking"

    def ensure_tables(self, statements: Sequence[str]) -> None:
        try:
            self.create_table()  # the library's tracking table
        except IntegrityError:
            # Another process created it between this one's look and its own creation.
            self.create_table()
        with self.transaction() as tx:
            for statement in statements:
                tx.execute(statement)


def _postgres_store_class() -> type[ReadModelStore]:
    """The PostgreSQL store, defined on first use: `eventsourcing.postgres` imports psycopg
    (most of 150 ms), which a SQLite ledger never needs (the start-up bar)."""
    global _POSTGRES_STORE
    if _POSTGRES_STORE is not None:
        return _POSTGRES_STORE
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder

    class PostgresReadModelStore(PostgresTrackingRecorder, ReadModelStore):
        kind = "postgres"

        def __init__(self, recorder: PostgresApplicationRecorder) -> None:
            super().__init__(recorder.datastore, tracking_table_name=POSTGRES_TRACKING_TABLE)
            self._sql_cache: dict[str, str] = {}
            self._unnest_cache: dict[str, str] = {}
            self._types_cache: dict[str, dict[str, str]] = {}

        def sql(self, text: str) -> str:
            cached = self._sql_cache.get(text)
            if cached is None:
                cached = self._sql_cache[text] = self._expand(text).replace("?", "%s")
            return cached

        def table(self, name: str) -> str:
            return f'"{self.datastore.schema}".{TABLE_PREFIX}{name}'

        def executemany_in(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
            """`INSERT ... VALUES (?, ...)` for many rows as ONE statement: a plain insert as
            `COPY ... FROM STDIN`, an upsert (`... ON CONFLICT ...`) as `INSERT ... SELECT *
            FROM unnest(%s::type[], ...)`, a typed array per column. psycopg's `executemany`
            sends one statement per row, and the catch-up spent most of its time waiting for
            their answers. Same transaction, same rows. An upsert's keys must be distinct (it
            cannot touch a row twice in one statement), which every read model's batch
            ensures. Other statements go row by row as before."""
            match = _INSERT_VALUES.fullmatch(sql)
            if match is None:
                cursor.executemany(self.sql(sql), rows)
                return
            table, alias, names, rest = match.group("table", "alias", "names", "rest")
            if not rest.strip():  # a plain insert: COPY, whose rows psycopg formats in C
                with cursor.copy(f"COPY {self.table(table)} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            columns = [name.strip() for name in names.split(",")]
            types = self._column_types(cursor, table)
            arrays = ", ".join(f"%s::{types[name]}[]" for name in columns)
            statement = self._unnest_cache.get(sql)
            if statement is None:
                statement = self._unnest_cache[sql] = (
                    f"INSERT INTO {self.table(table)}{alias or ''} ({names}) "
                    f"SELECT * FROM unnest({arrays}){self.sql(rest)}")
            cursor.execute(statement, [list(column) for column in zip(*rows, strict=True)])

        def _column_types(self, cursor: Any, table: str) -> dict[str, str]:
            """The table's column types (for the arrays' casts), read once, in the caller's
            own transaction."""
            types = self._types_cache.get(table)
            if types is None:
                cursor.execute("SELECT attname, format_type(atttypid, atttypmod) AS type "
                               "FROM pg_attribute WHERE attrelid = %s::regclass "
                               "AND attnum > 0 AND NOT attisdropped", (self.table(table),))
                types = self._types_cache[table] = {row["attname"]: row["type"]
                                                    for row in cursor.fetchall()}
            return types

        @contextmanager
        def transaction(self) -> Iterator[Tx]:
            with self.datastore.transaction(commit=True) as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                               (WRITE_LOCK_KEY, self.datastore.schema))
                yield Tx(self, cursor)

        def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(self.sql(sql), params)
                return [dict(row) for row in cursor.fetchall()]

        def position_in(self, cursor: Any, key: str) -> int:
            return self._max_tracking_id(key, cursor) or 0  # type: ignore[attr-defined]

        def insert_tracking_in(self, cursor: Any, tracking: Tracking) -> None:
            self._insert_tracking(cursor, tracking)

        def tracking_table_sql(self) -> str:
            return f'"{self.datastore.schema}".{self.tracking_table_name}'

        def refresh_statistics(self, tables: Sequence[str]) -> None:
            """`ANALYZE`: tables filled by one big COPY have no statistics until autovacuum
            comes by, and a keyset page of the audit trail (`position > ? ORDER BY position
            LIMIT n`) was then planned as a scan and sort of the whole range (24,700 →
            90,500 rows/s for the CSV export of 160,000 events once analyzed)."""
            with self.datastore.get_connection() as conn:
                for name in tables:
                    conn.execute(f"ANALYZE {self.table(name)}")

        def ensure_tables(self, statements: Sequence[str]) -> None:
            tables = [self.table(name) for name in _created_tables(statements)]
            tables.append(f'"{self.datastore.schema}".{self.tracking_table_name}')
            with self.datastore.get_connection() as conn:
                if self._all_exist(conn, tables):
                    return
                # Processes starting together take turns: CREATE TABLE races otherwise.
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))",
                             (WRITE_LOCK_KEY, self.datastore.schema))
                try:
                    if not self._all_exist(conn, tables):
                        self.create_table()  # the library's tracking table
                        with conn.transaction():
                            for statement in statements:
                                conn.execute(self.sql(statement))
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                                 (WRITE_LOCK_KEY, self.datastore.schema))

        @staticmethod
        def _all_exist(conn: Any, tables: list[str]) -> bool:
            row = conn.execute("SELECT bool_and(to_regclass(t) IS NOT NULL) AS ok "
                               "FROM unnest(%s::text[]) AS t", (tables,)).fetchone()
            return bool(row["ok"])
    _POSTGRES_STORE = PostgresReadModelStore
    return PostgresReadModelStore


_POSTGRES_STORE: type[ReadModelStore] | None = None


def __getattr__(name: str) -> Any:
    if name == "PostgresReadModelStore":
        return _postgres_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _created_tables(statements: Sequence[str]) -> list[str]:
    return re.findall(r"CREATE TABLE IF NOT EXISTS \{([a-z_]+)\}", " ".join(statements))


def open_store(app: Any) -> ReadModelStore:
    """The read-model store in the same database as the application's events."""
    recorder = app.recorder
    store: ReadModelStore
    if isinstance(recorder, SQLiteApplicationRecorder):
        store = SQLiteReadModelStore(recorder)
    elif _is_postgres(recorder):
        store = _postgres_store_class()(recorder)
    else:
        raise LedgerError("read models need a SQLite or PostgreSQL database (not memory://)")
    store.app_mapper = app.mapper
    store.app_repository = app.repository
    return store


def _is_postgres(recorder: Any) -> bool:
    postgres = sys.modules.get("eventsourcing.postgres")  # loaded by any PostgreSQL recorder
    return postgres is not None and isinstance(recorder, postgres.PostgresApplicationRecorder)


def query_tuples(store: ReadModelStore, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows of backend SQL (already expanded) as plain tuples: for reads that run at the speed
    of the database (verify, export), with no dict per row."""
    if store.kind == "postgres":
        from psycopg.rows import tuple_row

        # Binary results: a `bytea` (a stored event's state) comes as its bytes, not as hex
        # text twice its size for the client to parse.
        with store.datastore.get_connection() as conn, conn.transaction(force_rollback=True), \
                conn.cursor(binary=True, row_factory=tuple_row) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    with store.datastore.transaction(commit=False) as wrapper:
        cursor = wrapper.sqlite_cursor  # the library's wrapper around sqlite3's cursor
        cursor.row_factory = None
        cursor.execute(sql, params)
        return cursor.fetchall()  # type: ignore[no-any-return]
