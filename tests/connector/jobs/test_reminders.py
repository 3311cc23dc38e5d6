"""Reminders reach the CRM on time: ``appointment.reminder_due`` once per reminder and start, to
the minute on the fake clock, moved with a reschedule, never for a cancelled appointment, not
sent late after an outage longer than the reminder's lead, and still once after a restart."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from connector.jobs import reminders
from connector.outputs import events
from mappings.models import Account, Appointment, Job
from tests.support.factories import put

BOOKER = "https://cal.com"


@pytest.fixture
def account(make_account):
    account = make_account()[0]
    Account.update(callback_url="https://crm.example.test/hook").where(Account.id == account.id).execute()
    return Account.get_by_id(account.id)


def booked(db, clock, account, external_id="crm-1", hours=5, **fields):
    """An appointment going ahead (as converge leaves it), starting ``hours`` from now."""
    start = clock.now().replace(second=0, microsecond=0) + timedelta(hours=hours)
    row = put(db, account, external_id, now=clock.now(), start_time=start.isoformat(), **fields).appointment
    Appointment.update(status="active", sync_state="synced").where(Appointment.id == row.id).execute()
    return Appointment.get_by_id(row.id)


def due_events() -> list[dict]:
    return [json.loads(job.payload["body"]) for job in
            Job.select().where(Job.kind == events.DELIVER_EVENT).order_by(Job.id)
            if job.payload.get("type") == events.REMINDER_DUE]


def sweep(db, clock) -> int:
    return reminders.send_due(db, clock.now(), BOOKER)


def test_a_reminder_goes_out_once_to_the_minute(db, clock, account):
    row = booked(db, clock, account, reminders=[{"channel": "sms", "minutes_before": 60,
                                                 "template": "See you at {time}"}])
    clock.advance(hours=4, minutes=-1)  # 61 minutes before the start
    assert sweep(db, clock) == 0
    clock.advance(minutes=1)  # exactly 60 minutes before
    assert sweep(db, clock) == 1
    assert sweep(db, clock) == 0  # once
    (sent,) = due_events()
    assert sent["data"]["external_id"] == row.external_id
    assert sent["data"]["reminder"] == {"channel": "sms", "minutes_before": 60, "template": "See you at {time}",
                                        "due_at": (row.start_time - timedelta(minutes=60)).strftime(
                                            "%Y-%m-%dT%H:%M:%SZ")}


def test_a_reschedule_moves_the_reminders_and_a_cancel_stops_them(db, clock, account):
    row = booked(db, clock, account, reminders=[{"channel": "email", "minutes_before": 120},
                                                {"channel": "voice", "minutes_before": 30}])
    clock.advance(hours=3)  # the 120-minute reminder is due
    assert sweep(db, clock) == 1
    later = row.start_time + timedelta(days=1)
    Appointment.update(start_time=later).where(Appointment.id == row.id).execute()  # moved in Cal.com
    clock.advance(hours=2)  # the old start's 30-minute reminder would be due now: not any more
    assert sweep(db, clock) == 0
    clock.set(later - timedelta(minutes=120))
    assert sweep(db, clock) == 1  # the new start's reminders are new ones
    Appointment.update(status="cancelled", desired_status="cancelled").where(Appointment.id == row.id).execute()
    clock.set(later - timedelta(minutes=30))
    assert sweep(db, clock) == 0
    assert [e["data"]["reminder"]["channel"] for e in due_events()] == ["email", "email"]


def test_a_reminder_whose_whole_lead_passed_during_an_outage_is_not_sent_late(db, clock, account):
    row = booked(db, clock, account, reminders=[{"channel": "sms", "minutes_before": 15}])
    clock.set(row.start_time - timedelta(minutes=5))  # calsync was down through the due time
    assert sweep(db, clock) == 1  # still inside its lead: sent
    other = booked(db, clock, account, "crm-2", hours=1, reminders=[{"channel": "push", "minutes_before": 10}])
    clock.set(other.start_time + timedelta(minutes=1))  # down past the start
    assert sweep(db, clock) == 0


def test_account_defaults_apply_and_an_empty_list_means_none(db, clock, account):
    Account.update(default_reminders=[{"channel": "email", "minutes_before": 60}]).where(
        Account.id == account.id).execute()
    booked(db, clock, account, "crm-default")
    booked(db, clock, account, "crm-none", reminders=[])
    clock.advance(hours=4)
    assert sweep(db, clock) == 1
    assert [e["data"]["external_id"] for e in due_events()] == ["crm-default"]


def test_after_a_restart_a_sent_reminder_is_not_sent_again(db, clock, account):
    booked(db, clock, account, reminders=[{"channel": "sms", "minutes_before": 60}])
    clock.advance(hours=4)
    assert sweep(db, clock) == 1
    # A new process: nothing in memory, the database remembers.
    assert reminders.send_due(db, clock.now() + timedelta(seconds=30), BOOKER) == 0
    assert len(due_events()) == 1


def test_reminders_are_written_and_refused_through_the_api(client, tenant):
    account, auth = tenant
    body = {"title": "Intro", "attendee_name": "Alex", "attendee_email": "alex@example.org",
            "start_time": "2026-03-17T11:00:00+01:00",
            "reminders": [{"channel": "sms", "minutes_before": 30, "template": "Soon"}]}
    made = client.put("/v1/appointments/crm-r", json=body, headers=auth)
    assert made.status_code == 201 and made.json()["reminders"] == body["reminders"]
    patched = client.patch("/v1/appointments/crm-r", json={"reminders": [{"channel": "push", "minutes_before": 5}]},
                           headers={**auth, "Content-Type": "application/merge-patch+json"})
    assert patched.json()["reminders"] == [{"channel": "push", "minutes_before": 5}]
    bad = client.put("/v1/appointments/crm-r", headers=auth, json={
        **body, "reminders": [{"channel": "fax", "minutes_before": 0}]})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"reminders.0.channel", "reminders.0.minutes_before"}
    assert client.get("/v1/appointments/crm-r", headers=auth).json()["reminders"][0]["channel"] == "push"
    settings = client.put("/v1/settings", headers=auth, json={
        "default_reminders": [{"channel": "email", "minutes_before": 1440}]})
    assert settings.status_code == 200 and settings.json()["default_reminders"] == [
        {"channel": "email", "minutes_before": 1440}]
