"""A contractor's record across every engagement: outcomes, milestones on time and late,
disputes and how they ended, interview red flags, and the engagements themselves (enter opens
one). Read from the contractor-record read model in a worker; an unknown name shows the
record's "did you mean" message and the closest names to pick from."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.dashboard import status_text

#: From this width the table shows full dates and the client; from WIDE the red flags sit
#: beside the table rather than under it (classes set by HORIZONTAL_BREAKPOINTS).
MEDIUM, WIDE = 100, 140
#: (key, title, width at 80 columns, width from MEDIUM; 0: left out)
COLUMNS = (("opened", "Opened", 7, 10), ("status", "Status", 10, 10), ("title", "Title", 15, 24),
           ("client", "Client", 0, 18), ("on_time", "On time", 7, 7), ("late", "Late", 4, 4),
           ("overdue", "Overdue", 7, 7), ("disputes", "Disp.", 5, 5), ("flags", "Flags", 5, 5))


class ContractorScreen(Screen[None]):
    AUTO_FOCUS = "#contractor-engagements"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (MEDIUM, "-medium"), (WIDE, "-wide")]
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the previous screen",
                id="contractor-back"),
        # A priority binding, so that the footer shows it over the table's own enter.
        Binding("enter", "open_engagement", "Open", priority=True,
                tooltip="Open the engagement under the cursor", id="contractor-open-engagement"),
        Binding("r", "refresh", "Refresh", tooltip="Read the contractor record again",
                id="contractor-refresh"),
    ]

    def __init__(self, name: str, note: str | None = None) -> None:
        super().__init__()
        self.contractor_name = name
        self.note = note
        self.record: dict[str, Any] | None = None
        self.row_ids: list[str] = []
        self.wide: bool | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.note or "", id="contractor-note", classes="" if self.note else "hidden")
        yield Static("loading the contractor record…", id="contractor-message")
        yield OptionList(id="contractor-suggestions", classes="hidden")
        yield Static("", id="contractor-figures")
        with Container(id="contractor-main"):
            yield DataTable(id="contractor-engagements", cursor_type="row", zebra_stripes=True)
            with Vertical(id="contractor-flags-pane"):
                yield Label("Red flags", id="contractor-flags-title", classes="pane-title")
                with VerticalScroll(id="contractor-flags-scroll"):
                    yield Static("", id="contractor-flags")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Contractor · {self.contractor_name}"
        self.load()

    # Loading --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="contractor")
    def load(self) -> None:
        from ledger.errors import LedgerError

        service = self.app.service  # type: ignore[attr-defined]
        try:
            service.catch_up()  # an engagement opened a moment ago counts already
            record = service.contractor(self.contractor_name)
        except LedgerError as error:
            suggestions = service.contractor_suggestions(self.contractor_name)
            self.app.call_from_thread(self.show_unknown, error.message, suggestions)
            return
        self.app.call_from_thread(self.show, record)

    def reload(self) -> None:  # the app's live refresh
        self.load()

    def show_unknown(self, message: str, suggestions: list[str]) -> None:
        self.record = None
        self.sub_title = "not on record"
        shown = self.query_one("#contractor-message", Static)
        shown.update(Text(message, style="bold red"))
        shown.remove_class("hidden")
        options = self.query_one("#contractor-suggestions", OptionList)
        options.clear_options()
        options.add_options([Option(name, id=name) for name in suggestions])
        options.set_class(not suggestions, "hidden")
        for selector in ("#contractor-figures", "#contractor-main"):
            self.query_one(selector).add_class("hidden")
        if suggestions:
            options.highlighted = 0
            options.focus()

    def show(self, record: dict[str, Any]) -> None:
        self.record = record
        self.title = f"Contractor · {record['name']}"
        counts = record["engagements"]
        self.sub_title = (f"{counts['total']} engagement{'s' if counts['total'] != 1 else ''}"
                          f" · as of {record['today']}")
        self.query_one("#contractor-message").add_class("hidden")
        self.query_one("#contractor-suggestions").add_class("hidden")
        for selector in ("#contractor-figures", "#contractor-main"):
            self.query_one(selector).remove_class("hidden")
        self.query_one("#contractor-figures", Static).update(_figures(record))
        flags = record["red_flags"]
        self.query_one("#contractor-flags-title", Label).update(
            "Red flags" + ("" if flags is None else f" ({len(flags)})"))
        self.query_one("#contractor-flags", Static).update(_flags(flags))
        self.fill_table()
        table = self.query_one("#contractor-engagements", DataTable)
        if self.focused is not table:  # after a suggestion was picked from the hidden list
            table.focus()

    def fill_table(self) -> None:
        if self.record is None:
            return
        wide = self.size.width >= MEDIUM
        self.wide = wide
        table = self.query_one("#contractor-engagements", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        columns = [(key, label, wide_width if wide else width)
                   for key, label, width, wide_width in COLUMNS if (wide_width if wide else width)]
        for key, label, width in columns:
            table.add_column(label, key=key, width=width)
        self.row_ids = []
        for row in self.record["track_record"]:
            cells = _cells(row, wide)
            table.add_row(*[cells[key] for key, *_ in columns], key=row["id"])
            self.row_ids.append(row["id"])
        if self.row_ids:
            table.move_cursor(row=min(max(cursor, 0), len(self.row_ids) - 1))

    def on_resize(self, event: Resize) -> None:
        if self.wide is not None and (event.size.width >= MEDIUM) != self.wide:
            self.fill_table()

    # Events ---------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#contractor-engagements")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_engagement(str(event.row_key.value))  # type: ignore[attr-defined]

    @on(OptionList.OptionSelected, "#contractor-suggestions")
    def suggestion_chosen(self, event: OptionList.OptionSelected) -> None:
        self.contractor_name = str(event.option.id)
        self.title = f"Contractor · {self.contractor_name}"
        self.query_one("#contractor-message", Static).update("loading the contractor record…")
        self.load()

    def action_open_engagement(self) -> None:
        suggestions = self.query_one("#contractor-suggestions", OptionList)
        if suggestions.has_focus:
            suggestions.action_select()
            return
        table = self.query_one("#contractor-engagements", DataTable)
        if self.row_ids and 0 <= table.cursor_row < len(self.row_ids):
            self.app.open_engagement(self.row_ids[table.cursor_row])  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        self.load()


def _cells(row: dict[str, Any], wide: bool) -> dict[str, Any]:
    m, d = row["milestones"], row["disputes"]
    unresolved = d["open"] + d["escalated"]
    return {
        "opened": row["opened_at"][:10 if wide else 7],
        "status": status_text(row),
        "title": _clip(row["title"], 24 if wide else 15),
        "client": _clip(row["client"], 18),
        "on_time": _count(m["on_time"], "green"),
        "late": _count(m["late"], "yellow"),
        "overdue": _count(m["overdue"], "bold red"),
        "disputes": _count(d["total"], "bold red" if unresolved else ""),
        "flags": Text("–", justify="right", style="dim") if row["red_flags"] is None
        else _count(row["red_flags"], "red"),
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _count(n: int, style: str) -> Text:
    return Text(str(n) if n else "·", justify="right", style=style if n else "dim")


def _some(counts: list[tuple[int, str]]) -> str:
    """`2 completed, 1 not hired`: the counts that are not zero."""
    return ", ".join(f"{n} {label}" for n, label in counts if n)


def _figures(record: dict[str, Any]) -> Table:
    e, m, d = record["engagements"], record["milestones"], record["disputes"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1)
    ended = _some([(n, o.replace("_", " ")) for o, n in e["by_outcome"].items()])
    grid.add_row("Engagements", Text.assemble(
        (str(e["total"]), "bold"), ": ", _some([(n, s) for s, n in e["by_status"].items()]),
        f" ({ended})" if ended else ""))
    grid.add_row("Milestones", Text.assemble(
        (str(m["total"]), "bold"), f": {m['submitted']} submitted, ",
        (f"{m['on_time']} on time", "green"), ", ",
        (f"{m['late']} late", "yellow" if m["late"] else ""), f" · {m['extended']} extended · ",
        (f"{m['overdue']} overdue", "bold red" if m["overdue"] else "")))
    unresolved = _some([(d["open"], "open"), (d["escalated"], "escalated")])
    resolved = _some([(d["for_client"], "for the client"),
                      (d["for_contractor"], "for the contractor"), (d["split"], "split")])
    grid.add_row("Disputes", Text.assemble(
        (str(d["total"]), "bold"),
        (f": {unresolved}", "bold red") if unresolved else "",
        ("; resolved " if unresolved else ": resolved ") + resolved if resolved else ""))
    flags = record["red_flags"]
    grid.add_row("Interviews", Text.assemble(
        (str(record["interviews"]), "bold"), " · red flags ",
        ("hidden", "italic") if flags is None else (str(len(flags)), "bold red" if flags else "")))
    return grid


def _flags(flags: list[dict[str, Any]] | None) -> Text | str:
    if flags is None:
        return "[i]hidden in the contractor's view (they come from interviews)[/i]"
    if not flags:
        return "[green]none recorded[/green]"
    text = Text()
    for i, flag in enumerate(flags):
        if i:
            text.append("\n")
        text.append("• ", style="red")
        text.append(flag["flag"])
        text.append(f"  · {flag['title']}", style="dim")
    return text
