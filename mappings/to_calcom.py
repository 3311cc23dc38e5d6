"""calsync's values → Cal.com request bodies. Pure: no HTTP, no database.

Body shapes: ``CreateBookingInput_2024_08_13`` in ../shared/calcom/openapi.json;
Cal.com refuses unknown properties there (REFERENCE §3), so only known keys are sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mappings.times import to_wire

APPOINTMENT_ID_KEY = "calsync_appointment_id"


@dataclass(frozen=True)
class BookingRequest:
    """What calsync asks Cal.com to book for one appointment."""

    appointment_id: str
    event_type_id: int
    start: datetime
    attendee_name: str
    attendee_email: str
    attendee_time_zone: str
    attendee_phone: str | None = None
    guests: tuple[str, ...] = ()
    # None books the event type's default length; see length_to_request().
    length_minutes: int | None = None


def create_booking_body(request: BookingRequest) -> dict[str, Any]:
    attendee: dict[str, Any] = {
        "name": request.attendee_name,
        "email": request.attendee_email,
        "timeZone": request.attendee_time_zone,
        "language": "en",
    }
    if request.attendee_phone:
        attendee["phoneNumber"] = request.attendee_phone
    body: dict[str, Any] = {
        # Always an instant in UTC with Z: Cal.com reads a missing offset as UTC (REFERENCE §5.1).
        "start": to_wire(request.start),
        "eventTypeId": request.event_type_id,
        "attendee": attendee,
        # The search key after an unknown outcome (DESIGN §10: calsync's id, never the CRM's).
        "metadata": {APPOINTMENT_ID_KEY: request.appointment_id},
    }
    if request.guests:
        body["guests"] = list(request.guests)
    if request.length_minutes is not None:
        body["lengthInMinutes"] = request.length_minutes
    return body


def length_to_request(duration_minutes: int | None, event_type_length: int | None) -> int | None:
    """The ``lengthInMinutes`` to send, or None to book the event type's default.

    Cal.com answers 400 to a ``lengthInMinutes`` unless the event type offers
    several lengths and this is one of them (REFERENCE §5.1), so the default
    length is never sent explicitly.
    """
    if duration_minutes is None or duration_minutes == event_type_length:
        return None
    return duration_minutes


DEFAULT_CANCELLATION_REASON = "Cancelled in CRM"
DEFAULT_RESCHEDULING_REASON = "Rescheduled in CRM"


def reschedule_body(start: datetime, reason: str | None = None, *,
                    seat_uid: str | None = None) -> dict[str, Any]:
    """``RescheduleBookingInput_2024_08_13``: no length — Cal.com uses the event type's default.
    One seat of a seated booking: ``RescheduleSeatedBookingInput_2024_08_13``, which takes no
    reason (an unknown field is a 400)."""
    if seat_uid is not None:
        return {"start": to_wire(start), "seatUid": seat_uid}
    return {"start": to_wire(start), "reschedulingReason": reason or DEFAULT_RESCHEDULING_REASON}


def cancel_body(reason: str | None, *, seat_uid: str | None = None) -> dict[str, Any]:
    """``CancelBookingInput_2024_08_13``; with a host's key a reason is required (REFERENCE §5.5).
    One seat: ``CancelSeatedBookingInput_2024_08_13`` (the others stay booked)."""
    body = {"cancellationReason": reason or DEFAULT_CANCELLATION_REASON}
    if seat_uid is not None:
        body["seatUid"] = seat_uid
    return body


def decline_body(reason: str | None) -> dict[str, Any]:
    """``DeclineBookingInput_2024_08_13``: the reason, when the CRM gave one."""
    return {"reason": reason} if reason else {}


def mark_absent_body(attendee_email: str, absent: bool) -> dict[str, Any]:
    """``MarkAbsentBookingInput_2024_08_13`` for the primary attendee (DESIGN §10)."""
    return {"attendees": [{"email": attendee_email, "absent": absent}]}
