"""Append-only on PostgreSQL: roles that may add to the ledger's history but never change it.

`ledger --as admin:ops init --postgres-roles` (run as the PostgreSQL user that owns the ledger's
tables, with the right to create roles) makes two roles per ledger schema, both `NOLOGIN`: they
hold privileges, and you `GRANT` them to the login roles of real people and services
(`--grant-to alice`), so passwords stay where PostgreSQL keeps them.

- `<prefix>_writer`: everything the command line does day to day. It reads every table, adds
  events, snapshots and contractor keys (INSERT and SELECT only on those), and keeps the read
  models (it is a member of the projector role, because a reading command catches the read
  models up first). It may not UPDATE, DELETE or TRUNCATE the events, the snapshots or the keys:
  changing history needs the owner. Events go in through `ledger_insert_events`, a
  `SECURITY DEFINER` function of the owner's that takes the library's table lock.
- `<prefix>_projector`: for a `projections run --follow` service. It reads the events, snapshots
  and keys, and reads and writes the derived tables (`rm_*`, `ledger_projection_tracking`),
  which can always be rebuilt from the events; it adds nothing to the history.

The prefix is `<database>_<schema>` unless `--role-prefix` names one. Running it again is
harmless: roles that exist are kept, and the privileges are set again to exactly these. Work
that changes or drops tables (`projections rebuild`, `forget-contractor`, `restore`) stays with
the owner. docs/postgres-roles.sql is the same as a psql script.
"""

from __future__ import annotations

import re
from typing import Any

from ledger.errors import InvalidInput, LedgerError

#: The history: appended to, never changed.
HISTORY_TABLES = ("engagements_events", "engagements_snapshots")
#: The contractors' keys (encrypted ledgers): added with new contractors, deleted only by
#: `forget-contractor`, which is the owner's.
KEYS_TABLE = "ledger_keys"
#: Derived data the projection runner rewrites: the tracking table and every `rm_*` table.
TRACKING_TABLE = "ledger_projection_tracking"
READ_MODEL_PREFIX = "rm_"
INSERT_FUNCTION = "ledger_insert_events"

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,49}$")


def role_prefix(database: Any, given: str | None) -> str:
    """`<database>_<schema>` in lower case, or the prefix given; at most 50 characters."""
    if given is not None:
        prefix = given.strip()
        if not _ROLE_NAME.fullmatch(prefix):
            raise InvalidInput(f"--role-prefix {given!r}: use 1-50 lower-case letters, digits "
                               "and _, not starting with a digit")
        return prefix
    prefix = re.sub(r"[^a-z0-9_]", "_", f"{database.env['POSTGRES_DBNAME']}_{database.schema}"
                    .lower())
    if not _ROLE_NAME.fullmatch(prefix):
        raise InvalidInput(f"role names from {prefix!r} would be too long or invalid: "
                           "give --role-prefix NAME (1-50 of a-z, 0-9, _)")
    return prefix


def role_names(prefix: str) -> tuple[str, str]:
    """(writer, projector)."""
    return f"{prefix}_writer", f"{prefix}_projector"


