"""One engagement, in tabs: overview, interviews, agreements, milestones, access, disputes,
timeline. The state comes from the application service (the engagement's own aggregate,
from its cache or snapshot), loaded in a worker."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

TABS = ("overview", "interviews", "agreements", "milestones", "access", "disputes", "timeline")
MILESTONE_STYLE = {"released": "green", "settled": "green", "cancelled": "dim",
                   "disputed": "bold red", "submitted": "yellow", "accepted": "cyan"}
GRANT_STYLE = {"active": "green", "revoked": "dim", "expired": "dim"}


def table(id_: str, *columns: str) -> DataTable[Any]:
    widget: DataTable[Any] = DataTable(id=id_, cursor_type="row", zebra_stripes=True)
    widget.add_columns(*columns)
    return widget


class EngagementScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "actions", "Actions"),
        Binding("p", "replay", "Replay"),
        Binding("d", "dispute", "Dispute"),
        Binding("c", "contractor", "Contractor"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, engagement_id: str) -> None:
        super().__init__()
        self.engagement_id = engagement_id
        self.state: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(*[t.title() for t in TABS], id="tabs"):
            with TabPane("Overview", id="overview"):
                yield Static("loading…", id="overview-text")
            with TabPane("Interviews", id="interviews"):
                yield Static("", id="interviews-text")
            with TabPane("Agreements", id="agreements"):
                yield table("agreements-table", "id", "kind", "jurisdiction", "version", "status",
                            "client", "contractor", "review")
            with TabPane("Milestones", id="milestones"):
                yield table("milestones-table", "id", "title", "status", "amount", "due",
                            "extensions", "pending")
            with TabPane("Access", id="access"):
                yield table("access-table", "id", "resource", "level", "milestone", "status",
                            "until", "ended")
            with TabPane("Disputes", id="disputes"):
                yield table("disputes-table", "id", "milestone", "party", "status", "claim",
                            "evidence", "outcome")
            with TabPane("Timeline", id="timeline"):
                yield table("timeline-table", "v", "time", "actor", "type", "summary")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="engagement")
    def load(self) -> None:
        service = self.app.service  # type: ignore[attr-defined]
        state = service.engagement(self.engagement_id)
        history = service.history(self.engagement_id)
        self.app.call_from_thread(self.show, state, history)

    def show(self, s: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.state = s
        self.title = s["title"]
        self.sub_title = f"{s['status']} · {s['client']} ↔ {s['contractor']} · curator {s['curator']}"
        money = s["money"]
        ccy = s["currency"]
        lines = [
            f"[b]{s['title']}[/b]   [{s['status']}{' / ' + s['outcome'] if s['outcome'] else ''}]",
            f"id {s['id']} · version {s['version']}",
            "",
            f"client      {s['client']}",
            f"contractor  {s['contractor']}",
            f"curator     {s['curator']}",
            f"budget      {s['budget']} {ccy} (committed {money['committed']})",
            f"money       funded {money['funded']} · released {money['released']} · "
            f"refunded {money['refunded']} · [b]escrow {money['escrow']}[/b]",
            f"inspection  {s['inspection_days']} days · grace {s['grace_days']} days",
            f"opened      {s['opened_at'][:16]}   updated {s['updated_at'][:16]}",
        ]
        if s["redacted"]:
            lines.append("[i]redacted view: interviews and mediation notes are hidden[/i]")
        if s["notes"]:
            lines += ["", "[b]Notes[/b]"] + [f"  {n['at'][:10]} {n['by']}: {n['text']}"
                                            for n in s["notes"][-5:]]
        self.query_one("#overview-text", Static).update("\n".join(lines))
        self.query_one("#interviews-text", Static).update(_interviews(s))
        self._fill("agreements-table", [
            (a["id"], a["kind"].upper(), a["jurisdiction"], f"v{v['version']}", v["status"],
             _signed(v, "client"), _signed(v, "contractor"), v["reviewed_by"] or "–")
            for a in s["agreements"] for v in a["versions"][-1:]])
        self._fill("milestones-table", [
            (m["id"], m["title"], Text(m["status"], style=MILESTONE_STYLE.get(m["status"], "")),
             Text(f"{m['amount']} {ccy}", justify="right"), m["due"], str(m["extensions"] or ""),
             _pending(m))
            for m in s["milestones"]])
        today = self.app.service.day().isoformat()  # type: ignore[attr-defined]
        self._fill("access-table", [
            (g["id"], g["resource"], g["level"], g["milestone"],
             Text("overdue" if g["status"] == "active" and g["until"] < today else g["status"],
                  style="bold red" if g["status"] == "active" and g["until"] < today
                  else GRANT_STYLE.get(g["status"], "")),
             g["until"], (g["ended_at"] or "")[:10])
            for g in s["grants"]])
        self._fill("disputes-table", [
            (d["id"], d["milestone"], d["party"],
             Text(d["status"], style="bold red" if d["status"] != "resolved" else "green"),
             d["claim"] or "–", str(len(d["evidence"])), _outcome(d))
            for d in s["disputes"]])
        self._fill("timeline-table", [
            (str(h["version"]), h["timestamp"][:16].replace("T", " "), f"{h['role']}:{h['actor']}",
             h["type"], h["summary"]) for h in history])

    def _fill(self, id_: str, rows: list[tuple[Any, ...]]) -> None:
        widget = self.query_one(f"#{id_}", DataTable)
        widget.clear()
        widget.add_rows(rows)

    def action_refresh(self) -> None:
        self.load()

    def action_actions(self) -> None:
        self.app.choose_action(self.engagement_id)  # type: ignore[attr-defined]

    def action_replay(self) -> None:
        self.app.open_replay(self.engagement_id)  # type: ignore[attr-defined]

    def action_dispute(self) -> None:
        if self.state and self.state["disputes"]:
            self.app.open_dispute(self.engagement_id, self.state["disputes"][-1]["id"])  # type: ignore[attr-defined]
        else:
            self.notify("this engagement has no dispute", severity="warning")

    def action_contractor(self) -> None:
        if self.state:
            self.app.open_contractor(self.state["contractor"])  # type: ignore[attr-defined]


def _signed(version: dict[str, Any], party: str) -> str:
    signature = version["signatures"].get(party)
    return signature["signer"] if signature else "–"


def _pending(m: dict[str, Any]) -> str:
    parts = []
    if m["extension_request"]:
        parts.append(f"extension to {m['extension_request']['due']}?")
    if m["amendment"]:
        signed = [p for p, s in m["amendment"]["signatures"].items() if s]
        parts.append(f"amendment {m['amendment']['number']} ({', '.join(signed) or 'unsigned'})")
    return "; ".join(parts)


def _outcome(d: dict[str, Any]) -> str:
    if d["resolution"]:
        return f"release {d['resolution']['release']} / refund {d['resolution']['refund']}"
    if d["escalation"]:
        return f"escalated to {d['escalation']['to']}"
    return ""


def _interviews(s: dict[str, Any]) -> str:
    if s["interviews"] is None:
        return "[i]interviews are hidden in the contractor's view[/i]"
    if not s["interviews"]:
        return "no interviews recorded"
    out = []
    for i in s["interviews"]:
        out.append(f"[b]{i['id']}[/b] by {i['interviewer']} on {i['at'][:10]}: "
                   f"[b]{i['decision']}[/b]")
        out.append("  scores: " + ", ".join(f"{k} {v}/5" for k, v in i["scores"].items()))
        if i["scenarios"]:
            out.append("  scenarios: " + ", ".join(
                f"{k} [{'green' if v == 'pass' else 'red'}]{v}[/]" for k, v in i["scenarios"].items()))
        for flag in i["red_flags"]:
            out.append(f"  [red]red flag:[/red] {flag}")
        if i["notes"]:
            out.append(f"  notes: {i['notes']}")
    return "\n".join(out)
