"""A dispute: the milestone's story, the evidence from both parties, the engagement as it
stood when the dispute opened, and a resolution form that adds release and refund up against
the escrow before anything is recorded."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Static


class DisputeScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("a", "actions", "Actions")]

    def __init__(self, engagement_id: str, dispute_id: str) -> None:
        super().__init__()
        self.engagement_id = engagement_id
        self.dispute_id = dispute_id
        self.escrow: Decimal | None = None
        self.evidence_ids: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="dispute-top"):
            with VerticalScroll(id="dispute-story"):
                yield Label("The milestone's story", classes="section-title")
                yield Static("loading…", id="story-text")
            with VerticalScroll(id="dispute-evidence"):
                yield Label("Evidence", classes="section-title")
                yield Static("", id="evidence-text")
            with VerticalScroll(id="dispute-then"):
                yield Label("When the dispute opened", classes="section-title")
                yield Static("", id="then-text")
        with Vertical(id="resolution"):
            yield Label("Resolution", classes="section-title")
            with Horizontal(classes="resolution-amounts"):
                yield Label("release ")
                yield Input(placeholder="0.00", id="release")
                yield Label("  refund ")
                yield Input(placeholder="0.00", id="refund")
            yield Static("", id="balance")
            yield Input(placeholder="reason (required)", id="reason")
            yield Input(placeholder="findings: E1=…; E2=…  (one for every evidence item)",
                        id="findings")
            yield Static("", id="resolve-error")
            yield Button("Resolve", variant="primary", id="resolve")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="dispute")
    def load(self) -> None:
        service = self.app.service  # type: ignore[attr-defined]
        state = service.engagement(self.engagement_id)
        dispute = next(d for d in state["disputes"] if d["id"] == self.dispute_id)
        story = service.milestone_story(self.engagement_id, dispute["milestone"])
        then = service.engagement(self.engagement_id, dispute["opened_version"])
        self.app.call_from_thread(self.show, state, dispute, story, then)

    def show(self, state: dict[str, Any], dispute: dict[str, Any], story: list[dict[str, Any]],
             then: dict[str, Any]) -> None:
        ccy = state["currency"]
        milestone = next(m for m in state["milestones"] if m["id"] == dispute["milestone"])
        self.title = f"Dispute {dispute['id']} · {state['title']}"
        self.sub_title = (f"{dispute['status']} · milestone {milestone['id']} "
                          f"{milestone['title']} · {milestone['amount']} {ccy}")
        self.escrow = Decimal(milestone["amount"])
        self.evidence_ids = [e["id"] for e in dispute["evidence"]]
        self.query_one("#story-text", Static).update("\n".join(
            f"[dim]{row['timestamp'][:10]}[/dim] {row['role']}:{row['actor']}\n  {row['summary']}"
            for row in story))
        evidence = [f"[b]{dispute['party']}[/b] opened it: {dispute['reason']}"
                    + (f" (claims {dispute['claim']} {ccy})" if dispute["claim"] else ""), ""]
        for e in dispute["evidence"]:
            evidence.append(f"[b]{e['id']}[/b] {e['party']}: {e['description']}")
            if e["sha256"]:
                evidence.append(f"  [dim]sha256 {e['sha256'][:16]}…[/dim]")
        if dispute["mediation_notes"]:
            evidence += ["", "[b]Mediation notes[/b]"] + [
                f"  {n['at'][:10]} {n['by']}: {n['text']}" for n in dispute["mediation_notes"]]
        if dispute["resolution"]:
            r = dispute["resolution"]
            evidence += ["", f"[green]resolved: release {r['release']}, refund {r['refund']}[/green]",
                         f"  {r['reason']}"] + [f"  {k}: {v}" for k, v in r["findings"].items()]
        self.query_one("#evidence-text", Static).update("\n".join(evidence))
        then_milestone = next(m for m in then["milestones"] if m["id"] == dispute["milestone"])
        grants = [g for g in then["grants"] if g["milestone"] == dispute["milestone"]]
        self.query_one("#then-text", Static).update("\n".join([
            f"version {then['version']} ({then['updated_at'][:10]})",
            f"milestone {then_milestone['id']}: {then_milestone['status']}, due {then_milestone['due']}",
            f"escrow held {then['money']['escrow']} {ccy}",
            "grants: " + (", ".join(f"{g['id']} {g['resource']} ({g['status']})" for g in grants)
                          or "none"),
        ]))
        resolvable = dispute["status"] in ("open", "escalated")
        self.query_one("#resolution").display = resolvable
        self.update_balance()

    @on(Input.Changed, "#release")
    @on(Input.Changed, "#refund")
    def update_balance(self) -> None:
        if self.escrow is None:
            return
        parts = []
        total = Decimal(0)
        for name in ("release", "refund"):
            text = self.query_one(f"#{name}", Input).value.strip() or "0"
            try:
                total += Decimal(text)
            except InvalidOperation:
                parts.append(f"[red]{name} is not a number[/red]")
        if parts:
            self.query_one("#balance", Static).update("  ".join(parts))
            return
        gap = self.escrow - total
        colour = "green" if gap == 0 else "red"
        words = "adds up" if gap == 0 else (f"{gap} still to assign" if gap > 0 else f"{-gap} too much")
        self.query_one("#balance", Static).update(
            f"release + refund = [b]{total}[/b] of escrow [b]{self.escrow}[/b]: "
            f"[{colour}]{words}[/{colour}]")

    @on(Button.Pressed, "#resolve")
    def resolve(self) -> None:
        findings = {}
        for pair in self.query_one("#findings", Input).value.split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                findings[key.strip()] = value.strip()
        fields = {"engagement_id": self.engagement_id, "dispute_id": self.dispute_id,
                  "release": self.query_one("#release", Input).value.strip() or "0",
                  "refund": self.query_one("#refund", Input).value.strip() or "0",
                  "reason": self.query_one("#reason", Input).value.strip(),
                  "findings": findings}
        self.submit(fields)

    @work(thread=True, exclusive=True, group="resolve")
    def submit(self, fields: dict[str, Any]) -> None:
        from ledger.commands import ResolveDispute
        from ledger.errors import LedgerError

        try:
            self.app.service.execute(ResolveDispute, fields)  # type: ignore[attr-defined]
        except LedgerError as error:
            self.app.call_from_thread(self.query_one("#resolve-error", Static).update,
                                      f"[red]{error.message}[/red]")
            return
        self.app.call_from_thread(self.app.notify, f"dispute {self.dispute_id} resolved")
        self.app.call_from_thread(self.load)

    def action_actions(self) -> None:
        self.app.choose_action(self.engagement_id)  # type: ignore[attr-defined]
