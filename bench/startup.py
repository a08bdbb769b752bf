"""Start-up: wall time of `ledger --help` and `ledger engagement show ID` (the installed console
script, a new process each time, median of several), beside a bare `python -c pass`.

`engagement show` reads one engagement of the run's demo database, so it opens the ledger,
loads the engagement (snapshot and events) and prints it, as a curator's first command would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.bulk import demo_dataset
from bench.common import Backend, Result, Sizes, median

BAR_S = 0.5


def ledger_script() -> str:
    """The `ledger` installed beside this Python (the venv's console script)."""
    beside = Path(sys.executable).parent / "ledger"
    if beside.exists():
        return str(beside)
    found = shutil.which("ledger")
    if found is None:
        raise RuntimeError("no `ledger` command: install the project (pip install -e .)")
    return found


def wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return {"median_s": median(times), "runs_s": times}


def measure(backend: Backend, sizes: Sizes, context: dict[str, Any]) -> list[Result]:
    demo = demo_dataset(backend, sizes, context)
    env = {**os.environ, "LEDGER_DATABASE_URL": demo["url"], "LEDGER_ACTOR": "auditor:bench"}
    runs = sizes.startup_runs
    bare = wall([sys.executable, "-c", "pass"], runs)
    script = ledger_script()
    # --help touches no database: it is measured once, with SQLite.
    figures = [("ledger --help", [script, "--help"])] if backend.name == "sqlite" else []
    figures.append(("ledger engagement show ID", [script, "engagement", "show", demo["some_id"]]))
    results = []
    for name, argv in figures:
        timing = wall(argv, runs, env)
        results.append(Result(
            backend=backend.name, name=f"start-up: {name}", figure=timing["median_s"], unit="s",
            baseline=bare["median_s"], baseline_unit="s", baseline_what="python -c pass",
            ratio=timing["median_s"] / bare["median_s"], bar=f"< {BAR_S:g} s",
            held=timing["median_s"] < BAR_S, details={**timing, "baseline": bare}))
    return results
