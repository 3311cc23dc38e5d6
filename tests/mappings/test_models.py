from __future__ import annotations

from datetime import UTC, datetime

import pytest
from peewee import IntegrityError

from mappings.models import Account, Appointment, Booking, Job, new_id

NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)


def _account() -> Account:
    return Account.create(id=new_id("acc"), name="A", created_at=NOW, updated_at=NOW)


def _appointment(account: Account, external_id: str = "crm-1") -> Appointment:
    return Appointment.create(
        id=new_id("apt"), account=account, external_id=external_id, title="t", attendee_name="n",
        attendee_email="a@b.co", attendee_time_zone="UTC", event_type_id=1, start_time=NOW,
        created_at=NOW, updated_at=NOW)


def test_external_id_is_unique_per_account(db):
    first, second = _account(), _account()
    _appointment(first)
    _appointment(second)  # the same CRM id in another account is fine
    with pytest.raises(IntegrityError), db.atomic():
        _appointment(first)


def test_a_booking_uid_is_unique_within_its_account_only(db):
    first, second = _account(), _account()
    values = dict(status="accepted", start_time=NOW, end_time=NOW, created_at=NOW, updated_at=NOW)
    Booking.create(account=first, appointment=_appointment(first), uid="u1", **values)
    Booking.create(account=second, appointment=_appointment(second), uid="u1", **values)
    with pytest.raises(IntegrityError), db.atomic():
        Booking.create(account=first, appointment=_appointment(first, "crm-2"), uid="u1", **values)


def test_at_most_one_queued_job_per_dedupe_key(db):
    values = dict(kind="converge", run_at=NOW, created_at=NOW, updated_at=NOW, dedupe_key="converge:x")
    Job.create(status="queued", **values)
    Job.create(status="done", **values)  # finished ones do not count
    with pytest.raises(IntegrityError), db.atomic():
        Job.create(status="queued", **values)


def test_at_most_one_running_job_per_serial_key(db):
    values = dict(kind="converge", run_at=NOW, created_at=NOW, updated_at=NOW, serial_key="appointment:x")
    Job.create(status="running", **values)
    Job.create(status="queued", **values)
    with pytest.raises(IntegrityError), db.atomic():
        Job.create(status="running", **values)


def test_instants_come_back_aware_in_utc(db):
    appointment = _appointment(_account())
    loaded = Appointment.get_by_id(appointment.id)
    assert loaded.start_time == NOW and loaded.start_time.tzinfo is not None


def test_a_naive_instant_is_never_written(db):
    with pytest.raises(ValueError):
        Account.create(id=new_id("acc"), name="A", created_at=datetime(2026, 1, 1), updated_at=NOW)


def test_a_new_sqlite_database_is_in_wal_mode(tmp_path):
    from mappings.db import make_database

    db = make_database(f"sqlite:///{tmp_path}/wal.db")
    with db.connection_context():
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_get_by_id_reads_the_row_by_its_key_whatever_its_type(db, make_account, clock):
    """The statement is built once per model; each call still reads its own row, and a missing
    one raises the model's own DoesNotExist."""
    first, second = make_account("First")[0], make_account("Second")[0]
    assert Account.get_by_id(first.id).name == "First"
    assert Account.get_by_id(second.id).name == "Second"
    job_id = Job.insert(kind="converge", payload={"n": 1}, status="queued", run_at=clock.now(),
                        created_at=clock.now(), updated_at=clock.now()).execute()
    job = Job.get_by_id(job_id)
    assert (job.payload, job.run_at) == ({"n": 1}, clock.now())  # converted as a select converts
    with pytest.raises(Account.DoesNotExist):
        Account.get_by_id("acc_missing")
    with pytest.raises(Job.DoesNotExist):
        Job.get_by_id(job_id + 1)
