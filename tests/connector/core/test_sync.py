"""converge() against the sandbox, including every way a create's answer can go missing."""

from __future__ import annotations

import random

import httpx
import pytest

from connector import errors
from connector.core.sync import ConvergeHandler, converge
from connector.jobs import queue
from connector.jobs.retry import RetryPolicy
from connector.jobs.worker import Worker, WorkerConfig
from mappings.models import Appointment, AuditEvent, Booking, Job
from tests.support.asgi import SyncASGITransport
from tests.support.factories import put, sandbox_clients, sync_context


def _faults(sandbox, **rule):
    from connector.sandbox.faults import FaultRule

    sandbox.faults.set("POST /v2/bookings", FaultRule(**rule))


def _reload(appointment_id: str) -> Appointment:
    return Appointment.get_by_id(appointment_id)


def test_a_new_appointment_becomes_exactly_one_active_booking(ctx, account, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    assert converge(ctx, appointment.id) == "created"
    row = _reload(appointment.id)
    assert (row.status, row.sync_state, row.synced_version) == ("active", "synced", 1)
    booking = sandbox.calendar.bookings[row.booking_uid]
    assert booking.metadata == {"calsync_appointment_id": appointment.id}
    assert row.meeting_url == row.location == booking.location
    assert row.end_time == booking.end and row.create_attempted_at is None
    assert Booking.get(Booking.uid == row.booking_uid).status == "accepted"
    assert [e.action for e in AuditEvent.select().order_by(AuditEvent.id)] == [
        "appointment.created", "booking.created"]
    assert converge(ctx, appointment.id) == "unchanged"
    assert sandbox.calendar.created_count == 1


def test_an_answer_dropped_after_commit_is_adopted_not_repeated(ctx, account, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    _faults(sandbox, drop_next=1)
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, appointment.id)
    assert _reload(appointment.id).create_attempted_at is not None
    assert sandbox.calendar.created_count == 1
    assert converge(ctx, appointment.id) == "adopted"
    row = _reload(appointment.id)
    assert row.status == "active" and row.booking_uid in sandbox.calendar.bookings
    assert sandbox.calendar.created_count == 1
    assert AuditEvent.select().where(AuditEvent.action == "booking.adopted").count() == 1


def test_a_5xx_before_anything_was_booked_books_once_on_retry(ctx, account, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    _faults(sandbox, error_next=1)
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, appointment.id)
    assert converge(ctx, appointment.id) == "created"  # searched first, found nothing
    assert sandbox.calendar.created_count == 1


def test_a_worker_killed_mid_call_leaves_the_marker_and_the_next_one_searches(ctx, account, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    _faults(sandbox, drop_next=1)
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, appointment.id)
    # The worker "died" here; its job is claimed again after the lease and converges.
    assert converge(ctx, appointment.id) == "adopted"
    assert sandbox.calendar.created_count == 1


def test_a_409_for_our_own_booking_is_adopted(ctx, account, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    _faults(sandbox, drop_next=1)
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, appointment.id)
    Appointment.update(create_attempted_at=None).where(Appointment.id == appointment.id).execute()
    assert converge(ctx, appointment.id) == "adopted"  # created again → 409 → search → ours
    assert sandbox.calendar.created_count == 1


def test_a_409_for_someone_elses_booking_fails_with_the_reason(ctx, account, clock, sandbox):
    first = put(ctx.db, account, "crm-1", now=clock.now()).appointment
    second = put(ctx.db, account, "crm-2", now=clock.now(), attendee_email="sam@example.org").appointment
    converge(ctx, first.id)
    assert converge(ctx, second.id) == "failed"
    row = _reload(second.id)
    assert row.status == "failed" and row.sync_state == "synced" and row.booking_uid is None
    assert "booking_conflict_error" in row.last_error


def test_a_refusal_fails_once_and_a_new_crm_write_tries_again(ctx, account, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now(), start_time="2026-03-21T10:00:00Z").appointment
    assert converge(ctx, appointment.id) == "failed"  # a Saturday: the host is not available
    row = _reload(appointment.id)
    assert "not available" in row.last_error and row.create_attempted_at is None
    assert converge(ctx, appointment.id) == "unchanged"  # nothing new to try
    put(ctx.db, account, now=clock.now(), start_time="2026-03-17T10:00:00Z")
    assert converge(ctx, appointment.id) == "created"
    assert _reload(appointment.id).status == "active"


def test_an_edit_during_the_call_is_folded_into_the_same_converge(db, clock, sandbox, account):
    inner = SyncASGITransport(sandbox.app)
    edits = []

    class EditingTransport(httpx.BaseTransport):
        def handle_request(self, request):
            if request.method == "POST" and not edits:
                edits.append(put(db, account, now=clock.now(), title="Renamed while booking"))
            return inner.handle_request(request)

    ctx = sync_context(db, clock, sandbox_clients(sandbox, transport=EditingTransport()))
    appointment = put(db, account, now=clock.now()).appointment
    assert converge(ctx, appointment.id) == "created"
    row = _reload(appointment.id)
    # The title edit needs no Cal.com call: the same converge finds no gap at version 2.
    assert (row.desired_version, row.synced_version, row.sync_state) == (2, 2, "synced")
    assert row.title == "Renamed while booking"
    assert converge(ctx, appointment.id) == "unchanged"
    assert sandbox.calendar.created_count == 1


def test_a_bad_key_is_retried_then_dead_without_showing_the_key(db, clock, sandbox, make_account):
    account = make_account(calcom_api_key="cal_revoked", calcom_base_url="http://sandbox.test")[0]
    ctx = sync_context(db, clock, sandbox_clients(sandbox, sandbox_url=None))
    appointment = put(db, account, now=clock.now()).appointment
    worker = Worker(db, clock, {queue.CONVERGE: ConvergeHandler(ctx)},
                    RetryPolicy(max_attempts=2, base_seconds=1, max_seconds=1, jitter=0),
                    WorkerConfig(poll_interval_seconds=0.01), rng=random.Random(1))
    assert worker.run_once()
    row = _reload(appointment.id)
    assert row.sync_state == "retrying" and "CalcomAuthError" in row.last_error
    clock.advance(seconds=2)
    assert worker.run_once()
    row = _reload(appointment.id)
    assert row.sync_state == "dead" and "cal_revoked" not in row.last_error
    assert Job.get().status == "dead"


def test_the_worker_runs_converge_jobs_from_the_api_path(db, clock, sandbox, account):
    ctx = sync_context(db, clock, sandbox_clients(sandbox))
    appointment = put(db, account, now=clock.now()).appointment
    worker = Worker(db, clock, {queue.CONVERGE: ConvergeHandler(ctx)}, RetryPolicy(),
                    WorkerConfig(poll_interval_seconds=0.01))
    assert worker.run_once() and not worker.run_once()
    assert _reload(appointment.id).status == "active"


def test_without_a_key_or_sandbox_the_reason_is_clear(db, clock, sandbox, account):
    ctx = sync_context(db, clock, sandbox_clients(sandbox, sandbox_url=None))
    appointment = put(db, account, now=clock.now()).appointment
    with pytest.raises(errors.CalcomAuthError, match="no Cal.com API key"):
        converge(ctx, appointment.id)


def _live_of(sandbox, appointment_id: str) -> list:
    return [b for b in sandbox.calendar.bookings.values()
            if b.status in ("accepted", "pending") and b.metadata.get("calsync_appointment_id") == appointment_id]


@pytest.mark.parametrize("moved_to", ["2026-03-17T15:00:00Z", "2026-03-17T08:00:00Z"])
def test_a_lost_create_is_found_even_after_the_crm_moved_the_start(ctx, account, clock, sandbox, moved_to):
    """The answer of a create at 10:00 is lost; the CRM then moves the start (later or earlier).
    The search must still find the 10:00 booking, and converge moves it: one live booking."""
    appointment = put(ctx.db, account, now=clock.now(), start_time="2026-03-17T10:00:00Z").appointment
    _faults(sandbox, drop_next=1)
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, appointment.id)
    clock.advance(minutes=3)
    put(ctx.db, account, now=clock.now(), start_time=moved_to)
    assert converge(ctx, appointment.id) == "rescheduled"
    row = _reload(appointment.id)
    live = _live_of(sandbox, appointment.id)
    assert sandbox.calendar.created_count == 1 and len(live) == 1
    assert (live[0].uid, live[0].start.isoformat().replace("+00:00", "Z")) == (row.booking_uid, moved_to)
    assert (row.status, row.sync_state) == ("rescheduled", "synced")


