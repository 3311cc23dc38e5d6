"""A normalised Cal.com event → local state, with the CRM told what changed.

Rules (DESIGN §10, REFERENCE §7–§8):
- A booking uid only moves forward: pending → accepted → cancelled | rejected. An
  event that would move it back is recorded as ``stale`` and not applied;
  attendance and MEETING_ENDED apply whenever they arrive.
- An echo — a webhook describing what calsync itself did (its create, reschedule,
  cancel or attendance) — changes nothing and tells the CRM nothing again.
- Cal.com's side wins over an older CRM edit that has not reached it; a CRM edit
  made after Cal.com's change stands and is converged onto the new booking. The
  audit shows both.
- Recording what Cal.com holds never settles a version by itself: only a fresh
  comparison (connector/core/gaps.py) does, so a CRM edit still on its way is never
  marked synced unsent; when a gap is left, a converge is queued.
- A live booking that names an appointment already booked as another uid is a
  duplicate: it is recorded, and converge cancels it.
- Order does not matter (Cal.com does not keep it, REFERENCE §7.6). A reschedule
  whose origin calsync has not seen still lands, and records its predecessor as
  ended, so the origin's late BOOKING_CREATED is stale. An event about a booking
  calsync does not know yet, that it cannot apply alone (a cancel, a no-show, the
  create of a chain's occurrence), is kept ``waiting`` and applied again as soon as
  that booking is recorded, by whichever path records it (``wake_waiting``).
- A booking without calsync's metadata is imported only when it cannot be one of
  calsync's own creates whose answer is still unknown: an attendee's link reschedule
  and a confirmation carry no metadata, so a booking of the same attendee and event
  type waits for that create's outcome (``wake_after_create``) instead of becoming
  a second appointment.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from peewee import Database, fn

from connector import metrics
from connector.clock import Clock
from connector.core import gaps
from connector.jobs import queue, sweeps
from connector.outputs import audit, events
from mappings import bookings
from mappings.db import write_transaction
from mappings.models import Appointment, Booking, EventType, Job, WebhookDelivery, new_id
from webhooks import events as calcom_events
from webhooks import seats as calcom_seats
from webhooks.calcom import APPLY_WEBHOOK
from webhooks.classify import Kind, kind_of
from webhooks.events import CalcomEvent, Trigger

log = logging.getLogger("calsync.webhooks")

ACTOR = "calcom:webhook"
WAITING = "waiting"  # about a booking calsync has not recorded yet; applied again once it has
ENDED = ("cancelled", "rejected")
RESCHEDULE_REQUESTED = "reschedule_requested"  # the host asked the attendee for a new time
RESCHEDULE_TRIGGERS = (Trigger.BOOKING_RESCHEDULED.value, Trigger.BOOKING_REQUESTED.value)
_RANK = {"pending": 0, "awaiting_host": 0, "accepted": 1, "cancelled": 2, "rejected": 2}


def _moves_back(booking: Booking, status: str | None) -> bool:
    return status is not None and _RANK.get(status, 1) < _RANK.get(booking.status, 1)


def wake_waiting(db: Database, account_id: str, recorded: dict[str, str], *, now: datetime) -> int:
    """Queue again the account's deliveries that wait for a booking just recorded
    (``recorded``: uid → its appointment); answers how many (call inside the recording transaction).

    A delivery waits for its own booking, or, a reschedule, for the booking it moved from.
    """
    if not recorded:
        return 0
    waiting = WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.booking_uid,
                                     WebhookDelivery.trigger, WebhookDelivery.raw_body).where(
        (WebhookDelivery.account == account_id) & (WebhookDelivery.outcome == WAITING)
        & (WebhookDelivery.booking_uid.in_(sorted(recorded))
           | WebhookDelivery.trigger.in_(RESCHEDULE_TRIGGERS)))
    jobs: list[dict[str, Any]] = []
    for delivery in waiting:
        awaited = (delivery.booking_uid if delivery.booking_uid in recorded
                   else _moved_from(delivery.trigger, delivery.raw_body))
        if awaited is not None and awaited in recorded:
            jobs.append({"kind": APPLY_WEBHOOK, "account_id": account_id,
                         "payload": {"delivery_id": delivery.id},
                         "serial_key": f"appointment:{recorded[awaited]}"})
    if jobs:
        queue.enqueue_many(db, jobs, now=now)
    return len(jobs)


def awaiting_create(appointment_id: str) -> str:
    """What a delivery waiting for calsync's unanswered create of ``appointment_id`` says it waits for."""
    return f"waits for the outcome of calsync's create for appointment {appointment_id}"


