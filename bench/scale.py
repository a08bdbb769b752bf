"""Scale: total command throughput of 1, 2 and 4 writer processes on PostgreSQL at once.

Each writer is its own Python process with engagements of its own (made active beforehand, not
timed; every run has new ones), running the command mix of `bench.workload` through the
application service for the same number of seconds. They are released together by a file once
each has opened its ledger; throughput is all their commands over the span from the first start
to the last end.
The baseline is one writer; the bar is two writers at 1.4 times its throughput. One and two
writers run alternately three times (once with --quick) and the median run of each counts. For
information, the raw library is run the same way (one event per transaction, 1 and 2 writer
processes): its PostgreSQL recorder serialises inserts with `LOCK TABLE ... IN EXCLUSIVE MODE`
(so the notification log has no gaps), which bounds what any number of writers can add.

    python -m bench.scale writer|raw SPEC_JSON    # one writer (what the measurement starts)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Backend, Result, Sizes, child_env

BAR = 1.4
RAW_PAYLOAD = "x" * 250  # about the stored size of the command mix's events
ENGAGEMENTS_PER_WRITER = 20
GIVE_UP = 120.0  # seconds; only so a hung writer ends
REPEATS = 3  # pairs of one- and two-writer runs (full size)


def run_writers(url: str, folder: Path, id_sets: list[list[str]], seconds: float,
                kind: str = "writer") -> dict[str, Any]:
    go = folder / f"go-{uuid.uuid4().hex}"
    processes = []
    for number, ids in enumerate(id_sets):
        ready = folder / f"ready-{number}-{go.name}"
        spec = {"url": url, "ids": ids, "ready": str(ready), "go": str(go), "seconds": seconds}
        processes.append((ready, subprocess.Popen(
            [sys.executable, "-m", "bench.scale", kind, json.dumps(spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())))
    try:
        give_up = time.monotonic() + GIVE_UP
        while not all(ready.exists() for ready, _ in processes):
            for _, process in processes:
                if process.poll() is not None:
                    _, stderr = process.communicate()
                    raise RuntimeError(f"a writer ended before the start:\n{stderr}")
            if time.monotonic() > give_up:
                raise RuntimeError("the writers never got ready")
            time.sleep(0.005)
        go.touch()
        reports = []
        for _, process in processes:
            stdout, stderr = process.communicate(timeout=GIVE_UP)
            if process.returncode != 0:
                raise RuntimeError(f"a writer exited {process.returncode}:\n{stderr}")
            reports.append(json.loads(stdout))
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    span = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    commands = sum(r["commands"] for r in reports)
    return {"writers": len(id_sets), "commands": commands, "seconds": span,
            "rate": commands / span, "per_writer": [r["commands"] for r in reports],
            "conflicts_retried": sum(r["conflicts_retried"] for r in reports)}


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    from bench.workload import prepare
    from ledger.application import open_ledger

    per_writer = ENGAGEMENTS_PER_WRITER // 4 if sizes.quick else ENGAGEMENTS_PER_WRITER
    url = backend.fresh_url("scale")
    app = open_ledger(url)
    repeats = 1 if sizes.quick else REPEATS
    try:
        # Every run gets engagements of its own, so each writer starts each at a round's start.
        ids = [str(e.id) for e in prepare(app, (repeats * (1 + 2) + 4) * per_writer)]
    finally:
        app.close()

    def writers_run(writers: int) -> dict[str, Any]:
        nonlocal ids
        sets = []
        for _ in range(writers):
            sets.append(ids[:per_writer])
            ids = ids[per_writer:]
        return run_writers(url, backend.folder, sets, sizes.scale_seconds)

    # One and two writers alternately, the median of each: a single pair swung by ±0.15 in
    # the ratio from one run to the next on the same machine.
    pairs = [(writers_run(1), writers_run(2)) for _ in range(repeats)]
    runs = {1: _median_run([one for one, _ in pairs]), 2: _median_run([two for _, two in pairs]),
            4: writers_run(4)}
    raw = raw_runs(backend, sizes)
    one = runs[1]["rate"]
    results = []
    for writers in (2, 4):
        ratio = runs[writers]["rate"] / one
        results.append(Result(
            backend=backend.name, name=f"scale, {writers} writer processes",
            figure=runs[writers]["rate"], unit="commands/s", baseline=one,
            baseline_unit="commands/s", baseline_what="1 writer process",
            ratio=ratio, bar=f"≥ {BAR}× one writer" if writers == 2 else "information",
            held=ratio >= BAR if writers == 2 else None,
            details={"runs": {str(k): v for k, v in runs.items()},
                     "pairs": [{"1": one, "2": two} for one, two in pairs]}))
    results.append(Result(
        backend=backend.name, name="(info) raw library, 2 writer processes",
        figure=raw[2]["rate"], unit="events/s", baseline=raw[1]["rate"], baseline_unit="events/s",
        baseline_what="raw library, 1 writer process, 1 event per transaction",
        ratio=raw[2]["rate"] / raw[1]["rate"], bar="information",
        details={"runs": {str(k): v for k, v in raw.items()}}))
    return results


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (of an odd number of runs)."""
    return sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]


