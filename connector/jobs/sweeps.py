"""Periodic sweeps over appointments: ended ones completed, briefings sent, stranded ones re-queued.

Each works in bounded batches and changes an appointment only through a
conditional update, so two processes sweeping at once never act twice on one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from peewee import SQL, Database, Value, fn

from connector.jobs import queue, reminders
from connector.outputs import audit, events
from mappings.db import write_transaction
from mappings.models import Appointment, Job
from webhooks import dispatch

BATCH = 500
BRIEFING_LEAD = timedelta(minutes=60)
LIVE = ("active", "rescheduled")


def complete_ended(db: Database, now: datetime, booker_url: str, *, account_id: str | None = None,
                   actor: str = "system") -> int:
    """Live appointments whose end has passed become ``completed``, with ``appointment.completed``."""
    ended = (Appointment.select(Appointment.id, Appointment.account, Appointment.status)
             .where(Appointment.status.in_(LIVE) & Appointment.end_time.is_null(False)
                    & (Appointment.end_time <= now) & (Appointment.desired_status == "active"))
             .order_by(Appointment.end_time).limit(BATCH))
    if account_id is not None:
        ended = ended.where(Appointment.account == account_id)
    count = 0
    for row in list(ended):
        with write_transaction(db):
            count += complete(db, row, now, booker_url, actor=actor)
    return count


def complete(db: Database, appointment: Appointment, now: datetime, booker_url: str, *, actor: str) -> bool:
    """The meeting is over: ``completed``, audited, the CRM told; False if it is no longer live."""
    changed = Appointment.update(status="completed", updated_at=now).where(
        (Appointment.id == appointment.id) & Appointment.status.in_(LIVE)).execute()
    if changed:
        audit.record(account_id=appointment.account_id, appointment_id=appointment.id, actor=actor,
                     action="appointment.completed", before={"status": appointment.status},
                     after={"status": "completed"}, now=now)
        events.emit_for(db, appointment.id, events.COMPLETED, now=now, booker_url=booker_url)
    return bool(changed)


def send_briefings(db: Database, now: datetime, booker_url: str, lead: timedelta = BRIEFING_LEAD) -> int:
    """``appointment.upcoming`` about ``lead`` before start: a reminder like the others
    (connector/jobs/reminders.py), once per start."""
    return reminders.send_briefings(db, now, booker_url, lead)


def sweep_stranded(db: Database, now: datetime, *, account_id: str | None = None) -> int:
    """Appointments out of sync with no converge job waiting or running get one, and accounts
    holding undispatched webhook deliveries their dispatcher.

    A safety net: a job is always written with its appointment, but an admin's
    database restore or a bug must not leave an appointment stranded.
    """
    waiting = Job.select(SQL("1")).where(
        (Job.serial_key == Value("appointment:").concat(Appointment.id))
        & (Job.status.in_(["queued", "running"])))
    stranded = (Appointment.select(Appointment.id, Appointment.account)
                .where(((Appointment.sync_state.in_(["pending", "retrying"]))
                        | (Appointment.synced_version < Appointment.desired_version))
                       & ~fn.EXISTS(waiting))
                .limit(BATCH))
    if account_id is not None:
        stranded = stranded.where(Appointment.account == account_id)
    count = 0
    for row in list(stranded):
        queue.enqueue_converge(db, row.id, row.account_id, now=now)
        count += 1
    for held in dispatch.undispatched_accounts():
        if account_id is None or held == account_id:
            with write_transaction(db):
                dispatch.ensure_dispatcher(db, held, now=now)
    return count