def wake_after_create(db: Database, account_id: str, appointment_id: str, *, now: datetime) -> int:
    """Queue again the deliveries that waited for this appointment's create to be answered."""
    waiting = WebhookDelivery.select(WebhookDelivery.id).where(
        (WebhookDelivery.account == account_id) & (WebhookDelivery.outcome == WAITING)
        & (WebhookDelivery.error == awaiting_create(appointment_id)))
    jobs = [{"kind": APPLY_WEBHOOK, "account_id": account_id, "payload": {"delivery_id": row.id},
             "serial_key": f"appointment:{appointment_id}"} for row in waiting]
    if jobs:
        queue.enqueue_many(db, jobs, now=now)
    return len(jobs)


def _moved_from(trigger: str, raw_body: str) -> str | None:
    """A stored reschedule's predecessor uid (its body was verified and parsed at the door)."""
    if trigger not in RESCHEDULE_TRIGGERS:
        return None
    raw = raw_body.encode()
    return calcom_events.headline(json.loads(raw), raw).reschedule_uid


class ApplyHandler:
    """The worker's handler for ``apply_webhook`` jobs."""

    def __init__(self, db: Database, clock: Clock, booker_url: str = "https://cal.com") -> None:
        self.db, self.clock, self.booker_url = db, clock, booker_url

    def run(self, job: Job) -> None:
        delivery = WebhookDelivery.get_by_id(job.payload["delivery_id"])
        if delivery.processed_at is not None:
            return  # applied already (two processes stored the same body at the same moment)
        raw = delivery.raw_body.encode()
        event = calcom_events.parse(json.loads(raw), raw)
        with write_transaction(self.db):
            applier = Applier(self.db, self.clock.now(), self.booker_url, delivery.account_id)
            outcome = applier.apply(event)
            # A waiting delivery stays unprocessed: wake_waiting or wake_after_create queues it again.
            waiting = outcome == WAITING
            WebhookDelivery.update_by_id(delivery.id, outcome=outcome,
                                         processed_at=None if waiting else self.clock.now(),
                                         error=applier.waiting_for if waiting else None)
        metrics.webhook_deliveries.labels(event.trigger.value, outcome).inc()
        log.info("delivery applied", extra={"action": "webhook.apply", "delivery_id": delivery.id,
                                            "trigger": event.trigger_name, "outcome": outcome})

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        if final:
            delivery = WebhookDelivery.get_by_id(job.payload["delivery_id"])
            WebhookDelivery.update_by_id(delivery.id, outcome="failed", error=str(error)[:1000])
            metrics.webhook_deliveries.labels(calcom_events.Trigger.of(delivery.trigger).value,
                                              "failed").inc()


