"""The `ledger` command line: parse, build the pydantic command, call the application, print.

No rule lives here. Heavy modules are imported inside commands so `ledger --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

EXAMPLE_ID = "6f1c…"  # shown in examples; any engagement UUID


class LedgerContext:
    """What every subcommand shares: the database URL, the declared actor, one open ledger."""

    def __init__(self, db: str | None, actor: str | None) -> None:
        self.db = db
        self.actor_text = actor
        self._app: Any = None

    def actor(self) -> Any:
        from ledger.roles import Actor

        return Actor.parse(self.actor_text)

    def app(self, clock: Any = None) -> Any:
        if self._app is None:
            from ledger.application import open_ledger

            self._app = open_ledger(self.db, clock=clock)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


pass_ledger = click.make_pass_decorator(LedgerContext)


def command_id_option(func: Any) -> Any:
    return click.option("--command-id", default=None, metavar="ID",
                        help="Idempotency key: the same id sent twice is recorded once.")(func)


def format_option(func: Any) -> Any:
    return click.option("--format", "output_format", type=click.Choice(["table", "json"]),
                        default="table", show_default=True, help="Output format.")(func)


def execute(ledger: LedgerContext, command_class_name: str, **fields: Any) -> None:
    """Builds the named command, runs it, and prints what it created (if anything)."""
    import ledger.commands as commands

    command_class = getattr(commands, command_class_name)
    actor = ledger.actor()
    command = command_class.build(**fields)
    result = ledger.app().execute(command, actor)
    if result is not None:
        click.echo(result)


def document_sha256(path: str) -> str:
    from ledger.validation import sha256_of_file

    return sha256_of_file(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", envvar="LEDGER_DATABASE_URL", metavar="URL",
              help="sqlite:///ledger.db (default) or postgresql://user@host:port/db "
                   "[env LEDGER_DATABASE_URL].")
@click.option("--as", "actor", envvar="LEDGER_ACTOR", metavar="ROLE:NAME",
              help="Who acts: curator, client, contractor, auditor or admin, e.g. curator:cara "
                   "[env LEDGER_ACTOR]. Declared, not authenticated.")
@click.version_option(package_name="engagement-ledger")
@click.pass_context
def cli(ctx: click.Context, db: str | None, actor: str | None) -> None:
    """Engagement Ledger: an honest, replayable record of every engagement with a contractor.

    \b
    Example:
      ledger --as curator:cara engagement open --title "Data pipeline" \\
        --client Acme --contractor "Bo Chen" --curator cara --budget 12000 --currency EUR
    """
    ctx.obj = LedgerContext(db, actor)
    ctx.call_on_close(ctx.obj.close)


# init and demo ------------------------------------------------------------------------


#: What `init --postgres-roles` runs on the open ledger before it sets the roles' privileges,
#: so every table exists first: plugins append to it (the read models add their tables).
INIT_STEPS: list[Any] = []


@cli.command()
@click.option("--postgres-roles", is_flag=True,
              help="Also create the NOLOGIN roles <prefix>_writer (may append to history, "
                   "never change it) and <prefix>_projector (keeps the read models). "
                   "PostgreSQL only; run as the tables' owner.")
@click.option("--role-prefix", default=None, metavar="NAME",
              help="Role names' prefix (default: <database>_<schema>).")
@click.option("--grant-to", multiple=True, metavar="LOGIN",
              help="Grant the writer role to this existing login role (repeatable).")
@pass_ledger
def init(ledger: LedgerContext, postgres_roles: bool, role_prefix: str | None,
         grant_to: tuple[str, ...]) -> None:
    """Create the tables (idempotent; never required). Admin only.

    \b
    Example:
      ledger --as admin:ops --db postgresql://postgres@127.0.0.1:5432/ledger init
      ledger --as admin:ops --db postgresql://ledger@db/ledger init --postgres-roles \\
        --grant-to alice
    """
    from ledger.errors import InvalidInput
    from ledger.roles import Action, check_permitted

    if (role_prefix is not None or grant_to) and not postgres_roles:
        raise InvalidInput("--role-prefix and --grant-to go with --postgres-roles")
    if postgres_roles:
        from ledger.storage import resolve

        if not resolve(ledger.db).is_postgres:
            raise InvalidInput("--postgres-roles needs a PostgreSQL database "
                               "(--db postgresql://…)")
    check_permitted(ledger.actor(), Action.ADMINISTER)
    app = ledger.app()
    click.echo(f"ready: {app.database.url} holds {app.count_events()} events")
    if postgres_roles:
        from ledger.postgres_roles import create_roles

        for step in INIT_STEPS:
            step(app)
        for line in create_roles(app, role_prefix, grant_to):
            click.echo(line)


@cli.command()
@click.option("--engagements", "count", type=click.IntRange(1, 1_000_000), default=200,
              show_default=True, help="How many engagements to make.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same data.")
@click.option("--force", is_flag=True, help="Add to a database that already holds events.")
@pass_ledger
def demo(ledger: LedgerContext, count: int, seed: int, force: bool) -> None:
    """Fill the database with realistic engagements at every stage (records as admin:demo).

    \b
    Example:
      ledger demo --engagements 500 --seed 7
    """
    from ledger.demo import run_demo

    run_demo(ledger.app(), count=count, seed=seed, force=force)


@cli.command()
def keygen() -> None:
    """Print a new random key for LEDGER_CIPHER_KEY (AES-256, base64). Needs no --as.

    Set it before the first event is recorded: an encrypted ledger stores every event and
    snapshot encrypted, and each contractor's personal text under a key of their own, so that
    `forget-contractor` can erase it. Keep the key safe: without it nothing can be read.

    \b
    Example:
      export LEDGER_CIPHER_KEY="$(ledger keygen)"
    """
    import base64

    click.echo(base64.b64encode(os.urandom(32)).decode("ascii"))


# engagement ---------------------------------------------------------------------------


@cli.group()
def engagement() -> None:
    """Open, inspect and run an engagement."""


@engagement.command("open")
@click.option("--title", required=True)
@click.option("--client", required=True)
@click.option("--contractor", required=True)
@click.option("--curator", required=True)
@click.option("--budget", required=True, metavar="AMOUNT")
@click.option("--currency", required=True, metavar="CCY")
@click.option("--inspection-days", type=int, default=14, show_default=True)
@click.option("--grace-days", type=int, default=7, show_default=True)
@command_id_option
@pass_ledger
def engagement_open(ledger: LedgerContext, command_id: str | None, **fields: Any) -> None:
    """Open an engagement; prints its id.

    \b
    Example:
      ledger --as curator:cara engagement open --title "Data pipeline" --client Acme \\
        --contractor "Bo Chen" --curator cara --budget 12000 --currency EUR
    """
    from ledger.commands import OpenEngagement

    actor = ledger.actor()
    command = OpenEngagement.build(command_id=command_id, **fields)
    click.echo(ledger.app().open_engagement(command, actor))


@engagement.command("show")
@click.argument("engagement_id")
@click.option("--version", type=int, default=None, help="The state after event N.")
@click.option("--at", default=None, metavar="ISO_TIME", help="The state at that time (UTC).")
@format_option
@pass_ledger
def engagement_show(ledger: LedgerContext, engagement_id: str, version: int | None,
                    at: str | None, output_format: str) -> None:
    """Show an engagement, now or as it was.

    \b
    Example:
      ledger --as auditor:ann engagement show 6f1c… --version 12 --format json
    """
    from ledger.views import engagement_state

    _one_of_version_at(version, at, required=False)
    actor = ledger.actor()
    state = engagement_state(ledger.app().engagement(engagement_id, actor, version, at), actor)
    _print_state(state, output_format)


@engagement.command("note")
@click.argument("engagement_id")
@click.option("--text", required=True)
@command_id_option
@pass_ledger
def engagement_note(ledger: LedgerContext, **fields: Any) -> None:
    """Log curator-mediated communication.

    \b
    Example:
      ledger --as curator:cara engagement note 6f1c… --text "Told Bo the API keys rotate Friday"
    """
    execute(ledger, "LogNote", **fields)


@engagement.command("reassign")
@click.argument("engagement_id")
@click.option("--curator", required=True)
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def engagement_reassign(ledger: LedgerContext, **fields: Any) -> None:
    """Hand the engagement to another curator.

    \b
    Example:
      ledger --as curator:cara engagement reassign 6f1c… --curator dev --reason "Cara on leave"
    """
    execute(ledger, "ReassignCurator", **fields)


@engagement.command("rebudget")
@click.argument("engagement_id")
@click.option("--budget", required=True, metavar="AMOUNT")
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def engagement_rebudget(ledger: LedgerContext, **fields: Any) -> None:
    """Change the budget (client); never below what live milestones total.

    \b
    Example:
      ledger --as client:acme engagement rebudget 6f1c… --budget 15000 --reason "Phase 2 approved"
    """
    execute(ledger, "ChangeBudget", **fields)


@engagement.command("correct")
@click.argument("engagement_id")
@click.option("--version", type=int, required=True, help="The event that was wrong.")
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def engagement_correct(ledger: LedgerContext, **fields: Any) -> None:
    """Record that event N was wrong, and why (nothing is ever edited).

    \b
    Example:
      ledger --as curator:cara engagement correct 6f1c… --version 4 --reason "Wrong jurisdiction"
    """
    execute(ledger, "RecordCorrection", **fields)


@engagement.command("close")
@click.argument("engagement_id")
@click.option("--outcome", type=click.Choice(["completed", "terminated"]), required=True)
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def engagement_close(ledger: LedgerContext, **fields: Any) -> None:
    """Close the engagement once every milestone is released, settled or cancelled.

    \b
    Example:
      ledger --as curator:cara engagement close 6f1c… --outcome completed --reason "Delivered"
    """
    execute(ledger, "CloseEngagement", **fields)


# playbook, interviews ----------------------------------------------------------------


@cli.group()
def playbook() -> None:
    """The contractor's acknowledgement of the engagement playbook."""


