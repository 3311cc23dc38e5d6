"""``converge(appointment)``: compare desired and observed state, make the one call that closes the gap.

Every trigger (a CRM write, a retry, the scheduler's sweep) only enqueues
"converge appointment X", so this function must be idempotent: running it twice
in a row makes at most one Cal.com call.

Exactly-once create (DESIGN §1 principle 3): before sending a create, calsync
commits ``create_attempted_at``. While that marker is set a booking may exist in
Cal.com without calsync knowing its uid, so the next attempt — after a timeout,
a reset, a 5xx, a 409, or a worker killed mid-call — first searches Cal.com for a
booking whose ``metadata.calsync_appointment_id`` is this appointment's id and
adopts it. The marker is cleared only once the outcome is known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from peewee import Database

from connector import audit, errors
from connector.calcom import BookingFilters, CalcomClient
from connector.clients import CalcomClients
from connector.clock import Clock
from connector.retry import describe
from mappings.db import write_transaction
from mappings.from_calcom import CalcomBooking
from mappings.models import Account, Appointment, Booking, EventType, Job
from mappings.to_calcom import (
    APPOINTMENT_ID_KEY,
    BookingRequest,
    create_booking_body,
    length_to_request,
)

log = logging.getLogger("calsync.sync")

SYSTEM = "system"


@dataclass
class SyncContext:
    db: Database
    clock: Clock
    clients: CalcomClients


def converge(ctx: SyncContext, appointment_id: str) -> str:
    """Close the gap for one appointment; returns what was done, for logs and tests."""
    appointment = Appointment.get_or_none(Appointment.id == appointment_id)
    if appointment is None:
        return "missing"
    version = appointment.desired_version
    if appointment.desired_status == "active" and appointment.booking_uid is None:
        if appointment.status == "failed" and appointment.synced_version >= version:
            return "failed"  # Cal.com refused this version; a new CRM write tries again
        return _create(ctx, appointment, version)
    booking = Booking.get_or_none(Booking.uid == appointment.booking_uid)
    if booking is not None and _needs_calcom_change(appointment, booking):
        # Reschedule and cancel arrive with issue 3; until then the gap stays visible
        # as sync_state "pending" instead of being reported as synced.
        return "unsupported-change"
    return _mark_synced(ctx, appointment, version)


def _needs_calcom_change(appointment: Appointment, booking: Booking) -> bool:
    return appointment.desired_status != "active" or booking.start_time != appointment.start_time or (
        appointment.end_time is not None and booking.end_time != appointment.end_time)


def _create(ctx: SyncContext, appointment: Appointment, version: int) -> str:
    account = Account.get_by_id(appointment.account_id)
    client = ctx.clients.for_account(account)
    if appointment.create_attempted_at is not None:
        found = find_created_booking(client, appointment)
        if found is not None:
            _record_created(ctx, appointment.id, version, found, action="booking.adopted")
            return "adopted"
    with write_transaction(ctx.db):
        Appointment.update(create_attempted_at=ctx.clock.now()).where(
            Appointment.id == appointment.id).execute()
    try:
        booking = client.create_booking(create_booking_body(_booking_request(appointment)))
    except errors.CalcomConflict as conflict:
        # 409 booking_conflict_error: maybe our own earlier request won the race (REFERENCE §5.1).
        found = find_created_booking(client, appointment)
        if found is not None:
            _record_created(ctx, appointment.id, version, found, action="booking.adopted")
            return "adopted"
        _record_failure(ctx, appointment.id, version, conflict)
        return "failed"
    except errors.CalcomRejected as rejected:
        _record_failure(ctx, appointment.id, version, rejected)
        return "failed"
    _record_created(ctx, appointment.id, version, booking, action="booking.created")
    return "created"


def _booking_request(appointment: Appointment) -> BookingRequest:
    event_type = EventType.get_or_none((EventType.account == appointment.account_id)
                                       & (EventType.calcom_id == appointment.event_type_id))
    return BookingRequest(
        appointment_id=appointment.id,
        event_type_id=appointment.event_type_id,
        start=appointment.start_time,
        attendee_name=appointment.attendee_name,
        attendee_email=appointment.attendee_email,
        attendee_time_zone=appointment.attendee_time_zone,
        attendee_phone=appointment.attendee_phone,
        guests=tuple(appointment.guests or ()),
        length_minutes=length_to_request(
            appointment.duration_minutes, event_type.length_minutes if event_type else None),
    )


def find_created_booking(client: CalcomClient, appointment: Appointment) -> CalcomBooking | None:
    """The booking a lost create made, found by its metadata (Cal.com has no metadata filter).

    Narrowed by attendee, event type and start (REFERENCE §5.3), then matched on
    ``metadata.calsync_appointment_id`` client-side.
    """
    filters = BookingFilters(
        attendee_email=appointment.attendee_email,
        event_type_id=appointment.event_type_id,
        after_start=appointment.start_time,
        take=100,
    )
    for page in client.iter_bookings(filters):
        for booking in page.bookings:
            if booking.metadata.get(APPOINTMENT_ID_KEY) == appointment.id:
                return booking
    return None


def _observed_status(booking: CalcomBooking) -> str:
    if booking.status == "pending":
        return "awaiting_confirmation"
    if booking.status in ("cancelled", "rejected"):
        return booking.status
    return "active"


def upsert_booking(appointment_id: str, booking: CalcomBooking, now) -> None:
    """Store what Cal.com said of one uid (call inside a transaction)."""
    values = {
        "appointment": appointment_id,
        "calcom_id": booking.id,
        "status": booking.status,
        "start_time": booking.start,
        "end_time": booking.end,
        "meeting_url": booking.meeting_url,
        "location": booking.location,
        "rescheduled_from_uid": booking.rescheduled_from_uid,
        "rescheduled_to_uid": booking.rescheduled_to_uid,
        "raw": booking.raw,
        "calcom_updated_at": booking.updated_at,
        "updated_at": now,
    }
    if Booking.update(**values).where(Booking.uid == booking.uid).execute() == 0:
        Booking.create(uid=booking.uid, created_at=now, **values)


def _settled(appointment: Appointment, version: int, now) -> dict:
    """Bookkeeping once Cal.com's answer for ``version`` is known (created, adopted or refused).

    A CRM edit that arrived meanwhile raised ``desired_version``; the appointment
    then stays ``pending`` and that edit's own job converges again.
    """
    return {
        "synced_version": version,
        "sync_state": "synced" if appointment.desired_version == version else "pending",
        "create_attempted_at": None,
        "updated_at": now,
    }


def _record_created(ctx: SyncContext, appointment_id: str, version: int, booking: CalcomBooking,
                    *, action: str) -> None:
    now = ctx.clock.now()
    with write_transaction(ctx.db):
        appointment = Appointment.get_by_id(appointment_id)
        upsert_booking(appointment_id, booking, now)
        after = {"booking_uid": booking.uid, "status": _observed_status(booking),
                 "meeting_url": booking.meeting_url, "location": booking.location,
                 "start_time": booking.start, "end_time": booking.end}
        Appointment.update(
            booking_uid=booking.uid,
            status=_observed_status(booking),
            meeting_url=booking.meeting_url,
            location=booking.location,
            end_time=booking.end,
            duration_minutes=appointment.duration_minutes
            or int((booking.end - booking.start).total_seconds() // 60),
            last_error=None,
            **_settled(appointment, version, now),
        ).where(Appointment.id == appointment_id).execute()
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=SYSTEM,
                     action=action, now=now, after=after)
    log.info("booking recorded", extra={"action": f"sync.{action}", "appointment_id": appointment_id,
                                        "booking_uid": booking.uid})


def _record_failure(ctx: SyncContext, appointment_id: str, version: int,
                    error: errors.CalcomError) -> None:
    """Cal.com refused permanently: ``failed`` with its reason, nothing left to retry."""
    now = ctx.clock.now()
    reason = describe(error)
    with write_transaction(ctx.db):
        appointment = Appointment.get_by_id(appointment_id)
        Appointment.update(
            status="failed", last_error=reason, **_settled(appointment, version, now),
        ).where(Appointment.id == appointment_id).execute()
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=SYSTEM,
                     action="sync.failed", now=now, before={"status": appointment.status},
                     after={"status": "failed", "last_error": reason})
    log.error("appointment failed", extra={"action": "sync.failed", "appointment_id": appointment_id,
                                           "error": reason})


def _mark_synced(ctx: SyncContext, appointment: Appointment, version: int) -> str:
    if appointment.synced_version >= version and appointment.sync_state == "synced":
        return "unchanged"
    with write_transaction(ctx.db):
        Appointment.update(synced_version=version, sync_state="synced", last_error=None,
                           updated_at=ctx.clock.now()).where(
            (Appointment.id == appointment.id) & (Appointment.desired_version == version)).execute()
    return "synced"


class ConvergeHandler:
    """The worker's handler for ``converge`` jobs."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx

    def run(self, job: Job) -> None:
        outcome = converge(self.ctx, job.payload["appointment_id"])
        log.debug("converged", extra={"action": "sync.converge", "job_id": job.id,
                                      "appointment_id": job.payload["appointment_id"],
                                      "outcome": outcome})

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        with write_transaction(self.ctx.db):
            Appointment.update(
                sync_state="dead" if final else "retrying",
                last_error=describe(error),
                updated_at=self.ctx.clock.now(),
            ).where(Appointment.id == job.payload["appointment_id"]).execute()
