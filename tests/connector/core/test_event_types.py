from __future__ import annotations

from dataclasses import replace

import pytest

from connector.core import event_types
from connector.sandbox.app import create_sandbox
from mappings.models import EventType
from tests.support.factories import sandbox_clients


@pytest.fixture
def sandbox(clock):
    return create_sandbox(clock)


def test_refresh_adds_changes_and_retires(db, clock, sandbox, make_account):
    account = make_account()[0]
    clients = sandbox_clients(sandbox)
    first = event_types.refresh(db, clock, clients, account.id)
    assert first.added == (123456, 123457, 123789, 123999, 124000, 124100, 124200) and not first.changed
    confirm = EventType.get(EventType.calcom_id == 123789)
    assert confirm.requires_confirmation and confirm.length_minutes == 45
    assert EventType.get(EventType.calcom_id == 123457).length_options == [15, 30, 60]

    calendar = sandbox.calendar
    calendar.event_types[123456] = replace(calendar.event_types[123456], length=20)
    del calendar.event_types[123999]
    second = event_types.refresh(db, clock, clients, account.id)
    assert second.as_dict() == {"added": [], "changed": [123456], "removed": [123999]}
    assert not EventType.get(EventType.calcom_id == 123999).active
    assert event_types.refresh(db, clock, clients, account.id).as_dict() == {
        "added": [], "changed": [], "removed": []}
