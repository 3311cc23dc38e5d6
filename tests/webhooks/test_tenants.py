"""A booking uid names a booking only within its account (issue: hostile tenants).

Two accounts whose Cal.com sides hold the same uid value: account B's appointment
is booked as ``SHARED``; account A receives deliveries, validly signed with A's own
secret, that name ``SHARED``. Nothing of B may change, and A may only gain what its
own data allows. Runs on both engines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest

from connector.calcom.clients import CalcomClients
from connector.core.reconcile import Reconciler
from connector.jobs import queue
from mappings.models import Appointment, AuditEvent, Booking, Job, WebhookDelivery
from tests.fixtures import calcom_shapes
from tests.support.factories import dispatch_deliveries
from webhooks.calcom import APPLY_WEBHOOK
from webhooks.dispatch import DISPATCH_WEBHOOKS

SHARED = "sharedUid0000000000000"
SECRET_A, SECRET_B = "secret-of-account-a-0001", "secret-of-account-b-0001"
START = "2026-03-17T10:00:00Z"


@pytest.fixture
def tenants(make_account):
    a = make_account("A", calcom_webhook_secrets=(SECRET_A,), callback_url="https://a.example.org/h")[0]
    b = make_account("B", calcom_webhook_secrets=(SECRET_B,), callback_url="https://b.example.org/h")[0]
    return a, b


@pytest.fixture
def b_booked(client, tenants, run_jobs, db, sandbox):
    """B's appointment, synced through the sandbox, then its booking renamed SHARED on both sides."""
    _, b = tenants
    token = _token(db, b)
    answer = client.put("/v1/appointments/crm-b", headers=token, json={
        "title": "B's call", "attendee_name": "Bo", "attendee_email": "bo@example.org",
        "start_time": START})
    assert answer.status_code == 201, answer.text
    run_jobs()
    row = Appointment.get(Appointment.external_id == "crm-b")
    held = sandbox.calendar.bookings.pop(row.booking_uid)
    held.uid = SHARED
    sandbox.calendar.bookings[SHARED] = held
    Booking.update(uid=SHARED).where(Booking.uid == row.booking_uid).execute()
    Appointment.update(booking_uid=SHARED).where(Appointment.id == row.id).execute()
    Job.delete().execute()
    return Appointment.get_by_id(row.id)


