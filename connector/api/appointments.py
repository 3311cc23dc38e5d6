"""``/v1/appointments/{external_id}``: PUT (create or replace) and GET."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import accounts, appointments
from connector import resources as render
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.api.problems import json_body_required
from connector.inputs import AppointmentInput, check_external_id, parse
from mappings.db import session
from mappings.models import Appointment


def _render(ctx: ApiContext, row: Appointment) -> dict:
    return render.appointment_with_chain(row, ctx.settings.calcom.booker_url)


def routes(ctx: ApiContext) -> list[Route]:
    async def put_appointment(request: Request) -> Response:
        external_id = request.path_params["external_id"]
        raw = await request.body()

        def work() -> tuple[dict, bool, bool]:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.WRITE)
                check_external_id(external_id)
                json_body_required(request)
                data = parse(AppointmentInput, raw)
                result = appointments.put(ctx.db, principal, external_id, data, now=ctx.clock.now())
                return _render(ctx, result.appointment), result.created, result.changed

        body, created, changed = await run_in_threadpool(work)
        if changed:
            ctx.wake_worker()
        headers = {"Location": f"/v1/appointments/{external_id}"} if created else None
        return JSONResponse(body, status_code=201 if created else 200, headers=headers)

    async def get_appointment(request: Request) -> Response:
        external_id = request.path_params["external_id"]

        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.READ)
                check_external_id(external_id)
                return _render(ctx, appointments.get(principal.account_id, external_id))

        return JSONResponse(await run_in_threadpool(work))

    return [
        Route("/v1/appointments/{external_id}", put_appointment, methods=["PUT"]),
        Route("/v1/appointments/{external_id}", get_appointment, methods=["GET"]),
    ]
