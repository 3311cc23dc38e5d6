from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connector import errors
from connector.calcom import BookingFilters, CalcomClient
from tests.fixtures import calcom_shapes

BASE = "https://calcom.test"
KEY = "cal_test_key_123"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def api():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client(sleeps) -> CalcomClient:
    return CalcomClient(httpx.Client(), base_url=BASE, api_key=KEY, connect_timeout=3,
                        read_timeout=7, read_attempts=3, sleep=sleeps.append)


CREATE_BODY = {"start": "2026-03-17T14:00:00Z", "eventTypeId": 123456,
               "attendee": {"name": "A", "email": "a@example.org", "timeZone": "UTC"}}


def test_each_family_sends_its_own_api_version_and_the_key(api, client):
    bookings = api.get("/v2/bookings").respond(json=calcom_shapes.page([]))
    types = api.get("/v2/event-types").respond(json=calcom_shapes.envelope([calcom_shapes.event_type()]))
    me = api.get("/v2/me").respond(json=calcom_shapes.envelope(
        {"id": 1, "username": "u", "email": "u@example.org", "timeZone": "UTC"}))
    client.list_bookings()
    client.list_event_types()
    client.get_me()
    assert bookings.calls.last.request.headers["cal-api-version"] == "2024-08-13"
    assert types.calls.last.request.headers["cal-api-version"] == "2024-06-14"
    assert "cal-api-version" not in me.calls.last.request.headers
    for route in (bookings, types, me):
        assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_every_call_has_explicit_timeouts(api, client):
    route = api.get("/v2/bookings/abc").respond(json=calcom_shapes.envelope(calcom_shapes.booking()))
    client.get_booking("abc")
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout == {"connect": 3, "read": 7, "write": 7, "pool": 3}


def test_create_returns_a_typed_booking(api, client):
    route = api.post("/v2/bookings").respond(201, json=calcom_shapes.envelope(calcom_shapes.booking()))
    booking = client.create_booking(CREATE_BODY)
    assert booking.uid == "bk1uid0000000000000000" and booking.status == "accepted"
    assert json.loads(route.calls.last.request.content) == CREATE_BODY


def _occurrence(uid: str, start: str, series: str = "series0000000000000001") -> dict:
    end = start.replace(":00:00.000Z", ":30:00.000Z")
    return {**calcom_shapes.booking(uid=uid), "start": start, "end": end, "recurringBookingUid": series}


def test_a_series_create_answers_its_first_occurrence_and_a_series_reads_every_one(api, client):
    later = _occurrence("occ2uid000000000000000", "2026-03-24T14:00:00.000Z")
    first = _occurrence("occ1uid000000000000000", "2026-03-17T14:00:00.000Z")
    api.post("/v2/bookings").respond(201, json=calcom_shapes.envelope([later, first]))
    created = client.create_booking(CREATE_BODY)
    assert (created.uid, created.recurring_booking_uid) == ("occ1uid000000000000000", "series0000000000000001")
    api.get("/v2/bookings/series0000000000000001").respond(json=calcom_shapes.envelope([later, first]))
    assert [b.uid for b in client.get_series("series0000000000000001")] == [
        "occ1uid000000000000000", "occ2uid000000000000000"]
    api.get("/v2/bookings/occ1uid000000000000000").respond(json=calcom_shapes.envelope(first))
    assert [b.uid for b in client.get_series("occ1uid000000000000000")] == ["occ1uid000000000000000"]


@pytest.mark.parametrize("failure", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset"),
                                     httpx.WriteTimeout("slow")])
def test_a_post_without_an_answer_has_an_unknown_outcome(api, client, failure, sleeps):
    api.post("/v2/bookings").mock(side_effect=failure)
    with pytest.raises(errors.CalcomOutcomeUnknown):
        client.create_booking(CREATE_BODY)
    assert sleeps == []  # never retried blindly: the caller must search first


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_on_create_has_an_unknown_outcome(api, client, status):
    api.post("/v2/bookings").respond(status, json={"status": "error", "error": {"code": "X", "message": "boom"}})
    with pytest.raises(errors.CalcomOutcomeUnknown) as caught:
        client.create_booking(CREATE_BODY)
    assert caught.value.status == status


def test_a_201_with_an_unreadable_body_is_an_unknown_outcome(api, client):
    api.post("/v2/bookings").respond(201, content=b"<html>proxy</html>")
    with pytest.raises(errors.CalcomOutcomeUnknown):
        client.create_booking(CREATE_BODY)


