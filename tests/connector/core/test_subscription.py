from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from connector import errors
from connector.core import accounts, subscription
from mappings.models import Account
from tests.support.factories import sandbox_clients, sandbox_user


@pytest.fixture
def public(make_account):
    return make_account(public_url="https://calsync.example.com")[0]


def test_register_twice_leaves_one_subscription_with_the_latest_secret(db, clock, sandbox, sealer, public):
    clients = sandbox_clients(sandbox, sealer=sealer)
    first = subscription.register(db, clock, clients, sealer, public.id)
    second = subscription.register(db, clock, clients, sealer, public.id)
    assert (first.action, second.action) == ("created", "updated")
    assert first.webhook_id == second.webhook_id
    hooks = list(sandbox.hub.subscriptions.values())
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook.subscriber_url == f"https://calsync.example.com/webhooks/calcom/{public.id}"
    assert set(subscription.TRIGGERS) <= set(hook.triggers) and hook.payload_template is None
    kept = accounts.webhook_secrets(Account.get_by_id(public.id), sealer)
    assert kept[0] == hook.secret and len(kept) == 2  # the previous one is still accepted


def test_secrets_rotate_and_only_the_last_three_are_kept(db, clock, sandbox, sealer, public):
    clients = sandbox_clients(sandbox, sealer=sealer)
    for _ in range(5):
        subscription.register(db, clock, clients, sealer, public.id)
    assert len(accounts.webhook_secrets(Account.get_by_id(public.id), sealer)) == 3


def test_duplicates_made_elsewhere_are_removed(db, clock, sandbox, sealer, public):
    url = subscription.subscriber_url(public)
    owner = sandbox_user(sandbox, public, sealer).id
    first = sandbox.hub.create({"subscriberUrl": url, "triggers": ["BOOKING_CREATED"], "active": False},
                               owner=owner)
    second = sandbox.hub.create({"subscriberUrl": url + "?copy", "triggers": ["BOOKING_CREATED"],
                                 "active": False}, owner=owner)
    second.subscriber_url = first.subscriber_url  # as two levels of Cal.com may both hold it
    result = subscription.register(db, clock, sandbox_clients(sandbox, sealer=sealer), sealer, public.id)
    assert result.action == "updated" and len(sandbox.hub.subscriptions) == 1
    assert next(iter(sandbox.hub.subscriptions.values())).active is True


def test_without_a_public_url_the_reason_is_clear(db, clock, sandbox, sealer, make_account):
    account = make_account()[0]
    with pytest.raises(errors.ConfigurationError, match="public URL"):
        subscription.register(db, clock, sandbox_clients(sandbox, sealer=sealer), sealer, account.id)


def test_the_sandbox_signs_what_it_sends(clock):
    from connector.sandbox.app import create_sandbox

    sent = []
    sandbox = create_sandbox(clock, send=lambda url, body, headers: sent.append((url, body, headers)))
    host = sandbox.calendar.user("cal_test_key")
    sandbox.hub.create({"subscriberUrl": "https://a.example/h", "triggers": ["BOOKING_CREATED"],
                        "active": True, "secret": "s3cret-value-0123456789"}, owner=host.id)
    sandbox.hub.create({"subscriberUrl": "https://b.example/h", "triggers": ["BOOKING_CREATED"],
                        "active": True}, owner=host.id)
    sandbox.calendar.create_booking({"start": "2026-03-17T10:00:00Z", "eventTypeId": 123456, "attendee": {
        "name": "A", "email": "a@example.org", "timeZone": "UTC"}}, "/v2/bookings", "http://sb", host=host)
    assert len(sent) == 2
    (_, body, signed), (_, _, unsigned) = sent
    assert signed["X-Cal-Signature-256"] == hmac.new(b"s3cret-value-0123456789", body, hashlib.sha256).hexdigest()
    assert unsigned["X-Cal-Signature-256"] == "no-secret-provided"
    event = json.loads(body)
    assert event["triggerEvent"] == "BOOKING_CREATED" and event["payload"]["status"] == "ACCEPTED"
    assert event["payload"]["startTime"] == "2026-03-17T10:00:00Z"
    sandbox.hub.drop_rate = 1.0
    sandbox.calendar.create_booking({"start": "2026-03-17T11:00:00Z", "eventTypeId": 123456, "attendee": {
        "name": "B", "email": "b@example.org", "timeZone": "UTC"}}, "/v2/bookings", "http://sb", host=host)
    assert len(sent) == 2 and sandbox.hub.dropped == 2
