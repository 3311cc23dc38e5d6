"""The reconciler: finds where Cal.com and calsync disagree, and repairs calsync's side.

Cal.com sends each webhook once and never retries (REFERENCE §7.6), so this is
what keeps calsync right when one is lost (DESIGN §8, last bullet). Two passes:

- incremental: bookings changed since the account's checkpoint
  (``afterUpdatedAt`` + ``sortUpdatedAt=asc``), the checkpoint saved with each page;
- full: every booking in a window around now (default now − 7 days … now + 90
  days); it also finds the account's appointments whose booking vanished, and
  attendance changes, which do not move ``updatedAt``.

Each Cal.com booking that differs from what calsync recorded becomes the event
Cal.com's webhook would have carried, applied by the same ``Applier`` as a
webhook (so the ordering, echo and crossing rules are the same), with the
actor ``reconciler``; the CRM hears of each repair as it would have. Pages are
streamed, and each page's lookups are a fixed number of queries whatever its
size: queries grow with pages and repairs, not with bookings.

An appointment calsync is still converging (an edit not yet synced, a create or
reschedule in flight) is left to its job; the next pass sees it settled — so the
incremental checkpoint never moves past a booking it left: it stops at the
earliest such booking's ``updatedAt``, and the next pass reads it again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import Database, IntegrityError

from connector import errors, metrics
from connector.calcom.client import BookingFilters, BookingPage, CalcomClient
from connector.calcom.clients import CalcomClients
from connector.clock import Clock
from connector.core import seats
from connector.jobs import queue
from connector.jobs.sweeps import complete_ended, sweep_stranded
from connector.outputs import audit, events
from mappings import bookings as booking_rows
from mappings.db import write_transaction
from mappings.from_calcom import CalcomBooking
from mappings.models import Account, Appointment, Booking, Job, ReconcileCheckpoint, ReconcileRun
from webhooks import events as calcom_events
from webhooks.apply import Applier
from webhooks.events import Trigger
from webhooks.events import from_booking as observed

log = logging.getLogger("calsync.reconcile")

ACTOR = "reconciler"
LIVE = ("accepted", "pending", "awaiting_host")
LIVE_APPOINTMENT = ("active", "rescheduled", "awaiting_confirmation")
# A run whose heartbeat is older than this was cut off (a crash, a killed process).
ABANDONED_AFTER = timedelta(minutes=10)
MAX_CHAIN = 50  # reschedules of one booking followed in one pass; the next pass goes on


@dataclass(frozen=True)
class ReconcileOptions:
    page_size: int = 100
    window_before: timedelta = timedelta(days=7)
    window_after: timedelta = timedelta(days=90)


@dataclass
class Progress:
    pages: int = 0
    bookings_seen: int = 0
    total: int | None = None  # Cal.com's totalItems for the pass, once the first page is in
    repairs: Counter = field(default_factory=Counter)
    # The earliest updatedAt of a booking left to its converging appointment: the checkpoint's bound.
    held_at: datetime | None = None


@dataclass(frozen=True)
class _Drift:
    kind: str
    event: calcom_events.CalcomEvent


class Reconciler:
    def __init__(self, db: Database, clock: Clock, clients: CalcomClients, booker_url: str,
                 options: ReconcileOptions | None = None) -> None:
        self.db, self.clock, self.clients, self.booker_url = db, clock, clients, booker_url
        self.options = options or ReconcileOptions()

    def run(self, account_id: str, *, full: bool, trigger: str,
            progress: Callable[[Progress], None] | None = None) -> ReconcileRun:
        """One pass; returns its stored run. Raises ``errors.Conflict`` if one is running."""
        account = Account.find_by_id(account_id)
        if account is None:
            raise errors.NotFound(f"There is no account {account_id}.")
        run = self._start(account_id, "full" if full else "incremental", trigger)
        started = time.monotonic()
        state = Progress()
        try:
            # Patient: the pass spends the account's allowance like any other caller, and waits
            # for it rather than giving up half way.
            client = self.clients.for_account(account, patient=True)
            now = self.clock.now()
            if full:
                seen: set[str] = set()
                filters = BookingFilters(after_start=now - self.options.window_before,
                                         before_end=now + self.options.window_after,
                                         sort_start="asc", take=self.options.page_size)
                for page in client.iter_bookings(filters):
                    self._page(run, account_id, client, page, state)
                    seen.update(booking.uid for booking in page.bookings)
                    self._report(progress, state)
                self._vanished(account_id, client, seen, now, state)
            else:
                checkpoint = ReconcileCheckpoint.get_or_none(ReconcileCheckpoint.account == account_id)
                since = checkpoint.updated_after if checkpoint else now - self.options.window_before
                filters = BookingFilters(after_updated_at=since, sort_updated_at="asc",
                                         take=self.options.page_size)
                for page in client.iter_bookings(filters):
                    self._page(run, account_id, client, page, state, checkpoint_from=since)
                    self._report(progress, state)
            now = self.clock.now()
            with write_transaction(self.db):
                state.repairs["completed"] += complete_ended(self.db, now, self.booker_url,
                                                             account_id=account_id, actor=ACTOR)
                state.repairs["stranded"] += sweep_stranded(self.db, now, account_id=account_id)
        except Exception as failure:
            self._finish(run, state, started, "failed", error=str(failure)[:1000])
            raise
        return self._finish(run, state, started, "done")

    def reconcile_series(self, account_id: str, uid: str, why: str = "compare") -> int:
        """The recurring series ``uid`` (one of its occurrences, or the series itself) made to
        match Cal.com, occurrence by occurrence, as a pass would; answers the repairs.

        Cal.com says little of a series in its deliveries: each occurrence's BOOKING_CREATED
        says it recurs but not which series, and "cancel this and all remaining" sends one
        BOOKING_CANCELLED, naming one occurrence — or, from an occurrence's own cancel link,
        nothing of the others (REFERENCE §5.5, §7.4). So a delivery about an occurrence queues
        this (``queue.enqueue_series_check``), and the series as Cal.com holds it decides."""
        account = Account.find_by_id(account_id)
        if account is None or (why == "link" and _linked(account_id, uid)):
            return 0
        client = self.clients.for_account(account, patient=True)
        named = self._get(client, uid)
        series_uid = named.recurring_booking_uid if named is not None else None
        if series_uid is None:
            return 0
        occurrences = tuple(client.get_series(series_uid))
        drifts, skipped = self._drifts(account_id, client, occurrences)
        applier = Applier(self.db, self.clock.now(), self.booker_url, account_id, actor=ACTOR)
        with write_transaction(self.db):
            repairs = sum(applier.apply(drift.event) == "applied" for drift in drifts)
            _link_series(account_id, occurrences, self.clock.now())
        if skipped:
            log.info("series occurrences left to their jobs", extra={
                "action": "reconcile.series_skipped", "account_id": account_id, "skipped": len(skipped)})
        return repairs

    # --- the run's row ----------------------------------------------------------

    def _start(self, account_id: str, mode: str, trigger: str) -> ReconcileRun:
        now = self.clock.now()
        with write_transaction(self.db):
            ReconcileRun.update(status="abandoned", finished_at=now,
                                error="cut off: no progress for "
                                      f"{int(ABANDONED_AFTER.total_seconds() // 60)} minutes").where(
                (ReconcileRun.account == account_id) & (ReconcileRun.status == "running")
                & (ReconcileRun.heartbeat_at < now - ABANDONED_AFTER)).execute()
            try:
                with self.db.atomic():
                    return ReconcileRun.create(account=account_id, mode=mode, trigger=trigger,
                                               started_at=now, heartbeat_at=now)
            except IntegrityError:
                running = ReconcileRun.get((ReconcileRun.account == account_id)
                                           & (ReconcileRun.status == "running"))
        raise errors.Conflict(f"A reconciliation of this account is already running "
                              f"(run {running.id}, started {running.started_at.isoformat()}).")

    def _finish(self, run: ReconcileRun, state: Progress, started: float, status: str,
                error: str | None = None) -> ReconcileRun:
        figures = self._figures(state)
        figures.update(status=status, error=error, finished_at=self.clock.now(),
                       duration_ms=int((time.monotonic() - started) * 1000))
        with write_transaction(self.db):
            ReconcileRun.update_by_id(run.id, **figures)
        run = ReconcileRun.get_by_id(run.id)
        metrics.reconcile_runs.labels(run.mode, status).inc()
        for kind, count in (run.repairs or {}).items():
            metrics.reconcile_repairs.labels(kind).inc(count)
        log.info("reconciled", extra={"action": "reconcile.finished", "account_id": run.account_id,
                                      "mode": run.mode, "status": status, "pages": run.pages,
                                      "bookings_seen": run.bookings_seen, "repairs": run.repairs,
                                      "duration_ms": run.duration_ms})
        return run

    def _figures(self, state: Progress) -> dict:
        return {"pages": state.pages, "bookings_seen": state.bookings_seen,
                "repairs": {kind: count for kind, count in sorted(state.repairs.items()) if count},
                "heartbeat_at": self.clock.now()}

    @staticmethod
    def _report(progress: Callable[[Progress], None] | None, state: Progress) -> None:
        if progress is not None:
            progress(state)

    # --- pages --------------------------------------------------------------------

    def _page(self, run: ReconcileRun, account_id: str, client: CalcomClient, page: BookingPage,
              state: Progress, checkpoint_from: datetime | None = None) -> None:
        state.total = page.total_items if state.total is None else state.total
        drifts, skipped = self._drifts(account_id, client, page.bookings)
        if checkpoint_from is not None and skipped:
            earliest = min(booking.updated_at or checkpoint_from for booking in skipped)
            state.held_at = min(earliest, state.held_at or earliest)
            log.info("checkpoint held", extra={"action": "reconcile.checkpoint_held",
                                               "account_id": account_id, "skipped": len(skipped),
                                               "held_at": state.held_at.isoformat()})
        now = self.clock.now()
        applier = Applier(self.db, now, self.booker_url, account_id, actor=ACTOR)
        with write_transaction(self.db):
            for drift in drifts:
                if applier.apply(drift.event) == "applied":
                    state.repairs[drift.kind] += 1
            _link_series(account_id, page.bookings, now)
            state.pages += 1
            state.bookings_seen += len(page.bookings)
            if checkpoint_from is not None:
                self._save_checkpoint(account_id, page, checkpoint_from, now, state.held_at)
            ReconcileRun.update_by_id(run.id, **self._figures(state))

    @staticmethod
    def _save_checkpoint(account_id: str, page: BookingPage, since: datetime, now: datetime,
                         held_at: datetime | None) -> None:
        stamps = [booking.updated_at for booking in page.bookings if booking.updated_at is not None]
        if not stamps:
            return
        latest = max(max(stamps), since)
        if held_at is not None:
            latest = max(min(latest, held_at), since)  # `afterUpdatedAt` includes it: read again
        saved = ReconcileCheckpoint.update(updated_after=latest, saved_at=now).where(
            (ReconcileCheckpoint.account == account_id)
            & (ReconcileCheckpoint.updated_after <= latest)).execute()
        if not saved and not ReconcileCheckpoint.select().where(
                ReconcileCheckpoint.account == account_id).exists():
            ReconcileCheckpoint.create(account=account_id, updated_after=latest, saved_at=now)

    # --- what differs ---------------------------------------------------------------

    def _drifts(self, account_id: str, client: CalcomClient,
                bookings: tuple[CalcomBooking, ...]) -> tuple[list[_Drift], list[CalcomBooking]]:
        """The page's repairs, and the bookings left to an appointment still converging."""
        uids = {uid for booking in bookings for uid in
                (booking.uid, booking.rescheduled_from_uid, booking.rescheduled_to_uid) if uid}
        rows = booking_rows.by_seat(account_id, uids)
        known: dict[tuple[str, str], tuple[Booking, Appointment]] = {
            key: (row, row.appointment) for key, row in rows.items()}
        # A seated booking is looked at seat by seat (connector/core/seats.py), the seats it has and the
        # seats calsync holds in it that it no longer has.
        views = _seat_views(bookings, set(rows))
        wanted = {view.appointment_id for view in views
                  if _key(view) not in known and view.appointment_id}
        owners = {row.id for row in Appointment.select(Appointment.id).where(
            Appointment.id.in_(list(wanted)) & (Appointment.account == account_id))} if wanted else set()
        # Reschedule chains first: each hop becomes its own event, applied in order, and the
        # bookings of a chain are not looked at again on their own. A seat that left for another
        # booking is such a hop too.
        in_page = {_key(view): view for view in views}
        drifts: list[_Drift] = []
        skipped: list[CalcomBooking] = []
        claimed: set[tuple[str, str]] = set()
        for view in views:
            mine = known.get(_key(view))
            if mine is None or _in_flight(mine[1]):
                continue  # an appointment in flight is skipped below, in _drift_of
            if view.seat and not view.attendees and mine[0].status in LIVE:
                moved = self._moved_seat(view, mine[1], in_page, claimed, client)
                if moved is not None:
                    drifts.append(_Drift("reschedule", observed(moved, Trigger.BOOKING_RESCHEDULED,
                                                              reschedule_uid=view.uid)))
                    claimed.update({_key(moved), _key(view)})
                continue
            if not view.was_rescheduled or mine[0].rescheduled_to_uid == view.rescheduled_to_uid:
                continue
            for previous_uid, successor in self._chain(view, known, in_page, client):
                drifts.append(_Drift("reschedule", observed(successor, Trigger.BOOKING_RESCHEDULED,
                                                          reschedule_uid=previous_uid)))
                claimed.add(_key(successor))
            claimed.add(_key(view))
        for view in views:
            if _key(view) not in claimed:
                drift = self._drift_of(view, known, owners, skipped)
                if drift is not None:
                    drifts.append(drift)
        return drifts, skipped

    def _moved_seat(self, left: CalcomBooking, appointment: Appointment,
                    in_page: dict[tuple[str, str], CalcomBooking], claimed: set[tuple[str, str]],
                    client: CalcomClient) -> CalcomBooking | None:
        """Where a seat that left its booking went: a live booking of the page holding the same
        attendee at another time, or one Cal.com finds (seats.find_moved_seat); None: it left."""
        for key, view in in_page.items():
            if (key[1] == left.seat and view.uid != left.uid and view.attendees and key not in claimed
                    and view.status in LIVE and view.event_type_id == left.event_type_id):
                return view
        return seats.find_moved_seat(client, appointment)

    def _chain(self, booking: CalcomBooking, known: dict, in_page: dict[tuple[str, str], CalcomBooking],
               client: CalcomClient) -> list[tuple[str, CalcomBooking]]:
        """The hops from ``booking`` to the end of its reschedule chain that calsync has not seen."""
        hops: list[tuple[str, CalcomBooking]] = []
        current = booking
        while current.was_rescheduled and len(hops) < MAX_CHAIN:
            next_uid = current.rescheduled_to_uid
            if (not next_uid or (next_uid, booking.seat) in known
                    or any(next_uid == hop.uid for _, hop in hops)):
                break
            successor = in_page.get((next_uid, booking.seat)) or self._get(client, next_uid)
            if successor is not None and booking.seat:
                successor = successor.seat_view(booking.seat)
            if successor is None:
                break
            hops.append((current.uid, successor))
            current = successor
        return hops

    def _drift_of(self, booking: CalcomBooking, known: dict[tuple[str, str], tuple[Booking, Appointment]],
                  owners: set[str], skipped: list[CalcomBooking]) -> _Drift | None:
        mine = known.get(_key(booking))
        if mine is None:
            return self._unknown(booking, known, owners, skipped)
        local, appointment = mine
        if _in_flight(appointment):
            skipped.append(booking)
            return None
        if booking.was_rescheduled:
            return None
        if booking.status in ("cancelled", "rejected"):
            if local.status in ("cancelled", "rejected"):
                return None
            trigger = Trigger.BOOKING_CANCELLED if booking.status == "cancelled" else Trigger.BOOKING_REJECTED
            ended = observed(booking, trigger)
            return _Drift("reschedule_requested" if ended.reschedule_requested else booking.status, ended)
        if booking.status == "accepted" and local.status in ("pending", "awaiting_host"):
            return _Drift("confirmed", observed(booking, Trigger.BOOKING_CREATED))
        if appointment.booking_uid != booking.uid:
            return None
        if booking.seat and (local.start_time, local.end_time) != (booking.start, booking.end):
            # The host moved the whole seated booking: same uid, new times (webhooks/seats.py).
            return _Drift("reschedule", observed(booking, Trigger.BOOKING_RESCHEDULED,
                                               reschedule_uid=booking.uid))
        attendance = _attendance_of(booking, appointment)
        if attendance is not None and attendance != appointment.attendance \
                and appointment.desired_attendance == appointment.attendance:
            return _Drift("attendance", observed(booking, Trigger.BOOKING_NO_SHOW_UPDATED))
        if booking.absent_host and not (local.raw or {}).get("absentHost"):
            return _Drift("host_no_show", observed(booking, Trigger.AFTER_HOSTS_CAL_VIDEO_NO_SHOW))
        return None

    def _unknown(self, booking: CalcomBooking, known: dict[tuple[str, str], tuple[Booking, Appointment]],
                 owners: set[str], skipped: list[CalcomBooking]) -> _Drift | None:
        if booking.status not in LIVE:
            return None  # a booking calsync never knew that is already over: nothing to mirror
        trigger = Trigger.BOOKING_REQUESTED if booking.status == "pending" else Trigger.BOOKING_CREATED
        previous = known.get((booking.rescheduled_from_uid or "", booking.seat))
        if previous is not None:
            if _in_flight(previous[1]):
                skipped.append(booking)
                return None
            return _Drift("reschedule", observed(booking, Trigger.BOOKING_RESCHEDULED,
                                               reschedule_uid=booking.rescheduled_from_uid))
        if booking.appointment_id in owners:
            return _Drift("adopted", observed(booking, trigger))
        return _Drift("imported", observed(booking, trigger))

    @staticmethod
    def _get(client: CalcomClient, uid: str | None) -> CalcomBooking | None:
        if not uid:
            return None
        try:
            return client.get_booking(uid)
        except errors.CalcomRejected as refused:
            if refused.status == 404:
                return None
            raise

    # --- bookings that vanished (full pass only) --------------------------------------

    def _vanished(self, account_id: str, client: CalcomClient, seen: set[str], now: datetime,
                  state: Progress) -> None:
        """Live appointments in the window whose booking the pass did not see, and Cal.com
        no longer has. Each is confirmed with one GET before anything changes."""
        missing = (Appointment.select(Appointment.id, Appointment.booking_uid)
                   .where((Appointment.account == account_id)
                          & Appointment.status.in_(LIVE_APPOINTMENT)
                          & Appointment.booking_uid.is_null(False)
                          & (Appointment.sync_state == "synced")
                          & (Appointment.start_time >= now - self.options.window_before)
                          & (Appointment.start_time <= now + self.options.window_after))
                   .order_by(Appointment.start_time))
        for row in missing:
            uid = row.booking_uid
            if not uid or uid in seen:
                continue
            if self._get(client, uid) is not None:
                continue  # outside the listing (another organiser, a team): still there
            with write_transaction(self.db):
                if _repair_vanished(self.db, row.id, uid, self.clock.now(), self.booker_url):
                    state.repairs["vanished"] += 1


