"""Audit: verify rate, CSV export rate and peak memory of exports (2,000 and 200,000 events),
and the PDF of one 10,000-event engagement beside reportlab laying out a bare table of the
same rows in the same run.

Verify and CSV rates and the exports' peak memory are measured by `bench/audit_memory.py`
(written with the export itself; peak memory is the peak RSS of a `ledger audit export`
process per format, on the run's demo log and on a 74-engagement log), on this run's databases
and backend; this module adds their baselines (reading the log; a bare `SELECT` + `csv.writer`)
and the PDF. It calls `audit_memory.peak_memory`, `csv_throughput` and `verify_throughput`:
a change to those is a crash here, which CI reports.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import Any

from bench.bulk import SEED, demo_dataset
from bench.common import Backend, Result, Sizes, quiet_stderr

VERIFY_BAR = 100_000
CSV_BAR = 50_000
MEMORY_BAR_MB = 30.0
PDF_BAR = 1.5
#: Demo engagements average about 27 events: 74 make about 2,000. Quick runs compare 20
#: engagements with 74 (the bars' 2,000 and 200,000 are the full run's).
SMALL_EXPORT_ENGAGEMENTS = 74
QUICK_EXPORT_ENGAGEMENTS = (20, 74)


def caught_up(url: str) -> None:
    from ledger.application import open_ledger
    from projections.runner import Projector

    app = open_ledger(url)
    try:
        Projector(app).catch_up()
    finally:
        app.close()


# Verify, CSV, memory (bench/audit_memory.py) -------------------------------------------


def rates_and_memory(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    """Verify and CSV rates and each format's export peak memory, measured by
    `bench.audit_memory` on this run's databases, beside this suite's baselines."""
    from bench import audit_memory
    from ledger.application import open_ledger
    from projections.store import open_store

    folder = backend.folder / f"audit-{backend.name}"
    folder.mkdir(exist_ok=True)
    if sizes.quick:
        small_url, small_events = _small_ledger(backend, QUICK_EXPORT_ENGAGEMENTS[0])
        large_url, events = _small_ledger(backend, QUICK_EXPORT_ENGAGEMENTS[1])
    else:
        demo = demo_dataset(backend, sizes, context)
        if not demo.get("projected"):
            caught_up(demo["url"])
            demo["projected"] = True
        small_url, small_events = _small_ledger(backend, SMALL_EXPORT_ENGAGEMENTS)
        large_url, events = demo["url"], demo["events"]
    app = open_ledger(large_url)
    try:
        store = open_store(app)
        read_rate = _read_rate(app)
        bare_csv = _bare_csv_rate(store, folder / "bare.csv")
    finally:
        app.close()
    _, seen = audit_memory.peak_memory({"small": small_url, "large": large_url}, folder)
    csv_row = audit_memory.csv_throughput(large_url, events, folder)
    verify_row, offline_row = audit_memory.verify_throughput(large_url, events, folder)[:2]
    verify_rate, csv_rate = _rate(verify_row), _rate(csv_row)
    name = backend.name
    results = [
        Result(backend=name, name="audit verify", figure=verify_rate, unit="events/s",
               baseline=read_rate, baseline_unit="events/s",
               baseline_what="library select_notifications, read only",
               ratio=verify_rate / read_rate, bar=f"≥ {VERIFY_BAR:,} events/s",
               held=verify_rate >= VERIFY_BAR,
               details={"events": events, "measured_by": "bench.audit_memory (best of 2)",
                        "offline_jsonl_check": offline_row.figure}),
        Result(backend=name, name="audit CSV export", figure=csv_rate, unit="events/s",
               baseline=bare_csv, baseline_unit="events/s",
               baseline_what="SELECT of the trail + csv.writer",
               ratio=csv_rate / bare_csv, bar=f"≥ {CSV_BAR:,} events/s",
               held=csv_rate >= CSV_BAR,
               details={"events": events, "measured_by": "bench.audit_memory (best of 3)"}),
    ]
    for fmt in sorted({f for f, _ in seen}):
        small_s, small_mb, _ = seen[(fmt, "small")]
        large_s, large_mb, written = seen[(fmt, "large")]
        results.append(Result(
            backend=name, name=f"audit export peak RSS ({fmt}), {events:,} events",
            figure=large_mb, unit="MB", baseline=small_mb, baseline_unit="MB",
            baseline_what=f"same export of {small_events:,} events", ratio=large_mb / small_mb,
            bar=f"≤ {MEMORY_BAR_MB:g} MB more than the small export",
            held=large_mb - small_mb <= MEMORY_BAR_MB,
            details={"growth_mb": large_mb - small_mb, "large_seconds": large_s,
                     "small_seconds": small_s, "large_bytes": written,
                     "measured_by": "bench.audit_memory: peak RSS of a `ledger audit export` "
                                    "process"}))
    return results


def _rate(row: Any) -> float:
    """The events/s figure of one of `bench.audit_memory`'s rows ("123,456 events/s")."""
    found = re.match(r"\s*([\d,.]+)\s*events/s", row.figure)
    if found is None:
        raise RuntimeError(f"bench.audit_memory row {row.what!r}: no events/s in {row.figure!r}")
    return float(found.group(1).replace(",", ""))