@playbook.command("acknowledge")
@click.argument("engagement_id")
@click.option("--policy-version", required=True)
@command_id_option
@pass_ledger
def playbook_acknowledge(ledger: LedgerContext, **fields: Any) -> None:
    """Acknowledge a version of the playbook (contractor).

    \b
    Example:
      ledger --as contractor:bo playbook acknowledge 6f1c… --policy-version 2026.1
    """
    execute(ledger, "AcknowledgePlaybook", **fields)


@cli.group()
def interview() -> None:
    """Interviews while vetting a contractor."""


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    from ledger.errors import InvalidInput

    pairs: dict[str, str] = {}
    for value in values:
        name, sep, result = value.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"{what} {value!r} is not NAME=VALUE")
        pairs[name.strip()] = result.strip()
    return pairs


@interview.command("record")
@click.argument("engagement_id")
@click.option("--interviewer", required=True)
@click.option("--score", "scores", multiple=True, required=True, metavar="CRITERION=0..5")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME=pass|fail")
@click.option("--red-flag", "red_flags", multiple=True, metavar="TEXT")
@click.option("--notes", default=None)
@click.option("--decision", type=click.Choice(["advance", "hold", "reject"]), required=True)
@command_id_option
@pass_ledger
def interview_record(ledger: LedgerContext, scores: tuple[str, ...],
                     scenarios: tuple[str, ...], red_flags: tuple[str, ...], **fields: Any) -> None:
    """Record an interview; prints I<n>. A reject closes the engagement as not_hired.

    \b
    Example:
      ledger --as curator:cara interview record 6f1c… --interviewer cara \\
        --score scope_understanding=4 --score timeline_realism=3 \\
        --scenario missed_deadline=pass --red-flag "Vague about past clients" --decision advance
    """
    execute(ledger, "RecordInterview", scores=_pairs(scores, "score"),
            scenarios=_pairs(scenarios, "scenario"), red_flags=list(red_flags), **fields)


