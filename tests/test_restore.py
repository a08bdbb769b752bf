"""`ledger restore FILE.jsonl --db NEW_URL` (issue 4): a full JSONL export is a verifiable backup.

The round trip goes across backends (SQLite to PostgreSQL and back); the restored database
shows the same engagements and verifies against the digest taken before the export. A backup
that does not hold up, or a target that is not empty, is refused with nothing written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.application import open_ledger
from tests.cli_helpers import expect_json, expect_ok, expect_refusal, run_ledger

ADMIN = "admin:ops"
AUDITOR = "auditor:ann"


@pytest.fixture(params=["sqlite-to-postgres", "postgres-to-sqlite"])
def source_and_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    sqlite = f"sqlite:///{tmp_path / 'ledger.db'}"
    postgres = request.getfixturevalue("postgres_url")
    if request.param == "sqlite-to-postgres":
        yield sqlite, postgres
    else:
        yield postgres, sqlite


def export(db_url: str, path: Path, *extra: str, actor: str = AUDITOR) -> Path:
    expect_ok(run_ledger(db_url, actor, "audit", "export", "--format", "jsonl",
                         "--output", str(path), *extra))
    return path


def event_count(db_url: str) -> int:
    app = open_ledger(db_url)
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


def test_a_restored_database_shows_the_same_and_verifies_against_the_same_digest(
        source_and_target: tuple[str, str], tmp_path: Path) -> None:
    source, target = source_and_target
    expect_ok(run_ledger(source, None, "demo", "--engagements", "8", "--seed", "11"))
    digest = expect_ok(run_ledger(source, AUDITOR, "audit", "digest")).stdout.strip()
    backup = export(source, tmp_path / "backup.jsonl")

    result = expect_ok(run_ledger(None, ADMIN, "restore", str(backup), "--db", target))
    assert digest.partition(":")[2] in result.stdout
    assert "restored" in result.stdout and " 8 engagements" in result.stdout

    verified = expect_ok(run_ledger(target, AUDITOR, "audit", "verify", "--digest", digest))
    assert "matches the head" in verified.stdout
    before = expect_json(run_ledger(source, AUDITOR, "engagement", "list", "--format", "json"))
    after = expect_json(run_ledger(target, AUDITOR, "engagement", "list", "--format", "json"))
    assert after == before
    some = before[0]["id"]
    assert (expect_json(run_ledger(target, AUDITOR, "engagement", "show", some, "--format", "json"))
            == expect_json(run_ledger(source, AUDITOR, "engagement", "show", some, "--format",
                                      "json")))
    # The restored ledger carries on: a new event follows the restored versions.
    expect_ok(run_ledger(target, "curator:cara", "engagement", "note", some,
                         "--text", "restored from backup"))
    expect_ok(run_ledger(target, AUDITOR, "audit", "verify", "--digest", digest))
    # And the restored database's own export is the same backup, line for line.
    again = events(export(target, tmp_path / "again.jsonl"))
    assert again[:-1] == events(backup) and again[-1]["type"] == "NoteLogged"


def events(path: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{key: value for key, value in row.items() if key != "position"}
            for row in rows if row.get("record") == "event"]


def rewrite(path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(change(lines)))
    return path


@pytest.fixture
def backup(sqlite_url: str, tmp_path: Path) -> Path:
    expect_ok(run_ledger(sqlite_url, None, "demo", "--engagements", "3", "--seed", "5"))
    return export(sqlite_url, tmp_path / "backup.jsonl")


def _tamper_state(lines: list[str]) -> list[str]:
    """Changes one stored event's bytes and leaves its recorded hash as it was."""
    record = json.loads(lines[5])
    record["stored_event"] = record["stored_event"].replace('"state":{', '"state":{"x":1,', 1)
    return [*lines[:5], json.dumps(record, sort_keys=True) + "\n", *lines[6:]]


@pytest.mark.parametrize("how, change, named", [
    ("a changed event", _tamper_state, "does not match its hash"),
    ("a dropped line", lambda lines: lines[:4] + lines[5:], "chain breaks"),
    ("two lines swapped", lambda lines: [*lines[:4], lines[5], lines[4], *lines[6:]],
     "chain breaks"),
    ("a cut-off file", lambda lines: lines[:-3], "no end record"),
])
def test_a_backup_that_does_not_hold_up_is_refused_and_nothing_is_written(
        backup: Path, tmp_path: Path, how: str, change, named: str) -> None:  # type: ignore[no-untyped-def]
    rewrite(backup, change)
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    message = expect_refusal(run_ledger(None, ADMIN, "restore", str(backup), "--db", target), 3)
    assert named in message, how
    assert event_count(target) == 0


def test_partial_and_redacted_exports_are_not_backups(sqlite_url: str, tmp_path: Path) -> None:
    expect_ok(run_ledger(sqlite_url, None, "demo", "--engagements", "3", "--seed", "5"))
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    partial = export(sqlite_url, tmp_path / "partial.jsonl", "--since", "2026-01-01")
    assert "partial export" in expect_refusal(
        run_ledger(None, ADMIN, "restore", str(partial), "--db", target), 2)
    redacted = export(sqlite_url, tmp_path / "redacted.jsonl", actor="contractor:kofi")
    assert "redacted" in expect_refusal(
        run_ledger(None, ADMIN, "restore", str(redacted), "--db", target), 2)
    assert event_count(target) == 0


def test_restore_needs_an_empty_target_and_an_admin(backup: Path, sqlite_url: str,
                                                    tmp_path: Path) -> None:
    before = event_count(sqlite_url)
    assert "already holds events" in expect_refusal(
        run_ledger(None, ADMIN, "restore", str(backup), "--db", sqlite_url), 2)
    assert event_count(sqlite_url) == before
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    expect_refusal(run_ledger(None, "curator:cara", "restore", str(backup), "--db", target), 4)
    expect_refusal(run_ledger(None, ADMIN, "restore", str(tmp_path / "none.jsonl"), "--db",
                              target), 2)
    assert event_count(target) == 0
