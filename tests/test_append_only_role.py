"""Issue 7 point 9: on PostgreSQL, a role that may append to the ledger's history but never
change it.

`ledger init --postgres-roles` (and docs/postgres-roles.sql, the same as a psql script) makes
`<prefix>_writer` and `<prefix>_projector`. Connected as a login role that holds the writer,
the command line records, reads and verifies as usual, and PostgreSQL itself refuses UPDATE,
DELETE and TRUNCATE on the events and snapshots. Roles are cluster-wide: each test makes its own
under a unique prefix and drops them after (the schema is the test's own, as everywhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from cli_helpers import _LEDGER_ENV, expect_ok, expect_refusal, run_ledger_in_process

pytestmark = pytest.mark.postgres

HISTORY = ("engagements_events", "engagements_snapshots")


def _connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url.split("?")[0], autocommit=True, connect_timeout=5)


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = f"{user}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass
class Roles:
    owner_url: str  # the test's schema, as the superuser that owns it
    schema: str
    prefix: str
    login: str  # a login role to hold the writer
    follower: str  # a login role to hold the projector

    @property
    def writer(self) -> str:
        return f"{self.prefix}_writer"

    @property
    def projector(self) -> str:
        return f"{self.prefix}_projector"

    def url_as(self, user: str) -> str:
        return _as_user(self.owner_url, user)


@pytest.fixture
def roles(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Roles]:
    for name in _LEDGER_ENV:
        monkeypatch.delenv(name, raising=False)
    prefix = f"t{os.getpid()}_{uuid.uuid4().hex[:8]}"
    schema = postgres_url.split("schema=")[1]
    found = Roles(postgres_url, schema, prefix, f"{prefix}_login", f"{prefix}_follower")
    with _connect(postgres_url) as conn:
        conn.execute(f'CREATE ROLE "{found.login}" LOGIN')
        conn.execute(f'CREATE ROLE "{found.follower}" LOGIN')
    try:
        yield found
    finally:
        with _connect(postgres_url) as conn:
            for role in (found.login, found.follower, found.writer, found.projector):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f'DROP OWNED BY "{role}"')  # its privileges in this database
                    conn.execute(f'DROP ROLE "{role}"')


def set_up_with_the_command_line(r: Roles) -> None:
    result = expect_ok(run_ledger_in_process(
        r.owner_url, "admin:ops", "init", "--postgres-roles", "--role-prefix", r.prefix,
        "--grant-to", r.login))
    assert f"{r.writer}: created (NOLOGIN)" in result.stdout
    assert f"{r.projector}: created (NOLOGIN)" in result.stdout
    assert f"granted {r.writer} to {r.login}" in result.stdout


def set_up_with_the_sql_script(r: Roles) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    expect_ok(run_ledger_in_process(r.owner_url, "admin:ops", "init"))
    expect_ok(run_ledger_in_process(r.owner_url, "admin:ops", "projections", "run"))
    script = os.path.join(os.path.dirname(__file__), "..", "docs", "postgres-roles.sql")
    subprocess.run([psql, "-X", "-q", r.owner_url.split("?")[0], "-v", f"schema={r.schema}",
                    "-v", f"prefix={r.prefix}", "-f", script], check=True, capture_output=True,
                   text=True, timeout=60)
    with _connect(r.owner_url) as conn:
        conn.execute(f'GRANT "{r.writer}" TO "{r.login}"')


def privileges(r: Roles, role: str) -> dict[str, set[str]]:
    with _connect(r.owner_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
            "unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE']) AS p "
            "WHERE n.nspname = %s AND c.relkind = 'r' "
            "AND has_table_privilege(%s, c.oid, p)", (r.schema, role)).fetchall()
    found: dict[str, set[str]] = {}
    for table, privilege in rows:
        found.setdefault(table, set()).add(privilege)
    return found


def stored_events(r: Roles) -> list[tuple[object, ...]]:
    with _connect(r.owner_url) as conn:
        return conn.execute(f'SELECT notification_id, originator_id, originator_version, topic, '
                            f'state FROM "{r.schema}".engagements_events '
                            f'ORDER BY notification_id').fetchall()


@pytest.mark.parametrize("set_up", [set_up_with_the_command_line, set_up_with_the_sql_script],
                         ids=["init --postgres-roles", "docs/postgres-roles.sql"])
def test_the_writer_records_through_the_ledger_but_postgres_refuses_changing_history(
        roles: Roles, set_up: object) -> None:
    import psycopg

    r = roles
    set_up(r)  # type: ignore[operator]
    as_writer = r.url_as(r.login)
    # The ledger works as usual for the writer: it appends, reads, catches the read models up.
    eid = expect_ok(run_ledger_in_process(
        as_writer, "curator:cara", "engagement", "open", "--title", "Pipeline", "--client",
        "Acme", "--contractor", "Bo", "--curator", "cara", "--budget", "1000",
        "--currency", "EUR")).stdout.strip()
    expect_ok(run_ledger_in_process(as_writer, "curator:cara", "engagement", "note", eid,
                                    "--text", "Kick-off on Monday"))
    expect_ok(run_ledger_in_process(as_writer, "curator:cara", "interview", "record", eid,
                                    "--interviewer", "cara", "--score", "qualifications=4",
                                    "--decision", "advance"))
    listed = expect_ok(run_ledger_in_process(as_writer, "auditor:ann", "engagement", "list",
                                             "--format", "json"))
    assert eid in listed.stdout
    expect_ok(run_ledger_in_process(as_writer, "auditor:ann", "audit", "verify"))
    before = stored_events(r)
    assert len(before) == 3

    # What PostgreSQL lets the writer do with the history: read and insert, nothing else.
    held = privileges(r, r.login)
    for table in HISTORY:
        assert held[table] == {"SELECT", "INSERT"}, (table, held[table])
    assert {"SELECT", "INSERT", "UPDATE", "DELETE"} <= held["rm_summary"]
    assert "TRUNCATE" not in held["rm_summary"]

    # And what it refuses, asked directly.
    refused = [f'UPDATE "{r.schema}".{t} SET topic = topic' for t in HISTORY]
    refused += [f'DELETE FROM "{r.schema}".{t}' for t in HISTORY]
    refused += [f'TRUNCATE "{r.schema}".{t}' for t in HISTORY]
    refused += [f'DROP TABLE "{r.schema}".{t}' for t in HISTORY]
    with _connect(as_writer) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{r.schema}".engagements_events'
                            ).fetchone()[0] == len(before)
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert stored_events(r) == before


def test_running_it_again_changes_nothing(roles: Roles) -> None:
    r = roles
    set_up_with_the_command_line(r)
    first = {role: privileges(r, role) for role in (r.writer, r.projector, r.login)}
    again = expect_ok(run_ledger_in_process(
        r.owner_url, "admin:ops", "init", "--postgres-roles", "--role-prefix", r.prefix,
        "--grant-to", r.login))
    assert f"{r.writer}: kept" in again.stdout and f"{r.projector}: kept" in again.stdout
    assert {role: privileges(r, role) for role in (r.writer, r.projector, r.login)} == first


def test_the_projector_keeps_read_models_but_cannot_append(roles: Roles) -> None:
    r = roles
    set_up_with_the_command_line(r)
    with _connect(r.owner_url) as conn:
        conn.execute(f'GRANT "{r.projector}" TO "{r.follower}"')
    expect_ok(run_ledger_in_process(
        r.url_as(r.login), "curator:cara", "engagement", "open", "--title", "Pipeline",
        "--client", "Acme", "--contractor", "Bo", "--curator", "cara", "--budget", "1000",
        "--currency", "EUR"))
    as_follower = r.url_as(r.follower)
    expect_ok(run_ledger_in_process(as_follower, "admin:follower", "projections", "run"))
    before = stored_events(r)
    message = expect_refusal(run_ledger_in_process(
        as_follower, "curator:cara", "engagement", "open", "--title", "Other", "--client",
        "Acme", "--contractor", "Bo", "--curator", "cara", "--budget", "1000",
        "--currency", "EUR"), 4)
    assert "PostgreSQL role" in message and "permission denied" in message
    assert stored_events(r) == before
    held = privileges(r, r.follower)
    for table in HISTORY:
        assert held[table] == {"SELECT"}


def test_postgres_roles_is_refused_on_sqlite_and_for_non_admins(roles: Roles, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    message = expect_refusal(run_ledger_in_process(url, "admin:ops", "init", "--postgres-roles"), 2)
    assert "PostgreSQL" in message
    assert not (tmp_path / "ledger.db").exists()
    expect_refusal(run_ledger_in_process(roles.owner_url, "curator:cara", "init",
                                         "--postgres-roles", "--role-prefix", roles.prefix), 4)
    with _connect(roles.owner_url) as conn:
        assert not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                (roles.writer,)).fetchone()
