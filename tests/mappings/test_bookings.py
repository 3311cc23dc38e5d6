"""Booking rows are found and written by (account, uid) only, through mappings/bookings.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mappings import bookings
from mappings.models import Account, Appointment, Booking, new_id

NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
# Filtering or writing by the uid alone, the class of bug that let one tenant rewrite another's row.
BY_UID = re.compile(r"Booking\.uid\b")


def test_no_code_outside_the_bookings_module_selects_a_booking_by_its_uid():
    offenders = []
    for package in ("connector", "webhooks", "mappings"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.relative_to(ROOT).as_posix() in ("mappings/bookings.py", "mappings/models.py"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if BY_UID.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "look bookings up through mappings/bookings.py, which names the account"


def _appointment(account_id: str) -> str:
    return Appointment.create(
        id=new_id("apt"), account=account_id, external_id=new_id("crm"), title="t", attendee_name="n",
        attendee_email="a@b.co", attendee_time_zone="UTC", event_type_id=1, start_time=NOW,
        created_at=NOW, updated_at=NOW).id


def test_record_inserts_then_updates_the_accounts_row_and_no_other(db):
    first, second = (Account.create(id=new_id("acc"), name=n, created_at=NOW, updated_at=NOW).id
                     for n in "AB")
    mine, theirs = _appointment(first), _appointment(second)
    values = dict(status="accepted", start_time=NOW, end_time=NOW + timedelta(minutes=30))
    bookings.record(second, theirs, "u1", now=NOW, **values)
    bookings.record(first, mine, "u1", now=NOW, **values)
    bookings.record(first, mine, "u1", now=NOW + timedelta(minutes=1), **{**values, "status": "cancelled"})
    rows = {(row.account_id, row.uid): row for row in Booking.select()}
    assert len(rows) == 2
    assert rows[(first, "u1")].status == "cancelled" and rows[(first, "u1")].created_at == NOW
    assert rows[(second, "u1")].status == "accepted"
    assert bookings.find(first, "u1").appointment_id == mine
    assert bookings.owners(second, ["u1", "u2", None]) == {"u1": theirs}
    assert bookings.update(first, "u1", status="rejected") == 1
    assert bookings.find(second, "u1").status == "accepted"
    assert bookings.find(first, None) is None and bookings.update(first, None, status="x") == 0
