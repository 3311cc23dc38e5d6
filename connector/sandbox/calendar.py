"""The sandbox's state and Cal.com's booking rules, without HTTP.

Semantics follow ../shared/calcom/REFERENCE.md §5: create validates its body
strictly and refuses taken or closed slots; list filters by Cal.com's buckets and
pages with take/skip; slots come from a weekly schedule in the host's zone.

As in Cal.com, an API key belongs to one user and a user sees only their own
bookings: each key the sandbox sees becomes a user of its own (``user``), every
booking has an ``owner``, and every method that takes a ``host`` acts only on that
user's bookings (another user's uid is not found). ``host=None`` is the sandbox's
own controls acting on any booking. Every user has the same event types and
weekly hours; their calendars are apart.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.clock import Clock
from connector.sandbox import wire
from connector.sandbox.catalog import Host, SandboxEventType, default_event_types, team_members
from connector.sandbox.schedule import WeeklySchedule
from connector.sandbox.webhooks import WebhookHub
from mappings.times import parse_instant, to_wire, to_wire_ms

CREATE_KEYS = {
    "start", "attendee", "bookingFieldsResponses", "eventTypeId", "eventTypeSlug", "username",
    "teamSlug", "organizationSlug", "guests", "meetingUrl", "location", "metadata",
    "lengthInMinutes", "routing", "emailVerificationCode", "instant", "recurrenceCount",
}
ATTENDEE_KEYS = {"name", "email", "timeZone", "phoneNumber", "language"}
RESCHEDULE_KEYS = {"start", "rescheduledBy", "reschedulingReason", "emailVerificationCode", "seatUid"}
CANCEL_KEYS = {"cancellationReason", "cancelSubsequentBookings", "seatUid"}
# Cal.com's RecurringEvent.freq is rrule's Frequency (packages/types/Calendar.d.ts).
RRULE_FREQUENCY = {"yearly": 0, "monthly": 1, "weekly": 2}
MARK_ABSENT_KEYS = {"host", "attendees"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIVE = ("accepted", "pending")


@dataclass
class SandboxBooking:
    id: int
    uid: str
    event_type: SandboxEventType
    title: str
    description: str
    status: str
    start: datetime
    end: datetime
    attendees: list[dict[str, Any]]
    guests: list[str]
    metadata: dict[str, Any]
    location: str
    created_at: datetime
    updated_at: datetime
    responses: dict[str, Any] = field(default_factory=dict)
    cancellation_reason: str = ""
    cancelled_by_email: str = ""
    rescheduled_by_email: str | None = None
    rescheduling_reason: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None
    absent_host: bool = False
    owner: int = 0  # the id of the user (Host) whose booking this is
    organizer: Host | None = None  # a team booking's assigned host (round robin); else the owner
    reschedule_requested: bool = False  # cancelled by the host's "request reschedule" (DB rescheduled)
    ical_uid: str = ""  # "<uid of the chain's first booking>@Cal.com", kept across reschedules
    recurring_uid: str | None = None  # the series an occurrence belongs to (recurringEventId)

    def __post_init__(self) -> None:
        self.ical_uid = self.ical_uid or f"{self.uid}@Cal.com"

    @property
    def duration(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def seated(self) -> bool:
        """A seated event type's booking: its attendees hold seats (REFERENCE §6, §8.5)."""
        return self.event_type.seats is not None

    def seat(self, seat_uid: str) -> dict[str, Any] | None:
        return next((a for a in self.attendees if a.get("seatUid") == seat_uid), None)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.status in LIVE and self.start < end and start < self.end

    def output(self, host: Host, seat_uid: str | None = None) -> dict[str, Any]:
        """``BookingOutput_2024_08_13`` in the fixtures' key order (REFERENCE §6); a seated
        booking's is ``GetSeatedBookingOutput`` (each attendee with its seatUid, the seat's
        metadata and answers), with ``seatUid`` when it answers for one seat (create, reschedule)."""
        body: dict[str, Any] = {
            "id": self.id,
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "hosts": [(self.organizer or host).as_booking_host()],
            "status": self.status,
            "cancellationReason": self.cancellation_reason,
            "cancelledByEmail": self.cancelled_by_email,
        }
        if self.rescheduling_reason is not None:
            body["reschedulingReason"] = self.rescheduling_reason
        if self.rescheduled_by_email is not None:
            body["rescheduledByEmail"] = self.rescheduled_by_email
        if self.rescheduled_to_uid:
            body["rescheduledToUid"] = self.rescheduled_to_uid
        if self.rescheduled_from_uid:
            body["rescheduledFromUid"] = self.rescheduled_from_uid
        body.update({
            "start": to_wire_ms(self.start),
            "end": to_wire_ms(self.end),
            "duration": self.duration,
            "eventTypeId": self.event_type.id,
            "eventType": {"id": self.event_type.id, "slug": self.event_type.slug},
            "meetingUrl": self.location,
            "location": self.location,
            "absentHost": self.absent_host,
            "createdAt": to_wire_ms(self.created_at),
            "updatedAt": to_wire_ms(self.updated_at),
            "metadata": dict(self.metadata),
            "icsUid": self.ical_uid,
        })
        if self.seated:
            if seat_uid is not None:
                body["seatUid"] = seat_uid
            body["attendees"] = [dict(a) for a in self.attendees]
            return body
        body.update({
            "attendees": [dict(a) for a in self.attendees],
            "guests": list(self.guests),
            "bookingFieldsResponses": dict(self.responses),
        })
        if self.recurring_uid:  # RecurringBookingOutput_2024_08_13
            body["recurringBookingUid"] = self.recurring_uid
        return body


