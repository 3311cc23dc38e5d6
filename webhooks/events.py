"""Cal.com's webhook bodies → one small frozen event (STYLE rule 6).

Shapes per trigger: ../shared/calcom/REFERENCE.md §7.3–§7.4. Quirks absorbed here:
MEETING_STARTED/ENDED have no ``payload`` envelope; BOOKING_NO_SHOW_UPDATED names
the booking ``bookingUid``; times come as ``…Z``, ``….000Z`` or ``…+00:00``;
statuses are upper-case; a reschedule's old uid is ``rescheduleUid``.

A signed body is still input: a tenant can make Cal.com sign any body through its
webhook's payload template. So every value leaves here in a shape the database can
hold — text without NUL or unpaired surrogates and within its column's length, a uid
that looks like one, a status Cal.com uses, nesting cut at ``MAX_DEPTH`` — or as None.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from connector.timezones import is_iana_zone
from mappings.from_calcom import CalcomBooking
from mappings.times import EARLIEST, LATEST, parse_instant
from mappings.to_calcom import APPOINTMENT_ID_KEY

# Cal.com's uids: 22-character short uuids, older 36-character uuids (seat uids too).
_UID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Booking statuses as the REST API writes them (REFERENCE §6); webhooks send them upper-case.
STATUSES = frozenset({"accepted", "pending", "cancelled", "rejected", "awaiting_host"})
MAX_DEPTH = 32  # Cal.com's payloads are about six levels deep
ICAL_SUFFIX = "@Cal.com"
# The columns these values land in (mappings/models.py).
TITLE_LENGTH, NAME_LENGTH, EMAIL_LENGTH, TRIGGER_LENGTH = 500, 200, 320, 60


class Trigger(enum.Enum):
    BOOKING_CREATED = "BOOKING_CREATED"
    BOOKING_REQUESTED = "BOOKING_REQUESTED"
    BOOKING_RESCHEDULED = "BOOKING_RESCHEDULED"
    BOOKING_CANCELLED = "BOOKING_CANCELLED"
    BOOKING_REJECTED = "BOOKING_REJECTED"
    BOOKING_NO_SHOW_UPDATED = "BOOKING_NO_SHOW_UPDATED"
    BOOKING_PAYMENT_INITIATED = "BOOKING_PAYMENT_INITIATED"
    BOOKING_PAID = "BOOKING_PAID"
    MEETING_STARTED = "MEETING_STARTED"
    MEETING_ENDED = "MEETING_ENDED"
    AFTER_HOSTS_CAL_VIDEO_NO_SHOW = "AFTER_HOSTS_CAL_VIDEO_NO_SHOW"
    AFTER_GUESTS_CAL_VIDEO_NO_SHOW = "AFTER_GUESTS_CAL_VIDEO_NO_SHOW"
    PING = "PING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, name: Any) -> Trigger:
        try:
            return cls(name)
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str = ""
    time_zone: str | None = None
    no_show: bool | None = None


@dataclass(frozen=True)
class CalcomEvent:
    """One delivery, normalised. Times are aware UTC; absent facts are None."""

    trigger: Trigger
    trigger_name: str
    delivery_key: str  # SHA-256 of the raw body
    sent_at: datetime | None
    uid: str | None = None
    reschedule_uid: str | None = None
    status: str | None = None  # lower-case, as the REST API writes it
    start: datetime | None = None
    end: datetime | None = None
    title: str | None = None
    event_type_id: int | None = None
    attendees: tuple[Attendee, ...] = ()
    organizer_email: str | None = None
    location: str | None = None
    meeting_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    cancellation_reason: str | None = None
    cancelled_by_email: str | None = None
    rejection_reason: str | None = None
    host_no_show: bool | None = None
    # metadata.calsync_appointment_id, id-shaped: the appointment a booking calsync made names.
    appointment_id: str | None = None
    # A reschedule's predecessor times (rescheduleStartTime/EndTime), to record the old occurrence.
    previous_start: datetime | None = None
    previous_end: datetime | None = None
    # The uid of the first booking of this one's reschedule chain, from its iCalUID
    # ("<uid>@Cal.com", kept across reschedules, REFERENCE §6): the family's name, whatever order
    # its deliveries come in.
    origin_uid: str | None = None
    # A seated booking's seat: Cal.com names it (attendeeSeatId) only in a booking's first
    # seat's webhook; the REST API names every seat. ``seat`` is set when the producer knows
    # which seat the event is about (a REST view of one seat), else "".
    seat_uid: str | None = None
    seated: bool = False
    seat: str = ""
    # The host asked the attendee to pick a new time: Cal.com cancels the booking and says so
    # (``rescheduleRequested``/``requestReschedule`` in newer payloads; a reason that starts
    # "Please reschedule." in every version).
    reschedule_requested: bool = False
    # An occurrence of a recurring series: Cal.com's deliveries say so (``recurringEvent``, the
    # series' rule) without naming the series; the REST API names it (``recurringBookingUid``).
    # A series cancel's delivery carries ``recurringEvent`` and names one occurrence.
    recurring: bool = False
    series_uid: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def booked_uid(self) -> str:
        """The uid, for an event already checked to name one."""
        if self.uid is None:
            raise ValueError(f"a {self.trigger_name} event without a booking uid")
        return self.uid

    @property
    def length_minutes(self) -> int:
        """The booking's length, for an event already checked to carry its times."""
        if self.start is None or self.end is None:
            raise ValueError(f"a {self.trigger_name} event without start and end")
        return int((self.end - self.start).total_seconds() // 60)


def delivery_key(raw_body: bytes) -> str:
    return hashlib.sha256(raw_body).hexdigest()


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        instant = parse_instant(value, assume_utc=True)
    except ValueError:
        return None
    return instant if EARLIEST <= instant <= LATEST else None


def clean_text(value: str) -> str:
    """NUL dropped (PostgreSQL text cannot hold it) and unpaired surrogates replaced (no UTF-8
    store or answer can hold them); json.loads lets both through from "\\u…" escapes."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)


def clean_json(value: Any, depth: int = 0) -> Any:
    """A copy of a parsed body whose every string is clean and whose nesting stops at MAX_DEPTH."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item, depth + 1) for item in value]
    return value


def _text(value: Any, limit: int | None = None) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return clean_text(value)[:limit] or None


def _uid(value: Any) -> str | None:
    return value if isinstance(value, str) and _UID.fullmatch(value) else None


RESCHEDULE_REQUEST_PREFIX = "Please reschedule."  # Cal.com's requestReschedule.handler.ts


def _asks_to_reschedule(reason: Any) -> bool:
    return isinstance(reason, str) and reason.startswith(RESCHEDULE_REQUEST_PREFIX)


def _reschedule_requested(payload: dict[str, Any]) -> bool:
    """A cancellation that asks the attendee to rebook. ``requestReschedule`` alone does not say so:
    some Cal.com versions set it on every seat's cancellation."""
    if payload.get("rescheduleRequested") is True:
        return True
    return _asks_to_reschedule(payload.get("cancellationReason"))


def _seat_uid(value: Any) -> str | None:
    return _uid(value)  # a seat's uid is a 36-character uuid: the uid pattern covers it


def _email(value: Any) -> str | None:
    text = _text(value)
    if text is None or len(text) > EMAIL_LENGTH or "@" not in text or any(c.isspace() for c in text):
        return None
    return text


def _attendees(items: Any) -> tuple[Attendee, ...]:
    result = []
    for item in items if isinstance(items, list) else []:
        email = _email(item.get("email")) if isinstance(item, dict) else None
        if email is not None:
            no_show = item.get("noShow")
            zone = _text(item.get("timeZone"))
            result.append(Attendee(email=email, name=_text(item.get("name"), NAME_LENGTH) or "",
                                   time_zone=zone if zone and is_iana_zone(zone) else None,
                                   no_show=no_show if isinstance(no_show, bool) else None))
    return tuple(result)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _appointment_id(metadata: Any) -> str | None:
    value = metadata.get(APPOINTMENT_ID_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and _UID.fullmatch(value) else None


def _origin(ical_uid: Any) -> str | None:
    if not isinstance(ical_uid, str) or not ical_uid.endswith(ICAL_SUFFIX):
        return None
    return _uid(ical_uid[:-len(ICAL_SUFFIX)])


def _trigger_name(name: Any) -> str:
    return clean_text(str(name))[:TRIGGER_LENGTH] if name is not None else ""


class Headline(NamedTuple):
    """What storing and dispatching a delivery need, and nothing more: a named tuple, built per
    request at the door, where the thirty fields of a frozen CalcomEvent cost more than parsing."""

    trigger: Trigger
    trigger_name: str
    delivery_key: str  # SHA-256 of the raw body
    uid: str | None
    reschedule_uid: str | None
    appointment_id: str | None


def headline(body: dict[str, Any], raw_body: bytes) -> Headline:
    """Only what storing a delivery needs (trigger, uids, dedupe key): the cheap part of parse.

    The full event is parsed again from the stored body when the delivery is applied.
    """
    name = body.get("triggerEvent")
    trigger = Trigger.of(name)
    payload = body if trigger in (Trigger.MEETING_STARTED, Trigger.MEETING_ENDED) else body.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    return Headline(trigger, _trigger_name(name), delivery_key(raw_body),
                    _uid(payload.get("uid")) or _uid(payload.get("bookingUid")),
                    _uid(payload.get("rescheduleUid")), _appointment_id(payload.get("metadata")))


def parse(body: Any, raw_body: bytes) -> CalcomEvent:
    """A normalised event from a parsed body; never raises on odd content, only on non-objects."""
    if not isinstance(body, dict):
        raise ValueError("a Cal.com webhook body is a JSON object")
    body = clean_json(body)
    name = body.get("triggerEvent")
    trigger = Trigger.of(name)
    # MEETING_* carry the booking row at the top level, without an envelope (REFERENCE §7.3).
    payload = body if trigger in (Trigger.MEETING_STARTED, Trigger.MEETING_ENDED) else body.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    organizer = _object(payload.get("organizer"))
    user = _object(payload.get("user"))
    metadata = _object(payload.get("metadata"))
    location = _text(payload.get("location"))
    meeting_url = _text(metadata.get("videoCallUrl"))
    if meeting_url is None and location and location.startswith(("http://", "https://")):
        meeting_url = location
    status = (_text(payload.get("status")) or "").lower()
    event_type_id = payload.get("eventTypeId")
    no_show_host = payload.get("noShowHost")
    return CalcomEvent(
        trigger=trigger,
        trigger_name=_trigger_name(name),
        delivery_key=delivery_key(raw_body),
        sent_at=_instant(body.get("createdAt")) if trigger not in (
            Trigger.MEETING_STARTED, Trigger.MEETING_ENDED) else None,
        uid=_uid(payload.get("uid")) or _uid(payload.get("bookingUid")),
        reschedule_uid=_uid(payload.get("rescheduleUid")),
        previous_start=_instant(payload.get("rescheduleStartTime")),
        previous_end=_instant(payload.get("rescheduleEndTime")),
        status=status if status in STATUSES else None,
        start=_instant(payload.get("startTime")),
        end=_instant(payload.get("endTime")),
        title=_text(payload.get("title"), TITLE_LENGTH),
        # Cal.com's ids are 32-bit: anything else is not an event type calsync can store.
        event_type_id=event_type_id if isinstance(event_type_id, int) and not isinstance(
            event_type_id, bool) and 0 < event_type_id < 2**31 else None,
        attendees=_attendees(payload.get("attendees")),
        organizer_email=(_email(organizer.get("email")) or _email(user.get("email"))
                         or _email(payload.get("hostEmail"))),
        location=location,
        meeting_url=meeting_url,
        metadata={k: v for k, v in metadata.items() if k != "videoCallUrl"},
        cancellation_reason=_text(payload.get("cancellationReason")),
        cancelled_by_email=_email(payload.get("cancelledBy")),
        rejection_reason=_text(payload.get("rejectionReason")),
        host_no_show=no_show_host if isinstance(no_show_host, bool) else None,
        appointment_id=_appointment_id(metadata),
        origin_uid=_origin(payload.get("iCalUID")),
        seat_uid=_seat_uid(payload.get("attendeeSeatId")),
        seated=_seat_uid(payload.get("attendeeSeatId")) is not None,
        reschedule_requested=_reschedule_requested(payload),
        recurring=isinstance(payload.get("recurringEvent"), dict) or _series_uid(payload) is not None,
        series_uid=_series_uid(payload),
        raw=body,
    )


def _series_uid(payload: dict[str, Any]) -> str | None:
    """The series' uid where a payload names it (the REST shape's name, or the database's)."""
    return _uid(payload.get("recurringBookingUid")) or _uid(payload.get("recurringEventId"))


def from_booking(booking: CalcomBooking, trigger: Trigger, reschedule_uid: str | None = None) -> CalcomEvent:
    """The event Cal.com's webhook would have carried for this booking's present state (the
    reconciler's and converge's way to say "this is what Cal.com holds"), held to the same
    shapes as a delivery."""
    return CalcomEvent(
        trigger=trigger, trigger_name=trigger.value, delivery_key=f"observed:{booking.uid}",
        sent_at=booking.updated_at, uid=_uid(booking.uid), reschedule_uid=_uid(reschedule_uid),
        status=booking.status if booking.status in STATUSES else None,
        start=booking.start, end=booking.end, title=_text(booking.title, TITLE_LENGTH),
        event_type_id=booking.event_type_id,
        attendees=tuple(Attendee(email=email, name=_text(a.name, NAME_LENGTH) or "",
                                 time_zone=a.time_zone if is_iana_zone(a.time_zone or "") else None,
                                 no_show=a.absent)
                        for a in booking.attendees if (email := _email(a.email)) is not None),
        location=_text(booking.location), meeting_url=_text(booking.meeting_url),
        metadata=dict(booking.metadata or {}),
        cancellation_reason=_text(booking.cancellation_reason),
        cancelled_by_email=_email(booking.cancelled_by_email),
        rejection_reason=_text(booking.cancellation_reason) if booking.status == "rejected" else None,
        host_no_show=booking.absent_host, appointment_id=_appointment_id(booking.metadata),
        origin_uid=_origin(booking.ics_uid), seat_uid=_seat_uid(booking.seat_uid),
        reschedule_requested=booking.status == "cancelled" and not booking.rescheduled_to_uid
        and _asks_to_reschedule(booking.cancellation_reason),
        seated=bool(booking.seat) or booking.seated, seat=booking.seat,
        recurring=booking.recurring_booking_uid is not None,
        series_uid=_uid(booking.recurring_booking_uid), raw=clean_json(booking.raw))
