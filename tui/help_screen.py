"""`?`: what every key does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Engagement Ledger — keys

| where | key | does |
|---|---|---|
| everywhere | `?` | this help |
| everywhere | `ctrl+p` | command palette: every action, export, verify, new engagement |
| everywhere | `e` / `v` | export the audit trail / verify it |
| everywhere | `ctrl+q` | quit |
| dashboard | `/` | filter the engagements as you type |
| dashboard | `enter` | open the engagement under the cursor |
| dashboard | click a column title | sort by it |
| dashboard | `c` | the contractor's record |
| dashboard | `n` | open a new engagement |
| engagement | `a` | record an action (a form; errors show inline) |
| engagement | `p` | replay its history |
| engagement | `d` | its latest dispute |
| engagement | `c` | the contractor's record |
| contractor | `enter` | open the engagement under the cursor |
| contractor | `r` | read the record again |
| new engagement | `ctrl+s` | record it; a contractor already on record shows their record first |
| export / verify | `enter` / `ctrl+s` | start the export / the verification |
| export | `←` `→` then `space` | choose the format (CSV, JSONL, Markdown, PDF) |
| replay | `←` `→` / `home` `end` | one event back / forward, first / last |
| replay | `t` | jump to a date or time |
| any screen | `escape` | back; closes a dialog (and stops its export) |

Everything another curator records appears within a second or two.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Close"),
                Binding("question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Markdown(HELP)