# agreements --------------------------------------------------------------------------


@cli.group()
def agreement() -> None:
    """NDA, non-compete, SOW, MSA and IP agreements: drafts, review, signatures, amendments."""


@agreement.command("draft")
@click.argument("engagement_id")
@click.option("--kind", type=click.Choice(["nda", "nca", "sow", "msa", "ip"]), required=True)
@click.option("--jurisdiction", required=True, metavar="CC", help="ISO 3166 code: DE, US-CA.")
@click.option("--document", required=True, metavar="PATH")
@command_id_option
@pass_ledger
def agreement_draft(ledger: LedgerContext, document: str, **fields: Any) -> None:
    """Draft an agreement from a document file (its SHA-256 is recorded); prints A<n>.

    \b
    Example:
      ledger --as curator:cara agreement draft 6f1c… --kind nda --jurisdiction US-CA \\
        --document nda.pdf
    """
    execute(ledger, "DraftAgreement", sha256=document_sha256(document), **fields)


@agreement.command("review")
@click.argument("engagement_id")
@click.argument("agreement_id")
@click.option("--reviewer", required=True)
@command_id_option
@pass_ledger
def agreement_review(ledger: LedgerContext, **fields: Any) -> None:
    """Record counsel's review of the latest version for its jurisdiction.

    \b
    Example:
      ledger --as curator:cara agreement review 6f1c… A1 --reviewer "L. Ortiz (counsel)"
    """
    execute(ledger, "ReviewAgreement", **fields)