def _link_series(account_id: str, bookings: tuple[CalcomBooking, ...], now: datetime) -> None:
    """Each occurrence's appointment names its series (DESIGN §6), once Cal.com has said which.
    (A series is never seated: Cal.com refuses seats on recurring event types.)"""
    by_series: dict[str, list[str]] = {}
    for booking in bookings:
        if booking.recurring_booking_uid:
            by_series.setdefault(booking.recurring_booking_uid, []).append(booking.uid)
    for series_uid, uids in by_series.items():
        appointments = sorted(set(booking_rows.owners(account_id, uids).values()))
        if appointments:
            Appointment.update(recurring_booking_uid=series_uid, updated_at=now).where(
                (Appointment.account == account_id) & Appointment.id.in_(appointments)
                & Appointment.recurring_booking_uid.is_null()).execute()


def _linked(account_id: str, uid: str) -> bool:
    """Whether the appointment holding booking ``uid`` names its series already."""
    row = booking_rows.find(account_id, uid)
    return row is not None and Appointment.select().where(
        (Appointment.id == row.appointment_id) & Appointment.recurring_booking_uid.is_null(False)).exists()


def _key(booking: CalcomBooking) -> tuple[str, str]:
    return booking.uid, booking.seat


def _seat_views(bookings: tuple[CalcomBooking, ...], held: set[tuple[str, str]]) -> list[CalcomBooking]:
    """The page as reconciliation compares it: a booking that is not seated as it is; a seated one
    as one view per attendee it has, and per seat calsync holds in it that it no longer has."""
    views: list[CalcomBooking] = []
    for booking in bookings:
        mine = {seat for uid, seat in held if uid == booking.uid and seat}
        if not booking.seated and not mine:
            views.append(booking)
            continue
        present = {attendee.email.strip().lower() for attendee in booking.attendees if attendee.email}
        views.extend(booking.seat_view(email) for email in sorted(present))
        views.extend(booking.seat_view(seat) for seat in sorted(mine - present))
    return views