def _read_rate(app: Any) -> float:
    count, position = 0, 1
    started = time.perf_counter()
    while True:
        page = app.recorder.select_notifications(start=position, limit=5000)
        if not page:
            break
        count += len(page)
        position = page[-1].id + 1
    return count / (time.perf_counter() - started)


def _bare_csv_rate(store: Any, path: Path) -> float:
    rows = 0
    started = time.perf_counter()
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        position = 0
        while True:
            page = store.query("SELECT * FROM {audit} WHERE position > ? ORDER BY position "
                               "LIMIT 5000", (position,))
            if not page:
                break
            if rows == 0:
                writer.writerow(page[0].keys())
            writer.writerows(row.values() for row in page)
            rows += len(page)
            position = page[-1]["position"]
    return rows / (time.perf_counter() - started)


def _small_ledger(backend: Backend, engagements: int) -> tuple[str, int]:
    from ledger.application import open_ledger
    from ledger.demo import run_demo

    url = backend.fresh_url(f"audit{engagements}")
    app = open_ledger(url)
    try:
        with quiet_stderr():
            events = run_demo(app, count=engagements, seed=SEED, progress=False)
    finally:
        app.close()
    caught_up(url)
    return url, events


# PDF ------------------------------------------------------------------------------------


def long_engagement(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> dict[str, Any]:
    """The replay measurement's long engagement, with its read models caught up."""
    found = context.get("long_engagement")
    if found is None or found["events"] != sizes.pdf_events:
        from bench.replay import build_long_engagement
        from ledger.application import open_ledger

        url = backend.fresh_url("pdf")
        app = open_ledger(url)
        try:
            engagement_id = build_long_engagement(app, sizes.pdf_events)
        finally:
            app.close()
        found = {"url": url, "id": str(engagement_id), "events": sizes.pdf_events}
    if not found.get("projected"):
        caught_up(found["url"])
        found["projected"] = True
    return found


def bare_reportlab_table(rows: list[list[str]], path: Path) -> float:
    """reportlab laying out the rows as one plain table (A4 landscape, header repeated)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.platypus import SimpleDocTemplate, Table, TableStyle

    started = time.perf_counter()
    doc = SimpleDocTemplate(str(path), pagesize=landscape(A4))
    table = Table(rows, repeatRows=1)
    table.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 6),
                               ("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]))
    doc.build([table])
    return time.perf_counter() - started


def pdf(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> Result:
    from ledger.application import open_ledger
    from ledger.roles import Actor
    from projections.audit_export import export_audit
    from projections.queries import ReadModels

    long = long_engagement(backend, sizes, context)
    folder = backend.folder
    app = open_ledger(long["url"])
    try:
        models = ReadModels(app, Actor.parse("auditor:bench"))
        trail = models.query("SELECT position, version, timestamp, actor, role, type, summary, "
                             "hash FROM {audit} WHERE engagement_id = ? ORDER BY version",
                             (long["id"],))
        rows = [list(trail[0].keys())] + [[str(v) for v in row.values()] for row in trail]
        baseline = bare_reportlab_table(rows, folder / "bare.pdf")
        started = time.perf_counter()
        export_audit(models, "pdf", str(folder / "engagement.pdf"), engagement=long["id"])
        seconds = time.perf_counter() - started
    finally:
        app.close()
    ratio = seconds / baseline
    return Result(
        backend=backend.name, name=f"audit PDF, one {long['events']:,}-event engagement",
        figure=seconds, unit="s", baseline=baseline, baseline_unit="s",
        baseline_what="reportlab, bare table of the same rows", ratio=ratio,
        bar=f"≤ {PDF_BAR}× baseline", held=ratio <= PDF_BAR,
        details={"rows": len(trail), "pdf_bytes": (folder / "engagement.pdf").stat().st_size})


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    return [*rates_and_memory(backend, sizes, context), pdf(backend, sizes, context)]

