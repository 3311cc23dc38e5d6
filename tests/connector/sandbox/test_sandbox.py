from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.testclient import TestClient

from connector.sandbox.app import create_sandbox
from connector.sandbox.schedule import WeeklySchedule
from connector.settings import SandboxSettings
from tests.support.asgi import SyncASGITransport
from tests.support.factories import CONTROL, CONTROL_TOKEN

V_BOOKINGS = {"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"}


@pytest.fixture
def sandbox(clock):
    return create_sandbox(clock, SandboxSettings(rate_limit=1000, control_token=CONTROL_TOKEN))


@pytest.fixture
def http(sandbox):
    return TestClient(sandbox.app)


def book(http, start="2026-03-17T10:00:00Z", event_type=123456, email="alex@example.org", headers=None, **extra):
    body = {"start": start, "eventTypeId": event_type,
            "attendee": {"name": "Alex", "email": email, "timeZone": "UTC"}, **extra}
    return http.post("/v2/bookings", json=body, headers=headers or V_BOOKINGS)


# --- create -----------------------------------------------------------------------


def test_a_booking_is_created_with_calcoms_shape(http):
    answer = book(http, metadata={"calsync_appointment_id": "apt_1"})
    assert answer.status_code == 201
    data = answer.json()["data"]
    assert data["status"] == "accepted" and data["duration"] == 30
    assert data["start"] == "2026-03-17T10:00:00.000Z" and data["end"] == "2026-03-17T10:30:00.000Z"
    assert data["metadata"] == {"calsync_appointment_id": "apt_1"}
    assert data["location"].endswith(f"/video/{data['uid']}")
    assert len(data["uid"]) == 22


def test_the_meeting_room_page_exists(http):
    uid = book(http).json()["data"]["uid"]
    assert "Sandbox meeting room" in http.get(f"/video/{uid}").text


def test_without_the_bookings_version_the_route_is_missing(http):
    answer = book(http, headers={"Authorization": "Bearer cal_test"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NotFoundException"


def test_unknown_fields_are_refused_like_calcom(http):
    answer = book(http, end="2026-03-17T10:30:00Z")
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "error" and body["error"]["code"] == "BadRequestException"
    assert "property end should not exist" in body["error"]["message"]


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"start": "2026-03-17T10:00:00Z", "attendee": {"name": "A", "email": "a@b.co", "timeZone": "UTC"}},
     400, "Either eventTypeId"),
    ({"start": "2026-03-17T10:00:00Z", "eventTypeId": 1,
      "attendee": {"name": "A", "email": "a@b.co", "timeZone": "UTC"}}, 404, "was not found"),
    ({"start": "yesterday", "eventTypeId": 123456,
      "attendee": {"name": "A", "email": "a@b.co", "timeZone": "UTC"}}, 400, "ISO 8601"),
    ({"start": "2026-03-17T10:00:00Z", "eventTypeId": 123456,
      "attendee": {"name": "A", "email": "a@b.co", "timeZone": "Nowhere/City"}}, 400, "timeZone"),
    ({"start": "2026-03-17T10:00:00Z", "eventTypeId": 123456,
      "attendee": {"name": "A", "timeZone": "UTC"}}, 400, "email or attendee.phoneNumber"),
    ({"start": "2026-03-17T10:00:00Z", "eventTypeId": 123456, "lengthInMinutes": 45,
      "attendee": {"name": "A", "email": "a@b.co", "timeZone": "UTC"}}, 400, "lengthInMinutes"),
    ({"start": "2026-03-17T10:00:00Z", "eventTypeId": 123456, "metadata": {"k" * 41: "v"},
      "attendee": {"name": "A", "email": "a@b.co", "timeZone": "UTC"}}, 400, "40 characters"),
    ({"start": "2026-03-17T10:00:00Z", "eventTypeId": 123456, "attendee": {
        "name": "A", "email": "a@b.co", "timeZone": "UTC", "nickname": "x"}}, 400, "should not exist"),
])
def test_bad_create_bodies(http, body, status, fragment):
    answer = http.post("/v2/bookings", json=body, headers=V_BOOKINGS)
    assert answer.status_code == status
    assert fragment in answer.json()["error"]["message"]