def _in_flight(appointment: Appointment) -> bool:
    return (appointment.sync_state != "synced" or appointment.synced_version < appointment.desired_version
            or appointment.create_attempted_at is not None or appointment.reschedule_attempted_at is not None)


def _attendance_of(booking: CalcomBooking, appointment: Appointment) -> str | None:
    for attendee in booking.attendees:
        if attendee.email.lower() == appointment.attendee_email.lower():
            if attendee.absent:
                return "no_show"
            # Cal.com cannot say "attended", only "not absent": that undoes a no-show, nothing more.
            return "attended" if appointment.attendance == "no_show" else None
    return None


def _repair_vanished(db: Database, appointment_id: str, uid: str, now: datetime, booker_url: str) -> bool:
    appointment = Appointment.get_by_id(appointment_id)
    if appointment.booking_uid != uid or appointment.status not in LIVE_APPOINTMENT:
        return False  # changed since the pass looked
    held = booking_rows.of_appointment(appointment_id, uid)
    booking_rows.update(appointment.account_id, uid, held.seat if held else "", status="deleted",
                        updated_at=now)
    if appointment.start_time > now and appointment.desired_status == "active":
        # The CRM still wants it: book it again.
        Appointment.update_by_id(appointment_id, booking_uid=None, status="pending",
                                 sync_state="pending", meeting_url=None,
                                 desired_version=Appointment.desired_version + 1, updated_at=now)
        audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=ACTOR,
                     action="booking.vanished", before={"booking_uid": uid},
                     after={"booking_uid": None, "note": "booking again"}, now=now)
        queue.enqueue_converge(db, appointment_id, appointment.account_id, now=now)
        return True
    Appointment.update_by_id(appointment_id, status="cancelled", desired_status="cancelled",
                             cancelled_by="system",
                             cancellation_reason="the booking no longer exists in Cal.com",
                             ics_sequence=Appointment.ics_sequence + 1, updated_at=now)
    audit.record(account_id=appointment.account_id, appointment_id=appointment_id, actor=ACTOR,
                 action="booking.vanished", before={"booking_uid": uid, "status": appointment.status},
                 after={"status": "cancelled"}, now=now)
    events.emit_for(db, appointment_id, events.CANCELLED, now=now, booker_url=booker_url)
    return True


class ReconcileHandler:
    """The worker's handler for ``reconcile`` jobs (queued by the scheduler) and
    ``reconcile_series`` jobs (queued by deliveries about a recurring series' occurrences)."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler

    def run(self, job: Job) -> None:
        if job.kind == queue.RECONCILE_SERIES:
            self.reconciler.reconcile_series(job.payload["account_id"], job.payload["uid"],
                                             job.payload.get("why", "compare"))
            return
        try:
            self.reconciler.run(job.payload["account_id"], full=bool(job.payload.get("full")),
                                trigger="schedule")
        except errors.Conflict:
            log.info("reconcile skipped: one is running", extra={
                "action": "reconcile.skipped", "account_id": job.payload["account_id"]})

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        """The run's row already says why; the next period tries again."""