def _token(db, account) -> dict[str, str]:
    from connector.core import accounts

    _, token = accounts.create_token(db, account.id, "crm", frozenset(accounts.OWNER_SCOPES),
                                     now=datetime(2026, 3, 16, tzinfo=UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def deliver(client, app):
    """Post a body signed with ``secret`` to ``account``'s subscriber URL; run its apply job."""
    worker = app.state.runtime.worker

    def send(account, secret: str, trigger: str, payload: dict) -> str:
        raw = json.dumps({"triggerEvent": trigger, "createdAt": "2026-03-16T08:00:00.000Z",
                          "payload": payload}, separators=(",", ":")).encode()
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        answer = client.post(f"/webhooks/calcom/{account.id}", content=raw, headers={
            "Content-Type": "application/json", "X-Cal-Signature-256": signature})
        assert answer.status_code == 200, answer.text
        delivery_id = answer.json()["delivery_id"]
        while Job.select().where(Job.kind.in_([DISPATCH_WEBHOOKS, APPLY_WEBHOOK])
                                 & (Job.status == "queued")).exists():
            assert worker.run_once()
        return WebhookDelivery.get_by_id(delivery_id).outcome

    return send


def _snapshot(appointment_id: str) -> tuple:
    row = Appointment.get_by_id(appointment_id)
    booking = Booking.get((Booking.appointment == appointment_id) & (Booking.uid == row.booking_uid))
    events = [j.payload["type"] for j in Job.select().where(Job.kind == "deliver_event")
              if j.account_id == row.account_id]
    audits = AuditEvent.select().where(AuditEvent.appointment == appointment_id).count()
    return (row.status, row.start_time, row.meeting_url, row.booking_uid, row.desired_version,
            booking.status, booking.start_time, booking.meeting_url, booking.raw, events, audits)


def _payload(uid: str, **extra) -> dict:
    return {"uid": uid, "bookingId": 1, "eventTypeId": 123456, "title": "A's import",
            "startTime": "2026-03-20T15:00:00Z", "endTime": "2026-03-20T15:30:00Z",
            "status": "ACCEPTED", "location": "https://evil.example/room",
            "organizer": {"email": "mallory@example.org", "name": "Mallory"},
            "attendees": [{"email": "someone@example.org", "name": "Someone", "timeZone": "UTC"}],
            **extra}


@pytest.mark.parametrize("trigger", ["BOOKING_CANCELLED", "BOOKING_REJECTED", "MEETING_ENDED",
                                     "BOOKING_NO_SHOW_UPDATED", "AFTER_HOSTS_CAL_VIDEO_NO_SHOW"])
def test_a_delivery_to_a_naming_bs_uid_changes_nothing_anywhere(tenants, b_booked, deliver, trigger):
    a, _ = tenants
    before = _snapshot(b_booked.id)
    payload = ({"bookingUid": SHARED, "attendees": [{"email": "bo@example.org", "noShow": True}]}
               if trigger == "BOOKING_NO_SHOW_UPDATED" else _payload(SHARED, status="CANCELLED"))
    if trigger == "MEETING_ENDED":
        payload = {"triggerEvent": trigger, **payload}
    # Waiting for a booking A never recorded (MEETING_ENDED has no envelope: here it names none).
    assert deliver(a, SECRET_A, trigger, payload) == ("ignored" if trigger == "MEETING_ENDED" else "waiting")
    assert _snapshot(b_booked.id) == before
    assert Appointment.select().where(Appointment.account == a.id).count() == 0


def test_a_create_naming_bs_uid_and_bs_appointment_id_is_only_as_new_booking_of_a(
        tenants, b_booked, deliver):
    a, b = tenants
    before = _snapshot(b_booked.id)
    outcome = deliver(a, SECRET_A, "BOOKING_CREATED",
                      _payload(SHARED, metadata={"calsync_appointment_id": b_booked.id}))
    assert outcome == "applied"
    assert _snapshot(b_booked.id) == before
    imported = Appointment.get(Appointment.account == a.id)
    assert (imported.external_id, imported.booking_uid, imported.source) == (
        f"calcom:{SHARED}", SHARED, "calcom")
    assert Booking.select().where(Booking.uid == SHARED).count() == 2  # one row per account

    # B's genuine cancellation of its booking still applies: it is not "stale".
    assert deliver(b, SECRET_B, "BOOKING_CANCELLED", {
        "uid": SHARED, "bookingId": 2, "status": "CANCELLED", "cancellationReason": "sick",
        "cancelledBy": "bo@example.org", "startTime": "2026-03-17T10:00:00+00:00",
        "endTime": "2026-03-17T10:30:00+00:00"}) == "applied"
    assert Appointment.get_by_id(b_booked.id).status == "cancelled"
    assert Appointment.get_by_id(imported.id).status == "active"


def test_a_reschedule_naming_bs_uid_as_its_origin_leaves_b_alone(tenants, b_booked, deliver):
    a, _ = tenants
    before = _snapshot(b_booked.id)
    outcome = deliver(a, SECRET_A, "BOOKING_RESCHEDULED",
                      _payload("newUidOfA0000000000000", rescheduleUid=SHARED))
    assert outcome == "applied"  # a chain A never knew: a new booking of A's
    assert _snapshot(b_booked.id) == before
    assert Appointment.get(Appointment.account == a.id).booking_uid == "newUidOfA0000000000000"


def test_as_delivery_never_queues_behind_or_ahead_of_bs_work(tenants, b_booked, client, db, clock):
    a, b = tenants
    raw = json.dumps({"triggerEvent": "BOOKING_CANCELLED", "createdAt": "2026-03-16T08:00:00Z",
                      "payload": {"uid": SHARED}}).encode()
    signature = hmac.new(SECRET_A.encode(), raw, hashlib.sha256).hexdigest()
    assert client.post(f"/webhooks/calcom/{a.id}", content=raw, headers={
        "X-Cal-Signature-256": signature, "Content-Type": "application/json"}).status_code == 200
    dispatch_deliveries(db, clock)
    delivery_job = Job.get(Job.kind == APPLY_WEBHOOK)
    assert delivery_job.serial_key != f"appointment:{b_booked.id}"
    assert delivery_job.account_id == a.id
    # A's delivery is claimed (and could fail for ever): B's converge still runs meanwhile.
    assert queue.claim_next(db, "w1", now=clock.now(), lease_seconds=60).id == delivery_job.id
    queue.enqueue_converge(db, b_booked.id, b.id, now=clock.now())
    claimed = queue.claim_next(db, "w2", now=clock.now(), lease_seconds=60)
    assert claimed is not None and claimed.payload == {"appointment_id": b_booked.id}


def test_the_same_uid_in_two_accounts_reconciles_apart(tenants, b_booked, db, clock, settings, sealer,
                                                       sandbox):
    """A's Cal.com holds SHARED cancelled; B's holds it live. A's pass imports nothing live and
    changes nothing of B's; B's pass answers and finds nothing to repair."""
    from mappings.models import Account
    from tests.support.asgi import SyncASGITransport
    from tests.support.crm import RoutingTransport
    from tests.support.factories import SANDBOX_URL

    a, b = tenants
    Account.update(calcom_api_key=sealer.seal("cal_a_key"), calcom_base_url="http://calcom-a.test").where(
        Account.id == a.id).execute()
    shared = calcom_shapes.booking(uid=SHARED, status="cancelled", start="2026-03-17T10:00:00.000Z",
                                   end="2026-03-17T10:30:00.000Z",
                                   metadata={"calsync_appointment_id": b_booked.id})

    def calcom_a(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/bookings":
            return httpx.Response(200, json=calcom_shapes.page([shared]))
        return httpx.Response(200, json=calcom_shapes.envelope(shared))

    http = httpx.Client(transport=RoutingTransport({
        "calcom-a.test": httpx.MockTransport(calcom_a),
        "sandbox.test": SyncASGITransport(sandbox.app)}))
    clients = CalcomClients(http, settings, sealer, sandbox_url=SANDBOX_URL, sleep=lambda s: None)
    reconciler = Reconciler(db, clock, clients, "https://cal.com")
    before = _snapshot(b_booked.id)
    for full in (False, True):
        assert reconciler.run(a.id, full=full, trigger="cli").status == "done"
    assert _snapshot(b_booked.id) == before
    assert Appointment.select().where(Appointment.account == a.id).count() == 0
    assert reconciler.run(b.id, full=True, trigger="cli").repairs == {}
