"""Command path: commands/s through `Engagements.execute` against existing engagements, beside
the raw library saving one event per transaction with the same stored payload size.

The engagements are opened and made active first (not timed), then a fresh application (cold
cache, as a new server process would start) runs the mix of `bench.workload`. Each command is
one transaction, so commands/s is compared with the raw library's transactions/s.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Backend, Result, Sizes, raw_one_per_transaction, stored_state_mean
from bench.workload import prepare, run_rounds

BAR = 0.8


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    from ledger.application import open_ledger

    url = backend.fresh_url("commands")
    app = open_ledger(url)
    try:
        engaged = prepare(app, sizes.command_engagements)
    finally:
        app.close()
    app = open_ledger(url)
    try:
        first_new = app.count_events() + 1
        started = time.perf_counter()
        done = run_rounds(app, engaged, sizes.command_cycles)
        seconds = time.perf_counter() - started
        events = app.count_events() - first_new + 1
        state_bytes = stored_state_mean(app, start=first_new)
        conflicts = app.conflicts_retried
    finally:
        app.close()
    raw = raw_one_per_transaction(backend.fresh_url("raw1"), sizes.command_baseline_saves,
                                  state_bytes)
    rate = done / seconds
    ratio = rate / raw["rate"]
    return [Result(
        backend=backend.name, name="command path", figure=rate, unit="commands/s",
        baseline=raw["rate"], baseline_unit="events/s",
        baseline_what="raw library, 1 event per transaction, same payload size",
        ratio=ratio, bar=f"≥ {BAR:.0%} of baseline", held=ratio >= BAR,
        details={"commands": done, "events": events, "seconds": seconds,
                 "events_per_s": events / seconds, "engagements": len(engaged),
                 "mean_state_bytes": round(state_bytes), "conflicts_retried": conflicts,
                 "baseline": raw})]