@agreement.command("sign")
@click.argument("engagement_id")
@click.argument("agreement_id")
@click.option("--party", type=click.Choice(["client", "contractor"]), required=True)
@click.option("--signer", required=True)
@command_id_option
@pass_ledger
def agreement_sign(ledger: LedgerContext, **fields: Any) -> None:
    """Sign the latest version as your own party.

    \b
    Example:
      ledger --as client:acme agreement sign 6f1c… A1 --party client --signer "Ann Lee"
    """
    execute(ledger, "SignAgreement", **fields)


@agreement.command("amend")
@click.argument("engagement_id")
@click.argument("agreement_id")
@click.option("--document", required=True, metavar="PATH")
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def agreement_amend(ledger: LedgerContext, document: str, **fields: Any) -> None:
    """Amend: a new version that both parties sign again; prints v<n>.

    \b
    Example:
      ledger --as curator:cara agreement amend 6f1c… A2 --document sow-v2.pdf --reason "Scope +API"
    """
    execute(ledger, "AmendAgreement", sha256=document_sha256(document), **fields)


@agreement.command("verify-document")
@click.argument("engagement_id")
@click.argument("agreement_id")
@click.option("--document", required=True, metavar="PATH")
@click.option("--agreement-version", type=int, default=None,
              help="Default: the version in force, else the latest.")
@pass_ledger
def agreement_verify_document(ledger: LedgerContext, engagement_id: str, agreement_id: str,
                              document: str, agreement_version: int | None) -> None:
    """Exit 0 when the file is the one recorded, else 3.

    \b
    Example:
      ledger --as auditor:ann agreement verify-document 6f1c… A1 --document nda.pdf
    """
    from ledger.agreements import verify_document

    actor = ledger.actor()
    engagement_state = ledger.app().engagement(engagement_id, actor)
    click.echo(verify_document(engagement_state, agreement_id, document_sha256(document),
                               agreement_version))


# milestones --------------------------------------------------------------------------


@cli.group()
def milestone() -> None:
    """Milestones: define, fund into escrow, submit, accept, release, cancel."""


@milestone.command("add")
@click.argument("engagement_id")
@click.option("--title", required=True)
@click.option("--amount", required=True, metavar="AMOUNT")
@click.option("--due", required=True, metavar="YYYY-MM-DD")
@click.option("--criteria", default=None, help="Acceptance criteria.")
@command_id_option
@pass_ledger
def milestone_add(ledger: LedgerContext, **fields: Any) -> None:
    """Define a milestone; prints M<n>.

    \b
    Example:
      ledger --as curator:cara milestone add 6f1c… --title "Schema design" --amount 2500 \\
        --due 2027-01-31 --criteria "Reviewed ERD and migration plan"
    """
    execute(ledger, "DefineMilestone", **fields)


def _milestone_command(name: str, command_class: str, doc: str, example: str,
                       options: tuple[tuple[str, str], ...] = ()) -> None:
    def run(ledger: LedgerContext, **fields: Any) -> None:
        execute(ledger, command_class, **fields)

    run.__doc__ = f"{doc}\n\n\b\nExample:\n  {example}\n"
    for option, help_text in reversed(options):
        run = click.option(option, required=True, help=help_text)(run)
    run = pass_ledger(command_id_option(click.argument("engagement_id")(
        click.argument("milestone_id")(run))))
    milestone.command(name)(run)


