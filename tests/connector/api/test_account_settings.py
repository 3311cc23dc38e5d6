"""GET/PUT /v1/settings: admin only, secrets write-only, a new Cal.com key checked first, audited."""

from __future__ import annotations

import json

import pytest

from connector.core import accounts
from mappings.models import Account, AuditEvent

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_reading_shows_settings_but_never_a_secret(client, make_account, sealer):
    account, token = make_account(calcom_api_key="cal_live_0123456789", callback_secret=SECRET)
    answer = client.get("/v1/settings", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["calcom_api_key_set"] is True and body["callback_secret_set"] is True
    assert (body["time_zone"], body["default_event_type_id"]) == ("Europe/Berlin", 123456)
    assert "cal_live_0123456789" not in answer.text and SECRET not in answer.text


def test_a_change_is_saved_and_audited_with_secrets_masked(client, tenant, sealer):
    account, auth = tenant
    answer = client.put("/v1/settings", json={
        "time_zone": "America/Chicago", "duration_override_minutes": 45,
        "callback_url": "https://crm.example/hooks/", "callback_secret": SECRET,
        "calcom_api_key": "cal_test_key_ok"}, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["time_zone"], body["callback_url"]) == ("America/Chicago", "https://crm.example/hooks")
    stored = Account.get_by_id(account.id)
    assert sealer.open(stored.calcom_api_key) == "cal_test_key_ok"
    assert sealer.open(stored.callback_secret) == SECRET
    event = AuditEvent.get(AuditEvent.action == "settings.updated")
    assert event.actor == "admin:owner" and event.appointment_id is None
    assert event.before["time_zone"] == "Europe/Berlin" and event.after["time_zone"] == "America/Chicago"
    assert event.after["calcom_api_key"] == "(changed)" and event.after["callback_secret"] == "(changed)"
    assert "cal_test_key_ok" not in json.dumps([event.before, event.after]) and SECRET not in answer.text
    assert body["changes"][0]["after"]["duration_override_minutes"] == 45

    again = client.put("/v1/settings", json={"time_zone": "America/Chicago", "callback_secret": SECRET},
                       headers=auth)
    assert again.status_code == 200 and AuditEvent.select().count() == 1  # nothing changed
    cleared = client.put("/v1/settings", json={"callback_url": None, "duration_override_minutes": None},
                         headers=auth)
    assert cleared.json()["callback_url"] is None and cleared.json()["duration_override_minutes"] is None


def test_a_key_cal_com_refuses_is_never_saved(client, tenant):
    account, auth = tenant
    answer = client.put("/v1/settings", json={"calcom_api_key": "cal_revoked", "time_zone": "UTC"},
                        headers=auth)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "calcom_api_key"
    stored = Account.get_by_id(account.id)
    assert stored.calcom_api_key is None and stored.time_zone == "Europe/Berlin"
    assert AuditEvent.select().count() == 0


def test_cal_com_down_while_checking_a_key_is_a_503(client, tenant, sandbox):
    from connector.sandbox.faults import FaultRule

    sandbox.faults.set("GET /v2/me", FaultRule(error_rate=1.0))
    answer = client.put("/v1/settings", json={"calcom_api_key": "cal_new_key"}, headers=tenant[1])
    assert answer.status_code == 503 and answer.json()["type"] == "/problems/calcom-unavailable"
    assert Account.get_by_id(tenant[0].id).calcom_api_key is None


@pytest.mark.parametrize("body, field", [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"time_zone": None}, "time_zone"),
    ({"calcom_api_key": "sk_live_x"}, "calcom_api_key"),
    ({"calcom_api_key": None}, "calcom_api_key"),
    ({"duration_override_minutes": 0}, "duration_override_minutes"),
    ({"callback_url": "ftp://crm.example"}, "callback_url"),
    ({"callback_secret": "hunter2"}, "callback_secret"),
    ({"public_url": "not a url"}, "public_url"),
    ({"default_event_type_id": -1}, "default_event_type_id"),
    ({"webhook": "x"}, "webhook"),
])
def test_bad_settings_are_422_naming_the_field_and_change_nothing(client, tenant, body, field):
    answer = client.put("/v1/settings", json=body, headers=tenant[1])
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert AuditEvent.select().count() == 0


def test_an_unknown_default_event_type_is_refused_once_the_cache_is_filled(client, tenant,
                                                                           fill_event_types):
    fill_event_types(tenant[0])
    answer = client.put("/v1/settings", json={"default_event_type_id": 999}, headers=tenant[1])
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "default_event_type_id"
    assert client.put("/v1/settings", json={"default_event_type_id": 123457},
                      headers=tenant[1]).json()["default_event_type_id"] == 123457


def test_settings_need_the_admin_scope(client, tenant, token_with):
    writer = token_with(tenant[0], accounts.READ, accounts.WRITE)
    assert client.get("/v1/settings", headers=writer).status_code == 403
    assert client.put("/v1/settings", json={"time_zone": "UTC"}, headers=writer).status_code == 403
    assert client.put("/v1/settings", content=b"time_zone=UTC", headers=tenant[1]).status_code == 415


@pytest.mark.parametrize(("change", "queued"), [
    ({"public_url": "https://calsync.example.org"}, ["register_webhook"]),
    ({"calcom_api_key": "cal_test_new_key"}, ["refresh_event_types", "register_webhook"]),
    ({"time_zone": "America/Chicago"}, []),
])
def test_a_new_key_or_public_url_queues_the_webhook_registration(client, make_account, change, queued):
    from mappings.models import Job

    account, token = make_account(public_url="https://old.example.org")
    Job.delete().execute()
    answer = client.put("/v1/settings", json=change, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert sorted(job.kind for job in Job.select()) == queued
    registration = [job for job in Job.select() if job.kind == "register_webhook"]
    assert all(job.payload == {"account_id": account.id} for job in registration)


def test_without_a_public_url_a_new_key_registers_nothing_yet(client, tenant):
    from mappings.models import Job

    _, auth = tenant
    Job.delete().execute()
    assert client.put("/v1/settings", json={"calcom_api_key": "cal_test_new_key"}, headers=auth).status_code == 200
    assert [job.kind for job in Job.select()] == ["refresh_event_types"]


def test_the_queued_registration_runs_and_cal_com_then_signs_with_a_secret_calsync_holds(
        client, make_account, run_jobs, sandbox, sealer):
    account, token = make_account()
    assert client.put("/v1/settings", json={"public_url": "https://calsync.example.org"},
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    run_jobs()
    held = accounts.webhook_secrets(Account.get_by_id(account.id), sealer)
    hooks = [hook for hook in sandbox.hub.subscriptions.values()
             if hook.subscriber_url == f"https://calsync.example.org/webhooks/calcom/{account.id}"]
    assert len(hooks) == 1 and hooks[0].secret == held[0]