def new_uid() -> str:
    """A 22-character uid like Cal.com's short UUIDs."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=").replace(
        "-", "x").replace("_", "Z")


class SandboxCalendar:
    """All sandbox state; every method takes the lock, so HTTP threads may share it."""

    def __init__(
        self,
        clock: Clock,
        *,
        host: Host | None = None,
        event_types: tuple[SandboxEventType, ...] | None = None,
        schedule: WeeklySchedule | None = None,
        time_zone: str = "Europe/Berlin",
    ) -> None:
        self.clock = clock
        self.host = host or Host(time_zone=time_zone)  # the first user's profile; others follow it
        self._users: dict[str, Host] = {}  # sha256 of an API key → its user
        self._hosts: dict[int, Host] = {}
        self.event_types = {et.id: et for et in (event_types or default_event_types())}
        self.schedule = schedule or WeeklySchedule.parse("Mon-Fri 09:00-17:00")
        self.zone = ZoneInfo(time_zone)
        self.bookings: dict[str, SandboxBooking] = {}
        self.hub: WebhookHub | None = None  # set by create_sandbox; None sends nothing
        self.booker_url = "https://cal.com"
        self.created_count = 0  # bookings made by POST /v2/bookings, for exactly-once checks
        self._next_id = 990001
        self.lock = threading.RLock()

    # --- users -------------------------------------------------------------------

    def user(self, api_key: str) -> Host:
        """The user ``api_key`` belongs to, made on the key's first use (one user per key)."""
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        with self.lock:
            found = self._users.get(digest)
            if found is None:
                number = len(self._users)
                found = self.host if number == 0 else replace(
                    self.host, id=self.host.id + number, username=f"{self.host.username}-{number + 1}",
                    email=self.host.email.replace("@", f"+{number + 1}@"))
                self._users[digest] = found
                self._hosts[found.id] = found
            return found

    def host_of(self, booking: SandboxBooking) -> Host:
        return self._hosts.get(booking.owner, self.host)

    def _calendar_of(self, host: Host, *, but: str | None = None) -> list[SandboxBooking]:
        return [b for b in self.bookings.values() if b.owner == host.id and b.uid != but]

    # --- create -----------------------------------------------------------------

    def create_booking(self, body: Any, path: str, meeting_base: str, *, host: Host) -> SandboxBooking:
        return self.book(body, path, meeting_base, host=host)[0]

    def book(self, body: Any, path: str, meeting_base: str, *,
             host: Host) -> tuple[SandboxBooking, str | None]:
        """``POST /v2/bookings``: the booking, and the seat taken when its event type is seated."""
        now = self.clock.now()
        # class-validator with forbidNonWhitelisted (REFERENCE §3), message verbatim in form.
        refuse_unknown(body, CREATE_KEYS, path, now)
        if body.get("instant"):
            raise wire.bad_request("the sandbox books no instant events", path, now)
        start_text = body.get("start")
        if not isinstance(start_text, str):
            raise wire.bad_request("start must be a valid ISO 8601 date string", path, now)
        try:
            start = parse_instant(start_text, assume_utc=True)
        except ValueError:
            raise wire.bad_request("start must be a valid ISO 8601 date string", path, now) from None
        attendee = self._attendee(body.get("attendee"), path, now)
        event_type = self._event_type_of(body, host, path, now)
        length = body.get("lengthInMinutes", event_type.length)
        if not isinstance(length, int) or isinstance(length, bool) or not event_type.allows_length(length):
            raise wire.bad_request(
                "Provided lengthInMinutes is not one of the possible lengths for the event type. "
                f"The possible lengths are: {', '.join(str(x) for x in (event_type.length_options or (event_type.length,)))}",
                path, now)
        guests = self._guests(body.get("guests"), path, now)
        metadata = self._metadata(body.get("metadata"), path, now)
        end = start + timedelta(minutes=length)
        if event_type.recurrence is not None:
            return self._book_series(host, event_type, start, end, attendee, guests, metadata, meeting_base,
                                     body, path, now), None
        if "recurrenceCount" in body:
            raise wire.bad_request("recurrenceCount is only for recurring event types", path, now)
        if event_type.seats is not None:
            return self._take_seat(host, event_type, start, end, attendee, metadata, meeting_base,
                                   body.get("bookingFieldsResponses") or {}, path, now)
        with self.lock:
            mine = self._calendar_of(host)
            if event_type.requires_confirmation:
                # A repeat with the same attendee and start returns the existing booking (REFERENCE §5.1).
                for existing in mine:
                    if (existing.event_type.id == event_type.id and existing.start == start
                            and existing.status in LIVE
                            and existing.attendees[0]["email"] == attendee.get("email")):
                        return existing, None
            if start < now + timedelta(minutes=event_type.minimum_notice_minutes):
                raise wire.bad_request("Attempting to book a meeting in the past.", path, now)
            for existing in mine:
                if existing.status == "accepted" and existing.start == start and existing.end == end:
                    # Same idempotency key (start, end, organizer): what Cal.com answers when
                    # two requests race past its availability check (REFERENCE §5.1).
                    raise wire.core_error(409, "booking_conflict_error")
            if (not self.schedule.is_open(start, end, self.zone)
                    or any(b.overlaps(start, end) for b in mine)):
                raise wire.bad_request(
                    "User either already has booking at this time or is not available", path, now)
            booking = self._insert(host, event_type, start, end, attendee, guests, metadata, meeting_base,
                                   body.get("bookingFieldsResponses") or {}, now)
            self.created_count += 1
        trigger = "BOOKING_REQUESTED" if booking.status == "pending" else "BOOKING_CREATED"
        self._notify(trigger, self.webhook_payload(booking, times="Z"), booking)
        return booking, None

    # --- recurring series (REFERENCE §5.1, §5.5, §7.4; Cal.com's handleNewRecurringBooking) ---

    def _book_series(self, host: Host, event_type: SandboxEventType, start: datetime, end: datetime,
                     attendee: dict[str, Any], guests: list[str], metadata: dict[str, Any],
                     meeting_base: str, body: dict[str, Any], path: str, now: datetime) -> SandboxBooking:
        """One booking per occurrence, each with its own uid and meeting, all sharing the series'
        uid; every occurrence's webhook says it recurs (``recurringEvent``) without naming the
        series. Answers the first occurrence (the route answers them all)."""
        rule = event_type.recurrence or {}
        most = int(rule.get("occurrences", 1))
        count = body.get("recurrenceCount", most)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= most:
            raise wire.bad_request(f"recurrenceCount must be between 1 and {most}", path, now)
        starts = [_nth(start, rule, k) for k in range(count)]
        length = end - start
        with self.lock:
            mine = self._calendar_of(host)
            if start < now + timedelta(minutes=event_type.minimum_notice_minutes):
                raise wire.bad_request("Attempting to book a meeting in the past.", path, now)
            for when in starts:
                if (not self.schedule.is_open(when, when + length, self.zone)
                        or any(b.overlaps(when, when + length) for b in mine)):
                    raise wire.bad_request(
                        "User either already has booking at this time or is not available", path, now)
            series_uid = new_uid()
            occurrences = []
            for when in starts:
                booking = self._insert(host, event_type, when, when + length, attendee, guests, metadata,
                                       meeting_base, body.get("bookingFieldsResponses") or {}, now)
                booking.recurring_uid = series_uid
                occurrences.append(booking)
            self.created_count += len(occurrences)
        for booking in occurrences:
            payload = self.webhook_payload(booking, times="Z")
            payload["recurringEvent"] = self.recurring_event(booking, count)
            self._notify("BOOKING_REQUESTED" if booking.status == "pending" else "BOOKING_CREATED",
                         payload, booking)
        return occurrences[0]

    @staticmethod
    def recurring_event(booking: SandboxBooking, count: int | None = None) -> dict[str, Any]:
        """Cal.com's RecurringEvent as its webhooks carry it: the rule, with the count booked."""
        rule = booking.event_type.recurrence or {}
        return {"freq": RRULE_FREQUENCY.get(str(rule.get("frequency")), 2),
                "count": count or int(rule.get("occurrences", 1)), "interval": int(rule.get("interval", 1))}

    def series(self, series_uid: str, host: Host | None = None) -> list[SandboxBooking]:
        """The occurrences of a series, earliest first; empty if ``host`` has none of it."""
        with self.lock:
            return sorted((b for b in self.bookings.values() if b.recurring_uid == series_uid
                           and (host is None or b.owner == host.id)), key=lambda b: b.start)

    def _cancel_occurrences(self, named: SandboxBooking, since: datetime, reason: str, *, by_host: bool,
                            announce_series: bool) -> list[SandboxBooking]:
        """Cancel ``named``'s series from ``since`` on (Cal.com's updateMany), with one webhook
        about ``named``; ``announce_series``: it carries ``recurringEvent`` (allRemainingBookings)."""
        now = self.clock.now()
        with self.lock:
            cancelled = [b for b in self.series(named.recurring_uid or "") if b.start >= since
                         and b.status in LIVE]
            for booking in cancelled:
                booking.status = "cancelled"
                booking.cancellation_reason = reason
                booking.cancelled_by_email = (self.host_of(booking).email if by_host
                                              else booking.attendees[0]["email"])
                booking.updated_at = now
        payload = self.webhook_payload(named, times="+00:00", with_metadata=False)
        payload.update(status="CANCELLED", cancellationReason=reason,
                       cancelledBy=self.host_of(named).email if by_host else named.attendees[0]["email"])
        if announce_series:
            payload["recurringEvent"] = self.recurring_event(named)
        self._notify("BOOKING_CANCELLED", payload, named)
        return cancelled

    def cancel_remaining(self, uid: str, reason: str | None, path: str, *, by_host: bool,
                         host: Host | None = None) -> list[SandboxBooking]:
        """Every occurrence of a series from now on: the series' uid cancelled through the API, or
        an occurrence's "cancel all remaining" link (allRemainingBookings). One webhook, naming
        the occurrence (the series' first remaining one, for the series' uid)."""
        now = self.clock.now()
        if by_host and not reason:
            raise wire.core_error(400, "Cancellation reason is required when you are the host")
        with self.lock:
            named = self.bookings.get(uid)
            if named is None or named.recurring_uid is None or (host is not None and named.owner != host.id):
                remaining = [b for b in self.series(uid, host) if b.start >= now and b.status in LIVE]
                if not remaining:
                    raise wire.not_found(f"Booking with uid={uid} was not found in the database", path, now)
                named = remaining[0]
        return self._cancel_occurrences(named, now, reason or "", by_host=by_host, announce_series=True)

    # --- seats (REFERENCE §6, §8.5; Cal.com's handleSeats) -------------------------------

    def _take_seat(self, host: Host, event_type: SandboxEventType, start: datetime, end: datetime,
                   attendee: dict[str, Any], metadata: dict[str, Any], meeting_base: str,
                   responses: dict[str, Any], path: str, now: datetime) -> tuple[SandboxBooking, str]:
        """A seat in the host's booking of this event type at this start, or the first seat of a new
        one. Cal.com answers one attendee per seat; its webhook names the joining attendee only,
        and only the first seat's names the seat (``attendeeSeatId``)."""
        seat_uid = str(uuid.uuid4())
        seat = {**attendee, "seatUid": seat_uid, "bookingFieldsResponses": {
            "name": attendee["name"], "email": attendee.get("email", ""), **responses},
            "metadata": dict(metadata)}
        with self.lock:
            shared = self._seated_booking(host, event_type, start)
            if shared is not None:
                self._check_seat_free(shared, attendee.get("email", ""))
                shared.attendees.append(seat)
                shared.updated_at = now
                booking, first = shared, False
            else:
                if start < now + timedelta(minutes=event_type.minimum_notice_minutes):
                    raise wire.bad_request("Attempting to book a meeting in the past.", path, now)
                if (not self.schedule.is_open(start, end, self.zone)
                        or any(b.overlaps(start, end) for b in self._calendar_of(host))):
                    raise wire.bad_request(
                        "User either already has booking at this time or is not available", path, now)
                booking = self._insert(host, event_type, start, end, attendee, [], metadata, meeting_base,
                                       responses, now)
                booking.attendees = [seat]
                first = True
            self.created_count += 1
        self._notify_seat("BOOKING_CREATED", booking, seat, metadata, first=first)
        return booking, seat_uid

    def _seated_booking(self, host: Host, event_type: SandboxEventType,
                        start: datetime) -> SandboxBooking | None:
        return next((b for b in self._calendar_of(host) if b.event_type.id == event_type.id
                     and b.start == start and b.status == "accepted"), None)

    @staticmethod
    def _check_seat_free(booking: SandboxBooking, email: str) -> None:
        if any(a.get("email", "").lower() == email.lower() for a in booking.attendees):
            raise wire.core_error(409, "already_signed_up_for_this_booking_error")
        if len(booking.attendees) >= (booking.event_type.seats or 0):
            raise wire.core_error(409, "booking_seats_full_error")

    def _notify_seat(self, trigger: str, booking: SandboxBooking, seat: dict[str, Any],
                     metadata: dict[str, Any] | None, *, first: bool = False,
                     times: str = "Z", **extra: Any) -> None:
        payload = self.webhook_payload(booking, times=times, with_metadata=metadata is not None,
                                       metadata_of=None)
        payload["attendees"] = [_webhook_attendee(seat)]
        if metadata is not None:
            payload["metadata"].update(metadata)
        if first:
            payload["attendeeSeatId"] = seat["seatUid"]
        payload.update(extra)
        self._notify(trigger, payload, booking)

    def cancel_seat(self, uid: str, seat_uid: str, reason: str | None, path: str, *, by_host: bool,
                    host: Host | None = None) -> SandboxBooking:
        """One attendee leaves a seated booking; the last one leaving cancels it (Cal.com's
        cancelAttendeeSeat). The webhook names the booking and the leaving attendee only."""
        now = self.clock.now()
        with self.lock:
            booking = self.get_booking(uid, path, host)
            seat = booking.seat(seat_uid) if booking.seated else None
            if seat is None:
                raise wire.bad_request("User not a part of this booking", path, now)
            if booking.end <= now:
                raise wire.core_error(400, "Cannot cancel a booking that has already ended")
            booking.attendees.remove(seat)
            booking.updated_at = now
            if not booking.attendees:
                booking.status = "cancelled"
                booking.cancellation_reason = reason or ""
                booking.cancelled_by_email = self.host_of(booking).email if by_host else seat["email"]
        self._notify_seat("BOOKING_CANCELLED", booking, seat, None, times="+00:00", status="CANCELLED",
                          cancellationReason=reason or "",
                          cancelledBy=self.host_of(booking).email if by_host else seat["email"])
        return booking

    def reschedule_seat(self, uid: str, seat_uid: str, start: datetime, rescheduled_by: str | None,
                        path: str, meeting_base: str, *, via_link: bool,
                        host: Host | None = None) -> tuple[SandboxBooking, str]:
        """One attendee's seat moves to the booking at the new time (keeping its seat), or, when there
        is none, to a new booking with a new seat (Cal.com's attendeeRescheduleSeatedBooking). The
        old booking keeps its other attendees; the last one leaving cancels it."""
        now = self.clock.now()
        with self.lock:
            old = self.get_booking(uid, path, host)
            seat = old.seat(seat_uid) if old.seated else None
            if seat is None:
                raise wire.bad_request("User not a part of this booking", path, now)
            owner = self.host_of(old)
            end = start + timedelta(minutes=old.event_type.length)
            if start < now + timedelta(minutes=old.event_type.minimum_notice_minutes):
                raise wire.bad_request("Attempting to book a meeting in the past.", path, now)
            target = self._seated_booking(owner, old.event_type, start)
            if target is old:
                raise wire.core_error(409, "already_signed_up_for_this_booking_error")
            fresh = False
            if target is not None:
                self._check_seat_free(target, seat["email"])
                moved = seat
            else:
                if (not self.schedule.is_open(start, end, self.zone)
                        or any(b.overlaps(start, end) for b in self._calendar_of(owner, but=uid))):
                    raise wire.bad_request(
                        "User either already has booking at this time or is not available", path, now)
                target = self._insert(owner, old.event_type, start, end, dict(seat), [],
                                      dict(old.metadata), meeting_base, {}, now)
                target.rescheduled_from_uid = uid
                moved = {**seat, "seatUid": str(uuid.uuid4())}  # a new booking: a new seat row
                target.attendees = []
                fresh = True
            old.attendees.remove(seat)
            old.updated_at = now
            if not old.attendees:
                old.status = "cancelled"
            target.attendees.append(moved)
            target.updated_at = now
        others = [a for a in target.attendees if a is not moved]
        self._notify_seat("BOOKING_RESCHEDULED", target, moved, None if via_link else seat["metadata"],
                          first=fresh, rescheduleUid=uid, rescheduleId=old.id, rescheduleStartTime=to_wire(old.start),
                          rescheduleEndTime=to_wire(old.end), rescheduledBy=rescheduled_by,
                          attendees=[_webhook_attendee(moved)] + [_webhook_attendee(a) for a in others])
        return target, moved["seatUid"]

    def move_seated(self, uid: str, start: datetime, path: str, *,
                    host: Host | None = None) -> SandboxBooking:
        """The host moves a whole seated booking to a free time: the same booking, the same uid,
        new times (Cal.com's moveSeatedBookingToNewTimeSlot); the webhook names the uid twice."""
        now = self.clock.now()
        with self.lock:
            booking = self.get_booking(uid, path, host)
            end = start + timedelta(minutes=booking.event_type.length)
            owner = self.host_of(booking)
            if (not self.schedule.is_open(start, end, self.zone)
                    or any(b.overlaps(start, end) for b in self._calendar_of(owner, but=uid))):
                raise wire.bad_request(
                    "User either already has booking at this time or is not available", path, now)
            old_start, old_end = booking.start, booking.end
            booking.start, booking.end, booking.updated_at = start, end, now
        payload = self.webhook_payload(booking, times="Z", metadata_of=None)
        payload.update(rescheduleUid=uid, rescheduleId=booking.id, rescheduleStartTime=to_wire(old_start),
                       rescheduleEndTime=to_wire(old_end))
        self._notify("BOOKING_RESCHEDULED", payload, booking)
        return booking

    def _insert(self, host: Host, event_type: SandboxEventType, start: datetime, end: datetime,
                attendee: dict[str, Any], guests: list[str], metadata: dict[str, Any],
                meeting_base: str, responses: dict[str, Any], now: datetime) -> SandboxBooking:
        uid = new_uid()
        self._next_id += 1
        location = self._location(event_type, uid, meeting_base)
        attendees = [attendee] + [
            {"name": "", "email": g, "timeZone": attendee["timeZone"], "language": "en", "absent": False}
            for g in guests
        ]
        booking = SandboxBooking(
            id=self._next_id,
            uid=uid,
            event_type=event_type,
            title=f"{event_type.title} between {host.name} and {attendee['name']}",
            description=str(responses.get("notes", "")),
            status="pending" if event_type.requires_confirmation else "accepted",
            start=start,
            end=end,
            attendees=attendees,
            guests=guests,
            metadata=metadata,
            location=location,
            created_at=now,
            updated_at=now,
            responses={"name": attendee["name"], "email": attendee.get("email", ""),
                       "guests": guests, **responses},
            owner=host.id,
        )
        self.bookings[uid] = booking
        return booking

    @staticmethod
    def _location(event_type: SandboxEventType, uid: str, meeting_base: str) -> str:
        for item in event_type.locations:
            if item.get("type") == "integration" and item.get("integration") == "cal-video":
                return f"{meeting_base.rstrip('/')}/video/{uid}"
            if item.get("type") == "link" and item.get("link"):
                return str(item["link"])
            if item.get("type") == "address" and item.get("address"):
                return str(item["address"])
        return ""

    def _attendee(self, value: Any, path: str, now: datetime) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise wire.bad_request("attendee must be an object", path, now)
        unknown = sorted(set(value) - ATTENDEE_KEYS)
        if unknown:
            raise wire.bad_request(
                f"attendee.{unknown[0]} property is wrong,property {unknown[0]} should not exist ",
                path, now)
        name, zone = value.get("name"), value.get("timeZone")
        email, phone = value.get("email"), value.get("phoneNumber")
        if not isinstance(name, str) or not name:
            raise wire.bad_request("attendee.name must be a string", path, now)
        if not isinstance(zone, str) or not _is_zone(zone):
            raise wire.bad_request("attendee.timeZone must be a valid IANA time zone", path, now)
        if email is None and phone is None:
            raise wire.bad_request("attendee.email or attendee.phoneNumber is required", path, now)
        if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
            raise wire.bad_request("attendee.email must be an email", path, now)
        result: dict[str, Any] = {"name": name, "email": email or "", "timeZone": zone,
                                  "language": value.get("language", "en"), "absent": False}
        if phone is not None:
            result["phoneNumber"] = str(phone)
        return result

    def _event_type_of(self, body: dict[str, Any], host: Host, path: str, now: datetime) -> SandboxEventType:
        type_id = body.get("eventTypeId")
        if type_id is None:
            slug = body.get("eventTypeSlug")
            if slug and (body.get("username") == host.username):
                for candidate in self.event_types.values():
                    if candidate.slug == slug:
                        return candidate
            if not slug:
                raise wire.bad_request(
                    "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug "
                    "must be provided", path, now)
            raise wire.not_found(f"Event type with slug {slug} not found", path, now)
        if not isinstance(type_id, int) or isinstance(type_id, bool):
            raise wire.bad_request("eventTypeId must be a number", path, now)
        event_type = self.event_types.get(type_id)
        if event_type is None:
            raise wire.not_found(f"Event type with id={type_id} was not found.", path, now)
        return event_type

    @staticmethod
    def _guests(value: Any, path: str, now: datetime) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(g, str) and _EMAIL.match(g) for g in value):
            raise wire.bad_request("guests must be an array of emails", path, now)
        return list(value)

    @staticmethod
    def _metadata(value: Any, path: str, now: datetime) -> dict[str, Any]:
        # ≤ 50 keys, key ≤ 40 chars, values string ≤ 500 / number / boolean (REFERENCE §5.1).
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise wire.bad_request("metadata must be an object", path, now)
        if len(value) > 50:
            raise wire.bad_request("Metadata must have at most 50 keys", path, now)
        for key, item in value.items():
            if len(key) > 40:
                raise wire.bad_request("Metadata key cannot exceed 40 characters", path, now)
            if isinstance(item, str) and len(item) > 500:
                raise wire.bad_request("Metadata string values cannot exceed 500 characters", path, now)
            if not isinstance(item, str | int | float | bool):
                raise wire.bad_request("Metadata values must be strings, numbers or booleans", path, now)
        return dict(value)

    # --- change -----------------------------------------------------------------

    def reschedule(self, uid: str, body: Any, path: str, meeting_base: str, *,
                   via_link: bool = False, host: Host | None = None) -> SandboxBooking:
        return self.rebook(uid, body, path, meeting_base, via_link=via_link, host=host)[0]

    def rebook(self, uid: str, body: Any, path: str, meeting_base: str, *, via_link: bool = False,
               host: Host | None = None) -> tuple[SandboxBooking, str | None]:
        """``POST /v2/bookings/{uid}/reschedule``: the booking at the new time, and the seat moved
        when the booking is seated (``seatUid``: that seat; none: the host moves the whole slot)."""
        now = self.clock.now()
        refuse_unknown(body, RESCHEDULE_KEYS, path, now)
        try:
            start = parse_instant(body.get("start"), assume_utc=True)
        except (ValueError, TypeError):
            raise wire.bad_request("start must be a valid ISO 8601 date string", path, now) from None
        seat_uid = body.get("seatUid")
        if seat_uid is not None:
            if not isinstance(seat_uid, str):
                raise wire.bad_request("seatUid must be a string", path, now)
            return self.reschedule_seat(uid, seat_uid, start, body.get("rescheduledBy"), path,
                                        meeting_base, via_link=via_link, host=host)
        if self.get_booking(uid, path, host).seated and not via_link:
            return self.move_seated(uid, start, path, host=host), None
        return self._reschedule_whole(uid, body, start, path, meeting_base, via_link=via_link, host=host), None

    def _reschedule_whole(self, uid: str, body: dict[str, Any], start: datetime, path: str,
                          meeting_base: str, *, via_link: bool, host: Host | None) -> SandboxBooking:
        """A new booking with a new uid; the old one is cancelled and linked (REFERENCE §5.4, §8)."""
        now = self.clock.now()
        with self.lock:
            old = self.get_booking(uid, path, host)
            owner = self.host_of(old)
            if old.status == "cancelled" and old.rescheduled_to_uid:
                raise wire.bad_request(
                    f"Booking with uid={uid} has been cancelled and rescheduled already to booking "
                    f"with uid={old.rescheduled_to_uid}. You probably want to reschedule "
                    f"{old.rescheduled_to_uid} instead by passing it within the request URL.", path, now)
            if old.status in ("cancelled", "rejected") and not old.reschedule_requested:
                raise wire.bad_request(f"Can't reschedule booking with uid={uid} because it has been "
                                       f"{old.status}.", path, now)
            # No lengthInMinutes: the new booking gets the event type's default length (REFERENCE §5.4).
            end = start + timedelta(minutes=old.event_type.length)
            if start < now + timedelta(minutes=old.event_type.minimum_notice_minutes):
                raise wire.bad_request("Attempting to book a meeting in the past.", path, now)
            others = self._calendar_of(owner, but=uid)
            if (not self.schedule.is_open(start, end, self.zone)
                    or any(b.overlaps(start, end) for b in others)):
                raise wire.bad_request(
                    "User either already has booking at this time or is not available", path, now)
            rescheduled_by = body.get("rescheduledBy")
            new = self._insert(owner, old.event_type, start, end, dict(old.attendees[0]), list(old.guests),
                               dict(old.metadata), meeting_base, {}, now)
            new.responses = dict(old.responses)
            new.description = old.description
            new.ical_uid = old.ical_uid  # one calendar entry across the chain (REFERENCE §8)
            if old.event_type.requires_confirmation and rescheduled_by == owner.email:
                new.status = "accepted"  # the owner's own reschedule is confirmed at once
            new.rescheduled_from_uid = uid
            new.rescheduling_reason = body.get("reschedulingReason")
            new.rescheduled_by_email = rescheduled_by
            old.status = "cancelled"
            old.rescheduled_to_uid = new.uid
            old.rescheduled_by_email = rescheduled_by
            old.updated_at = now
        # Exactly one webhook, for the new uid; none for the old (REFERENCE §8). A link
        # reschedule carries only the new video URL as metadata; an API one the old row's.
        payload = self.webhook_payload(new, times="Z", metadata_of=None if via_link else old)
        payload.update(rescheduleUid=old.uid, rescheduleId=old.id,
                       rescheduleStartTime=to_wire(old.start), rescheduleEndTime=to_wire(old.end),
                       rescheduledBy=rescheduled_by)
        self._notify("BOOKING_REQUESTED" if new.status == "pending" else "BOOKING_RESCHEDULED",
                     payload, new)
        return new

    def cancel(self, uid: str, body: Any, path: str, *, by_host: bool,
               host: Host | None = None) -> SandboxBooking:
        """Cancel a booking with Cal.com's rules (REFERENCE §5.5); with ``seatUid``, one seat."""
        now = self.clock.now()
        refuse_unknown(body, CANCEL_KEYS, path, now)
        reason = body.get("cancellationReason")
        if body.get("seatUid") is not None:
            if not isinstance(body["seatUid"], str):
                raise wire.bad_request("seatUid must be a string", path, now)
            return self.cancel_seat(uid, body["seatUid"], reason, path, by_host=by_host, host=host)
        subsequent = body.get("cancelSubsequentBookings")
        if subsequent is not None and not isinstance(subsequent, bool):
            raise wire.bad_request("cancelSubsequentBookings must be a boolean value", path, now)
        with self.lock:
            booking = self.get_booking(uid, path, host)
            if subsequent and booking.recurring_uid and booking.status in LIVE:
                if by_host and not reason:
                    raise wire.core_error(400, "Cancellation reason is required when you are the host")
                # This occurrence and the later ones; the webhook names this one only.
                self._cancel_occurrences(booking, booking.start, reason or "", by_host=by_host,
                                         announce_series=False)
                return booking
            if booking.status == "cancelled":
                raise wire.bad_request(
                    f"Can't cancel booking with uid={uid} because it has been cancelled already. "
                    "Please provide uid of a booking that is not cancelled.", path, now)
            if by_host and not reason:
                raise wire.core_error(400, "Cancellation reason is required when you are the host")
            if booking.end <= now:
                raise wire.core_error(400, "Cannot cancel a booking that has already ended")
            booking.status = "cancelled"
            booking.cancellation_reason = reason or ""
            booking.cancelled_by_email = (self.host_of(booking).email if by_host
                                          else booking.attendees[0]["email"])
            booking.updated_at = now
        payload = self.webhook_payload(booking, times="+00:00", with_metadata=False)
        payload.update(cancellationReason=booking.cancellation_reason, cancelledBy=booking.cancelled_by_email)
        self._notify("BOOKING_CANCELLED", payload, booking)
        return booking

    def mark_absent(self, uid: str, body: Any, path: str, host: Host | None = None) -> SandboxBooking:
        """Host and attendee no-shows, only after the start (REFERENCE §5.6)."""
        now = self.clock.now()
        refuse_unknown(body, MARK_ABSENT_KEYS, path, now)
        with self.lock:
            booking = self.get_booking(uid, path, host)
            if now < booking.start:
                raise wire.bad_request("Bookings can only be marked as absent after their scheduled "
                                       "start time.", path, now)
            attendees = body.get("attendees") or []
            if not isinstance(attendees, list):
                raise wire.bad_request("attendees must be an array", path, now)
            for item in attendees:
                if (not isinstance(item, dict) or not isinstance(item.get("email"), str)
                        or not isinstance(item.get("absent"), bool)):
                    raise wire.bad_request("each attendee needs email and absent", path, now)
                match = [a for a in booking.attendees if a["email"].lower() == item["email"].lower()]
                if not match:
                    raise wire.bad_request(f"{item['email']} is not an attendee of this booking", path, now)
                # Attendee rows only: the booking's updatedAt does not move (REFERENCE §5.3).
                match[0]["absent"] = item["absent"]
            if body.get("host") is True:  # host: false does not clear it (REFERENCE §5.6)
                booking.absent_host = True
                booking.updated_at = now
        if attendees:  # a host-only change sends no webhook (REFERENCE §5.6)
            changed = [{"email": a["email"], "noShow": a["absent"]} for a in attendees]
            message = (f"{changed[0]['email']} {'marked' if changed[0]['noShow'] else 'unmarked'} as no-show"
                       if len(changed) == 1 else "No-show status updated for attendees")
            self._notify("BOOKING_NO_SHOW_UPDATED", {"message": message, "attendees": changed,
                                                      "bookingUid": booking.uid, "bookingId": booking.id},
                         booking)
        return booking

    def delete(self, uid: str, path: str, host: Host | None = None) -> SandboxBooking:
        """The booking disappears (an admin's database edit, a deleted user): no webhook at all."""
        with self.lock:
            booking = self.get_booking(uid, path, host)
            del self.bookings[uid]
        return booking

    def _decide(self, uid: str, path: str, status: str, host: Host | None) -> SandboxBooking:
        """The host decides a pending booking; anything else is tRPC's generic 400 (REFERENCE §3)."""
        now = self.clock.now()
        with self.lock:
            booking = self.get_booking(uid, path, host)
            if booking.status != "pending":
                raise wire.nest_error(400, "TRPCError",
                                      "Bad request: Please check your request data and try again", path, now)
            booking.status = status
            booking.updated_at = now
        return booking

    def request_reschedule(self, uid: str, reason: str | None, path: str,
                           host: Host | None = None) -> SandboxBooking:
        """The host asks the attendee to pick a new time (Cal.com's requestReschedule.handler): the
        booking is cancelled, flagged as rescheduled, and the attendee's link books the new time
        as its successor. The webhook is a BOOKING_CANCELLED that says so."""
        now = self.clock.now()
        with self.lock:
            booking = self.get_booking(uid, path, host)
            if booking.status not in LIVE:
                raise wire.nest_error(400, "TRPCError", "Booking to reschedule not found", path, now)
            booking.status = "cancelled"
            booking.reschedule_requested = True
            booking.cancellation_reason = f"Please reschedule. {reason or ''}".rstrip()
            booking.cancelled_by_email = self.host_of(booking).email
            booking.updated_at = now
        payload = self.webhook_payload(booking, times="+00:00", with_metadata=False)
        # The newest source: the factory's requestReschedule stays false, the handler adds this.
        payload.update(cancellationReason=booking.cancellation_reason, cancelledBy=booking.cancelled_by_email,
                       requestReschedule=False, rescheduleRequested=True)
        self._notify("BOOKING_CANCELLED", payload, booking)
        return booking

    def reassign(self, uid: str, user_id: int | None, path: str,
                 host: Host | None = None) -> tuple[SandboxBooking, Host]:
        """A round-robin booking to another of its event type's hosts: the one asked for, or the
        next in turn; the same booking, uid and time (Cal.com's roundRobinReassignment)."""
        now = self.clock.now()
        with self.lock:
            booking = self.get_booking(uid, path, host)
            if booking.event_type.scheduling_type not in ("roundRobin", "managed"):
                raise wire.bad_request("Only round robin and managed event types can be reassigned",
                                       path, now)
            if booking.status != "accepted" or booking.end <= now:
                raise wire.bad_request("Only upcoming accepted bookings can be reassigned", path, now)
            members = team_members(self.host_of(booking))
            current = booking.organizer or self.host_of(booking)
            if user_id is None:
                at = next((i for i, member in enumerate(members) if member.id == current.id), -1)
                target = members[(at + 1) % len(members)]
            else:
                chosen = next((member for member in members if member.id == user_id), None)
                if chosen is None:
                    raise wire.bad_request(f"User with id={user_id} is not a host of this event type",
                                           path, now)
                target = chosen
                if target.id == current.id:
                    raise wire.bad_request(f"The booking is already assigned to user with id={user_id}",
                                           path, now)
            booking.organizer = target
            booking.updated_at = now
        return booking, target

    def confirm(self, uid: str, path: str, host: Host | None = None) -> SandboxBooking:
        """The host accepts a pending booking: BOOKING_CREATED for the same uid (REFERENCE §5.7)."""
        booking = self._decide(uid, path, "accepted", host)
        self._notify("BOOKING_CREATED", self.webhook_payload(booking, times=".000Z", metadata_of=None),
                     booking)
        return booking

    def decline(self, uid: str, reason: str | None, path: str, host: Host | None = None) -> SandboxBooking:
        booking = self._decide(uid, path, "rejected", host)
        payload = self.webhook_payload(booking, times=".000Z", with_metadata=False)
        payload["rejectionReason"] = reason
        self._notify("BOOKING_REJECTED", payload, booking)
        return booking

    # --- webhooks -------------------------------------------------------------

    def _notify(self, trigger: str, payload: dict[str, Any], booking: SandboxBooking) -> None:
        """To the booking's owner's subscriptions only, as Cal.com's user-level webhooks; which do not
        fire for a team's event types (REFERENCE §7.5): calsync learns of those by reconciling."""
        if self.hub is not None and booking.event_type.team_id is None:
            self.hub.emit(trigger, payload, owner=booking.owner)

    def webhook_payload(self, booking: SandboxBooking, *, times: str, with_metadata: bool = True,
                        metadata_of: SandboxBooking | None | bool = True) -> dict[str, Any]:
        """A booking as Cal.com's webhooks carry it (fixtures' keys; REFERENCE §7.4).

        ``times``: "Z" (created, rescheduled), ".000Z" (confirm, reject) or "+00:00" (cancel).
        ``metadata_of``: whose user metadata rides along — this booking (True), another
        booking's (an API reschedule), or none (a link reschedule, a confirmation).
        """

        def instant(value: datetime) -> str:
            if times == ".000Z":
                return to_wire_ms(value)
            text = to_wire(value)
            return text[:-1] + "+00:00" if times == "+00:00" else text

        host, event_type = self.host_of(booking), booking.event_type
        attendees = [_webhook_attendee(a) for a in booking.attendees]
        payload: dict[str, Any] = {
            "bookerUrl": self.booker_url,
            "title": booking.title,
            "startTime": instant(booking.start),
            "endTime": instant(booking.end),
            "type": event_type.slug,
            "eventTypeId": event_type.id,
            "organizer": {"id": host.id, "name": host.name, "email": host.email,
                          "username": host.username, "timeZone": host.time_zone,
                          "language": {"locale": "en"}},
            "attendees": attendees,
            "location": booking.location,
            "iCalUID": booking.ical_uid,
            "requiresConfirmation": event_type.requires_confirmation,
            "eventTitle": event_type.title,
            "length": booking.duration,
            "uid": booking.uid,
            "bookingId": booking.id,
            "status": booking.status.upper(),
        }
        if with_metadata:
            metadata: dict[str, Any] = {}
            if booking.location.startswith(("http://", "https://")):
                metadata["videoCallUrl"] = booking.location
            source = booking if metadata_of is True else metadata_of
            if isinstance(source, SandboxBooking):
                metadata.update(source.metadata)
            payload["metadata"] = metadata
        return payload

    # --- read -------------------------------------------------------------------

    def get_booking(self, uid: str, path: str, host: Host | None = None) -> SandboxBooking:
        """``uid`` if it is ``host``'s booking (any user's when ``host`` is None); else Cal.com's 404."""
        with self.lock:
            booking = self.bookings.get(uid)
        if booking is None or (host is not None and booking.owner != host.id):
            raise wire.not_found(f"Booking with uid={uid} was not found in the database", path,
                                 self.clock.now())
        return booking

    def list_bookings(self, query: dict[str, str], path: str,
                      host: Host) -> tuple[list[SandboxBooking], dict]:
        now = self.clock.now()
        take = _int_param(query, "take", 100, 1, 250, path, now)
        skip = _int_param(query, "skip", 0, 0, None, path, now)
        with self.lock:
            items = self._calendar_of(host)
        buckets = [b for b in query.get("status", "").split(",") if b]
        for bucket in buckets:
            if bucket not in ("upcoming", "recurring", "past", "cancelled", "unconfirmed"):
                raise wire.bad_request("status must be one of upcoming, recurring, past, "
                                       "cancelled, unconfirmed", path, now)
        if buckets:
            items = [b for b in items if any(_in_bucket(b, bucket, now) for bucket in buckets)]
        if "attendeeEmail" in query:
            email = query["attendeeEmail"].replace(" ", "+").lower()
            items = [b for b in items if any(a.get("email", "").lower() == email for a in b.attendees)]
        if "attendeeName" in query:
            items = [b for b in items if any(a.get("name") == query["attendeeName"] for a in b.attendees)]
        if "bookingUid" in query:
            items = [b for b in items if b.uid == query["bookingUid"]]
        type_ids = set()
        for key in ("eventTypeId", "eventTypeIds"):
            if key in query:
                type_ids |= {_int_value(v, key, path, now) for v in query[key].split(",") if v}
        if type_ids:
            items = [b for b in items if b.event_type.id in type_ids]
        if "teamId" in query or "teamsIds" in query:
            items = []  # the sandbox host belongs to no team
        for key, attr, compare in (
            ("afterStart", "start", lambda v, bound: v >= bound),
            ("beforeEnd", "end", lambda v, bound: v <= bound),
            ("afterCreatedAt", "created_at", lambda v, bound: v >= bound),
            ("beforeCreatedAt", "created_at", lambda v, bound: v <= bound),
            ("afterUpdatedAt", "updated_at", lambda v, bound: v >= bound),
            ("beforeUpdatedAt", "updated_at", lambda v, bound: v <= bound),
        ):
            if key in query:
                try:
                    bound = parse_instant(query[key], assume_utc=True)
                except ValueError:
                    raise wire.bad_request(f"{key} must be a valid ISO 8601 date string", path, now) from None
                items = [b for b in items if compare(getattr(b, attr), bound)]
        items = _sorted(items, query, buckets)
        page = items[skip: skip + take]
        return page, wire.pagination(len(items), take, skip, len(page))

    # --- slots ------------------------------------------------------------------

    def slots(self, query: dict[str, str], path: str,
              host: Host | None) -> dict[str, list[dict[str, str]]]:
        """``GET /v2/slots`` (REFERENCE §5.8): free starts per day in the requested zone, for
        ``host``'s calendar (without a key, the weekly hours alone)."""
        now = self.clock.now()
        try:
            first = _day_bound(query["start"], end=False)
            last = _day_bound(query["end"], end=True)
        except KeyError as missing:
            raise wire.bad_request(f"{missing.args[0]} must be a valid ISO 8601 date", path, now) from None
        except ValueError:
            raise wire.bad_request("start and end must be valid ISO 8601 dates", path, now) from None
        if "eventTypeId" not in query:
            raise wire.bad_request("eventTypeId or eventTypeSlug with username is required", path, now)
        event_type = self.event_types.get(_int_value(query["eventTypeId"], "eventTypeId", path, now))
        if event_type is None:
            raise wire.not_found(f"Event type with id={query['eventTypeId']} not found", path, now)
        output_zone_name = query.get("timeZone") or "UTC"
        if not _is_zone(output_zone_name):
            raise wire.bad_request("timeZone must be a valid IANA time zone", path, now)
        output_zone = ZoneInfo(output_zone_name)
        length = event_type.length
        if "duration" in query:
            length = _int_value(query["duration"], "duration", path, now)
            if not event_type.allows_length(length):
                raise wire.bad_request("duration is not one of the event type's lengths", path, now)
        span = timedelta(minutes=length)
        earliest = now + timedelta(minutes=event_type.minimum_notice_minutes)
        result: dict[str, list[dict[str, str]]] = {}
        day: date = first.astimezone(self.zone).date() - timedelta(days=1)
        with self.lock:
            busy = [b for b in (self._calendar_of(host) if host is not None else [])
                    if b.status in LIVE and b.uid != query.get("bookingUidToReschedule")]
            while day <= last.astimezone(self.zone).date():
                for start in self.schedule.slot_starts(day, self.zone, span, span):
                    if not (first <= start <= last) or start < earliest:
                        continue
                    # A seated booking of this event type at this start leaves its free seats open.
                    shared = next((b for b in busy if b.seated and b.event_type.id == event_type.id
                                   and b.start == start and b.status == "accepted"), None)
                    if any(b.overlaps(start, start + span) for b in busy if b is not shared):
                        continue
                    if shared is not None and len(shared.attendees) >= (event_type.seats or 0):
                        continue
                    local = start.astimezone(output_zone)
                    entry: dict[str, Any] = {"start": local.isoformat(timespec="milliseconds")}
                    if event_type.seats is not None:
                        taken = len(shared.attendees) if shared is not None else 0
                        entry.update(seatsBooked=taken, seatsRemaining=event_type.seats - taken,
                                     seatsTotal=event_type.seats)
                        if shared is not None:
                            entry["bookingUid"] = shared.uid
                    if query.get("format") == "range":
                        entry["end"] = (start + span).astimezone(output_zone).isoformat(timespec="milliseconds")
                    result.setdefault(local.date().isoformat(), []).append(entry)
                day += timedelta(days=1)
        return result


