"""Seated event types in the sandbox, as Cal.com's handleSeats makes them.

One booking per time slot, shared by its attendees, each with a seat (``seatUid``);
joining, leaving and moving act on one seat. Cal.com's webhooks name the booking and
the attendee concerned; only a booking's first seat is named in its webhook
(``attendeeSeatId``), and a seat's cancellation names no seat at all.
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from tests.support import spec
from tests.support.shared import needs_shared

BOOKINGS = {"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"}
WORKSHOP = 124000  # the sandbox's seated event type: 3 seats, 60 minutes
START = "2026-03-17T10:00:00Z"


@pytest.fixture
def sent():
    return []


@pytest.fixture
def sandbox(clock, sent):
    made = create_sandbox(clock, SandboxSettings(rate_limit=1000),
                          send=lambda url, body, headers: sent.append(json.loads(body)))
    return made


@pytest.fixture
def http(sandbox):
    client = TestClient(sandbox.app)
    client.post("/v2/webhooks", json={"subscriberUrl": "https://crm.example/h", "active": True,
                                      "triggers": ["BOOKING_CREATED", "BOOKING_CANCELLED",
                                                   "BOOKING_RESCHEDULED"]}, headers=BOOKINGS)
    return client


def take(http, email: str, start: str = START, **extra):
    body = {"start": start, "eventTypeId": WORKSHOP,
            "attendee": {"name": email.split("@")[0], "email": email, "timeZone": "UTC"},
            "metadata": {"calsync_appointment_id": f"apt_{email.split('@')[0]}"}, **extra}
    return http.post("/v2/bookings", json=body, headers=BOOKINGS)


def test_attendees_of_one_slot_share_a_booking_each_in_a_seat_of_their_own(http, sent):
    first = take(http, "ann@example.org").json()["data"]
    second = take(http, "bob@example.org").json()["data"]
    assert first["uid"] == second["uid"] and first["seatUid"] != second["seatUid"]
    assert [(a["email"], a["seatUid"], a["metadata"]) for a in second["attendees"]] == [
        ("ann@example.org", first["seatUid"], {"calsync_appointment_id": "apt_ann"}),
        ("bob@example.org", second["seatUid"], {"calsync_appointment_id": "apt_bob"})]
    assert "guests" not in second  # GetSeatedBookingOutput has none
    created = [body["payload"] for body in sent if body["triggerEvent"] == "BOOKING_CREATED"]
    assert [p["uid"] for p in created] == [first["uid"]] * 2
    assert [[a["email"] for a in p["attendees"]] for p in created] == [["ann@example.org"],
                                                                       ["bob@example.org"]]
    assert created[0]["attendeeSeatId"] == first["seatUid"] and "attendeeSeatId" not in created[1]
    assert created[1]["metadata"]["calsync_appointment_id"] == "apt_bob"


def test_a_full_slot_and_a_second_seat_for_one_attendee_are_refused(http):
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        assert take(http, email).status_code == 201
    full = take(http, "d@example.org")
    assert (full.status_code, full.json()["message"]) == (409, "booking_seats_full_error")
    other = "2026-03-18T10:00:00Z"
    take(http, "a@example.org", start=other)
    again = take(http, "a@example.org", start=other)
    assert (again.status_code, again.json()["message"]) == (409, "already_signed_up_for_this_booking_error")


def test_slots_show_the_seats_left(http):
    uid = take(http, "ann@example.org").json()["data"]["uid"]
    slots = http.get("/v2/slots", params={"eventTypeId": WORKSHOP, "start": "2026-03-17",
                                           "end": "2026-03-17"},
                     headers={"cal-api-version": "2024-09-04", "Authorization": "Bearer cal_test"}
                     ).json()["data"]["2026-03-17"]
    taken = next(s for s in slots if s["start"].startswith("2026-03-17T10:00"))
    assert (taken["seatsBooked"], taken["seatsRemaining"], taken["seatsTotal"], taken["bookingUid"]) == (
        1, 2, 3, uid)


def test_cancelling_a_seat_leaves_the_others_booked(http, sent):
    ann = take(http, "ann@example.org").json()["data"]
    bob = take(http, "bob@example.org").json()["data"]
    left = http.post(f"/v2/bookings/{ann['uid']}/cancel",
                     json={"seatUid": bob["seatUid"], "cancellationReason": "cannot come"}, headers=BOOKINGS)
    assert left.status_code == 200
    assert left.json()["data"]["status"] == "accepted"
    assert [a["email"] for a in left.json()["data"]["attendees"]] == ["ann@example.org"]
    cancel = [b["payload"] for b in sent if b["triggerEvent"] == "BOOKING_CANCELLED"][0]
    assert cancel["uid"] == ann["uid"] and [a["email"] for a in cancel["attendees"]] == ["bob@example.org"]
    assert "metadata" not in cancel and "attendeeSeatId" not in cancel
    last = http.post(f"/v2/bookings/{ann['uid']}/cancel",
                     json={"seatUid": ann["seatUid"], "cancellationReason": "x"}, headers=BOOKINGS)
    assert last.json()["data"]["status"] == "cancelled"  # the last seat leaving ends the booking


def test_a_seat_moves_to_the_booking_at_the_new_time_or_to_a_new_one(http, sent):
    ann = take(http, "ann@example.org").json()["data"]
    bob = take(http, "bob@example.org").json()["data"]
    later = take(http, "cy@example.org", start="2026-03-17T12:00:00Z").json()["data"]
    moved = http.post(f"/v2/bookings/{ann['uid']}/reschedule",
                      json={"start": "2026-03-17T12:00:00Z", "seatUid": bob["seatUid"]}, headers=BOOKINGS)
    assert moved.status_code == 201
    data = moved.json()["data"]
    assert data["uid"] == later["uid"] and data["seatUid"] == bob["seatUid"]  # the seat keeps its uid
    resched = [b["payload"] for b in sent if b["triggerEvent"] == "BOOKING_RESCHEDULED"][-1]
    assert (resched["uid"], resched["rescheduleUid"]) == (later["uid"], ann["uid"])
    assert resched["attendees"][0]["email"] == "bob@example.org"
    alone = http.post(f"/v2/bookings/{ann['uid']}/reschedule",
                      json={"start": "2026-03-17T14:00:00Z", "seatUid": ann["seatUid"]}, headers=BOOKINGS)
    fresh = alone.json()["data"]
    assert fresh["uid"] not in (ann["uid"], later["uid"]) and fresh["seatUid"] != ann["seatUid"]
    first = [b["payload"] for b in sent if b["triggerEvent"] == "BOOKING_RESCHEDULED"][-1]
    assert first["attendeeSeatId"] == fresh["seatUid"] and first["rescheduleUid"] == ann["uid"]
    old = http.get(f"/v2/bookings/{ann['uid']}", headers=BOOKINGS).json()["data"]
    assert old["status"] == "cancelled" and old["attendees"] == []  # its last seat left


def test_the_host_moves_a_whole_seated_booking_in_place(http, sent):
    ann = take(http, "ann@example.org").json()["data"]
    take(http, "bob@example.org")
    moved = http.post(f"/v2/bookings/{ann['uid']}/reschedule", json={"start": "2026-03-17T15:00:00Z"},
                      headers=BOOKINGS).json()["data"]
    assert moved["uid"] == ann["uid"] and moved["start"] == "2026-03-17T15:00:00.000Z"
    resched = [b["payload"] for b in sent if b["triggerEvent"] == "BOOKING_RESCHEDULED"][-1]
    assert resched["uid"] == resched["rescheduleUid"] == ann["uid"]
    assert [a["email"] for a in resched["attendees"]] == ["ann@example.org", "bob@example.org"]


@needs_shared
def test_seated_answers_match_the_spec(http):
    ann = take(http, "ann@example.org")
    assert spec.errors_of(spec.response_validator("/v2/bookings", "post", 201), ann.json()) == []
    uid, seat = ann.json()["data"]["uid"], ann.json()["data"]["seatUid"]
    take(http, "bob@example.org")
    got = http.get(f"/v2/bookings/{uid}", headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}", "get", 200), got.json()) == []
    moved = http.post(f"/v2/bookings/{uid}/reschedule", json={"start": "2026-03-17T12:00:00Z",
                                                              "seatUid": seat}, headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}/reschedule", "post", 201),
                          moved.json()) == []
    left = http.post(f"/v2/bookings/{uid}/cancel", json={"seatUid": got.json()["data"]["attendees"][-1][
        "seatUid"]}, headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}/cancel", "post", 200),
                          left.json()) == []
