"""``converge(appointment)``: compare desired and observed state, make the one call that closes the gap.

Every trigger (a CRM write, a retry, the scheduler's sweep) only enqueues
"converge appointment X", so this function is idempotent: run twice in a row,
it makes at most one Cal.com call. The gaps, in the order they are closed:

    desired cancelled, booking live ........ cancel   (a default reason; "already cancelled" is success)
    a live booking names it, not current ... cancel the duplicate (audited, reason stated)
    desired active, no booking ............. create   (exactly once, see below)
    start or length differs ................ reschedule (a new uid joins the chain)
    attendance asked, not yet recorded ..... mark absent (attended → absent false)

(connector/core/gaps.py decides which, and whether a version is synced.)

Exactly once (DESIGN §1 principle 3): before a create or a reschedule is sent,
a marker is committed (``create_attempted_at`` / ``reschedule_attempted_at``).
While it is set, Cal.com may hold a result calsync has not seen, so the next
attempt looks first: a create searches every booking created since its first
unanswered attempt for ``metadata.calsync_appointment_id`` (not by attendee,
event type or start, which the CRM may have changed meanwhile); a reschedule GETs
the old uid and follows ``rescheduledToUid``. Markers are cleared only once the
outcome is known. A booking that still slips through twice is a duplicate, and
the next converge cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import Database

from connector import errors
from connector.calcom import BookingFilters, CalcomClient
from connector.calcom.clients import CalcomClients
from connector.clock import Clock
from connector.core import gaps, seats
from connector.jobs import queue
from connector.jobs.retry import describe
from connector.outputs import audit, events
from mappings import bookings
from mappings.db import bound_database, write_transaction
from mappings.from_calcom import CalcomBooking
from mappings.models import Account, Appointment, Booking, EventType, Job
from mappings.to_calcom import (
    DEFAULT_CANCELLATION_REASON,
    BookingRequest,
    cancel_body,
    create_booking_body,
    decline_body,
    length_to_request,
    mark_absent_body,
    reschedule_body,
)
from webhooks.apply import Applier, wake_after_create, wake_waiting
from webhooks.events import Trigger
from webhooks.events import from_booking as observed

log = logging.getLogger("calsync.sync")

SYSTEM = "system"
_MAX_STEPS = 6  # calls in one converge: a lost result found, then each remaining gap
CLOCK_SKEW = timedelta(minutes=10)  # how far Cal.com's createdAt may run behind calsync's clock


@dataclass
class SyncContext:
    db: Database
    clock: Clock
    clients: CalcomClients
    booker_url: str = "https://cal.com"
    # Told the account after calsync books, moves or cancels in Cal.com (the slot cache listens).
    slots_changed: Callable[[str], None] = lambda account_id: None


def converge(ctx: SyncContext, appointment_id: str) -> str:
    """Close every gap for one appointment, one call each; returns the last thing done.

    Each action records only what Cal.com answered; the version counts as synced
    once a fresh look finds no gap left (a reschedule may still leave an
    attendance to mark). A refusal settles the version as it is.
    """
    outcome = "unchanged"
    for _ in range(_MAX_STEPS):
        appointment = Appointment.find_by_id(appointment_id)
        if appointment is None:
            return "missing"
        version = appointment.desired_version
        # "pending" with the version met: something Cal.com holds differs (a duplicate found).
        if appointment.synced_version >= version and appointment.sync_state == "synced":
            return "unchanged" if outcome == "unchanged" else outcome
        step = _next_step(ctx, appointment, version)
        if step is None:
            _mark_synced(ctx, appointment, version)
            return "synced" if outcome == "unchanged" else outcome
        outcome = step()
        if outcome == "failed":
            return outcome
    # Still a gap after every call we allow ourselves: leave it to a retry, visibly.
    raise RuntimeError(f"converge made {_MAX_STEPS} calls and a gap remains; retrying later")


def _next_step(ctx: SyncContext, appointment: Appointment,
               version: int) -> Callable[[], str] | None:
    """The one call that closes the first gap, as a thunk; None when there is no gap."""
    booking = gaps.current_booking(appointment)
    gap = gaps.gap(appointment, booking)
    if gap is None:
        return None

    def run() -> str:
        client = ctx.clients.for_account(Account.get_by_id(appointment.account_id))
        if gap == "attendance":
            return _mark_attendance(ctx, client, appointment, _held(booking), version)
        try:
            if gap == "cancel":
                return _cancel(ctx, client, appointment, booking, version)
            if gap == "follow_chain":
                return _follow_recorded(ctx, client, appointment)
            if gap == "follow_ending":
                return _follow_recorded(ctx, client, appointment)
            if gap == "cancel_duplicate":
                return _cancel_duplicate(ctx, client, appointment, gaps.duplicates(appointment)[0],
                                         version)
            if gap == "create":
                return _create(ctx, client, appointment, version)
            if gap == "decide":
                return _decide(ctx, client, appointment, _held(booking), version)
            if gap == "reassign":
                return _reassign(ctx, client, appointment, _held(booking), version)
            return _reschedule(ctx, client, appointment, _held(booking), version)
        finally:
            ctx.slots_changed(appointment.account_id)

    return run


def _held(booking: Booking | None) -> Booking:
    """The current booking, for a gap that exists only when there is one."""
    if booking is None:
        raise RuntimeError("a gap about the current booking, without one")
    return booking


def _current_uid(appointment: Appointment) -> str:
    if not appointment.booking_uid:
        raise RuntimeError(f"appointment {appointment.id} has no booking to follow")
    return appointment.booking_uid


# --- create -------------------------------------------------------------------------


def _create(ctx: SyncContext, client: CalcomClient, appointment: Appointment, version: int) -> str:
    # The first attempt whose outcome is still unknown: a search covers everything since.
    unanswered = appointment.create_attempted_at
    if unanswered is not None:
        found = find_created_booking(client, appointment, since=unanswered)
        if found is not None:
            _record_created(ctx, appointment.id, found, action="booking.adopted")
            return "adopted"
    attempt = unanswered or ctx.clock.now()
    _set_marker(ctx, appointment.id, create_attempted_at=attempt)
    try:
        booking = client.create_booking(create_booking_body(_booking_request(appointment)))
    except errors.CalcomUnavailable:
        # For a POST this means Cal.com did nothing (never reached, 429, or held back by the
        # limiter): this attempt made nothing, though an earlier unanswered one still may have.
        _set_marker(ctx, appointment.id, create_attempted_at=unanswered)
        raise
    except errors.CalcomConflict as conflict:
        # 409 booking_conflict_error: maybe our own earlier request won the race (REFERENCE §5.1).
        found = find_created_booking(client, appointment, since=attempt)
        if found is not None:
            _record_created(ctx, appointment.id, found, action="booking.adopted")
            return "adopted"
        _record_failure(ctx, appointment.id, version, conflict, status="failed")
        return "failed"
    except errors.CalcomRejected as rejected:
        _record_failure(ctx, appointment.id, version, rejected, status="failed")
        return "failed"
    _record_created(ctx, appointment.id, seats.held_by(booking, appointment), action="booking.created")
    return "created"


def _booking_request(appointment: Appointment) -> BookingRequest:
    event_type = EventType.of(appointment.account_id, appointment.event_type_id)
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


def find_created_booking(client: CalcomClient, appointment: Appointment, *,
                         since: datetime) -> CalcomBooking | None:
    """The booking a lost create made, found by its metadata (Cal.com has no metadata filter),
    as the appointment holds it (its seat, if seated).

    Every booking created since the first unanswered attempt (less ``CLOCK_SKEW``) is
    looked at, newest last, and matched on ``metadata.calsync_appointment_id``
    client-side (REFERENCE §5.3). Not narrowed by attendee, event type or start: the CRM
    may have changed any of them since that attempt, and the booking would then be
    missed and made a second time. A seat taken in a booking made earlier by someone else
    changed that booking, not its creation: seated event types (or an empty cache, which
    cannot say) are also searched by update.
    """
    searches = [BookingFilters(after_created_at=since - CLOCK_SKEW, sort_created="asc", take=100)]
    event_type = EventType.of(appointment.account_id, appointment.event_type_id)
    if event_type is None or event_type.seats_per_slot:
        searches.append(BookingFilters(after_updated_at=since - CLOCK_SKEW, sort_updated_at="asc",
                                       take=100))
    for filters in searches:
        for page in client.iter_bookings(filters):
            named = [booking for booking in page.bookings if booking.names(appointment.id)]
            if named:
                # The occurrences of a series all carry the create's metadata: the first is the
                # appointment's own (as create_booking answers).
                series = named[0].recurring_booking_uid
                first = min((b for b in named if b.recurring_booking_uid == series),
                            key=lambda b: b.start) if series else named[0]
                return seats.held_by(first, appointment)
    return None


def _record_created(ctx: SyncContext, appointment_id: str, booking: CalcomBooking,
                    *, action: str) -> None:
    now = ctx.clock.now()
    with write_transaction(ctx.db):
        appointment = Appointment.get_by_id(appointment_id)
        upsert_booking(appointment.account_id, appointment_id, booking, now)
        observed = _observed(booking, "active")
        series = booking.recurring_booking_uid
        Appointment.update_by_id(appointment_id, booking_uid=booking.uid, last_error=None,
                                 recurring_booking_uid=series, **observed, **_recorded(now))
        if series:
            # A recurring event type books a series: its other occurrences become appointments of
            # their own, once Cal.com lists them (Reconciler.reconcile_series).
            queue.enqueue_series_check(ctx.db, appointment.account_id, booking.uid, "compare", now=now)
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=SYSTEM,
                     action=action, now=now, after={"booking_uid": booking.uid, **observed})
        gaps.settle_if_done(appointment_id, now)
        events.emit_for(ctx.db, appointment_id, events.SYNCED, now=now, booker_url=ctx.booker_url)
    log.info("booking recorded", extra={"action": f"sync.{action}", "appointment_id": appointment_id,
                                        "booking_uid": booking.uid})


# --- reschedule ---------------------------------------------------------------------


def _reschedule(ctx: SyncContext, client: CalcomClient, appointment: Appointment,
                booking: Booking, version: int) -> str:
    if appointment.reschedule_attempted_at is not None and _follow_chain(ctx, client, appointment):
        return "followed"
    _set_marker(ctx, appointment.id, reschedule_attempted_at=ctx.clock.now())
    try:
        new = seats.held_by(client.reschedule_booking(booking.uid, reschedule_body(
            appointment.start_time, seat_uid=seats.seat_uid_of(appointment, booking))), appointment)
    except errors.CalcomUnavailable:
        _set_marker(ctx, appointment.id, reschedule_attempted_at=None)  # Cal.com did nothing
        raise
    except errors.CalcomRejected as rejected:
        # "…rescheduled already to booking with uid=X": follow it instead of trusting the text.
        if _follow_chain(ctx, client, appointment):
            return "followed"
        current = seats.held_by(client.get_booking(booking.uid), appointment)
        if current.status in ("cancelled", "rejected"):
            # Cancelled in Cal.com before calsync's call: that happened, it is not a failure.
            return _adopt_ending(ctx, appointment, current)
        _record_failure(ctx, appointment.id, version, rejected, status="failed")
        return "failed"
    _record_rescheduled(ctx, appointment.id, booking.uid, new)
    return "rescheduled"


def _follow_chain(ctx: SyncContext, client: CalcomClient, appointment: Appointment) -> bool:
    """Adopt the booking the current uid was rescheduled to, if Cal.com says there is one.

    A move calsync did not ask for (no reschedule of its own in flight) of a booking still at
    the start the CRM wants was made in Cal.com, by the attendee or the host: the appointment
    follows it. Otherwise the CRM's start stands and converge moves the successor to it.
    """
    current = seats.held_by(client.get_booking(_current_uid(appointment)), appointment)
    successor: CalcomBooking | None = None
    if current.rescheduled_to_uid:
        successor = seats.held_by(client.get_booking(current.rescheduled_to_uid), appointment)
    elif current.seat and not current.attendees:
        successor = seats.find_moved_seat(client, appointment)  # a seat keeps no link to where it went
    if successor is None:
        _set_marker(ctx, appointment.id, reschedule_attempted_at=None)
        return False
    made_in_calcom = (appointment.reschedule_attempted_at is None
                      and appointment.start_time == current.start)
    _record_rescheduled(ctx, appointment.id, current.uid, successor, old=current,
                        action="booking.rescheduled_in_calcom" if made_in_calcom
                        else "booking.reschedule_adopted", follow_start=made_in_calcom)
    return True


def _follow_recorded(ctx: SyncContext, client: CalcomClient, appointment: Appointment) -> str:
    """The current booking's row says Cal.com moved or ended it: look again, and follow."""
    if _follow_chain(ctx, client, appointment):
        return "followed"
    current = seats.held_by(client.get_booking(_current_uid(appointment)), appointment)
    if current.status in gaps.ENDED:
        return _adopt_ending(ctx, appointment, current)
    now = ctx.clock.now()
    with write_transaction(ctx.db):  # the row was wrong: it is live after all
        upsert_booking(appointment.account_id, appointment.id, current, now)
        gaps.settle_if_done(appointment.id, now)
    return "followed"


