"""What every measurement shares: fresh databases, results with their baselines, the raw library.

A `Backend` hands out a fresh database for each use (a SQLite file in a temporary folder, or a
PostgreSQL schema of its own that is dropped when the run ends), so no measurement sees another's
rows and nothing is cached between runs. `Result` is one row of the table: a figure, the
baseline measured beside it in the same run, their ratio and the DESIGN section 8 bar.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

SCHEMA_PREFIX = "bench_"


@dataclass
class Result:
    """One figure beside its baseline; `held` is None where no bar applies."""

    backend: str
    name: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_unit: str = ""
    baseline_what: str = ""
    ratio: float | None = None
    bar: str = ""
    held: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sizes:
    """How much data each measurement uses: full (the bars' sizes) or quick (CI, small)."""

    quick: bool
    demo_engagements: int  # bulk, projection catch-up, dashboard (small), start-up
    bulk_baseline_events: int
    catch_up_pattern_events: int  # the library's one-transaction-per-event projection
    command_engagements: int
    command_cycles: int
    command_baseline_saves: int
    replay_events: int
    replay_versions: int
    dashboard_copies: int  # the large dashboard is the small one's rows this many times
    scale_seconds: float
    startup_runs: int
    pdf_events: int

    @classmethod
    def choose(cls, quick: bool) -> Sizes:
        if quick:
            return cls(quick=True, demo_engagements=300, bulk_baseline_events=5_000,
                       catch_up_pattern_events=1_000, command_engagements=20, command_cycles=1,
                       command_baseline_saves=300, replay_events=2_000, replay_versions=10,
                       dashboard_copies=10, scale_seconds=0.75, startup_runs=2,
                       pdf_events=2_000)
        return cls(quick=False, demo_engagements=10_000, bulk_baseline_events=50_000,
                   catch_up_pattern_events=5_000, command_engagements=100, command_cycles=2,
                   command_baseline_saves=3_000, replay_events=10_000, replay_versions=10,
                   dashboard_copies=10, scale_seconds=6.0, startup_runs=7,
                   pdf_events=10_000)


class Backend:
    """SQLite (a file) or PostgreSQL (a schema per use); `fresh_url()` gives a new, empty one."""

    def __init__(self, name: str, folder: Path, postgres_base: str | None = None) -> None:
        self.name = name
        self.folder = folder
        self.postgres_base = postgres_base
        self._schemas: list[str] = []
        self._count = 0

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"

    def fresh_url(self, label: str) -> str:
        self._count += 1
        if not self.is_postgres:
            return f"sqlite:///{self.folder / f'{self._count:02d}-{label}.db'}"
        import psycopg

        assert self.postgres_base is not None
        schema = f"{SCHEMA_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}_{label}"
        with psycopg.connect(self.postgres_base.split("?")[0], autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self._schemas.append(schema)
        separator = "&" if "?" in self.postgres_base else "?"
        return f"{self.postgres_base}{separator}schema={schema}"

    def settle(self, limit: float = 180.0, url: str | None = None) -> float:
        """Waits until the server runs no autovacuum, then has it checkpoint (PostgreSQL only),
        and says how long that took; given the URL of a database just filled, vacuums and
        analyses its tables first. Loading hundreds of thousands of rows sets autovacuum off
        on those tables a little later, and leaves dirty pages that the checkpointer writes
        out over the next minutes; on 2 cores either would run beside the next measurement
        and time the server's housekeeping instead of the ledger."""
        if not self.is_postgres:
            return 0.0
        import psycopg

        assert self.postgres_base is not None
        started = time.perf_counter()
        quiet = 0
        with psycopg.connect(self.postgres_base.split("?")[0], autocommit=True) as conn:
            if url is not None and "schema=" in url:
                # Tables just filled: vacuumed and analysed now (hint bits set, statistics
                # taken), as autovacuum would do a little later, in the middle of a measurement.
                schema = url.split("schema=")[1].split("&")[0]
                tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                      (schema,)).fetchall()
                for (table,) in tables:
                    conn.execute(f'VACUUM (ANALYZE) "{schema}"."{table}"')
            while time.perf_counter() - started < limit and quiet < 2:
                busy = conn.execute("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE backend_type = 'autovacuum worker'").fetchone()
                quiet = quiet + 1 if busy is not None and busy[0] == 0 else 0
                if quiet < 2:
                    time.sleep(0.5)
            # And no checkpoint spreading the last load's dirty pages over the next minutes
            # beside the measurement (it needs the right to run CHECKPOINT; without, as is).
            try:
                conn.execute("CHECKPOINT")
            except psycopg.Error:
                pass
        waited = time.perf_counter() - started
        if waited > 1.5:
            say(f"bench: waited {waited:.0f} s for the server's autovacuum and a checkpoint")
        return waited

    def drop_all(self) -> None:
        if not self._schemas:
            return
        import psycopg

        assert self.postgres_base is not None
        with psycopg.connect(self.postgres_base.split("?")[0], autocommit=True) as conn:
            for schema in self._schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._schemas.clear()

    def version(self) -> str:
        if not self.is_postgres:
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self.postgres_base.split("?")[0]) as conn:  # type: ignore[union-attr]
            return "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


