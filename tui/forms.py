"""Every write action as a form, built from the same pydantic command the command line uses.

`CommandForm` lays out one field per command field (a select for choices, text otherwise;
`key=value; …` for maps, `a; b` for lists, a file path for a document's hash), validates with
`Command.build` and runs the command in a worker. Invalid input is shown under its field; a
refusal by a rule or a role is shown at the top, and nothing is recorded.
"""

from __future__ import annotations

import enum
import re
import typing
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

#: (label, command class, key) — the order of the actions list; `None` key: palette only.
ACTIONS: tuple[tuple[str, str], ...] = (
    ("Log a note", "LogNote"),
    ("Record an interview", "RecordInterview"),
    ("Draft an agreement", "DraftAgreement"),
    ("Record a counsel review", "ReviewAgreement"),
    ("Sign an agreement", "SignAgreement"),
    ("Amend an agreement", "AmendAgreement"),
    ("Acknowledge the playbook", "AcknowledgePlaybook"),
    ("Record a disclosure", "RecordDisclosure"),
    ("Define a milestone", "DefineMilestone"),
    ("Fund a milestone", "FundMilestone"),
    ("Submit work", "SubmitWork"),
    ("Request changes", "RequestChanges"),
    ("Accept a milestone", "AcceptMilestone"),
    ("Release a payment", "ReleasePayment"),
    ("Cancel a milestone", "CancelMilestone"),
    ("Request an extension", "RequestExtension"),
    ("Grant an extension", "GrantExtension"),
    ("Deny an extension", "DenyExtension"),
    ("Propose a milestone amendment", "ProposeMilestoneAmendment"),
    ("Sign a milestone amendment", "SignMilestoneAmendment"),
    ("Grant access", "GrantAccess"),
    ("Recertify access", "RecertifyAccess"),
    ("Revoke access", "RevokeAccess"),
    ("Open a dispute", "OpenDispute"),
    ("Submit evidence", "SubmitEvidence"),
    ("Write a mediation note", "NoteMediation"),
    ("Resolve a dispute", "ResolveDispute"),
    ("Escalate a dispute", "EscalateDispute"),
    ("Reassign the curator", "ReassignCurator"),
    ("Change the budget", "ChangeBudget"),
    ("Record a correction", "RecordCorrection"),
    ("Close the engagement", "CloseEngagement"),
    ("Run the milestone sweep", "Sweep"),
)
HIDDEN = {"command_id", "engagement_id"}
LABELS = {"party_name": "party", "sha256": "document (path)", "packet": "packet path (.zip)"}
HINTS = {
    "scores": "criterion=0..5; …  e.g. scope_understanding=4; timeline_realism=3",
    "scenarios": "scenario=pass|fail; …",
    "findings": "E1=finding; E2=finding",
    "red_flags": "one; another",
    "due": "YYYY-MM-DD", "until": "YYYY-MM-DD (default: due + grace)",
    "sha256": "path of the document; its SHA-256 is recorded",
}


def command_class(name: str) -> type:
    import ledger.commands as commands

    return getattr(commands, name)


