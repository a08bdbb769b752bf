"""`ledger audit export`: the audit trail as CSV, JSONL, Markdown or PDF."""

from __future__ import annotations

from typing import Any

import click

from projections.cli import pass_ledger, progress_bar, read_models


def register(cli: click.Group, audit: click.Group) -> None:
    """Adds `audit export` to the `audit` group."""
    audit.add_command(audit_export)


@click.command("export")
@click.option("--engagement", default=None, metavar="ID",
              help="Only this engagement (verified on its own chain).")
@click.option("--since", default=None, metavar="T",
              help="From this date (its start) or time, inclusive, UTC unless a zone is given.")
@click.option("--until", default=None, metavar="T",
              help="Up to this date (its end) or time, inclusive.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "md", "pdf"]),
              required=True, help="csv, jsonl (verifiable, and a backup), md or pdf.")
@click.option("--output", required=True, metavar="PATH", help="The file to write (replaced).")
@pass_ledger
def audit_export(ledger: Any, engagement: str | None, since: str | None, until: str | None,
                 fmt: str, output: str) -> None:
    """Write the audit trail, or a range of it, to a file; print the entries and the digest.

    The export is a snapshot up to the head of the log when it starts, written under a
    temporary name and renamed into place when complete. A range is a contiguous run of the
    chain, so it verifies on its own: `ledger audit verify --export FILE.jsonl`. A contractor
    gets a redacted export.

    \b
    Examples:
      ledger --as auditor:ann audit export --format jsonl --output trail.jsonl
      ledger --as auditor:ann audit export --format pdf --output m.pdf --engagement 6f1c… \\
        --since 2026-10-01 --until 2026-10-31
    """
    from projections.audit_export import export_audit

    models = read_models(ledger)
    with progress_bar(f"exporting {fmt}") as progress:
        result = export_audit(models, fmt, output, engagement=engagement, since=since,
                              until=until, progress=progress)
    plural = "entry" if result.entries == 1 else "entries"
    click.echo(f"exported {result.entries} {plural} to {result.path}; digest {result.digest}")