def _webhook_attendee(attendee: dict[str, Any]) -> dict[str, Any]:
    return {"email": attendee["email"], "name": attendee.get("name", ""), "firstName": "", "lastName": "",
            "timeZone": attendee.get("timeZone", "UTC"), "language": {"locale": "en"}}


def refuse_unknown(body: Any, allowed: set[str], path: str, now: datetime) -> None:
    if not isinstance(body, dict):
        raise wire.bad_request("body must be a JSON object", path, now)
    unknown = sorted(set(body) - allowed)
    if unknown:
        text = ",".join(f"property {k} should not exist" for k in unknown)
        raise wire.bad_request(f"{unknown[0]} property is wrong,{text} ", path, now)


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _in_bucket(booking: SandboxBooking, bucket: str, now: datetime) -> bool:
    # Listing buckets, not statuses (REFERENCE §5.3).
    live = booking.status not in ("cancelled", "rejected")
    if bucket == "upcoming":
        return booking.end >= now and live
    if bucket == "recurring":
        return booking.end >= now and live and booking.recurring_uid is not None
    if bucket == "past":
        return booking.end <= now and live
    if bucket == "cancelled":
        return booking.status in ("cancelled", "rejected")
    if bucket == "unconfirmed":
        return booking.end >= now and booking.status == "pending"
    return False


