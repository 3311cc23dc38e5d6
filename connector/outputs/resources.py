"""Resources as calsync writes them, in API answers and CRM events (DESIGN §6): snake_case, UTC with Z."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import quote

from mappings import bookings
from mappings.models import Appointment, Booking, EventType
from mappings.prepared import Shaped, each, spread
from mappings.times import to_api

# Statuses whose booking can still be moved or cancelled by the attendee.
MANAGEABLE = ("active", "rescheduled", "awaiting_confirmation", "reschedule_requested")
# Cal.com's schedulingType (TeamEventTypeOutput_2024_06_14) → calsync's strategy; a managed type
# books its members one by one, so it is individual; seated event types are "group" whatever their type.
STRATEGIES = {"roundRobin": "round_robin", "collective": "collective"}
# Event-type location kinds that give the meeting an address (OutputLocation_2024_06_14 variants);
# "unknown" gives none.
MEETING_ADDRESS_LOCATIONS = ("address", "link", "integration", "phone", "organizersDefaultApp")
# A seat's booking row while it holds the seat (Cal.com's booking statuses, REFERENCE §6).
LIVE_SEAT = ("accepted", "pending", "awaiting_host")


def manage_links(booker_url: str, booking_uid: str | None, attendee_email: str,
                 seat_uid: str | None = None, *, recurring: bool = False) -> dict[str, str]:
    """The attendee's own links for the current booking (REFERENCE §9); a seat's act on the seat,
    a recurring occurrence's cancel on every remaining occurrence (as Cal.com's own emails do)."""
    base = booker_url.rstrip("/")
    uid = quote(booking_uid or "", safe="")
    email = quote(attendee_email, safe="@")
    seat = quote(seat_uid, safe="") if seat_uid else None
    return {
        "booking": f"{base}/booking/{uid}?changes=true",
        "reschedule": f"{base}/reschedule/{seat or uid}?rescheduledBy={email}",
        "cancel": (f"{base}/booking/{uid}?cancel=true&allRemainingBookings={str(recurring).lower()}"
                   f"&cancelledBy={email}"
                   + (f"&seatReferenceUid={seat}" if seat else "")),
    }


def current_manage_links(row: Appointment, booker_url: str) -> dict[str, str] | None:
    """The attendee's links while the booking can still be moved or cancelled, else None."""
    if not row.booking_uid or row.status not in MANAGEABLE:
        return None
    return manage_links(booker_url, row.booking_uid, row.attendee_email, row.seat_uid,
                        recurring=row.recurring_booking_uid is not None)


def strategy(event_type: EventType | None) -> str | None:
    """individual, round_robin, collective or group; None while the event type is not cached."""
    if event_type is None:
        return None
    if event_type.seats_per_slot:
        return "group"
    return STRATEGIES.get(event_type.scheduling_type or "", "individual")


def has_meeting_address(event_type: EventType) -> bool:
    """Whether Cal.com will give this event type's bookings a place or a video link."""
    return any(isinstance(item, dict) and item.get("type") in MEETING_ADDRESS_LOCATIONS
               for item in event_type.locations or [])


def occurrence(booking: Booking) -> dict[str, Any]:
    return {
        "booking_uid": booking.uid,
        "start_time": to_api(booking.start_time),
        "end_time": to_api(booking.end_time),
        "status": booking.status,
    }


RECEIPT_FIELDS = ("id", "external_id", "status", "sync_state", "version")


def receipt(row: Appointment) -> dict[str, Any]:
    """What a write answers to a token that may write but not read: that it was taken, no data."""
    return {"id": row.id, "external_id": row.external_id, "status": row.status,
            "sync_state": row.sync_state, "version": row.desired_version}


def appointment_with_chain(row: Appointment, booker_url: str) -> dict[str, Any]:
    """The appointment resource, loading its booking chain and event type."""
    return render(row.account_id, [row], booker_url)[0]


