"""Events to the CRM (DESIGN §7): made when something happens, delivered later by the queue.

``emit`` runs inside the transaction that records the change, so an event exists
if and only if its change does. The event's id and body are fixed here: every
delivery attempt sends the same bytes under the same ``webhook-id``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from peewee import Database

from connector.jobs import queue
from connector.outputs import resources
from mappings.models import Account, Appointment, new_id
from mappings.prepared import Prepared
from mappings.times import to_api

DELIVER_EVENT = "deliver_event"

SYNCED = "appointment.synced"
RESCHEDULED = "appointment.rescheduled"
CANCELLED = "appointment.cancelled"
FAILED = "appointment.failed"
ATTENDANCE = "appointment.attendance"
CREATED = "appointment.created"
COMPLETED = "appointment.completed"
UPCOMING = "appointment.upcoming"
CONFIRMED = "appointment.confirmed"
DECLINED = "appointment.declined"
REASSIGNED = "appointment.reassigned"
RESCHEDULE_REQUESTED = "appointment.reschedule_requested"
EVENT_TYPES_CHANGED = "event_types.changed"
# The appointment with the reminder that fell due (``data.reminder``): the CRM sends it.
REMINDER_DUE = "appointment.reminder_due"
# Every event whose ``data`` is the appointment (docs/events.md; the ``webhooks`` of /openapi.json).
APPOINTMENT_EVENTS = (SYNCED, CREATED, RESCHEDULED, CANCELLED, FAILED, ATTENDANCE, COMPLETED,
                      UPCOMING, CONFIRMED, DECLINED, REASSIGNED, RESCHEDULE_REQUESTED)


def emit(db: Database, account_id: str, event_type: str, data: dict[str, Any], *, now: datetime,
         order_key: str) -> int | None:
    """Queue one event for the account's callback URL; None when the account has none."""
    callback = Account.select(Account.callback_url).where(Account.id == account_id).scalar()
    if not callback:
        return None
    event_id = new_id("evt")
    body = json.dumps({"type": event_type, "timestamp": to_api(now), "data": data},
                      separators=(",", ":"), ensure_ascii=False)
    return queue.enqueue(db, DELIVER_EVENT, now=now, account_id=account_id,
                         payload={"event_id": event_id, "type": event_type, "body": body},
                         serial_key=f"events:{order_key}")


def emit_for(db: Database, appointment_id: str, event_type: str, *, now: datetime,
             booker_url: str) -> int | None:
    """An appointment event carrying the appointment as it is now (after the change)."""
    row = Appointment.get_by_id(appointment_id)
    if not _CALLBACK_URL.tuples(account_id=row.account_id)[0][0]:
        return None  # no CRM to tell: the appointment is not rendered for nobody
    return emit(db, row.account_id, event_type, resources.appointment_with_chain(row, booker_url),
                now=now, order_key=appointment_id)


_CALLBACK_URL: Prepared[Account] = Prepared(lambda slot: Account.select(Account.callback_url).where(
    Account.id == slot("account_id")))
