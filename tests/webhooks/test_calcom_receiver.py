"""POST /webhooks/calcom/{account_id}: signatures, storage, dedupe, and a fuzz of the receiver."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.models import Job, WebhookDelivery
from tests.support.factories import dispatch_deliveries
from tests.support.shared import CALCOM, fixture, needs_shared
from tests.webhooks.signed_route import SignedRouteContract
from webhooks.calcom import signature_matches

SECRET = "whsec-calcom-test-secret-0001"
OLD_SECRET = "whsec-calcom-test-secret-0000"


def cal_sign(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Cal-Signature-256": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


@pytest.fixture
def hooked(make_account):
    account, token = make_account(calcom_webhook_secrets=(SECRET, OLD_SECRET))
    return account


class TestCalcomWebhookRoute(SignedRouteContract):
    secret = SECRET
    other_secret = OLD_SECRET

    @pytest.fixture
    def route(self, hooked):
        return f"/webhooks/calcom/{hooked.id}"

    def sign(self, body: bytes, secret: str) -> dict[str, str]:
        return cal_sign(body, secret)

    def valid_body(self) -> bytes:
        return json.dumps({"triggerEvent": "BOOKING_CANCELLED", "createdAt": "2026-03-18T08:05:11.204Z",
                           "payload": {"uid": "unknown-uid", "status": "CANCELLED"}}).encode()

    def test_an_unknown_account_looks_like_a_bad_signature(self, client):
        body = self.valid_body()
        answer = self.post(client, "/webhooks/calcom/acc_nope", body, cal_sign(body, SECRET))
        assert answer.status_code == 401 and self.stored() == (0, 0)

    def test_an_accepted_delivery_and_its_dispatcher_are_stored_together(self, client, route, db, clock):
        body = self.valid_body()
        answer = self.post(client, route, body, cal_sign(body, SECRET))
        assert answer.json()["status"] == "accepted"
        delivery = WebhookDelivery.get()
        assert delivery.dedupe_key == hashlib.sha256(body).hexdigest() and delivery.queued_at is None
        (dispatcher,) = Job.select()  # the delivery row is the queue entry: no job of its own yet
        assert (dispatcher.kind, dispatcher.account_id) == ("dispatch_webhooks", delivery.account_id)
        dispatch_deliveries(db, clock)
        assert Job.get(Job.kind == "apply_webhook").payload == {"delivery_id": delivery.id}
        assert WebhookDelivery.get().queued_at is not None

    @pytest.mark.parametrize("trigger", ["PING", "MEETING_STARTED", "SOMETHING_NEW_IN_2027"])
    def test_ping_and_unknown_triggers_are_stored_and_ignored(self, client, route, trigger):
        body = json.dumps({"triggerEvent": trigger, "createdAt": "2026-03-10T08:59:12Z", "payload": {}}).encode()
        answer = self.post(client, route, body, cal_sign(body, SECRET))
        assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        assert WebhookDelivery.get().outcome == "ignored" and Job.select().count() == 0


def test_unpaired_surrogates_and_nul_in_a_signed_body_are_stored_and_applied_clean(client, hooked, app):
    """json.loads lets "\\ud800" and "\\u0000" through; nothing downstream may choke on them."""
    body = (b'{"triggerEvent":"BOOKING_CREATED","createdAt":"2026-03-10T08:59:12Z","payload":{'
            b'"uid":"abc\\ud800","bookingId":1,"title":"Call \\ud83d with \\u0000 Kim",'
            b'"startTime":"2026-03-20T15:00:00Z","endTime":"2026-03-20T15:30:00Z","status":"ACCEPTED",'
            b'"attendees":[{"email":"kim@example.org","name":"K\\udfffim","timeZone":"Mars/Base"}]}}')
    answer = client.post(f"/webhooks/calcom/{hooked.id}", content=body, headers=cal_sign(body, SECRET))
    assert answer.status_code == 200, answer.text
    assert WebhookDelivery.get().booking_uid is None  # not a uid Cal.com would write
    clean = body.replace(b"abc\\ud800", b"abcd0000000000000000000")
    assert client.post(f"/webhooks/calcom/{hooked.id}", content=clean,
                       headers=cal_sign(clean, SECRET)).status_code == 200
    while app.state.runtime.worker.run_once():
        pass
    assert [row.outcome for row in WebhookDelivery.select().order_by(WebhookDelivery.id)] == [
        "ignored", "applied"]
    from mappings.models import Appointment

    imported = Appointment.get()
    assert (imported.title, imported.attendee_name, imported.attendee_time_zone) == (
        "Call \ufffd with  Kim", "K\ufffdim", "UTC")
    shown = client.get("/v1/webhook-deliveries", headers=_owner(hooked))
    assert shown.status_code == 200 and shown.json()["items"][0]["trigger"] == "BOOKING_CREATED"


def _owner(account) -> dict[str, str]:
    from connector.clock import SystemClock
    from connector.core import accounts
    from mappings.db import database

    _, token = accounts.create_token(database, account.id, "admin", frozenset({accounts.ADMIN}),
                                     now=SystemClock().now())
    return {"Authorization": f"Bearer {token}"}


@needs_shared
def test_the_reference_signature_vectors():
    vectors = json.loads((CALCOM / "fixtures" / "signatures.json").read_text())
    for name, vector in vectors["fixtures"].items():
        compact = json.dumps(fixture(name), separators=(",", ":"), ensure_ascii=False).encode()
        assert hashlib.sha256(compact).hexdigest() == vector["compact_body_sha256"], name
        assert signature_matches(compact, vector["X-Cal-Signature-256"], [vectors["secret"]]), name
        assert not signature_matches(compact, vector["X-Cal-Signature-256"], ["another-secret"]), name


# Header values a client can send at all: printable ASCII.
HEADER_VALUES = st.one_of(st.none(), st.just("no-secret-provided"),
                          st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
                          st.from_regex(r"[0-9a-f]{64}", fullmatch=True))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=600), st.builds(
    lambda trigger, payload: json.dumps({"triggerEvent": trigger, "payload": payload}).encode(),
    st.text(max_size=30), st.dictionaries(st.text(max_size=12), st.one_of(
        st.none(), st.integers(), st.text(max_size=20), st.booleans()), max_size=6))),
    signature=HEADER_VALUES, sign_it=st.booleans(), content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_fuzz_never_a_500_and_nothing_stored_without_a_valid_signature(
        client, hooked, body, signature, sign_it, content_type):
    before = WebhookDelivery.select().count()
    headers = {"Content-Type": content_type}
    if sign_it:
        headers.update(cal_sign(body, SECRET))
    elif signature is not None:
        headers["X-Cal-Signature-256"] = signature
    answer = client.post(f"/webhooks/calcom/{hooked.id}", content=body, headers=headers)
    assert answer.status_code < 500
    stored = WebhookDelivery.select().count() - before
    if not sign_it:
        assert answer.status_code == 401 and stored == 0
    else:
        assert answer.status_code in (200, 400)
        assert stored <= 1