def test_past_closed_and_taken_slots_are_refused(http, clock):
    past = book(http, start="2026-03-16T07:00:00Z")
    assert past.status_code == 400 and "past" in past.json()["error"]["message"]
    closed = book(http, start="2026-03-17T18:00:00Z")  # 19:00 in Berlin
    assert closed.status_code == 400
    saturday = book(http, start="2026-03-21T10:00:00Z")
    assert saturday.status_code == 400
    assert book(http).status_code == 201
    overlap = book(http, start="2026-03-17T10:15:00Z", email="other@example.org")
    assert overlap.status_code == 400
    assert "not available" in overlap.json()["error"]["message"]


def test_the_exact_same_slot_again_is_a_409_conflict(http):
    assert book(http).status_code == 201
    again = book(http, email="second@example.org")
    assert again.status_code == 409
    assert again.json() == {"statusCode": 409, "message": "booking_conflict_error"}


def test_several_lengths(http):
    answer = book(http, event_type=123457, lengthInMinutes=60)
    assert answer.status_code == 201 and answer.json()["data"]["duration"] == 60


def test_requires_confirmation_is_pending_and_a_repeat_returns_it(http):
    first = book(http, event_type=123789)
    assert first.json()["data"]["status"] == "pending"
    again = book(http, event_type=123789)
    assert again.status_code == 201 and again.json()["data"]["uid"] == first.json()["data"]["uid"]


# --- read -------------------------------------------------------------------------


def test_get_and_an_unknown_uid(http):
    uid = book(http).json()["data"]["uid"]
    assert http.get(f"/v2/bookings/{uid}", headers=V_BOOKINGS).json()["data"]["uid"] == uid
    missing = http.get("/v2/bookings/nope", headers=V_BOOKINGS)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Booking with uid=nope was not found in the database"


def test_listing_needs_a_key(http):
    answer = http.get("/v2/bookings", headers={"cal-api-version": "2024-08-13"})
    assert answer.status_code == 401
    assert http.get("/v2/bookings", headers={**V_BOOKINGS, "Authorization": "Bearer nope"}).status_code == 401


def test_listing_filters_buckets_and_pages(http, clock):
    for hour, email in ((9, "a@example.org"), (10, "b@example.org"), (11, "a@example.org")):
        assert book(http, start=f"2026-03-17T{hour:02d}:00:00Z", email=email).status_code == 201
    pending = book(http, start="2026-03-18T09:00:00Z", event_type=123789).json()["data"]["uid"]

    def uids(**params):
        return [b["uid"] for b in http.get("/v2/bookings", params=params, headers=V_BOOKINGS).json()["data"]]

    assert len(uids()) == 4
    assert len(uids(attendeeEmail="a@example.org")) == 2
    assert uids(status="unconfirmed") == [pending]
    assert len(uids(eventTypeId="123456")) == 3
    assert len(uids(afterStart="2026-03-17T10:00:00Z", beforeEnd="2026-03-17T11:30:00Z")) == 2
    starts = [b["start"] for b in http.get("/v2/bookings", params={"sortStart": "desc"},
                                            headers=V_BOOKINGS).json()["data"]]
    assert starts == sorted(starts, reverse=True)
    clock.set(datetime(2026, 3, 17, 12, 0, tzinfo=UTC))
    assert len(uids(status="past")) == 3 and len(uids(status="upcoming")) == 1
    page = http.get("/v2/bookings", params={"take": 3, "skip": 3}, headers=V_BOOKINGS).json()
    assert page["pagination"]["returnedItems"] == 1 and not page["pagination"]["hasNextPage"]
    assert page["pagination"]["hasPreviousPage"] and page["pagination"]["currentPage"] == 2
    bad = http.get("/v2/bookings", params={"take": 0}, headers=V_BOOKINGS)
    assert bad.status_code == 400


# --- slots ------------------------------------------------------------------------


