"""The sandbox's answers, checked against Cal.com's own spec so it cannot drift unnoticed."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from connector.sandbox.app import create_sandbox
from tests.support import spec
from tests.support.shared import needs_shared

pytestmark = needs_shared

BOOKINGS = {"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"}


@pytest.fixture
def sandbox(clock):
    return create_sandbox(clock)


@pytest.fixture
def http(sandbox):
    return TestClient(sandbox.app)


def _book(http, start="2026-03-17T10:00:00Z", event_type=123456, **extra):
    body = {"start": start, "eventTypeId": event_type,
            "attendee": {"name": "Alex", "email": "alex@example.org", "timeZone": "UTC"},
            "metadata": {"calsync_appointment_id": "apt_1"}, **extra}
    return http.post("/v2/bookings", json=body, headers=BOOKINGS)


def test_create_get_and_list_match_the_spec(http):
    created = _book(http, guests=["g@example.org"])
    assert created.status_code == 201
    assert spec.errors_of(spec.response_validator("/v2/bookings", "post", 201), created.json()) == []
    uid = created.json()["data"]["uid"]
    got = http.get(f"/v2/bookings/{uid}", headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}", "get", 200), got.json()) == []
    listed = http.get("/v2/bookings", headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings", "get", 200), listed.json()) == []


def test_a_pending_booking_matches_the_spec(http):
    created = _book(http, event_type=123789)
    assert created.json()["data"]["status"] == "pending"
    assert spec.errors_of(spec.response_validator("/v2/bookings", "post", 201), created.json()) == []


def test_event_types_and_me_match_the_spec(http):
    types = http.get("/v2/event-types", headers={"cal-api-version": "2024-06-14",
                                                 "Authorization": "Bearer cal_test"})
    assert spec.errors_of(spec.response_validator("/v2/event-types", "get", 200), types.json()) == []
    me = http.get("/v2/me", headers={"Authorization": "Bearer cal_test"})
    assert spec.errors_of(spec.response_validator("/v2/me", "get", 200), me.json()) == []


def test_slots_match_the_range_shape(http):
    # The spec's slots schema describes the data map, and only its "range" alternative
    # matches what Cal.com returns (objects with start; REFERENCE §5.8).
    answer = http.get("/v2/slots", params={"eventTypeId": 123456, "start": "2026-03-17",
                                            "end": "2026-03-18", "timeZone": "Europe/Berlin",
                                            "format": "range"},
                      headers={"cal-api-version": "2024-09-04"})
    schema = spec.operation("/v2/slots", "get")["responses"]["200"]["content"]["application/json"]["schema"]
    range_format = spec.validator(schema["oneOf"][1])
    assert answer.json()["data"]
    assert spec.errors_of(range_format, answer.json()["data"]) == []


def test_the_pagination_object_matches_the_spec(http):
    for hour in (9, 10, 11):
        _book(http, start=f"2026-03-17T{hour:02d}:00:00Z")
    page = http.get("/v2/bookings", params={"take": 2, "skip": 2}, headers=BOOKINGS).json()
    validator = spec.component("PaginationMetaDto")
    assert spec.errors_of(validator, page["pagination"]) == []


def test_reschedule_cancel_and_mark_absent_match_the_spec(http, clock):
    uid = _book(http).json()["data"]["uid"]
    moved = http.post(f"/v2/bookings/{uid}/reschedule", json={"start": "2026-03-18T10:00:00Z"},
                      headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}/reschedule", "post", 201),
                          moved.json()) == []
    new_uid = moved.json()["data"]["uid"]
    clock.advance(days=2, hours=2)
    absent = http.post(f"/v2/bookings/{new_uid}/mark-absent", json={"host": True}, headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}/mark-absent", "post", 200),
                          absent.json()) == []
    other = _book(http, start="2026-03-19T10:00:00Z").json()["data"]["uid"]
    cancelled = http.post(f"/v2/bookings/{other}/cancel", json={"cancellationReason": "x"},
                          headers=BOOKINGS)
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}/cancel", "post", 200),
                          cancelled.json()) == []


def test_a_recurring_series_matches_the_spec(http, clock):
    """Create and GET of a series answer an array of RecurringBookingOutput_2024_08_13; cancelling
    the series' uid answers the series; the event type names its Recurrence_2024_06_14."""
    created = _book(http, event_type=124200, recurrenceCount=3)
    assert created.status_code == 201
    occurrences = created.json()["data"]
    assert isinstance(occurrences, list) and len(occurrences) == 3
    assert spec.errors_of(spec.response_validator("/v2/bookings", "post", 201), created.json()) == []
    recurring = spec.component("RecurringBookingOutput_2024_08_13")
    for occurrence in occurrences:
        assert spec.errors_of(recurring, occurrence) == []
    series_uid = occurrences[0]["recurringBookingUid"]
    assert {o["recurringBookingUid"] for o in occurrences} == {series_uid}
    assert len({o["uid"] for o in occurrences}) == len({o["location"] for o in occurrences}) == 3
    got = http.get(f"/v2/bookings/{series_uid}", headers=BOOKINGS)
    assert [o["uid"] for o in got.json()["data"]] == [o["uid"] for o in occurrences]
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}", "get", 200), got.json()) == []
    cancelled = http.post(f"/v2/bookings/{series_uid}/cancel", json={"cancellationReason": "x"},
                          headers=BOOKINGS)
    assert {o["status"] for o in cancelled.json()["data"]} == {"cancelled"}
    assert spec.errors_of(spec.response_validator("/v2/bookings/{bookingUid}/cancel", "post", 200),
                          cancelled.json()) == []
    types = http.get("/v2/event-types", headers={"cal-api-version": "2024-06-14",
                                                 "Authorization": "Bearer cal_test"}).json()["data"]
    rule = next(t["recurrence"] for t in types if t["id"] == 124200)
    assert spec.errors_of(spec.component("Recurrence_2024_06_14"), rule) == []


def test_a_recurring_event_type_refuses_more_occurrences_than_its_rule(http):
    refused = _book(http, event_type=124200, recurrenceCount=9)
    assert refused.status_code == 400
    assert "recurrenceCount" in refused.json()["error"]["message"]
