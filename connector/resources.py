"""Resources as calsync writes them, in API answers and CRM events (DESIGN §6): snake_case, UTC with Z."""

from __future__ import annotations

from typing import Any

from mappings.models import Appointment, Booking
from mappings.times import to_api


def manage_links(booker_url: str, booking_uid: str | None, attendee_email: str) -> dict[str, str] | None:
    """The attendee's own links for the current booking (REFERENCE §9)."""
    if not booking_uid:
        return None
    base = booker_url.rstrip("/")
    return {
        "booking": f"{base}/booking/{booking_uid}?changes=true",
        "reschedule": f"{base}/reschedule/{booking_uid}",
        "cancel": f"{base}/booking/{booking_uid}?cancel=true&allRemainingBookings=false",
    }


def occurrence(booking: Booking) -> dict[str, Any]:
    return {
        "booking_uid": booking.uid,
        "start_time": to_api(booking.start_time),
        "end_time": to_api(booking.end_time),
        "status": booking.status,
    }


def appointment_with_chain(row: Appointment, booker_url: str) -> dict[str, Any]:
    """The appointment resource, loading its booking chain (one query)."""
    bookings = list(Booking.select().where(Booking.appointment == row.id)
                    .order_by(Booking.start_time, Booking.id))
    return appointment(row, bookings, booker_url)


def appointment(row: Appointment, bookings: list[Booking], booker_url: str) -> dict[str, Any]:
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
        "occurrences": [occurrence(b) for b in bookings],
        "manage_links": manage_links(booker_url, row.booking_uid, row.attendee_email),
        "created_at": to_api(row.created_at),
        "updated_at": to_api(row.updated_at),
        "version": row.desired_version,
    }
