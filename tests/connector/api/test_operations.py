"""Event types, slots and reconcile over the API (admin and read scopes, problem+json)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from connector.core.slots import day_bounds
from connector.sandbox.faults import FaultRule
from mappings.models import Account, Appointment, Job, ReconcileRun

BODY = {"title": "Intro call", "attendee_name": "Alex Prospect",
        "attendee_email": "alex.prospect@example.org", "start_time": "2026-03-17T10:00:00Z"}


@pytest.fixture
def crm(make_account):
    account, token = make_account(callback_url="https://crm.example.test/hook")
    return account, {"Authorization": f"Bearer {token}"}


def test_event_types_refresh_lists_and_reports_changes(client, crm, sandbox, token_with):
    account, admin = crm
    assert client.get("/v1/event-types", headers=admin).json() == {"items": []}
    reader = token_with(account, "appointments:read")
    assert client.post("/v1/event-types/refresh", headers=reader).status_code == 403
    first = client.post("/v1/event-types/refresh", headers=admin)
    assert first.status_code == 200
    assert first.json() == {"added": [123456, 123457, 123789, 123999, 124000, 124100, 124200], "changed": [], "removed": []}
    listed = client.get("/v1/event-types", headers=reader).json()["items"]
    assert {item["id"] for item in listed} == {123456, 123457, 123789, 123999, 124000, 124100, 124200}
    assert all(item["active"] for item in listed)
    changes = [job for job in Job.select().where(Job.kind == "deliver_event")
               if job.payload["type"] == "event_types.changed"]
    assert len(changes) == 1
    client.post("/v1/event-types/refresh", headers=admin)  # nothing changed: no event
    assert len([job for job in Job.select().where(Job.kind == "deliver_event")
                if job.payload["type"] == "event_types.changed"]) == 1


def test_a_vanished_event_type_flags_its_appointments_and_is_refused(client, crm, sandbox):
    account, admin = crm
    client.post("/v1/event-types/refresh", headers=admin)
    assert client.put("/v1/appointments/crm-1", json={**BODY, "event_type_id": 123457},
                      headers=admin).status_code == 201
    del sandbox.calendar.event_types[123457]
    answer = client.post("/v1/event-types/refresh", headers=admin).json()
    assert answer["removed"] == [123457]
    assert "no longer in Cal.com" in Appointment.get(Appointment.external_id == "crm-1").last_error
    refused = client.put("/v1/appointments/crm-2", json={**BODY, "event_type_id": 123457}, headers=admin)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "event_type_id"
    listed = {item["id"]: item["active"] for item in client.get("/v1/event-types", headers=admin).json()["items"]}
    assert listed[123457] is False


def test_a_duration_change_in_calcom_reaches_the_cache(client, crm, sandbox):
    client.post("/v1/event-types/refresh", headers=crm[1])
    sandbox.calendar.event_types[123456] = replace(sandbox.calendar.event_types[123456], length=20)
    assert client.post("/v1/event-types/refresh", headers=crm[1]).json()["changed"] == [123456]


def test_slots_of_a_local_day(client, crm):
    answer = client.get("/v1/slots", params={"date": "2026-03-17", "event_type_id": "123456",
                                             "time_zone": "Asia/Tokyo"}, headers=crm[1])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["date"], body["time_zone"], body["event_type_id"]) == ("2026-03-17", "Asia/Tokyo", 123456)
    starts = [datetime.fromisoformat(slot["start"]) for slot in body["slots"]]
    assert starts and starts == sorted(starts)
    assert all(start.astimezone(ZoneInfo("Asia/Tokyo")).date() == date(2026, 3, 17) for start in starts)
    assert all(slot["start"].endswith("+09:00") for slot in body["slots"])


def test_calsyncs_own_booking_clears_the_slot_cache(client, crm, run_jobs):
    query = {"date": "2026-03-17", "event_type_id": "123456", "time_zone": "UTC"}
    before = [slot["start"] for slot in client.get("/v1/slots", params=query, headers=crm[1]).json()["slots"]]
    assert "2026-03-17T10:00:00+00:00" in before
    client.put("/v1/appointments/crm-1", json=BODY, headers=crm[1])
    run_jobs()
    after = [slot["start"] for slot in client.get("/v1/slots", params=query, headers=crm[1]).json()["slots"]]
    assert "2026-03-17T10:00:00+00:00" not in after


def test_a_past_date_has_no_slots_and_says_why(client, crm):
    body = client.get("/v1/slots", params={"date": "2026-03-15"}, headers=crm[1]).json()
    assert body["slots"] == [] and body["reason"] == "the date is in the past"


@pytest.mark.parametrize(("params", "field"), [
    ({}, "date"),
    ({"date": "2026-3-17"}, "date"),
    ({"date": "20260317"}, "date"),
    ({"date": "2026-02-30"}, "date"),
    ({"date": "9999-12-31"}, "date"),
    ({"date": "2026-03-17", "time_zone": "Mars/Olympus"}, "time_zone"),
    ({"date": "2026-03-17", "event_type_id": "abc"}, "event_type_id"),
    ({"date": "2026-03-17", "event_type_id": "99999999999"}, "event_type_id"),
])
def test_bad_slot_queries_name_the_field(client, crm, params, field):
    answer = client.get("/v1/slots", params=params, headers=crm[1])
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in answer.json()["errors"]]


def test_an_unknown_event_type_is_a_422_and_calcom_down_is_a_503(client, crm, sandbox):
    unknown = client.get("/v1/slots", params={"date": "2026-03-17", "event_type_id": "555"}, headers=crm[1])
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "event_type_id"
    sandbox.faults.set("GET /v2/slots", FaultRule(error_rate=1.0))
    down = client.get("/v1/slots", params={"date": "2026-03-18"}, headers=crm[1])
    assert down.status_code == 503 and down.json()["type"] == "/problems/calcom-unavailable"


@pytest.mark.parametrize(("zone", "day", "hours"), [
    ("Europe/Berlin", date(2026, 3, 29), 23),  # spring forward
    ("Europe/Berlin", date(2026, 10, 25), 25),  # fall back
    ("America/Santiago", date(2026, 9, 6), 23),  # the clocks jump at midnight
    ("UTC", date(2026, 3, 17), 24),
])
def test_day_bounds_follow_dst(zone, day, hours):
    first, after = day_bounds(day, ZoneInfo(zone))
    assert (after - first).total_seconds() == hours * 3600
    assert first.astimezone(ZoneInfo(zone)).date() == day and first.tzinfo == UTC


def test_calcom_failures_during_admin_operations_are_problems_not_500s(client, crm, sandbox):
    sandbox.faults.set("GET /v2/bookings", FaultRule(error_rate=1.0))
    down = client.post("/v1/reconcile", headers=crm[1])
    assert down.status_code == 503 and down.json()["type"] == "/problems/calcom-unavailable"
    assert ReconcileRun.get().status == "failed"
    sandbox.faults.set("GET /v2/event-types", FaultRule(error_rate=1.0))
    assert client.post("/v1/event-types/refresh", headers=crm[1]).status_code == 503


def test_an_account_whose_key_cannot_be_read_gets_a_502_not_a_500(client, crm):
    Account.update(calcom_api_key="fernet:not-a-token").where(Account.id == crm[0].id).execute()
    for method, path, params in (("GET", "/v1/slots", {"date": "2026-03-17"}),
                                 ("POST", "/v1/reconcile", None), ("POST", "/v1/event-types/refresh", None)):
        answer = client.request(method, path, params=params, headers=crm[1])
        assert answer.status_code == 502, (path, answer.text)
        assert answer.json()["type"] == "/problems/calcom-refused"


def test_calsyncs_own_pacing_is_a_503_that_says_so_with_retry_after(client, crm, app, clock):
    """Cal.com answered nothing wrong: calsync held the call back to keep within the limit."""
    from connector.calcom.ratelimit import RateLimiter

    app.state.runtime.clients.limiter = RateLimiter(clock, limit=1, window_seconds=60)
    assert client.get("/v1/slots", params={"date": "2026-03-17"}, headers=crm[1]).status_code == 200
    held = client.get("/v1/slots", params={"date": "2026-03-18"}, headers=crm[1])
    assert held.status_code == 503, held.text
    assert held.json()["type"] == "/problems/calcom-paced" and "pacing" in held.json()["detail"]
    assert 1 <= int(held.headers["retry-after"]) <= 70  # the window, with the limiter's margin
    # The allowance is the key's: a new key, tried before it is saved, spends its own.
    tried = client.put("/v1/settings", json={"calcom_api_key": "cal_test_other"}, headers=crm[1])
    assert tried.status_code == 200, tried.text


def test_cal_coms_own_429_is_a_503_with_retry_after(client, crm, sandbox):
    sandbox.faults.set("GET /v2/slots", FaultRule(rate_limit_next=1))
    limited = client.get("/v1/slots", params={"date": "2026-03-18"}, headers=crm[1])
    assert limited.status_code == 503 and limited.json()["type"] == "/problems/calcom-rate-limited"
    assert int(limited.headers["retry-after"]) >= 1
