"""Who may do what: roles, actors and the permission table of DESIGN section 1."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import InvalidInput, NotPermitted


class Role(StrEnum):
    CURATOR = "curator"
    CLIENT = "client"
    CONTRACTOR = "contractor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Party(StrEnum):
    CLIENT = "client"
    CONTRACTOR = "contractor"


class Action(StrEnum):
    # Curator's work.
    OPEN_ENGAGEMENT = "open an engagement"
    REASSIGN_CURATOR = "reassign the curator"
    LOG_NOTE = "log a note"
    RECORD_CORRECTION = "record a correction"
    CLOSE_ENGAGEMENT = "close an engagement"
    RECORD_INTERVIEW = "record an interview"
    DRAFT_AGREEMENT = "draft an agreement"
    REVIEW_AGREEMENT = "record a counsel review"
    AMEND_AGREEMENT = "amend an agreement"
    RECORD_DISCLOSURE = "record a disclosure"
    DEFINE_MILESTONE = "define a milestone"
    PROPOSE_AMENDMENT = "propose a milestone amendment"
    GRANT_ACCESS = "grant access"
    RECERTIFY_ACCESS = "recertify access"
    REVOKE_ACCESS = "revoke access"
    MEDIATE_DISPUTE = "write a mediation note"
    RESOLVE_DISPUTE = "resolve a dispute"
    ESCALATE_DISPUTE = "escalate a dispute"
    SWEEP = "run a sweep"
    # Either party, as itself.
    SIGN = "sign"
    OPEN_DISPUTE = "open a dispute"
    SUBMIT_EVIDENCE = "submit evidence"
    # The client's money decisions.
    CHANGE_BUDGET = "change the budget"
    FUND_MILESTONE = "fund a milestone"
    ACCEPT_MILESTONE = "accept a milestone"
    REQUEST_CHANGES = "request changes"
    RELEASE_PAYMENT = "release a payment"
    CANCEL_MILESTONE = "cancel a milestone"
    DECIDE_EXTENSION = "grant or deny an extension"
    # The contractor's work.
    SUBMIT_WORK = "submit work"
    REQUEST_EXTENSION = "request an extension"
    ACKNOWLEDGE_PLAYBOOK = "acknowledge the playbook"
    # Reading.
    READ = "read"
    # Operations.
    ADMINISTER = "administer the database"


_CURATOR_ACTIONS = {
    Action.OPEN_ENGAGEMENT, Action.REASSIGN_CURATOR, Action.LOG_NOTE, Action.RECORD_CORRECTION,
    Action.CLOSE_ENGAGEMENT, Action.RECORD_INTERVIEW, Action.DRAFT_AGREEMENT,
    Action.REVIEW_AGREEMENT, Action.AMEND_AGREEMENT, Action.RECORD_DISCLOSURE,
    Action.DEFINE_MILESTONE, Action.PROPOSE_AMENDMENT, Action.GRANT_ACCESS,
    Action.RECERTIFY_ACCESS, Action.REVOKE_ACCESS, Action.MEDIATE_DISPUTE,
    Action.RESOLVE_DISPUTE, Action.ESCALATE_DISPUTE, Action.SWEEP,
    Action.DECIDE_EXTENSION, Action.READ,
}
_CLIENT_ACTIONS = {
    Action.SIGN, Action.OPEN_DISPUTE, Action.SUBMIT_EVIDENCE, Action.CHANGE_BUDGET,
    Action.FUND_MILESTONE, Action.ACCEPT_MILESTONE, Action.REQUEST_CHANGES,
    Action.RELEASE_PAYMENT, Action.CANCEL_MILESTONE, Action.DECIDE_EXTENSION, Action.READ,
}
_CONTRACTOR_ACTIONS = {
    Action.SIGN, Action.OPEN_DISPUTE, Action.SUBMIT_EVIDENCE, Action.SUBMIT_WORK,
    Action.REQUEST_EXTENSION, Action.ACKNOWLEDGE_PLAYBOOK, Action.READ,
}

PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.CURATOR: frozenset(_CURATOR_ACTIONS),
    Role.CLIENT: frozenset(_CLIENT_ACTIONS),
    Role.CONTRACTOR: frozenset(_CONTRACTOR_ACTIONS),
    Role.AUDITOR: frozenset({Action.READ}),
    Role.ADMIN: frozenset(Action),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a declared role and name, and the operating-system user behind it."""

    role: Role
    name: str
    os_user: str

    @classmethod
    def parse(cls, text: str | None) -> Actor:
        """Reads `ROLE:NAME` as given to `--as` or `LEDGER_ACTOR`."""
        if not text:
            raise InvalidInput("no actor: pass --as ROLE:NAME or set LEDGER_ACTOR")
        role_text, sep, name = text.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(f"actor {text!r} is not ROLE:NAME, e.g. curator:cara")
        try:
            role = Role(role_text.strip().lower())
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise InvalidInput(f"unknown role {role_text!r}: use one of {roles}") from None
        from ledger.validation import check_name

        return cls(role=role, name=check_name(name.strip(), "actor name"), os_user=os_user())

    def __str__(self) -> str:
        return f"{self.role.value}:{self.name}"


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def check_permitted(actor: Actor, action: Action) -> None:
    if action not in PERMISSIONS[actor.role]:
        raise NotPermitted(f"a {actor.role.value} may not {action.value}")


def check_acts_as_party(actor: Actor, party: Party) -> None:
    """A party acts only as itself; an admin may act for either."""
    if actor.role is Role.ADMIN:
        return
    if actor.role.value != party.value:
        raise NotPermitted(f"a {actor.role.value} may not act for the {party.value}")


def default_party(actor: Actor) -> Party:
    try:
        return Party(actor.role.value)
    except ValueError:
        raise InvalidInput(f"a {actor.role.value} must name the party with --party") from None
