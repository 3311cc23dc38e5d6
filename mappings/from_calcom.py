"""Cal.com's wire shapes → calsync's frozen values. Pure: no HTTP, no database.

Shapes: ``BookingOutput_2024_08_13`` and ``EventTypeOutput_2024_06_14`` in
../shared/calcom/openapi.json; quirks in ../shared/calcom/REFERENCE.md §6 and §5.9.
A payload that lacks a required field raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mappings.times import parse_instant
from mappings.to_calcom import APPOINTMENT_ID_KEY


@dataclass(frozen=True)
class CalcomAttendee:
    name: str
    email: str
    time_zone: str
    absent: bool = False
    phone_number: str | None = None
    # A seated booking's attendee holds a seat, with the metadata of the request that took it.
    seat_uid: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CalcomBooking:
    id: int
    uid: str
    status: str  # lower-case: accepted, pending, cancelled, rejected, awaiting_host
    start: datetime
    end: datetime
    title: str
    event_type_id: int | None
    location: str | None
    meeting_url: str | None
    attendees: tuple[CalcomAttendee, ...]
    metadata: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    rescheduled_from_uid: str | None
    rescheduled_to_uid: str | None
    cancellation_reason: str | None
    cancelled_by_email: str | None
    absent_host: bool
    raw: dict[str, Any] = field(repr=False, compare=False)
    # iCalendar UID, "<uid of the first booking>@Cal.com", kept across reschedules (REFERENCE §6).
    ics_uid: str | None = None
    # The seat an answer is about (a seated create or reschedule answers with its seatUid).
    seat_uid: str | None = None
    # Set on one seat's view of a seated booking (``seat_view``): the seat's key, its attendee's
    # email in lower case (mappings/bookings.py); "" for a booking that is not seated.
    seat: str = ""
    # The recurring series this booking is an occurrence of (recurringBookingUid), if any.
    recurring_booking_uid: str | None = None

    @property
    def appointment_id(self) -> str | None:
        """The calsync appointment this booking names in its metadata (DESIGN §10), if any."""
        return _named(self.metadata)

    @property
    def seated(self) -> bool:
        """A seated event type's booking: its attendees hold seats (REFERENCE §6)."""
        return self.seat_uid is not None or any(a.seat_uid for a in self.attendees)

    def seat_views(self) -> list[CalcomBooking]:
        """One view per seat of a seated booking (each as if it were the seat's own booking)."""
        return [self.seat_view(a.email) for a in self.attendees if a.email]

    def seat_view(self, email: str) -> CalcomBooking:
        """The booking as one seat sees it: its attendee, its metadata, its seat uid, and its status
        — cancelled once the attendee is no longer in it (left, or moved to another booking)."""
        key = email.strip().lower()
        held = next((a for a in self.attendees if a.email.strip().lower() == key), None)
        if held is None:
            return replace(self, status="cancelled" if self.status != "rejected" else "rejected",
                           attendees=(), metadata={}, seat_uid=None, seat=key,
                           rescheduled_to_uid=None)
        return replace(self, attendees=(held,), metadata=dict(held.metadata),
                       seat_uid=held.seat_uid, seat=key)

    def names(self, appointment_id: str) -> bool:
        """Whether the booking, or one of its seats, names this calsync appointment."""
        return self.appointment_id == appointment_id or any(
            _named(a.metadata) == appointment_id for a in self.attendees)

    @property
    def was_rescheduled(self) -> bool:
        """An old uid of a reschedule: cancelled with a successor (REFERENCE §6)."""
        return self.status == "cancelled" and bool(self.rescheduled_to_uid)


@dataclass(frozen=True)
class CalcomEventType:
    id: int
    slug: str
    title: str
    length_minutes: int
    length_options: tuple[int, ...]
    locations: tuple[dict[str, Any], ...]
    scheduling_type: str | None  # None (individual), roundRobin, collective, managed
    seats_per_slot: int | None
    requires_confirmation: bool
    hidden: bool
    team_id: int | None


@dataclass(frozen=True)
class CalcomReassignment:
    """``ReassignBookingOutput_2024_08_13`` as Cal.com's source writes it (the spec's refers to itself):
    the booking's uid afterwards (a managed event type's reassignment makes a new booking) and its
    new host."""
    booking_uid: str
    host_id: int
    host_name: str
    host_email: str


@dataclass(frozen=True)
class CalcomMe:
    id: int
    username: str
    email: str
    time_zone: str


def _named(metadata: dict[str, Any]) -> str | None:
    value = metadata.get(APPOINTMENT_ID_KEY)
    return value if isinstance(value, str) and value else None


def _optional_instant(value: Any) -> datetime | None:
    return parse_instant(value, assume_utc=True) if value else None


def _text_or_none(value: Any) -> str | None:
    # Cal.com writes "" for "no reason" (REFERENCE §6 cancellationReason).
    return value if isinstance(value, str) and value else None