def test_a_refused_connection_is_retried_briefly_even_for_a_post(api, client, sleeps):
    route = api.post("/v2/bookings")
    route.side_effect = [httpx.ConnectError("refused"),
                         httpx.Response(201, json=calcom_shapes.envelope(calcom_shapes.booking()))]
    assert client.create_booking(CREATE_BODY).uid
    assert route.call_count == 2 and len(sleeps) == 1 and sleeps[0] <= 2.2


def test_reads_are_retried_then_reported_unavailable(api, client, sleeps):
    route = api.get("/v2/bookings").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(errors.CalcomUnavailable) as caught:
        client.list_bookings()
    assert not isinstance(caught.value, errors.CalcomOutcomeUnknown)
    assert route.call_count == 3 and len(sleeps) == 2


def test_a_429_carries_the_reset_and_is_not_retried_in_the_call(api, client, sleeps):
    route = api.get("/v2/bookings").respond(
        429, headers={"X-RateLimit-Limit-Default": "120", "X-RateLimit-Remaining-Default": "0",
                      "X-RateLimit-Reset-Default": "42"},
        json={"status": "error", "timestamp": "x", "path": "/v2/bookings",
              "error": {"code": "ThrottlerException", "message": "Too many requests."}})
    with pytest.raises(errors.CalcomRateLimited) as caught:
        client.list_bookings()
    assert caught.value.retry_after == 42 and caught.value.code == "ThrottlerException"
    assert route.call_count == 1 and sleeps == []


def test_rate_limit_headers_are_reported_on_every_answer(api, sleeps):
    seen = []
    client = CalcomClient(httpx.Client(), base_url=BASE, api_key=KEY, sleep=sleeps.append,
                          on_rate_limit=seen.append)
    api.get("/v2/bookings").respond(json=calcom_shapes.page([]), headers={
        "X-RateLimit-Limit-Default": "120", "X-RateLimit-Remaining-Default": "99",
        "X-RateLimit-Reset-Default": "17", "X-RateLimit-Remaining-Short": "3",
        "X-RateLimit-Reset-Short": "1"})
    client.list_bookings()
    assert seen[0].remaining == 3 and seen[0].reset_seconds == 17


@pytest.mark.parametrize(("status", "body", "kind", "code", "message"), [
    # 1. Nest HttpException
    (400, {"status": "error", "timestamp": "t", "path": "/v2/bookings",
           "error": {"code": "BadRequestException", "message": "end property is wrong",
                     "details": {"message": "end property is wrong", "error": "Bad Request",
                                 "statusCode": 400}}},
     errors.CalcomRejected, "BadRequestException", "end property is wrong"),
    # 2. Prisma
    (404, {"status": "error", "timestamp": "t", "path": "/v2/bookings/x",
           "error": {"code": "NOT_FOUND", "message": "Record to update not found."}},
     errors.CalcomRejected, "NOT_FOUND", "Record to update not found."),
    # 3. tRPC: a generic message
    (400, {"status": "error", "timestamp": "t", "path": "/v2/bookings/x/confirm",
           "error": {"code": "TRPCError",
                     "message": "Bad request: Please check your request data and try again"}},
     errors.CalcomRejected, "TRPCError", "Bad request: Please check your request data and try again"),
    # 4. booking-core HttpError through Nest's default filter
    (400, {"statusCode": 400, "message": "Cancellation reason is required when you are the host"},
     errors.CalcomRejected, None, "Cancellation reason is required when you are the host"),
    (409, {"statusCode": 409, "message": "booking_conflict_error"},
     errors.CalcomConflict, "booking_conflict_error", "booking_conflict_error"),
    (401, {"status": "error", "timestamp": "t", "path": "/v2/me",
           "error": {"code": "UnauthorizedException",
                     "message": "ApiAuthStrategy - api key - Your api key is not valid"}},
     errors.CalcomAuthError, "UnauthorizedException", "ApiAuthStrategy - api key - Your api key is not valid"),
    # class-validator details with no message at the top
    (400, {"status": "error", "error": {"code": "BadRequestException",
                                        "details": {"errors": [{"constraints": {"isEmail": "email must be an email"}}]}}},
     errors.CalcomRejected, "BadRequestException", "email must be an email"),
    # Nest default filter with a list of messages
    (400, {"statusCode": 400, "message": ["start must be a date", "attendee must be an object"], "error": "Bad Request"},
     errors.CalcomRejected, "Bad Request", "start must be a date; attendee must be an object"),
])
def test_all_four_error_shapes_are_read(api, client, status, body, kind, code, message):
    api.post("/v2/bookings").respond(status, json=body)
    with pytest.raises(kind) as caught:
        client.create_booking(CREATE_BODY)
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code, caught.value.message) == (status, code, message)