def _adopt_ending(ctx: SyncContext, appointment: Appointment, current: CalcomBooking) -> str:
    """Cal.com holds the booking cancelled or rejected: recorded as its webhook would have been
    (cancelled, by whom Cal.com says), by the one place that turns Cal.com's changes into
    calsync's (webhooks/apply.py)."""
    trigger = Trigger.BOOKING_REJECTED if current.status == "rejected" else Trigger.BOOKING_CANCELLED
    now = ctx.clock.now()
    with write_transaction(ctx.db):
        Applier(ctx.db, now, ctx.booker_url, appointment.account_id, actor=SYSTEM).apply(
            observed(current, trigger))
        Appointment.update_by_id(appointment.id, reschedule_attempted_at=None)
    return current.status


def _record_rescheduled(ctx: SyncContext, appointment_id: str, old_uid: str,
                        new: CalcomBooking, *, old: CalcomBooking | None = None,
                        action: str = "booking.rescheduled", follow_start: bool = False) -> None:
    """Record a reschedule; ``follow_start``: Cal.com's new start becomes the desired one (a new
    version, as a webhook of that move would have made it)."""
    now = ctx.clock.now()
    with write_transaction(ctx.db):
        appointment = Appointment.get_by_id(appointment_id)
        if old is not None:
            upsert_booking(appointment.account_id, appointment_id, old, now)
        bookings.update(appointment.account_id, old_uid, new.seat, status="cancelled",
                        rescheduled_to_uid=new.uid, updated_at=now)
        upsert_booking(appointment.account_id, appointment_id, new, now)
        observed = _observed(new, "rescheduled")
        if follow_start:
            observed.update(start_time=new.start, attendance="unknown", desired_attendance="unknown")
            Appointment.update_by_id(appointment_id, desired_version=Appointment.desired_version + 1)
        before = {"booking_uid": old_uid, "start_time": appointment.start_time}
        Appointment.update_by_id(appointment_id, booking_uid=new.uid,
                                 ics_sequence=Appointment.ics_sequence + 1, last_error=None,
                                 **observed, **_recorded(now))
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=SYSTEM,
                     action=action, now=now, before=before, after={"booking_uid": new.uid, **observed})
        gaps.settle_if_done(appointment_id, now)
        events.emit_for(ctx.db, appointment_id, events.RESCHEDULED, now=now, booker_url=ctx.booker_url)
    log.info("booking rescheduled", extra={"action": f"sync.{action}", "appointment_id": appointment_id,
                                           "booking_uid": new.uid, "old_booking_uid": old_uid})


