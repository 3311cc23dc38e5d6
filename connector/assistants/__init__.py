"""The third edge: an MCP server (the official ``mcp`` SDK) whose tools let an AI assistant book
through calsync — the same domain functions as the API and the console, so the same
validation, durability, exactly-once creation, rate limiting, audit and CRM events.

Every tool call is made as the calsync token the assistant connected with (``stdio``: the
``CALSYNC_MCP_TOKEN`` of ``calsync mcp``; HTTP: its ``Authorization`` header at ``/mcp``),
with ``source: assistant``; the token's scopes bound what its tools can do. A refusal is a
tool error an assistant can read (what is wrong, whether to retry), never a crashed session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from connector import errors
from connector.api import waiting
from connector.api.context import ApiContext
from connector.core import accounts, appointments, listing, slots
from connector.inputs import AppointmentInput, CancelInput, check_external_id, parse
from connector.outputs import resources
from connector.timezones import is_iana_zone
from mappings.db import session
from mappings.models import Account, Appointment

SOURCE = "assistant"
BOOKING_WAIT_SECONDS = 20
INSTRUCTIONS = (
    "calsync books appointments in Cal.com for a CRM. Find a free time with find_free_slots, then "
    "book_appointment with one of its starts. Every answer says the appointment's status: 'active' "
    "is booked (with its meeting link); 'pending' means Cal.com has not answered yet - look it up "
    "again with get_appointment rather than booking twice. Times are ISO 8601 with an offset.")


def principal_from(token: str | None, ctx: ApiContext) -> accounts.Principal:
    """The assistant's principal for a token, or a tool error saying the token is not usable."""
    if not token or len(token) > 200 or not token.isascii():
        raise ToolError("No calsync token: connect with a token (Authorization: Bearer csk_…).")
    try:
        with session(ctx.db):
            found = accounts.authenticate(ctx.db, token, now=ctx.clock.now())
    except errors.Unauthorized:
        raise ToolError("The calsync token is unknown or revoked.") from None
    return replace(found, source=SOURCE)


