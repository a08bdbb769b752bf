"""Command path: commands/s through `Engagements.execute` against existing engagements, beside
the raw library saving one event per transaction with the same stored payload size.

The engagements are opened and made active first (not timed), then a fresh application (cold
cache, as a new server process would start) runs the mix of `bench.workload`. Each command is
one transaction, so commands/s is compared with the raw library's transactions/s. Ours and
the raw library run alternately three times (once with --quick); the median of each counts.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (Backend, Result, Sizes, checkpoint, median, raw_one_per_transaction,
                          stored_state_mean)
from bench.workload import prepare, run_rounds

BAR = 0.8
REPEATS = 3  # alternating pairs of runs (full size); the median of each side counts


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    from ledger.application import open_ledger

    repeats = 1 if sizes.quick else REPEATS
    url = backend.fresh_url("commands")
    app = open_ledger(url)
    try:
        engaged = prepare(app, sizes.command_engagements * repeats)
    finally:
        app.close()
    backend.settle()
    runs, raws = [], []
    for number in range(repeats):
        checkpoint(url)  # earlier writes' pages are not these commands' to copy (nor the raw's)
        # Ours, then the raw library, alternately: a single pair swung by ±0.05 in the ratio
        # from one run to the next on the same machine. Each of ours is a fresh application
        # (cold cache) on engagements of its own.
        mine = engaged[number * sizes.command_engagements:(number + 1) * sizes.command_engagements]
        app = open_ledger(url)
        try:
            first_new = app.count_events() + 1
            started = time.perf_counter()
            done = run_rounds(app, mine, sizes.command_cycles)
            seconds = time.perf_counter() - started
            events = app.count_events() - first_new + 1
            state_bytes = stored_state_mean(app, start=first_new)
            conflicts = app.conflicts_retried
        finally:
            app.close()
        runs.append({"commands": done, "events": events, "seconds": seconds,
                     "rate": done / seconds, "events_per_s": events / seconds,
                     "engagements": len(mine), "mean_state_bytes": round(state_bytes),
                     "conflicts_retried": conflicts})
        raws.append(raw_one_per_transaction(backend.fresh_url(f"raw1_{number}"),
                                            sizes.command_baseline_saves, state_bytes))
    rate = median([run["rate"] for run in runs])
    raw_rate = median([raw["rate"] for raw in raws])
    ratio = rate / raw_rate
    return [Result(
        backend=backend.name, name="command path", figure=rate, unit="commands/s",
        baseline=raw_rate, baseline_unit="events/s",
        baseline_what="raw library, 1 event per transaction, same payload size",
        ratio=ratio, bar=f"≥ {BAR:.0%} of baseline", held=ratio >= BAR,
        details={"repeats": repeats, "runs": runs, "baselines": raws})]
