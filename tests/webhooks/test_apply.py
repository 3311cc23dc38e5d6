"""Every Cal.com fixture delivered and applied, with its expected result; stale, echo, crossing."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from connector.core.sync import converge
from connector.jobs.worker import Worker
from mappings.models import Appointment, AuditEvent, Booking, Job, WebhookDelivery
from tests.support.factories import dispatch_deliveries, put, sandbox_clients, sync_context
from tests.support.shared import fixture, needs_shared
from webhooks.calcom import APPLY_WEBHOOK
from webhooks.dispatch import DISPATCH_WEBHOOKS

pytestmark = needs_shared

SECRET = "calsync-fixture-secret"


@pytest.fixture
def account(make_account):
    return make_account(calcom_webhook_secrets=(SECRET,), callback_url="https://crm.example.org/hooks")[0]


@pytest.fixture
def deliver(client, account, app, db, clock):
    """Send a body as Cal.com would (compact JSON, signed), apply it, return the outcome.

    Only the webhook's own job runs: converges and CRM deliveries stay queued for inspection.
    """
    runtime_worker = app.state.runtime.worker
    apply_only = Worker(db, clock, {kind: runtime_worker.handlers[kind]
                                    for kind in (DISPATCH_WEBHOOKS, APPLY_WEBHOOK)}, runtime_worker.policy)

    def send(body: dict) -> str:
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        answer = client.post(f"/webhooks/calcom/{account.id}", content=raw,
                             headers={"Content-Type": "application/json", "X-Cal-Signature-256": signature})
        assert answer.status_code == 200, answer.text
        while apply_only.run_once():
            pass
        return WebhookDelivery.get_by_id(answer.json()["delivery_id"]).outcome

    return send


@pytest.fixture
def booked(db, clock, account):
    """An appointment of calsync's whose current booking is ``uid``."""

    def make(uid: str, start: str, external_id: str = "crm-1", status: str = "accepted",
             email: str = "alex.prospect@example.org"):
        appointment = put(db, account, external_id, now=clock.now(), start_time=start,
                          attendee_email=email).appointment
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        Booking.create(account=account.id, appointment=appointment.id, uid=uid, status=status,
                       start_time=begin,
                       end_time=begin.replace(minute=begin.minute + 30), created_at=clock.now(),
                       updated_at=clock.now())
        Appointment.update(booking_uid=uid, status="awaiting_confirmation" if status == "pending" else "active",
                           sync_state="synced", synced_version=1).where(Appointment.id == appointment.id).execute()
        Job.delete().execute()
        return appointment.id

    return make


def crm_events() -> list[str]:
    return [j.payload["type"] for j in Job.select().where(Job.kind == "deliver_event").order_by(Job.id)]


def row(external_id: str) -> Appointment:
    return Appointment.get(Appointment.external_id == external_id)


def test_booking_created_in_calcom_becomes_a_new_appointment(deliver):
    assert deliver(fixture("webhook-BOOKING_CREATED.json")) == "applied"
    made = row("calcom:h3Y8sQz2VwRkM5nTqL7pXa")
    assert (made.source, made.status, made.sync_state) == ("calcom", "active", "synced")
    assert made.start_time == datetime(2026, 3, 17, 14, 0, tzinfo=UTC)
    assert made.meeting_url == "https://app.cal.com/video/h3Y8sQz2VwRkM5nTqL7pXa"
    assert made.title == "Intro Call between Dana Host and Alex Prospect"
    assert (made.attendee_email, made.event_type_id) == ("alex.prospect@example.org", 123456)
    assert crm_events() == ["appointment.created"]


def test_booking_created_for_calsyncs_own_booking_is_an_echo(deliver, booked):
    booked("h3Y8sQz2VwRkM5nTqL7pXa", "2026-03-17T14:00:00Z")
    assert deliver(fixture("webhook-BOOKING_CREATED.json")) == "echo"
    assert crm_events() == []