def test_a_non_json_error_keeps_its_text(api, client):
    api.get("/v2/bookings/x").respond(404, text="Not Found")
    with pytest.raises(errors.CalcomRejected, match="Not Found"):
        client.get_booking("x")


def test_every_filter_is_sent_under_its_real_name(api, client):
    route = api.get("/v2/bookings").respond(json=calcom_shapes.page([]))
    when = datetime(2026, 3, 1, tzinfo=UTC)
    client.list_bookings(BookingFilters(
        status=("upcoming", "cancelled"), attendee_email="a@example.org", attendee_name="A B",
        booking_uid="u1", event_type_id=1, event_type_ids=(1, 2), team_id=3, teams_ids=(3, 4),
        after_start=when, before_end=when, after_created_at=when, before_created_at=when,
        after_updated_at=when, before_updated_at=when, sort_updated_at="asc", take=50, skip=100))
    query = dict(route.calls.last.request.url.params)
    assert query == {
        "status": "upcoming,cancelled", "attendeeEmail": "a@example.org", "attendeeName": "A B",
        "bookingUid": "u1", "eventTypeId": "1", "eventTypeIds": "1,2", "teamId": "3",
        "teamsIds": "3,4", "afterStart": "2026-03-01T00:00:00Z", "beforeEnd": "2026-03-01T00:00:00Z",
        "afterCreatedAt": "2026-03-01T00:00:00Z", "beforeCreatedAt": "2026-03-01T00:00:00Z",
        "afterUpdatedAt": "2026-03-01T00:00:00Z", "beforeUpdatedAt": "2026-03-01T00:00:00Z",
        "sortUpdatedAt": "asc", "take": "50", "skip": "100"}


@pytest.mark.parametrize("bad", [dict(take=0), dict(take=251), dict(skip=-1), dict(sort_start="up")])
def test_impossible_filters_are_refused_before_sending(bad):
    with pytest.raises(ValueError):
        BookingFilters(**bad).to_query()


def test_iterating_follows_pages(api, client):
    first = [calcom_shapes.booking(uid=f"u{i:021d}", id=i) for i in range(2)]
    second = [calcom_shapes.booking(uid="u999999999999999999999", id=9)]
    route = api.get("/v2/bookings")
    route.side_effect = [httpx.Response(200, json=calcom_shapes.page(first, total=3, take=2)),
                         httpx.Response(200, json=calcom_shapes.page(second, total=3, skip=2, take=2))]
    pages = list(client.iter_bookings(BookingFilters(take=2)))
    assert [len(p.bookings) for p in pages] == [2, 1]
    assert [c.request.url.params["skip"] for c in route.calls] == ["0", "2"]


def test_a_booking_uid_is_escaped_in_the_path(api, client):
    route = api.get("/v2/bookings/a%2Fb").respond(json=calcom_shapes.envelope(calcom_shapes.booking()))
    client.get_booking("a/b")
    assert route.called


def test_the_key_is_not_in_the_repr(client):
    assert KEY not in repr(client)


def test_paging_stops_on_a_repeated_page(api, client, caplog):
    """A server that ignores skip and says there is always a next page would be paged for ever."""
    same = calcom_shapes.page([calcom_shapes.booking(uid="a" * 22), calcom_shapes.booking(uid="b" * 22)],
                              total=1000, take=2)
    route = api.get("/v2/bookings").respond(json=same)
    with caplog.at_level("WARNING", logger="calsync.calcom"):
        pages = list(client.iter_bookings(BookingFilters(take=2)))
    assert len(pages) == 1 and route.call_count == 2
    assert [r.action for r in caplog.records] == ["calcom.paging_stopped"]


def test_paging_stops_once_total_items_have_come(api, client, caplog):
    def page(request):
        skip = int(request.url.params["skip"])
        body = calcom_shapes.page([calcom_shapes.booking(uid=f"{skip:022d}")], total=3, skip=skip, take=1)
        body["pagination"]["hasNextPage"] = True  # says so for ever
        return httpx.Response(200, json=body)

    api.get("/v2/bookings").mock(side_effect=page)
    with caplog.at_level("WARNING", logger="calsync.calcom"):
        pages = list(client.iter_bookings(BookingFilters(take=1)))
    assert len(pages) == 3 and "totalItems reached" in caplog.records[0].getMessage()


@pytest.mark.parametrize("body", [{"status": "success", "data": {"not": "a list"}},
                                  {"status": "success", "data": [], "pagination": "nope"},
                                  {"status": "success", "data": [], "pagination": {"totalItems": "many"}}])
def test_a_list_answer_of_the_wrong_shape_is_unavailable_not_a_crash(api, client, body):
    api.get("/v2/bookings").respond(json=body)
    with pytest.raises(errors.CalcomUnavailable):
        client.list_bookings()