_milestone_command("fund", "FundMilestone", "Put the milestone's amount into escrow (client).",
                   "ledger --as client:acme milestone fund 6f1c… M1")
_milestone_command("submit", "SubmitWork", "Submit the work for review (contractor).",
                   'ledger --as contractor:bo milestone submit 6f1c… M1 --note "PR #42"',
                   (("--note", "What was delivered, where."),))
_milestone_command("request-changes", "RequestChanges", "Send the work back (client).",
                   'ledger --as client:acme milestone request-changes 6f1c… M1 --reason "No tests"',
                   (("--reason", "What must change."),))
_milestone_command("accept", "AcceptMilestone", "Accept the submitted work (client).",
                   "ledger --as client:acme milestone accept 6f1c… M1")
_milestone_command("release", "ReleasePayment", "Release the escrow to the contractor (client).",
                   "ledger --as client:acme milestone release 6f1c… M1")
_milestone_command("cancel", "CancelMilestone", "Cancel; escrow is refunded (client).",
                   'ledger --as client:acme milestone cancel 6f1c… M2 --reason "Descoped"',
                   (("--reason", "Why it is cancelled."),))


@milestone.command("extend")
@click.argument("engagement_id")
@click.argument("milestone_id")
@click.option("--due", required=True, metavar="YYYY-MM-DD", help="The new due date asked for.")
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def milestone_extend(ledger: LedgerContext, **fields: Any) -> None:
    """Ask for more time (contractor); the client or curator decides.

    \b
    Example:
      ledger --as contractor:bo milestone extend 6f1c… M1 --due 2027-02-14 --reason "API delay"
    """
    execute(ledger, "RequestExtension", **fields)


@milestone.group("extension")
def milestone_extension() -> None:
    """Grant or deny a requested extension (client or curator)."""


@milestone_extension.command("grant")
@click.argument("engagement_id")
@click.argument("milestone_id")
@click.option("--reason", default=None)
@command_id_option
@pass_ledger
def extension_grant(ledger: LedgerContext, **fields: Any) -> None:
    """Grant the waiting extension: the due date moves.

    \b
    Example:
      ledger --as client:acme milestone extension grant 6f1c… M1
    """
    execute(ledger, "GrantExtension", **fields)


@milestone_extension.command("deny")
@click.argument("engagement_id")
@click.argument("milestone_id")
@click.option("--reason", default=None)
@command_id_option
@pass_ledger
def extension_deny(ledger: LedgerContext, **fields: Any) -> None:
    """Deny the waiting extension.

    \b
    Example:
      ledger --as client:acme milestone extension deny 6f1c… M1 --reason "Launch is fixed"
    """
    execute(ledger, "DenyExtension", **fields)


@milestone.command("amend")
@click.argument("engagement_id")
@click.argument("milestone_id")
@click.option("--title", default=None)
@click.option("--amount", default=None, metavar="AMOUNT", help="Only while the milestone is defined.")
@click.option("--due", default=None, metavar="YYYY-MM-DD")
@click.option("--criteria", default=None)
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def milestone_amend(ledger: LedgerContext, **fields: Any) -> None:
    """Propose an amendment (curator); it takes effect when both parties have signed it.

    \b
    Example:
      ledger --as curator:cara milestone amend 6f1c… M2 --due 2027-03-01 --reason "Re-planned"
    """
    execute(ledger, "ProposeMilestoneAmendment", **fields)


@milestone.command("sign-amendment")
@click.argument("engagement_id")
@click.argument("milestone_id")
@click.option("--party", type=click.Choice(["client", "contractor"]), required=True)
@command_id_option
@pass_ledger
def milestone_sign_amendment(ledger: LedgerContext, **fields: Any) -> None:
    """Sign the waiting amendment as your own party.

    \b
    Example:
      ledger --as contractor:bo milestone sign-amendment 6f1c… M2 --party contractor
    """
    execute(ledger, "SignMilestoneAmendment", **fields)


