"""Cal.com's side changes reach calsync by webhook, over real HTTP on loopback."""

from __future__ import annotations

import httpx
import pytest

from connector.app import create_app
from connector.clock import SystemClock
from connector.core import subscription
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from mappings.db import session
from mappings.models import Appointment, WebhookDelivery
from tests.support.factories import CONTROL, CONTROL_TOKEN
from tests.support.servers import ServerThread, wait_for

pytestmark = pytest.mark.integration

BODY = {"title": "Intro call", "attendee_name": "Alex Prospect", "attendee_email": "alex@example.org",
        "start_time": "2030-01-15T11:00:00+01:00"}


def test_attendee_changes_in_calcom_reach_the_appointment(settings, db, make_account, sealer):
    sandbox = create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000, control_token=CONTROL_TOKEN))
    with ServerThread(sandbox.app) as calcom:
        app = create_app(settings, clock=SystemClock(), db=db, sandbox_url=calcom.url, run_background=True)
        with ServerThread(app) as calsync:
            account, token = make_account(public_url=calsync.url)
            subscription.register(db, SystemClock(), app.state.runtime.clients, sealer, account.id)
            http = httpx.Client(base_url=calsync.url, timeout=10, headers={"Authorization": f"Bearer {token}"})

            def appointment():
                with session(db):
                    return Appointment.get(Appointment.external_id == "crm-1")

            def outcomes():
                with session(db):
                    return [d.outcome for d in WebhookDelivery.select().order_by(WebhookDelivery.id)]

            http.put("/v1/appointments/crm-1", json=BODY)
            wait_for(lambda: appointment().status == "active", what="the booking")
            wait_for(lambda: outcomes() == ["echo"], what="calsync's own create to come back as an echo")
            first_uid = appointment().booking_uid

            moved = httpx.post(f"{calcom.url}/_sandbox/act/{first_uid}/reschedule",
                               json={"start": "2030-01-16T13:00:00Z"}, headers=CONTROL)
            assert moved.status_code == 200
            wait_for(lambda: appointment().booking_uid != first_uid, what="the attendee's reschedule")
            row = appointment()
            assert (row.status, row.sync_state) == ("rescheduled", "synced")
            assert row.start_time.isoformat() == "2030-01-16T13:00:00+00:00"
            assert sandbox.calendar.created_count == 1  # calsync did not fight the attendee

            httpx.post(f"{calcom.url}/_sandbox/act/{row.booking_uid}/cancel", json={"reason": "Changed plans"},
                       headers=CONTROL)
            wait_for(lambda: appointment().status == "cancelled", what="the attendee's cancellation")
            row = appointment()
            assert (row.cancelled_by, row.cancellation_reason) == ("attendee", "Changed plans")
            assert http.patch("/v1/appointments/crm-1", json={"title": "x"}).status_code == 409
            assert outcomes() == ["echo", "applied", "applied"]

            # A lost webhook: Cal.com moved, calsync does not know until the reconciler looks.
            http.put("/v1/appointments/crm-2", json={**BODY, "start_time": "2030-01-17T11:00:00+01:00"})
            wait_for(lambda: Appointment.get(Appointment.external_id == "crm-2").status == "active",
                     what="the second booking")
            second = Appointment.get(Appointment.external_id == "crm-2")
            httpx.put(f"{calcom.url}/_sandbox/webhooks", json={"drop_rate": 1.0}, headers=CONTROL)
            httpx.post(f"{calcom.url}/_sandbox/act/{second.booking_uid}/reschedule",
                       json={"start": "2030-01-18T13:00:00Z"}, headers=CONTROL)
            assert sandbox.hub.dropped == 1
            assert Appointment.get_by_id(second.id).booking_uid == second.booking_uid
            run = http.post("/v1/reconcile")
            assert run.status_code == 200 and run.json()["repairs"] == {"reschedule": 1}
            repaired = Appointment.get_by_id(second.id)
            assert repaired.booking_uid != second.booking_uid and repaired.status == "rescheduled"
            assert repaired.start_time.isoformat() == "2030-01-18T13:00:00+00:00"
            http.close()
        sandbox.hub.close()
