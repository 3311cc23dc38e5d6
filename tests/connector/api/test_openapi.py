"""/openapi.json describes the API as it behaves: schemathesis sends generated requests (bounded)
and fails on any 5xx, an undocumented status or media type, or an answer that breaks its schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connector.api import spec

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx, value) -> bytes:
    """The import takes JSON lines as text; generated strings are sent as they are."""
    return value if isinstance(value, bytes) else str(value).encode()


schema = schemathesis.openapi.from_dict(spec.document())
# Schema-breaking input too: a bad request must be a documented 4xx problem, never a 500.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def test_the_served_document_is_the_one_tested(client):
    assert client.get("/openapi.json").json() == spec.document()


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case, app, seeded):
    case.call_and_validate(app=app, headers=seeded, checks=CHECKS)


@pytest.fixture
def seeded(client, tenant, run_jobs, fill_event_types):
    """A booked appointment, a cancelled one and cached event types, so answers have bodies to check."""
    account, auth = tenant
    fill_event_types(account)
    body = {"title": "Intro", "attendee_name": "Alex", "attendee_email": "alex@example.org",
            "start_time": "2026-03-17T11:00:00+01:00", "label": "hot", "guests": ["kim@example.org"]}
    client.put("/v1/appointments/crm-1", json=body, headers=auth)
    client.put("/v1/appointments/crm-2", json={**body, "start_time": "2026-03-18T11:00:00+01:00"},
               headers=auth)
    run_jobs()
    client.post("/v1/appointments/crm-2/cancel", json={}, headers=auth)
    run_jobs()
    return auth
