"""Shared fixtures: actors, an in-memory ledger, and database URLs for SQLite and PostgreSQL.

PostgreSQL tests use `LEDGER_TEST_POSTGRES_URL`; each test gets its own schema, dropped after.
With `CI` set, a missing or unreachable server fails those tests instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.application import Engagements, open_ledger
from ledger.roles import Actor

POSTGRES_ENV = "LEDGER_TEST_POSTGRES_URL"


@pytest.fixture
def curator() -> Actor:
    return Actor.parse("curator:cara")


@pytest.fixture
def client() -> Actor:
    return Actor.parse("client:acme")


@pytest.fixture
def contractor() -> Actor:
    return Actor.parse("contractor:bo")


@pytest.fixture
def auditor() -> Actor:
    return Actor.parse("auditor:ann")


@pytest.fixture
def admin() -> Actor:
    return Actor.parse("admin:root")


@pytest.fixture
def app() -> Iterator[Engagements]:
    """A ledger kept in memory: fast, for domain and application tests."""
    ledger = open_ledger("memory://")
    yield ledger
    ledger.close()


def _postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set, and CI must run the PostgreSQL tests")
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return url


def _admin_connect(base_url: str):  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(base_url.split("?")[0], autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {base_url} cannot be reached: {error}")
        pytest.skip(f"PostgreSQL at {base_url} cannot be reached")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of its own, dropped when the test ends."""
    base = _postgres_base_url()
    schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with _admin_connect(base) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}schema={schema}"
    with _admin_connect(base) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
