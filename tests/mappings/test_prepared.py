"""Statements built once (mappings/prepared.py) and the model helpers that use them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mappings.models import Account, Appointment, Booking, Job, new_id
from mappings.prepared import Prepared

NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)


def _account(name: str = "A") -> Account:
    return Account.create(id=new_id("acc"), name=name, created_at=NOW, updated_at=NOW)


def _job(run_at: datetime, kind: str = "converge") -> int:
    return Job.create(kind=kind, payload={"n": 1}, status="queued", run_at=run_at, created_at=NOW,
                      updated_at=NOW).id


def test_a_prepared_select_finds_what_peewee_finds_for_each_value(db):
    builds = []

    def build(slot):
        builds.append(1)
        return Job.select().where((Job.kind == slot("kind")) & (Job.run_at <= slot("now"))).order_by(Job.id)

    due = Prepared(build)
    early, late = _job(NOW), _job(NOW + timedelta(hours=1))
    _job(NOW, kind="reconcile")
    for now in (NOW - timedelta(seconds=1), NOW, NOW + timedelta(hours=2)):
        expected = [job.id for job in Job.select().where(
            (Job.kind == "converge") & (Job.run_at <= now)).order_by(Job.id)]
        assert [job.id for job in due.rows(kind="converge", now=now)] == expected
    assert [job.id for job in due.rows(kind="converge", now=NOW + timedelta(hours=2))] == [early, late]
    # An instant is converted by the field it is compared with: the row comes back aware.
    assert due.first(kind="converge", now=NOW).run_at == NOW
    assert due.tuples(kind="reconcile", now=NOW)[0][0] not in (early, late)
    assert len(builds) == 1  # built once for this engine, run five times


def test_a_slot_left_without_a_value_is_named():
    lookup = Prepared(lambda slot: Job.select().where(Job.kind == slot("kind")))
    with pytest.raises(TypeError, match="'kind'"):
        lookup.first()


def test_update_by_id_converts_each_value_by_its_field_and_counts_the_rows(db):
    account = _account()
    other = _account("B")
    later = NOW + timedelta(days=1)
    assert Account.update_by_id(account.id, name="Renamed", updated_at=later,
                                default_reminders=[{"channel": "email", "minutes_before": 30}]) == 1
    row = Account.get_by_id(account.id)
    assert (row.name, row.updated_at) == ("Renamed", later)
    assert row.default_reminders == [{"channel": "email", "minutes_before": 30}]
    assert Account.get_by_id(other.id).name == "B"  # only the row named
    assert Account.update_by_id("acc_missing", name="Nobody") == 0
    assert Account.update_by_id(account.id, default_reminders=None, name="Again") == 1
    assert Account.get_by_id(account.id).default_reminders is None


def test_update_by_id_takes_column_names_and_expressions_as_peewee_does(db):
    first, second = _account(), _account("B")
    appointment = Appointment.create(
        id=new_id("apt"), account=first, external_id="crm-1", title="t", attendee_name="n",
        attendee_email="a@b.co", attendee_time_zone="UTC", event_type_id=1, start_time=NOW,
        created_at=NOW, updated_at=NOW)
    assert Appointment.update_by_id(appointment.id, account_id=second.id) == 1
    assert Appointment.get_by_id(appointment.id).account_id == second.id
    job_id = _job(NOW)
    assert Job.update_by_id(job_id, attempts=Job.attempts + 2) == 1
    assert Job.get_by_id(job_id).attempts == 2


def test_create_fills_defaults_and_gives_back_the_generated_key(db):
    first = _job(NOW)
    second = Job.create(kind="converge", status="queued", run_at=NOW, created_at=NOW, updated_at=NOW)
    assert second.id == first + 1
    stored = Job.get_by_id(second.id)
    assert (stored.payload, stored.attempts, stored.run_at) == ({}, 0, NOW)  # peewee's defaults
    account = _account()
    assert Account.get_by_id(account.id).time_zone == "UTC"


def test_a_model_with_a_column_named_raw_is_read_too(db):
    """Booking's ``raw`` column hides peewee's ``Model.raw``: rows are made without it."""
    account = _account()
    appointment = Appointment.create(
        id=new_id("apt"), account=account, external_id="crm-1", title="t", attendee_name="n",
        attendee_email="a@b.co", attendee_time_zone="UTC", event_type_id=1, start_time=NOW,
        created_at=NOW, updated_at=NOW)
    booking = Booking.create(account=account, appointment=appointment, uid="u1", status="accepted",
                             start_time=NOW, end_time=NOW, raw={"uid": "u1"}, created_at=NOW,
                             updated_at=NOW)
    assert Booking.find_by_id(booking.id).raw == {"uid": "u1"}
