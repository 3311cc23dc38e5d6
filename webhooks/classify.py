"""What one of Cal.com's deliveries means, read from its payload rather than its trigger's name.

Cal.com's trigger names are not a reliable account of what happened: a v2 reschedule of
an event type that needs confirmation arrives as BOOKING_REQUESTED; a confirmation
re-sends BOOKING_CREATED for a uid that exists; BOOKING_PAID and
BOOKING_PAYMENT_INITIATED carry the same booking row as BOOKING_CREATED; the host's
"request reschedule" is a BOOKING_CANCELLED; the host moving a seated booking names
one uid twice; and newer Cal.com versions add triggers calsync has never seen
(REFERENCE §7.1, §7.4, §8). So a booking event is classified by what its payload says
— its uid, ``rescheduleUid``, status and flags — and the trigger only tells the
deliveries that carry no booking state (no-shows, a meeting's end) from the rest.
"""

from __future__ import annotations

import enum

from webhooks.events import CalcomEvent, Trigger


class Kind(enum.Enum):
    BOOKED = "booked"  # a booking made, requested or confirmed
    RESCHEDULED = "rescheduled"  # a new uid for an older one (``rescheduleUid``)
    MOVED_IN_PLACE = "moved_in_place"  # the same uid at new times (a seated booking the host moved)
    CANCELLED = "cancelled"
    RESCHEDULE_REQUESTED = "reschedule_requested"  # cancelled so the attendee picks a new time
    REJECTED = "rejected"
    ATTENDANCE = "attendance"
    HOST_NO_SHOW = "host_no_show"
    MEETING_ENDED = "meeting_ended"
    IGNORED = "ignored"


# Deliveries that are not a booking's state: a change of attendance, a meeting's end.
_NOT_BOOKING_STATE = {
    Trigger.BOOKING_NO_SHOW_UPDATED: Kind.ATTENDANCE,
    Trigger.AFTER_GUESTS_CAL_VIDEO_NO_SHOW: Kind.ATTENDANCE,
    Trigger.AFTER_HOSTS_CAL_VIDEO_NO_SHOW: Kind.HOST_NO_SHOW,
    # A snapshot of the booking as it was made (REFERENCE §7.4): its status says nothing new.
    Trigger.MEETING_ENDED: Kind.MEETING_ENDED,
    Trigger.MEETING_STARTED: Kind.IGNORED,
    Trigger.PING: Kind.IGNORED,
}
# What a trigger says when its payload carries no status (never the only word on a booking event).
_STATUS_OF_TRIGGER = {
    Trigger.BOOKING_CANCELLED: "cancelled",
    Trigger.BOOKING_REJECTED: "rejected",
    Trigger.BOOKING_REQUESTED: "pending",
}


def kind_of(event: CalcomEvent) -> Kind:
    if event.trigger in _NOT_BOOKING_STATE:
        return _NOT_BOOKING_STATE[event.trigger]
    if not event.uid:
        return Kind.IGNORED
    if event.reschedule_uid and event.reschedule_uid != event.uid:
        # A hop of a reschedule chain, whatever became of the new booking since (a reconciler sees
        # it cancelled or declined later): the hop is recorded first, then its status applies.
        return Kind.RESCHEDULED
    status = event.status or _STATUS_OF_TRIGGER.get(event.trigger)
    if status == "cancelled":
        return Kind.RESCHEDULE_REQUESTED if event.reschedule_requested else Kind.CANCELLED
    if status == "rejected":
        return Kind.REJECTED
    if event.reschedule_uid:
        return Kind.MOVED_IN_PLACE
    if status is None and event.trigger is Trigger.UNKNOWN:
        return Kind.IGNORED  # a trigger calsync does not know, with no booking state it can read
    if event.start is None or event.end is None:
        return Kind.IGNORED
    return Kind.BOOKED