# --- cancel -------------------------------------------------------------------------


def _cancel(ctx: SyncContext, client: CalcomClient, appointment: Appointment,
            booking: Booking | None, version: int) -> str:
    if booking is None and appointment.create_attempted_at is not None:
        # A lost create must not outlive the cancel.
        found = find_created_booking(client, appointment, since=appointment.create_attempted_at)
        if found is not None:
            _record_created(ctx, appointment.id, found, action="booking.adopted")
            return "followed"
    if booking is None or booking.status in ("cancelled", "rejected"):
        _record_cancelled(ctx, appointment.id, None)
        return "cancelled"
    reason = appointment.desired_cancellation_reason
    try:
        cancelled = seats.held_by(client.cancel_booking(booking.uid, cancel_body(
            reason, seat_uid=seats.seat_uid_of(appointment, booking))), appointment)
    except errors.CalcomRejected as rejected:
        current = seats.held_by(client.get_booking(booking.uid), appointment)
        if current.rescheduled_to_uid:
            _record_rescheduled(ctx, appointment.id, booking.uid,
                                seats.held_by(client.get_booking(current.rescheduled_to_uid), appointment),
                                old=current, action="booking.reschedule_adopted")
            return "followed"
        if current.status in ("cancelled", "rejected"):
            # "Already cancelled" counts as success (REFERENCE §5.5), and says who did it.
            return _adopt_ending(ctx, appointment, current)
        if current.end <= ctx.clock.now():
            # Cal.com keeps bookings that have ended; calsync still records the CRM's cancel.
            _record_cancelled(ctx, appointment.id, current,
                              note=f"Cal.com kept the booking: {rejected.message}")
            return "cancelled"
        _record_failure(ctx, appointment.id, version, rejected, status=None)
        return "failed"
    _record_cancelled(ctx, appointment.id, cancelled)
    return "cancelled"


