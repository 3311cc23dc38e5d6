"""Recurring series end to end: one appointment per occurrence, linked by the series.

calsync and the sandbox (which books a recurring event type's series as Cal.com's
handleNewRecurringBooking does: a uid per occurrence, one series uid, every
occurrence's webhook saying it recurs without naming the series) on one clock. Every
test judges each occurrence's appointment against what the sandbox holds for it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from connector.api import spec
from connector.core import accounts, appointments, listing
from connector.inputs import CancelInput
from connector.outputs import events
from mappings.models import Account, Appointment, Job
from mappings.times import to_api
from tests.support.factories import put, sandbox_user
from tests.support.world import make_world

COACHING = 124200  # the sandbox's recurring event type: weekly, 4 occurrences, 30 minutes
PATH = "/recurring-test"


@pytest.fixture
def world(db, clock, make_account, sealer):
    return make_world(db, clock, make_account, sealer)


@pytest.fixture
def start(clock):
    return clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)


def book_series_in_calcom(world, start, count: int | None = None):
    """An attendee books the series on the host's public page: no calsync metadata."""
    body = {"start": to_api(start), "eventTypeId": COACHING,
            "attendee": {"name": "Robin Learner", "email": "robin@example.org", "timeZone": "UTC"}}
    if count is not None:
        body["recurrenceCount"] = count
    first = world.sandbox.calendar.create_booking(body, PATH, "http://sandbox.test",
                                                  host=sandbox_user(world.sandbox, world.account))
    return world.sandbox.calendar.series(first.recurring_uid)


def appointment_of(uid: str) -> Appointment:
    return Appointment.get(Appointment.booking_uid == uid)


def assert_mirrors(world, occurrences) -> None:
    """Each occurrence's appointment says what the sandbox holds for it."""
    expected = {"accepted": "active", "cancelled": "cancelled"}
    for held in occurrences:
        appointment = appointment_of(held.uid)
        assert appointment.status == expected[held.status], (held.uid, held.start)
        assert (appointment.start_time, appointment.end_time) == (held.start, held.end)
        assert appointment.recurring_booking_uid == held.recurring_uid
        assert appointment.meeting_url == held.location


def test_a_series_booked_in_calcom_is_one_appointment_per_occurrence(db, clock, world, start):
    occurrences = book_series_in_calcom(world, start)
    world.run_all(clock)
    assert [b.start for b in occurrences] == [start + timedelta(weeks=k) for k in range(4)]
    assert Appointment.select().count() == 4
    assert_mirrors(world, occurrences)
    meetings = {appointment_of(b.uid).meeting_url for b in occurrences}
    assert len(meetings) == 4  # each occurrence keeps its own meeting link
    rows = Appointment.select()
    assert {row.source for row in rows} == {"calcom"}
    cancel_link = listing.search(world.account.id, listing.parse_search(
        {"recurring_booking_uid": occurrences[0].recurring_uid}), "https://cal.com").items[0][
        "manage_links"]["cancel"]
    assert "allRemainingBookings=true" in cancel_link


def test_the_list_filters_by_series(db, clock, world, start):
    first = book_series_in_calcom(world, start, count=2)
    other = book_series_in_calcom(world, start + timedelta(hours=2), count=3)
    world.run_all(clock)
    for series in (first, other):
        page = listing.search(world.account.id, listing.parse_search(
            {"recurring_booking_uid": series[0].recurring_uid}), "https://cal.com")
        assert page.total == len(series)
        assert [item["booking_uid"] for item in page.items] == [b.uid for b in series]
        assert {item["recurring_booking_uid"] for item in page.items} == {series[0].recurring_uid}


def test_cancelling_this_and_all_remaining_cancels_exactly_those(db, clock, world, start):
    occurrences = book_series_in_calcom(world, start)
    world.run_all(clock)
    clock.advance(days=2)  # the first occurrence is over: "all remaining" starts after it
    third, sent = occurrences[2], len(world.sandbox.hub.sent)
    world.sandbox.calendar.cancel_remaining(third.uid, "moving away", PATH, by_host=False)
    announced = [json.loads(d.body)["payload"] for d in world.sandbox.hub.sent[sent:]]
    assert [(p["uid"], "recurringEvent" in p) for p in announced] == [(third.uid, True)]  # one webhook
    world.run_all(clock)
    assert [b.status for b in occurrences] == ["accepted", "cancelled", "cancelled", "cancelled"]
    assert_mirrors(world, occurrences)
    for held in occurrences[1:]:
        appointment = appointment_of(held.uid)
        assert (appointment.cancelled_by, appointment.cancellation_reason) == ("attendee", "moving away")


def test_cancelling_an_occurrence_and_the_later_ones_is_followed_though_one_is_named(db, clock, world, start):
    """cancelSubsequentBookings: Cal.com's webhook names the occurrence cancelled, not the others."""
    occurrences = book_series_in_calcom(world, start)
    world.run_all(clock)
    third, sent = occurrences[2], len(world.sandbox.hub.sent)
    world.sandbox.calendar.cancel(third.uid, {"cancelSubsequentBookings": True,
                                              "cancellationReason": "course ends early"},
                                  PATH, by_host=True)
    announced = [json.loads(d.body)["payload"] for d in world.sandbox.hub.sent[sent:]]
    assert [(p["uid"], "recurringEvent" in p) for p in announced] == [(third.uid, False)]
    world.run_all(clock)
    assert [b.status for b in occurrences] == ["accepted", "accepted", "cancelled", "cancelled"]
    assert_mirrors(world, occurrences)
    assert appointment_of(occurrences[3].uid).cancelled_by == "host"