def _sweep(ledger: LedgerContext, what: str, engagement_id: str | None,
           command_id: str | None) -> None:
    recorded = ledger.app().sweep(what, ledger.actor(), engagement_id, command_id)
    for one_id, ids in recorded:
        click.echo(f"{one_id} {ids}")
    click.echo(f"{what} sweep: {sum(len(ids.split()) for _, ids in recorded)} recorded", err=True)


@milestone.command("sweep")
@click.argument("engagement_id", required=False)
@command_id_option
@pass_ledger
def milestone_sweep(ledger: LedgerContext, engagement_id: str | None, command_id: str | None) -> None:
    """Record deemed acceptances whose inspection period has passed (safe to run from cron).

    \b
    Example:
      ledger --as curator:cron milestone sweep
    """
    _sweep(ledger, "milestones", engagement_id, command_id)


# disclosures and access ---------------------------------------------------------------


@cli.group()
def disclosure() -> None:
    """What company information was shared with the contractor."""


@disclosure.command("record")
@click.argument("engagement_id")
@click.option("--description", required=True)
@click.option("--agreement", "agreement_id", required=True, metavar="A1")
@click.option("--document", default=None, metavar="PATH")
@command_id_option
@pass_ledger
def disclosure_record(ledger: LedgerContext, document: str | None, **fields: Any) -> None:
    """Record a disclosure under an agreement (curator).

    \b
    Example:
      ledger --as curator:cara disclosure record 6f1c… --description "Schema dump" --agreement A1
    """
    sha256 = document_sha256(document) if document is not None else None  # "" is no file
    execute(ledger, "RecordDisclosure", sha256=sha256, **fields)


@cli.group()
def access() -> None:
    """Access to company resources, in stages that follow the milestones."""


@access.command("grant")
@click.argument("engagement_id")
@click.option("--resource", required=True)
@click.option("--level", type=click.Choice(["read", "write", "admin"]), required=True)
@click.option("--milestone", "milestone_id", required=True, metavar="M1")
@click.option("--until", default=None, metavar="YYYY-MM-DD",
              help="Default and latest: the milestone's due date plus the grace period.")
@click.option("--reason", default=None, help="Required for admin access.")
@command_id_option
@pass_ledger
def access_grant(ledger: LedgerContext, **fields: Any) -> None:
    """Grant access for a funded milestone; prints G<n>.

    \b
    Example:
      ledger --as curator:cara access grant 6f1c… --resource "staging DB" --level read --milestone M1
    """
    execute(ledger, "GrantAccess", **fields)


@access.command("recertify")
@click.argument("engagement_id")
@click.argument("grant_id")
@click.option("--reason", default=None)
@command_id_option
@pass_ledger
def access_recertify(ledger: LedgerContext, **fields: Any) -> None:
    """Confirm the access is still needed.

    \b
    Example:
      ledger --as curator:cara access recertify 6f1c… G1
    """
    execute(ledger, "RecertifyAccess", **fields)


@access.command("revoke")
@click.argument("engagement_id")
@click.argument("grant_id")
@click.option("--reason", required=True)
@command_id_option
@pass_ledger
def access_revoke(ledger: LedgerContext, **fields: Any) -> None:
    """Revoke access.

    \b
    Example:
      ledger --as curator:cara access revoke 6f1c… G1 --reason "Task done early"
    """
    execute(ledger, "RevokeAccess", **fields)


@access.command("sweep")
@click.argument("engagement_id", required=False)
@command_id_option
@pass_ledger
def access_sweep(ledger: LedgerContext, engagement_id: str | None, command_id: str | None) -> None:
    """Record the expiry of grants whose last day has passed (safe to run from cron).

    \b
    Example:
      ledger --as curator:cron access sweep
    """
    _sweep(ledger, "access", engagement_id, command_id)


# disputes ------------------------------------------------------------------------------


@cli.group()
def dispute() -> None:
    """Disputes over money in escrow: open, evidence, mediation, resolution, escalation."""


@dispute.command("open")
@click.argument("engagement_id")
@click.option("--milestone", "milestone_id", required=True, metavar="M1")
@click.option("--reason", required=True)
@click.option("--claim", default=None, metavar="AMOUNT")
@click.option("--party", type=click.Choice(["client", "contractor"]), default=None,
              help="Default: the actor's own role.")