def slots(http, day: str, zone="Europe/Berlin", key="cal_test", **extra):
    answer = http.get("/v2/slots", params={"eventTypeId": 123456, "start": day, "end": day,
                                            "timeZone": zone, **extra},
                      headers={"cal-api-version": "2024-09-04", "Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_slots_follow_the_schedule_across_a_dst_change(http, clock):
    # Europe/Berlin moves to summer time on 2026-03-29 (a Sunday); compare Friday and Monday.
    before = slots(http, "2026-03-27", zone="UTC")["2026-03-27"]
    after = slots(http, "2026-03-30", zone="UTC")["2026-03-30"]
    assert before[0]["start"] == "2026-03-27T08:00:00.000+00:00"
    assert after[0]["start"] == "2026-03-30T07:00:00.000+00:00"
    assert len(before) == len(after) == 16  # 09:00–17:00 local in 30-minute slots


def test_slots_leave_out_booked_and_past_times(http, clock):
    clock.set(datetime(2026, 3, 17, 9, 10, tzinfo=UTC))  # 10:10 in Berlin
    book(http, start="2026-03-17T10:00:00Z")  # 11:00–11:30 in Berlin
    day = slots(http, "2026-03-17")["2026-03-17"]
    starts = [s["start"][11:16] for s in day]
    assert starts[0] == "10:30" and "11:00" not in starts and "11:30" in starts
    assert slots(http, "2026-03-21") == {}  # a Saturday
    others = [s["start"][11:16] for s in slots(http, "2026-03-17", key="cal_other")["2026-03-17"]]
    assert "11:00" in others  # another user's calendar is free then


def test_schedule_parsing():
    schedule = WeeklySchedule.parse("Mon-Fri 09:00-12:00,13:00-17:00; Sat 10:00-14:00")
    zone = ZoneInfo("Europe/Berlin")
    assert len(schedule.open_intervals(date(2026, 3, 16), zone)) == 2
    assert len(schedule.open_intervals(date(2026, 3, 21), zone)) == 1
    assert schedule.open_intervals(date(2026, 3, 22), zone) == []
    start = datetime(2026, 3, 16, 11, 30, tzinfo=zone)
    assert schedule.is_open(start, start + timedelta(minutes=30), zone)
    assert not schedule.is_open(start, start + timedelta(minutes=60), zone)  # spans the lunch gap


# --- rate limits and faults -------------------------------------------------------


def test_the_throttler_blocks_after_the_limit_until_the_block_ends(clock):
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=3, rate_limit_window_seconds=60,
                                                    rate_limit_block_seconds=60))
    http = TestClient(sandbox.app)

    def call(key="cal_a"):
        return http.get("/v2/bookings", headers={**V_BOOKINGS, "Authorization": f"Bearer {key}"})

    remaining = [call().headers["x-ratelimit-remaining-default"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = call()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "ThrottlerException"
    assert refused.headers["x-ratelimit-remaining-default"] == "0"
    assert refused.headers["x-ratelimit-reset-default"] == "60"
    assert "retry-after" not in refused.headers
    assert call("cal_b").status_code == 200  # another key has its own allowance
    clock.advance(seconds=30)
    assert call().status_code == 429
    assert call().headers["x-ratelimit-reset-default"] == "30"
    clock.advance(seconds=31)
    assert call().status_code == 200


def test_fault_switches(sandbox, http):
    http.put("/_sandbox/faults", json={"POST /v2/bookings": {"error_next": 1}}, headers=CONTROL)
    failed = book(http)
    assert failed.status_code == 503 and sandbox.calendar.created_count == 0
    assert book(http).status_code == 201
    bad = http.put("/_sandbox/faults", json={"POST /v2/bookings": {"error_rate": 2}}, headers=CONTROL)
    assert bad.status_code == 400
    assert http.get("/_sandbox/state", headers=CONTROL).json()["injected"]["error"] == 1


def test_commit_then_drop_leaves_the_booking_behind(sandbox, http):
    http.put("/_sandbox/faults", json={"POST /v2/bookings": {"drop_next": 1}}, headers=CONTROL)
    client = httpx.Client(transport=SyncASGITransport(sandbox.app), base_url="http://sandbox")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v2/bookings", headers=V_BOOKINGS, json={
            "start": "2026-03-17T10:00:00Z", "eventTypeId": 123456,
            "attendee": {"name": "A", "email": "a@example.org", "timeZone": "UTC"}})
    assert sandbox.calendar.created_count == 1


