"""The host's "request reschedule" in Cal.com: a state of waiting, not a cancellation.

Cal.com (requestReschedule.handler.ts) cancels the booking, flags it rescheduled and
sends BOOKING_CANCELLED with a reason starting "Please reschedule." (the newest
version adds ``rescheduleRequested: true``); the attendee's link then books a new
time whose booking names the old one (``rescheduleUid``, REST ``rescheduledToUid``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector import errors
from connector.core import accounts, appointments
from connector.inputs import CancelInput
from mappings.models import Appointment, Job
from mappings.times import to_api
from tests.support.factories import put
from tests.support.world import make_world

PATH = "/request-reschedule-test"


@pytest.fixture
def world(db, clock, make_account, sealer):
    return make_world(db, clock, make_account, sealer)


@pytest.fixture
def booked(db, clock, world):
    start = clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    put(db, world.account, "crm-1", now=clock.now(), start_time=to_api(start))
    world.run_all(clock)
    return Appointment.get(Appointment.external_id == "crm-1")


def principal(world) -> accounts.Principal:
    return accounts.Principal(world.account.id, "tok", "crm", frozenset(accounts.SCOPES))


def test_the_appointment_waits_for_the_attendee_and_then_follows_their_new_time(db, clock, world, booked):
    world.sandbox.calendar.request_reschedule(booked.booking_uid, "I am ill that day", PATH)
    world.run_all(clock)
    waiting = Appointment.get_by_id(booked.id)
    assert (waiting.status, waiting.desired_status, waiting.sync_state) == (
        "reschedule_requested", "active", "synced")
    assert waiting.cancellation_reason == "Please reschedule. I am ill that day"
    assert not Job.select().where((Job.kind == "converge") & (Job.status == "queued")).exists()
    new_time = booked.start_time + timedelta(days=3)
    rebooked = world.sandbox.calendar.reschedule(booked.booking_uid, {"start": to_api(new_time)}, PATH,
                                                 "http://sandbox.test", via_link=True)
    world.run_all(clock)
    after = Appointment.get_by_id(booked.id)
    assert (after.status, after.booking_uid, after.start_time) == ("rescheduled", rebooked.uid, new_time)
    assert after.sync_state == "synced" and world.sandbox.calendar.bookings[rebooked.uid].status == "accepted"


def test_while_waiting_the_crm_may_cancel_but_not_pick_a_time(db, clock, world, booked):
    world.sandbox.calendar.request_reschedule(booked.booking_uid, None, PATH)
    world.run_all(clock)
    with pytest.raises(errors.Conflict, match="pick a new time"):
        appointments.patch(db, principal(world), "crm-1",
                           f'{{"start_time": "{to_api(booked.start_time + timedelta(hours=2))}"}}'.encode(),
                           now=clock.now())
    appointments.cancel(db, principal(world), "crm-1", CancelInput(), now=clock.now())
    world.run_all(clock)
    assert Appointment.get_by_id(booked.id).status == "cancelled"


def test_the_reconciler_repairs_a_missed_request_as_a_request(db, clock, world, booked):
    world.sandbox.hub.drop_rate = 1.0
    world.sandbox.calendar.request_reschedule(booked.booking_uid, "travel", PATH)
    world.sandbox.hub.drop_rate = 0.0
    run = world.reconciler.run(world.account.id, full=True, trigger="api")
    world.run_all(clock)
    assert Appointment.get_by_id(booked.id).status == "reschedule_requested"
    assert run.repairs == {"reschedule_requested": 1}
    # And the attendee's new time, also missed, is followed by the next pass.
    world.sandbox.hub.drop_rate = 1.0
    new_time = booked.start_time + timedelta(days=1)
    rebooked = world.sandbox.calendar.reschedule(booked.booking_uid, {"start": to_api(new_time)}, PATH,
                                                 "http://sandbox.test", via_link=True)
    world.sandbox.hub.drop_rate = 0.0
    world.reconciler.run(world.account.id, full=True, trigger="api")
    world.run_all(clock)
    after = Appointment.get_by_id(booked.id)
    assert (after.status, after.booking_uid, after.start_time) == ("rescheduled", rebooked.uid, new_time)
