"""iCalendar for an appointment: the RFC 5546 invite, and the account's subscription feed.

The UID is calsync's own (``<appointment id>@calsync``), never Cal.com's booking
uid: a reschedule makes a new Cal.com uid (REFERENCE §8), and a calendar client
must see the same event moved, not a new one.

``SEQUENCE`` moves forward with every change an invite shows (RFC 5546 §2.1.4: a
client drops an update whose SEQUENCE and DTSTAMP are not later than what it has):
it is the sum of two counters that only grow — ``desired_version`` (every change
the CRM asks for, or Cal.com's that calsync follows) and ``ics_sequence`` (every
change Cal.com makes to the booking: a new time, a confirmation, a cancellation) —
less one, so a new appointment's first invite is 0. ``DTSTAMP`` alone could not do
it: two edits within one second would give the same stamp. Output is
deterministic: ``DTSTAMP`` is the appointment's last change, not the clock, so
downloading an unchanged invite twice gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from icalendar import Calendar, Event, vCalAddress, vText

from connector import errors
from mappings.models import Account, Appointment, Booking

PRODID = "-//calsync//calsync//EN"
UID_DOMAIN = "calsync"
# Statuses whose meeting is off: the invite becomes a METHOD:CANCEL.
CALLED_OFF = ("cancelled", "rejected", "reschedule_requested")  # the last until the attendee rebooks
ICS_STATUS = {"awaiting_confirmation": "TENTATIVE", "pending": "TENTATIVE"}
MEDIA_TYPE = "text/calendar; charset=utf-8"


def uid(row: Appointment) -> str:
    return f"{row.id}@{UID_DOMAIN}"


def sequence(row: Appointment) -> int:
    """The invite's SEQUENCE: later for every change it shows (see the module's docstring)."""
    return row.ics_sequence + row.desired_version - 1


def invite(row: Appointment, host: dict | None, manage: dict[str, str] | None) -> bytes:
    """METHOD:REQUEST while the meeting stands, METHOD:CANCEL once it is off.

    A request needs a meeting address (a location or a video link) and an organizer
    from Cal.com's booking; without them there is nothing an attendee could join,
    so the invite is refused (409) rather than sent empty.
    """
    cancelled = row.status in CALLED_OFF
    if not cancelled:
        if not (row.meeting_url or row.location):
            raise errors.Conflict(
                "This appointment has no meeting address yet (no location or video link); "
                "an invite is available once Cal.com has booked it with one.")
        if host is None:
            raise errors.Conflict("Cal.com has not booked this appointment yet, so it has no organizer.")
    calendar = _calendar("CANCEL" if cancelled else "REQUEST")
    calendar.add_component(_event(row, host, manage, cancelled=cancelled))
    return calendar.to_ical()


def feed(account: Account, rows: Iterable[tuple[Appointment, dict | None]]) -> bytes:
    """METHOD:PUBLISH: a read-only calendar of the account's appointments for subscription."""
    calendar = _calendar("PUBLISH")
    calendar.add("X-WR-CALNAME", f"{account.name} (calsync)")
    calendar.add("X-WR-TIMEZONE", account.time_zone)
    for row, host in rows:
        calendar.add_component(_event(row, host, None, cancelled=row.status in CALLED_OFF,
                                      with_attendees=False))
    return calendar.to_ical()


def host_of(booking: Booking | None) -> dict | None:
    """The first host Cal.com named on the booking (BookingOutput_2024_08_13.hosts)."""
    raw = booking.raw if booking is not None else None
    hosts = raw.get("hosts") if isinstance(raw, dict) else None
    if isinstance(hosts, list) and hosts and isinstance(hosts[0], dict) and hosts[0].get("email"):
        return hosts[0]
    return None


def _calendar(method: str) -> Calendar:
    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("METHOD", method)
    return calendar


def _event(row: Appointment, host: dict | None, manage: dict[str, str] | None, *,
           cancelled: bool, with_attendees: bool = True) -> Event:
    event = Event()
    event.add("UID", uid(row))
    event.add("SEQUENCE", sequence(row))
    event.add("DTSTAMP", _utc(row.updated_at))
    event.add("DTSTART", _utc(row.start_time))
    if row.end_time is not None:
        event.add("DTEND", _utc(row.end_time))
    event.add("SUMMARY", row.title)
    event.add("STATUS", "CANCELLED" if cancelled else ICS_STATUS.get(row.status, "CONFIRMED"))
    event.add("LAST-MODIFIED", _utc(row.updated_at))
    if row.location or row.meeting_url:
        event.add("LOCATION", row.location or row.meeting_url)
    if row.meeting_url:
        event.add("URL", row.meeting_url)
    event.add("DESCRIPTION", _description(row, manage))
    if host is not None:
        organizer = vCalAddress(f"mailto:{host['email']}")
        if host.get("name"):
            organizer.params["CN"] = vText(host["name"])
        event.add("ORGANIZER", organizer)
    if with_attendees:
        people: list[tuple[str, str | None, str]] = [
            (row.attendee_email, row.attendee_name, "REQ-PARTICIPANT")]
        people += [(guest, None, "OPT-PARTICIPANT") for guest in row.guests or []]
        for email, name, role in people:
            attendee = vCalAddress(f"mailto:{email}")
            if name:
                attendee.params["CN"] = vText(name)
            attendee.params["ROLE"] = vText(role)
            attendee.params["PARTSTAT"] = vText("NEEDS-ACTION")
            attendee.params["RSVP"] = vText("TRUE")
            event.add("ATTENDEE", attendee, encode=False)
    return event


def _description(row: Appointment, manage: dict[str, str] | None) -> str:
    parts = [row.description] if row.description else []
    if row.meeting_url:
        parts.append(f"Join: {row.meeting_url}")
    if manage:
        parts.append(f"Reschedule: {manage['reschedule']}")
        parts.append(f"Cancel: {manage['cancel']}")
    if row.status in CALLED_OFF and row.cancellation_reason:
        parts.append(f"Cancelled: {row.cancellation_reason}")
    return "\n\n".join(parts) or row.title


def _utc(value: datetime) -> datetime:
    return value.replace(microsecond=0)
