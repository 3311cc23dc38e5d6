"""One seat of a seated booking, as the appointment that holds it sees Cal.com's answers.

A seated event type's booking is shared by its attendees, each an appointment of its
own (DESIGN §10). Cal.com answers with the whole booking; every seat's appointment
acts on its own seat (``seatUid``) and records its own view of it
(``CalcomBooking.seat_view``): its attendee, its metadata, its seat uid, and a status
that is cancelled once the attendee has left the booking, whatever the others do.
"""

from __future__ import annotations

from datetime import timedelta

from connector.calcom import BookingFilters, CalcomClient
from mappings.from_calcom import CalcomBooking
from mappings.models import Appointment, Booking
from mappings.to_calcom import APPOINTMENT_ID_KEY


def held_by(booking: CalcomBooking, appointment: Appointment) -> CalcomBooking:
    """``booking`` as ``appointment`` holds it: itself, or the view of the appointment's seat —
    the attendee whose seat metadata names it, or whose seat uid is the one Cal.com answered
    with, or whose seat uid the appointment knows, or the appointment's attendee."""
    if not booking.seated:
        return booking
    attendees = booking.attendees
    chosen = (next((a for a in attendees if a.metadata.get(APPOINTMENT_ID_KEY) == appointment.id), None)
              or next((a for a in attendees if booking.seat_uid and a.seat_uid == booking.seat_uid), None)
              or next((a for a in attendees if appointment.seat_uid
                       and a.seat_uid == appointment.seat_uid), None))
    return booking.seat_view(chosen.email if chosen is not None else appointment.attendee_email)


def seat_uid_of(appointment: Appointment, row: Booking | None) -> str | None:
    """The Cal.com seat the appointment holds in its current booking, if the booking is seated."""
    if row is None or not row.seat:
        return None
    return row.seat_uid or appointment.seat_uid


def find_moved_seat(client: CalcomClient, appointment: Appointment) -> CalcomBooking | None:
    """Where the appointment's seat went when it left its booking for another time (Cal.com keeps
    no link from a seat's old booking to its new one): the live booking of the same event type
    and attendee that came from its booking, or whose seat names the appointment, or at the start
    calsync asked for."""
    filters = BookingFilters(attendee_email=appointment.attendee_email,
                             event_type_id=appointment.event_type_id, status=("upcoming",), take=100)
    candidates = []
    for page in client.iter_bookings(filters):
        for booking in page.bookings:
            if booking.uid == appointment.booking_uid or not booking.seated:
                continue
            view = held_by(booking, appointment)
            if view.attendees:
                candidates.append(view)
    # A seat moved to a free time is a new booking that says where it came from; one moved into
    # another booking keeps its seat and the seat's metadata; one calsync moved is where it asked.
    from_old = [view for view in candidates if view.rescheduled_from_uid == appointment.booking_uid]
    named = [view for view in candidates if view.metadata.get(APPOINTMENT_ID_KEY) == appointment.id]
    at_start = [view for view in candidates
                if abs(view.start - appointment.start_time) < timedelta(minutes=1)]
    found = from_old or named or at_start
    return found[0] if found else None
