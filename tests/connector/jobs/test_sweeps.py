"""Completion sweep and briefings: exact by the injected clock, once each, on both engines."""

from __future__ import annotations

from datetime import timedelta

from connector.jobs import sweeps
from mappings.models import Appointment, Job
from tests.support.factories import put

BOOKER = "https://cal.com"


def booked(db, account, external_id, *, now, start, created_at=None):
    appointment = put(db, account, external_id, now=created_at or now,
                      start_time=start.isoformat()).appointment
    Appointment.update(status="active", sync_state="synced", synced_version=1,
                       end_time=start + timedelta(minutes=30),
                       booking_uid=f"uid-{external_id}").where(Appointment.id == appointment.id).execute()
    return appointment


def events_of(kind):
    return [job.payload for job in Job.select().where(Job.kind == "deliver_event")
            if job.payload["type"] == kind]


def test_briefings_go_out_about_an_hour_before_start_exactly_once(db, clock, make_account):
    account = make_account(callback_url="https://crm.example.test/hook")[0]
    start = clock.now() + timedelta(hours=3)
    soon = booked(db, account, "crm-soon", now=clock.now(), start=start)
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 0
    clock.advance(hours=1, minutes=55)  # 65 minutes before start: not yet
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 0
    clock.advance(minutes=5)  # 60 minutes before
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 1
    clock.advance(minutes=5)
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 0
    assert len(events_of("appointment.upcoming")) == 1
    assert Appointment.get_by_id(soon.id).briefing_sent_at is not None


def test_no_briefing_for_an_appointment_made_inside_the_window(db, clock, make_account):
    account = make_account(callback_url="https://crm.example.test/hook")[0]
    booked(db, account, "crm-late", now=clock.now(), start=clock.now() + timedelta(minutes=40))
    for _ in range(8):
        assert sweeps.send_briefings(db, clock.now(), BOOKER) == 0
        clock.advance(minutes=5)
    assert events_of("appointment.upcoming") == []


def test_cancelled_appointments_get_no_briefing(db, clock, make_account):
    account = make_account(callback_url="https://crm.example.test/hook")[0]
    appointment = booked(db, account, "crm-x", now=clock.now(), start=clock.now() + timedelta(hours=2))
    Appointment.update(status="cancelled").where(Appointment.id == appointment.id).execute()
    clock.advance(hours=1)
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 0


def test_ended_appointments_are_completed_once(db, clock, make_account):
    account = make_account(callback_url="https://crm.example.test/hook")[0]
    appointment = booked(db, account, "crm-1", now=clock.now(), start=clock.now() + timedelta(hours=1))
    assert sweeps.complete_ended(db, clock.now(), BOOKER) == 0
    clock.advance(hours=1, minutes=30)  # a 30-minute meeting has just ended
    assert sweeps.complete_ended(db, clock.now(), BOOKER) == 1
    assert sweeps.complete_ended(db, clock.now(), BOOKER) == 0
    assert Appointment.get_by_id(appointment.id).status == "completed"
    assert len(events_of("appointment.completed")) == 1


def test_the_briefing_is_a_reminder_that_moves_with_a_reschedule(db, clock, make_account):
    account = make_account(callback_url="https://crm.example.test/hook")[0]
    start = clock.now() + timedelta(hours=3)
    row = booked(db, account, "crm-moving", now=clock.now(), start=start)
    clock.advance(hours=2)  # 60 minutes before
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 1
    later = start + timedelta(days=1)
    Appointment.update(start_time=later).where(Appointment.id == row.id).execute()
    clock.set(later - timedelta(minutes=60))
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 1  # the new start's own briefing
    assert sweeps.send_briefings(db, clock.now(), BOOKER) == 0
    assert len(events_of("appointment.upcoming")) == 2
