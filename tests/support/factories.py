"""Factories for the sync core's collaborators."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from connector.calcom.clients import CalcomClients
from connector.core import accounts, appointments
from connector.core.sync import SyncContext
from connector.inputs import AppointmentInput
from connector.settings import Settings
from mappings.sealing import Sealer
from tests.support.asgi import SyncASGITransport

SANDBOX_URL = "http://sandbox.test"
# The sealing key of the suite's settings (tests/conftest.py): accounts' sealed sandbox keys open with it.
SECRET_KEY = "test-secret-key"
# Opens the sandbox's controls in tests (sandbox.control_token).
CONTROL_TOKEN = "sandbox-control-token-for-tests"
CONTROL = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


def sandbox_clients(sandbox, settings: Settings | None = None, sealer: Sealer | None = None,
                    sandbox_url: str | None = SANDBOX_URL, transport: httpx.BaseTransport | None = None
                    ) -> CalcomClients:
    http = httpx.Client(transport=transport or SyncASGITransport(sandbox.app))
    return CalcomClients(http, settings or Settings(), sealer or Sealer(SECRET_KEY),
                         sandbox_url=sandbox_url, sleep=lambda seconds: None)


def appointment_input(**overrides: Any) -> AppointmentInput:
    values: dict[str, Any] = {
        "title": "Intro call",
        "attendee_name": "Alex Prospect",
        "attendee_email": "alex.prospect@example.org",
        "start_time": "2026-03-17T10:00:00Z",
    }
    values.update(overrides)
    return AppointmentInput.model_validate_json(json.dumps(values))


def put(db, account, external_id: str = "crm-1", *, now: datetime, **overrides: Any):
    principal = accounts.Principal(account.id, "tok_test", "crm-backend",
                                   frozenset(accounts.SCOPES))
    return appointments.put(db, principal, external_id, appointment_input(**overrides), now=now)


def sync_context(db, clock, clients: CalcomClients) -> SyncContext:
    return SyncContext(db=db, clock=clock, clients=clients)


def sandbox_user(sandbox, account, sealer: Sealer | None = None):
    """The sandbox's user for ``account``: what a booking made "in Cal.com" for it belongs to."""
    from mappings.db import database

    return sandbox.calendar.user(accounts.sandbox_key(database, account, sealer or Sealer(SECRET_KEY)))


def dispatch_deliveries(db, clock) -> None:
    """Run the queued webhook dispatchers alone: each stored delivery gets its apply job."""
    from connector.jobs.retry import RetryPolicy
    from connector.jobs.worker import Worker
    from webhooks.dispatch import DISPATCH_WEBHOOKS, DispatchHandler

    dispatcher = Worker(db, clock, {DISPATCH_WEBHOOKS: DispatchHandler(db, clock)}, RetryPolicy())
    while dispatcher.run_once():
        pass
