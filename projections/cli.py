"""Commands over the read models, added to `ledger` through its plugin entry point.

`register(cli)` adds `engagement list`, `projections status|rebuild|run`, `audit digest|verify`
and the commands of `projections.cli_reports` and `projections.cli_audit`. Heavy modules are
imported inside the commands so `ledger --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click


def register(cli: click.Group) -> None:
    from projections import cli_audit, cli_reports

    cli.commands["engagement"].add_command(engagement_list)  # type: ignore[attr-defined]
    cli.add_command(projections)
    cli.add_command(audit)
    cli_reports.register(cli)
    cli_audit.register(cli, audit)
    from projections.cli_restore import restore

    cli.add_command(restore)
    from projections.cli_forget import forget_contractor

    cli.add_command(forget_contractor)
    from ledger.cli import INIT_STEPS

    if _create_read_model_tables not in INIT_STEPS:
        INIT_STEPS.append(_create_read_model_tables)


def _create_read_model_tables(app: Any) -> None:
    """`init --postgres-roles`: the read models' tables exist before their privileges are set."""
    from projections.runner import Projector

    Projector(app)


#: The ledger's context object (`ledger.cli.LedgerContext`: db, actor, app).
pass_ledger = click.pass_obj


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    bar: Any = None
    shown = 0

    def update(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr,
                                    show_pos=True)
            bar.__enter__()
        bar.update(done - shown)
        shown = done

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def read_models(ledger: Any, label: str = "catching up") -> Any:
    from projections.queries import ReadModels

    actor = ledger.actor()
    with progress_bar(label) as progress:
        return ReadModels(ledger.app(), actor, progress=progress)


def format_option(func: Any) -> Any:
    return click.option("--format", "output_format", type=click.Choice(["table", "json"]),
                        default="table", show_default=True, help="Output format.")(func)


# engagement list ----------------------------------------------------------------------


@click.command("list")
@click.option("--status", type=click.Choice(["vetting", "contracting", "active", "closed"]),
              default=None, help="Only engagements in this status.")
@format_option
@pass_ledger
def engagement_list(ledger: Any, status: str | None, output_format: str) -> None:
    """Every engagement from the summary read model, most recently changed first.

    \b
    Example:
      ledger --as curator:cara engagement list --status active
    """
    rows = read_models(ledger).engagements(status)
    if output_format == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no engagements" + (f" in status {status}" if status else ""))
        return
    click.echo(f"{'id':<36}  {'status':<11}  {'title':<28}  {'contractor':<18}  {'curator':<10}"
               f"  {'escrow':>14}  {'next due':<10}  disp  grants")
    for r in rows:
        escrow = f"{r['money']['escrow']} {r['currency']}"
        status_text = r["status"] if not r["outcome"] else f"{r['status']}/{r['outcome']}"[:11]
        click.echo(f"{r['id']:<36}  {status_text:<11}  {r['title'][:28]:<28}  "
                   f"{r['contractor'][:18]:<18}  {r['curator'][:10]:<10}  {escrow:>14}  "
                   f"{r['next_due'] or '-':<10}  {r['open_disputes']:>4}  {r['active_grants']:>6}")


# projections status | rebuild | run ---------------------------------------------------


@click.group()
def projections() -> None:
    """Read models: their positions in the event log, rebuilding, following live."""


def _projector(ledger: Any, names: list[str] | None = None, administer: bool = False) -> Any:
    from ledger.roles import Action, check_permitted
    from projections.runner import Projector

    check_permitted(ledger.actor(), Action.ADMINISTER if administer else Action.READ)
    return Projector(ledger.app(), names)


@projections.command("status")
@format_option
@pass_ledger
def projections_status(ledger: Any, output_format: str) -> None:
    """Each read model's position against the head of the event log.

    \b
    Example:
      ledger --as auditor:ann projections status
    """
    rows = _projector(ledger).status()
    if output_format == "json":
        print_json(rows)
        return
    click.echo(f"{'read model':<12}  {'position':>10}  {'head':>10}  {'behind':>8}  what")
    for r in rows:
        click.echo(f"{r['name']:<12}  {r['position']:>10}  {r['head']:>10}  {r['behind']:>8}  "
                   f"{r['title']}")