# --- reschedule, cancel, mark absent ----------------------------------------------


def post(http, uid, action, body, headers=None):
    return http.post(f"/v2/bookings/{uid}/{action}", json=body, headers=headers or V_BOOKINGS)


def test_a_reschedule_makes_a_new_uid_and_links_both(http):
    old = book(http, event_type=123457, lengthInMinutes=60, metadata={"calsync_appointment_id": "apt_1"}).json()["data"]
    answer = post(http, old["uid"], "reschedule", {"start": "2026-03-18T09:00:00Z",
                                                   "reschedulingReason": "CRM moved it"})
    assert answer.status_code == 201
    new = answer.json()["data"]
    assert new["uid"] != old["uid"] and new["rescheduledFromUid"] == old["uid"]
    assert new["duration"] == 30  # the event type's default, not the old 60 (REFERENCE §5.4)
    assert new["metadata"] == {"calsync_appointment_id": "apt_1"}
    assert new["reschedulingReason"] == "CRM moved it"
    gone = http.get(f"/v2/bookings/{old['uid']}", headers=V_BOOKINGS).json()["data"]
    assert gone["status"] == "cancelled" and gone["rescheduledToUid"] == new["uid"]
    again = post(http, old["uid"], "reschedule", {"start": "2026-03-19T09:00:00Z"})
    assert again.status_code == 400 and new["uid"] in again.json()["error"]["message"]


def test_a_reschedule_may_keep_its_own_slot_but_not_take_anothers(http):
    first = book(http).json()["data"]
    book(http, start="2026-03-17T11:00:00Z", email="other@example.org")
    assert post(http, first["uid"], "reschedule", {"start": "2026-03-17T10:15:00Z"}).status_code == 201
    taken = book(http, start="2026-03-17T13:00:00Z", email="third@example.org").json()["data"]
    assert post(http, taken["uid"], "reschedule", {"start": "2026-03-17T11:00:00Z"}).status_code == 400
    assert post(http, taken["uid"], "reschedule", {"start": "2026-03-17T13:00:00Z",
                                                   "lengthInMinutes": 30}).status_code == 400


def test_cancel_rules(http, clock):
    uid = book(http).json()["data"]["uid"]
    needs_reason = post(http, uid, "cancel", {})
    assert needs_reason.status_code == 400
    assert needs_reason.json() == {"statusCode": 400,
                                   "message": "Cancellation reason is required when you are the host"}
    done = post(http, uid, "cancel", {"cancellationReason": "Cancelled in CRM"})
    assert done.status_code == 200
    data = done.json()["data"]
    assert (data["status"], data["cancellationReason"]) == ("cancelled", "Cancelled in CRM")
    twice = post(http, uid, "cancel", {"cancellationReason": "again"})
    assert twice.status_code == 400 and "cancelled already" in twice.json()["error"]["message"]
    by_attendee = book(http, start="2026-03-17T12:00:00Z").json()["data"]["uid"]
    assert post(http, by_attendee, "cancel", {}, headers={"cal-api-version": "2024-08-13"}).status_code == 401
    cancelled = http.post(f"/_sandbox/act/{by_attendee}/cancel", json={}, headers=CONTROL)
    assert cancelled.status_code == 200 and cancelled.json()["data"]["cancelledByEmail"] == "alex@example.org"
    ended = book(http, start="2026-03-17T13:00:00Z").json()["data"]["uid"]
    clock.set(datetime(2026, 3, 17, 14, 0, tzinfo=UTC))
    late = post(http, ended, "cancel", {"cancellationReason": "too late"})
    assert late.status_code == 400 and late.json()["message"] == "Cannot cancel a booking that has already ended"


