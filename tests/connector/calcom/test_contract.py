"""Every request the client builds, checked against Cal.com's own spec (../shared/calcom/openapi.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connector.calcom import API_VERSIONS, BookingFilters, CalcomClient
from mappings.to_calcom import (
    BookingRequest,
    cancel_body,
    create_booking_body,
    mark_absent_body,
    reschedule_body,
)
from tests.fixtures import calcom_shapes
from tests.support import spec
from tests.support.shared import needs_shared

pytestmark = needs_shared

BASE = "https://calcom.test"
START = datetime(2026, 3, 17, 14, 0, tzinfo=UTC)

REQUESTS = [
    BookingRequest("apt_1", 123456, START, "Alex Prospect", "alex@example.org", "America/New_York"),
    BookingRequest("apt_2", 123457, START, "Sam", "sam@example.org", "Europe/Berlin",
                   attendee_phone="+4915112345678", guests=("g1@example.org", "g2@example.org"),
                   length_minutes=60),
]


@pytest.fixture
def api():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/v2/bookings").respond(201, json=calcom_shapes.envelope(calcom_shapes.booking()))
        router.get("/v2/bookings").respond(json=calcom_shapes.page([calcom_shapes.booking()]))
        router.get(url__regex=r"/v2/bookings/[^/]+$").respond(
            json=calcom_shapes.envelope(calcom_shapes.booking()))
        for action in ("reschedule", "cancel", "mark-absent"):
            router.post(url__regex=rf"/v2/bookings/[^/]+/{action}$").respond(
                201 if action == "reschedule" else 200,
                json=calcom_shapes.envelope(calcom_shapes.booking()))
        router.get("/v2/event-types").respond(json=calcom_shapes.envelope([calcom_shapes.event_type()]))
        router.get("/v2/me").respond(json=calcom_shapes.envelope(
            {"id": 1, "username": "u", "email": "u@example.org", "timeZone": "UTC"}))
        yield router


@pytest.fixture
def client():
    return CalcomClient(httpx.Client(), base_url=BASE, api_key="cal_test", sleep=lambda s: None)


@pytest.mark.parametrize("request_", REQUESTS, ids=["minimal", "everything"])
def test_create_bodies_match_the_spec_and_carry_no_unknown_field(api, client, request_):
    client.create_booking(create_booking_body(request_))
    sent = json.loads(api.calls.last.request.content)
    validator = spec.component("CreateBookingInput_2024_08_13", closed=("", "attendee"))
    assert spec.errors_of(validator, sent) == []
    assert sent["metadata"]["calsync_appointment_id"] == request_.appointment_id


def test_list_queries_use_only_declared_parameters_and_values(api, client):
    when = datetime(2026, 3, 1, tzinfo=UTC)
    client.list_bookings(BookingFilters(
        status=("upcoming", "recurring", "past", "cancelled", "unconfirmed"),
        attendee_email="a@example.org", attendee_name="A", booking_uid="u", event_type_id=1,
        event_type_ids=(1, 2), team_id=3, teams_ids=(3,), after_start=when, before_end=when,
        after_created_at=when, before_created_at=when, after_updated_at=when,
        before_updated_at=when, sort_start="asc", sort_end="desc", sort_created="asc",
        sort_updated_at="desc", take=250, skip=0))
    query = dict(api.calls.last.request.url.params)
    declared = {p["name"] for p in spec.operation("/v2/bookings", "get")["parameters"]
                if p["in"] == "query"}
    assert set(query) == declared  # every filter of the spec is reachable, and nothing else
    assert spec.query_problems("/v2/bookings", "get", query) == []


@pytest.mark.parametrize(("call", "path", "method"), [
    (lambda c: c.create_booking(create_booking_body(REQUESTS[0])), "/v2/bookings", "post"),
    (lambda c: c.list_bookings(), "/v2/bookings", "get"),
    (lambda c: c.get_booking("abc"), "/v2/bookings/{bookingUid}", "get"),
    (lambda c: c.reschedule_booking("abc", reschedule_body(START)),
     "/v2/bookings/{bookingUid}/reschedule", "post"),
    (lambda c: c.cancel_booking("abc", cancel_body(None)), "/v2/bookings/{bookingUid}/cancel", "post"),
    (lambda c: c.mark_absent("abc", mark_absent_body("a@example.org", True)),
     "/v2/bookings/{bookingUid}/mark-absent", "post"),
    (lambda c: c.list_event_types(), "/v2/event-types", "get"),
    (lambda c: c.get_me(), "/v2/me", "get"),
])
def test_each_call_sends_the_version_the_spec_declares(api, client, call, path, method):
    call(client)
    request = api.calls.last.request
    declared = {p["name"].lower(): p for p in spec.operation(path, method).get("parameters", [])
                if p["in"] == "header"}
    if "cal-api-version" in declared:
        assert request.headers["cal-api-version"] == declared["cal-api-version"]["schema"]["default"]
    else:
        assert "cal-api-version" not in request.headers
    assert request.headers["authorization"] == "Bearer cal_test"


def test_our_version_table_agrees_with_the_spec():
    defaults = {
        "bookings": spec.operation("/v2/bookings", "post"),
        "slots": spec.operation("/v2/slots", "get"),
        "event_types": spec.operation("/v2/event-types", "get"),
    }
    for family, op in defaults.items():
        header = next(p for p in op["parameters"] if p["name"] == "cal-api-version")
        assert API_VERSIONS[family] == header["schema"]["default"], family


@pytest.mark.parametrize(("call", "schema"), [
    (lambda c: c.reschedule_booking("abc", reschedule_body(START, "moved")),
     "RescheduleBookingInput_2024_08_13"),
    (lambda c: c.cancel_booking("abc", cancel_body(None)), "CancelBookingInput_2024_08_13"),
    (lambda c: c.cancel_booking("abc", cancel_body("the CRM's reason")), "CancelBookingInput_2024_08_13"),
    (lambda c: c.mark_absent("abc", mark_absent_body("a@example.org", False)),
     "MarkAbsentBookingInput_2024_08_13"),
], ids=["reschedule", "cancel-default-reason", "cancel-reason", "mark-absent"])
def test_change_bodies_match_the_spec_and_carry_no_unknown_field(api, client, call, schema):
    call(client)
    sent = json.loads(api.calls.last.request.content)
    assert spec.errors_of(spec.component(schema, closed=("",)), sent) == []
    if "Cancel" in schema:
        assert sent["cancellationReason"]  # a host's key must give one (REFERENCE §5.5)
