"""Plain-data views of an engagement for the outside: the JSON contract, history rows, diffs.

Every read goes through here, so a contractor's redaction is applied in one place.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ledger.engagement import Engagement
from ledger.events import EngagementEvent
from ledger.money import format_amount
from ledger.roles import Actor, Role

#: Event types whose summaries say what a contractor may not read.
REDACTED_SUMMARIES = {"InterviewRecorded": "interview {interview_id} recorded",
                      "MediationNoted": "mediation note"}


def is_redacted_for(actor: Actor) -> bool:
    return actor.role is Role.CONTRACTOR


def timestamp(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, ending in Z."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat is several times faster than strftime, and this runs once per event per view.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def engagement_state(engagement: Engagement, actor: Actor) -> dict[str, Any]:
    """`engagement show --format json`: every field present, amounts in the currency's units."""
    redacted = is_redacted_for(actor)
    money = lambda amount: format_amount(amount, engagement.currency)  # noqa: E731
    return {
        "id": str(engagement.id),
        "version": engagement.version,
        "status": engagement.status,
        "outcome": engagement.outcome,
        "title": engagement.title,
        "client": engagement.client,
        "contractor": engagement.contractor,
        "curator": engagement.curator,
        "budget": money(engagement.budget),
        "currency": engagement.currency,
        "inspection_days": engagement.inspection_days,
        "grace_days": engagement.grace_days,
        "opened_at": timestamp(engagement.created_on),
        "updated_at": timestamp(engagement.modified_on),
        "closed_at": timestamp(engagement.closed_at),
        "redacted": redacted,
        "interviews": None if redacted else [_interview(i) for i in engagement.interviews.values()],
        "agreements": [_agreement(a) for a in engagement.agreements.values()],
        "milestones": [_milestone(m, money) for m in engagement.milestones.values()],
        "grants": [_grant(g) for g in engagement.grants.values()],
        "disputes": [_dispute(d, money, redacted) for d in engagement.disputes.values()],
        "disclosures": [
            {"description": d.description, "agreement": d.agreement, "sha256": d.sha256,
             "agreement_in_force": d.agreement_in_force, "by": d.by, "at": timestamp(d.at)}
            for d in engagement.disclosures
        ],
        "playbook_acknowledgements": [
            {"policy_version": e.text, "by": e.by, "at": timestamp(e.at)} for e in engagement.playbook
        ],
        "notes": [{"text": e.text, "by": e.by, "at": timestamp(e.at)} for e in engagement.notes],
        "corrections": [
            {"version": int(e.ref or 0), "reason": e.text, "by": e.by, "at": timestamp(e.at)}
            for e in engagement.corrections
        ],
        "money": {
            "funded": money(engagement.funded),
            "released": money(engagement.released),
            "refunded": money(engagement.refunded),
            "escrow": money(engagement.escrow),
            "committed": money(engagement.committed_amount()),
        },
    }


def _interview(interview: Any) -> dict[str, Any]:
    return {
        "id": interview.id,
        "interviewer": interview.interviewer,
        "scores": dict(interview.scores),
        "scenarios": dict(interview.scenarios),
        "red_flags": list(interview.red_flags),
        "notes": interview.notes,
        "decision": interview.decision,
        "at": timestamp(interview.at),
    }


def _agreement(agreement: Any) -> dict[str, Any]:
    in_force = agreement.in_force
    return {
        "id": agreement.id,
        "kind": agreement.kind,
        "jurisdiction": agreement.jurisdiction,
        "status": agreement.status,
        "in_force_version": in_force.version if in_force else None,
        "versions": [
            {
                "version": v.version,
                "sha256": v.sha256,
                "status": v.status,
                "drafted_at": timestamp(v.drafted_at),
                "reason": v.reason,
                "reviewed_by": v.reviewed_by,
                "reviewed_at": timestamp(v.reviewed_at),
                "signatures": {
                    party: ({"signer": s.signer, "at": timestamp(s.at)} if (s := v.signatures.get(party)) else None)
                    for party in ("client", "contractor")
                },
            }
            for v in agreement.versions
        ],
    }


