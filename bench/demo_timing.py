"""Times `ledger demo` (bulk building and saving) on SQLite and, if given, PostgreSQL.

    python -m bench.demo_timing [--engagements 10000] [--postgres URL]

Prints engagements, events, seconds and events/s per backend. The full suite (issue 6)
adds the raw library's ten-events-per-transaction baseline beside it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path


def time_demo(url: str, engagements: int, seed: int) -> tuple[int, float]:
    from ledger.application import open_ledger
    from ledger.demo import run_demo

    app = open_ledger(url)
    try:
        started = time.perf_counter()
        events = run_demo(app, count=engagements, seed=seed, progress=False)
        return events, time.perf_counter() - started
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engagements", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default=None, metavar="URL")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'demo.db'}"
        rows.append(("sqlite", *time_demo(url, args.engagements, args.seed)))
    if args.postgres:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            rows.append(("postgres", *time_demo(f"{args.postgres}?schema={schema}",
                                                args.engagements, args.seed)))
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print(f"{'backend':<10} {'engagements':>11} {'events':>9} {'seconds':>8} {'events/s':>9}")
    for backend, events, seconds in rows:
        print(f"{backend:<10} {args.engagements:>11} {events:>9} {seconds:>8.1f} {events / seconds:>9.0f}")


if __name__ == "__main__":
    main()
