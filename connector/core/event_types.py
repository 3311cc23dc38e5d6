"""The per-account cache of Cal.com event types, refreshed from ``GET /v2/event-types``.

Appointment validation reads the cache; once it holds any row for an account,
an unknown or vanished event type is refused at the API (DESIGN §10).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from peewee import Database

from connector.calcom import CalcomClient
from connector.calcom.clients import CalcomClients
from connector.clock import Clock
from connector.outputs import audit, events
from mappings.db import write_transaction
from mappings.from_calcom import CalcomEventType
from mappings.models import Account, Appointment, EventType, Job

log = logging.getLogger("calsync.event_types")


@dataclass(frozen=True)
class RefreshResult:
    added: tuple[int, ...]
    changed: tuple[int, ...]
    removed: tuple[int, ...]

    def as_dict(self) -> dict[str, list[int]]:
        return {"added": list(self.added), "changed": list(self.changed),
                "removed": list(self.removed)}


def _columns(item: CalcomEventType) -> dict:
    return {
        "team_id": item.team_id,
        "slug": item.slug,
        "title": item.title,
        "length_minutes": item.length_minutes,
        "length_options": list(item.length_options),
        "locations": [dict(location) for location in item.locations],
        "scheduling_type": item.scheduling_type,
        "seats_per_slot": item.seats_per_slot,
        "requires_confirmation": item.requires_confirmation,
        "hidden": item.hidden,
    }


def fetch(client: CalcomClient) -> dict[int, CalcomEventType]:
    """The user's own event types and those of every team the user belongs to."""
    fetched = {item.id: item for item in client.list_event_types()}
    for team_id in client.list_team_ids():
        fetched.update({item.id: item for item in client.list_team_event_types(team_id)})
    return fetched


def refresh(db: Database, clock: Clock, clients: CalcomClients, account_id: str) -> RefreshResult:
    """Fetch the account's event types and upsert them; vanished ones become inactive, and the
    live appointments still using one are flagged. Any change is sent as ``event_types.changed``."""
    account = Account.get_by_id(account_id)
    fetched = fetch(clients.for_account(account))
    now = clock.now()
    added, changed, removed = [], [], []
    with write_transaction(db):
        cached = {row.calcom_id: row for row in
                  EventType.select().where(EventType.account == account_id)}
        for calcom_id, item in fetched.items():
            columns = _columns(item)
            row = cached.get(calcom_id)
            if row is None:
                EventType.create(account=account_id, calcom_id=calcom_id, active=True,
                                 refreshed_at=now, **columns)
                added.append(calcom_id)
                continue
            differs = not row.active or any(getattr(row, k) != v for k, v in columns.items())
            EventType.update_by_id(row.id, active=True, refreshed_at=now, **columns)
            if differs:
                changed.append(calcom_id)
        for calcom_id, row in cached.items():
            if calcom_id not in fetched and row.active:
                EventType.update_by_id(row.id, active=False, refreshed_at=now)
                removed.append(calcom_id)
        result = RefreshResult(tuple(sorted(added)), tuple(sorted(changed)), tuple(sorted(removed)))
        flagged = _flag_users_of(account_id, removed, now) if removed else 0
        if added or changed or removed:
            events.emit(db, account_id, events.EVENT_TYPES_CHANGED, {**result.as_dict(), "flagged": flagged},
                        now=now, order_key=f"event_types:{account_id}")
    log.info("event types refreshed", extra={"action": "event_types.refresh",
                                             "account_id": account_id, **result.as_dict()})
    return result


def _flag_users_of(account_id: str, removed: list[int], now: datetime) -> int:
    """Upcoming appointments on a vanished event type: their next change would fail in Cal.com."""
    users = list(Appointment.select(Appointment.id, Appointment.event_type_id).where(
        (Appointment.account == account_id) & Appointment.event_type_id.in_(removed)
        & Appointment.status.in_(["pending", "active", "rescheduled", "awaiting_confirmation"])
        & (Appointment.start_time > now)))
    for row in users:
        note = f"event type {row.event_type_id} is no longer in Cal.com"
        Appointment.update_by_id(row.id, last_error=note, updated_at=now)
        audit.record(account_id=account_id, appointment_id=row.id, actor="system",
                     action="event_type.inactive", now=now, after={"event_type_id": row.event_type_id})
    return len(users)


class RefreshHandler:
    """The worker's handler for ``refresh_event_types`` jobs."""

    def __init__(self, db: Database, clock: Clock, clients: CalcomClients) -> None:
        self.db, self.clock, self.clients = db, clock, clients

    def run(self, job: Job) -> None:
        refresh(self.db, self.clock, self.clients, job.payload["account_id"])

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        """Nothing to show beyond the job itself: the cache keeps its last good state."""
