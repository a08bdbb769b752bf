"""Audit export and verification against DESIGN section 8's audit bars, on SQLite.

    python -m bench.audit_memory [--small 74] [--large 7400] [--pdf-events 10000] [--readme]

- Peak memory (max RSS of a child `ledger audit export` process, one per format and size) for
  the log of `ledger demo --engagements SMALL` (about 2,000 events) against LARGE (about
  200,000): bar, the large within 30 MB of the small.
- CSV export throughput, in process, on the large log: bar at least 50,000 events/s.
- Verification throughput (`projections.audit.verify`, every stored event re-hashed against
  the trail) on the large log: bar at least 100,000 events/s; and, for information, the
  offline check of the JSONL export (`projections.export_verify`).
- The PDF of one engagement of PDF_EVENTS events against reportlab laying out a bare table of
  the same rows in the same run: bar at most 1.5 times.

Prints a Markdown table; `--readme` also appends it under a dated heading to bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUDITOR = "auditor:ann"
FORMATS = ("csv", "jsonl", "pdf")


@dataclass
class Row:
    what: str
    figure: str
    bar: str = ""
    held: bool | None = None

    def markdown(self) -> str:
        verdict = "" if self.held is None else ("held" if self.held else "**missed**")
        return f"| {self.what} | {self.figure} | {self.bar} | {verdict} |"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if k not in ("LEDGER_DATABASE_URL", "LEDGER_ACTOR", "LEDGER_CIPHER_KEY")}
    return {**keep, "PYTHONUNBUFFERED": "1"}


def run_child(args: list[str]) -> tuple[float, int, str]:
    """Runs one `ledger` process; returns seconds, its own peak RSS in MB (`VmHWM`, written by
    `bench.peak_rss_child` as it exits), and stdout."""
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        started = time.perf_counter()
        process = subprocess.run([sys.executable, "-m", "bench.peak_rss_child", str(peak_file),
                                  *args], capture_output=True, env=env(), cwd=ROOT)
        seconds = time.perf_counter() - started
        if process.returncode:
            raise SystemExit(f"`ledger {' '.join(args)}` failed:\n{process.stderr.decode()}")
        return seconds, int(peak_file.read_text()), process.stdout.decode()


def build(folder: Path, engagements: int) -> tuple[str, int, float, float]:
    """A demo log of `engagements`, its read models caught up: url, events, seconds each."""
    url = f"sqlite:///{folder / f'demo-{engagements}.db'}"
    demo_seconds, _, _ = run_child(["--db", url, "demo", "--engagements", str(engagements)])
    catch_up_seconds, _, out = run_child(["--db", url, "--as", AUDITOR, "audit", "digest"])
    return url, int(out.split(":")[0]), demo_seconds, catch_up_seconds


def open_models(url: str) -> Any:
    from ledger.application import open_ledger
    from ledger.roles import Actor
    from projections.queries import ReadModels

    return ReadModels(open_ledger(url), Actor.parse(AUDITOR))


def peak_memory(urls: dict[str, str], folder: Path) -> tuple[list[Row], dict[str, Any]]:
    rows, seen = [], {}
    for fmt in FORMATS:
        peaks = {}
        for size, url in urls.items():
            output = folder / f"{size}.{fmt}"
            seconds, peak, _ = run_child(["--db", url, "--as", AUDITOR, "audit", "export",
                                          "--format", fmt, "--output", str(output)])
            peaks[size] = peak
            seen[(fmt, size)] = (seconds, peak, output.stat().st_size)
            say(f"  {fmt} {size}: {peak} MB peak, {seconds:.1f} s, "
                f"{output.stat().st_size / 1e6:.1f} MB written")
        growth = peaks["large"] - peaks["small"]
        rows.append(Row(f"peak memory, `audit export --format {fmt}`: small → large",
                        f"{peaks['small']} → {peaks['large']} MB (+{growth} MB)",
                        "≤ +30 MB", growth <= 30))
    return rows, seen


def csv_throughput(url: str, events: int, folder: Path) -> Row:
    from projections.audit_export import export_audit

    models = open_models(url)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        export_audit(models, "csv", folder / "throughput.csv")
        best = max(best, events / (time.perf_counter() - started))
    models.app.close()
    return Row(f"CSV export, {events:,} events (best of 3, in process)", f"{best:,.0f} events/s",
               "≥ 50,000 events/s", best >= 50_000)


def verify_throughput(url: str, events: int, folder: Path) -> list[Row]:
    from projections.audit import verify
    from projections.audit_export import export_audit
    from projections.export_verify import verify_export

    models = open_models(url)
    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        report = verify(models.app, models.store)
        best = max(best, events / (time.perf_counter() - started))
        assert report.ok, report.problem
    export_audit(models, "jsonl", folder / "verify.jsonl")
    models.app.close()
    started = time.perf_counter()
    offline = verify_export(folder / "verify.jsonl")
    offline_rate = events / (time.perf_counter() - started)
    assert offline.ok, offline.problem
    return [Row(f"verify (`audit verify`), {events:,} events", f"{best:,.0f} events/s",
                "≥ 100,000 events/s", best >= 100_000),
            Row("offline check of the JSONL export (`audit verify --export`)",
                f"{offline_rate:,.0f} events/s", "(no bar)")]


def long_engagement(folder: Path, events: int) -> tuple[str, str, float]:
    """One engagement `events` long (opened, then curator notes), on SQLite."""
    import ledger.commands as commands
    from ledger.application import open_ledger
    from ledger.roles import Actor

    url = f"sqlite:///{folder / 'long.db'}"
    app = open_ledger(url)
    curator = Actor.parse("curator:cara")
    started = time.perf_counter()
    engagement = app.open_engagement(commands.OpenEngagement.build(
        title="Long engagement", client="Acme Corp", contractor="Bo Chen", curator="cara",
        budget="1000000", currency="EUR"), curator)
    for number in range(events - 1):
        app.execute(commands.LogNote.build(
            engagement_id=engagement,
            text=f"Curator relayed question {number} from the client to the contractor."),
            curator)
    seconds = time.perf_counter() - started
    app.close()
    return url, str(engagement), seconds


def pdf_against_bare_table(url: str, engagement: str, events: int, folder: Path) -> Row:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.platypus import SimpleDocTemplate, Table

    from projections.audit_export import export_audit

    models = open_models(url)
    rows = models.query("SELECT position, version, timestamp, actor, role, type, summary, hash "
                        "FROM {audit} WHERE engagement_id = ? ORDER BY version", (engagement,))
    started = time.perf_counter()
    export_audit(models, "pdf", folder / "long.pdf", engagement=engagement)
    ours = time.perf_counter() - started
    models.app.close()
    data = [["Position", "Ver.", "Recorded (UTC)", "Actor", "Event", "Summary", "Entry hash"]]
    data += [[str(r["position"]), str(r["version"]), r["timestamp"][:19],
              f"{r['role']}:{r['actor']}", r["type"], r["summary"][:60], r["hash"][:16]]
             for r in rows]
    started = time.perf_counter()
    doc = SimpleDocTemplate(io.BytesIO(), pagesize=landscape(A4))
    doc.build([Table(data, repeatRows=1)])
    bare = time.perf_counter() - started
    ratio = ours / bare
    return Row(f"PDF of one {events:,}-event engagement against a bare reportlab table of "
               "its rows", f"{ours:.2f} s against {bare:.2f} s: {ratio:.2f}×", "≤ 1.5×",
               ratio <= 1.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=74, help="demo engagements (≈2,000 events)")
    parser.add_argument("--large", type=int, default=7400,
                        help="demo engagements (≈200,000 events)")
    parser.add_argument("--pdf-events", type=int, default=10_000)
    parser.add_argument("--readme", action="store_true", help="append to bench/README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as name:
        folder = Path(name)
        urls, sizes, notes = {}, {}, []
        for size, engagements in (("small", args.small), ("large", args.large)):
            say(f"building {size}: ledger demo --engagements {engagements}")
            urls[size], sizes[size], demo_s, catch_s = build(folder, engagements)
            notes.append(f"{size}: `ledger demo --engagements {engagements}` wrote "
                         f"{sizes[size]:,} events in {demo_s:.1f} s; the read models caught up "
                         f"in {catch_s:.1f} s more")
        say("peak memory, a child process per format and size")
        rows, seen = peak_memory(urls, folder)
        say("CSV export throughput")
        rows.append(csv_throughput(urls["large"], sizes["large"], folder))
        say("verification throughput")
        rows += verify_throughput(urls["large"], sizes["large"], folder)
        say(f"one {args.pdf_events:,}-event engagement")
        long_url, engagement, long_s = long_engagement(folder, args.pdf_events)
        notes.append(f"the {args.pdf_events:,}-event engagement took {long_s:.1f} s to record "
                     "through the command path (opened, then curator notes)")
        rows.append(pdf_against_bare_table(long_url, engagement, args.pdf_events, folder))
    for fmt in FORMATS:
        seconds, _, written = seen[(fmt, "large")]
        notes.append(f"`audit export --format {fmt}` of {sizes['large']:,} events: "
                     f"{seconds:.1f} s for the whole process, {written / 1e6:.0f} MB written")
    table = "\n".join(["| measure | figure | bar | |", "|---|---:|---|---|"]
                      + [row.markdown() for row in rows])
    day = datetime.now(UTC).date().isoformat()
    machine = (f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite "
               f"{__import__('sqlite3').sqlite_version}")
    text = (f"\n## Audit export and verification ({day})\n\n`python -m bench.audit_memory` on "
            f"{machine}.\n\n{table}\n\n" + "\n".join(f"- {note}" for note in notes) + "\n")
    print(text)
    if args.readme:
        with (ROOT / "bench" / "README.md").open("a", encoding="utf-8") as readme:
            readme.write(text)


if __name__ == "__main__":
    main()