def test_cancelling_the_series_uid_cancels_every_remaining_occurrence(db, clock, world, start):
    occurrences = book_series_in_calcom(world, start)
    world.run_all(clock)
    world.sandbox.calendar.cancel_remaining(occurrences[0].recurring_uid, "host away", PATH, by_host=True)
    world.run_all(clock)
    assert {b.status for b in occurrences} == {"cancelled"}
    assert_mirrors(world, occurrences)


def test_a_missed_series_cancel_is_repaired_by_the_reconciler(db, clock, world, start):
    occurrences = book_series_in_calcom(world, start)
    world.run_all(clock)
    world.sandbox.hub.drop_rate = 1.0
    world.sandbox.calendar.cancel_remaining(occurrences[1].uid, "", PATH, by_host=False)
    world.sandbox.hub.drop_rate = 0.0
    world.run_all(clock)
    assert appointment_of(occurrences[1].uid).status == "active"  # nothing said so yet
    world.reconciler.run(world.account.id, full=False, trigger="test")
    world.run_all(clock)
    assert {b.status for b in occurrences} == {"cancelled"}
    assert_mirrors(world, occurrences)


def test_a_crm_appointment_on_a_recurring_event_type_books_the_series_once(db, clock, world, start):
    """The create answers every occurrence; each also arrives as a webhook naming the CRM's
    appointment. The first occurrence is the CRM's appointment, the others appointments of their
    own in its series, described as the CRM described the first — and none is a duplicate."""
    put(db, world.account, "crm-course", now=clock.now(), start_time=to_api(start),
        event_type_id=COACHING, title="Coaching with Robin", label="course")
    world.run_all(clock)
    crm = Appointment.get(Appointment.external_id == "crm-course")
    occurrences = world.sandbox.calendar.series(crm.recurring_booking_uid)
    assert world.sandbox.calendar.created_count == 4 and len(occurrences) == 4
    assert crm.booking_uid == occurrences[0].uid and (crm.status, crm.sync_state) == ("active", "synced")
    assert {b.status for b in occurrences} == {"accepted"}  # no occurrence was cancelled as a duplicate
    assert_mirrors(world, occurrences)
    siblings = [appointment_of(b.uid) for b in occurrences[1:]]
    assert {(s.title, s.label, s.sync_state) for s in siblings} == {("Coaching with Robin", "course", "synced")}
    assert Appointment.select().count() == 4
    assert not Job.select().where(Job.status == "dead").exists()


def test_the_crm_cancelling_one_occurrence_leaves_the_others(db, clock, world, start):
    put(db, world.account, "crm-course", now=clock.now(), start_time=to_api(start), event_type_id=COACHING)
    world.run_all(clock)
    crm = Appointment.get(Appointment.external_id == "crm-course")
    occurrences = world.sandbox.calendar.series(crm.recurring_booking_uid)
    second = appointment_of(occurrences[1].uid)
    principal = accounts.Principal(world.account.id, "tok", "crm", frozenset(accounts.SCOPES))
    appointments.cancel(db, principal, second.external_id, CancelInput(reason="holiday"), now=clock.now())
    world.run_all(clock)
    assert [b.status for b in occurrences] == ["accepted", "cancelled", "accepted", "accepted"]
    assert_mirrors(world, occurrences)


def test_every_crm_event_of_a_series_matches_its_documented_schema(db, clock, world, start):
    """The CRM hears of each occurrence alone, in bodies /openapi.json's ``webhooks`` describe."""
    Account.update(callback_url="https://crm.example.test/hooks").where(
        Account.id == world.account.id).execute()
    put(db, world.account, "crm-course", now=clock.now(), start_time=to_api(start), event_type_id=COACHING)
    world.run_all(clock)
    crm = Appointment.get(Appointment.external_id == "crm-course")
    world.sandbox.calendar.cancel_remaining(crm.recurring_booking_uid, "host away", PATH, by_host=True)
    world.run_all(clock)
    document = spec.document()
    assert set(document["webhooks"]) == {*events.APPOINTMENT_EVENTS, events.EVENT_TYPES_CHANGED,
                                         events.REMINDER_DUE}
    registry = Registry().with_resource("urn:calsync", DRAFT202012.create_resource(document))
    bodies = [json.loads(job.payload["body"]) for job in
              Job.select().where(Job.kind == events.DELIVER_EVENT).order_by(Job.id)]
    for body in bodies:
        pointer = f"urn:calsync#/webhooks/{body['type']}/post/requestBody/content/application~1json/schema"
        jsonschema.Draft202012Validator({"$ref": pointer}, registry=registry).validate(body)
    kinds = [(body["type"], body["data"]["booking_uid"]) for body in bodies]
    occurrences = world.sandbox.calendar.series(crm.recurring_booking_uid)
    assert sorted(kinds) == sorted([("appointment.synced", occurrences[0].uid)]
                                   + [("appointment.created", b.uid) for b in occurrences[1:]]
                                   + [("appointment.cancelled", b.uid) for b in occurrences])
