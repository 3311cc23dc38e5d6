"""The host's actions from the CRM: confirm, decline and reassign, through the API to the sandbox.

Each is a durable change like any other: 200 with the appointment (pending until the
worker carries it, or settled under ``Prefer: wait``), audited, sent to the CRM as its
own event; a request that cannot apply answers 409 and changes nothing.
"""

from __future__ import annotations

import pytest

from mappings.models import Appointment, AuditEvent, Job

DEMO = 123789  # the sandbox's event type that needs the host's confirmation
TEAM_INTRO = 124100  # the sandbox team's round-robin event type
START = "2026-03-20T10:00:00Z"


def put(client, auth, external_id: str, event_type_id: int, start: str = START):
    answer = client.put(f"/v1/appointments/{external_id}", headers=auth, json={
        "title": "Call", "attendee_name": "Alex", "attendee_email": "alex@example.org",
        "start_time": start, "event_type_id": event_type_id})
    assert answer.status_code == 201, answer.text
    return answer


def crm_events(account_id: str) -> list[str]:
    return [job.payload["type"] for job in Job.select().where(Job.kind == "deliver_event").order_by(Job.id)
            if job.account_id == account_id]


@pytest.fixture
def tenant(make_account):
    """An account whose events go to a CRM (so they are queued), and an all-scopes header."""
    account, token = make_account(callback_url="https://crm.example.org/hooks")
    return account, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def booked(client, tenant, run_jobs, sandbox):
    def make(external_id: str, event_type_id: int) -> dict:
        put(client, tenant[1], external_id, event_type_id)
        run_jobs()
        return client.get(f"/v1/appointments/{external_id}", headers=tenant[1]).json()

    return make


def test_the_host_confirms_from_the_crm(client, tenant, booked, run_jobs, sandbox):
    account, auth = tenant
    shown = booked("demo-1", DEMO)
    assert shown["status"] == "awaiting_confirmation"
    answer = client.post("/v1/appointments/demo-1/confirm", headers=auth)
    assert answer.status_code == 200 and answer.json()["sync_state"] == "pending"
    run_jobs()
    after = client.get("/v1/appointments/demo-1", headers=auth).json()
    assert (after["status"], after["sync_state"]) == ("active", "synced")
    assert sandbox.calendar.bookings[after["booking_uid"]].status == "accepted"
    assert "appointment.confirmed" in crm_events(account.id)
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert "appointment.confirm_requested" in actions and "booking.confirmed" in actions


def test_the_host_declines_from_the_crm_with_a_reason(client, tenant, booked, run_jobs, sandbox):
    account, auth = tenant
    booked("demo-2", DEMO)
    answer = client.post("/v1/appointments/demo-2/decline", json={"reason": "fully booked"}, headers=auth)
    assert answer.status_code == 200
    run_jobs()
    after = client.get("/v1/appointments/demo-2", headers=auth).json()
    assert after["status"] == "rejected" and "fully booked" in after["last_error"]
    assert sandbox.calendar.bookings[after["booking_uid"]].status == "rejected"
    assert "appointment.declined" in crm_events(account.id)


def test_prefer_wait_answers_with_the_host_s_answer_applied(client, tenant, booked, app):
    _, auth = tenant
    booked("demo-3", DEMO)
    app.state.runtime.start_background()
    try:
        answer = client.post("/v1/appointments/demo-3/confirm", headers={**auth, "Prefer": "wait=5"})
    finally:
        app.state.runtime.stop_background()
    assert answer.status_code == 200 and answer.headers["Preference-Applied"] == "wait=5"
    assert (answer.json()["status"], answer.json()["sync_state"]) == ("active", "synced")


@pytest.mark.parametrize("action", ["confirm", "decline"])
def test_only_an_appointment_awaiting_the_host_can_be_answered(client, tenant, booked, action):
    _, auth = tenant
    shown = booked("plain", 123456)
    refused = client.post(f"/v1/appointments/plain/{action}", headers=auth)
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert Appointment.get(Appointment.external_id == "plain").desired_version == shown["version"]


def test_a_second_different_answer_is_refused_and_the_same_one_changes_nothing(client, tenant, booked):
    _, auth = tenant
    booked("demo-4", DEMO)
    first = client.post("/v1/appointments/demo-4/confirm", headers=auth).json()
    again = client.post("/v1/appointments/demo-4/confirm", headers=auth).json()
    assert again["version"] == first["version"]
    assert client.post("/v1/appointments/demo-4/decline", headers=auth).status_code == 409


def test_bad_bodies_name_the_field(client, tenant, booked):
    _, auth = tenant
    booked("demo-5", DEMO)
    for path, body, field in (("decline", {"reason": 5}, "reason"), ("decline", {"why": "x"}, "why"),
                              ("confirm", {"now": True}, "now"), ("reassign", {"host": "riley"}, "host"),
                              ("reassign", {"host": 0}, "host")):
        answer = client.post(f"/v1/appointments/demo-5/{path}", json=body, headers=auth)
        assert answer.status_code == 422, (path, body)
        assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_reassign_hands_a_round_robin_booking_to_another_host(client, tenant, booked, run_jobs, sandbox):
    account, auth = tenant
    shown = booked("team-1", TEAM_INTRO)
    assert shown["status"] == "active"
    assert client.post("/v1/appointments/team-1/reassign", headers=auth).status_code == 200
    run_jobs()
    after = client.get("/v1/appointments/team-1", headers=auth).json()
    held = sandbox.calendar.bookings[after["booking_uid"]]
    assert held.organizer is not None and held.organizer.id == 4301  # the next host in turn
    assert after["sync_state"] == "synced" and after["booking_uid"] == shown["booking_uid"]
    assert "appointment.reassigned" in crm_events(account.id)
    audit = AuditEvent.get(AuditEvent.action == "booking.reassigned")
    assert audit.after["host"]["email"] == "riley.colleague@example.com"
    # To a named host, and again: each request is carried once.
    client.post("/v1/appointments/team-1/reassign", json={"host": 4302}, headers=auth)
    run_jobs()
    assert sandbox.calendar.bookings[after["booking_uid"]].organizer.id == 4302


def test_reassign_is_refused_for_an_event_type_that_is_not_round_robin(client, tenant, booked,
                                                                       fill_event_types):
    account, auth = tenant
    fill_event_types(account)
    booked("plain-2", 123456)
    refused = client.post("/v1/appointments/plain-2/reassign", headers=auth)
    assert refused.status_code == 409 and "round-robin" in refused.json()["detail"]


def test_a_refused_reassignment_is_reported_once_and_not_retried(client, tenant, booked, run_jobs, sandbox):
    account, auth = tenant
    booked("team-2", TEAM_INTRO)
    client.post("/v1/appointments/team-2/reassign", json={"host": 9999}, headers=auth)  # not a host
    run_jobs()
    after = client.get("/v1/appointments/team-2", headers=auth).json()
    assert "not a host" in after["last_error"] and after["status"] == "active"
    assert after["sync_state"] == "synced"
    assert crm_events(account.id).count("appointment.failed") == 1