def _cancel_duplicate(ctx: SyncContext, client: CalcomClient, appointment: Appointment,
                      duplicate: Booking, version: int) -> str:
    """A second live booking of this appointment (a lost create's twin): cancelled in Cal.com,
    audited with the reason, unless Cal.com shows the appointment moved on to it."""
    if _follow_chain(ctx, client, appointment):
        return "followed"  # the "duplicate" may be the current booking's successor
    reason = f"Duplicate booking: calsync appointment {appointment.id} is booked as {appointment.booking_uid}"
    def as_duplicate(booking: CalcomBooking) -> CalcomBooking:
        return booking.seat_view(duplicate.seat) if duplicate.seat else booking

    try:
        found: CalcomBooking | None = as_duplicate(client.get_booking(duplicate.uid))
    except errors.CalcomRejected as refused:
        if refused.status != 404:
            raise
        found = None
    if found is not None and found.status in gaps.LIVE and not found.rescheduled_to_uid:
        try:
            found = as_duplicate(client.cancel_booking(duplicate.uid, cancel_body(
                reason, seat_uid=found.seat_uid if duplicate.seat else None)))
        except errors.CalcomRejected as rejected:
            found = as_duplicate(client.get_booking(duplicate.uid))  # cancelled meanwhile, or over
            if found.status in gaps.LIVE and found.end > ctx.clock.now():
                _record_failure(ctx, appointment.id, version, rejected, status=None)
                return "failed"
    now = ctx.clock.now()
    status = found.status if found is not None else "deleted"
    if status in gaps.LIVE:
        status = "completed"  # it has ended, and Cal.com keeps what has ended (REFERENCE §5.5)
    with write_transaction(ctx.db):
        if found is not None:
            upsert_booking(appointment.account_id, appointment.id, found, now)
        bookings.update(appointment.account_id, duplicate.uid, duplicate.seat, status=status,
                        updated_at=now)
        audit.record(account_id=appointment.account_id, appointment_id=appointment.id, actor=SYSTEM,
                     action="booking.duplicate_cancelled", now=now,
                     before={"booking_uid": duplicate.uid, "status": duplicate.status},
                     after={"status": status, "reason": reason})
        gaps.settle_if_done(appointment.id, now)
    log.warning("duplicate booking cancelled", extra={
        "action": "sync.duplicate_cancelled", "appointment_id": appointment.id,
        "booking_uid": duplicate.uid, "current_booking_uid": appointment.booking_uid})
    return "duplicate_cancelled"