@command_id_option
@pass_ledger
def dispute_open(ledger: LedgerContext, party: str | None, **fields: Any) -> None:
    """Open a dispute on a milestone; prints D<n>. It freezes the milestone.

    \b
    Example:
      ledger --as client:acme dispute open 6f1c… --milestone M1 --reason "Not to spec" --claim 800
    """
    from ledger.roles import default_party

    execute(ledger, "OpenDispute", party=party or default_party(ledger.actor()).value, **fields)


@dispute.command("evidence")
@click.argument("engagement_id")
@click.argument("dispute_id")
@click.option("--party", type=click.Choice(["client", "contractor"]), required=True)
@click.option("--description", required=True)
@click.option("--document", default=None, metavar="PATH")
@command_id_option
@pass_ledger
def dispute_evidence(ledger: LedgerContext, document: str | None, **fields: Any) -> None:
    """Submit evidence as your own party; prints E<n>.

    \b
    Example:
      ledger --as contractor:bo dispute evidence 6f1c… D1 --party contractor \\
        --description "Signed-off spec" --document spec.pdf
    """
    sha256 = document_sha256(document) if document is not None else None  # "" is no file
    execute(ledger, "SubmitEvidence", sha256=sha256, **fields)


@dispute.command("note")
@click.argument("engagement_id")
@click.argument("dispute_id")
@click.option("--text", required=True)
@command_id_option
@pass_ledger
def dispute_note(ledger: LedgerContext, **fields: Any) -> None:
    """Write a mediation note (curator; hidden from the contractor).

    \b
    Example:
      ledger --as curator:cara dispute note 6f1c… D1 --text "Both agree the API part is done"
    """
    execute(ledger, "NoteMediation", **fields)


@dispute.command("resolve")
@click.argument("engagement_id")
@click.argument("dispute_id")
@click.option("--release", required=True, metavar="AMOUNT", help="To the contractor.")
@click.option("--refund", required=True, metavar="AMOUNT", help="To the client.")
@click.option("--reason", required=True)
@click.option("--finding", "findings", multiple=True, metavar="E1=TEXT",
              help="A finding for every evidence item.")
@command_id_option
@pass_ledger
def dispute_resolve(ledger: LedgerContext, findings: tuple[str, ...], **fields: Any) -> None:
    """Resolve: release + refund must equal the escrow; a finding for every evidence item.

    \b
    Example:
      ledger --as curator:cara dispute resolve 6f1c… D1 --release 600 --refund 400 \\
        --reason "Partly delivered" --finding E1="Spec was signed" --finding E2="Tests missing"
    """
    execute(ledger, "ResolveDispute", findings=_pairs(findings, "finding"), **fields)


@dispute.command("escalate")
@click.argument("engagement_id")
@click.argument("dispute_id")
@click.option("--to", required=True, help="Who takes it over (arbitrator, legal).")
@click.option("--packet", required=True, metavar="PATH", help="Where to write the evidence ZIP.")
@command_id_option
@pass_ledger
def dispute_escalate(ledger: LedgerContext, **fields: Any) -> None:
    """Escalate; writes the evidence packet (ZIP with JSON and PDF). The milestone stays frozen.

    \b
    Example:
      ledger --as curator:cara dispute escalate 6f1c… D1 --to "Arbitration Ltd" --packet d1.zip
    """
    execute(ledger, "EscalateDispute", **fields)


# history and replay ------------------------------------------------------------------


@cli.command()
@click.argument("engagement_id")
@format_option
@pass_ledger
def history(ledger: LedgerContext, engagement_id: str, output_format: str) -> None:
    """Every event: version, time, actor, role, type, summary.

    \b
    Example:
      ledger --as auditor:ann history 6f1c… --format json
    """
    from ledger.views import history_row

    actor = ledger.actor()
    rows = [history_row(event, actor) for event in ledger.app().history(engagement_id, actor)]
    if output_format == "json":
        _print_json(rows)
        return
    for row in rows:
        who = f"{row['role']}:{row['actor']}"
        click.echo(f"{row['version']:>5}  {row['timestamp'][:19]}  {who:<24}  {row['type']:<22}"
                   f"  {row['summary']}")


