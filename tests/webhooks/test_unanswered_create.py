"""A booking without calsync's metadata, while one of calsync's creates is unanswered.

An attendee's link reschedule and a confirmation reach calsync without the metadata
that names calsync's appointment (REFERENCE §8). When they belong to a create whose
answer was lost, importing them would make a second appointment of one booking: they
wait for that create's outcome instead. The fault test found this (seed 16).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.jobs import queue
from connector.sandbox.faults import FaultRule
from mappings.models import Appointment, WebhookDelivery
from mappings.times import to_api
from tests.support.factories import dispatch_deliveries, put, sandbox_user
from tests.support.world import make_world
from webhooks import calcom as calcom_webhooks
from webhooks.apply import WAITING

PATH = "/unanswered-create-test"
EMAIL = "sam@example.org"


@pytest.fixture
def world(db, clock, make_account, sealer):
    return make_world(db, clock, make_account, sealer)


def _lost_create(db, clock, sandbox, worker, account):
    """calsync's create reaches Cal.com, its answer does not; Cal.com's own webhook is lost too."""
    start = clock.now() + timedelta(days=3)
    appointment = put(db, account, "crm-1", now=clock.now(), start_time=to_api(start),
                      attendee_email=EMAIL).appointment
    sandbox.faults.set("POST /v2/bookings", FaultRule(drop_next=1))
    sandbox.hub.drop_rate = 1.0
    worker.run_once()  # the create: committed in Cal.com, answer dropped
    sandbox.hub.drop_rate = 0.0
    sandbox.faults.clear()
    (made,) = [b for b in sandbox.calendar.bookings.values()
               if b.metadata.get("calsync_appointment_id") == appointment.id]
    assert Appointment.get_by_id(appointment.id).create_attempted_at is not None
    return appointment, made


def _deliveries(trigger: str) -> list[WebhookDelivery]:
    return list(WebhookDelivery.select().where(WebhookDelivery.trigger == trigger))


def test_a_link_reschedule_of_a_lost_create_follows_calsyncs_appointment(db, clock, world):
    sandbox, worker, account = world.sandbox, world.worker, world.account
    appointment, made = _lost_create(db, clock, sandbox, worker, account)
    moved_to = made.start + timedelta(hours=2)
    # The attendee moves it through Cal.com's link: the webhook carries no calsync metadata.
    sandbox.calendar.reschedule(made.uid, {"start": to_api(moved_to), "rescheduledBy": EMAIL}, PATH,
                                "http://sandbox.test", via_link=True)
    dispatch_deliveries(db, clock)
    apply_job = (queue.Job.select().where(queue.Job.kind == calcom_webhooks.APPLY_WEBHOOK)
                 .order_by(queue.Job.id.desc()).first())
    worker.handlers[calcom_webhooks.APPLY_WEBHOOK].run(apply_job)  # applied before the converge retry

    (delivery,) = _deliveries("BOOKING_RESCHEDULED")
    assert delivery.outcome == WAITING and "create for appointment" in delivery.error
    assert Appointment.select().count() == 1  # not imported as a second appointment

    world.run_all(clock)  # the converge finds its create, follows the chain, wakes the delivery
    (only,) = Appointment.select()
    assert only.id == appointment.id and only.start_time == moved_to
    assert only.booking_uid != made.uid and sandbox.calendar.bookings[only.booking_uid].status == "accepted"
    (delivery,) = _deliveries("BOOKING_RESCHEDULED")
    assert delivery.outcome != WAITING and delivery.processed_at is not None and delivery.error is None


def test_a_booking_of_the_same_attendee_is_imported_once_the_create_is_answered(db, clock, world):
    sandbox, worker, account = world.sandbox, world.worker, world.account
    appointment, made = _lost_create(db, clock, sandbox, worker, account)
    # The same attendee books another slot on Cal.com's page, meanwhile. Its confirmation-like
    # BOOKING_CREATED names no appointment: it may be calsync's own, so it waits.
    walk_in = sandbox.calendar.create_booking(
        {"start": to_api(made.start + timedelta(days=1)), "eventTypeId": 123456,
         "attendee": {"name": "Sam", "email": EMAIL.upper(), "timeZone": "UTC"}},
        PATH, "http://sandbox.test/video", host=sandbox_user(sandbox, account))
    (delivery,) = [d for d in _deliveries("BOOKING_CREATED") if d.booking_uid == walk_in.uid]
    assert delivery.outcome == "received"
    dispatch_deliveries(db, clock)
    waiting = [job for job in queue.Job.select() if job.payload.get("delivery_id") == delivery.id]
    worker.handlers[calcom_webhooks.APPLY_WEBHOOK].run(waiting[0])
    assert WebhookDelivery.get_by_id(delivery.id).outcome == WAITING

    world.run_all(clock)  # the create is answered (adopted): the walk-in is not it
    rows = {row.external_id: row for row in Appointment.select()}
    assert rows["crm-1"].booking_uid == made.uid
    assert rows[f"calcom:{walk_in.uid}"].source == "calcom"
    assert WebhookDelivery.get_by_id(delivery.id).outcome == "applied"
