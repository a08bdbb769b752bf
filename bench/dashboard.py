"""Dashboard: wall time from starting a process to the first drawn dashboard (headless
`LedgerApp` through `App.run_test`, as the UI tests drive it) on 10,000 and 100,000 engagements,
beside a bare Textual app drawing a 100-row table in the same way (what Textual alone costs).

The small size is the run's demo database with its read models caught up. The large one adds
copies of those engagements' read-model rows under new ids (summary, money, milestones, access,
disputes, workload, contractor record), so the dashboard reads ten times the rows without
building and projecting 2.7 million events; the dashboard reads only read models, and the
event log and positions stay as they were (nothing is behind). Each size is started a few
times; the median counts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.bulk import demo_dataset
from bench.common import Backend, Result, Sizes, child_env, median

BARS = {10_000: 1.0, 100_000: 2.0}
STARTS = 3
#: Read-model tables the dashboard's engagements are copied into (events, the engagement
#: state snapshots and the hash-chained audit trail are not copied: the dashboard reads none).
NOT_COPIED = ("rm_audit", "rm_audit_heads", "rm_engagement_state")


def start_once(argv: list[str]) -> tuple[float, float]:
    """Wall seconds until the child says it drew its first screen, and its own figure."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bench.dashboard_child", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=child_env())
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("drawn "):
                wall = time.perf_counter() - started
                process.wait(timeout=60)
                return wall, float(line.split()[1])
        _, stderr = process.communicate(timeout=60)
        raise RuntimeError(f"the UI never drew its first screen:\n{stderr}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def start_median(argv: list[str], starts: int) -> dict[str, Any]:
    runs = [start_once(argv) for _ in range(starts)]
    return {"wall_s": median([r[0] for r in runs]), "in_process_s": median([r[1] for r in runs]),
            "runs": runs}


def ensure_projected(url: str) -> None:
    from ledger.application import open_ledger
    from projections.runner import Projector

    app = open_ledger(url)
    try:
        Projector(app).catch_up()
    finally:
        app.close()


def copy_engagement_rows(url: str, copies: int) -> int:
    """Adds `copies - 1` copies of every engagement's read-model rows under new ids."""
    from ledger.application import open_ledger
    from projections.store import open_store

    app = open_ledger(url)
    try:
        store: Any = open_store(app)
        postgres = store.kind == "postgres"
        if postgres:
            schema = app.database.schema
            rows = store.query("SELECT table_name AS t, column_name AS c FROM "
                               "information_schema.columns WHERE table_schema = ? AND "
                               "substr(table_name, 1, 3) = 'rm_' "
                               "ORDER BY table_name, ordinal_position", (schema,))
        else:
            rows = store.query("SELECT m.name AS t, p.name AS c FROM sqlite_master AS m "
                               "JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table' "
                               "AND substr(m.name, 1, 3) = 'rm_' ORDER BY m.name, p.cid")
        columns: dict[str, list[str]] = {}
        for row in rows:
            columns.setdefault(row["t"], []).append(row["c"])
        numbers = " UNION ALL ".join(f"SELECT {n} AS n" for n in range(1, copies))
        new_id = ("lpad(to_hex(k.n), 8, '0') || substr(t.engagement_id, 9)" if postgres
                  else "printf('%08x', k.n) || substr(t.engagement_id, 9)")
        with store.transaction() as tx:
            for table, names in columns.items():
                if "engagement_id" not in names or table in NOT_COPIED:
                    continue
                target = f'"{schema}".{table}' if postgres else table
                chosen = ", ".join(new_id if n == "engagement_id" else f"t.{n}" for n in names)
                # One statement per table: it reads only the rows that were there before it.
                tx.cursor.execute(f"INSERT INTO {target} ({', '.join(names)}) SELECT {chosen} "
                                  f"FROM {target} AS t CROSS JOIN ({numbers}) AS k")
        return int(store.query("SELECT COUNT(*) AS n FROM {summary}")[0]["n"])
    finally:
        app.close()


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    demo = demo_dataset(backend, sizes, context)
    if not demo.get("projected"):
        ensure_projected(demo["url"])
        demo["projected"] = True
    starts = 1 if sizes.quick else STARTS
    bare = start_median(["bare"], starts)
    results = []
    small = demo["engagements"]
    for bar_size, engagements in ((10_000, small), (100_000, None)):
        if engagements is None:
            engagements = copy_engagement_rows(demo["url"], sizes.dashboard_copies)
        timing = start_median(["ledger", demo["url"]], starts)
        bar = BARS[bar_size]
        label = (f"{bar_size:,}" if engagements == bar_size
                 else f"{engagements:,} (bar: {bar_size:,})")
        results.append(Result(
            backend=backend.name, name=f"dashboard, {label} engagements",
            figure=timing["wall_s"], unit="s", baseline=bare["wall_s"], baseline_unit="s",
            baseline_what="bare Textual app, 100-row table, headless",
            ratio=timing["wall_s"] / bare["wall_s"], bar=f"< {bar:g} s at {bar_size:,}",
            held=timing["wall_s"] < bar,
            details={"engagements": engagements, **timing, "baseline": bare,
                     "copied_rows": engagements != small}))
    return results
