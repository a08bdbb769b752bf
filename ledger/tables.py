"""Human-readable text for `--format table` (the JSON contract is in views.py)."""

from __future__ import annotations

from typing import Any


def render_state(state: dict[str, Any]) -> str:
    money = state["money"]
    lines = [
        f"{state['title']}  [{state['status']}{' / ' + state['outcome'] if state['outcome'] else ''}]",
        f"  id          {state['id']}  (version {state['version']})",
        f"  client      {state['client']}",
        f"  contractor  {state['contractor']}",
        f"  curator     {state['curator']}",
        f"  budget      {state['budget']} {state['currency']}   inspection {state['inspection_days']} d,"
        f" grace {state['grace_days']} d",
        f"  money       funded {money['funded']}  released {money['released']}  "
        f"refunded {money['refunded']}  escrow {money['escrow']}",
    ]
    if state["redacted"]:
        lines.append("  (redacted view: interviews and mediation notes are hidden)")
    if state["interviews"]:
        lines.append("Interviews")
        for i in state["interviews"]:
            scores = ", ".join(f"{k}={v}" for k, v in i["scores"].items())
            lines.append(f"  {i['id']:<4} {i['decision']:<8} by {i['interviewer']}: {scores}")
            for flag in i["red_flags"]:
                lines.append(f"       red flag: {flag}")
    if state["agreements"]:
        lines.append("Agreements")
        for a in state["agreements"]:
            force = f"v{a['in_force_version']} in force" if a["in_force_version"] else "not in force"
            lines.append(f"  {a['id']:<4} {a['kind'].upper():<4} {a['jurisdiction']:<6} {a['status']:<7} {force}")
            for v in a["versions"]:
                signed = ", ".join(p for p, s in v["signatures"].items() if s) or "unsigned"
                review = f"reviewed by {v['reviewed_by']}" if v["reviewed_by"] else "not reviewed"
                lines.append(f"       v{v['version']} {v['status']:<10} {signed}; {review}")
    if state["milestones"]:
        lines.append("Milestones")
        for m in state["milestones"]:
            lines.append(f"  {m['id']:<4} {m['status']:<18} {m['amount']:>12}  due {m['due']}  {m['title']}")
    return "\n".join(lines)