def grant_statements(schema: str, owner: str, writer: str, projector: str,
                     derived_tables: list[str], keys_table: bool,
                     insert_function_args: str) -> list[Any]:
    """The privileges, set to exactly these (REVOKE first, so a second run changes nothing)."""
    from psycopg.sql import SQL, Identifier

    s, w, p, o = (Identifier(x) for x in (schema, writer, projector, owner))

    def table(name: str) -> Any:
        return SQL("{}.{}").format(s, Identifier(name))

    history = SQL(", ").join(table(name) for name in HISTORY_TABLES)
    statements = [
        SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(s, p, w),
        SQL("GRANT {} TO {}").format(p, w),
        # Tables the owner makes later (a read model rebuilt under a new schema version) are
        # derived tables: the projector keeps them. The history is set explicitly below.
        SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}").format(o, s, p),
        SQL("REVOKE ALL ON {} FROM {}, {}").format(history, p, w),
        SQL("GRANT SELECT ON {} TO {}").format(history, p),
        SQL("GRANT SELECT, INSERT ON {} TO {}").format(history, w),
        # Appending goes through the owner's function (it takes the table lock); nobody else
        # may call it, so USAGE on a shared schema is not enough to append.
        SQL("REVOKE ALL ON FUNCTION {}.{}({}) FROM PUBLIC").format(
            s, Identifier(INSERT_FUNCTION), SQL(insert_function_args)),
        SQL("GRANT EXECUTE ON FUNCTION {}.{}({}) TO {}").format(
            s, Identifier(INSERT_FUNCTION), SQL(insert_function_args), w),
    ]
    if keys_table:
        keys = table(KEYS_TABLE)
        statements += [
            SQL("REVOKE ALL ON {} FROM {}, {}").format(keys, p, w),
            SQL("GRANT SELECT ON {} TO {}").format(keys, p),
            SQL("GRANT SELECT, INSERT ON {} TO {}").format(keys, w),
        ]
    for name in derived_tables:
        statements.append(SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
            table(name), p))
    return statements


def create_roles(app: Any, prefix_given: str | None = None,
                 grant_to: tuple[str, ...] = ()) -> list[str]:
    """Creates (or keeps) the writer and projector roles of the app's ledger schema, sets their
    privileges, grants the writer to each login role in `grant_to`; returns lines to print."""
    import psycopg
    from psycopg.sql import SQL, Identifier

    database = app.database
    if not database.is_postgres:
        raise InvalidInput("--postgres-roles needs a PostgreSQL database (--db postgresql://…)")
    prefix = role_prefix(database, prefix_given)
    writer, projector = role_names(prefix)
    schema = database.schema
    recorder = app.recorder
    try:
        with psycopg.connect(database.psycopg_conninfo(), autocommit=True,
                             connect_timeout=10) as conn:
            for login in grant_to:
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (login,)).fetchone():
                    raise InvalidInput(f"--grant-to {login!r}: PostgreSQL has no such role "
                                       "(CREATE ROLE it WITH LOGIN first)")
            # An older ledger may not have the insert function yet; the writer needs it.
            conn.execute(recorder.ledger_insert_function)
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = %s "
                                 "AND tablename = %s", (schema, HISTORY_TABLES[0])).fetchone()[0]
            created = []
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('ledger roles'))")
                for role in (projector, writer):
                    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                        (role,)).fetchone():
                        conn.execute(SQL("CREATE ROLE {} NOLOGIN").format(Identifier(role)))
                        created.append(role)
                derived = [row[0] for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s AND "
                    "(tablename LIKE 'rm\\_%%' OR tablename = %s) ORDER BY tablename",
                    (schema, TRACKING_TABLE))]
                keys = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                    (f'"{schema}".{KEYS_TABLE}',)).fetchone()[0]
                args = f'"{schema}".{recorder.stored_event_type_name}[]'
                for statement in grant_statements(schema, owner, writer, projector, derived,
                                                  keys, args):
                    conn.execute(statement)
                for login in grant_to:
                    conn.execute(SQL("GRANT {} TO {}").format(Identifier(writer),
                                                              Identifier(login)))
    except psycopg.Error as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LedgerError(f"PostgreSQL refused to set up the roles (run this as the owner of "
                          f"the ledger's tables, with CREATEROLE): {text}") from None
    lines = []
    for role, what in ((writer, "appends events and keeps the read models; may not change "
                                "or delete history"),
                       (projector, "reads events, keeps the read models")):
        state = "created" if role in created else "kept"
        lines.append(f"{role}: {state} (NOLOGIN): {what}")
    for login in grant_to:
        lines.append(f"granted {writer} to {login}")
    if not grant_to:
        lines.append(f"next: GRANT {writer} TO <login role>; for a follower service: "
                     f"GRANT {projector} TO <login role>")
    return lines
