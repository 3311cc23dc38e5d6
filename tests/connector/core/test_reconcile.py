"""The reconciler repairs each drift kind of DESIGN §8 against the sandbox, with webhooks lost.

No test here registers a Cal.com webhook, so every change made in the sandbox
reaches calsync only through the reconciler.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.reconcile import ReconcileOptions, Reconciler
from mappings.models import Appointment, AuditEvent, Booking, Job, ReconcileCheckpoint, ReconcileRun
from tests.support.factories import sandbox_user

CALLBACK = "https://crm.example.test/calsync-events"
BODY = {"title": "Intro call", "attendee_name": "Alex Prospect",
        "attendee_email": "alex.prospect@example.org", "start_time": "2026-03-17T10:00:00Z"}
SANDBOX_PATH = "/sandbox-test"


@pytest.fixture
def crm(make_account):
    account, token = make_account(callback_url=CALLBACK)
    return account, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def book(client, crm, run_jobs):
    def book(external_id: str = "crm-1", **changes) -> Appointment:
        answer = client.put(f"/v1/appointments/{external_id}", json={**BODY, **changes}, headers=crm[1])
        assert answer.status_code == 201, answer.text
        run_jobs()
        appointment = Appointment.get(Appointment.external_id == external_id)
        assert appointment.booking_uid, appointment.last_error
        return appointment

    return book


@pytest.fixture
def reconcile(app, crm):
    def reconcile(*, full: bool = False, page_size: int = 100) -> ReconcileRun:
        runtime = app.state.runtime
        reconciler = Reconciler(runtime.db, runtime.clock, runtime.clients, "https://cal.com",
                                ReconcileOptions(page_size=page_size))
        return reconciler.run(crm[0].id, full=full, trigger="cli")

    return reconcile


def crm_events(kind: str) -> list[Job]:
    return [job for job in Job.select().where(Job.kind == "deliver_event") if job.payload["type"] == kind]


def reconciler_audit(appointment_id: str) -> list[str]:
    return [row.action for row in AuditEvent.select().where(
        (AuditEvent.appointment == appointment_id) & (AuditEvent.actor == "reconciler"))]


def test_a_cancellation_whose_webhook_was_lost_is_repaired_once(sandbox, book, reconcile, clock):
    appointment = book()
    clock.advance(minutes=5)
    sandbox.calendar.cancel(appointment.booking_uid, {"cancellationReason": "found another time"},
                            SANDBOX_PATH, by_host=False)
    run = reconcile()
    row = Appointment.get_by_id(appointment.id)
    assert (row.status, row.cancelled_by, row.cancellation_reason) == (
        "cancelled", "attendee", "found another time")
    assert run.repairs == {"cancelled": 1} and run.status == "done"
    assert reconciler_audit(appointment.id) == ["booking.cancelled_in_calcom"]
    assert len(crm_events("appointment.cancelled")) == 1
    again = reconcile()
    assert again.repairs == {} and len(crm_events("appointment.cancelled")) == 1


def test_a_reschedule_made_through_the_attendee_link_is_followed(sandbox, book, reconcile, clock):
    appointment = book()
    clock.advance(minutes=5)
    moved = sandbox.calendar.reschedule(appointment.booking_uid, {"start": "2026-03-18T13:00:00Z"},
                                        SANDBOX_PATH, "http://sandbox.test/video", via_link=True)
    run = reconcile()
    row = Appointment.get_by_id(appointment.id)
    assert row.booking_uid == moved.uid and row.status == "rescheduled"
    assert row.start_time == datetime(2026, 3, 18, 13, 0, tzinfo=UTC)
    old = Booking.get(Booking.uid == appointment.booking_uid)
    assert old.status == "cancelled" and old.rescheduled_to_uid == moved.uid
    assert run.repairs == {"reschedule": 1}
    assert len(crm_events("appointment.rescheduled")) == 1
    assert reconcile().repairs == {}


def test_a_chain_of_two_reschedules_is_followed_to_its_end(sandbox, book, reconcile, clock):
    appointment = book()
    clock.advance(minutes=5)
    first = sandbox.calendar.reschedule(appointment.booking_uid, {"start": "2026-03-18T13:00:00Z"},
                                        SANDBOX_PATH, "http://sandbox.test/video", via_link=True)
    clock.advance(minutes=5)
    second = sandbox.calendar.reschedule(first.uid, {"start": "2026-03-19T09:00:00Z"},
                                         SANDBOX_PATH, "http://sandbox.test/video", via_link=True)
    run = reconcile()
    row = Appointment.get_by_id(appointment.id)
    assert row.booking_uid == second.uid and row.start_time == datetime(2026, 3, 19, 9, 0, tzinfo=UTC)
    assert [b.uid for b in Booking.select().where(Booking.appointment == appointment.id)
            .order_by(Booking.id)] == [appointment.booking_uid, first.uid, second.uid]
    assert run.repairs == {"reschedule": 2}


def test_a_booking_made_in_calcom_is_imported(sandbox, reconcile, clock, crm):
    made = sandbox.calendar.create_booking({
        "start": "2026-03-17T14:00:00Z", "eventTypeId": 123456,
        "attendee": {"name": "Pat Walk-in", "email": "pat@example.org", "timeZone": "Europe/Berlin"}},
        SANDBOX_PATH, "http://sandbox.test/video", host=sandbox_user(sandbox, crm[0]))
    run = reconcile()
    row = Appointment.get(Appointment.booking_uid == made.uid)
    assert (row.source, row.external_id, row.status) == ("calcom", f"calcom:{made.uid}", "active")
    assert run.repairs == {"imported": 1}
    assert len(crm_events("appointment.created")) == 1
    assert reconcile().repairs == {}


def test_a_confirmation_whose_webhook_was_lost_activates_the_appointment(sandbox, book, reconcile, clock):
    appointment = book(event_type_id=123789)
    assert appointment.status == "awaiting_confirmation"
    clock.advance(minutes=5)
    sandbox.calendar.confirm(appointment.booking_uid, SANDBOX_PATH)
    run = reconcile()
    assert Appointment.get_by_id(appointment.id).status == "active"
    assert run.repairs == {"confirmed": 1}


def test_a_deleted_future_booking_is_booked_again(sandbox, book, reconcile, run_jobs, clock):
    appointment = book()
    sandbox.calendar.delete(appointment.booking_uid, SANDBOX_PATH)
    assert reconcile().repairs == {}  # an incremental pass cannot see a deletion
    run = reconcile(full=True)
    assert run.repairs == {"vanished": 1}
    assert reconciler_audit(appointment.id) == ["booking.vanished"]
    run_jobs()
    row = Appointment.get_by_id(appointment.id)
    assert row.booking_uid not in (None, appointment.booking_uid)
    assert (row.status, row.sync_state) == ("active", "synced")
    assert row.booking_uid in sandbox.calendar.bookings
    assert Booking.get(Booking.uid == appointment.booking_uid).status == "deleted"


def test_a_deleted_past_booking_cancels_the_appointment(sandbox, book, reconcile, clock):
    appointment = book()
    clock.set(datetime(2026, 3, 17, 10, 10, tzinfo=UTC))  # the meeting has started
    sandbox.calendar.delete(appointment.booking_uid, SANDBOX_PATH)
    run = reconcile(full=True)
    row = Appointment.get_by_id(appointment.id)
    assert (row.status, row.cancelled_by) == ("cancelled", "system")
    assert run.repairs == {"vanished": 1}
    assert len(crm_events("appointment.cancelled")) == 1


def test_attendance_changes_only_a_full_pass_sees_are_repaired(sandbox, book, reconcile, clock):
    appointment = book()
    clock.advance(minutes=5)
    book("crm-later", start_time="2026-03-18T10:00:00Z")
    reconcile()  # the checkpoint now stands at the later booking's last update
    clock.set(datetime(2026, 3, 17, 10, 10, tzinfo=UTC))
    sandbox.calendar.mark_absent(appointment.booking_uid, {"attendees": [
        {"email": BODY["attendee_email"], "absent": True}]}, SANDBOX_PATH)
    # Attendee no-shows do not move updatedAt (REFERENCE §5.3): the incremental pass misses it.
    assert reconcile().bookings_seen == 1
    assert Appointment.get_by_id(appointment.id).attendance == "unknown"
    run = reconcile(full=True)
    assert Appointment.get_by_id(appointment.id).attendance == "no_show"
    assert run.repairs == {"attendance": 1}
    assert len(crm_events("appointment.attendance")) == 1


def test_past_appointments_still_active_are_completed(book, reconcile, clock):
    appointment = book()
    clock.set(datetime(2026, 3, 17, 11, 0, tzinfo=UTC))
    run = reconcile()
    assert Appointment.get_by_id(appointment.id).status == "completed"
    assert run.repairs == {"completed": 1}
    assert len(crm_events("appointment.completed")) == 1


def test_an_appointment_calsync_is_still_converging_is_left_to_its_job(client, crm, sandbox, book,
                                                                       reconcile, clock):
    appointment = book()
    clock.advance(minutes=5)
    sandbox.calendar.cancel(appointment.booking_uid, {"cancellationReason": "no"}, SANDBOX_PATH,
                            by_host=False)
    assert client.patch(f"/v1/appointments/{appointment.external_id}", json={"title": "Renamed"},
                        headers={**crm[1], "Content-Type": "application/merge-patch+json"}).status_code == 200
    assert reconcile().repairs == {}
    assert Appointment.get_by_id(appointment.id).status == "active"


def test_the_checkpoint_is_saved_per_page_and_moves_forward(sandbox, book, reconcile, clock, crm):
    for index in range(3):
        book(f"crm-{index}", start_time=f"2026-03-1{7 + index}T10:00:00Z")
        clock.advance(minutes=1)
    run = reconcile(page_size=2)
    assert run.pages == 2 and run.bookings_seen == 3
    saved = ReconcileCheckpoint.get_by_id(crm[0].id).updated_after
    assert saved == max(b.updated_at for b in sandbox.calendar.bookings.values())
    clock.advance(minutes=10)
    later = sandbox.calendar.create_booking({
        "start": "2026-03-20T14:00:00Z", "eventTypeId": 123456,
        "attendee": {"name": "Late", "email": "late@example.org", "timeZone": "UTC"}},
        SANDBOX_PATH, "http://sandbox.test/video", host=sandbox_user(sandbox, crm[0]))
    run = reconcile(page_size=2)
    assert run.bookings_seen <= 2 and run.repairs == {"imported": 1}
    assert ReconcileCheckpoint.get_by_id(crm[0].id).updated_after == later.updated_at


def test_one_run_per_account_at_a_time(app, client, crm, reconcile, clock):
    ReconcileRun.create(account=crm[0].id, mode="full", trigger="schedule", started_at=clock.now(),
                        heartbeat_at=clock.now())
    answer = client.post("/v1/reconcile", headers=crm[1])
    assert answer.status_code == 409 and "already running" in answer.json()["detail"]
    clock.advance(minutes=11)  # the other run stopped beating: it was cut off
    answer = client.post("/v1/reconcile", json={"full": True}, headers=crm[1])
    assert answer.status_code == 200, answer.text
    assert answer.json()["mode"] == "full" and answer.json()["status"] == "done"
    assert ReconcileRun.select().where(ReconcileRun.status == "abandoned").count() == 1


def test_post_reconcile_needs_admin_and_a_valid_body(client, crm, token_with):
    reader = token_with(crm[0], "appointments:read")
    assert client.post("/v1/reconcile", headers=reader).status_code == 403
    bad = client.post("/v1/reconcile", json={"full": "yes"}, headers=crm[1])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "full"
    assert ReconcileRun.select().count() == 0


def test_queries_grow_with_pages_not_with_bookings(sandbox, reconcile, app, clock, statements, crm):
    """Import 60 bookings, then count the queries of passes that find nothing to repair."""
    start = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)
    host = sandbox_user(sandbox, crm[0])
    for index in range(60):
        day, slot = divmod(index, 15)
        sandbox.calendar.create_booking({
            "start": (start + timedelta(days=day, minutes=30 * slot)).isoformat(), "eventTypeId": 123456,
            "attendee": {"name": f"P{index}", "email": f"p{index}@example.org", "timeZone": "UTC"}},
            SANDBOX_PATH, "http://sandbox.test/video", host=host)
    assert reconcile(full=True).repairs == {"imported": 60}
    counted = statements

    def queries(page_size: int) -> tuple[int, int]:
        counted.clear()
        run = reconcile(full=True, page_size=page_size)
        assert run.repairs == {} and run.bookings_seen == 60
        return run.pages, len(counted)

    pages_a, queries_a = queries(10)  # 6 pages of 10
    pages_b, queries_b = queries(20)  # 3 pages of 20
    pages_c, queries_c = queries(60)  # 1 page of 60
    assert (pages_a, pages_b, pages_c) == (6, 3, 1)
    per_page = (queries_a - queries_b) / (pages_a - pages_b)
    assert per_page == (queries_b - queries_c) / (pages_b - pages_c)  # the same cost for every page
    assert per_page <= 6  # a handful of statements per page, whatever its size


def test_the_pass_waits_for_the_accounts_rate_limit_instead_of_failing(app, sandbox, crm, clock):
    from connector.calcom.clients import CalcomClients
    from connector.calcom.ratelimit import RateLimiter

    start = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)
    for index in range(6):
        sandbox.calendar.create_booking({
            "start": (start + timedelta(minutes=30 * index)).isoformat(), "eventTypeId": 123456,
            "attendee": {"name": f"P{index}", "email": f"p{index}@example.org", "timeZone": "UTC"}},
            SANDBOX_PATH, "http://sandbox.test/video", host=sandbox_user(sandbox, crm[0]))
    runtime = app.state.runtime
    limiter = RateLimiter(clock, limit=2, window_seconds=60, max_wait_seconds=0)
    clients = CalcomClients(runtime.http, runtime.settings, runtime.sealer, sandbox_url=runtime.clients.sandbox_url,
                            limiter=limiter)
    began = clock.now()
    run = Reconciler(runtime.db, clock, clients, "https://cal.com", ReconcileOptions(page_size=2)).run(
        crm[0].id, full=True, trigger="cli")
    assert run.pages == 3 and run.repairs == {"imported": 6}
    assert clock.now() - began >= timedelta(seconds=60)  # the third page waited for a new window


def test_a_second_live_booking_naming_an_appointment_is_found_and_cancelled(sandbox, book, reconcile, run_jobs,
                                                                            crm, clock):
    appointment = book()
    twin = sandbox.calendar.create_booking({
        "start": "2026-03-18T10:00:00Z", "eventTypeId": 123456,
        "metadata": {"calsync_appointment_id": appointment.id},
        "attendee": {"name": "Alex Prospect", "email": "alex.prospect@example.org", "timeZone": "UTC"}},
        SANDBOX_PATH, "http://sandbox.test/video", host=sandbox_user(sandbox, crm[0]))
    run = reconcile(full=True)
    assert run.repairs == {"adopted": 1}  # recorded as the appointment's duplicate
    run_jobs()
    assert sandbox.calendar.bookings[twin.uid].status == "cancelled"
    assert sandbox.calendar.bookings[appointment.booking_uid].status == "accepted"
    row = Appointment.get_by_id(appointment.id)
    assert (row.booking_uid, row.status, row.sync_state) == (appointment.booking_uid, "active", "synced")
    assert [a.action for a in AuditEvent.select().where(AuditEvent.appointment == appointment.id)
            if "duplicate" in a.action] == ["booking.duplicate_found", "booking.duplicate_cancelled"]
    assert reconcile(full=True).repairs == {}


def test_the_checkpoint_never_passes_a_booking_left_to_a_converging_appointment(
        sandbox, book, reconcile, clock, crm, client, run_jobs):
    """A's booking is cancelled in Cal.com (its webhook lost) while the CRM's edit of A is still
    converging, so the pass leaves it; later bookings change too. The checkpoint stops at A's
    change, and once A has settled the next incremental pass repairs it."""
    first, second = book("crm-a"), book("crm-b", start_time="2026-03-17T11:00:00Z")
    clock.advance(minutes=5)
    sandbox.calendar.cancel(first.booking_uid, {"cancellationReason": "cannot come"}, SANDBOX_PATH,
                            by_host=False)
    held = sandbox.calendar.bookings[first.booking_uid].updated_at
    clock.advance(minutes=5)
    sandbox.calendar.cancel(second.booking_uid, {"cancellationReason": "also out"}, SANDBOX_PATH,
                            by_host=False)
    assert client.patch("/v1/appointments/crm-a", json={"title": "edited"}, headers=crm[1]).status_code == 200
    run = reconcile()
    assert run.repairs == {"cancelled": 1}  # B only: A is converging
    assert ReconcileCheckpoint.get_by_id(crm[0].id).updated_after == held
    run_jobs()  # A's title edit settles without a call to Cal.com
    assert Appointment.get_by_id(first.id).status == "active"
    assert reconcile().repairs == {"cancelled": 1}  # read again from the held checkpoint
    row = Appointment.get_by_id(first.id)
    assert (row.status, row.cancelled_by, row.cancellation_reason) == ("cancelled", "attendee", "cannot come")