def _require(payload: dict[str, Any], *keys: str) -> None:
    missing = [key for key in keys if key not in payload]
    if missing:
        raise ValueError(f"Cal.com payload lacks {', '.join(missing)}")


def parse_booking(payload: dict[str, Any]) -> CalcomBooking:
    if not isinstance(payload, dict):
        raise ValueError("a booking must be a JSON object")
    _require(payload, "id", "uid", "status", "start", "end")
    location = payload.get("location") or payload.get("meetingUrl") or None
    meeting_url = location if isinstance(location, str) and location.startswith(("http://", "https://")) else None
    event_type = payload.get("eventType") or {}
    attendees = tuple(
        CalcomAttendee(
            name=item.get("name", ""),
            email=item.get("email", ""),
            time_zone=item.get("timeZone", "UTC"),
            absent=bool(item.get("absent", False)),
            phone_number=item.get("phoneNumber"),
            seat_uid=_text_or_none(item.get("seatUid")),
            metadata=dict(item["metadata"]) if isinstance(item.get("metadata"), dict) else {},
        )
        for item in payload.get("attendees") or []
        if isinstance(item, dict)
    )
    return CalcomBooking(
        id=int(payload["id"]),
        uid=str(payload["uid"]),
        status=str(payload["status"]).lower(),
        start=parse_instant(payload["start"], assume_utc=True),
        end=parse_instant(payload["end"], assume_utc=True),
        title=payload.get("title", ""),
        event_type_id=event_type.get("id", payload.get("eventTypeId")),
        location=location,
        meeting_url=meeting_url,
        attendees=attendees,
        metadata=dict(payload.get("metadata") or {}),
        created_at=_optional_instant(payload.get("createdAt")),
        updated_at=_optional_instant(payload.get("updatedAt")),
        rescheduled_from_uid=payload.get("rescheduledFromUid"),
        rescheduled_to_uid=payload.get("rescheduledToUid"),
        cancellation_reason=_text_or_none(payload.get("cancellationReason")),
        cancelled_by_email=_text_or_none(payload.get("cancelledByEmail")),
        absent_host=bool(payload.get("absentHost", False)),
        raw=payload,
        ics_uid=_text_or_none(payload.get("icsUid")),
        seat_uid=_text_or_none(payload.get("seatUid")),
        recurring_booking_uid=_text_or_none(payload.get("recurringBookingUid")),
    )


def parse_event_type(payload: dict[str, Any]) -> CalcomEventType:
    if not isinstance(payload, dict):
        raise ValueError("an event type must be a JSON object")
    _require(payload, "id", "slug", "title", "lengthInMinutes")
    seats = payload.get("seats") or {}
    seats_per_slot = seats.get("seatsPerTimeSlot") if isinstance(seats, dict) else None
    if seats_per_slot is None and isinstance(payload.get("seatsPerTimeSlot"), int):
        seats_per_slot = payload["seatsPerTimeSlot"]
    # v2 output has no requiresConfirmation boolean; confirmationPolicy is
    # {"type": "always"|"time", …} or {"disabled": true} (REFERENCE §5.9).
    policy = payload.get("confirmationPolicy")
    requires_confirmation = isinstance(policy, dict) and not policy.get("disabled", False) and bool(policy)
    options = payload.get("lengthInMinutesOptions") or []
    return CalcomEventType(
        id=int(payload["id"]),
        slug=str(payload["slug"]),
        title=str(payload["title"]),
        length_minutes=int(payload["lengthInMinutes"]),
        length_options=tuple(int(option) for option in options),
        locations=tuple(item for item in payload.get("locations") or [] if isinstance(item, dict)),
        scheduling_type=payload.get("schedulingType"),
        seats_per_slot=seats_per_slot,
        requires_confirmation=requires_confirmation,
        hidden=bool(payload.get("hidden", False)),
        team_id=payload.get("teamId"),
    )


def parse_me(payload: dict[str, Any]) -> CalcomMe:
    _require(payload, "id", "username", "email")
    return CalcomMe(
        id=int(payload["id"]),
        username=str(payload["username"]),
        email=str(payload["email"]),
        time_zone=str(payload.get("timeZone") or "UTC"),
    )


def parse_reassignment(payload: dict[str, Any]) -> CalcomReassignment:
    if not isinstance(payload, dict):
        raise ValueError("a reassignment must be a JSON object")
    _require(payload, "bookingUid", "reassignedTo")
    host = payload["reassignedTo"]
    if not isinstance(host, dict):
        raise ValueError("reassignedTo must be an object")
    _require(host, "id")
    return CalcomReassignment(booking_uid=str(payload["bookingUid"]), host_id=int(host["id"]),
                              host_name=str(host.get("name") or ""), host_email=str(host.get("email") or ""))