class Applier:
    """Applies one event inside the caller's transaction; returns the delivery's outcome."""

    def __init__(self, db: Database, now: datetime, booker_url: str, account_id: str,
                 actor: str = ACTOR) -> None:
        self.db, self.now, self.booker_url, self.account_id = db, now, booker_url, account_id
        self.actor = actor
        self.recorded: dict[str, str] = {}  # uid → appointment, of the bookings this apply recorded
        self.answered_creates: set[str] = set()  # appointments whose unanswered create this adopted
        self.waiting_for: str | None = None  # what a waiting event waits for, when not its booking
        self.seat = ""  # the seat of a seated booking the event being applied is about (seats.py)
        # Occurrences of recurring series whose series is to be compared with Cal.com's, because a
        # delivery said too little of it (connector/core/reconcile.py reconcile_series).
        self.series_checks: dict[str, str] = {}  # occurrence uid → why (queue.SERIES_CHECKS)

    def apply(self, event: CalcomEvent) -> str:
        self.waiting_for = None
        outcome = self._apply(event)
        wake_waiting(self.db, self.account_id, self.recorded, now=self.now)
        for appointment_id in sorted(self.answered_creates):
            wake_after_create(self.db, self.account_id, appointment_id, now=self.now)
        for uid, why in sorted(self.series_checks.items()):
            queue.enqueue_series_check(self.db, self.account_id, uid, why, now=self.now)
        self.recorded, self.answered_creates, self.series_checks = {}, set(), {}
        return outcome

    def _apply(self, event: CalcomEvent) -> str:
        if not self._is_seated(event):
            return self._apply_one(event)
        known = [row.seat for row in bookings.seats(self.account_id, event.uid) if row.seat]
        outcomes = []
        for seat, one in calcom_seats.per_seat(event, known):
            self.seat = seat
            try:
                outcomes.append(self._apply_one(one))
            finally:
                self.seat = ""
        if not outcomes:
            return WAITING if event.uid and not known else "ignored"
        return calcom_seats.combined(outcomes)

    def _is_seated(self, event: CalcomEvent) -> bool:
        """About a seated booking: the event says so, calsync holds seats of its booking, or the
        account's event type is seated."""
        if event.seated or event.seat:
            return True
        for uid in (event.uid, event.reschedule_uid):
            if any(row.seat for row in bookings.seats(self.account_id, uid)):
                return True
        if event.event_type_id is None:
            return False
        cached = EventType.of(self.account_id, event.event_type_id)
        return bool(cached is not None and cached.seats_per_slot)

    def _apply_one(self, event: CalcomEvent) -> str:
        """By what the payload says (webhooks/classify.py), not by the trigger's name."""
        kind = kind_of(event)
        if kind is Kind.BOOKED:
            return self._booked(event)
        if kind is Kind.RESCHEDULED:
            return self._rescheduled(event)
        if kind is Kind.MOVED_IN_PLACE:
            return self._moved_in_place(event)
        if kind is Kind.CANCELLED:
            return self._ended_by_calcom(event, "cancelled")
        if kind is Kind.REJECTED:
            return self._ended_by_calcom(event, "rejected")
        if kind is Kind.RESCHEDULE_REQUESTED:
            return self._reschedule_requested(event)
        if kind is Kind.ATTENDANCE:
            return self._attendance(event)
        if kind is Kind.HOST_NO_SHOW:
            return self._host_no_show(event)
        if kind is Kind.MEETING_ENDED:
            return self._meeting_ended(event)
        return "ignored"

    # --- helpers ----------------------------------------------------------------

    def _booking(self, uid: str | None) -> Booking | None:
        return bookings.find(self.account_id, uid, self.seat)

    def _known(self, uid: str | None) -> tuple[Booking, Appointment] | None:
        booking = self._booking(uid)
        return None if booking is None else (booking, Appointment.get_by_id(booking.appointment_id))

    def _follow_calcom(self, appointment: Appointment, **changes: Any) -> None:
        """Cal.com's change becomes the desired state (a new version), settled if nothing else differs."""
        Appointment.update_by_id(appointment.id, desired_version=Appointment.desired_version + 1,
                                 updated_at=self.now, **changes)
        self._settle(appointment.id)

    def _settle(self, appointment_id: str) -> None:
        """Synced if a fresh comparison finds no gap; else pending, with a converge to close it."""
        if not gaps.settle_if_done(appointment_id, self.now):
            Appointment.update_by_id(appointment_id, sync_state="pending", updated_at=self.now)
            queue.enqueue_converge(self.db, appointment_id, self.account_id, now=self.now)

    def _emit(self, appointment_id: str, event_type: str) -> None:
        events.emit_for(self.db, appointment_id, event_type, now=self.now, booker_url=self.booker_url)

    def _audit(self, appointment: Appointment, action: str, before: dict[str, Any],
               after: dict[str, Any]) -> None:
        audit.record(account_id=self.account_id, appointment_id=appointment.id, actor=self.actor,
                     action=action, now=self.now, before=before, after=after)

    def _store_booking(self, appointment_id: str, event: CalcomEvent, **extra: Any) -> None:
        extra.setdefault("rescheduled_from_uid", event.reschedule_uid)
        if self.seat and event.seat_uid:
            extra.setdefault("seat_uid", event.seat_uid)
        bookings.record(self.account_id, appointment_id, event.booked_uid, now=self.now, seat=self.seat,
                        status=event.status or "accepted", start_time=event.start, end_time=event.end,
                        meeting_url=event.meeting_url, location=event.location, raw=event.raw, **extra)
        self.recorded[event.booked_uid] = appointment_id
        if event.series_uid:
            Appointment.update(recurring_booking_uid=event.series_uid).where(
                (Appointment.id == appointment_id) & Appointment.recurring_booking_uid.is_null()).execute()
        elif event.recurring:
            self.series_checks.setdefault(event.booked_uid, "link")  # which series, REST says

    def _family(self, event: CalcomEvent) -> Appointment | None:
        """The appointment following this booking's reschedule chain, when calsync knows the chain
        but not this booking: by the chain's first uid (iCalUID), recorded or an import's name."""
        origin = event.origin_uid
        if origin is None or origin == event.uid:
            return None
        first = self._booking(origin)
        if first is not None:
            return Appointment.get_by_id(first.appointment_id)
        return Appointment.by_external_id(self.account_id, f"calcom:{origin}")

    def _record_predecessor(self, appointment: Appointment, event: CalcomEvent) -> None:
        """The occurrence a reschedule moved away from, recorded as ended if calsync never saw it,
        so its late BOOKING_CREATED is stale (a uid only moves forward, DESIGN §10)."""
        old_uid = event.reschedule_uid
        if old_uid is None or self._booking(old_uid) is not None:
            return
        start, end = event.previous_start or event.start, event.previous_end or event.end
        bookings.record(self.account_id, appointment.id, old_uid, now=self.now, seat=self.seat,
                        status="cancelled", start_time=start, end_time=end, rescheduled_to_uid=event.uid)
        self.recorded[old_uid] = appointment.id

    @staticmethod
    def _live_status(event: CalcomEvent, booking_was_rescheduled: bool) -> str:
        if event.status == "pending":
            return "awaiting_confirmation"
        return "rescheduled" if booking_was_rescheduled else "active"

    # --- a booking made or confirmed -------------------------------------------

    def _booked(self, event: CalcomEvent) -> str:
        if not event.uid or event.start is None or event.end is None:
            return "ignored"
        booking = self._booking(event.uid)
        if booking is None and self._family(event) is not None:
            # An occurrence of a chain calsync follows that it has not recorded: its place in the
            # chain (older, or a successor whose reschedule is on its way) comes with the reschedule.
            return WAITING
        if booking is not None:
            if _moves_back(booking, event.status):
                return "stale"
            appointment = Appointment.get_by_id(booking.appointment_id)
            if booking.status == event.status:
                return "echo"  # calsync's own create, or a repeat: the mapping is confirmed
            self._store_booking(appointment.id, event)
            if appointment.booking_uid == event.uid and appointment.status == "awaiting_confirmation":
                status = self._live_status(event, bool(booking.rescheduled_from_uid))
                Appointment.update_by_id(appointment.id, status=status,
                                         meeting_url=event.meeting_url or appointment.meeting_url,
                                         ics_sequence=Appointment.ics_sequence + 1,  # TENTATIVE → CONFIRMED
                                         updated_at=self.now)
                self._audit(appointment, "booking.confirmed", {"status": appointment.status},
                            {"status": status})
                self._emit(appointment.id, events.CONFIRMED)
            return "applied"
        owner = self._owner(event)
        if owner is not None:
            return self._adopt(owner, event)
        return self._import_unless_unanswered(event)

    def _owner(self, event: CalcomEvent) -> Appointment | None:
        """The account's appointment the booking's metadata names (a booking calsync made)."""
        if event.appointment_id is None:
            return None
        return Appointment.get_or_none((Appointment.id == event.appointment_id)
                                       & (Appointment.account == self.account_id))

    def _unanswered_create(self, event: CalcomEvent) -> Appointment | None:
        """calsync's own create, still unanswered, whose booking this could be: same attendee, same
        event type. A booking without metadata cannot say it is not (REFERENCE §8)."""
        emails = sorted({attendee.email.lower() for attendee in event.attendees if attendee.email})
        if not emails:
            return None
        condition = ((Appointment.account == self.account_id)
                     & Appointment.create_attempted_at.is_null(False)
                     & Appointment.booking_uid.is_null()
                     & fn.LOWER(Appointment.attendee_email).in_(emails))
        if event.event_type_id:
            condition &= Appointment.event_type_id == event.event_type_id
        found: Appointment | None = (Appointment.select().where(condition)
                                     .order_by(Appointment.create_attempted_at).first())
        return found

    def _import_unless_unanswered(self, event: CalcomEvent) -> str:
        """Import a booking made in Cal.com, unless it may be calsync's own whose answer is lost:
        then it waits for that create's outcome, which records it (or not) first."""
        unanswered = self._unanswered_create(event)
        if unanswered is not None:
            self.waiting_for = awaiting_create(unanswered.id)
            return WAITING
        return self._import(event)

    def _adopt(self, appointment: Appointment, event: CalcomEvent) -> str:
        """calsync's own create whose answer was lost: the webhook brings its uid first.

        What Cal.com holds is recorded; whether the appointment is synced is for a fresh
        comparison to say, since the CRM may have edited it while the answer was lost.
        """
        if appointment.booking_uid not in (None, event.uid):
            if event.recurring:
                return self._sibling(appointment, event)
            return self._duplicate(appointment, event)
        if event.recurring and appointment.create_attempted_at is not None and not (
                event.series_uid and event.start == appointment.start_time):
            # One of the occurrences of the series calsync's create asked for, ahead of its answer:
            # the answer says which is the appointment's own (the first); the others follow it.
            self.waiting_for = awaiting_create(appointment.id)
            return WAITING
        if appointment.create_attempted_at is not None:
            self.answered_creates.add(appointment.id)
        self._store_booking(appointment.id, event)
        status = self._live_status(event, False)
        # The length Cal.com booked, where the CRM left it to the event type: a later edit of
        # another field then keeps the end (a length the CRM asked for stays, converge's to close).
        length = appointment.duration_minutes or event.length_minutes
        seat = {"seat_uid": event.seat_uid} if self.seat and event.seat_uid else {}
        Appointment.update_by_id(appointment.id, booking_uid=event.uid, status=status,
                                 meeting_url=event.meeting_url, location=event.location,
                                 end_time=event.end, duration_minutes=length,
                                 create_attempted_at=None, last_error=None, updated_at=self.now,
                                 **seat)
        self._audit(appointment, "booking.adopted", {"booking_uid": None},
                    {"booking_uid": event.uid, "status": status})
        self._settle(appointment.id)
        self._emit(appointment.id, events.SYNCED)
        return "applied"

    def _sibling(self, appointment: Appointment, event: CalcomEvent) -> str:
        """Another occurrence of the series calsync booked for ``appointment`` (every occurrence
        carries the create's metadata): an appointment of its own in the same series (DESIGN §10),
        with the CRM's description of the first. A delivery does not name the series: it waits
        while Cal.com's REST answer says whether this is one (reconcile_series), not a duplicate."""
        if not event.series_uid:
            self.series_checks.setdefault(event.booked_uid, "link")
            return WAITING
        if event.series_uid != appointment.recurring_booking_uid:
            return self._duplicate(appointment, event)
        return self._import(event, like=appointment)

    def _duplicate(self, appointment: Appointment, event: CalcomEvent) -> str:
        """A second booking naming an appointment that is booked as another uid: recorded, so
        converge cancels it (gaps.duplicates)."""
        self._store_booking(appointment.id, event)
        if event.status in gaps.LIVE:
            self._audit(appointment, "booking.duplicate_found", {"booking_uid": appointment.booking_uid},
                        {"duplicate_booking_uid": event.uid, "status": event.status})
            self._settle(appointment.id)
        return "applied"

    def _import(self, event: CalcomEvent, like: Appointment | None = None) -> str:
        """A booking made in Cal.com (a public page): a new appointment, source calcom, named after
        the first booking of its chain whatever order the chain's deliveries came in. ``like``: the
        appointment whose series this occurrence belongs to, whose CRM fields it takes."""
        attendee = event.attendees[0] if event.attendees else None
        if attendee is None:
            return "ignored"
        minutes = event.length_minutes
        name = f"calcom:{event.origin_uid or event.uid}"
        if self.seat:  # one booking, several attendees: a name per seat
            name += ":" + hashlib.blake2b(self.seat.encode(), digest_size=6).hexdigest()
        described: dict[str, Any] = {} if like is None else {
            "title": like.title, "description": like.description, "label": like.label,
            "business_name": like.business_name, "call_type": like.call_type,
            "attendee_phone": like.attendee_phone, "metadata": dict(like.metadata or {})}
        appointment = Appointment.create(
            id=new_id("apt"), account=self.account_id,
            external_id=name, seat_uid=event.seat_uid if self.seat else None,
            recurring_booking_uid=event.series_uid,
            source="calcom", **{"title": event.title or "Cal.com booking", **described},
            attendee_name=(attendee.name or attendee.email)[:calcom_events.NAME_LENGTH],
            attendee_email=attendee.email, attendee_time_zone=attendee.time_zone or "UTC",
            event_type_id=event.event_type_id or 0, start_time=event.start, end_time=event.end,
            duration_minutes=minutes, booking_uid=event.uid, meeting_url=event.meeting_url,
            location=event.location, status=self._live_status(event, bool(event.reschedule_uid)),
            sync_state="synced",
            desired_version=1, synced_version=1, created_at=self.now, updated_at=self.now)
        self._store_booking(appointment.id, event)
        self._audit(appointment, "appointment.created", {}, {"booking_uid": event.uid,
                                                             "start_time": event.start})
        self._emit(appointment.id, events.CREATED)
        return "applied"

    # --- a reschedule made in Cal.com ------------------------------------------

    def _rescheduled(self, event: CalcomEvent) -> str:
        if not event.uid or event.start is None or event.end is None:
            return "ignored"
        known = self._booking(event.uid)
        if known is not None:
            # The new uid is in the chain already (calsync made this reschedule, or a later hop
            # came first): the old one is an ended occurrence, recorded if it was never seen.
            appointment = Appointment.get_by_id(known.appointment_id)
            self._record_predecessor(appointment, event)
            outcome = "echo"
            if known.rescheduled_from_uid is None and event.reschedule_uid:
                # Its confirmation came first and said nothing of where it came from: now it does.
                Booking.update_by_id(known.id, rescheduled_from_uid=event.reschedule_uid,
                                     updated_at=self.now)
                if appointment.booking_uid == known.uid and appointment.status == "active":
                    Appointment.update_by_id(appointment.id, status="rescheduled",
                                             updated_at=self.now)
                outcome = "applied"
            if event.status and event.status != known.status and not _moves_back(known, event.status):
                # Its status moved on since (a confirmation, a decline, a later cancel).
                moved = (self._ended_by_calcom(event, event.status) if event.status in ENDED
                         else self._booked(event))
                outcome = "applied" if "applied" in (moved, outcome) else moved
            return outcome
        old = self._booking(event.reschedule_uid)
        if old is None:
            return self._rescheduled_from_unknown(event)
        appointment = Appointment.get_by_id(old.appointment_id)
        if old.rescheduled_to_uid and old.rescheduled_to_uid != event.uid:
            return "stale"  # the old uid already moved elsewhere
        if appointment.booking_uid != old.uid:
            return "stale"
        return self._move(appointment, old, event)

    def _rescheduled_from_unknown(self, event: CalcomEvent) -> str:
        """A reschedule whose predecessor calsync never saw. A hop of a chain calsync follows, ahead
        of the hop before it: it waits for that one. Else calsync's own booking whose webhooks
        outran its answers (adopted, at Cal.com's new time), or a chain made wholly in Cal.com
        (imported); either way the predecessor is recorded as ended, so its late create is stale."""
        if self._family(event) is not None:
            return WAITING
        owner = self._owner(event)
        if owner is not None and owner.booking_uid is not None:
            return self._duplicate(owner, event)
        if owner is not None:
            outcome = self._adopt(owner, event)
            self._follow_calcom(owner, start_time=event.start, end_time=event.end,
                                duration_minutes=event.length_minutes,
                                status=self._live_status(event, True))
            self._record_predecessor(owner, event)
            return outcome
        outcome = self._import_unless_unanswered(event)
        imported = self._booking(event.uid)
        if imported is not None:
            self._record_predecessor(Appointment.get_by_id(imported.appointment_id), event)
        return outcome

    def _move(self, appointment: Appointment, old: Booking, event: CalcomEvent) -> str:
        """The appointment's current booking ``old`` was rescheduled in Cal.com to ``event``'s."""
        Booking.update_by_id(old.id, status="cancelled", rescheduled_to_uid=event.uid,
                             updated_at=self.now)
        self._store_booking(appointment.id, event, rescheduled_from_uid=old.uid)
        status = self._live_status(event, True)
        observed: dict[str, Any] = {"booking_uid": event.uid, "status": status,
                                    "meeting_url": event.meeting_url, "location": event.location}
        if self.seat:  # a seat that moved keeps its uid, or got a new one in a new booking
            observed["seat_uid"] = event.seat_uid
        crm_edit_waiting = appointment.synced_version < appointment.desired_version
        crm_is_later = crm_edit_waiting and event.sent_at is not None and appointment.updated_at > event.sent_at
        before = {"booking_uid": old.uid, "start_time": appointment.start_time}
        if crm_is_later:
            # The CRM's edit came after the attendee's move: it stands, and converge moves the
            # new booking to it.
            Appointment.update_by_id(appointment.id, ics_sequence=Appointment.ics_sequence + 1,
                                     updated_at=self.now, **observed)
            self._audit(appointment, "booking.rescheduled_in_calcom", before,
                        {**observed, "start_time": event.start, "note": "a later CRM edit stands"})
            queue.enqueue_converge(self.db, appointment.id, self.account_id, now=self.now)
        else:
            self._follow_calcom(appointment, start_time=event.start, end_time=event.end,
                                duration_minutes=event.length_minutes,
                                attendance="unknown", desired_attendance="unknown",
                                ics_sequence=Appointment.ics_sequence + 1, reschedule_attempted_at=None,
                                **observed)
            self._audit(appointment, "booking.rescheduled_in_calcom", before,
                        {**observed, "start_time": event.start})
        self._emit(appointment.id, events.RESCHEDULED)
        return "applied"

    def _moved_in_place(self, event: CalcomEvent) -> str:
        """The host moved the whole seated booking: this seat's appointment follows, same uid."""
        known = self._known(event.uid)
        if known is None:
            return WAITING
        booking, appointment = known
        if appointment.booking_uid != booking.uid or event.start is None or event.end is None:
            return "stale"
        if (booking.start_time, booking.end_time) == (event.start, event.end):
            return "echo"
        Booking.update_by_id(booking.id, start_time=event.start, end_time=event.end, raw=event.raw,
                             updated_at=self.now)
        before = {"start_time": appointment.start_time}
        self._follow_calcom(appointment, start_time=event.start, end_time=event.end,
                            duration_minutes=event.length_minutes, attendance="unknown",
                            desired_attendance="unknown", ics_sequence=Appointment.ics_sequence + 1,
                            status="rescheduled")
        self._audit(appointment, "booking.rescheduled_in_calcom", before,
                    {"start_time": event.start, "booking_uid": booking.uid, "note": "the host moved the group"})
        self._emit(appointment.id, events.RESCHEDULED)
        return "applied"

    def _reschedule_requested(self, event: CalcomEvent) -> str:
        """The host asked the attendee to pick a new time: Cal.com cancelled the booking, and the
        attendee's new booking will name it (``rescheduleUid``). Not a cancellation: the
        appointment waits for that time (RESCHEDULE_REQUESTED) and then follows it (``_move``)."""
        known = self._known(event.uid)
        if known is None:
            return WAITING if event.uid else "ignored"
        booking, appointment = known
        if appointment.booking_uid != booking.uid or booking.rescheduled_to_uid:
            return "stale"  # an old occurrence, or already rebooked
        if appointment.status == RESCHEDULE_REQUESTED:
            return "echo"
        if appointment.status in ENDED:
            return "stale"
        Booking.update_by_id(booking.id, status="cancelled", raw=event.raw, updated_at=self.now)
        Appointment.update_by_id(appointment.id, status=RESCHEDULE_REQUESTED,
                                 cancellation_reason=event.cancellation_reason,
                                 ics_sequence=Appointment.ics_sequence + 1, updated_at=self.now)
        self._settle(appointment.id)
        self._audit(appointment, "booking.reschedule_requested", {"status": appointment.status},
                    {"status": RESCHEDULE_REQUESTED, "reason": event.cancellation_reason,
                     "by": event.cancelled_by_email})
        self._emit(appointment.id, events.RESCHEDULE_REQUESTED)
        return "applied"

    # --- cancelled or declined in Cal.com --------------------------------------

    def _ended_by_calcom(self, event: CalcomEvent, status: str) -> str:
        known = self._known(event.uid)
        if known is None:
            return WAITING if event.uid else "ignored"
        booking, appointment = known
        if appointment.booking_uid != booking.uid or booking.rescheduled_to_uid:
            return "stale"  # an old occurrence
        if appointment.status in ENDED:
            return "echo" if appointment.status == status else "stale"  # ended already, this way or not
        # Applied even when the booking's row says so already (a converge answer recorded it):
        # what counts is that the appointment does not.
        Booking.update_by_id(booking.id, status=status, raw=event.raw, updated_at=self.now)
        who = self._canceller(appointment, event.cancelled_by_email)
        changes: dict[str, Any] = {"status": status, "ics_sequence": Appointment.ics_sequence + 1}
        if status == "cancelled":
            changes.update(desired_status="cancelled", cancellation_reason=event.cancellation_reason,
                           cancelled_by=who, cancelled_by_email=event.cancelled_by_email)
        else:
            changes.update(last_error=f"the host declined: {event.rejection_reason or 'no reason given'}")
        self._follow_calcom(appointment, **changes)
        self._audit(appointment, f"booking.{status}_in_calcom", {"status": appointment.status},
                    {"status": status, "reason": event.cancellation_reason or event.rejection_reason,
                     "cancelled_by": who if status == "cancelled" else None})
        self._emit(appointment.id, events.CANCELLED if status == "cancelled" else events.DECLINED)
        if status == "cancelled" and not event.series_uid and (
                event.recurring or appointment.recurring_booking_uid):
            # An occurrence's cancel may have ended the rest of its series with it, unannounced.
            self.series_checks[booking.uid] = "compare"
        return "applied"

    @staticmethod
    def _canceller(appointment: Appointment, email: str | None) -> str:
        if email is None:
            return "system"
        return "attendee" if email.lower() == appointment.attendee_email.lower() else "host"

    # --- attendance and the meeting's end ----------------------------------------

    def _attendance(self, event: CalcomEvent) -> str:
        known = self._known(event.uid)
        if known is None:
            return WAITING if event.uid else "ignored"
        booking, appointment = known
        if appointment.booking_uid != booking.uid:
            return "stale"  # attendance of an occurrence the appointment has moved on from
        # A seat's event names its attendee alone (seats.py); else the primary attendee's (DESIGN §10).
        mine = list(event.attendees) if self.seat else [
            a for a in event.attendees if a.email.lower() == appointment.attendee_email.lower()]
        if not mine or mine[0].no_show is None:
            return "ignored"
        attendance = "no_show" if mine[0].no_show else "attended"
        if appointment.attendance == attendance:
            return "echo"
        self._follow_calcom(appointment, attendance=attendance, desired_attendance=attendance)
        self._audit(appointment, "attendance.changed_in_calcom", {"attendance": appointment.attendance},
                    {"attendance": attendance})
        self._emit(appointment.id, events.ATTENDANCE)
        return "applied"

    def _host_no_show(self, event: CalcomEvent) -> str:
        known = self._known(event.uid)
        if known is None:
            return WAITING if event.uid else "ignored"
        booking, appointment = known
        if appointment.booking_uid != booking.uid:
            return "stale"
        raw = dict(booking.raw or {})
        if raw.get("absentHost") is True:
            return "echo"
        raw["absentHost"] = True
        Booking.update_by_id(booking.id, raw=raw, updated_at=self.now)
        self._audit(appointment, "attendance.host_no_show", {}, {"host_no_show": True})
        self._emit(appointment.id, events.ATTENDANCE)
        return "applied"

    def _meeting_ended(self, event: CalcomEvent) -> str:
        known = self._known(event.uid)
        if known is None:
            return WAITING if event.uid else "ignored"
        booking, appointment = known
        if appointment.status == "completed":
            return "echo"
        if appointment.booking_uid != booking.uid or not sweeps.complete(
                self.db, appointment, self.now, self.booker_url, actor=self.actor):
            return "stale"  # a snapshot of an old occurrence, or one cancelled since (REFERENCE §7.6)
        return "applied"


