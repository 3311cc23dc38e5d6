from __future__ import annotations

from connector.core import accounts
from mappings.models import Appointment, AuditEvent, Job

BODY = {
    "title": "Intro call",
    "attendee_name": "Alex Prospect",
    "attendee_email": "alex.prospect@example.org",
    "start_time": "2026-03-17T11:00:00+01:00",
}


def test_put_creates_then_get_shows_it_active_with_its_booking(client, tenant, run_jobs):
    _, auth = tenant
    created = client.put("/v1/appointments/crm-42", json=BODY, headers=auth)
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/appointments/crm-42"
    body = created.json()
    assert (body["status"], body["sync_state"], body["booking_uid"]) == ("pending", "pending", None)
    assert body["start_time"] == "2026-03-17T10:00:00Z"
    assert body["attendee_time_zone"] == "Europe/Berlin"  # the account's
    assert body["event_type_id"] == 123456  # the account's default
    run_jobs()
    shown = client.get("/v1/appointments/crm-42", headers=auth).json()
    assert (shown["status"], shown["sync_state"]) == ("active", "synced")
    assert shown["booking_uid"] and shown["meeting_url"].endswith(shown["booking_uid"])
    assert shown["occurrences"] == [{"booking_uid": shown["booking_uid"],
                                     "start_time": "2026-03-17T10:00:00Z",
                                     "end_time": "2026-03-17T10:30:00Z", "status": "accepted"}]
    assert f"/reschedule/{shown['booking_uid']}?" in shown["manage_links"]["reschedule"]


def test_the_same_put_twice_changes_nothing(client, tenant):
    _, auth = tenant
    client.put("/v1/appointments/crm-42", json=BODY, headers=auth)
    again = client.put("/v1/appointments/crm-42", json=BODY, headers=auth)
    assert again.status_code == 200 and again.json()["version"] == 1
    assert Job.select().count() == 1 and AuditEvent.select().count() == 1


def test_edits_bump_the_version_and_coalesce_into_one_job(client, tenant):
    _, auth = tenant
    client.put("/v1/appointments/crm-42", json=BODY, headers=auth)
    for index in range(5):
        answer = client.put("/v1/appointments/crm-42", json={**BODY, "title": f"v{index}"}, headers=auth)
        assert answer.status_code == 200
    assert answer.json()["version"] == 6 and answer.json()["title"] == "v4"
    assert Job.select().where(Job.status == "queued").count() == 1
    history = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert history == ["appointment.created"] + ["appointment.updated"] * 5
    last = AuditEvent.select().order_by(AuditEvent.id.desc()).get()
    assert (last.actor, last.before, last.after) == ("admin:owner", {"title": "v3"}, {"title": "v4"})


def test_locked_fields_cannot_change(client, tenant):
    _, auth = tenant
    client.put("/v1/appointments/crm-42", json={**BODY, "to_number": "+15550001"}, headers=auth)
    answer = client.put("/v1/appointments/crm-42", json={**BODY, "to_number": "+15550002",
                                                         "call_type": "video"}, headers=auth)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["to_number", "call_type"]


def test_event_types_are_checked_once_the_cache_is_filled(client, tenant, fill_event_types):
    account, auth = tenant
    before = client.put("/v1/appointments/a", json={**BODY, "event_type_id": 999}, headers=auth)
    assert before.status_code == 201  # an empty cache: Cal.com decides later (DESIGN §10)
    fill_event_types(account)
    unknown = client.put("/v1/appointments/b", json={**BODY, "event_type_id": 999}, headers=auth)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "event_type_id"
    length = client.put("/v1/appointments/c", json={**BODY, "duration_minutes": 45}, headers=auth)
    assert length.status_code == 422 and "allows 30 minutes" in length.json()["detail"]
    options = client.put("/v1/appointments/d", json={**BODY, "event_type_id": 123457,
                                                     "duration_minutes": 60}, headers=auth)
    assert options.status_code == 201 and options.json()["end_time"] == "2026-03-17T11:00:00Z"


def test_an_account_without_a_default_event_type_needs_one(client, make_account):
    _, token = make_account(event_type_id=None)
    answer = client.put("/v1/appointments/x", json=BODY, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "event_type_id"


def test_scopes(client, tenant, token_with):
    account, _ = tenant
    reader = token_with(account, accounts.READ)
    writer = token_with(account, accounts.WRITE)
    assert client.put("/v1/appointments/x", json=BODY, headers=writer).status_code == 201
    assert client.get("/v1/appointments/x", headers=reader).status_code == 200
    refused = client.put("/v1/appointments/x", json=BODY, headers=reader)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


def test_a_revoked_token_is_refused(client, tenant, db, clock):
    account, _ = tenant
    row, token = accounts.create_token(db, account.id, "old", frozenset(accounts.SCOPES), now=clock.now())
    accounts.revoke_token(db, row.id, now=clock.now())
    answer = client.get("/v1/appointments/x", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")


def test_appointments_are_per_account(client, tenant, make_account):
    _, auth = tenant
    client.put("/v1/appointments/shared-id", json=BODY, headers=auth)
    _, other_token = make_account("Other CRM")
    other = {"Authorization": f"Bearer {other_token}"}
    assert client.get("/v1/appointments/shared-id", headers=other).status_code == 404
    assert client.put("/v1/appointments/shared-id", json=BODY, headers=other).status_code == 201
    assert Appointment.select().count() == 2


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}