def _record_cancelled(ctx: SyncContext, appointment_id: str,
                      booking: CalcomBooking | None, note: str | None = None) -> None:
    now = ctx.clock.now()
    with write_transaction(ctx.db):
        appointment = Appointment.get_by_id(appointment_id)
        if booking is not None:
            upsert_booking(appointment.account_id, appointment_id, booking, now)
        reason = appointment.desired_cancellation_reason or DEFAULT_CANCELLATION_REASON
        Appointment.update_by_id(appointment_id, status="cancelled", cancellation_reason=reason,
                                 cancelled_by="crm", ics_sequence=Appointment.ics_sequence + 1,
                                 last_error=note, **_recorded(now))
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=SYSTEM,
                     action="booking.cancelled", now=now, before={"status": appointment.status},
                     after={"status": "cancelled", "cancellation_reason": reason,
                            "booking_uid": appointment.booking_uid})
        gaps.settle_if_done(appointment_id, now)
        events.emit_for(ctx.db, appointment_id, events.CANCELLED, now=now, booker_url=ctx.booker_url)


# --- the host's actions (connector/core/host_actions.py) ---------------------------------


def _decide(ctx: SyncContext, client: CalcomClient, appointment: Appointment, booking: Booking,
            version: int) -> str:
    """The host's answer to a booking awaiting confirmation (REFERENCE §5.7)."""
    try:
        if appointment.desired_decision == "confirm":
            answer = client.confirm_booking(booking.uid)
        else:
            answer = client.decline_booking(booking.uid, decline_body(appointment.desired_decision_reason))
    except errors.CalcomRejected as rejected:
        answer = client.get_booking(booking.uid)  # answered already, in Cal.com?
        if answer.status == "pending":
            _set_marker(ctx, appointment.id, desired_decision=None)  # refused: not asked again
            _record_failure(ctx, appointment.id, version, rejected, status=None)
            return "failed"
    return _record_decision(ctx, appointment, seats.held_by(answer, appointment))


