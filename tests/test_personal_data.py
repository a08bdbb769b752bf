"""Issue 7 points 10 and 11 on SQLite and PostgreSQL: encryption at rest (LEDGER_CIPHER_KEY,
`ledger keygen`) and forgetting a contractor (`ledger forget-contractor`).

The raw bytes are searched where someone with the database would look: the SQLite file with
its WAL, and a `pg_dump` of the ledger's schema (a `bytea` shows there as hex, so both forms
are searched). Forgetting is also checked against someone who has the ledger's key: every
stored event and snapshot is decrypted with it and searched.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from base64 import b64decode
from decimal import Decimal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest

from ledger.application import Engagements, open_ledger
from ledger.commands import (LogNote, NoteMediation, OpenDispute, OpenEngagement, RecordInterview,
                             SubmitEvidence, SubmitWork)
from ledger.keyring import decrypt
from projections.runner import Projector

from cli_helpers import _LEDGER_ENV
from factories import CLIENT, CONTRACTOR, CURATOR, active_engagement, funded_milestone
from test_json_contract import assert_valid
from test_tamper_evidence import RawLog

NAME = "Zora Quuxley"
NOTE = "Mentioned a custody dispute 4711"
RED_FLAG = "Gap in employment 1999-2003 Q7"
DIARY = "Asked for leave: hospital visit 2207"
WORK = "Delivered from my home office in Leeds 3141"
EVIDENCE = "Screenshot of a private chat 0815"
MEDIATION = "Spoke to Zora about her health 6022"
ZORAS = (NAME, NOTE, RED_FLAG, DIARY, WORK, EVIDENCE, MEDIATION)
OTHER_NAME = "Northwind Devs"
OTHER_NOTE = "Northwind lead was sharp on scope 5150"


def ledger(url: str, actor: str | None, *args: str) -> tuple[int, str, str]:
    """`ledger --db URL [--as ACTOR] ARGS` through `ledger.cli.main`, in this process."""
    from ledger.cli import main

    argv = ["--db", url] + (["--as", actor] if actor else []) + list(args)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def ok(url: str, actor: str | None, *args: str) -> str:
    code, out, err = ledger(url, actor, *args)
    assert code == 0, err
    return out.strip()


def refused(url: str, actor: str | None, *args: str, code: int) -> str:
    got, out, err = ledger(url, actor, *args)
    assert got == code, (got, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledger: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _LEDGER_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def key(env: pytest.MonkeyPatch) -> str:
    return ok("sqlite:///unused.db", None, "keygen")


@contextlib.contextmanager
def opened(url: str) -> Iterator[Engagements]:
    app = open_ledger(url)
    try:
        yield app
    finally:
        app.close()


def record_story(url: str) -> dict[str, Any]:
    """Zora: interviewed, noted, work submitted, in a dispute with evidence and mediation; and
    another contractor with an interview note. Through the application service."""
    with opened(url) as app:
        zora = app.open_engagement(OpenEngagement.build(
            title="Data pipeline", client="Acme", contractor=NAME, curator="cara",
            budget="5000", currency="EUR"), CURATOR)
        app.execute(RecordInterview.build(engagement_id=zora, interviewer="cara",
                                          scores={"scope_understanding": 4},
                                          red_flags=[RED_FLAG], notes=NOTE, decision="hold"),
                    CURATOR)
        app.execute(LogNote.build(engagement_id=zora, text=DIARY), CURATOR)
        # Zora's second engagement, active, with money in escrow and a dispute.
        second = active_engagement(app, contractor=NAME.upper())  # one person, any case
        milestone = funded_milestone(app, second, amount="1200")
        app.execute(SubmitWork.build(engagement_id=second, milestone_id=milestone, note=WORK),
                    CONTRACTOR)
        dispute = app.execute(OpenDispute.build(engagement_id=second, milestone_id=milestone,
                                                party="client", reason="late and incomplete"),
                              CLIENT)
        app.execute(SubmitEvidence.build(engagement_id=second, dispute_id=dispute,
                                         party="contractor", description=EVIDENCE), CONTRACTOR)
        app.execute(NoteMediation.build(engagement_id=second, dispute_id=dispute,
                                        text=MEDIATION), CURATOR)
        other = app.open_engagement(OpenEngagement.build(
            title="Warehouse API", client="Acme", contractor=OTHER_NAME, curator="cara",
            budget="900", currency="EUR"), CURATOR)
        app.execute(RecordInterview.build(engagement_id=other, interviewer="cara",
                                          scores={"scope_understanding": 5}, notes=OTHER_NOTE,
                                          decision="hold"), CURATOR)
        for engagement_id in (zora, second, other):
            app.take_snapshot(engagement_id)  # snapshots are stored, and searched, too
        Projector(app).catch_up()
    return {"zora": zora, "second": second, "other": other}


def raw_bytes(url: str) -> bytes:
    """Everything the database holds for this ledger, as someone with its files would see it."""
    if url.startswith("sqlite:"):
        path = Path(url[len("sqlite:///"):])
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    dump = shutil.which("pg_dump")
    assert dump, "pg_dump is needed for this test"
    return subprocess.run(
        [dump, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
         "-U", parts.username or "postgres", "-n", schema, parts.path.lstrip("/")],
        capture_output=True, check=True, timeout=60).stdout


def holds(data: bytes, text: str) -> bool:
    raw = text.encode()
    return raw in data or raw.hex().encode() in data


def decrypted_with_ledger_key(url: str, key: str) -> bytes:
    """Every stored event and snapshot, decrypted with the ledger's key (what its holder sees)."""
    from eventsourcing.cipher import AESCipher
    from eventsourcing.utils import Environment

    log = RawLog(url)
    cipher = AESCipher(Environment(env={"CIPHER_KEY": key}))
    snapshots = "stored_snapshots" if log.sqlite else log.events.replace("_events", "_snapshots")
    states = [row[0] for table in (log.events, snapshots)
              for row in log.run(f"SELECT state FROM {table}")]
    assert states
    return b"\n".join(cipher.decrypt(bytes(state)) for state in states)