def _choices(annotation: Any) -> list[str] | None:
    """The allowed values of a Literal or Enum field (also inside Optional/Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [str(v) for v in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    if origin is typing.Annotated or origin is typing.Union or str(origin) == "types.UnionType":
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                found = _choices(arg)
                if found:
                    return found
    return None


def _kind(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is dict:
        return "map"
    if origin is list:
        return "list"
    if origin in (typing.Union, typing.Annotated) or str(origin) == "types.UnionType":
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _kind(arg)
    return "text"


class CommandForm(ModalScreen[str | None]):
    AUTO_FOCUS = "#form Input, #form Select"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Record")]

    def __init__(self, command_name: str, engagement_id: str | None, title: str | None = None,
                 preset: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.command_name = command_name
        self.command_class = command_class(command_name)
        self.engagement_id = engagement_id
        self.form_title = title or command_name
        self.preset = preset or {}
        self.fields = {name: info for name, info in self.command_class.model_fields.items()
                       if name not in HIDDEN}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form"):
            yield Label(f"[b]{self.form_title}[/b]", id="form-title")
            yield Static("", id="form-error")
            for name, info in self.fields.items():
                required = info.is_required()
                label = LABELS.get(name, name.replace("_", " "))
                yield Label(f"{label}{' *' if required else ''}", classes="field-label")
                choices = _choices(info.annotation)
                preset = self.preset.get(name)
                if choices:
                    yield Select([(c, c) for c in choices], id=f"field-{name}",
                                 allow_blank=not required,
                                 value=preset if preset in choices else (
                                     choices[0] if required else Select.BLANK))
                else:
                    yield Input(value="" if preset is None else str(preset), id=f"field-{name}",
                                placeholder=HINTS.get(name, ""))
                yield Static("", id=f"error-{name}", classes="field-error")
            with Horizontal(id="form-buttons"):
                yield Button("Record", variant="primary", id="submit")
                yield Button("Cancel", id="cancel")

    def values(self) -> dict[str, Any]:
        from ledger.errors import InvalidInput
        from ledger.validation import sha256_of_file

        out: dict[str, Any] = {}
        if self.engagement_id is not None and "engagement_id" in self.command_class.model_fields:
            out["engagement_id"] = self.engagement_id
        for name, info in self.fields.items():
            widget = self.query_one(f"#field-{name}")
            if isinstance(widget, Select):
                if widget.value is not Select.BLANK:
                    out[name] = widget.value
                continue
            text = widget.value.strip()  # type: ignore[attr-defined]
            if not text:
                continue
            kind = _kind(info.annotation)
            if kind == "map":
                pairs = [p.strip() for p in re.split(r"[;\n]", text) if p.strip()]
                mapping = {}
                for pair in pairs:
                    key, sep, value = pair.partition("=")
                    if not sep:
                        raise InvalidInput(f"{name}: write KEY=VALUE pairs separated by ';', "
                                           f"got {pair!r}")
                    mapping[key.strip()] = value.strip()
                out[name] = mapping
            elif kind == "list":
                out[name] = [p.strip() for p in text.split(";") if p.strip()]
            elif name == "sha256" and not re.fullmatch(r"[0-9a-fA-F]{64}", text):
                out[name] = sha256_of_file(text)
            else:
                out[name] = text
        return out

    def show_error(self, message: str) -> None:
        for name in self.fields:
            self.query_one(f"#error-{name}", Static).update("")
        label = message.split(":", 1)[0].strip().replace(" ", "_")
        if ":" in message and label in self.fields:
            self.query_one(f"#error-{label}", Static).update(f"[red]{message.split(':', 1)[1].strip()}[/red]")
            self.query_one("#form-error", Static).update("[red]please correct the field marked below[/red]")
        else:
            self.query_one("#form-error", Static).update(f"[red]{message}[/red]")

    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        from ledger.errors import LedgerError

        try:
            fields = self.values()
        except LedgerError as error:
            self.show_error(error.message)
            return
        self.query_one("#submit", Button).disabled = True
        self.run_command(fields)

    @work(thread=True, exclusive=True, group="command")
    def run_command(self, fields: dict[str, Any]) -> None:
        from ledger.errors import LedgerError

        try:
            result = self.app.service.execute(self.command_class, fields)  # type: ignore[attr-defined]
        except LedgerError as error:
            self.app.call_from_thread(self._refused, error)
            return
        self.app.call_from_thread(self._done, result)

    def _refused(self, error: Any) -> None:
        self.query_one("#submit", Button).disabled = False
        kind = {2: "invalid input", 3: "refused", 4: "not permitted", 5: "conflict"}.get(
            error.exit_code, "error")
        self.show_error(error.message if error.exit_code == 2 else f"{kind}: {error.message}")

    def _done(self, result: str | None) -> None:
        self.app.notify(f"{self.form_title}: recorded" + (f" ({result})" if result else ""))
        self.dismiss(result or "")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ActionChooser(ModalScreen[str | None]):
    """The list of actions on one engagement; type to narrow it."""

    AUTO_FOCUS = "#chooser-filter"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="chooser"):
            yield Label("[b]Record…[/b]  (type to filter, enter to choose)")
            yield Input(placeholder="filter", id="chooser-filter")
            yield OptionList(*[Option(label, id=name) for label, name in ACTIONS],
                             id="chooser-list")

    @on(Input.Changed, "#chooser-filter")
    def narrow(self, event: Input.Changed) -> None:
        options = self.query_one("#chooser-list", OptionList)
        options.clear_options()
        words = event.value.lower().split()
        options.add_options([Option(label, id=name) for label, name in ACTIONS
                             if all(w in label.lower() for w in words)])
        options.highlighted = 0 if options.option_count else None

    @on(Input.Submitted, "#chooser-filter")
    def take_first(self) -> None:
        options = self.query_one("#chooser-list", OptionList)
        if options.option_count:
            self.dismiss(options.get_option_at_index(options.highlighted or 0).id)

    @on(OptionList.OptionSelected, "#chooser-list")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


def action_title(command_name: str) -> str:
    for label, name in ACTIONS:
        if name == command_name:
            return label
    return "Open an engagement" if command_name == "OpenEngagement" else command_name