def render(account_id: str, rows: list[Appointment], booker_url: str) -> list[dict[str, Any]]:
    """The resources for ``rows``: chains, event types and seat counts in at most three queries."""
    if not rows:
        return []
    chains: dict[str, list[Booking]] = defaultdict(list)
    ids = [r.id for r in rows]
    for booking in _CHAINS(len(ids)).rows(**spread("id", ids)):
        chains[booking.appointment_id].append(booking)
    types = event_types_by_id(account_id, {r.event_type_id for r in rows})
    seats = seat_counts(account_id, [r.booking_uid for r in rows if _seated(r, types, chains[r.id])])
    return [appointment(row, chains[row.id], booker_url, types.get(row.event_type_id),
                        seats.get(row.booking_uid or ""))
            for row in rows]


def _seated(row: Appointment, types: dict[int, EventType], chain: list[Booking]) -> bool:
    return strategy(types.get(row.event_type_id)) == "group" or any(b.seat for b in chain)


def event_types_by_id(account_id: str, calcom_ids: set[int]) -> dict[int, EventType]:
    if not calcom_ids:
        return {}
    wanted = sorted(calcom_ids)
    query = _EVENT_TYPES(len(wanted)).rows(account_id=account_id, **spread("calcom_id", wanted))
    return {row.calcom_id: row for row in query}


# Built once per number of rows (one, for an appointment's own page or a write's answer).
_CHAINS: Shaped[Booking] = Shaped(lambda slot, count: Booking.select().where(
    Booking.appointment.in_(each(slot, "id", count))).order_by(Booking.start_time, Booking.id))
_EVENT_TYPES: Shaped[EventType] = Shaped(lambda slot, count: EventType.select().where(
    (EventType.account == slot("account_id")) & EventType.calcom_id.in_(each(slot, "calcom_id", count))))


def seat_counts(account_id: str, uids: list[str | None]) -> dict[str, int]:
    """Seats taken per seated booking, as calsync holds them: one appointment per seat (DESIGN §10)."""
    return bookings.seats_taken(account_id, uids, LIVE_SEAT)


def appointment(row: Appointment, chain: list[Booking], booker_url: str,
                event_type: EventType | None = None, attendee_count: int | None = None) -> dict[str, Any]:
    seated = strategy(event_type) == "group" or any(b.seat for b in chain)
    kind = "group" if seated else strategy(event_type)
    return {
        "id": row.id,
        "external_id": row.external_id,
        "title": row.title,
        "attendee_name": row.attendee_name,
        "attendee_email": row.attendee_email,
        "attendee_time_zone": row.attendee_time_zone,
        "attendee_phone": row.attendee_phone,
        "to_number": row.to_number,
        "from_number": row.from_number,
        "call_type": row.call_type,
        "business_name": row.business_name,
        "label": row.label,
        "description": row.description,
        "event_type_id": row.event_type_id,
        "start_time": to_api(row.start_time),
        "end_time": to_api(row.end_time),
        "duration_minutes": row.duration_minutes,
        "guests": list(row.guests or []),
        "metadata": dict(row.metadata or {}),
        "status": row.status,
        "attendance": row.attendance,
        "sync_state": row.sync_state,
        "booking_uid": row.booking_uid,
        "meeting_url": row.meeting_url,
        "location": row.location,
        "cancellation_reason": row.cancellation_reason,
        "cancelled_by": row.cancelled_by,
        "source": row.source,
        "last_error": row.last_error,
        "occurrences": [occurrence(b) for b in chain],
        "manage_links": current_manage_links(row, booker_url),
        "strategy": kind,
        "seat_uid": row.seat_uid if seated else None,
        "attendee_count": (attendee_count or 1) if seated else None,
        "recurring_booking_uid": row.recurring_booking_uid,
        "reminders": row.reminders,
        "created_at": to_api(row.created_at),
        "updated_at": to_api(row.updated_at),
        "version": row.desired_version,
    }