def test_a_retry_cal_com_refused_with_a_429_keeps_the_first_unanswered_attempt(ctx, account, clock, sandbox):
    """A 429 means this attempt made nothing, not that an earlier unanswered one made nothing:
    the marker goes back to that earlier attempt, so the next search still starts there."""
    appointment = put(ctx.db, account, now=clock.now(), start_time="2026-03-17T10:00:00Z").appointment
    first = clock.now()
    Appointment.update(create_attempted_at=first).where(Appointment.id == appointment.id).execute()
    clock.advance(minutes=30)
    _faults(sandbox, rate_limit_next=1)
    with pytest.raises(errors.CalcomRateLimited):
        converge(ctx, appointment.id)
    assert _reload(appointment.id).create_attempted_at == first


def test_a_second_live_booking_of_an_appointment_is_cancelled_with_its_reason(ctx, account, clock, sandbox):
    """Two live bookings carry one appointment's id (two lost creates that both landed): the one
    that is not current is cancelled in Cal.com, audited, and the appointment ends synced."""
    from connector.calcom import BookingFilters
    from mappings import bookings as booking_rows
    from tests.support.factories import sandbox_user

    appointment = put(ctx.db, account, now=clock.now(), start_time="2026-03-17T10:00:00Z").appointment
    assert converge(ctx, appointment.id) == "created"
    twin = sandbox.calendar.create_booking({
        "start": "2026-03-17T12:00:00Z", "eventTypeId": 123456, "metadata": {"calsync_appointment_id": appointment.id},
        "attendee": {"name": "Alex Prospect", "email": "alex.prospect@example.org", "timeZone": "UTC"}},
        "/v2/bookings", "http://sandbox.test", host=sandbox_user(sandbox, account))
    client = ctx.clients.for_account(account)
    seen = next(iter(client.iter_bookings(BookingFilters(booking_uid=twin.uid)))).bookings[0]
    from connector.core.sync import upsert_booking
    from mappings.db import write_transaction

    with write_transaction(ctx.db):  # what a webhook or the reconciler records of it
        upsert_booking(account.id, appointment.id, seen, clock.now())
        Appointment.update(synced_version=0, sync_state="pending").where(Appointment.id == appointment.id).execute()
    assert converge(ctx, appointment.id) == "duplicate_cancelled"
    row = _reload(appointment.id)
    assert sandbox.calendar.bookings[twin.uid].status == "cancelled"
    assert row.booking_uid in sandbox.calendar.bookings and len(_live_of(sandbox, appointment.id)) == 1
    assert "Duplicate booking" in sandbox.calendar.bookings[twin.uid].cancellation_reason
    assert booking_rows.find(account.id, twin.uid).status == "cancelled"
    assert AuditEvent.get(AuditEvent.action == "booking.duplicate_cancelled").after["status"] == "cancelled"
    assert (row.status, row.sync_state) == ("active", "synced")