def test_mark_absent_only_after_the_start(http, clock):
    booking = book(http).json()["data"]
    early = post(http, booking["uid"], "mark-absent", {"attendees": [{"email": "alex@example.org", "absent": True}]})
    assert early.status_code == 400 and "after their scheduled start" in early.json()["error"]["message"]
    clock.set(datetime(2026, 3, 17, 10, 5, tzinfo=UTC))
    marked = post(http, booking["uid"], "mark-absent",
                  {"attendees": [{"email": "alex@example.org", "absent": True}]}).json()["data"]
    assert marked["attendees"][0]["absent"] is True
    assert marked["updatedAt"] == booking["updatedAt"]  # attendee flags do not move updatedAt
    cleared = post(http, booking["uid"], "mark-absent",
                   {"attendees": [{"email": "alex@example.org", "absent": False}]}).json()["data"]
    assert cleared["attendees"][0]["absent"] is False
    host = post(http, booking["uid"], "mark-absent", {"host": True}).json()["data"]
    assert host["absentHost"] is True and host["updatedAt"] != booking["updatedAt"]
    no_key = post(http, booking["uid"], "mark-absent", {"host": True}, headers={"cal-api-version": "2024-08-13"})
    assert no_key.status_code == 401


def test_the_rate_limit_fault_blocks_the_key_for_the_block(clock):
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=1000, rate_limit_block_seconds=60,
                                                    control_token=CONTROL_TOKEN))
    http = TestClient(sandbox.app)
    http.put("/_sandbox/faults", json={"GET /v2/bookings": {"rate_limit_next": 1}}, headers=CONTROL)
    refused = http.get("/v2/bookings", headers=V_BOOKINGS)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-reset-default"] == "60"
    assert http.get("/v2/bookings/x", headers=V_BOOKINGS).status_code == 429  # the whole key
    clock.advance(seconds=60)
    assert http.get("/v2/bookings", headers=V_BOOKINGS).status_code == 200


def test_open_time_continues_across_midnight():
    schedule = WeeklySchedule.parse("Mon-Sun 00:00-24:00")
    zone = ZoneInfo("Europe/Berlin")
    late = datetime(2026, 3, 16, 23, 45, tzinfo=zone)
    assert schedule.is_open(late, late + timedelta(minutes=30), zone)
    workday = WeeklySchedule.parse("Mon-Fri 09:00-17:00")
    assert not workday.is_open(late, late + timedelta(minutes=30), zone)


# --- users: each API key sees only its own -----------------------------------------------

A, B = {**V_BOOKINGS, "Authorization": "Bearer cal_account_a"}, {**V_BOOKINGS, "Authorization": "Bearer cal_account_b"}


def test_a_key_never_reaches_another_keys_bookings(http, sandbox):
    mine = book(http, headers=A).json()["data"]
    theirs = book(http, headers=B).json()["data"]  # the same time: each user has a calendar of their own
    assert mine["hosts"][0]["id"] != theirs["hosts"][0]["id"]
    assert [b["uid"] for b in http.get("/v2/bookings", headers=A).json()["data"]] == [mine["uid"]]
    for attempt in (http.get(f"/v2/bookings/{theirs['uid']}", headers=A),
                    post(http, theirs["uid"], "cancel", {"cancellationReason": "mine now"}, headers=A),
                    post(http, theirs["uid"], "reschedule", {"start": "2026-03-17T12:00:00Z"}, headers=A),
                    http.post(f"/_sandbox/act/{theirs['uid']}/cancel", json={}, headers=A)):
        assert attempt.status_code == 404, attempt.text
    assert sandbox.calendar.bookings[theirs["uid"]].status == "accepted"
    # A key may play the attendee of its own bookings; the control token, of anyone's.
    assert http.post(f"/_sandbox/act/{mine['uid']}/no-show", json={}, headers=A).status_code == 400
    assert http.post(f"/_sandbox/act/{theirs['uid']}/cancel", json={}, headers=CONTROL).status_code == 200