def _record_decision(ctx: SyncContext, appointment: Appointment, answer: CalcomBooking) -> str:
    """What the host's answer made of the booking (whoever gave it): active, or rejected."""
    now = ctx.clock.now()
    confirmed = answer.status in gaps.LIVE and answer.status != "pending"
    with write_transaction(ctx.db):
        upsert_booking(appointment.account_id, appointment.id, answer, now)
        if confirmed:
            status = "rescheduled" if answer.rescheduled_from_uid else "active"
            changes: dict[str, Any] = {"status": status, "meeting_url": answer.meeting_url,
                                       "location": answer.location}
        else:
            status = "rejected"
            reason = answer.cancellation_reason or appointment.desired_decision_reason
            changes = {"status": status, "last_error": f"the host declined: {reason or 'no reason given'}"}
        Appointment.update_by_id(appointment.id, ics_sequence=Appointment.ics_sequence + 1,
                                 updated_at=now, **changes)
        audit.record(account_id=appointment.account_id, appointment_id=appointment.id, actor=SYSTEM,
                     action="booking.confirmed" if confirmed else "booking.declined", now=now,
                     before={"status": appointment.status}, after={"status": status})
        gaps.settle_if_done(appointment.id, now)
        events.emit_for(ctx.db, appointment.id, events.CONFIRMED if confirmed else events.DECLINED,
                        now=now, booker_url=ctx.booker_url)
    return "confirmed" if confirmed else "declined"


