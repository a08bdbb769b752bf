"""The audit-trail dialogs: export (format, range, path, progress) and verify (the hash chains
recomputed from the stored bytes, optionally against a digest kept elsewhere).

Both run in a thread worker through `LedgerService` and report progress to a ProgressBar;
the outcome, or the ledger's refusal, is shown inline on one line and nothing closes by itself,
so the curator can read the digest or the failing entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, RadioButton, RadioSet, Static
from textual.worker import get_current_worker

#: (format, label, file extension)
FORMATS = (("csv", "CSV", "csv"), ("jsonl", "JSONL", "jsonl"), ("md", "Markdown", "md"),
           ("pdf", "PDF", "pdf"))
EXTENSIONS = {f".{ext}" for _, _, ext in FORMATS}
#: Seconds between two progress redraws: a long export calls back once per batch.
PROGRESS_EVERY = 0.05


class Cancelled(Exception):
    """The dialog closed while its worker was still running."""


def one_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


class AuditDialog(ModalScreen[None]):
    """What the export and verify dialogs share: a worker with a progress bar, a result line."""

    running = False

    def progress_reporter(self) -> Callable[[int, int], None]:
        """A callback for the worker's thread: redraws the bar at most every PROGRESS_EVERY
        seconds, and stops the work when the dialog has been closed."""
        worker = get_current_worker()
        last = 0.0

        def report(done: int, total: int) -> None:
            nonlocal last
            if worker.is_cancelled:
                raise Cancelled
            now = time.monotonic()
            if done >= total or now - last >= PROGRESS_EVERY:
                last = now
                self.app.call_from_thread(self.show_progress, done, total)

        return report

    def show_progress(self, done: int, total: int) -> None:
        if self.is_attached:
            self.query_one(ProgressBar).update(total=max(total, 1), progress=done)

    def start(self) -> None:
        self.running = True
        self.query_one("#dialog-submit", Button).disabled = True
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.remove_class("hidden")
        self.query_one("#dialog-result", Static).update("")

    def finish(self, result: Text) -> None:
        if not self.is_attached:
            return
        self.running = False
        self.query_one("#dialog-submit", Button).disabled = False
        bar = self.query_one(ProgressBar)
        if bar.total is None:  # nothing was reported: an error before the first batch
            bar.add_class("hidden")
        self.query_one("#dialog-result", Static).update(result)

    def fail(self, message: str) -> None:
        self.finish(Text(one_line(message), style="bold red"))

    def action_cancel(self) -> None:
        # Closing cancels the worker too (workers belong to the screen); the export stops at
        # its next progress report.
        self.dismiss(None)


class ExportDialog(AuditDialog):
    AUTO_FOCUS = "#export-output"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close the dialog (stops an export)",
                id="dialog-cancel"),
        Binding("ctrl+s", "submit", "Export", tooltip="Write the export", id="export-submit"),
    ]

    def __init__(self, engagement_id: str | None = None) -> None:
        super().__init__()
        self.engagement_id = engagement_id
        self.fmt = "csv"
        self.replace: str | None = None  # the path the curator agreed to overwrite
        self.result: Any = None  # the last export's ExportResult

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="audit-dialog"):
            yield Label("[b]Export the audit trail[/b]", id="dialog-title")
            with Horizontal(classes="dialog-row"):
                yield Label("format", classes="dialog-label")
                with RadioSet(id="export-format", compact=True):
                    for fmt, label, _ in FORMATS:
                        yield RadioButton(label, value=fmt == self.fmt, id=f"format-{fmt}")
            with Horizontal(classes="dialog-row"):
                yield Label("engagement", classes="dialog-label")
                yield Input(self.engagement_id or "", placeholder="all engagements",
                            id="export-engagement", compact=True)
            with Horizontal(classes="dialog-row"):
                yield Label("since", classes="dialog-label")
                yield Input(placeholder="YYYY-MM-DD[THH:MM]", id="export-since", compact=True)
                yield Label("until", classes="dialog-label dialog-label-inner")
                yield Input(placeholder="YYYY-MM-DD[THH:MM]", id="export-until", compact=True)
            with Horizontal(classes="dialog-row"):
                yield Label("output", classes="dialog-label")
                yield Input(self.default_output(), id="export-output", compact=True)
            yield ProgressBar(show_eta=False, id="dialog-progress", classes="hidden")
            yield Static("", id="dialog-result")
            with Horizontal(id="dialog-buttons"):
                yield Button("Export", variant="primary", id="dialog-submit")
                yield Button("Cancel", id="dialog-cancel")
        yield Footer()

    def default_output(self) -> str:
        day = self.app.service.day().strftime("%Y%m%d")  # type: ignore[attr-defined]
        scope = f"-{self.engagement_id[:8]}" if self.engagement_id else ""
        return f"audit{scope}-{day}.{self.fmt}"

    @on(RadioSet.Changed, "#export-format")
    def format_changed(self, event: RadioSet.Changed) -> None:
        self.fmt = str(event.pressed.id).removeprefix("format-")
        output = self.query_one("#export-output", Input)
        path = Path(output.value.strip())
        if path.suffix in EXTENSIONS:  # a name of the curator's own keeps its stem
            output.value = str(path.with_suffix(f".{self.fmt}"))

    @on(Input.Submitted)
    @on(Button.Pressed, "#dialog-submit")
    def action_submit(self) -> None:
        if self.running:
            return
        output = self.query_one("#export-output", Input).value.strip()
        if not output:
            self.fail("output: give the path of the file to write")
            return
        target = Path(output).expanduser()
        if target.exists() and self.replace != output:
            self.replace = output
            self.query_one("#dialog-result", Static).update(Text(
                f"{target} exists: press Export again to replace it", style="yellow"))
            return
        fields = {name: self.query_one(f"#export-{name}", Input).value.strip() or None
                  for name in ("engagement", "since", "until")}
        self.start()
        self.export(self.fmt, str(target), fields)

    @work(thread=True, exclusive=True, group="export")
    def export(self, fmt: str, output: str, fields: dict[str, str | None]) -> None:
        from ledger.errors import LedgerError

        try:
            result = self.app.service.export(  # type: ignore[attr-defined]
                fmt, output, progress=self.progress_reporter(), **fields)
        except Cancelled:
            return  # the export writes a temporary file and drops it: nothing half-written
        except LedgerError as error:
            self.app.call_from_thread(self.fail, error.message)
            return
        except OSError as error:
            self.app.call_from_thread(self.fail, f"cannot write {output}: "
                                                 f"{error.strerror or error}")
            return
        self.app.call_from_thread(self.exported, result)

    def exported(self, result: Any) -> None:
        self.replace = None
        self.result = result
        plural = "entry" if result.entries == 1 else "entries"
        text = Text.assemble(
            ("✓ ", "bold green"), (f"{result.entries} {plural}", "bold"), " written to\n",
            result.path, "\ndigest ", (result.digest, "bold"))
        text.overflow = "fold"  # a long path or the digest breaks anywhere rather than clips
        self.finish(text)

    @on(Button.Pressed, "#dialog-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()


class VerifyDialog(AuditDialog):
    AUTO_FOCUS = "#verify-digest"
    BINDINGS = [
        Binding("escape", "cancel", "Close", tooltip="Close the dialog (stops a verification)",
                id="dialog-cancel"),
        Binding("ctrl+s", "submit", "Verify", tooltip="Verify the audit trail",
                id="verify-submit"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="audit-dialog"):
            yield Label("[b]Verify the audit trail[/b]", id="dialog-title")
            yield Static("Recomputes both hash chains from the events as stored. A digest kept "
                         "elsewhere (`ledger audit digest`) is checked to be on the chain.",
                         classes="dialog-help")
            with Horizontal(classes="dialog-row"):
                yield Label("digest", classes="dialog-label")
                yield Input(placeholder="optional: POSITION:HASH or HASH", id="verify-digest",
                            compact=True)
            yield ProgressBar(show_eta=False, id="dialog-progress", classes="hidden")
            yield Static("", id="dialog-result")
            with Horizontal(id="dialog-buttons"):
                yield Button("Verify", variant="primary", id="dialog-submit")
                yield Button("Close", id="dialog-cancel")
        yield Footer()

    @on(Input.Submitted)
    @on(Button.Pressed, "#dialog-submit")
    def action_submit(self) -> None:
        if self.running:
            return
        self.start()
        self.verify(self.query_one("#verify-digest", Input).value.strip() or None)

    @work(thread=True, exclusive=True, group="verify")
    def verify(self, digest_text: str | None) -> None:
        from ledger.errors import LedgerError

        try:
            report = self.app.service.verify(  # type: ignore[attr-defined]
                digest_text, progress=self.progress_reporter())
        except Cancelled:
            return
        except LedgerError as error:
            self.app.call_from_thread(self.fail, error.message)
            return
        self.app.call_from_thread(self.verified, report)

    def verified(self, report: Any) -> None:
        if report.ok:
            self.finish(Text.assemble(("✓ ", "bold green"), (report.message, "bold green")))
        else:
            self.finish(Text.assemble(("✗ audit trail NOT intact: ", "bold red"),
                                      (report.problem, "red")))

    @on(Button.Pressed, "#dialog-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()