def _lost_create(db, clock, account) -> tuple[Appointment, dict]:
    """An appointment whose create reached Cal.com but whose answer was lost (its converge job
    gave up for now), and Cal.com's BOOKING_CREATED for it."""
    appointment = put(db, account, "crm-1", now=clock.now(), start_time="2026-03-17T14:00:00Z").appointment
    Appointment.update(create_attempted_at=clock.now()).where(Appointment.id == appointment.id).execute()
    Job.delete().execute()
    body = fixture("webhook-BOOKING_CREATED.json")
    body["payload"]["metadata"] = {"videoCallUrl": body["payload"]["metadata"]["videoCallUrl"],
                                   "calsync_appointment_id": appointment.id}
    return appointment, body


def test_booking_created_names_an_appointment_whose_answer_was_lost(deliver, db, clock, account):
    appointment, body = _lost_create(db, clock, account)
    assert deliver(body) == "applied"
    adopted = row("crm-1")
    assert (adopted.booking_uid, adopted.status, adopted.create_attempted_at) == (
        "h3Y8sQz2VwRkM5nTqL7pXa", "active", None)
    assert adopted.sync_state == "synced"  # what Cal.com holds is what the CRM asked for


def test_adopting_a_lost_create_never_settles_an_edit_the_crm_made_meanwhile(deliver, db, clock, account):
    from connector.core import accounts, appointments

    appointment, body = _lost_create(db, clock, account)
    principal = accounts.Principal(account.id, "tok", "crm", frozenset(accounts.SCOPES))
    appointments.patch(db, principal, "crm-1", b'{"start_time": "2026-03-17T15:00:00Z"}', now=clock.now())
    Job.delete().execute()
    assert deliver(body) == "applied"
    adopted = row("crm-1")
    assert adopted.booking_uid == "h3Y8sQz2VwRkM5nTqL7pXa"
    assert (adopted.sync_state, adopted.synced_version) == ("pending", 0)  # 15:00 is not sent yet
    assert Job.select().where((Job.kind == "converge") & (Job.status == "queued")).count() == 1


def test_an_adopted_length_survives_a_later_edit_of_another_field(deliver, db, clock, account):
    """The CRM left the length to the event type; the adopted booking's end must not vanish when
    the CRM then edits the title (the fault test found calsync saying "no end" of a live booking)."""
    from connector.core import accounts, appointments

    appointment, body = _lost_create(db, clock, account)
    assert appointment.duration_minutes is None and appointment.end_time is None
    assert deliver(body) == "applied"
    adopted = row("crm-1")
    assert (adopted.duration_minutes, adopted.end_time) == (30, datetime(2026, 3, 17, 14, 30, tzinfo=UTC))
    principal = accounts.Principal(account.id, "tok", "crm", frozenset(accounts.SCOPES))
    appointments.patch(db, principal, "crm-1", b'{"title": "Renamed"}', now=clock.now())
    assert row("crm-1").end_time == datetime(2026, 3, 17, 14, 30, tzinfo=UTC)


def test_a_delivery_naming_an_appointment_queues_behind_its_converge(client, account, db, clock):
    """Until the create's answer is recorded, only the metadata links the booking to the
    appointment: its delivery takes the appointment's serial key all the same."""
    appointment, body = _lost_create(db, clock, account)
    from connector.jobs import queue

    converge = queue.enqueue_converge(db, appointment.id, account.id, now=clock.now())
    assert queue.claim_next(db, "converging", now=clock.now(), lease_seconds=60).id == converge
    raw = json.dumps(body, separators=(",", ":")).encode()
    signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert client.post(f"/webhooks/calcom/{account.id}", content=raw, headers={
        "Content-Type": "application/json", "X-Cal-Signature-256": signature}).status_code == 200
    dispatch_deliveries(db, clock)
    delivery_job = Job.get(Job.kind == APPLY_WEBHOOK)
    assert delivery_job.serial_key == f"appointment:{appointment.id}"
    assert queue.claim_next(db, "other", now=clock.now(), lease_seconds=60) is None


