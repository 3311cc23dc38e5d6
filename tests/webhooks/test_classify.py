"""Each of Cal.com's deliveries is read by what its payload says, not by its trigger's name.

One test per quirk Cal.com's source shows (REFERENCE §7.4, §8; handleSeats,
requestReschedule.handler, cancelAttendeeSeat): each builds the payload as Cal.com
does and checks the kind calsync reads from it.
"""

from __future__ import annotations

import json

import pytest

from webhooks.classify import Kind, kind_of
from webhooks.events import parse

UID, OLD = "newUid0000000000000001", "oldUid0000000000000001"
TIMES = {"startTime": "2026-03-18T10:00:00Z", "endTime": "2026-03-18T10:30:00Z"}
ATTENDEES = [{"email": "pat@example.org", "name": "Pat", "timeZone": "UTC"}]


def event(trigger: str, **payload):
    body = {"triggerEvent": trigger, "createdAt": "2026-03-17T09:00:00.000Z",
            "payload": {"uid": UID, "attendees": ATTENDEES, **TIMES, **payload}}
    return parse(body, json.dumps(body).encode())


@pytest.mark.parametrize(("trigger", "payload", "kind"), [
    # A v2 reschedule of an event type needing confirmation announces itself as a request.
    ("BOOKING_REQUESTED", {"status": "PENDING", "rescheduleUid": OLD}, Kind.RESCHEDULED),
    ("BOOKING_REQUESTED", {"status": "PENDING"}, Kind.BOOKED),
    # A confirmation re-sends BOOKING_CREATED for a uid calsync holds.
    ("BOOKING_CREATED", {"status": "ACCEPTED"}, Kind.BOOKED),
    # Payment triggers carry the booking row: the booking, not the payment, is what counts.
    ("BOOKING_PAID", {"status": "ACCEPTED"}, Kind.BOOKED),
    ("BOOKING_PAYMENT_INITIATED", {"status": "ACCEPTED"}, Kind.BOOKED),
    # A trigger from a newer Cal.com that carries a booking's state is read like the others.
    ("BOOKING_CONFIRMED_SOMEDAY", {"status": "ACCEPTED"}, Kind.BOOKED),
    ("ROUTING_FORM_FALLBACK_HIT", {"uid": None}, Kind.IGNORED),
    # The host moving a whole seated booking names its uid twice.
    ("BOOKING_RESCHEDULED", {"status": "ACCEPTED", "rescheduleUid": UID}, Kind.MOVED_IN_PLACE),
    ("BOOKING_RESCHEDULED", {"status": "ACCEPTED", "rescheduleUid": OLD}, Kind.RESCHEDULED),
    # A reconciler sees a chain's hop cancelled since: the hop first, its status after.
    ("BOOKING_RESCHEDULED", {"status": "CANCELLED", "rescheduleUid": OLD}, Kind.RESCHEDULED),
    ("BOOKING_CANCELLED", {"status": "CANCELLED", "cancellationReason": "cannot come"}, Kind.CANCELLED),
    ("BOOKING_CANCELLED", {"cancellationReason": "no status in this one"}, Kind.CANCELLED),
    ("BOOKING_REJECTED", {"status": "REJECTED"}, Kind.REJECTED),
    # The host's "request reschedule" is a cancellation that asks for a new time: the newest
    # source says so with a flag, every version with the reason's prefix.
    ("BOOKING_CANCELLED", {"status": "CANCELLED", "cancellationReason": "Please reschedule. Ill",
                           "requestReschedule": False, "rescheduleRequested": True},
     Kind.RESCHEDULE_REQUESTED),
    ("BOOKING_CANCELLED", {"status": "CANCELLED", "cancellationReason": "Please reschedule. "},
     Kind.RESCHEDULE_REQUESTED),
    # Some versions set requestReschedule on every seat's cancellation: a seat leaving is not a request.
    ("BOOKING_CANCELLED", {"status": "CANCELLED", "cancellationReason": "cannot come",
                           "requestReschedule": True}, Kind.CANCELLED),
    ("BOOKING_NO_SHOW_UPDATED", {"uid": None, "bookingUid": UID}, Kind.ATTENDANCE),
    ("AFTER_HOSTS_CAL_VIDEO_NO_SHOW", {"uid": None, "bookingUid": UID}, Kind.HOST_NO_SHOW),
    ("PING", {}, Kind.IGNORED),
])
def test_a_delivery_is_read_by_its_payload(trigger, payload, kind):
    assert kind_of(event(trigger, **payload)) is kind


def test_a_meeting_snapshot_says_the_meeting_ended_whatever_status_it_carries():
    body = {"triggerEvent": "MEETING_ENDED", "uid": UID, "status": "ACCEPTED", **TIMES}
    assert kind_of(parse(body, json.dumps(body).encode())) is Kind.MEETING_ENDED


RULE = {"freq": 2, "count": 4, "interval": 1}  # Cal.com's RecurringEvent: weekly, four times


@pytest.mark.parametrize(("trigger", "payload", "kind", "recurring", "series"), [
    # Each occurrence's create says it recurs (the event type's rule), never which series.
    ("BOOKING_CREATED", {"status": "ACCEPTED", "recurringEvent": RULE}, Kind.BOOKED, True, None),
    # A whole series cancelled ("all remaining"): one delivery naming one occurrence, with the rule.
    ("BOOKING_CANCELLED", {"status": "CANCELLED", "recurringEvent": RULE}, Kind.CANCELLED, True, None),
    # An occurrence and the later ones (cancelSubsequentBookings): nothing says a series is involved.
    ("BOOKING_CANCELLED", {"status": "CANCELLED"}, Kind.CANCELLED, False, None),
    # A payload that does name its series (a newer Cal.com, or the database's name for it).
    ("BOOKING_CREATED", {"status": "ACCEPTED", "recurringEventId": OLD}, Kind.BOOKED, True, OLD),
    ("BOOKING_CREATED", {"status": "ACCEPTED", "recurringBookingUid": OLD}, Kind.BOOKED, True, OLD),
    # A rule that is not an object, or a series uid that is not a uid, says nothing.
    ("BOOKING_CREATED", {"status": "ACCEPTED", "recurringEvent": "weekly",
                         "recurringEventId": "not a uid!"}, Kind.BOOKED, False, None),
])
def test_a_series_occurrence_is_read_by_its_payload(trigger, payload, kind, recurring, series):
    read = event(trigger, **payload)
    assert (kind_of(read), read.recurring, read.series_uid) == (kind, recurring, series)