def _sorted(items: list[SandboxBooking], query: dict[str, str], buckets: list[str]) -> list[SandboxBooking]:
    for key, attr in (("sortStart", "start"), ("sortEnd", "end"), ("sortCreated", "created_at"),
                      ("sortUpdatedAt", "updated_at")):
        if query.get(key) in ("asc", "desc"):
            return sorted(items, key=lambda b: (getattr(b, attr), b.id), reverse=query[key] == "desc")
    descending = len(buckets) == 1 and buckets[0] in ("past", "cancelled")
    return sorted(items, key=lambda b: (b.start, b.id), reverse=descending)


def _int_value(text: str, name: str, path: str, now: datetime) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise wire.bad_request(f"{name} must be a number", path, now) from None


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int | None,
               path: str, now: datetime) -> int:
    if name not in query:
        return default
    value = _int_value(query[name], name, path, now)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise wire.bad_request(f"{name} must be {bound}", path, now)
    return value


def _day_bound(text: str, *, end: bool) -> datetime:
    """Slots' start/end: a date or a midnight time means the whole UTC day (REFERENCE §5.8)."""
    instant = parse_instant(text + ("T00:00:00Z" if len(text) == 10 else ""), assume_utc=True)
    if instant.hour == instant.minute == instant.second == 0 and end:
        instant += timedelta(days=1) - timedelta(seconds=1)
    return instant


def _nth(start: datetime, rule: dict[str, Any], k: int) -> datetime:
    """The k-th occurrence's start of a Recurrence_2024_06_14 rule (0 is ``start``)."""
    step = int(rule.get("interval", 1)) * k
    frequency = rule.get("frequency")
    if frequency == "weekly":
        return start + timedelta(weeks=step)
    months = step * (12 if frequency == "yearly" else 1)
    year, month = divmod(start.month - 1 + months, 12)
    day = min(start.day, 28)  # the sandbox's simplification: a day every month has
    return start.replace(year=start.year + year, month=month + 1, day=day)
