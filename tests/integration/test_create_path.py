"""The create path over real HTTP: CRM → calsync (API, worker, scheduler) → sandbox, on loopback."""

from __future__ import annotations

import httpx
import pytest

from connector.app import create_app
from connector.clock import SystemClock
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from tests.support.factories import CONTROL, CONTROL_TOKEN
from tests.support.servers import ServerThread, wait_for

pytestmark = pytest.mark.integration

BODY = {
    "title": "Intro call",
    "attendee_name": "Alex Prospect",
    "attendee_email": "alex.prospect@example.org",
    "start_time": "2030-01-15T11:00:00+01:00",  # a Tuesday, inside the sandbox's hours
}


@pytest.fixture
def sandbox():
    return create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000, control_token=CONTROL_TOKEN))


@pytest.fixture
def stack(settings, db, sandbox, make_account):
    """The sandbox and calsync (worker and scheduler running), each on its own loopback port."""
    with ServerThread(sandbox.app) as calcom:
        app = create_app(settings, clock=SystemClock(), db=db, sandbox_url=calcom.url,
                         run_background=True)
        with ServerThread(app) as calsync:
            account, token = make_account()
            http = httpx.Client(base_url=calsync.url, timeout=10,
                                headers={"Authorization": f"Bearer {token}"})
            yield calsync, calcom, http
            http.close()


def _active(http, external_id):
    def check():
        body = http.get(f"/v1/appointments/{external_id}").json()
        return body if body["status"] == "active" else None

    return wait_for(check, what=f"{external_id} to become active")


def test_an_appointment_lands_in_calcom_and_comes_back_with_its_booking(stack, sandbox):
    calsync, calcom, http = stack
    answer = http.put("/v1/appointments/crm-42", json=BODY)
    assert answer.status_code == 201 and answer.json()["sync_state"] == "pending"
    shown = _active(http, "crm-42")
    assert shown["sync_state"] == "synced"
    assert shown["booking_uid"] in sandbox.calendar.bookings
    assert shown["meeting_url"] == f"{calcom.url}/video/{shown['booking_uid']}"
    assert httpx.get(shown["meeting_url"]).status_code == 200
    assert sandbox.calendar.created_count == 1


def test_a_dropped_answer_still_makes_exactly_one_booking(stack, sandbox):
    calsync, calcom, http = stack
    httpx.put(f"{calcom.url}/_sandbox/faults", json={"POST /v2/bookings": {"drop_next": 1}}, headers=CONTROL)
    http.put("/v1/appointments/crm-7", json=BODY)
    shown = _active(http, "crm-7")
    state = httpx.get(f"{calcom.url}/_sandbox/state", headers=CONTROL).json()
    assert state["injected"]["drop"] == 1  # the answer really was lost once
    assert state["created"] == 1 and list(sandbox.calendar.bookings) == [shown["booking_uid"]]
    ours = sandbox.calendar.bookings[shown["booking_uid"]]
    assert ours.metadata["calsync_appointment_id"] == shown["id"]


def test_outage_then_recovery(stack, sandbox):
    calsync, calcom, http = stack
    httpx.put(f"{calcom.url}/_sandbox/faults", json={"POST /v2/bookings": {"error_next": 3}}, headers=CONTROL)
    http.put("/v1/appointments/crm-9", json=BODY)
    shown = _active(http, "crm-9")
    assert sandbox.calendar.created_count == 1
    assert shown["last_error"] is None
