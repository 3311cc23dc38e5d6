"""Cal.com's webhook bodies → one small frozen event (STYLE rule 6).

Shapes per trigger: ../shared/calcom/REFERENCE.md §7.3–§7.4. Quirks absorbed here:
MEETING_STARTED/ENDED have no ``payload`` envelope; BOOKING_NO_SHOW_UPDATED names
the booking ``bookingUid``; times come as ``…Z``, ``….000Z`` or ``…+00:00``;
statuses are upper-case; a reschedule's old uid is ``rescheduleUid``.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mappings.times import parse_instant


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
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def delivery_key(raw_body: bytes) -> str:
    return hashlib.sha256(raw_body).hexdigest()


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_instant(value, assume_utc=True)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    # NUL cannot be stored in PostgreSQL text; a payload may still carry "\u0000".
    return value.replace("\x00", "") or None if isinstance(value, str) and value else None


def _attendees(items: Any) -> tuple[Attendee, ...]:
    result = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("email"), str):
            no_show = item.get("noShow")
            result.append(Attendee(email=item["email"].replace("\x00", ""),
                                   name=str(item.get("name") or "").replace("\x00", ""),
                                   time_zone=_text(item.get("timeZone")),
                                   no_show=no_show if isinstance(no_show, bool) else None))
    return tuple(result)


def headline(body: dict[str, Any], raw_body: bytes) -> CalcomEvent:
    """Only what storing a delivery needs (trigger, uids, dedupe key): the cheap part of parse.

    The full event is parsed again from the stored body when the delivery is applied.
    """
    name = body.get("triggerEvent")
    trigger = Trigger.of(name)
    payload = body if trigger in (Trigger.MEETING_STARTED, Trigger.MEETING_ENDED) else body.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    return CalcomEvent(
        trigger=trigger,
        trigger_name=str(name).replace("\x00", "") if name is not None else "",
        delivery_key=delivery_key(raw_body),
        sent_at=None,
        uid=_text(payload.get("uid")) or _text(payload.get("bookingUid")),
        reschedule_uid=_text(payload.get("rescheduleUid")),
    )


def parse(body: Any, raw_body: bytes) -> CalcomEvent:
    """A normalised event from a parsed body; never raises on odd content, only on non-objects."""
    if not isinstance(body, dict):
        raise ValueError("a Cal.com webhook body is a JSON object")
    name = body.get("triggerEvent")
    trigger = Trigger.of(name)
    # MEETING_* carry the booking row at the top level, without an envelope (REFERENCE §7.3).
    payload = body if trigger in (Trigger.MEETING_STARTED, Trigger.MEETING_ENDED) else body.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    organizer = payload.get("organizer") if isinstance(payload.get("organizer"), dict) else {}
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    location = _text(payload.get("location"))
    meeting_url = _text(metadata.get("videoCallUrl"))
    if meeting_url is None and location and location.startswith(("http://", "https://")):
        meeting_url = location
    status = _text(payload.get("status"))
    event_type_id = payload.get("eventTypeId")
    no_show_host = payload.get("noShowHost")
    return CalcomEvent(
        trigger=trigger,
        trigger_name=str(name).replace("\x00", "") if name is not None else "",
        delivery_key=delivery_key(raw_body),
        sent_at=_instant(body.get("createdAt")) if trigger not in (
            Trigger.MEETING_STARTED, Trigger.MEETING_ENDED) else None,
        uid=_text(payload.get("uid")) or _text(payload.get("bookingUid")),
        reschedule_uid=_text(payload.get("rescheduleUid")),
        status=status.lower() if status else None,
        start=_instant(payload.get("startTime")),
        end=_instant(payload.get("endTime")),
        title=_text(payload.get("title")),
        # Cal.com's ids are 32-bit: anything else is not an event type calsync can store.
        event_type_id=event_type_id if isinstance(event_type_id, int) and not isinstance(
            event_type_id, bool) and 0 < event_type_id < 2**31 else None,
        attendees=_attendees(payload.get("attendees")),
        organizer_email=_text(organizer.get("email")) or _text(user.get("email")) or _text(payload.get("hostEmail")),
        location=location,
        meeting_url=meeting_url,
        metadata={k: v for k, v in metadata.items() if k != "videoCallUrl"},
        cancellation_reason=_text(payload.get("cancellationReason")),
        cancelled_by_email=_text(payload.get("cancelledBy")),
        rejection_reason=_text(payload.get("rejectionReason")),
        host_no_show=no_show_host if isinstance(no_show_host, bool) else None,
        raw=body,
    )