# Encryption at rest (point 10) --------------------------------------------------------


def test_keygen_prints_a_new_256_bit_key_each_time(env: pytest.MonkeyPatch) -> None:
    first, second = (ok("sqlite:///unused.db", None, "keygen") for _ in range(2))
    assert first != second
    assert len(b64decode(first, validate=True)) == 32
    assert not Path("unused.db").exists()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_stored_text_is_unreadable_in_the_database_only_with_encryption_on(
        db_url: str, env: pytest.MonkeyPatch, key: str, encrypted: bool) -> None:
    if encrypted:
        env.setenv("LEDGER_CIPHER_KEY", key)
    ids = record_story(db_url)
    data = raw_bytes(db_url)
    # (Names and red flags are also in read models, in the clear by design: the dashboard and
    # the contractor record list them. The event log and snapshots are what is encrypted.)
    for text in (NOTE, DIARY, WORK, EVIDENCE, MEDIATION, OTHER_NOTE):
        assert holds(data, text) is not encrypted, text
    # Whatever is stored, the ledger reads it back.
    shown = json.loads(ok(db_url, "curator:cara", "engagement", "show", str(ids["zora"]),
                          "--format", "json"))
    assert shown["contractor"] == NAME
    assert shown["interviews"][0]["notes"] == NOTE
    assert shown["interviews"][0]["red_flags"] == [RED_FLAG]


def test_an_encrypted_ledger_opens_only_with_its_own_key(
        db_url: str, env: pytest.MonkeyPatch, key: str) -> None:
    env.setenv("LEDGER_CIPHER_KEY", key)
    ids = record_story(db_url)
    show = ("engagement", "show", str(ids["zora"]))
    env.delenv("LEDGER_CIPHER_KEY")
    assert "this ledger is encrypted: set LEDGER_CIPHER_KEY" in refused(
        db_url, "curator:cara", *show, code=2)
    env.setenv("LEDGER_CIPHER_KEY", ok(db_url, None, "keygen"))
    assert "does not open this ledger" in refused(db_url, "curator:cara", *show, code=2)
    env.setenv("LEDGER_CIPHER_KEY", "bm90IGEga2V5")
    assert "ledger keygen" in refused(db_url, "curator:cara", *show, code=2)
    env.setenv("LEDGER_CIPHER_KEY", key)
    ok(db_url, "curator:cara", *show)