def test_a_confirmation_makes_a_pending_booking_active(deliver, booked):
    booked("h3Y8sQz2VwRkM5nTqL7pXa", "2026-03-17T14:00:00Z", status="pending")
    assert deliver(fixture("webhook-BOOKING_CREATED.json")) == "applied"
    assert row("crm-1").status == "active"
    assert Booking.get(Booking.uid == "h3Y8sQz2VwRkM5nTqL7pXa").status == "accepted"
    assert crm_events() == ["appointment.confirmed"]


def test_an_attendee_reschedule_moves_the_chain_and_the_desired_state(deliver, booked, clock):
    clock.set(datetime(2026, 3, 11, 9, 0, tzinfo=UTC))  # the CRM wrote before the attendee moved
    booked("h3Y8sQz2VwRkM5nTqL7pXa", "2026-03-17T14:00:00Z")
    assert deliver(fixture("webhook-BOOKING_RESCHEDULED.json")) == "applied"
    moved = row("crm-1")
    assert (moved.booking_uid, moved.status, moved.sync_state) == ("9FrKx2TmWq4NbZpLs6VcYd", "rescheduled", "synced")
    assert moved.start_time == datetime(2026, 3, 19, 15, 0, tzinfo=UTC) and moved.ics_sequence == 1
    old = Booking.get(Booking.uid == "h3Y8sQz2VwRkM5nTqL7pXa")
    assert (old.status, old.rescheduled_to_uid) == ("cancelled", "9FrKx2TmWq4NbZpLs6VcYd")
    assert Booking.get(Booking.uid == "9FrKx2TmWq4NbZpLs6VcYd").rescheduled_from_uid == old.uid
    assert crm_events() == ["appointment.rescheduled"]
    assert Job.select().where(Job.kind == "converge").count() == 0  # nothing for Cal.com to do


def test_a_later_crm_edit_stands_over_an_attendee_reschedule(deliver, booked, db, clock, account):
    booked("h3Y8sQz2VwRkM5nTqL7pXa", "2026-03-17T14:00:00Z")
    put(db, account, "crm-1", now=clock.now(), start_time="2026-03-20T10:00:00Z")  # after the move
    Job.delete().execute()
    assert deliver(fixture("webhook-BOOKING_RESCHEDULED.json")) == "applied"
    crossed = row("crm-1")
    assert crossed.booking_uid == "9FrKx2TmWq4NbZpLs6VcYd"
    assert crossed.start_time == datetime(2026, 3, 20, 10, 0, tzinfo=UTC)  # the CRM's
    assert crossed.sync_state == "pending"
    assert Job.select().where(Job.kind == "converge").count() == 1  # it will move the new booking
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert "appointment.updated" in actions and "booking.rescheduled_in_calcom" in actions


def test_a_cancellation_in_calcom_is_final(deliver, booked, client):
    booked("9FrKx2TmWq4NbZpLs6VcYd", "2026-03-19T15:00:00Z")
    assert deliver(fixture("webhook-BOOKING_CANCELLED.json")) == "applied"
    gone = row("crm-1")
    assert (gone.status, gone.desired_status, gone.cancelled_by) == ("cancelled", "cancelled", "attendee")
    assert (gone.cancellation_reason, gone.cancelled_by_email) == ("No longer needed", "alex.prospect@example.org")
    assert crm_events() == ["appointment.cancelled"]
    assert deliver({**fixture("webhook-BOOKING_CANCELLED.json"), "createdAt": "2026-03-18T08:06:00Z"}) == "echo"


