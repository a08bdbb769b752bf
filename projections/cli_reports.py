"""`ledger contractor show` and `ledger alerts` (read models: contractor record, alerts)."""

from __future__ import annotations

from typing import Any

import click

from projections.cli import format_option, pass_ledger, print_json, read_models


def register(cli: click.Group) -> None:
    """Adds the report commands to `ledger`."""
    group = cli.commands.get("contractor")
    if group is None:
        cli.add_command(contractor)
        group = contractor
    group.add_command(contractor_show)  # type: ignore[attr-defined]
    cli.add_command(alerts_command)


# contractor show ----------------------------------------------------------------------


@click.group()
def contractor() -> None:
    """A contractor's record across engagements."""


@click.command("show")
@click.argument("name")
@format_option
@pass_ledger
def contractor_show(ledger: Any, name: str, output_format: str) -> None:
    """The contractor's track record across every engagement: outcomes, milestones on time,
    late and extended, disputes and how they ended, interview red flags.

    NAME matches exactly, ignoring case; an unknown name exits 2 suggesting close ones.
    A contractor reads it without red flags (interviews are hidden from contractors).

    \b
    Example:
      ledger --as curator:cara contractor show "Bo Chen" --format json
    """
    from datetime import UTC, datetime

    from projections.contractor_record import contractor_record

    record = contractor_record(read_models(ledger), name, today=datetime.now(UTC).date())
    if output_format == "json":
        print_json(record)
        return
    click.echo(render_contractor(record))


def render_contractor(r: dict[str, Any]) -> str:
    e, m, d = r["engagements"], r["milestones"], r["disputes"]
    statuses = ", ".join(f"{n} {s}" for s, n in e["by_status"].items() if n)
    outcomes = ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in e["by_outcome"].items() if n)
    ended = ", ".join(f"{d[k]} {k.replace('_', ' ')}" for k in
                      ("open", "escalated", "for_client", "for_contractor", "split") if d[k])
    lines = [
        f"{r['name']}" + ("  (redacted view)" if r["redacted"] else ""),
        f"engagements  {e['total']}: {statuses or 'none'}"
        + (f" (outcomes: {outcomes})" if outcomes else ""),
        f"milestones   {m['total']} defined, {m['submitted']} submitted: {m['on_time']} on time, "
        f"{m['late']} late; {m['extended']} extended; {m['overdue']} overdue on {r['today']}",
        f"disputes     {d['total']}" + (f": {ended}" if ended else ""),
        f"interviews   {r['interviews']}",
    ]
    if r["red_flags"] is None:
        lines.append("red flags    hidden from contractors")
    else:
        lines.append(f"red flags    {len(r['red_flags'])}")
        lines += [f"  - {f['flag']}  ({f['title']}, {f['engagement_id']})" for f in r["red_flags"]]
    lines += ["", f"{'id':<36}  {'opened':<10}  {'status':<20}  {'title':<24}  {'client':<14}  "
                  "on time  late  extended  overdue  disputes"]
    for t in r["track_record"]:
        status = t["status"] + (f"/{t['outcome']}" if t["outcome"] else "")
        ms = t["milestones"]
        lines.append(f"{t['id']:<36}  {t['opened_at'][:10]:<10}  {status:<20}  "
                     f"{t['title'][:24]:<24}  {t['client'][:14]:<14}  {ms['on_time']:>7}  "
                     f"{ms['late']:>4}  {ms['extended']:>8}  {ms['overdue']:>7}  "
                     f"{t['disputes']['total']:>8}")
    return "\n".join(lines)


# alerts ---------------------------------------------------------------------------------


@click.command("alerts")
@click.option("--within", type=click.IntRange(0, 3650), default=7, show_default=True,
              metavar="DAYS", help="Warn this many days ahead; disputes older than this age.")
@click.option("--today", "today_text", default=None, metavar="YYYY-MM-DD",
              help="Report as of this day (default: today, UTC).")
@format_option
@pass_ledger
def alerts_command(ledger: Any, within: int, today_text: str | None, output_format: str) -> None:
    """Grants expiring or overdue, recertifications due, milestones overdue, inspection
    periods running out (deemed acceptance), disputes ageing: most urgent first.

    Exits 0 whatever it finds: it is a report (a cron job can mail its output).

    \b
    Examples:
      ledger --as curator:cara alerts
      ledger --as curator:cron alerts --within 3 --format json
    """
    from datetime import UTC, datetime

    from ledger.validation import parse_date
    from projections.alerts import alerts, counts

    today = parse_date(today_text, "--today") if today_text else datetime.now(UTC).date()
    found = alerts(read_models(ledger), today=today, within=within)
    report = {"today": today.isoformat(), "within": within, "counts": counts(found),
              "alerts": found}
    if output_format == "json":
        print_json(report)
        return
    click.echo(render_alerts(report))


def render_alerts(report: dict[str, Any]) -> str:
    found = report["alerts"]
    head = f"alerts on {report['today']}, looking {report['within']} days ahead"
    if not found:
        return f"no {head}"
    c = report["counts"]
    lines = [f"{head}: {c['overdue']} overdue, {c['due']} due soon", "",
             f"{'severity':<8}  {'days':>5}  {'date':<10}  {'kind':<19}  {'item':<5}  "
             f"{'engagement':<20}  {'id':<36}  {'curator':<10}  message"]
    for a in found:
        lines.append(f"{a['severity']:<8}  {a['days_left']:>5}  {a['date']:<10}  "
                     f"{a['kind']:<19}  {a['item']:<5}  {a['title'][:20]:<20}  "
                     f"{a['engagement_id']:<36}  {a['curator'][:10]:<10}  {a['message']}")
    return "\n".join(lines)
