"""`python -m bench`: every DESIGN section 8 figure beside its baseline, on SQLite and PostgreSQL.

    python -m bench [--quick] [--postgres URL] [--json PATH] [--only NAME,...]

Runs on SQLite (a file) always, and on PostgreSQL when `--postgres URL` is given or
LEDGER_TEST_POSTGRES_URL is set (`--no-postgres` skips it). Each database is new (a temporary
file, or a schema of its own dropped at the end). Prints a markdown table to stdout (progress
goes to stderr) and, with `--json`, writes every figure and its details. The figures never make
it fail; a measurement that crashes does (exit 1), after the others have run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Backend, Result, Sizes, load_average, machine, new_folder, say

#: name -> (module, backends it runs on); run in this order, each backend in turn.
MEASUREMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "command": ("bench.command_path", ("sqlite", "postgres")),
    "bulk": ("bench.bulk", ("sqlite", "postgres")),
    "catchup": ("bench.catch_up", ("sqlite", "postgres")),
    "replay": ("bench.replay", ("sqlite", "postgres")),
    "audit": ("bench.audit", ("sqlite", "postgres")),
    "dashboard": ("bench.dashboard", ("sqlite", "postgres")),
    "scale": ("bench.scale", ("postgres",)),
    "startup": ("bench.startup", ("sqlite", "postgres")),
}
POSTGRES_ENV = "LEDGER_TEST_POSTGRES_URL"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small data: every measurement in well under two minutes (CI)")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get(POSTGRES_ENV),
                        help=f"PostgreSQL server to measure on as well [env {POSTGRES_ENV}]")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", metavar="PATH", help="write every figure and detail here")
    parser.add_argument("--only", metavar="NAME,...",
                        help="run only these measurements: " + ", ".join(MEASUREMENTS))
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MEASUREMENTS]
        if unknown:
            parser.error(f"unknown measurement {', '.join(unknown)}; "
                         f"choose from {', '.join(MEASUREMENTS)}")
        args.only = names
    else:
        args.only = list(MEASUREMENTS)
    if args.no_postgres:
        args.postgres = None
    return args


def run(args: argparse.Namespace) -> int:
    import importlib

    sizes = Sizes.choose(args.quick)
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
        "command": "python -m " + " ".join(["bench", *sys.argv[1:]]),
        "load_average_before": load_average(), "machine": machine(), "backends": {},
    }
    results: list[Result] = []
    failures: list[str] = []
    with new_folder() as folder:
        backends = [Backend("sqlite", Path(folder))]
        if args.postgres:
            backends.append(Backend("postgres", Path(folder), args.postgres))
        for backend in backends:
            context: dict[str, Any] = {}
            try:
                meta["backends"][backend.name] = backend.version()
                for name in args.only:
                    module_name, where = MEASUREMENTS[name]
                    if backend.name not in where:
                        continue
                    say(f"bench: {backend.name}: {name}…")
                    backend.settle()  # no autovacuum left over from the last measurement's data
                    began = time.perf_counter()
                    try:
                        module = importlib.import_module(module_name)
                        measure: Callable[..., list[Result]] = module.measure
                        results.extend(measure(backend, sizes, context))
                    except (Exception, SystemExit):  # bench.audit_memory exits on a failure
                        failures.append(f"{backend.name}: {name}")
                        say(f"bench: {backend.name}: {name} CRASHED:\n{traceback.format_exc()}")
                    say(f"bench: {backend.name}: {name} took {time.perf_counter() - began:.1f} s")
            finally:
                backend.drop_all()
    meta["seconds"] = time.perf_counter() - started
    meta["load_average_after"] = load_average()
    print(render_table(results, meta))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "results": [r.as_json() for r in results], "crashed": failures},
            indent=2, default=str) + "\n")
    if failures:
        say(f"bench: crashed: {', '.join(failures)}")
        return 1
    return 0


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "ms" or unit == "s":
        text = f"{value:,.1f}" if value >= 10 else f"{value:,.2f}" if value >= 1 else f"{value:.3f}"
    elif unit.startswith("MB"):
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def render_table(results: list[Result], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    kind = ("QUICK run (small data: figures are not the bars’ sizes)" if meta["quick"]
            else "Full run")
    lines = [
        f"{kind} · {meta['date']} · {m['cores']} cores, {m['memory']} · Python {m['python']} · "
        f"eventsourcing {m['eventsourcing']} · "
        + ", ".join(meta["backends"].values())
        + f" · load average before {meta['load_average_before']}, after "
        f"{meta['load_average_after']} · {meta['seconds']:.0f} s",
        "",
        "| backend | measurement | figure | baseline | ratio | bar | held? |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        baseline = fmt(r.baseline, r.baseline_unit)
        if r.baseline_what:
            baseline += f" ({r.baseline_what})"
        held = "–" if r.held is None else ("yes" if r.held else "**no**")
        ratio = "–" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(f"| {r.backend} | {r.name} | {fmt(r.figure, r.unit)} | {baseline} | "
                     f"{ratio} | {r.bar} | {held} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
