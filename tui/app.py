"""`ledger tui`: the curator's terminal UI.

Screens: dashboard (start), engagement (tabs), contractor, replay, dispute; modal forms for
every write action, the export dialog and help. Database work runs in thread workers through
`LedgerService`; a timer catches the read models up every second and refreshes the screen on
top when another process recorded something.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.dashboard import DashboardScreen
from tui.engagement_screen import EngagementScreen
from tui.forms import ActionChooser, CommandForm, action_title
from tui.service import LedgerService

LIVE_INTERVAL = 1.0


class LedgerApp(App[None]):
    TITLE = "Engagement Ledger"
    CSS_PATH = "ledger.tcss"
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("e", "export", "Export", tooltip="Export the audit trail (CSV, JSONL, "
                "Markdown, PDF)", id="audit-export"),
        Binding("v", "verify", "Verify", tooltip="Verify the audit trail's hash chains",
                id="audit-verify"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, service: LedgerService, live: bool = True) -> None:
        super().__init__()
        self.service = service
        self.live = live
        self.seen_head = -1

    def on_mount(self) -> None:
        self.sub_title = f"{self.service.actor.role.value}:{self.service.actor.name}"
        self.push_screen(DashboardScreen())
        if self.live:
            self.set_interval(LIVE_INTERVAL, self.poll)
        self.poll()

    # Live -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="live")
    def poll(self) -> None:
        """Catches the read models up; redraws when the log moved since the last look."""
        behind = self.service.behind()
        if behind > 5000:
            self.call_from_thread(self.notify, f"bringing the read models up to date "
                                               f"({behind} events)…", timeout=3)
        applied = self.service.catch_up()
        head = self.service.head()
        if head != self.seen_head or applied:
            first = self.seen_head < 0
            self.seen_head = head
            # The first look redraws only when it caught up on something: a read model
            # rebuilt at start (a new schema version) was empty when the screen first loaded.
            if not first or applied:
                self.call_from_thread(self.refresh_screen)

    def refresh_screen(self) -> None:
        screen = self.screen
        refresh = getattr(screen, "reload", None) or getattr(screen, "load", None)
        if refresh is not None and not isinstance(screen, CommandForm):
            refresh()
        for other in self.screen_stack:  # the dashboard under a modal is redrawn too
            if isinstance(other, DashboardScreen) and other is not screen:
                other.reload()

    # Navigation -----------------------------------------------------------------------

    def open_engagement(self, engagement_id: str) -> None:
        self.push_screen(EngagementScreen(engagement_id))

    def open_contractor(self, name: str) -> None:
        from tui.contractor_screen import ContractorScreen

        self.push_screen(ContractorScreen(name))

    def open_replay(self, engagement_id: str) -> None:
        from tui.replay_screen import ReplayScreen

        self.push_screen(ReplayScreen(engagement_id))

    def open_dispute(self, engagement_id: str, dispute_id: str) -> None:
        from tui.dispute_screen import DisputeScreen

        self.push_screen(DisputeScreen(engagement_id, dispute_id))

    def open_form(self, command_name: str, engagement_id: str | None,
                  preset: dict[str, Any] | None = None) -> None:
        def done(result: str | None) -> None:
            if result is None:
                return
            if command_name == "OpenEngagement" and result:
                self.open_engagement(result)
                self.show_known_contractor(result)
            else:
                self.refresh_screen()

        self.push_screen(CommandForm(command_name, engagement_id, action_title(command_name),
                                     preset), done)

    @work(thread=True, group="known-contractor")
    def show_known_contractor(self, engagement_id: str) -> None:
        """After an engagement is opened: when its contractor has worked with us before, their
        record goes on top of the new engagement, so the curator reads it before going on."""
        from ledger.errors import LedgerError

        contractor = self.service.engagement(engagement_id)["contractor"]
        self.service.catch_up()
        try:
            record = self.service.contractor(contractor)
        except LedgerError:
            return  # not on record: nothing to show
        earlier = [row for row in record["track_record"] if row["id"] != engagement_id]
        if earlier:
            self.call_from_thread(self._contractor_on_record, record["name"], len(earlier))

    def _contractor_on_record(self, name: str, earlier: int) -> None:
        from tui.contractor_screen import ContractorScreen

        plural = "engagement" if earlier == 1 else "engagements"
        self.push_screen(ContractorScreen(name, note=(
            f"{name} is on record: {earlier} earlier {plural}. "
            "Press escape to go on to the new engagement.")))

    def choose_action(self, engagement_id: str) -> None:
        def chosen(command_name: str | None) -> None:
            if command_name:
                self.open_form(command_name, engagement_id,
                               {"what": "milestones"} if command_name == "Sweep" else None)

        self.push_screen(ActionChooser(), chosen)

    def action_help(self) -> None:
        from tui.help_screen import HelpScreen

        self.push_screen(HelpScreen())

    def action_export(self) -> None:
        from tui.export_dialog import ExportDialog

        engagement_id = getattr(self.screen, "engagement_id", None)
        self.push_screen(ExportDialog(engagement_id))

    def action_verify(self) -> None:
        from tui.export_dialog import VerifyDialog

        self.push_screen(VerifyDialog())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New engagement", "Open a new engagement",
                            partial(self.open_form, "OpenEngagement", None))
        yield SystemCommand("Export the audit trail", "CSV, JSONL, Markdown or PDF",
                            self.action_export)
        yield SystemCommand("Verify the audit trail", "Recompute the hash chains",
                            self.action_verify)
        engagement_id = getattr(screen, "engagement_id", None)
        if engagement_id:
            from tui.forms import ACTIONS

            for label, name in ACTIONS:
                yield SystemCommand(label, f"on this engagement ({name})",
                                    partial(self.open_form, name, engagement_id,
                                            {"what": "milestones"} if name == "Sweep" else None))
            yield SystemCommand("Replay", "Step through this engagement's history",
                                partial(self.open_replay, engagement_id))
            contractor = getattr(screen, "action_contractor", None)
            if contractor is not None:
                yield SystemCommand("Contractor record", "This engagement's contractor across "
                                    "every engagement", contractor)

    def on_unmount(self) -> None:
        self.service.close()


def run(db_url: str | None, actor: Any) -> None:
    LedgerApp(LedgerService(db_url, actor)).run()
