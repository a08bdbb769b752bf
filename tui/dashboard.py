"""The dashboard: headline figures, monthly charts, alerts, and the engagement table.

Everything comes from the read models in a worker; the table loads a page at a time (and the
next page when the cursor nears its end), so the first screen is quick however many
engagements there are.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Sparkline, Static

from tui.service import Dashboard

PAGE = 100
STATUS_STYLE = {"vetting": "yellow", "contracting": "cyan", "active": "green", "closed": "dim"}
#: (key, title, read-model order when its title is clicked, width)
COLUMNS = (("status", "Status", "status", 11), ("title", "Title", "title", 22),
           ("contractor", "Contractor", None, 18), ("curator", "Curator", None, 8),
           ("escrow", "Escrow", "escrow", 16), ("next_due", "Next due", "next_due", 10),
           ("disputes", "Disp", None, 4), ("grants", "Grants", None, 6),
           ("updated", "Updated", "updated", 10))
SEVERITY_STYLE = {"overdue": "bold red", "due": "yellow", "info": "cyan"}


def status_text(row: dict[str, Any]) -> Text:
    """A closed engagement shows how it ended (completed, terminated, not_hired)."""
    label = row["outcome"] if row["status"] == "closed" and row["outcome"] else row["status"]
    return Text(label, style=STATUS_STYLE.get(row["status"], ""))


class DashboardScreen(Screen[None]):
    AUTO_FOCUS = "#engagements"
    BINDINGS = [
        ("slash", "focus_filter", "Filter"),
        ("enter", "open_engagement", "Open"),
        ("c", "contractor", "Contractor"),
        ("n", "new_engagement", "New"),
        ("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.search = ""
        self.order = "updated"
        self.loaded = 0
        self.total = 0
        self.loading_more = False
        self.row_ids: list[str] = []
        self.rows_by_id: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading the read models…", id="headline")
        with Horizontal(id="charts"):
            with Vertical(classes="chart"):
                yield Label("funded / month", classes="chart-title")
                yield Sparkline([], id="funded")
            with Vertical(classes="chart"):
                yield Label("released / month", classes="chart-title")
                yield Sparkline([], id="released")
            with Vertical(classes="chart"):
                yield Label("refunded / month", classes="chart-title")
                yield Sparkline([], id="refunded")
            with Vertical(classes="chart"):
                yield Label("open disputes", classes="chart-title")
                yield Sparkline([], id="disputes")
        with Horizontal(id="main"):
            with Vertical(id="engagements-pane"):
                yield Input(placeholder="filter: title, client, contractor, curator, id  (/)",
                            id="filter")
                yield DataTable(id="engagements", cursor_type="row", zebra_stripes=True)
                yield Static("", id="table-status")
            with Vertical(id="alerts-pane"):
                yield Label("Alerts (7 days)", classes="pane-title")
                yield DataTable(id="alerts", cursor_type="row", show_header=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#engagements", DataTable)
        for key, label, _, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        self.query_one("#alerts", DataTable).add_columns("when", "what")
        self.reload()

    # Loading --------------------------------------------------------------------------

    def reload(self) -> None:
        self.load_figures()
        self.load_page(reset=True)

    @work(thread=True, exclusive=True, group="figures")
    def load_figures(self) -> None:
        data = self.app.service.dashboard()  # type: ignore[attr-defined]
        self.app.call_from_thread(self.show_figures, data)

    @work(thread=True, exclusive=True, group="page")
    def load_page(self, reset: bool = False) -> None:
        offset = 0 if reset else self.loaded
        rows, total = self.app.service.engagements(  # type: ignore[attr-defined]
            search=self.search, order=self.order, limit=PAGE, offset=offset)
        self.app.call_from_thread(self.show_page, rows, total, reset)

    def show_figures(self, data: Dashboard) -> None:
        counts = " · ".join(f"{status} {n}" for status, n in data.counts.items())
        escrow = ", ".join(f"{t['escrow']} {t['currency']}" for t in data.totals
                           if t["escrow"].strip("0.") != "") or "0"
        released = ", ".join(f"{amount} {ccy}" for ccy, amount in data.released_this_month) or "0"
        self.query_one("#headline", Static).update(
            f"[b]{counts}[/b]\n"
            f"escrow held [b]{escrow}[/b]   released this month [b]{released}[/b]   "
            f"open disputes [b]{data.open_disputes}[/b]   grants expiring ≤7 d "
            f"[b]{data.grants_expiring}[/b]   milestones overdue [b]{data.milestones_overdue}[/b]")
        main = _main_currency(data)
        series = [row for row in data.monthly if row["currency"] == main]
        for name in ("funded", "released", "refunded"):
            self.query_one(f"#{name}", Sparkline).data = [float(row[name]) for row in series] or [0.0]
        open_now, open_series = 0, []
        for month in sorted({row["month"] for row in data.monthly}):
            for row in data.monthly:
                if row["month"] == month:
                    open_now += row["disputes_opened"] - row["disputes_closed"]
            open_series.append(float(open_now))
        self.query_one("#disputes", Sparkline).data = open_series or [0.0]
        for name in ("funded", "released", "refunded"):
            label = self.query_one(f"#{name}", Sparkline).parent.query_one(Label)  # type: ignore[union-attr]
            label.update(f"{name} / month ({main})")
        alerts = self.query_one("#alerts", DataTable)
        alerts.clear()
        for alert in data.alerts[:200]:
            style = SEVERITY_STYLE.get(alert.get("severity", ""), "")
            alerts.add_row(Text(str(alert.get("date") or ""), style=style),
                           Text(alert.get("message", ""), style=style))

    def show_page(self, rows: list[dict[str, Any]], total: int, reset: bool) -> None:
        table = self.query_one("#engagements", DataTable)
        if reset:
            table.clear()
            self.row_ids.clear()
            self.rows_by_id.clear()
            self.loaded = 0
        for row in rows:
            if row["id"] in self.rows_by_id:
                continue
            self.rows_by_id[row["id"]] = row
            self.row_ids.append(row["id"])
            table.add_row(
                status_text(row), row["title"][:22], row["contractor"][:18], row["curator"][:8],
                Text(f"{row['money']['escrow']} {row['currency']}", justify="right"),
                row["next_due"] or "–", str(row["open_disputes"] or ""),
                str(row["active_grants"] or ""), row["updated_at"][:10], key=row["id"])
        self.loaded += len(rows)
        self.total = total
        self.loading_more = False
        shown = f"{self.loaded} of {total}" if total > self.loaded else f"{total}"
        self.query_one("#table-status", Static).update(
            f"{shown} engagements · sorted by {self.order}"
            + (f" · filter “{self.search}”" if self.search else ""))

    # Events ---------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        self.load_page(reset=True)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one("#engagements", DataTable).focus()

    @on(DataTable.HeaderSelected, "#engagements")
    def sort_by(self, event: DataTable.HeaderSelected) -> None:
        for key, _, order, _ in COLUMNS:
            if key == event.column_key.value and order:
                self.order = order
                self.load_page(reset=True)

    @on(DataTable.RowHighlighted, "#engagements")
    def maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        if (not self.loading_more and self.loaded < self.total
                and event.cursor_row >= self.loaded - 20):
            self.loading_more = True
            self.load_page()

    @on(DataTable.RowSelected, "#engagements")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_engagement(str(event.row_key.value))  # type: ignore[attr-defined]

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def selected_id(self) -> str | None:
        table = self.query_one("#engagements", DataTable)
        if not self.row_ids or table.cursor_row < 0 or table.cursor_row >= len(self.row_ids):
            return None
        return self.row_ids[table.cursor_row]

    def action_open_engagement(self) -> None:
        engagement_id = self.selected_id()
        if engagement_id:
            self.app.open_engagement(engagement_id)  # type: ignore[attr-defined]

    def action_contractor(self) -> None:
        engagement_id = self.selected_id()
        if engagement_id:
            self.app.open_contractor(self.rows_by_id[engagement_id]["contractor"])  # type: ignore[attr-defined]

    def action_new_engagement(self) -> None:
        self.app.open_form("OpenEngagement", None)  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        self.reload()


def _main_currency(data: Dashboard) -> str:
    """The currency most engagements use: the charts show it."""
    if not data.totals:
        return "EUR"
    return max(data.totals, key=lambda t: t["engagements"])["currency"]
