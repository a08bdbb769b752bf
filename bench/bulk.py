"""Bulk: `ledger demo` (engagements built through the aggregate's own methods, saved 100 per
transaction) beside the raw library saving ten events per transaction with the same payload size.

The demo database it leaves behind is the shared dataset of the run: projection catch-up, the
dashboard and start-up use it (`demo_dataset`), so it is built once per backend.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (Backend, Result, Sizes, quiet_stderr, raw_ten_per_transaction,
                          stored_state_mean)

BAR = 0.8
SEED = 1


def build_demo(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> dict[str, Any]:
    from ledger.application import open_ledger
    from ledger.demo import run_demo

    url = backend.fresh_url("demo")
    app = open_ledger(url)
    try:
        with quiet_stderr():
            started = time.perf_counter()
            events = run_demo(app, count=sizes.demo_engagements, seed=SEED, progress=False)
            seconds = time.perf_counter() - started
        state_bytes = stored_state_mean(app)
        some_id = str(next(iter(app.engagement_ids())))
    finally:
        app.close()
    dataset = {"url": url, "engagements": sizes.demo_engagements, "events": events,
               "seconds": seconds, "mean_state_bytes": state_bytes, "some_id": some_id}
    context["demo"] = dataset
    return dataset


def demo_dataset(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> dict[str, Any]:
    """The run's demo database on this backend, built now if bulk did not build it."""
    return context.get("demo") or build_demo(backend, sizes, context)


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    demo = build_demo(backend, sizes, context)
    rate = demo["events"] / demo["seconds"]
    raw = raw_ten_per_transaction(backend.fresh_url("raw10"), sizes.bulk_baseline_events,
                                  demo["mean_state_bytes"])
    ratio = rate / raw["rate"]
    return [Result(
        backend=backend.name, name="bulk (ledger demo)", figure=rate, unit="events/s",
        baseline=raw["rate"], baseline_unit="events/s",
        baseline_what="raw library, 10 events per transaction, same payload size",
        ratio=ratio, bar=f"≥ {BAR:.0%} of baseline", held=ratio >= BAR,
        details={"engagements": demo["engagements"], "events": demo["events"],
                 "seconds": demo["seconds"], "mean_state_bytes": round(demo["mean_state_bytes"]),
                 "baseline": raw})]