@projections.command("rebuild")
@click.argument("name", required=False)
@pass_ledger
def projections_rebuild(ledger: Any, name: str | None) -> None:
    """Rebuild one read model (or all) from the first event, with a progress bar.

    \b
    Example:
      ledger --as admin:ops projections rebuild summary
    """
    projector = _projector(ledger, [name] if name else None, administer=True)
    with progress_bar(f"rebuilding {name or 'every read model'}") as progress:
        applied = projector.rebuild(progress)
    click.echo(f"rebuilt {name or 'every read model'}: {applied} events applied")


@projections.command("run")
@click.option("--follow", is_flag=True, help="Keep going: apply new events as they arrive.")
@click.option("--poll", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="Seconds between checks for new events (SQLite; PostgreSQL is woken by NOTIFY).")
@click.option("--batch", type=click.IntRange(1, 100_000), default=None,
              envvar="LEDGER_PROJECTION_BATCH", show_envvar=True,
              help="Events applied per transaction (default 10000).")
@pass_ledger
def projections_run(ledger: Any, follow: bool, poll: float, batch: int | None) -> None:
    """Bring every read model up to date; with --follow, keep them so.

    On PostgreSQL one runner leads (an advisory lock) and the others stand by; when the
    leader dies its lock goes with its connection and a standby takes over within a second.

    \b
    Example:
      ledger --as admin:ops projections run --follow
    """
    import functools
    import signal
    import threading

    projector = _projector(ledger, administer=True)
    if batch is not None:
        # follow() calls catch_up() with the default batch: give it this one instead.
        projector.catch_up = functools.partial(projector.catch_up, batch_size=batch)
    if not follow:
        with progress_bar("catching up") as progress:
            applied = projector.catch_up(progress)
        click.echo(f"read models up to date: {applied} events applied")
        return
    stop = threading.Event()
    # Both stop it cleanly, also where SIGINT was ignored when the process started (as for
    # anything a non-interactive shell starts with `&`, which Python then leaves ignored).
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it stuck?
    try:
        projector.follow(stop, poll=poll, say=lambda text: click.echo(text, err=True))
    except KeyboardInterrupt:
        stop.set()
    click.echo("stopped", err=True)


# audit digest | verify ------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The hash-chained audit trail: digest, verify, export."""


@audit.command("digest")
@format_option
@pass_ledger
def audit_digest(ledger: Any, output_format: str) -> None:
    """Print the head of the whole-log hash chain as POSITION:HASH; keep it somewhere else.

    \b
    Example:
      ledger --as auditor:ann audit digest > digest-2026-11-28.txt
    """
    from projections.audit import digest

    models = read_models(ledger)
    head = digest(models.store)
    if output_format == "json":
        print_json(head)
        return
    click.echo(head["digest"])


@audit.command("verify")
@click.option("--digest", "digest_text", default=None, metavar="HASH",
              help="A digest printed earlier by `audit digest` (POSITION:HASH or HASH).")
@click.option("--export", "export_path", default=None, metavar="FILE.jsonl",
              type=click.Path(dir_okay=False),
              help="Check a JSONL export instead of the database (needs no --db or --as).")
@pass_ledger
def audit_verify(ledger: Any, digest_text: str | None, export_path: str | None) -> None:
    """Recompute the hash chains from the stored events and check them.

    Exit 0 when everything holds; otherwise the first entry that does not match is named and
    the exit code is 3.

    \b
    Examples:
      ledger --as auditor:ann audit verify --digest 300123:9f2c…
      ledger audit verify --export trail.jsonl --digest 300123:9f2c…
    """
    from ledger.errors import RuleViolation

    if export_path is not None:
        from projections.export_verify import verify_export

        with progress_bar("verifying") as progress:
            report = verify_export(export_path, digest_text, progress=progress)
    else:
        from projections.audit import verify

        models = read_models(ledger)
        with progress_bar("verifying") as progress:
            report = verify(ledger.app(), models.store, digest_text, progress=progress)
    if not report.ok:
        raise RuleViolation(report.problem)
    click.echo(report.message)