def _reassign(ctx: SyncContext, client: CalcomClient, appointment: Appointment, booking: Booking,
              version: int) -> str:
    """Another host for a round-robin or managed booking; a new uid, when Cal.com makes one, is
    followed (the old one is recorded as its predecessor)."""
    try:
        result = client.reassign_booking(booking.uid, appointment.desired_host_id)
    except errors.CalcomRejected as rejected:
        _set_marker(ctx, appointment.id, reassigns_done=appointment.reassigns_asked)  # refused: once
        _record_failure(ctx, appointment.id, version, rejected, status=None)
        return "failed"
    current = seats.held_by(client.get_booking(result.booking_uid), appointment)
    now = ctx.clock.now()
    host = {"id": result.host_id, "name": result.host_name, "email": result.host_email}
    with write_transaction(ctx.db):
        if current.uid != booking.uid:
            bookings.update(appointment.account_id, booking.uid, booking.seat, status="cancelled",
                            rescheduled_to_uid=current.uid, updated_at=now)
        upsert_booking(appointment.account_id, appointment.id, current, now)
        Appointment.update_by_id(appointment.id, booking_uid=current.uid,
                                 reassigns_done=appointment.reassigns_asked,
                                 meeting_url=current.meeting_url, location=current.location,
                                 last_error=None, ics_sequence=Appointment.ics_sequence + 1,
                                 updated_at=now)
        audit.record(account_id=appointment.account_id, appointment_id=appointment.id, actor=SYSTEM,
                     action="booking.reassigned", now=now, before={"booking_uid": booking.uid},
                     after={"booking_uid": current.uid, "host": host})
        gaps.settle_if_done(appointment.id, now)
        events.emit_for(ctx.db, appointment.id, events.REASSIGNED, now=now, booker_url=ctx.booker_url)
    return "reassigned"


# --- attendance ---------------------------------------------------------------------


def _mark_attendance(ctx: SyncContext, client: CalcomClient, appointment: Appointment,
                     booking: Booking, version: int) -> str:
    absent = appointment.desired_attendance == "no_show"
    try:
        marked = seats.held_by(client.mark_absent(
            booking.uid, mark_absent_body(appointment.attendee_email, absent)), appointment)
    except errors.CalcomRejected as rejected:
        _record_failure(ctx, appointment.id, version, rejected, status=None)
        return "failed"
    now = ctx.clock.now()
    with write_transaction(ctx.db):
        upsert_booking(appointment.account_id, appointment.id, marked, now)
        Appointment.update_by_id(appointment.id, attendance=appointment.desired_attendance,
                                 last_error=None, **_recorded(now))
        audit.record(account_id=appointment.account_id, appointment_id=appointment.id, actor=SYSTEM,
                     action="attendance.marked", now=now, before={"attendance": appointment.attendance},
                     after={"attendance": appointment.desired_attendance})
        gaps.settle_if_done(appointment.id, now)
        events.emit_for(ctx.db, appointment.id, events.ATTENDANCE, now=now, booker_url=ctx.booker_url)
    return "attendance"


# --- shared bookkeeping -------------------------------------------------------------


def upsert_booking(account_id: str, appointment_id: str, booking: CalcomBooking,
                   now: datetime) -> None:
    """Store what Cal.com said of one of the account's uids (call inside a transaction); Cal.com's
    deliveries that were waiting for this booking are queued again."""
    wake_waiting(bound_database(), account_id, {booking.uid: appointment_id}, now=now)
    bookings.record(
        account_id, appointment_id, booking.uid, now=now, seat=booking.seat, seat_uid=booking.seat_uid,
        calcom_id=booking.id,
        status=booking.status,
        start_time=booking.start,
        end_time=booking.end,
        meeting_url=booking.meeting_url,
        location=booking.location,
        rescheduled_from_uid=booking.rescheduled_from_uid,
        rescheduled_to_uid=booking.rescheduled_to_uid,
        raw=booking.raw,
        calcom_updated_at=booking.updated_at,
    )


