from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.core import accounts
from connector.sandbox.faults import FaultRule
from mappings.models import Job

BODY = {
    "title": "Intro call",
    "attendee_name": "Alex Prospect",
    "attendee_email": "alex.prospect@example.org",
    "start_time": "2026-03-17T11:00:00+01:00",
    "metadata": {"deal": "D-1", "stage": "demo"},
}


@pytest.fixture
def booked(client, tenant, run_jobs):
    _, auth = tenant
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    run_jobs()
    return auth


def test_patch_merges_and_null_removes(client, booked):
    answer = client.patch("/v1/appointments/crm-1", headers={**booked, "Content-Type": "application/merge-patch+json"},
                          content=b'{"title": "Renamed", "metadata": {"stage": null, "owner": "kim"}, "label": "hot"}')
    assert answer.status_code == 200
    body = answer.json()
    assert (body["title"], body["label"], body["version"]) == ("Renamed", "hot", 2)
    assert body["metadata"] == {"deal": "D-1", "owner": "kim"}


def test_patching_a_start_reschedules(client, booked, run_jobs):
    first = client.get("/v1/appointments/crm-1", headers=booked).json()["booking_uid"]
    client.patch("/v1/appointments/crm-1", json={"start_time": "2026-03-18T14:00:00+01:00"}, headers=booked)
    run_jobs()
    shown = client.get("/v1/appointments/crm-1", headers=booked).json()
    assert shown["status"] == "rescheduled" and shown["booking_uid"] != first
    assert [o["status"] for o in shown["occurrences"]] == ["cancelled", "accepted"]
    assert shown["start_time"] == "2026-03-18T13:00:00Z"


@pytest.mark.parametrize(("patch", "field", "status"), [
    ({"to_number": "+15550100"}, "to_number", 422),
    ({"from_number": "+15550100"}, "from_number", 422),
    ({"call_type": "video"}, "call_type", 422),
    ({"booking_uid": "abc"}, "booking_uid", 422),
    ({"status": "active"}, "status", 422),
    ({"title": None}, "title", 422),
    ({"titel": "typo"}, "titel", 422),
    ({"start_time": "2026-03-18T14:00:00"}, "start_time", 422),
    ({"duration_minutes": 60}, "duration_minutes", 422),  # booked: reschedules keep 30
    ({"event_type_id": 123457}, "event_type_id", 422),  # booked: cannot change type
])
def test_patch_refusals_name_the_field(client, booked, fill_event_types, tenant, patch, field, status):
    fill_event_types(tenant[0])
    answer = client.patch("/v1/appointments/crm-1", json=patch, headers=booked)
    assert answer.status_code == status
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert client.get("/v1/appointments/crm-1", headers=booked).json()["version"] == 1


def test_cancel_is_final(client, booked, run_jobs):
    answer = client.post("/v1/appointments/crm-1/cancel", json={"reason": "Customer churned"}, headers=booked)
    assert answer.status_code == 200 and answer.json()["sync_state"] == "pending"
    run_jobs()
    shown = client.get("/v1/appointments/crm-1", headers=booked).json()
    assert (shown["status"], shown["cancellation_reason"], shown["cancelled_by"]) == (
        "cancelled", "Customer churned", "crm")
    assert client.post("/v1/appointments/crm-1/cancel", headers=booked).status_code == 409
    assert client.patch("/v1/appointments/crm-1", json={"title": "x"}, headers=booked).status_code == 409
    assert client.put("/v1/appointments/crm-1", json=BODY, headers=booked).status_code == 409


def test_cancel_without_a_body_uses_the_default_reason(client, booked, run_jobs, sandbox):
    assert client.post("/v1/appointments/crm-1/cancel", headers=booked).status_code == 200
    run_jobs()
    assert [b.cancellation_reason for b in sandbox.calendar.bookings.values()] == ["Cancelled in CRM"]


