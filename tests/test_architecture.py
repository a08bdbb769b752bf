"""The layout is the architecture: dependencies run ledger <- projections <- tui, and stored
event topics are explicit and unique."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ledger.events import EVENT_CLASSES, TOPIC_PREFIX


def modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(output.stdout.split())


@pytest.mark.parametrize("module", [
    "ledger.application", "ledger.cli", "ledger.demo", "ledger.views", "ledger.packets", "projections",
])
def test_headless_packages_never_import_textual(module: str) -> None:
    loaded = modules_loaded_by(f"import {module}")
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_ledger_never_imports_projections_or_tui() -> None:
    loaded = modules_loaded_by("import ledger.application, ledger.cli, ledger.demo, ledger.views")
    assert not {m for m in loaded if m.split(".")[0] in ("projections", "tui")}


def test_command_line_starts_without_heavy_modules() -> None:
    loaded = modules_loaded_by("import ledger.cli")
    assert not {"eventsourcing", "pydantic", "psycopg", "pycountry", "reportlab"} & loaded


def test_every_event_class_has_its_own_explicit_topic() -> None:
    topics = [cls.__dict__.get("TOPIC") for cls in EVENT_CLASSES.values()]
    assert all(topic and topic.startswith(TOPIC_PREFIX) for topic in topics)
    assert len(set(topics)) == len(topics)
    for name, cls in EVENT_CLASSES.items():
        assert cls.TOPIC == f"{TOPIC_PREFIX}{name}"


def test_an_event_class_without_its_own_topic_is_refused() -> None:
    from ledger.events import EngagementEvent

    with pytest.raises(TypeError, match="must define its own TOPIC"):
        type("Nameless", (EngagementEvent,), {"__module__": __name__})


def test_events_are_named_as_past_tense_facts() -> None:
    endings = ("ed", "Opened", "Closed")  # e.g. MilestoneFunded, AccessRevoked
    assert all(name.endswith(endings) for name in EVENT_CLASSES), sorted(EVENT_CLASSES)