def raw_runs(backend: Backend, sizes: Sizes) -> dict[int, dict[str, Any]]:
    """The same runs with the raw library: does the library itself scale with writers?"""
    from bench.common import Ticket, open_raw

    url = backend.fresh_url("rawscale")
    app = open_raw(url)
    try:
        tickets = [Ticket(RAW_PAYLOAD) for _ in range(3 * ENGAGEMENTS_PER_WRITER)]
        app.save(*tickets)
    finally:
        app.close()
    ids = [str(t.id) for t in tickets]
    runs = {}
    for writers in (1, 2):
        sets = []
        for _ in range(writers):
            sets.append(ids[:ENGAGEMENTS_PER_WRITER])
            ids = ids[ENGAGEMENTS_PER_WRITER:]
        runs[writers] = run_writers(url, backend.folder, sets, sizes.scale_seconds, "raw")
    return runs


def writer(spec: dict[str, Any]) -> None:
    from uuid import UUID

    from bench.workload import Engaged, run_until
    from ledger.application import open_ledger

    app = open_ledger(spec["url"])
    engaged = [Engaged(UUID(i)) for i in spec["ids"]]
    wait_for_go(spec)
    start = time.time()
    done = run_until(app, engaged, time.perf_counter() + spec["seconds"], time.perf_counter)
    end = time.time()
    print(json.dumps({"commands": done, "start": start, "end": end,
                      "conflicts_retried": app.conflicts_retried}))
    app.close()


def raw_writer(spec: dict[str, Any]) -> None:
    """The raw library saving one event per transaction to its own aggregates."""
    from uuid import UUID

    from bench.common import open_raw

    app = open_raw(spec["url"], create_table=False)
    tickets = [app.repository.get(UUID(i)) for i in spec["ids"]]
    wait_for_go(spec)
    start = time.time()
    deadline = time.perf_counter() + spec["seconds"]
    done = 0
    while time.perf_counter() < deadline:
        ticket = tickets[done % len(tickets)]
        ticket.note(RAW_PAYLOAD)
        app.save(ticket)
        done += 1
    end = time.time()
    print(json.dumps({"commands": done, "start": start, "end": end, "conflicts_retried": 0}))
    app.close()


def wait_for_go(spec: dict[str, Any]) -> None:
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    give_up = time.monotonic() + GIVE_UP
    while not go.exists():
        if time.monotonic() > give_up:
            sys.exit("writer: never told to go")
        time.sleep(0.001)


if __name__ == "__main__":
    if sys.argv[1:2] == ["writer"]:
        writer(json.loads(sys.argv[2]))
    elif sys.argv[1:2] == ["raw"]:
        raw_writer(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.scale writer|raw SPEC_JSON")