def _milestone(milestone: Any, money: Any) -> dict[str, Any]:
    return {
        "id": milestone.id,
        "title": milestone.title,
        "criteria": milestone.criteria,
        "status": milestone.status,
        "amount": money(milestone.amount),
        "due": milestone.due.isoformat(),
        "original_due": milestone.original_due.isoformat() if milestone.original_due else None,
        "funded_at": timestamp(milestone.funded_at),
        "submitted_at": timestamp(milestone.submitted_at),
        "accepted_at": timestamp(milestone.accepted_at),
        "deemed_accepted": milestone.deemed,
        "closed_at": timestamp(milestone.closed_at),
        "submissions": milestone.submissions,
        "changes_requested": milestone.changes_requested,
        "extensions": milestone.extensions,
        "extension_request": None if milestone.extension_request is None else {
            "due": milestone.extension_request["due"].isoformat(),
            "reason": milestone.extension_request["reason"],
            "at": timestamp(milestone.extension_request["at"]),
        },
        "amendment": None if milestone.amendment is None else {
            "number": milestone.amendment["number"],
            "changes": {k: plain(v) if k != "amount" else money(v)
                        for k, v in milestone.amendment["changes"].items()},
            "reason": milestone.amendment["reason"],
            "signatures": {
                party: ({"signer": sig["signer"], "at": timestamp(sig["at"])}
                        if (sig := milestone.amendment["signatures"].get(party)) else None)
                for party in ("client", "contractor")
            },
        },
    }


def _grant(grant: Any) -> dict[str, Any]:
    return {
        "id": grant.id,
        "resource": grant.resource,
        "level": grant.level,
        "milestone": grant.milestone,
        "status": grant.status,
        "until": grant.until.isoformat(),
        "reason": grant.reason,
        "granted_at": timestamp(grant.granted_at),
        "recertified_at": timestamp(grant.recertified_at),
        "ended_at": timestamp(grant.ended_at),
        "end_reason": grant.end_reason,
    }


def _dispute(dispute: Any, money: Any, redacted: bool) -> dict[str, Any]:
    optional = lambda amount: None if amount is None else money(amount)  # noqa: E731
    return {
        "id": dispute.id,
        "milestone": dispute.milestone,
        "status": dispute.status,
        "party": dispute.party,
        "reason": dispute.reason,
        "claim": optional(dispute.claim),
        "opened_at": timestamp(dispute.opened_at),
        "opened_version": dispute.opened_version,
        "evidence": [
            {"id": e.id, "party": e.party, "description": e.description, "sha256": e.sha256,
             "at": timestamp(e.at)}
            for e in dispute.evidence
        ],
        "mediation_notes": None if redacted else [
            {"text": n.text, "by": n.by, "at": timestamp(n.at)} for n in dispute.notes
        ],
        "resolution": None if dispute.status != "resolved" else {
            "release": money(dispute.release),
            "refund": money(dispute.refund),
            "reason": dispute.resolution,
            "findings": dict(dispute.findings),
            "at": timestamp(dispute.resolved_at),
        },
        "escalation": None if dispute.escalated_to is None else {
            "to": dispute.escalated_to,
            "packet_sha256": dispute.packet_sha256,
            "at": timestamp(dispute.escalated_at),
        },
    }


def history_row(event: EngagementEvent, actor: Actor) -> dict[str, Any]:
    name = type(event).__name__
    summary = event.summary()
    if is_redacted_for(actor) and name in REDACTED_SUMMARIES:
        summary = REDACTED_SUMMARIES[name].format(**vars(event))
    return {
        "version": event.originator_version,
        "timestamp": timestamp(event.timestamp),
        "actor": event.actor,
        "role": event.role,
        "type": name,
        "summary": summary,
        "command_id": event.command_id,
    }


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two states, as dotted paths (`milestones.M1.status`).

    A list that fills up is reported by its new items' paths, never as the list becoming null.
    """
    old, new = flatten(before), flatten(after)
    ignored = {"version", "updated_at"}
    old_parents, new_parents = _parents(old), _parents(new)
    paths = [p for p in new if p not in ignored and p not in old_parents]
    paths += [p for p in old if p not in new and p not in ignored and p not in new_parents]
    return [
        {"path": path, "before": old.get(path), "after": new.get(path)}
        for path in paths
        if old.get(path) != new.get(path)
    ]


def _parents(flat: dict[str, Any]) -> set[str]:
    """Every proper dotted prefix of the paths."""
    parents: set[str] = set()
    for path in flat:
        while "." in path:
            path = path.rsplit(".", 1)[0]
            if path in parents:
                break
            parents.add(path)
    return parents


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ((_key_of(v, i, prefix), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in items:
        flat.update(flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _key_of(item: dict[str, Any], index: int, prefix: str = "") -> str:
    """Entities by their id, agreement versions as `v<N>`, anything else by position."""
    if item.get("id") is not None:
        return str(item["id"])
    if prefix.endswith("versions") and item.get("version") is not None:
        return f"v{item['version']}"
    return str(index)


def plain(value: Any) -> Any:
    """Makes a value JSON-ready (Decimal, date, datetime)."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value

