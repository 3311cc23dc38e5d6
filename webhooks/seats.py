"""Which seats of a seated booking one of Cal.com's events is about.

A seated booking's uid is shared by its attendees, each an appointment of its own
(DESIGN §10). Cal.com's webhooks about it name the attendees concerned, not always
their seats (Cal.com's handleSeats and cancelAttendeeSeat):

- a seat taken (BOOKING_CREATED): the booking's uid and the joining attendee; only a
  booking's first seat's webhook names the seat (``attendeeSeatId``);
- a seat left (BOOKING_CANCELLED): the uid and the leaving attendee, no seat, no
  metadata; the booking stays accepted for the others. The host cancelling the whole
  booking names every attendee;
- a seat moved (BOOKING_RESCHEDULED): the new booking's uid, the old one as
  ``rescheduleUid``, the moving attendee first, then the new booking's others;
- the host moving the whole booking: the same uid as both ``uid`` and
  ``rescheduleUid``, every attendee;
- no-shows name the attendees; a meeting's end and the host's absence concern all.

So the event is split into one event per seat, each naming its attendee only, and
each applied to its seat's appointment alone. A seat is named by its attendee's email
in lower case (mappings/bookings.seat_key).
"""

from __future__ import annotations

from dataclasses import replace

from mappings.bookings import seat_key
from webhooks.classify import Kind, kind_of
from webhooks.events import Attendee, CalcomEvent

_FOR_EACH_NAMED = (Kind.BOOKED, Kind.ATTENDANCE)
_ENDING = (Kind.CANCELLED, Kind.REJECTED, Kind.RESCHEDULE_REQUESTED)


def per_seat(event: CalcomEvent, known_seats: list[str]) -> list[tuple[str, CalcomEvent]]:
    """The event split into one per seat it concerns: (seat, the event naming that seat's attendee).
    ``known_seats``: the seats calsync holds for the event's booking."""
    if event.seat:
        return [(event.seat, event)]
    named = [attendee for attendee in event.attendees if attendee.email]
    kind = kind_of(event)
    if kind is Kind.RESCHEDULED:
        return [_one(event, named[0])] if named else []  # the mover comes first
    if kind in _FOR_EACH_NAMED or (kind in _ENDING and named):
        return [_one(event, attendee) for attendee in named]
    # The whole booking: every seat calsync holds (a meeting's end, the host's absence, an in-place
    # move, a cancel naming no one).
    by_seat = {seat_key(attendee.email): attendee for attendee in named}
    return [(seat, replace(event, attendees=(by_seat[seat],) if seat in by_seat else ()))
            for seat in known_seats]


def _one(event: CalcomEvent, attendee: Attendee) -> tuple[str, CalcomEvent]:
    return seat_key(attendee.email), replace(event, attendees=(attendee,))


def combined(outcomes: list[str]) -> str:
    """One delivery's outcome from its seats': waiting if any seat waits (the delivery is applied
    again whole, and the seats done already answer echo), else applied if any was."""
    for outcome in ("waiting", "applied"):
        if outcome in outcomes:
            return outcome
    return outcomes[0] if outcomes else "ignored"
