"""Events to the CRM: signed per Standard Webhooks, stable ids, retried, dead, replayable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.testclient import TestClient

from connector.app import create_app
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from mappings.models import Job
from tests.support.asgi import SyncASGITransport
from tests.support.crm import CrmReceiver, RoutingTransport
from tests.support.factories import SANDBOX_URL
from webhooks import signing

SECRET = signing.new_secret()
BODY = {"title": "Intro call", "attendee_name": "Alex Prospect",
        "attendee_email": "alex.prospect@example.org", "start_time": "2026-12-15T10:00:00Z"}


@pytest.fixture
def clock(clock):
    clock.set(datetime.now(UTC).replace(microsecond=0))  # standardwebhooks checks the timestamp
    return clock


@pytest.fixture
def crm():
    return CrmReceiver()


@pytest.fixture
def stack(settings, clock, db, crm, make_account):
    sandbox = create_sandbox(clock, SandboxSettings(rate_limit=10_000, weekly_hours="Mon-Sun 00:00-24:00"))
    transport = RoutingTransport({"sandbox.test": SyncASGITransport(sandbox.app),
                                  "crm.example.org": SyncASGITransport(crm.app)})
    settings = settings.replace(worker={"max_attempts": 3})
    app = create_app(settings, clock=clock, db=db, transport=transport, sandbox_url=SANDBOX_URL)
    account, token = make_account(callback_url="https://crm.example.org/hooks/calsync",
                                  callback_secret=SECRET)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}, app.state.runtime.worker


def drain(worker, clock, rounds: int = 20) -> None:
    for _ in range(rounds):
        while worker.run_once():
            pass
        clock.advance(seconds=120)


def test_lifecycle_events_arrive_signed_and_in_order(stack, crm, clock):
    client, auth, worker = stack
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    drain(worker, clock, 1)
    client.patch("/v1/appointments/crm-1", json={"start_time": "2026-12-16T10:00:00Z"}, headers=auth)
    drain(worker, clock, 1)
    client.post("/v1/appointments/crm-1/cancel", json={"reason": "lost deal"}, headers=auth)
    drain(worker, clock, 1)
    assert crm.types() == ["appointment.synced", "appointment.rescheduled", "appointment.cancelled"]
    verifier = Webhook(SECRET)
    for delivery in crm.accepted:
        event = verifier.verify(delivery.body, delivery.headers)
        assert event["data"]["external_id"] == "crm-1"
        assert delivery.headers["webhook-id"].startswith("evt_")
    synced = crm.accepted[0].event["data"]
    # Settled in the transaction that recorded the booking: the event already says synced.
    assert (synced["status"], synced["sync_state"]) == ("active", "synced")
    rescheduled = crm.accepted[1].event["data"]
    assert rescheduled["status"] == "rescheduled" and len(rescheduled["occurrences"]) == 2
    cancelled = crm.accepted[2].event["data"]
    assert cancelled["status"] == "cancelled" and cancelled["cancellation_reason"] == "lost deal"


def test_a_refused_delivery_is_retried_with_the_same_id_and_body(stack, crm, clock):
    client, auth, worker = stack
    crm.fail_next = 2
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    drain(worker, clock)
    assert len(crm.deliveries) == 3 and len(crm.accepted) == 1
    assert len({d.headers["webhook-id"] for d in crm.deliveries}) == 1
    assert len({d.body for d in crm.deliveries}) == 1
    assert len({d.headers["webhook-timestamp"] for d in crm.deliveries}) == 3  # per attempt
    Webhook(SECRET).verify(crm.accepted[0].body, crm.accepted[0].headers)


def test_an_event_is_dead_after_the_configured_attempts_and_can_be_replayed(stack, crm, clock):
    client, auth, worker = stack
    crm.fail_next = 99
    client.put("/v1/appointments/crm-1", json=BODY, headers=auth)
    drain(worker, clock)
    dead = Job.get(Job.kind == "deliver_event")
    assert dead.status == "dead" and "answered 503" in dead.last_error and len(crm.deliveries) == 3
    crm.fail_next = 0
    assert client.post(f"/v1/jobs/{dead.id}/retry", headers=auth).status_code == 200
    drain(worker, clock, 1)
    assert crm.types() == ["appointment.synced"]
    assert crm.accepted[0].headers["webhook-id"] == crm.deliveries[0].headers["webhook-id"]


def test_no_callback_url_means_no_event(db, clock, make_account):
    from connector.outputs import events

    account = make_account()[0]
    assert events.emit(db, account.id, events.SYNCED, {}, now=clock.now(), order_key="x") is None
    assert Job.select().count() == 0


def test_a_signature_made_here_verifies_with_the_reference_library():
    body = b'{"type":"appointment.synced"}'
    now = int(datetime.now(UTC).timestamp())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now),
               "webhook-signature": signing.sign(SECRET, "evt_1", now, body)}
    assert Webhook(SECRET).verify(body, headers) == {"type": "appointment.synced"}
    stale = {**headers, "webhook-timestamp": str(now - int(timedelta(hours=1).total_seconds()))}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, stale)


@pytest.mark.parametrize(("secret", "problem"), [
    ("s3cret", "whsec_"), ("whsec_!!!", "base64"), ("whsec_c2VjcmV0", "24 to 64 bytes")])
def test_secret_checks(secret, problem):
    assert problem in signing.check_secret(secret)

