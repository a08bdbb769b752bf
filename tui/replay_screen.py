"""Replay: step through an engagement's events and see it as it was after each one, with
what that event changed highlighted."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, ProgressBar, Static


#: States kept by the replay screen (a step back or forth needs one of the last two again).
STATES_KEPT = 8


class ReplayScreen(Screen[None]):
    AUTO_FOCUS = "#replay-state"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("left", "step(-1)", "Back one", priority=True),
        Binding("right", "step(1)", "Forward one", priority=True),
        Binding("home", "go_first", "First", priority=True),
        Binding("end", "go_last", "Last", priority=True),
        Binding("t", "jump", "Jump to time"),
    ]

    def __init__(self, engagement_id: str, version: int | None = None) -> None:
        super().__init__()
        self.engagement_id = engagement_id
        self.version = version
        self.history: list[dict[str, Any]] = []
        #: States already loaded, by version (the last few): a step loads the state after
        #: the event and the one before it, and the next step needs one of them again.
        self._states: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._states_lock = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="replay-event")
        yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="replay-bar")
        yield Input(placeholder="jump to: YYYY-MM-DD or YYYY-MM-DDTHH:MM (enter)", id="replay-at",
                    classes="hidden")
        with Horizontal():
            with VerticalScroll(id="replay-state"):
                yield Static("loading…", id="replay-state-text")
            with VerticalScroll(id="replay-changes"):
                yield Static("", id="replay-changes-text")
        yield Footer()

    def on_mount(self) -> None:
        self.load_history()

    @work(thread=True, exclusive=True, group="replay-history")
    def load_history(self) -> None:
        history = self.app.service.history(self.engagement_id)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._history_loaded, history)

    def _history_loaded(self, history: list[dict[str, Any]]) -> None:
        self.history = history
        self.query_one("#replay-bar", ProgressBar).update(total=len(history))
        self.show_version(self.version or len(history))

    def load(self) -> None:  # the app's live refresh: new events extend the bar
        with self._states_lock:  # what a version reads as can change (a forgotten contractor)
            self._states.clear()
        self.load_history()

    def show_version(self, version: int) -> None:
        if not self.history:
            return
        self.version = max(1, min(version, len(self.history)))
        self.query_one("#replay-bar", ProgressBar).update(progress=self.version)
        self.render_version(self.version)

    @work(thread=True, exclusive=True, group="replay")
    def render_version(self, version: int) -> None:
        from ledger.views import changes as changes_between

        # As `LedgerService.replay`: the state after the event, and what differs from the
        # state before it (none for the opening event); states loaded for the last steps are
        # used again.
        state = self._state(version)
        before = self._state(version - 1) if version > 1 else {}
        changes = changes_between(before, state) if before else []
        self.app.call_from_thread(self._show, version, state, changes)

    def _state(self, version: int) -> dict[str, Any]:
        with self._states_lock:
            if version in self._states:
                self._states.move_to_end(version)
                return self._states[version]
        state = self.app.service.engagement(self.engagement_id, version)  # type: ignore[attr-defined]
        with self._states_lock:
            self._states[version] = state
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        return state

    def _show(self, version: int, state: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        from ledger.tables import render_state

        event = self.history[version - 1]
        self.title = f"Replay · {state['title']}"
        self.sub_title = f"version {version} of {len(self.history)}"
        self.query_one("#replay-event", Static).update(
            f"[b]v{version}[/b]  {event['timestamp'][:19].replace('T', ' ')}  "
            f"{event['role']}:{event['actor']}  [b]{event['type']}[/b]  {event['summary']}")
        changed = {c["path"].split(".")[0] for c in changes}
        text = render_state(state)
        self.query_one("#replay-state-text", Static).update(text)
        lines = ["[b]What this event changed[/b]", ""]
        for c in changes[:200]:
            lines.append(f"[yellow]{c['path']}[/yellow]")
            lines.append(f"  [red]- {c['before']!s:.60}[/red]")
            lines.append(f"  [green]+ {c['after']!s:.60}[/green]")
        if not changes:
            lines.append("the engagement was opened" if version == 1 else "nothing visible changed")
        if changed:
            lines.append("")
            lines.append("parts touched: " + ", ".join(sorted(changed)))
        self.query_one("#replay-changes-text", Static).update("\n".join(lines))

    def _typing(self) -> Input | None:
        field = self.query_one("#replay-at", Input)
        return field if field.has_focus else None

    def action_step(self, delta: int) -> None:
        if (field := self._typing()) is not None:  # the arrows move the text cursor then
            field.action_cursor_left() if delta < 0 else field.action_cursor_right()
        elif self.version is not None:
            self.show_version(self.version + delta)

    def action_go_first(self) -> None:
        if (field := self._typing()) is not None:
            field.action_home()
        else:
            self.show_version(1)

    def action_go_last(self) -> None:
        if (field := self._typing()) is not None:
            field.action_end()
        else:
            self.show_version(len(self.history))

    def action_jump(self) -> None:
        field = self.query_one("#replay-at", Input)
        field.remove_class("hidden")
        field.focus()

    @on(Input.Submitted, "#replay-at")
    def jump_to(self, event: Input.Submitted) -> None:
        self.find_version(event.value.strip())

    @work(thread=True, exclusive=True, group="replay-jump")
    def find_version(self, moment: str) -> None:
        from ledger.errors import LedgerError

        try:
            version = self.app.service.version_at(self.engagement_id, moment)  # type: ignore[attr-defined]
        except LedgerError as error:
            self.app.call_from_thread(self.notify, error.message, severity="error")
            return
        self.app.call_from_thread(self._jumped, version)

    def _jumped(self, version: int) -> None:
        field = self.query_one("#replay-at", Input)
        field.add_class("hidden")
        self.query_one("#replay-state").focus()
        self.show_version(version)