def test_a_plain_ledger_with_events_is_not_encrypted_half_way(
        sqlite_url: str, env: pytest.MonkeyPatch, key: str) -> None:
    ids = record_story(sqlite_url)
    env.setenv("LEDGER_CIPHER_KEY", key)
    assert "created without encryption" in refused(
        sqlite_url, "curator:cara", "engagement", "show", str(ids["zora"]), code=2)


def test_a_flipped_byte_fails_to_decrypt_with_a_clear_error(
        db_url: str, env: pytest.MonkeyPatch, key: str) -> None:
    env.setenv("LEDGER_CIPHER_KEY", key)
    ids = record_story(db_url)
    log = RawLog(db_url)
    where = "originator_id = ? AND originator_version = 2"
    (state,), = log.run(f"SELECT state FROM {log.events} WHERE {where}",
                        (ids["zora"].hex if log.sqlite else ids["zora"],))
    changed = bytearray(state)
    changed[len(changed) // 2] ^= 0x01
    log.run(f"UPDATE {log.events} SET state = ? WHERE {where}",
            (bytes(changed), ids["zora"].hex if log.sqlite else ids["zora"]))
    message = refused(db_url, "curator:cara", "history", str(ids["zora"]), code=3)
    assert "cannot be read" in message and "originator_version 2" in message
    assert "Cipher text is damaged" in message
    verify = refused(db_url, "auditor:ann", "audit", "verify", code=3)
    assert str(ids["zora"]) in verify


def test_two_events_with_their_encrypted_payloads_swapped_are_caught(
        db_url: str, env: pytest.MonkeyPatch, key: str) -> None:
    """Each payload still decrypts (the cipher does not bind it to its place); the chain does."""
    env.setenv("LEDGER_CIPHER_KEY", key)
    ids = record_story(db_url)
    log = RawLog(db_url)
    zora = ids["zora"].hex if log.sqlite else ids["zora"]
    rows = log.run(f"SELECT {log.position}, topic FROM {log.events} WHERE originator_id = ? "
                   "ORDER BY originator_version", (zora,))
    # Two events of one type would swap unnoticed by decoding: take the interview and the note.
    (first, _), (second, _) = rows[1], rows[2]
    states = {p: log.run(f"SELECT state FROM {log.events} WHERE {log.position} = ?", (p,))[0][0]
              for p in (first, second)}
    for position, other in ((first, second), (second, first)):
        log.run(f"UPDATE {log.events} SET state = ? WHERE {log.position} = ?",
                (bytes(states[other]), position))
    message = refused(db_url, "auditor:ann", "audit", "verify", code=3)
    assert str(first) in message or str(ids["zora"]) in message, message


# Forgetting a contractor (point 11) ---------------------------------------------------


def without_personal_text(value: Any) -> Any:
    """The engagement as shown, with her text (or its pseudonym) in place of each personal field."""
    if isinstance(value, dict):
        return {key: without_personal_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_personal_text(item) for item in value]
    if isinstance(value, str) and (value in ZORAS or value.upper() == NAME.upper()
                                   or value.startswith("[forgotten ")):
        return "<personal>"
    return value


def money_and_dates(url: str, engagement_id: UUID) -> dict[str, Any]:
    shown = json.loads(ok(url, "auditor:ann", "engagement", "show", str(engagement_id),
                          "--format", "json"))
    for moved in ("history", "version", "updated_at"):  # ContractorKeyDestroyed is one more event
        shown.pop(moved, None)
    return without_personal_text(shown)


def test_forgetting_a_contractor_shreds_their_text_everywhere_and_keeps_the_rest(
        db_url: str, env: pytest.MonkeyPatch, key: str, tmp_path: Path) -> None:
    env.setenv("LEDGER_CIPHER_KEY", key)
    ids = record_story(db_url)
    digest_before = ok(db_url, "auditor:ann", "audit", "digest")
    before = {name: money_and_dates(db_url, ids[name]) for name in ids}
    version_before = RawLog(db_url).head()
    replay_before = json.loads(ok(db_url, "auditor:ann", "replay", str(ids["second"]),
                                  "--version", "3", "--format", "json"))["state"]

    out = ok(db_url, "admin:ops", "forget-contractor", "zora QUUXLEY",
             "--reason", "erasure request 114")
    assert "2 of 2 engagement(s)" in out

    # Nowhere in the database, nor in what the ledger's own key decrypts.
    data = raw_bytes(db_url)
    decrypted = decrypted_with_ledger_key(db_url, key)
    for text in ZORAS:
        assert not holds(data, text), text
        assert not holds(decrypted, text), text
    assert not holds(decrypted, OTHER_NOTE)  # sealed too, under the other contractor's key

    # The ledger shows a pseudonym where her text was; money, dates and rules stand.
    shown = json.loads(ok(db_url, "curator:cara", "engagement", "show", str(ids["zora"]),
                          "--format", "json"))
    assert shown["contractor"].startswith("[forgotten ")
    assert shown["interviews"][0]["notes"] == shown["contractor"]
    after = {name: money_and_dates(db_url, ids[name]) for name in ids}
    assert RawLog(db_url).head() == version_before + 2  # ContractorKeyDestroyed on each of hers
    for name in ids:
        assert after[name] == before[name], name
    other = json.loads(ok(db_url, "curator:cara", "engagement", "show", str(ids["other"]),
                          "--format", "json"))
    assert other["contractor"] == OTHER_NAME and other["interviews"][0]["notes"] == OTHER_NOTE

    # Replay to a moment before the forgetting still works, with the pseudonym.
    replay = json.loads(ok(db_url, "auditor:ann", "replay", str(ids["second"]), "--version", "3",
                           "--format", "json"))["state"]
    assert replay["contractor"].startswith("[forgotten ")
    assert without_personal_text(replay) == without_personal_text(replay_before)

    # The audit chain still verifies, against a digest taken before.
    ok(db_url, "auditor:ann", "audit", "verify", "--digest", digest_before)
    history = ok(db_url, "auditor:ann", "history", str(ids["second"]))
    assert "ContractorKeyDestroyed" in history and "erasure request 114" in history
    rows = json.loads(ok(db_url, "auditor:ann", "history", str(ids["second"]), "--format", "json"))
    assert_valid("history", rows)
    assert rows[-1]["type"] == "ContractorKeyDestroyed" and rows[-1]["actor"] == "ops"

    # Later exports and the read models hold none of her text either.
    export = tmp_path / "after.jsonl"
    ok(db_url, "auditor:ann", "audit", "export", "--format", "jsonl", "--output", str(export))
    records = export.read_text()
    assert not any(text in records for text in ZORAS)
    contractors = ok(db_url, "auditor:ann", "engagement", "list")
    assert NAME not in contractors and OTHER_NAME in contractors

    # Nothing more can be recorded in her name, and she cannot be forgotten twice.
    assert "was forgotten" in refused(db_url, "curator:cara", "engagement", "note",
                                      str(ids["zora"]), "--text", "new", code=3)
    assert "no contractor named" in refused(db_url, "admin:ops", "forget-contractor", NAME,
                                            "--reason", "again", code=2)
    # The money and the rules go on: a new milestone is defined and funded on her engagement.
    with opened(db_url) as app:
        milestone = funded_milestone(app, ids["second"], amount="300")
        shown = app.engagement(ids["second"], CURATOR)
        assert shown.milestones[milestone].status == "funded"
        assert shown.funded - shown.released - shown.refunded == Decimal("1500")


def test_forgetting_is_refused_to_every_role_but_admin(
        sqlite_url: str, env: pytest.MonkeyPatch, key: str) -> None:
    env.setenv("LEDGER_CIPHER_KEY", key)
    record_story(sqlite_url)
    head = RawLog(sqlite_url).head()
    for actor in ("curator:cara", "client:acme", "contractor:zora", "auditor:ann"):
        message = refused(sqlite_url, actor, "forget-contractor", NAME, "--reason", "x", code=4)
        assert "may not" in message
    assert RawLog(sqlite_url).head() == head


def test_a_plain_ledger_cannot_forget(sqlite_url: str, env: pytest.MonkeyPatch) -> None:
    record_story(sqlite_url)
    head = RawLog(sqlite_url).head()
    message = refused(sqlite_url, "admin:ops", "forget-contractor", NAME, "--reason", "x", code=3)
    assert "not encrypted" in message
    assert RawLog(sqlite_url).head() == head


def test_personal_text_keeps_its_key_through_copies_and_pickles() -> None:
    import copy
    import pickle

    from ledger.personal_data import PersonalText, personal

    text = personal("Zora", "abc123")
    assert isinstance(text, PersonalText) and text == "Zora"
    for twin in (copy.deepcopy(text), copy.copy(text), pickle.loads(pickle.dumps(text))):
        assert twin == "Zora" and twin.subject == "abc123" and not twin.forgotten
    assert personal(["a", "b"], "k")[1].subject == "k"
    assert personal("plain", None) == "plain" and type(personal("plain", None)) is str


def test_a_contractors_key_does_not_open_another_contractors_text() -> None:
    from ledger.keyring import Keyring, encrypt

    keyring = Keyring(b"\x01" * 32)
    zora, other = keyring.subject_for("Zora"), keyring.subject_for("Other")
    assert keyring.subject_for("ZORA") == zora != other
    sealed = keyring.seal(zora, "secret")
    assert keyring.open(zora, sealed) == "secret"
    with pytest.raises(Exception, match="does not decrypt"):
        keyring.open(other, sealed)  # the subject is bound into the ciphertext
    with pytest.raises(ValueError):
        decrypt(b"\x02" * 32, encrypt(b"\x01" * 32, b"x", b"a"), b"a")


def test_an_encrypted_state_that_starts_like_json_is_embedded_as_base64() -> None:
    """One encrypted payload in 256 starts with "{": it must not be embedded as JSON text."""
    from projections.hash_chain import canonical_event

    state = b"{\xff\x00 not json at all }"
    record = json.loads(canonical_event(UUID(int=1), 3, "engagement-ledger:NoteLogged", state))
    assert record["state"].startswith("base64:")
    plain = json.loads(canonical_event(UUID(int=1), 3, "t", b'{"a":1}'))
    assert plain["state"] == {"a": 1}


def test_an_encrypted_log_exports_and_verifies_offline(
        sqlite_url: str, env: pytest.MonkeyPatch, key: str, tmp_path: Path) -> None:
    env.setenv("LEDGER_CIPHER_KEY", key)
    with opened(sqlite_url) as app:
        from ledger.demo import run_demo

        run_demo(app, count=40, seed=3, progress=False)  # ~1,000 events: some start with "{"
    export = tmp_path / "trail.jsonl"
    ok(sqlite_url, "auditor:ann", "audit", "export", "--format", "jsonl", "--output", str(export))
    env.delenv("LEDGER_CIPHER_KEY")  # an outsider with the file only
    assert "intact" in ok(sqlite_url, None, "audit", "verify", "--export", str(export))


def test_a_full_export_of_an_encrypted_ledger_restores_readable_with_its_key_only(
        db_url: str, env: pytest.MonkeyPatch, key: str, tmp_path: Path) -> None:
    env.setenv("LEDGER_CIPHER_KEY", key)
    ids = record_story(db_url)
    backup = tmp_path / "backup.jsonl"
    ok(db_url, "admin:ops", "audit", "export", "--format", "jsonl", "--output", str(backup))
    header = json.loads(backup.read_text().splitlines()[0])
    assert header["keys"]["check"] and len(header["keys"]["contractors"]) == 2  # Zora, Northwind
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    env.setenv("LEDGER_CIPHER_KEY", ok(target, None, "keygen"))
    assert "not the key" in refused(target, "admin:ops", "restore", str(backup), code=2)
    env.delenv("LEDGER_CIPHER_KEY")
    other = f"sqlite:///{tmp_path / 'plain.db'}"
    assert "encrypted ledger" in refused(other, "admin:ops", "restore", str(backup), code=2)
    env.setenv("LEDGER_CIPHER_KEY", key)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    ok(fresh, "admin:ops", "restore", str(backup))
    shown = json.loads(ok(fresh, "curator:cara", "engagement", "show", str(ids["zora"]),
                          "--format", "json"))
    assert shown["contractor"] == NAME and shown["interviews"][0]["notes"] == NOTE
    # After forgetting, a new backup no longer holds her key.
    ok(db_url, "admin:ops", "forget-contractor", NAME, "--reason", "erasure")
    ok(db_url, "admin:ops", "audit", "export", "--format", "jsonl", "--output", str(backup))
    assert len(json.loads(backup.read_text().splitlines()[0])["keys"]["contractors"]) == 1
