"""The curator's terminal UI (issue 5)."""