@cli.command()
@click.argument("engagement_id")
@click.option("--version", type=int, default=None)
@click.option("--at", default=None, metavar="ISO_TIME")
@click.option("--diff-from", type=int, default=None, metavar="N",
              help="Compare with the state after event N (default: the event before).")
@format_option
@pass_ledger
def replay(ledger: LedgerContext, engagement_id: str, version: int | None, at: str | None,
           diff_from: int | None, output_format: str) -> None:
    """The state at a version or time, and what changed.

    \b
    Example:
      ledger --as curator:cara replay 6f1c… --at 2026-10-01T12:00 --diff-from 3 --format json
    """
    from ledger.views import changes, engagement_state

    _one_of_version_at(version, at, required=True)
    actor = ledger.actor()
    app = ledger.app()
    then = app.engagement(engagement_id, actor, version, at)
    state = engagement_state(then, actor)
    base_version = then.version - 1 if diff_from is None else diff_from
    before = (engagement_state(app.engagement(engagement_id, actor, base_version), actor)
              if base_version >= 1 else {})
    diff = changes(before, state)
    if output_format == "json":
        _print_json({"state": state, "changes": diff})
        return
    _print_state(state, "table")
    click.echo(f"\nChanges since version {max(base_version, 0)}:")
    for change in diff:
        click.echo(f"  {change['path']}: {change['before']!r} -> {change['after']!r}")


# helpers -----------------------------------------------------------------------------


def _one_of_version_at(version: int | None, at: str | None, required: bool) -> None:
    from ledger.errors import InvalidInput

    if version is not None and at is not None:
        raise InvalidInput("give --version or --at, not both")
    if required and version is None and at is None:
        raise InvalidInput("give --version N or --at ISO_TIME")


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _print_state(state: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        _print_json(state)
        return
    from ledger.tables import render_state

    click.echo(render_state(state))


#: Packages that add commands (read models, the terminal UI) name a `register(cli)` function
#: under this entry-point group; the ledger itself knows none of them.
PLUGIN_GROUP = "engagement_ledger.commands"
_plugins_loaded = False


def load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        plugin.load()(cli)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; every failure is one line on stderr and an exit code."""
    from ledger.errors import LedgerError

    try:
        load_plugins()
        cli.main(args=argv, prog_name="ledger", standalone_mode=False)
    except LedgerError as error:
        click.echo(f"ledger: {_one_line(error.message)}", err=True)
        return error.exit_code
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else "", err=False)
        return 0
    except click.UsageError as error:
        click.echo(f"ledger: {_one_line(error.format_message())}", err=True)
        return 2
    except click.ClickException as error:
        click.echo(f"ledger: {_one_line(error.format_message())}", err=True)
        return error.exit_code
    except click.Abort:
        click.echo("ledger: aborted", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("ledger: interrupted", err=True)
        return 130
    except Exception as error:  # never a traceback for a user
        if os.environ.get("LEDGER_DEBUG"):
            raise
        from ledger.storage import permission_denied

        refused = permission_denied(error)
        if refused is not None:  # a PostgreSQL role's privileges (init --postgres-roles)
            click.echo(f"ledger: the database refused this for your PostgreSQL role: {refused}",
                       err=True)
            return 4
        if type(error).__name__ == "MapperDeserialisationError":  # the library's decode error
            click.echo(f"ledger: a stored event cannot be read: it was changed after it was "
                       f"recorded, or LEDGER_CIPHER_KEY is not this ledger's key "
                       f"(`ledger audit verify` names it): {_cause(error)}", err=True)
            return 3
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(f"ledger: unexpected {type(error).__name__}: {text}", err=True)
        return 1
    return 0


def _one_line(message: str) -> str:
    """An error is one line on stderr: line breaks a user typed into a value are shown escaped."""
    text = message.strip()
    return text if text.isprintable() else "".join(
        c if c.isprintable() else repr(c)[1:-1] for c in text)


def _cause(error: BaseException) -> str:
    """The library's message, shortened to what names the event and why it failed."""
    text = " ".join(str(error).split())
    return text.replace("Failed to deserialise state of stored event with ", "")


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    # `python -m ledger.cli`: run the module plugins import (`ledger.cli`), not a copy of it.
    from ledger.cli import entry as _entry

    _entry()
