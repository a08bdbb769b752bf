"""`ledger audit export` (CSV, JSONL, Markdown, PDF) and offline verification of a JSONL export.

On SQLite and PostgreSQL: each format read back holds every entry of its range in order;
engagement and time ranges are contiguous runs of their chain; a JSONL export verifies offline
(`ledger audit verify --export`, no --db or --as; and the standard-library script in docs/),
and a changed, dropped, reordered, duplicated or garbled line fails naming it; a digest saved
before more events were appended verifies as a prefix; a contractor's export is redacted; bad
input is one line, exit 2, and no file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.audit_export import FIELDS, export_audit, md_cell
from tests.cli_helpers import expect_ok, expect_refusal, run_ledger

AUDITOR = "auditor:ann"
CURATOR = "curator:cara"
CONTRACTOR = "contractor:bo"
SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "verify_export.py"


@pytest.fixture
def filled(db_url: str) -> str:
    expect_ok(run_ledger(db_url, None, "demo", "--engagements", "6", "--seed", "4"))
    return db_url


@pytest.fixture
def models(filled: str) -> Iterator[Any]:
    from ledger.application import open_ledger
    from ledger.roles import Actor
    from projections.queries import ReadModels

    app = open_ledger(filled)
    try:
        yield ReadModels(app, Actor.parse(AUDITOR))
    finally:
        app.close()


def trail(models: Any) -> list[dict[str, Any]]:
    return models.query("SELECT * FROM {audit} ORDER BY position")


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def verify_cli(path: Path, *digest: str) -> subprocess.CompletedProcess[str]:
    args = ["audit", "verify", "--export", str(path)]
    if digest:
        args += ["--digest", digest[0]]
    return run_ledger(None, None, *args)


# Every format holds every entry, in order ---------------------------------------------


def test_csv_and_jsonl_hold_every_entry_in_log_order(models: Any, tmp_path: Path) -> None:
    from projections.hash_chain import canonical_event

    entries = trail(models)
    result = export_audit(models, "csv", tmp_path / "trail.csv")
    head = models.query("SELECT position, hash FROM {audit} ORDER BY position DESC LIMIT 1")[0]
    assert (result.entries, result.digest) == (len(entries), f"{head['position']}:{head['hash']}")
    with (tmp_path / "trail.csv").open(newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == list(FIELDS)
    assert rows[1:] == [[str(e[name]) for name in FIELDS] for e in entries]

    export_audit(models, "jsonl", tmp_path / "trail.jsonl")
    lines = (tmp_path / "trail.jsonl").read_text(encoding="utf-8").splitlines()
    header, *events, end = [json.loads(line) for line in lines]
    assert header["record"] == "header" and header["chain"] == "log"
    assert header["digest"] == result.digest and header["redacted"] is False
    assert header["range"] == {"engagement": None, "since": None, "until": None}
    assert [e["position"] for e in events] == [e["position"] for e in entries]
    for line in lines:  # sorted keys, compact separators
        assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False)
    for event, entry in zip(events, entries, strict=True):
        assert {name: event[name] for name in FIELDS} == {name: entry[name] for name in FIELDS}
    # stored_event is the stored bytes' canonical JSON, exactly.
    stored = {n.id: n for n in models.app.recorder.select_notifications(start=1, limit=1000)}
    for event in events:
        n = stored[event["position"]]
        assert event["stored_event"].encode() == canonical_event(
            n.originator_id, n.originator_version, n.topic, n.state)
        assert hashlib.sha256(event["stored_event"].encode()).hexdigest() == event["event_sha256"]
    assert end == {"record": "end", "entries": len(entries), "last_hash": entries[-1]["hash"]}


def test_markdown_holds_every_entry_per_engagement_in_order(models: Any, tmp_path: Path) -> None:
    entries = trail(models)
    export_audit(models, "md", tmp_path / "trail.md")
    text = (tmp_path / "trail.md").read_text(encoding="utf-8")
    assert text.startswith("# Audit trail export\n")
    digest = export_audit(models, "csv", tmp_path / "x.csv").digest
    assert f"`{digest}`" in text
    sections = re.split(r"\n## (?!Engagements covered)", text)[1:]
    engagements = list(dict.fromkeys(e["engagement_id"] for e in entries))
    assert len(sections) == len(engagements)
    for section, engagement in zip(sections, engagements, strict=True):
        assert f"`{engagement}`" in section.splitlines()[0]
        rows = [line for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
        expected = [e for e in entries if e["engagement_id"] == engagement]
        assert rows == [
            f"| {e['position']} | {e['version']} | {e['timestamp']} | {e['role']}:{e['actor']} | "
            f"{e['type']} | {md_cell(e['summary'])} | `{e['hash']}` |" for e in expected]


def test_markdown_cells_escape_pipes_and_keep_one_line() -> None:
    assert md_cell("a | b\nc") == "a \\| b<br>c"
    assert md_cell(None) == ""


def test_pdf_holds_every_entry_with_its_engagement_and_digest(models: Any, tmp_path: Path) -> None:
    from pypdf import PdfReader

    entries = trail(models)
    result = export_audit(models, "pdf", tmp_path / "trail.pdf")
    reader = PdfReader(tmp_path / "trail.pdf")
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages)
    assert "Audit trail export" in pages[0] and result.digest in pages[0]
    assert all(result.digest in page and f"page {n}" in page for n, page in enumerate(pages, 1))
    flat = re.sub(r"\s+", "", text)
    cursor = 0
    for engagement in dict.fromkeys(e["engagement_id"] for e in entries):
        cursor = flat.index(f"Engagement{engagement}", cursor)  # its section, in log order
        for e in (e for e in entries if e["engagement_id"] == engagement):
            # Each row: position, version, time, actor, type, ... hash prefix, in version order.
            row = f"{e['position']}{e['version']}{e['timestamp'][:10]}"
            cursor = flat.index(row, cursor)
            assert flat.index(e["hash"][:16], cursor) > cursor
            assert e["type"] in flat[cursor:flat.index(e["hash"][:16], cursor)]
    assert "Client" in text and "Agreements" in text and "Timeline" in text


def test_pdf_of_one_engagement_shows_its_parties_money_and_disputes(models: Any,
                                                                    tmp_path: Path) -> None:
    from pypdf import PdfReader

    disputed = models.query("SELECT engagement_id FROM {audit} WHERE type = 'DisputeOpened' "
                            "ORDER BY position LIMIT 1")
    engagement = (disputed or trail(models))[0]["engagement_id"]
    result = export_audit(models, "pdf", tmp_path / "one.pdf", engagement=engagement)
    count = models.query("SELECT COUNT(*) AS n FROM {audit} WHERE engagement_id = ?",
                         (engagement,))[0]["n"]
    assert result.entries == count
    text = " ".join(page.extract_text() for page in PdfReader(tmp_path / "one.pdf").pages)
    summary = models.query("SELECT * FROM {summary} WHERE engagement_id = ?", (engagement,))[0]
    for fact in (summary["client"], summary["contractor"], summary["curator"], "Money",
                 "funded", "escrow"):
        assert fact in text
    if disputed:
        assert "Dispute D1" in text


# Ranges -------------------------------------------------------------------------------


def test_an_engagement_export_is_its_whole_chain_and_verifies_on_its_own(
        models: Any, tmp_path: Path) -> None:
    entries = trail(models)
    engagement = entries[-1]["engagement_id"]
    mine = [e for e in entries if e["engagement_id"] == engagement]
    export_audit(models, "jsonl", tmp_path / "one.jsonl", engagement=engagement.upper())
    header, *events, end = jsonl(tmp_path / "one.jsonl")
    assert header["chain"] == "engagement" and header["range"]["engagement"] == engagement
    assert [e["version"] for e in events] == list(range(1, len(mine) + 1))
    assert [e["position"] for e in events] == [e["position"] for e in mine]
    assert end["last_hash"] == mine[-1]["engagement_hash"]
    message = expect_ok(verify_cli(tmp_path / "one.jsonl")).stdout
    assert f"export intact: {len(mine)} entries" in message and "engagement's chain" in message


def test_a_time_range_is_the_contiguous_run_from_its_first_to_its_last_entry(
        models: Any, tmp_path: Path) -> None:
    entries = trail(models)
    days = sorted({e["timestamp"][:10] for e in entries})
    since, until = days[len(days) // 3], days[2 * len(days) // 3]
    inside = [e for e in entries if since <= e["timestamp"][:10] <= until]
    assert inside and len(inside) < len(entries)
    result = export_audit(models, "jsonl", tmp_path / "range.jsonl", since=since, until=until)
    header, *events, _ = jsonl(tmp_path / "range.jsonl")
    assert header["range"] == {"engagement": None, "since": f"{since}T00:00:00.000000Z",
                               "until": f"{until}T23:59:59.999999Z"}
    low, high = inside[0]["position"], inside[-1]["position"]
    assert [e["position"] for e in events] == [e["position"] for e in entries
                                               if low <= e["position"] <= high]
    assert result.entries == len(events)
    assert {e["position"] for e in inside} <= {e["position"] for e in events}
    message = expect_ok(verify_cli(tmp_path / "range.jsonl")).stdout
    if low > 1:
        assert "anchored at its first prev_hash" in message

    # With a time, and within one engagement: the run of that engagement's versions.
    engagement = inside[0]["engagement_id"]
    moment = inside[0]["timestamp"]
    export_audit(models, "csv", tmp_path / "one.csv", engagement=engagement, since=moment)
    with (tmp_path / "one.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    expected = [e for e in entries if e["engagement_id"] == engagement and e["timestamp"] >= moment]
    assert [int(r["version"]) for r in rows] == [e["version"] for e in expected]


def test_an_empty_range_writes_an_empty_export_that_verifies(models: Any, tmp_path: Path) -> None:
    result = export_audit(models, "jsonl", tmp_path / "none.jsonl", since="2199-01-01")
    assert result.entries == 0
    _, end = jsonl(tmp_path / "none.jsonl")
    assert end == {"record": "end", "entries": 0, "last_hash": None}
    expect_ok(verify_cli(tmp_path / "none.jsonl"))


# Offline verification -----------------------------------------------------------------


def test_a_jsonl_export_verifies_offline_and_any_tampering_is_named(filled: str,
                                                                   tmp_path: Path) -> None:
    good = tmp_path / "trail.jsonl"
    out = expect_ok(run_ledger(filled, AUDITOR, "audit", "export", "--format", "jsonl",
                               "--output", str(good))).stdout
    digest = expect_ok(run_ledger(filled, AUDITOR, "audit", "digest")).stdout.strip()
    assert out.strip().endswith(f"digest {digest}") and str(good) in out
    assert len(out.strip().splitlines()) == 1
    message = expect_ok(verify_cli(good, digest)).stdout
    assert "export intact" in message and "the digest matches the last entry" in message
    lines = good.read_text(encoding="utf-8").splitlines(keepends=True)

    def tampered(name: str, new_lines: list[str]) -> Path:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(new_lines), encoding="utf-8")
        return path

    # An amount changed inside a stored event (still valid JSON).
    funded = next(i for i, line in enumerate(lines) if '"type":"MilestoneFunded"' in line)
    position = json.loads(lines[funded])["position"]
    record = json.loads(lines[funded])
    record["stored_event"] = re.sub(r'("amount":\{"_type_":"decimal_str","_data_":")(\d)',
                                    r"\g<1>9\2", record["stored_event"], count=1)
    assert record["stored_event"] != json.loads(lines[funded])["stored_event"]
    changed = lines.copy()
    changed[funded] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    cases = {
        "changed": (changed, funded + 1, position, "does not match its event_sha256"),
        "dropped": (lines[:10] + lines[11:], 11, json.loads(lines[11])["position"],
                    "chain breaks here"),
        "reordered": (lines[:10] + [lines[11], lines[10]] + lines[12:], 11,
                      json.loads(lines[11])["position"], ""),
        "duplicated": (lines[:10] + [lines[9]] + lines[10:], 11,
                       json.loads(lines[9])["position"], "repeats position"),
        "garbled": (lines[:5] + [lines[5][:40] + "\n"] + lines[6:], 6, None, "not JSON"),
    }
    for name, (new_lines, line_number, at, words) in cases.items():
        message = expect_refusal(verify_cli(tampered(name, new_lines)), 3)
        assert f"line {line_number} " in message, (name, message)
        if at is not None:
            assert f"position {at}" in message, (name, message)
        assert words in message, (name, message)

    # The actor named on an entry must be the stored event's.
    record = json.loads(lines[3])
    record["actor"] = "someone-else"
    message = expect_refusal(verify_cli(tampered("actor", lines[:3] + [
        json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"] + lines[4:])), 3)
    assert "line 4 " in message and "actor says 'someone-else'" in message
    # A cut-short file and a wrong digest fail too; a missing file is bad input.
    assert "cut short" in expect_refusal(verify_cli(tampered("cut", lines[:-1])), 3)
    assert "matches no entry" in expect_refusal(verify_cli(good, "3:" + "ab" * 32), 3)
    assert "no file" in expect_refusal(verify_cli(tmp_path / "missing.jsonl"), 2)


def test_a_digest_saved_before_more_events_verifies_as_a_prefix(filled: str,
                                                                tmp_path: Path) -> None:
    earlier = expect_ok(run_ledger(filled, AUDITOR, "audit", "digest")).stdout.strip()
    engagement = json.loads(expect_ok(run_ledger(filled, AUDITOR, "engagement", "list",
                                                 "--format", "json")).stdout)[0]["id"]
    expect_ok(run_ledger(filled, CURATOR, "engagement", "note", engagement, "--text", "later"))
    path = tmp_path / "later.jsonl"
    expect_ok(run_ledger(filled, AUDITOR, "audit", "export", "--format", "jsonl", "--output",
                         str(path)))
    message = expect_ok(verify_cli(path, earlier)).stdout
    assert f"the digest matches a prefix ending at position {earlier.split(':')[0]}" in message


def test_the_standard_library_script_in_the_docs_verifies_an_export(models: Any,
                                                                    tmp_path: Path) -> None:
    good = tmp_path / "trail.jsonl"
    result = export_audit(models, "jsonl", good)

    def script(path: Path, *digest: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", str(SCRIPT), str(path), *digest],
                              capture_output=True, text=True, check=False)

    ok = script(good, result.digest)
    assert ok.returncode == 0 and ok.stdout.strip() == "export intact", ok
    lines = good.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "dropped.jsonl").write_text("".join(lines[:7] + lines[8:]), encoding="utf-8")
    bad = script(tmp_path / "dropped.jsonl")
    assert bad.returncode == 1 and "line 8 " in bad.stdout and "chain breaks" in bad.stdout
    other = script(good, "1:" + "cd" * 32)
    assert other.returncode == 1 and "digest" in other.stdout


# Roles, input and the file ------------------------------------------------------------


def test_a_contractor_gets_a_redacted_export(filled: str, tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    expect_ok(run_ledger(filled, CONTRACTOR, "audit", "export", "--format", "jsonl",
                         "--output", str(path)))
    header, *events, _ = jsonl(path)
    assert header["redacted"] is True
    assert all(e["stored_event"] is None for e in events)
    interviews = [e for e in events if e["type"] == "InterviewRecorded"]
    assert interviews and all(re.fullmatch(r"interview I\d+ recorded", e["summary"])
                              for e in interviews)
    message = expect_ok(verify_cli(path)).stdout
    assert "redacted" in message
    pdf = tmp_path / "mine.pdf"
    expect_ok(run_ledger(filled, CONTRACTOR, "audit", "export", "--format", "pdf",
                         "--output", str(pdf)))
    from pypdf import PdfReader

    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "redacted for a contractor" in text and "withheld from contractors" in text
    assert "Red flags" not in text


@pytest.mark.parametrize("args, words", [
    (("--since", "2026-13-01"), "since"),
    (("--until", "last tuesday"), "until"),
    (("--since", "2026-10-02", "--until", "2026-10-01"), "after"),
    (("--engagement", "not-a-uuid"), "not an engagement id"),
    (("--engagement", "00000000-0000-0000-0000-000000000000"), "no engagement"),
    (("--format", "xlsx"), "xlsx"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(sqlite_url: str, tmp_path: Path,
                                                  args: tuple[str, ...], words: str) -> None:
    expect_ok(run_ledger(sqlite_url, None, "demo", "--engagements", "2"))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["audit", "export", "--output", str(out / "trail.csv")]
    if "--format" not in args:
        argv += ["--format", "csv"]
    message = expect_refusal(run_ledger(sqlite_url, AUDITOR, *argv, *args), 2)
    assert words in message
    assert list(out.iterdir()) == []


def test_a_missing_folder_is_bad_input(models: Any, filled: str, tmp_path: Path) -> None:
    from ledger.errors import InvalidInput

    message = expect_refusal(run_ledger(filled, AUDITOR, "audit", "export", "--format", "pdf",
                                        "--output", str(tmp_path / "nowhere" / "a.pdf")), 2)
    assert "does not exist" in message
    with pytest.raises(InvalidInput, match="is a folder"):
        export_audit(models, "csv", tmp_path)
    assert not (tmp_path / "nowhere").exists()


def test_an_interrupted_export_leaves_the_old_file_and_nothing_else(models: Any,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "trail.jsonl"
    target.write_text("the previous export\n")

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    for fmt in ("csv", "jsonl", "md", "pdf"):
        with pytest.raises(KeyboardInterrupt):
            export_audit(models, fmt, target, progress=interrupt)
    assert target.read_text() == "the previous export\n"
    assert sorted(p.name for p in folder.iterdir()) == ["trail.jsonl"]


def test_progress_is_reported_up_to_the_total(models: Any, tmp_path: Path) -> None:
    for fmt in ("csv", "jsonl", "md", "pdf"):
        seen: list[tuple[int, int]] = []
        result = export_audit(models, fmt, tmp_path / f"t.{fmt}",
                              progress=lambda done, total: seen.append((done, total)))
        assert seen and seen[-1] == (result.entries, result.entries), fmt


def test_the_script_shown_in_docs_audit_md_is_the_one_tested() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    page = (SCRIPT.parent / "audit.md").read_text(encoding="utf-8")
    assert script[script.index("import hashlib"):] in page
