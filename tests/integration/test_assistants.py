"""AI assistants book through calsync: the MCP tools driven by the official SDK's own client, over
streamable HTTP (``/mcp`` in the running server) and over stdio (``calsync mcp``), against
calsync's worker and the sandbox on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from connector.app import create_app
from connector.clock import SystemClock
from connector.core import accounts
from connector.sandbox.app import create_sandbox
from connector.settings import SandboxSettings
from mappings.db import session
from mappings.models import Appointment, AuditEvent
from tests.support.factories import SECRET_KEY
from tests.support.servers import ServerThread

pytestmark = pytest.mark.integration

TOOLS = {"find_free_slots", "book_appointment", "reschedule_appointment", "cancel_appointment",
         "get_appointment", "list_upcoming_appointments"}


@pytest.fixture
def stack(settings, db, make_account):
    sandbox = create_sandbox(SystemClock(), SandboxSettings(rate_limit=10_000, weekly_hours="Mon-Sun 00:00-24:00"))
    with ServerThread(sandbox.app) as calcom:
        app = create_app(settings, clock=SystemClock(), db=db, sandbox_url=calcom.url, run_background=True)
        with ServerThread(app) as calsync:
            account, token = make_account()
            httpx.post(f"{calsync.url}/v1/event-types/refresh", headers={"Authorization": f"Bearer {token}"})
            yield calsync, calcom, sandbox, account, token


def structured(result) -> dict:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def error_text(result) -> str:
    assert result.is_error, result
    return " ".join(getattr(block, "text", "") for block in result.content)


async def _over_http(url: str, token: str, scenario) -> None:
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
                streamable_http_client(f"{url}/mcp/", http_client=http) as (read, write),
                ClientSession(read, write) as client):
        await client.initialize()
        await scenario(client)


def test_an_assistant_books_moves_and_cancels_over_http(stack, db):
    calsync, calcom, sandbox, account, token = stack
    day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    seen: dict = {}

    async def scenario(client: ClientSession) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert "start_time" in tools["book_appointment"].input_schema["properties"]
        free = structured(await client.call_tool("find_free_slots", {"day": day}))
        starts = [slot["start"] for slot in free["slots"]]
        assert len(starts) > 4
        booked = structured(await client.call_tool("book_appointment", {
            "title": "Discovery call", "attendee_name": "Kim Lee", "attendee_email": "kim@example.org",
            "start_time": starts[2], "external_id": "ai-1",
            "reminders": [{"channel": "sms", "minutes_before": 60}]}))
        seen["booked"] = booked
        moved = structured(await client.call_tool("reschedule_appointment",
                                                  {"external_id": "ai-1", "start_time": starts[4]}))
        seen["moved"] = moved
        upcoming = structured(await client.call_tool("list_upcoming_appointments",
                                                     {"attendee_email": "kim@example.org"}))
        seen["upcoming"] = upcoming
        cancelled = structured(await client.call_tool("cancel_appointment",
                                                      {"external_id": "ai-1", "reason": "Caller changed plans"}))
        seen["cancelled"] = cancelled
        # A time Cal.com refuses (taken by another booking): the answer says so and what to do.
        structured(await client.call_tool("book_appointment", {
            "title": "First", "attendee_name": "A", "attendee_email": "a@example.org", "start_time": starts[6],
            "external_id": "ai-2"}))
        refused = structured(await client.call_tool("book_appointment", {
            "title": "Second", "attendee_name": "B", "attendee_email": "b@example.org", "start_time": starts[6],
            "external_id": "ai-3"}))
        seen["refused"] = refused
        bad = await client.call_tool("book_appointment", {
            "title": "Bad", "attendee_name": "C", "attendee_email": "not-an-email", "start_time": "soon"})
        seen["bad"] = error_text(bad)
        missing = await client.call_tool("get_appointment", {"external_id": "nope"})
        seen["missing"] = error_text(missing)

    anyio.run(_over_http, calsync.url, token, scenario)
    booked, moved, cancelled = seen["booked"], seen["moved"], seen["cancelled"]
    assert booked["status"] == "active" and booked["meeting_url"].startswith(calcom.url)
    assert moved["status"] == "rescheduled" and moved["start_time"] != booked["start_time"]
    assert [item["external_id"] for item in seen["upcoming"]["appointments"]] == ["ai-1"]
    assert cancelled["status"] == "cancelled"
    assert seen["refused"]["status"] == "failed" and "Cal.com refused" in seen["refused"]["note"]
    assert "attendee_email" in seen["bad"] and "start_time" in seen["bad"]
    assert "No appointment with external_id 'nope'" in seen["missing"]
    auth = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{calsync.url}/v1/appointments", params={"source": "assistant"}, headers=auth).json()
    assert sorted(item["external_id"] for item in listed["items"]) == ["ai-1", "ai-2", "ai-3"]
    assert httpx.get(f"{calsync.url}/v1/appointments", params={"source": "robot"}, headers=auth).status_code == 422
    with session(db):
        row = Appointment.get(Appointment.external_id == "ai-1")
        assert row.source == "assistant" and row.reminders == [{"channel": "sms", "minutes_before": 60}]
        held = sandbox.calendar.bookings[row.booking_uid]
        assert held.status == "cancelled" and held.cancellation_reason == "Caller changed plans"
        actors = {event.actor for event in AuditEvent.select().where(AuditEvent.appointment == row.id)}
        assert any(actor.startswith("assistant:owner (call ") for actor in actors), actors


def test_a_read_only_token_cannot_book_and_no_token_is_refused(stack, db, clock):
    calsync, calcom, sandbox, account, token = stack
    with session(db):
        _, reader = accounts.create_token(db, account.id, "viewer", frozenset({accounts.READ}),
                                          now=SystemClock().now())
    seen: dict = {}

    async def scenario(client: ClientSession) -> None:
        refused = await client.call_tool("book_appointment", {
            "title": "X", "attendee_name": "X", "attendee_email": "x@example.org",
            "start_time": (datetime.now(UTC) + timedelta(days=3)).isoformat()})
        seen["refused"] = error_text(refused)
        seen["read"] = structured(await client.call_tool("list_upcoming_appointments",
                                                         {"attendee_email": "x@example.org"}))

    anyio.run(_over_http, calsync.url, reader, scenario)
    assert "appointments:write" in seen["refused"] and seen["read"] == {"appointments": []}
    with session(db):
        assert Appointment.select().count() == 0
    bare = httpx.post(f"{calsync.url}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert bare.status_code == 401 and bare.headers["content-type"] == "application/problem+json"


def test_an_assistant_books_over_stdio(stack, db, tmp_path):
    calsync, calcom, sandbox, account, token = stack
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    env.update(CALSYNC_DATABASE_URL=db.url, CALSYNC_SANDBOX_URL=calcom.url, CALSYNC_SECRET_KEY=SECRET_KEY,
               CALSYNC_MCP_TOKEN=token, CALSYNC_WORKER_POLL_INTERVAL_SECONDS="0.05", CALSYNC_LOG_LEVEL="warning")
    start = (datetime.now(UTC) + timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    seen: dict = {}

    async def scenario() -> None:
        server = StdioServerParameters(command=sys.executable, args=["-m", "connector.cli", "mcp"], env=env,
                                       cwd=str(tmp_path))
        async with stdio_client(server) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            seen["booked"] = structured(await client.call_tool("book_appointment", {
                "title": "By phone", "attendee_name": "Dee", "attendee_email": "dee@example.org",
                "start_time": start.isoformat(), "external_id": "ai-stdio"}))
            seen["cancelled"] = structured(await client.call_tool("cancel_appointment", {
                "external_id": "ai-stdio", "reason": "Wrong day"}))
            seen["bad"] = error_text(await client.call_tool("reschedule_appointment", {
                "external_id": "ai-stdio", "start_time": "tomorrow"}))

    anyio.run(scenario)
    assert seen["booked"]["status"] == "active" and seen["booked"]["meeting_url"]
    assert seen["cancelled"]["status"] == "cancelled"
    assert "start_time" in seen["bad"]  # the session goes on after a refused call
    with session(db):
        assert Appointment.get(Appointment.external_id == "ai-stdio").source == "assistant"
