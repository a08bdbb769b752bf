"""Every read model, in the order they are applied and listed."""

from __future__ import annotations

from ledger.errors import InvalidInput
from projections.access_register import AccessRegister
from projections.audit_trail import AuditTrail
from projections.contractor_record import ContractorRecord
from projections.curator_workload import CuratorWorkload
from projections.dispute_docket import DisputeDocket
from projections.engagement_state import EngagementState
from projections.money_ledger import MoneyLedger
from projections.money_over_time import MoneyOverTime
from projections.readmodel import ReadModel
from projections.summary import EngagementSummary

READ_MODELS: tuple[type[ReadModel], ...] = (
    EngagementState,  # first: the models after it read the engagements it keeps
    EngagementSummary, AccessRegister, MoneyLedger, DisputeDocket, CuratorWorkload,
    ContractorRecord, MoneyOverTime, AuditTrail,
)


def read_model_class(name: str) -> type[ReadModel]:
    for cls in READ_MODELS:
        if cls.name == name:
            return cls
    names = ", ".join(cls.name for cls in READ_MODELS)
    raise InvalidInput(f"no read model named {name!r}; the read models are {names}")
