"""Money over time: funded, released and refunded per month and currency, and disputes opened
and closed per month, for the dashboard's charts. Added up from the events themselves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ledger.money import to_minor
from projections.engagement_state import load_engagements
from projections.readmodel import Item, ReadModel
from projections.store import Tx

#: event type -> [(column, event field)]
MOVES = {
    "MilestoneFunded": [("funded", "amount")],
    "PaymentReleased": [("released", "amount")],
    "MilestoneCancelled": [("refunded", "refunded")],
    "DisputeResolved": [("released", "release"), ("refunded", "refund")],
}
COUNTS = {"DisputeOpened": "disputes_opened", "DisputeResolved": "disputes_closed"}
FIELDS = ("funded", "released", "refunded", "disputes_opened", "disputes_closed")


class MoneyOverTime(ReadModel):
    name = "monthly"
    title = "money over time (per month)"
    tables = (
        "CREATE TABLE IF NOT EXISTS {monthly} ("
        "month TEXT NOT NULL, currency TEXT NOT NULL, funded BIGINT NOT NULL, "
        "released BIGINT NOT NULL, refunded BIGINT NOT NULL, disputes_opened INTEGER NOT NULL, "
        "disputes_closed INTEGER NOT NULL, PRIMARY KEY (month, currency))",
    )

    def apply(self, tx: Tx, batch: Sequence[Item]) -> None:
        wanted = [item for item in batch if item.type in MOVES or item.type in COUNTS]
        if not wanted:
            return
        engagements = load_engagements(tx, {i.engagement_id for i in wanted})
        sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
        for item in wanted:
            event = item.event
            currency = engagements[item.engagement_id].currency
            cell = sums[(event.timestamp.strftime("%Y-%m"), currency)]
            for column, field in MOVES.get(item.type, ()):
                cell[column] += to_minor(getattr(event, field), currency)
            if item.type in COUNTS:
                cell[COUNTS[item.type]] += 1
        tx.executemany(
            "INSERT INTO {monthly} AS m (month, currency, funded, released, refunded, "
            "disputes_opened, disputes_closed) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (month, currency) DO UPDATE SET "
            + ", ".join(f"{f} = m.{f} + excluded.{f}" for f in FIELDS),
            [(month, ccy, *(cell[f] for f in FIELDS)) for (month, ccy), cell in sorted(sums.items())])