def build(ctx: ApiContext, principal_of: Callable[[Context], accounts.Principal]) -> MCPServer:
    """The MCP server; ``principal_of(context)`` answers the caller of one tool call."""
    server = MCPServer(name="calsync", instructions=INSTRUCTIONS, version="1.0")
    booker_url = ctx.settings.calcom.booker_url

    async def caller(context: Context, scope: str) -> accounts.Principal:
        principal = await run_in_threadpool(principal_of, context)  # a database read: not on the loop
        if not principal.allows(scope):
            raise ToolError(f"This token lacks the '{scope}' scope: ask for a token that has it.")
        call = context.request_id
        return replace(principal, token_name=f"{principal.token_name} (call {call})" if call else principal.token_name)

    async def in_db(work: Callable[[], Any]) -> Any:
        def run() -> Any:
            with session(ctx.db):
                try:
                    return work()
                except errors.ValidationFailed as failed:
                    detail = "; ".join(f"{e.field}: {e.message}" for e in failed.errors)
                    raise ToolError(f"Not accepted ({detail}). Correct it and call again.") from None
                except errors.ApiError as refused:
                    raise ToolError(f"{refused.message}") from None
                except errors.CalcomError as down:
                    raise ToolError(f"Cal.com could not be asked just now ({down}); retry in a minute.") from None

        return await run_in_threadpool(run)

    def shown(row: Appointment) -> dict[str, Any]:
        item = resources.appointment_with_chain(row, booker_url)
        keep = ("external_id", "title", "attendee_name", "attendee_email", "start_time", "end_time", "status",
                "sync_state", "meeting_url", "manage_links", "last_error", "cancellation_reason", "source")
        answer = {key: item.get(key) for key in keep}
        if item["sync_state"] in ("pending", "retrying"):
            answer["note"] = ("Cal.com has not confirmed this yet; it will. Look it up again with "
                              "get_appointment in a few seconds; do not book it twice.")
        if item["status"] == "failed":
            answer["note"] = f"Cal.com refused: {item.get('last_error')}. Pick another time or change the request."
        return answer

    async def changed(external_id: str, change: Callable[[str], Appointment]) -> dict[str, Any]:
        """Make a change to the appointment ``external_id`` names (a domain call answering it), then
        answer it once Cal.com has it, or as it stands after BOOKING_WAIT_SECONDS."""
        def work() -> str:
            check_external_id(external_id)
            return str(change(external_id).id)

        row_id = await in_db(work)
        # As the API's Prefer: wait: a wait that runs its own job does not wake the worker
        # threads to race it for the claim, only afterwards, for what follows.
        runs_its_own = ctx.run_now is not None
        if not runs_its_own:
            ctx.wake_worker()
        await waiting.until_settled(ctx, row_id, BOOKING_WAIT_SECONDS)
        if runs_its_own:
            ctx.wake_worker()
        return await in_db(lambda: shown(Appointment.get_by_id(row_id)))

    @server.tool(description="Free start times on one day for an event type, in a time zone. "
                             "Answers ISO 8601 starts; book one of them with book_appointment.")
    async def find_free_slots(
        context: Context,
        day: Annotated[str, Field(description="The day, YYYY-MM-DD")],
        event_type_id: Annotated[int | None, Field(description="Cal.com event type; the account's default if absent")] = None,
        time_zone: Annotated[str | None, Field(description="IANA zone for the day and the answer; the account's if absent")] = None,
    ) -> dict[str, Any]:
        principal = await caller(context, accounts.READ)

        def work() -> dict[str, Any]:
            account = Account.get_by_id(principal.account_id)
            try:
                wanted = date.fromisoformat(day)
            except ValueError:
                raise errors.ValidationFailed.one("day", "must be a date, YYYY-MM-DD") from None
            type_id = event_type_id or account.default_event_type_id
            if type_id is None:
                raise errors.ValidationFailed.one("event_type_id", "is required: the account has no default")
            zone = time_zone or account.time_zone
            if not is_iana_zone(zone):
                raise errors.ValidationFailed.one("time_zone", "must be an IANA time zone, e.g. Europe/Berlin")
            found = slots.free_slots(ctx.clients.for_account(account), ctx.slot_cache, account.id, wanted,
                                     int(type_id), zone, ctx.clock.now())
            answer = found.as_dict()
            if not answer["slots"]:
                answer["reason"] = answer.get("reason") or "no free time on this day"
            return answer

        result: dict[str, Any] = await in_db(work)
        return result

    @server.tool(description="Book an appointment in Cal.com through calsync. Answers once it is booked "
                             "(status active, with the meeting link), or pending with what to do next.")
    async def book_appointment(
        context: Context,
        title: str,
        attendee_name: str,
        attendee_email: str,
        start_time: Annotated[str, Field(description="ISO 8601 with an offset, one of find_free_slots' starts")],
        event_type_id: int | None = None,
        description: str | None = None,
        attendee_phone: Annotated[str | None, Field(description="E.164, e.g. +12125550123")] = None,
        reminders: Annotated[list[dict[str, Any]] | None, Field(
            description="[{channel: sms|email|voice|push, minutes_before, template?}]")] = None,
        external_id: Annotated[str | None, Field(
            description="The CRM's id for it; one is made if absent. Booking the same id again changes nothing.")] = None,
    ) -> dict[str, Any]:
        principal = await caller(context, accounts.WRITE)
        body: dict[str, Any] = {"title": title, "attendee_name": attendee_name, "attendee_email": attendee_email,
                                "start_time": start_time}
        for name, value in (("event_type_id", event_type_id), ("description", description),
                            ("attendee_phone", attendee_phone), ("reminders", reminders)):
            if value is not None:
                body[name] = value
        name = external_id or f"assistant-{context.request_id or ctx.clock.now().timestamp()}"
        return await changed(name, lambda name: appointments.put(
            ctx.db, principal, name, parse(AppointmentInput, json.dumps(body).encode()), now=ctx.clock.now()).appointment)

    @server.tool(description="Move an appointment to a new start. Answers once Cal.com has it.")
    async def reschedule_appointment(
        context: Context,
        external_id: str,
        start_time: Annotated[str, Field(description="ISO 8601 with an offset")],
    ) -> dict[str, Any]:
        principal = await caller(context, accounts.WRITE)
        return await changed(external_id, lambda name: appointments.patch(
            ctx.db, principal, name, json.dumps({"start_time": start_time}).encode(), now=ctx.clock.now()).appointment)

    @server.tool(description="Cancel an appointment, with the reason (the attendee is told).")
    async def cancel_appointment(
        context: Context,
        external_id: str,
        reason: Annotated[str, Field(description="Why, up to 500 characters")],
    ) -> dict[str, Any]:
        principal = await caller(context, accounts.WRITE)
        return await changed(external_id, lambda name: appointments.cancel(
            ctx.db, principal, name, parse(CancelInput, json.dumps({"reason": reason}).encode()), now=ctx.clock.now()))

    @server.tool(description="Look one appointment up by its external id.")
    async def get_appointment(context: Context, external_id: str) -> dict[str, Any]:
        principal = await caller(context, accounts.READ)

        def work() -> dict[str, Any]:
            check_external_id(external_id)
            return shown(appointments.get(principal.account_id, external_id))

        result: dict[str, Any] = await in_db(work)
        return result

    @server.tool(description="The upcoming appointments of one attendee (by email), soonest first.")
    async def list_upcoming_appointments(
        context: Context,
        attendee_email: str,
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        principal = await caller(context, accounts.READ)

        def work() -> dict[str, Any]:
            now = ctx.clock.now()
            rows = list(Appointment.select().where(
                (Appointment.account == principal.account_id)
                & (Appointment.attendee_email == attendee_email.strip())
                & (Appointment.start_time >= now) & (Appointment.start_time <= now + timedelta(days=366))
                & Appointment.status.not_in(listing.HIDDEN_ON_CALENDAR))
                .order_by(Appointment.start_time).limit(limit))
            return {"appointments": [shown(row) for row in rows]}

        result: dict[str, Any] = await in_db(work)
        return result

    return server
