"""Factories for the sync core's collaborators."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from connector import accounts, appointments
from connector.clients import CalcomClients
from connector.inputs import AppointmentInput
from connector.settings import Settings
from connector.sync import SyncContext
from mappings.sealing import Sealer
from tests.support.asgi import SyncASGITransport

SANDBOX_URL = "http://sandbox.test"


def sandbox_clients(sandbox, settings: Settings | None = None, sealer: Sealer | None = None,
                    sandbox_url: str | None = SANDBOX_URL, transport: httpx.BaseTransport | None = None
                    ) -> CalcomClients:
    http = httpx.Client(transport=transport or SyncASGITransport(sandbox.app))
    return CalcomClients(http, settings or Settings(), sealer or Sealer("test"),
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
