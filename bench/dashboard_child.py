"""One headless start of the terminal UI, for `bench.dashboard` (run as its own process).

    python -m bench.dashboard_child ledger URL    # `ledger tui` up to the first drawn dashboard
    python -m bench.dashboard_child bare          # a bare Textual app drawing a 100-row table

Prints `drawn <seconds since this module started>` once the first screen is drawn (the
dashboard: its figures and its first page of engagements shown), then exits. It imports only
what `ledger tui` imports, so the parent's wall time is the time a curator waits.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import sys  # noqa: E402

SIZE = (140, 45)
GIVE_UP = 120.0  # seconds; only so a hung start ends


async def first_dashboard(url: str) -> None:
    from textual.widgets import Sparkline

    from ledger.roles import Actor
    from tui.app import LedgerApp
    from tui.dashboard import DashboardScreen
    from tui.service import LedgerService

    app = LedgerApp(LedgerService(url, Actor.parse("curator:cara")), live=False)
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.perf_counter() + GIVE_UP
        while True:
            screen = app.screen
            if (isinstance(screen, DashboardScreen) and screen.total > 0
                    and screen.query_one("#funded", Sparkline).data):
                break
            if time.perf_counter() > deadline:
                sys.exit("the dashboard was never drawn")
            await pilot.pause(0.005)
        await pilot.pause()  # the frame with the figures and rows is composed and drawn
        print(f"drawn {time.perf_counter() - STARTED:.4f}", flush=True)
        app.service.close()
        app.exit()


async def bare_table() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Footer, Header

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Header()
            yield DataTable()
            yield Footer()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns(*(f"column {n}" for n in range(9)))
            for row in range(100):
                table.add_row(*(f"cell {row}.{n}" for n in range(9)))

    app = Bare()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        print(f"drawn {time.perf_counter() - STARTED:.4f}", flush=True)
        app.exit()


def main() -> None:
    if sys.argv[1:2] == ["bare"]:
        asyncio.run(bare_table())
    else:
        asyncio.run(first_dashboard(sys.argv[2]))


if __name__ == "__main__":
    main()