def test_bad_cancel_and_attendance_bodies(client, booked):
    assert client.post("/v1/appointments/crm-1/cancel", json={"reason": 5}, headers=booked).status_code == 422
    assert client.post("/v1/appointments/crm-1/cancel", json={"notify": False}, headers=booked).status_code == 422
    bad = client.post("/v1/appointments/crm-1/attendance", json={"attendance": "maybe"}, headers=booked)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "attendance"


def test_attendance_only_after_the_start(client, booked, clock, run_jobs, sandbox):
    early = client.post("/v1/appointments/crm-1/attendance", json={"attendance": "attended"}, headers=booked)
    assert early.status_code == 409
    clock.set(datetime(2026, 3, 17, 10, 40, tzinfo=UTC))
    answer = client.post("/v1/appointments/crm-1/attendance", json={"attendance": "no_show"}, headers=booked)
    assert answer.status_code == 200
    run_jobs()
    assert client.get("/v1/appointments/crm-1", headers=booked).json()["attendance"] == "no_show"


def test_history_is_oldest_first_with_actor_and_values(client, booked, run_jobs):
    client.patch("/v1/appointments/crm-1", json={"title": "Renamed"}, headers=booked)
    items = client.get("/v1/appointments/crm-1/history", headers=booked).json()["items"]
    assert [i["action"] for i in items] == ["appointment.created", "booking.created", "appointment.updated"]
    assert items[0]["actor"] == "admin:owner" and items[1]["actor"] == "system"
    assert items[2]["before"] == {"title": "Intro call"} and items[2]["after"] == {"title": "Renamed"}
    assert client.get("/v1/appointments/nope/history", headers=booked).status_code == 404


def test_jobs_can_be_listed_and_dead_ones_replayed(client, tenant, token_with, sandbox, app, run_jobs):
    account, auth = tenant
    sandbox.faults.set("*", FaultRule(error_rate=1.0))
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    Job.update(attempts=app.state.runtime.worker.policy.max_attempts - 1).execute()
    run_jobs()
    dead = client.get("/v1/jobs", params={"status": "dead"}, headers=auth).json()
    assert dead["total"] == 1 and dead["items"][0]["kind"] == "converge"
    assert client.get("/v1/appointments/crm-1", headers=auth).json()["sync_state"] == "dead"
    job_id = dead["items"][0]["id"]
    sandbox.faults.clear()
    replayed = client.post(f"/v1/jobs/{job_id}/retry", headers=auth)
    assert replayed.status_code == 200 and replayed.json()["status"] == "queued"
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=auth).status_code == 409
    run_jobs()
    assert client.get("/v1/appointments/crm-1", headers=auth).json()["status"] == "active"
    crm = token_with(account, accounts.READ, accounts.WRITE)
    assert client.get("/v1/jobs", headers=crm).status_code == 403
    assert client.get("/v1/jobs", params={"status": "lost"}, headers=auth).status_code == 422
    assert client.post("/v1/jobs/99999/retry", headers=auth).status_code == 404


def test_prefer_wait_answers_once_synced(client, tenant, app):
    _, auth = tenant
    app.state.runtime.worker.start(2)
    try:
        answer = client.put("/v1/appointments/crm-1", json=BODY, headers={**auth, "Prefer": "wait=10"})
    finally:
        app.state.runtime.worker.stop()
    assert answer.status_code == 201 and answer.headers["preference-applied"] == "wait=10"
    body = answer.json()
    assert body["sync_state"] == "synced" and body["booking_uid"] and body["meeting_url"]


def test_prefer_wait_gives_up_after_n_seconds(client, tenant, app, sandbox):
    _, auth = tenant
    sandbox.faults.set("*", FaultRule(error_rate=1.0))
    app.state.runtime.worker.start(1)
    try:
        answer = client.put("/v1/appointments/crm-1", json=BODY, headers={**auth, "Prefer": "wait=1"})
    finally:
        app.state.runtime.worker.stop()
    assert answer.status_code == 201 and answer.json()["sync_state"] in ("pending", "retrying")
