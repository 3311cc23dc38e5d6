"""converge() for the whole lifecycle against the sandbox: reschedule, cancel, attendance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector import errors
from connector.core import accounts, appointments
from connector.core.sync import converge
from connector.inputs import AttendanceInput, CancelInput
from connector.sandbox.faults import FaultRule
from mappings.models import Appointment, AuditEvent, Booking
from tests.support.factories import put


@pytest.fixture
def principal(account):
    return accounts.Principal(account.id, "tok", "crm-backend", frozenset(accounts.SCOPES))


@pytest.fixture
def booked(ctx, account, clock):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    assert converge(ctx, appointment.id) == "created"
    return Appointment.get_by_id(appointment.id)


def live_bookings(sandbox, appointment_id):
    return [b for b in sandbox.calendar.bookings.values()
            if b.metadata.get("calsync_appointment_id") == appointment_id and b.status in ("accepted", "pending")]


def test_a_new_start_reschedules_into_a_new_uid(ctx, account, clock, sandbox, booked):
    put(ctx.db, account, now=clock.now(), start_time="2026-03-18T13:00:00Z")
    assert converge(ctx, booked.id) == "rescheduled"
    row = Appointment.get_by_id(booked.id)
    assert row.booking_uid != booked.booking_uid
    assert (row.status, row.sync_state, row.ics_sequence) == ("rescheduled", "synced", 1)
    old = Booking.get(Booking.uid == booked.booking_uid)
    assert old.status == "cancelled" and old.rescheduled_to_uid == row.booking_uid
    new = Booking.get(Booking.uid == row.booking_uid)
    assert new.rescheduled_from_uid == booked.booking_uid
    assert new.start_time == datetime(2026, 3, 18, 13, 0, tzinfo=UTC)
    assert [b.uid for b in live_bookings(sandbox, booked.id)] == [row.booking_uid]
    assert converge(ctx, booked.id) == "unchanged"


def test_a_dropped_reschedule_answer_is_followed_not_repeated(ctx, account, clock, sandbox, booked):
    put(ctx.db, account, now=clock.now(), start_time="2026-03-18T13:00:00Z")
    sandbox.faults.set("POST /v2/bookings/{uid}/reschedule", FaultRule(drop_next=1))
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, booked.id)
    assert Appointment.get_by_id(booked.id).reschedule_attempted_at is not None
    assert converge(ctx, booked.id) == "followed"  # the chain, and then nothing left to do
    row = Appointment.get_by_id(booked.id)
    assert row.sync_state == "synced" and row.reschedule_attempted_at is None
    assert len(sandbox.calendar.bookings) == 2  # the original and exactly one successor
    assert [b.uid for b in live_bookings(sandbox, booked.id)] == [row.booking_uid]
    assert AuditEvent.select().where(AuditEvent.action == "booking.reschedule_adopted").count() == 1


def test_a_refused_reschedule_fails_and_keeps_the_old_booking(ctx, account, clock, sandbox, booked):
    put(ctx.db, account, "other", now=clock.now(), start_time="2026-03-18T13:00:00Z",
        attendee_email="other@example.org")
    converge(ctx, Appointment.get(Appointment.external_id == "other").id)
    put(ctx.db, account, now=clock.now(), start_time="2026-03-18T13:00:00Z")
    assert converge(ctx, booked.id) == "failed"
    row = Appointment.get_by_id(booked.id)
    assert row.status == "failed" and "not available" in row.last_error
    assert row.booking_uid == booked.booking_uid
    assert sandbox.calendar.bookings[booked.booking_uid].status == "accepted"
    put(ctx.db, account, now=clock.now(), start_time="2026-03-18T14:00:00Z")  # the CRM tries again
    assert converge(ctx, booked.id) == "rescheduled"


def test_cancel_sends_a_default_reason_and_is_final(ctx, principal, clock, sandbox, booked):
    appointments.cancel(ctx.db, principal, "crm-1", CancelInput(), now=clock.now())
    assert converge(ctx, booked.id) == "cancelled"
    row = Appointment.get_by_id(booked.id)
    assert (row.status, row.cancelled_by, row.cancellation_reason) == ("cancelled", "crm", "Cancelled in CRM")
    assert sandbox.calendar.bookings[booked.booking_uid].cancellation_reason == "Cancelled in CRM"
    assert converge(ctx, booked.id) == "unchanged"
    with pytest.raises(errors.Conflict):
        appointments.cancel(ctx.db, principal, "crm-1", CancelInput(), now=clock.now())


def test_already_cancelled_in_calcom_counts_as_success(ctx, principal, clock, sandbox, booked):
    sandbox.calendar.cancel(booked.booking_uid, {"cancellationReason": "by the host"}, "/", by_host=True)
    appointments.cancel(ctx.db, principal, "crm-1", CancelInput(reason="no longer needed"), now=clock.now())
    assert converge(ctx, booked.id) == "cancelled"
    row = Appointment.get_by_id(booked.id)
    assert row.status == "cancelled" and row.last_error is None
    # Cal.com's cancel came first: it says who cancelled and why.
    assert (row.cancelled_by, row.cancellation_reason, row.sync_state) == ("host", "by the host", "synced")


def test_a_reschedule_refused_because_the_attendee_cancelled_adopts_the_cancellation(
        ctx, principal, clock, sandbox, booked):
    sandbox.calendar.cancel(booked.booking_uid, {"cancellationReason": "cannot make it"}, "/", by_host=False)
    appointments.patch(ctx.db, principal, "crm-1", b'{"start_time": "2026-03-17T13:00:00Z"}', now=clock.now())
    assert converge(ctx, booked.id) == "cancelled"
    row = Appointment.get_by_id(booked.id)
    assert (row.status, row.desired_status, row.cancelled_by, row.cancellation_reason) == (
        "cancelled", "cancelled", "attendee", "cannot make it")
    assert row.sync_state == "synced" and row.last_error is None


def test_cancelling_what_was_never_booked_calls_nobody(ctx, account, principal, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now(), start_time="2026-03-21T10:00:00Z").appointment
    assert converge(ctx, appointment.id) == "failed"  # a Saturday
    appointments.cancel(ctx.db, principal, "crm-1", CancelInput(), now=clock.now())
    assert converge(ctx, appointment.id) == "cancelled"
    assert sandbox.calendar.bookings == {}


def test_a_cancel_after_a_lost_create_cancels_the_booking_that_was_made(ctx, account, principal, clock, sandbox):
    appointment = put(ctx.db, account, now=clock.now()).appointment
    sandbox.faults.set("POST /v2/bookings", FaultRule(drop_next=1))
    with pytest.raises(errors.CalcomOutcomeUnknown):
        converge(ctx, appointment.id)
    appointments.cancel(ctx.db, principal, "crm-1", CancelInput(), now=clock.now())
    assert converge(ctx, appointment.id) == "cancelled"
    assert live_bookings(sandbox, appointment.id) == []
    assert [b.status for b in sandbox.calendar.bookings.values()] == ["cancelled"]


def test_attendance_is_marked_after_the_start(ctx, principal, clock, sandbox, booked):
    with pytest.raises(errors.Conflict, match="after the start"):
        appointments.set_attendance(ctx.db, principal, "crm-1", AttendanceInput(attendance="no_show"),
                                    now=clock.now())
    clock.set(datetime(2026, 3, 17, 10, 20, tzinfo=UTC))
    appointments.set_attendance(ctx.db, principal, "crm-1", AttendanceInput(attendance="no_show"),
                                now=clock.now())
    assert converge(ctx, booked.id) == "attendance"
    assert Appointment.get_by_id(booked.id).attendance == "no_show"
    assert sandbox.calendar.bookings[booked.booking_uid].attendees[0]["absent"] is True
    appointments.set_attendance(ctx.db, principal, "crm-1", AttendanceInput(attendance="attended"),
                                now=clock.now())
    converge(ctx, booked.id)
    assert sandbox.calendar.bookings[booked.booking_uid].attendees[0]["absent"] is False


def test_every_outcome_queues_its_event_for_the_crm(ctx, make_account, clock, sandbox):
    from connector.core import accounts as accounts_module
    from mappings.models import Job
    from webhooks import signing

    account = make_account("With callback", callback_url="https://crm.example.org/hooks",
                           callback_secret=signing.new_secret())[0]
    who = accounts_module.Principal(account.id, "tok", "crm", frozenset(accounts_module.SCOPES))
    refused = put(ctx.db, account, "weekend", now=clock.now(), start_time="2026-03-21T10:00:00Z").appointment
    converge(ctx, refused.id)
    booked = put(ctx.db, account, "ok", now=clock.now(), attendee_email="ok@example.org").appointment
    converge(ctx, booked.id)
    clock.set(datetime(2026, 3, 17, 10, 10, tzinfo=UTC))
    appointments.set_attendance(ctx.db, who, "ok", AttendanceInput(attendance="attended"), now=clock.now())
    converge(ctx, booked.id)
    kinds = [job.payload["type"] for job in Job.select().where(Job.kind == "deliver_event").order_by(Job.id)]
    assert kinds == ["appointment.failed", "appointment.synced", "appointment.attendance"]
    failed = Job.select().where(Job.kind == "deliver_event").order_by(Job.id).first()
    assert '"last_error":"CalcomRejected (400): User either already has booking' in failed.payload["body"]