def _observed(booking: CalcomBooking, live_status: str) -> dict[str, Any]:
    """The appointment columns that follow a live booking (pending → awaiting_confirmation)."""
    return {
        "status": "awaiting_confirmation" if booking.status == "pending" else live_status,
        "seat_uid": booking.seat_uid,
        "meeting_url": booking.meeting_url,
        "location": booking.location,
        "end_time": booking.end,
        # Cal.com may book another length than asked (a reschedule keeps the event type's
        # default, REFERENCE §5.4): record what it did so converge does not ask again.
        "duration_minutes": int((booking.end - booking.start).total_seconds() // 60),
    }


def _recorded(now: datetime) -> dict[str, Any]:
    """Bookkeeping once a call's outcome is known: its markers go (the version may not be done)."""
    return {"create_attempted_at": None, "reschedule_attempted_at": None, "updated_at": now}


def _settled(appointment: Appointment, version: int, now: datetime) -> dict[str, Any]:
    """Bookkeeping once Cal.com's answer for ``version`` is known.

    A CRM edit that arrived meanwhile raised ``desired_version``; the appointment
    then stays ``pending`` and that edit's own job converges again.
    """
    return {
        "synced_version": version,
        "sync_state": "synced" if appointment.desired_version == version else "pending",
        "create_attempted_at": None,
        "reschedule_attempted_at": None,
        "updated_at": now,
    }


def _set_marker(ctx: SyncContext, appointment_id: str, **marker: datetime | int | str | None) -> None:
    with write_transaction(ctx.db):
        Appointment.update_by_id(appointment_id, **marker)


def _record_failure(ctx: SyncContext, appointment_id: str, version: int, error: errors.CalcomError,
                    *, status: str | None) -> None:
    """Cal.com refused permanently: the reason on the appointment and to the CRM.

    ``status="failed"`` when the appointment has no live booking at the desired time
    (a refused create or reschedule); None keeps the status (a refused cancel or
    attendance leaves the booking as it was).
    """
    now = ctx.clock.now()
    reason = describe(error)
    with write_transaction(ctx.db):
        appointment = Appointment.get_by_id(appointment_id)
        changes = {"last_error": reason, **_settled(appointment, version, now)}
        if status is not None:
            changes["status"] = status
        Appointment.update_by_id(appointment_id, **changes)
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=SYSTEM,
                     action="sync.failed", now=now, before={"status": appointment.status},
                     after={"status": status or appointment.status, "last_error": reason})
        events.emit_for(ctx.db, appointment_id, events.FAILED, now=now, booker_url=ctx.booker_url)
    log.error("Cal.com refused", extra={"action": "sync.failed", "appointment_id": appointment_id,
                                        "error": reason})


def _mark_synced(ctx: SyncContext, appointment: Appointment, version: int) -> str:
    """No gap is left for ``version``: say so (unless a newer CRM edit is already waiting)."""
    if appointment.synced_version >= version and appointment.sync_state == "synced":
        return "unchanged"
    with write_transaction(ctx.db):
        Appointment.update(synced_version=version, sync_state="synced",
                           updated_at=ctx.clock.now()).where(
            (Appointment.id == appointment.id) & (Appointment.desired_version == version)).execute()
    return "synced"


class ConvergeHandler:
    """The worker's handler for ``converge`` jobs."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx

    def run(self, job: Job) -> None:
        appointment_id = job.payload["appointment_id"]
        before = Appointment.find_by_id(appointment_id)
        try:
            outcome = converge(self.ctx, appointment_id)
        finally:
            if before is not None and before.create_attempted_at is not None:
                self._wake_if_answered(before)
        log.debug("converged", extra={"action": "sync.converge", "job_id": job.id,
                                      "appointment_id": appointment_id, "outcome": outcome})

    def _wake_if_answered(self, before: Appointment) -> None:
        """The create was unanswered when this job began; if its outcome is known now, Cal.com's
        deliveries that waited for it (webhooks/apply.py says why) are applied again."""
        now = self.ctx.clock.now()
        with write_transaction(self.ctx.db):
            after = Appointment.find_by_id(before.id)
            if after is None or after.create_attempted_at is None:
                wake_after_create(self.ctx.db, before.account_id, before.id, now=now)

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        appointment_id = job.payload["appointment_id"]
        now = self.ctx.clock.now()
        with write_transaction(self.ctx.db):
            Appointment.update_by_id(appointment_id, sync_state="dead" if final else "retrying",
                                     last_error=describe(error), updated_at=now)
            if final:
                events.emit_for(self.ctx.db, appointment_id, events.FAILED, now=now,
                                booker_url=self.ctx.booker_url)