def test_a_key_never_reaches_another_keys_webhooks_or_their_secrets(http, sandbox):
    url = "https://calsync.example.org/webhooks/calcom/acc_1"
    hook = {"subscriberUrl": url, "triggers": ["BOOKING_CREATED"], "active": True, "secret": "b-secret"}
    theirs = http.post("/v2/webhooks", json=hook, headers=B).json()["data"]
    assert http.post("/v2/webhooks", json=hook, headers=A).status_code == 201  # the same URL, A's own
    listed = http.get("/v2/webhooks", headers=A).json()["data"]
    assert [h["secret"] for h in listed] == ["b-secret"] and theirs["id"] not in [h["id"] for h in listed]
    assert http.patch(f"/v2/webhooks/{theirs['id']}", json={"secret": "stolen"}, headers=A).status_code == 404
    assert http.delete(f"/v2/webhooks/{theirs['id']}", headers=A).status_code == 404
    assert sandbox.hub.subscriptions[theirs["id"]].secret == "b-secret"


def test_each_user_hears_only_of_their_own_bookings(clock):
    sent: list[tuple[str, bytes]] = []
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=1000),
                             send=lambda url, body, headers: sent.append((url, body)))
    http = TestClient(sandbox.app)
    for headers, url in ((A, "https://a.example/h"), (B, "https://b.example/h")):
        http.post("/v2/webhooks", json={"subscriberUrl": url, "triggers": ["BOOKING_CREATED"],
                                        "active": True}, headers=headers)
    uid = book(http, headers=B).json()["data"]["uid"]
    assert [(url, uid.encode() in body) for url, body in sent] == [("https://b.example/h", True)]


@pytest.mark.parametrize(("method", "path"), [("GET", "/_sandbox/state"), ("PUT", "/_sandbox/faults"),
                                              ("DELETE", "/_sandbox/faults"), ("PUT", "/_sandbox/rate-limit"),
                                              ("PUT", "/_sandbox/webhooks"), ("GET", "/_sandbox/webhooks"),
                                              ("POST", "/_sandbox/act/x/cancel")])
def test_the_controls_need_the_control_token(clock, method, path):
    guarded = TestClient(create_sandbox(clock, SandboxSettings(control_token=CONTROL_TOKEN)).app)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0000000"}, {"Authorization": "Bearer é".encode("latin-1")}):
        refused = guarded.request(method, path, json={}, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
    if path.startswith("/_sandbox/act"):
        assert guarded.request(method, path, json={}, headers=CONTROL).status_code == 404  # no such booking
    else:
        assert guarded.request(method, path, json={}, headers=CONTROL).status_code in (200, 400)
    closed = TestClient(create_sandbox(clock, SandboxSettings()).app)
    off = closed.request(method, path, json={}, headers=CONTROL)
    assert off.status_code == 403 and "control_token" in off.json()["error"]


# --- the public page and recurring series -------------------------------------------


def test_an_attendee_books_a_series_on_the_public_page_and_cancels_all_remaining(http, clock):
    page = {"start": "2026-03-17T10:00:00Z", "eventTypeId": 124200,
            "attendee": {"name": "Robin", "email": "robin@example.org", "timeZone": "UTC"}}
    assert http.post("/_sandbox/book", json=page).status_code == 401  # a key or the control token
    refused = http.post("/_sandbox/book", json={**page, "metadata": {"x": "y"}},
                        headers={"Authorization": "Bearer cal_test"})
    assert refused.status_code == 400  # a public page carries no API metadata
    booked = http.post("/_sandbox/book", json=page, headers={"Authorization": "Bearer cal_test"})
    assert booked.status_code == 201
    occurrences = booked.json()["data"]
    assert [o["start"][:10] for o in occurrences] == ["2026-03-17", "2026-03-24", "2026-03-31", "2026-04-07"]
    assert {o["metadata"] == {} for o in occurrences} == {True}
    listed = http.get("/v2/bookings", params={"status": "recurring"}, headers=V_BOOKINGS).json()["data"]
    assert len(listed) == 4  # the key's user owns the series
    clock.set(datetime(2026, 3, 20, 9, 0, tzinfo=UTC))  # the first occurrence is over
    http.post(f"/_sandbox/act/{occurrences[2]['uid']}/cancel", json={"all_remaining": True}, headers=CONTROL)
    series = http.get(f"/v2/bookings/{occurrences[0]['recurringBookingUid']}", headers=V_BOOKINGS).json()["data"]
    assert [o["status"] for o in series] == ["accepted", "cancelled", "cancelled", "cancelled"]
