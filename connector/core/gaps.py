"""What differs between an appointment's desired state and what Cal.com holds — and nothing else.

The one comparison behind every "synced": converge asks it which call to make
next, and whoever records what Cal.com holds (converge's answers, a webhook, the
reconciler) asks it whether the desired version is now met. Only this fresh
comparison settles a version: recording an observation never does on its own, so
a CRM edit made while Cal.com's answer or webhook was on its way is never marked
synced unsent.

The gaps, in the order they are closed:

    current booking moved on in Cal.com .... follow_chain      (recorded, not yet followed)
    waiting for the attendee's new time .... (none; the CRM's cancel: cancel)
    current booking ended in Cal.com ....... follow_ending     (recorded, not yet applied)
    desired cancelled, booking live ........ cancel
    a live booking names it, not current ... cancel_duplicate  (a lost create's twin, found later)
    desired active, no booking ............. create
    the host's answer asked, booking pending  decide           (confirm or decline)
    start or length differs ................ reschedule
    a reassignment asked, not yet done ..... reassign
    attendance asked, not yet recorded ..... attendance
"""

from __future__ import annotations

from datetime import datetime

from mappings import bookings
from mappings.models import Appointment, Booking

# Booking statuses that hold a slot in Cal.com (REFERENCE §6).
LIVE = ("accepted", "pending", "awaiting_host")
ENDED = ("cancelled", "rejected")
RESCHEDULE_REQUESTED = "reschedule_requested"


def current_booking(appointment: Appointment) -> Booking | None:
    return bookings.of_appointment(appointment.id, appointment.booking_uid)


def duplicates(appointment: Appointment) -> list[Booking]:
    """Live bookings recorded for the appointment that are not its current one: each is a second
    booking of one appointment (DESIGN §1 principle 3), to be cancelled."""
    if not appointment.booking_uid:
        return []  # nothing is current yet: a create first looks for a lost one and adopts it
    return bookings.others_of(appointment.id, appointment.booking_uid, LIVE)


def gap(appointment: Appointment, booking: Booking | None) -> str | None:
    """The first gap between desired and observed state, or None when there is none."""
    if booking is not None and booking.rescheduled_to_uid:
        return "follow_chain"
    if appointment.status == RESCHEDULE_REQUESTED:
        # Cal.com cancelled the booking for the attendee to pick a new time; their new booking
        # is followed when it comes. Nothing to do meanwhile, but the CRM's cancel.
        return "cancel" if appointment.desired_status == "cancelled" else None
    if booking is not None and booking.status in ENDED and appointment.status not in ENDED:
        # What Cal.com holds was recorded (a converge answer, a reconciler's GET) but its
        # meaning never reached the appointment: Cal.com's ending is the truth.
        return "follow_ending"
    if appointment.desired_status == "cancelled":
        if appointment.status != "cancelled":
            return "cancel"
        return "cancel_duplicate" if duplicates(appointment) else None
    if booking is None:
        return "create"
    if duplicates(appointment):
        return "cancel_duplicate"
    if appointment.desired_decision is not None and booking.status == "pending":
        return "decide"
    if needs_reschedule(appointment, booking):
        return "reschedule"
    if reassign_owed(appointment) and booking.status in LIVE:
        return "reassign"
    if appointment.desired_attendance not in ("unknown", appointment.attendance):
        return "attendance"
    return None


def reassign_owed(appointment: Appointment) -> bool:
    """A reassignment asked for after the last one Cal.com was asked for (done or refused)."""
    return bool(appointment.reassigns_asked > appointment.reassigns_done)


def needs_reschedule(appointment: Appointment, booking: Booking) -> bool:
    # Whole seconds: that is what calsync sends and what Cal.com books.
    if booking.start_time.replace(microsecond=0) != appointment.start_time.replace(microsecond=0):
        return True
    length = int((booking.end_time - booking.start_time).total_seconds() // 60)
    return appointment.duration_minutes is not None and length != appointment.duration_minutes


def settle_if_done(appointment_id: str, now: datetime) -> bool:
    """Inside a recording transaction: if no gap is left, the current version is synced.

    Answers whether it is; when not, the caller makes sure a converge is queued.
    Deciding in the same transaction as the recorded observation means no reader
    ever sees the observation without its sync state.
    """
    appointment = Appointment.get_by_id(appointment_id)
    if gap(appointment, current_booking(appointment)) is not None:
        return False
    Appointment.update_by_id(appointment_id, synced_version=appointment.desired_version,
                             sync_state="synced", updated_at=now)
    return True