# The raw library ----------------------------------------------------------------------


class Ticket(Aggregate):
    """The raw library's baseline aggregate: one text payload, one event type."""

    def __init__(self, payload: str) -> None:
        self.payload = payload

    @event("Noted")
    def note(self, payload: str) -> None:
        self.payload = payload


class RawApp(Application[Any]):
    """A plain library application: no cache, no snapshots, default transcoder."""

    name = "RawBaseline"


RAW_MODULES = {"sqlite": "eventsourcing.sqlite", "postgres": "eventsourcing.postgres"}


def open_raw(url: str, create_table: bool = True) -> RawApp:
    """The raw library on the same database URL (same persistence settings as the ledger)."""
    from ledger.storage import resolve

    database = resolve(url)
    env = dict(database.env)
    # The library's own recorders, whatever the ledger's storage chooses for itself.
    env["PERSISTENCE_MODULE"] = RAW_MODULES[database.kind]
    env["CREATE_TABLE"] = "yes" if create_table else "no"
    return RawApp(env=env)


def payload_for(app: RawApp, state_bytes: float) -> str:
    """A payload that makes a Ticket event's stored state about `state_bytes` long."""
    probe = Ticket(payload="")
    probe.collect_events()
    probe.note("")  # a subsequent event: what the baselines save, apart from the first
    empty = len(app.mapper.to_stored_event(probe.collect_events()[0]).state)
    return "x" * max(int(round(state_bytes)) - empty, 0)


def checkpoint(url: str) -> None:
    """Writes a SQLite file's log into it (`wal_checkpoint(TRUNCATE)`) after a set-up, so that
    a measurement's first commits do not pay for copying the set-up's pages (SQLite
    checkpoints from a committing connection once its log passes 1,000 pages)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):])) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def raw_one_per_transaction(url: str, saves: int, state_bytes: float) -> dict[str, Any]:
    """The raw library saving one event per transaction to existing aggregates."""
    app = open_raw(url)
    try:
        payload = payload_for(app, state_bytes)
        tickets = [Ticket(payload) for _ in range(50)]
        app.save(*tickets)
        checkpoint(url)  # as the command path does after its set-up
        started = time.perf_counter()
        for number in range(saves):
            ticket = tickets[number % len(tickets)]
            ticket.note(payload)
            app.save(ticket)
        seconds = time.perf_counter() - started
        return {"events": saves, "seconds": seconds, "rate": saves / seconds,
                "state_bytes": stored_state_mean(app, skip=len(tickets))}
    finally:
        app.close()


def raw_ten_per_transaction(url: str, events: int, state_bytes: float) -> dict[str, Any]:
    """The raw library saving new aggregates of ten events, one aggregate per transaction."""
    app = open_raw(url)
    try:
        payload = payload_for(app, state_bytes)
        transactions = max(events // 10, 1)
        started = time.perf_counter()
        for _ in range(transactions):
            ticket = Ticket(payload)
            for _ in range(9):
                ticket.note(payload)
            app.save(ticket)
        seconds = time.perf_counter() - started
        written = transactions * 10
        return {"events": written, "seconds": seconds, "rate": written / seconds,
                "state_bytes": stored_state_mean(app)}
    finally:
        app.close()


def stored_state_mean(app: Any, skip: int = 0, start: int | None = None) -> float:
    """Mean length of the stored state of the log's events (after `skip`, or from `start`)."""
    total = count = 0
    position = start if start is not None else skip + 1
    while True:
        page = app.recorder.select_notifications(start=position, limit=5000)
        if not page:
            break
        for notification in page:
            total += len(notification.state)
            count += 1
        position = page[-1].id + 1
    return total / count if count else 0.0


# Helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hides progress lines (`ledger demo` prints one) from the table's output."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = func()
    return value, time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, Any]:
    import platform

    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    from importlib.metadata import version

    return {"cores": os.cpu_count(), "memory": memory, "python": platform.python_version(),
            "platform": platform.platform(), "eventsourcing": version("eventsourcing"),
            "textual": version("textual"), "reportlab": version("reportlab")}


def child_env() -> dict[str, str]:
    """The environment for the suite's child processes: `bench` importable wherever they start."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def say(text: str) -> None:
    """Progress for the person running the suite (stderr, so stdout is only the table)."""
    print(text, file=sys.stderr, flush=True)


def new_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="ledger-bench-")
