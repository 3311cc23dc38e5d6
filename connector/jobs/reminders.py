"""Reminders reach the CRM on time: ``appointment.reminder_due``, once per reminder and start.

An appointment's reminders (its own list, or the account's defaults) each fall due
``minutes_before`` its start. The scheduler runs ``send_due`` every
``scheduler.reminder_seconds``; each due reminder is claimed by a unique row
(``ReminderSent``: appointment, reminder, start) in the transaction that queues its event,
so it is sent once whatever the number of processes. Decided:

- only for appointments still going ahead (active, rescheduled, awaiting confirmation);
- a reschedule moves them: the key names the start, so the new start's reminders are new,
  and the old start's that were not sent yet never will be;
- a reminder is sent while its window is open, from its due time until the start: one whose
  whole lead passed while calsync was down (it is the start already) is not sent late;
- the briefing (``appointment.upcoming``, ``scheduler.briefing_lead_minutes`` before the start)
  is one such reminder every appointment has, claimed the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from peewee import Database, IntegrityError

from connector.inputs import MAX_REMINDER_LEAD_MINUTES
from connector.outputs import events, resources
from mappings.db import write_transaction
from mappings.models import Account, Appointment, ReminderSent
from mappings.times import to_api

log = logging.getLogger("calsync.reminders")

GOING_AHEAD = ("active", "rescheduled", "awaiting_confirmation")
LOOK_AHEAD = timedelta(minutes=MAX_REMINDER_LEAD_MINUTES)


def reminders_of(row: Appointment, account: Account) -> list[dict[str, Any]]:
    """The appointment's reminders: its own, or the account's defaults when it names none."""
    chosen = row.reminders if row.reminders is not None else account.default_reminders
    return [dict(item) for item in chosen or [] if isinstance(item, dict)]


def key_of(reminder: dict[str, Any], start: datetime) -> str:
    return f"{reminder['channel']}:{int(reminder['minutes_before'])}:{to_api(start)}"


def send_due(db: Database, now: datetime, booker_url: str, *, account_id: str | None = None) -> int:
    """Queue ``appointment.reminder_due`` for every reminder whose window is open now; answers how
    many (each at most once)."""
    condition = (Appointment.status.in_(GOING_AHEAD) & (Appointment.desired_status == "active")
                 & (Appointment.start_time > now) & (Appointment.start_time <= now + LOOK_AHEAD))
    if account_id is not None:
        condition &= Appointment.account == account_id
    rows = list(Appointment.select().where(condition).order_by(Appointment.start_time))
    accounts = {row.id: row for row in Account.select().where(
        Account.id.in_(sorted({row.account_id for row in rows})))} if rows else {}
    sent = 0
    for row in rows:
        for reminder in reminders_of(row, accounts[row.account_id]):
            due_at = row.start_time - timedelta(minutes=int(reminder["minutes_before"]))
            if not due_at <= now < row.start_time:
                continue
            if _claim_and_send(db, row, reminder, due_at, now, booker_url):
                sent += 1
    if sent:
        log.info("reminders due", extra={"action": "reminders.sent", "count": sent})
    return sent


def _claim_and_send(db: Database, row: Appointment, reminder: dict[str, Any], due_at: datetime,
                    now: datetime, booker_url: str) -> bool:
    with write_transaction(db):
        fresh = _claim(db, row, key_of(reminder, row.start_time), now)
        if fresh is None:
            return False
        data = {**resources.appointment_with_chain(fresh, booker_url),
                "reminder": {"channel": reminder["channel"], "minutes_before": int(reminder["minutes_before"]),
                             "template": reminder.get("template"), "due_at": to_api(due_at)}}
        events.emit(db, row.account_id, events.REMINDER_DUE, data, now=now, order_key=row.id)
    return True


def _claim(db: Database, row: Appointment, key: str, now: datetime) -> Appointment | None:
    """The appointment as it is now, if this reminder of its start is this caller's to send (inside
    the caller's transaction); None if it moved or ended since it was read, or went out already."""
    fresh = Appointment.find_by_id(row.id)
    if fresh is None or fresh.start_time != row.start_time or fresh.status not in GOING_AHEAD:
        return None  # the next sweep sees it as it is
    if ReminderSent.select().where((ReminderSent.appointment == row.id) & (ReminderSent.key == key)).exists():
        return None
    try:
        with db.atomic():  # a savepoint: another process may claim it at the same moment
            ReminderSent.create(appointment=row.id, key=key, sent_at=now)
    except IntegrityError:
        return None
    return fresh


def send_briefings(db: Database, now: datetime, booker_url: str, lead: timedelta) -> int:
    """The briefing, one of the reminders every appointment has: ``appointment.upcoming`` ``lead``
    before the start, once per start (so a reschedule moves it), by the same claim; none for an
    appointment created inside that window (its CRM made it knowing it is close)."""
    rows = list(Appointment.select().where(
        Appointment.status.in_(GOING_AHEAD) & (Appointment.desired_status == "active")
        & (Appointment.start_time > now) & (Appointment.start_time <= now + lead))
        .order_by(Appointment.start_time))
    sent = 0
    minutes = int(lead.total_seconds() // 60)
    for row in rows:
        if row.created_at > row.start_time - lead:
            continue
        with write_transaction(db):
            fresh = _claim(db, row, f"briefing:{minutes}:{to_api(row.start_time)}", now)
            if fresh is None:
                continue
            Appointment.update_by_id(row.id, briefing_sent_at=now)
            events.emit_for(db, row.id, events.UPCOMING, now=now, booker_url=booker_url)
            sent += 1
    return sent