def test_a_request_then_a_decline(deliver):
    assert deliver(fixture("webhook-BOOKING_REQUESTED.json")) == "applied"
    waiting = row("calcom:Qm7tVb3XcNp9RkLw2HsDfG")
    assert waiting.status == "awaiting_confirmation" and waiting.source == "calcom"
    assert deliver(fixture("webhook-BOOKING_REJECTED.json")) == "applied"
    declined = row("calcom:Qm7tVb3XcNp9RkLw2HsDfG")
    assert declined.status == "rejected" and "declined" in declined.last_error
    assert crm_events() == ["appointment.created", "appointment.declined"]


def test_no_show_updates_set_attendance(deliver, booked):
    booked("Lp4sWd8KzR2mQx6TnB9vHc", "2026-03-09T13:00:00Z")
    assert deliver(fixture("webhook-BOOKING_NO_SHOW_UPDATED.json")) == "applied"
    assert row("crm-1").attendance == "no_show"
    assert crm_events() == ["appointment.attendance"]


def test_meeting_ended_completes_the_appointment(deliver, booked):
    booked("Lp4sWd8KzR2mQx6TnB9vHc", "2026-03-09T13:00:00Z")
    assert deliver(fixture("webhook-MEETING_ENDED.json")) == "applied"
    assert row("crm-1").status == "completed"
    assert crm_events() == ["appointment.completed"]


def test_a_host_no_show_is_recorded(deliver, booked):
    booked("Tz5nHq2WbX8cKm4RpL7sFd", "2026-03-11T10:00:00Z")
    assert deliver(fixture("webhook-AFTER_HOSTS_CAL_VIDEO_NO_SHOW.json")) == "applied"
    assert Booking.get(Booking.uid == "Tz5nHq2WbX8cKm4RpL7sFd").raw["absentHost"] is True
    assert AuditEvent.select().where(AuditEvent.action == "attendance.host_no_show").count() == 1


def test_ping_is_ignored(deliver):
    assert deliver(fixture("webhook-PING.json")) == "ignored"
    assert Appointment.select().count() == 0


def test_an_older_event_than_what_was_observed_is_stale(deliver, booked):
    booked("9FrKx2TmWq4NbZpLs6VcYd", "2026-03-19T15:00:00Z")
    deliver(fixture("webhook-BOOKING_CANCELLED.json"))
    late_created = fixture("webhook-BOOKING_CREATED.json")
    late_created["payload"]["uid"] = "9FrKx2TmWq4NbZpLs6VcYd"
    assert deliver(late_created) == "stale"
    assert row("crm-1").status == "cancelled"


def test_calsyncs_own_reschedule_comes_back_as_an_echo(deliver, db, clock, account, sandbox):
    ctx = sync_context(db, clock, sandbox_clients(sandbox))
    appointment = put(db, account, "crm-1", now=clock.now(), start_time="2026-03-17T10:00:00Z").appointment
    converge(ctx, appointment.id)
    old_uid = row("crm-1").booking_uid
    put(db, account, "crm-1", now=clock.now(), start_time="2026-03-18T10:00:00Z")
    converge(ctx, appointment.id)
    # The converge jobs those writes queued were just done by hand; left queued, they would
    # (rightly) hold the webhook's job behind them, as jobs of one appointment run in order.
    Job.delete().where(Job.kind == "converge").execute()
    before = crm_events()
    body = fixture("webhook-BOOKING_RESCHEDULED.json")
    body["payload"].update(uid=row("crm-1").booking_uid, rescheduleUid=old_uid)
    assert deliver(body) == "echo"
    assert crm_events() == before


def test_a_payment_trigger_carrying_a_booking_is_applied_as_the_booking(deliver):
    """Classified by payload (webhooks/classify.py): BOOKING_PAID carries the booking row."""
    body = fixture("webhook-BOOKING_CREATED.json")
    body["triggerEvent"] = "BOOKING_PAID"
    assert deliver(body) == "applied"
    assert row("calcom:h3Y8sQz2VwRkM5nTqL7pXa").status == "active"
    assert deliver({**body, "triggerEvent": "BOOKING_CREATED"}) == "echo"
