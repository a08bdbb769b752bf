"""The evidence packet written when a dispute is escalated: a ZIP with a JSON and a PDF summary."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ledger.errors import InvalidInput


def check_packet_folder(path: str) -> Path:
    """Input check, made before any role or rule: the packet's folder must exist."""
    target = Path(path)
    if not target.parent.resolve().is_dir():
        raise InvalidInput(f"packet folder {str(target.parent)!r} does not exist")
    return target


def write_evidence_packet(path: str, engagement: Any, dispute_id: str, to: str,
                          story: list[Any], by: Any) -> str:
    """Writes the packet atomically and returns its SHA-256 (recorded with the escalation)."""
    target = check_packet_folder(path)
    content = packet_content(engagement, dispute_id, to, story, by)
    data = json.dumps(content, indent=2, ensure_ascii=False, default=str).encode()
    pdf = packet_pdf(content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        stamp = (2000, 1, 1, 0, 0, 0)  # fixed, so the same packet hashes the same
        archive.writestr(zipfile.ZipInfo("packet.json", stamp), data)
        archive.writestr(zipfile.ZipInfo("summary.pdf", stamp), pdf)
    payload = buffer.getvalue()
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent.resolve(), suffix=".part")
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, target)
    except OSError as error:
        raise InvalidInput(f"cannot write the packet to {path!r}: {error.strerror}") from None
    return hashlib.sha256(payload).hexdigest()


def packet_content(engagement: Any, dispute_id: str, to: str, story: list[Any], by: Any) -> dict[str, Any]:
    from ledger.money import format_amount
    from ledger.views import timestamp

    dispute = engagement.disputes[dispute_id]
    milestone = engagement.milestones[dispute.milestone]
    money = lambda amount: None if amount is None else format_amount(amount, engagement.currency)  # noqa: E731
    related = [e for e in story if _concerns(e, milestone.id, dispute_id, engagement)]
    return {
        "engagement": {"id": str(engagement.id), "title": engagement.title,
                       "client": engagement.client, "contractor": engagement.contractor,
                       "curator": engagement.curator, "currency": engagement.currency},
        "escalated_to": to,
        "escalated_by": f"{by.actor.role.value}:{by.actor.name}",
        "escalated_at": timestamp(by.timestamp),
        "milestone": {"id": milestone.id, "title": milestone.title, "criteria": milestone.criteria,
                      "amount": money(milestone.amount), "due": milestone.due.isoformat(),
                      "status": milestone.status},
        "dispute": {"id": dispute.id, "party": dispute.party, "reason": dispute.reason,
                    "claim": money(dispute.claim), "opened_at": timestamp(dispute.opened_at),
                    "status_before": dispute.milestone_status_before},
        "evidence": [{"id": e.id, "party": e.party, "description": e.description,
                      "sha256": e.sha256, "at": timestamp(e.at)} for e in dispute.evidence],
        "story": [{"version": e.originator_version, "at": timestamp(e.timestamp),
                   "actor": f"{e.role}:{e.actor}", "type": type(e).__name__,
                   "summary": e.summary()} for e in related],
    }


def _concerns(event: Any, milestone_id: str, dispute_id: str, engagement: Any) -> bool:
    if getattr(event, "milestone_id", None) == milestone_id:
        return True
    if getattr(event, "dispute_id", None) == dispute_id:
        return True
    grant_id = getattr(event, "grant_id", None)
    return grant_id is not None and engagement.grants[grant_id].milestone == milestone_id


def packet_pdf(content: dict[str, Any]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    from xml.sax.saxutils import escape

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"Evidence packet {content['dispute']['id']}",
                            invariant=1)
    e, m, d = content["engagement"], content["milestone"], content["dispute"]
    para = lambda text, style="BodyText": Paragraph(escape(str(text)), styles[style])  # noqa: E731
    flow = [
        para(f"Evidence packet: dispute {d['id']} on {m['id']}", "Title"),
        para(f"{e['title']} — {e['client']} with {e['contractor']} (curator {e['curator']})"),
        para(f"Engagement {e['id']}. Escalated to {content['escalated_to']} by "
             f"{content['escalated_by']} at {content['escalated_at']}."),
        Spacer(1, 8),
        para("Milestone", "Heading2"),
        para(f"{m['id']} {m['title']}: {m['amount']} {e['currency']}, due {m['due']}"),
        para(f"Acceptance criteria: {m['criteria'] or '—'}"),
        para("Dispute", "Heading2"),
        para(f"Opened by the {d['party']} at {d['opened_at']} (milestone was {d['status_before']})"
             f"; claim {d['claim'] or '—'}. Reason: {d['reason']}"),
        para("Evidence", "Heading2"),
    ]
    rows = [["Id", "Party", "Description", "SHA-256"]] + [
        [x["id"], x["party"], para(x["description"]), para(x["sha256"] or "—")]
        for x in content["evidence"]
    ]
    flow.append(_table(rows, [30, 60, 240, 180], Table, TableStyle, colors))
    flow.append(para("The milestone's story", "Heading2"))
    rows = [["v", "When (UTC)", "Who", "What"]] + [
        [str(x["version"]), x["at"][:19].replace("T", " "), para(x["actor"]), para(x["summary"])]
        for x in content["story"]
    ]
    flow.append(_table(rows, [30, 100, 110, 270], Table, TableStyle, colors))
    doc.build(flow)
    return buffer.getvalue()


def _table(rows: list[list[Any]], widths: list[int], Table: Any, TableStyle: Any, colors: Any) -> Any:
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTSIZE", (0, 0), (-1, -1), 8),
    ]))
    return table
