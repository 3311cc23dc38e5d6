"""``/v1/appointments/{external_id}``: PUT, PATCH, GET, cancel, attendance, the host's confirm,
decline and reassign, history."""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.api import waiting
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.api.problems import json_body_required
from connector.core import accounts, appointments, host_actions
from connector.inputs import (
    AppointmentInput,
    AttendanceInput,
    CancelInput,
    ConfirmInput,
    DeclineInput,
    ReassignInput,
    check_external_id,
    parse,
)
from connector.outputs import resources as render
from mappings.db import session
from mappings.models import Appointment

MERGE_PATCH = "application/merge-patch+json"


def routes(ctx: ApiContext) -> list[Route]:
    def render_row(row: Appointment) -> dict:
        return render.appointment_with_chain(row, ctx.settings.calcom.booker_url)

    def shown(principal: accounts.Principal, row: Appointment) -> dict:
        """What a write answers: the resource to a token that may read it, else a receipt
        (docs/api.md, "Scopes"): appointments:write alone writes, it does not read."""
        return render_row(row) if principal.allows(accounts.READ) else render.receipt(row)

    async def write(request: Request, change: Callable[[accounts.Principal, str, bytes], tuple],
                    *, empty_body: bytes | None = None) -> Response:
        """Authenticate, check every header, apply ``change`` in a thread, honour ``Prefer: wait``."""
        external_id = request.path_params["external_id"]
        raw = await request.body()

        def work() -> tuple[dict | None, accounts.Principal, str, int, bool, int | None]:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.WRITE)
                check_external_id(external_id)
                # Every header is checked before the change is written.
                wait = waiting.requested_wait(request)
                if raw or empty_body is None:
                    json_body_required(request)
                row, status, changed = change(principal, external_id, raw or empty_body or b"")
                # Without a wait the answer is the state as written, before a worker is woken.
                body = None if wait is not None and changed else shown(principal, row)
                return body, principal, row.id, status, changed, wait

        body, principal, appointment_id, status, changed, wait = await run_in_threadpool(work)
        waits_here = changed and wait is not None and ctx.run_now is not None
        if changed and not waits_here:
            ctx.wake_worker()
        headers = {"Location": f"/v1/appointments/{external_id}"} if status == 201 else {}
        if wait is not None:
            if changed:
                # This request does its own change's job (waiting.until_settled): the worker threads
                # are not woken to race it for the claim, only afterwards for what follows.
                await waiting.until_settled(ctx, appointment_id, wait)
                ctx.wake_worker()
            headers["Preference-Applied"] = f"wait={wait}"

        def reload() -> dict:
            with session(ctx.db):
                return shown(principal, Appointment.get_by_id(appointment_id))

        if body is None:
            body = await run_in_threadpool(reload)
        return JSONResponse(body, status_code=status, headers=headers)

    async def put_appointment(request: Request) -> Response:
        def change(principal, external_id, raw):
            result = appointments.put(ctx.db, principal, external_id, parse(AppointmentInput, raw),
                                      now=ctx.clock.now())
            return result.appointment, 201 if result.created else 200, result.changed

        return await write(request, change)

    async def patch_appointment(request: Request) -> Response:
        def change(principal, external_id, raw):
            result = appointments.patch(ctx.db, principal, external_id, raw, now=ctx.clock.now())
            return result.appointment, 200, result.changed

        return await write(request, change)

    async def cancel_appointment(request: Request) -> Response:
        def change(principal, external_id, raw):
            row = appointments.cancel(ctx.db, principal, external_id, parse(CancelInput, raw),
                                      now=ctx.clock.now())
            return row, 200, True

        return await write(request, change, empty_body=b"{}")

    async def record_attendance(request: Request) -> Response:
        def change(principal, external_id, raw):
            before = appointments.get(principal.account_id, external_id).desired_version
            row = appointments.set_attendance(ctx.db, principal, external_id,
                                              parse(AttendanceInput, raw), now=ctx.clock.now())
            return row, 200, row.desired_version != before

        return await write(request, change)

    def host_action(act: Callable[[accounts.Principal, str, bytes], Appointment]):
        """A route for one of the host's actions: ``act`` parses its body and asks the core."""
        async def handler(request: Request) -> Response:
            def change(principal, external_id, raw):
                return host_change(principal, external_id, lambda: act(principal, external_id, raw))

            return await write(request, change, empty_body=b"{}")

        return handler

    def confirm(principal: accounts.Principal, external_id: str, raw: bytes) -> Appointment:
        parse(ConfirmInput, raw)
        return host_actions.confirm(ctx.db, principal, external_id, now=ctx.clock.now())

    def decline(principal: accounts.Principal, external_id: str, raw: bytes) -> Appointment:
        return host_actions.decline(ctx.db, principal, external_id, parse(DeclineInput, raw), now=ctx.clock.now())

    def reassign(principal: accounts.Principal, external_id: str, raw: bytes) -> Appointment:
        return host_actions.reassign(ctx.db, principal, external_id, parse(ReassignInput, raw), now=ctx.clock.now())

    def host_change(principal, external_id, act):
        before = appointments.get(principal.account_id, external_id).desired_version
        row = act()
        return row, 200, row.desired_version != before

    async def read(request: Request, produce: Callable[[accounts.Principal, str], object]) -> Response:
        external_id = request.path_params["external_id"]

        def work() -> object:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                check_external_id(external_id)
                return produce(principal, external_id)

        return JSONResponse(await run_in_threadpool(work))

    async def get_appointment(request: Request) -> Response:
        return await read(request, lambda principal, external_id: render_row(
            appointments.get(principal.account_id, external_id)))

    async def get_history(request: Request) -> Response:
        return await read(request, lambda principal, external_id: {
            "items": appointments.history(principal.account_id, external_id)})

    path = "/v1/appointments/{external_id}"
    return [
        Route(path, put_appointment, methods=["PUT"]),
        Route(path, patch_appointment, methods=["PATCH"]),
        Route(path, get_appointment, methods=["GET"]),
        Route(f"{path}/cancel", cancel_appointment, methods=["POST"]),
        Route(f"{path}/attendance", record_attendance, methods=["POST"]),
        Route(f"{path}/confirm", host_action(confirm), methods=["POST"]),
        Route(f"{path}/decline", host_action(decline), methods=["POST"]),
        Route(f"{path}/reassign", host_action(reassign), methods=["POST"]),
        Route(f"{path}/history", get_history, methods=["GET"]),
    ]
