"""The append-only audit trail: who changed what, before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mappings.models import AuditEvent
from mappings.times import to_api


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_api(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def record(*, account_id: str, appointment_id: str | None, actor: str, action: str, now: datetime,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Append one event; call inside the transaction that makes the change."""
    AuditEvent.create(account=account_id, appointment=appointment_id, at=now, actor=actor,
                      action=action, before=_plain(before), after=_plain(after))
