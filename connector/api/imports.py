"""``POST /v1/appointments/import``: a CSV or JSON-lines file of appointments, a result per row."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.core import accounts, importer
from mappings.db import session

PATH = "/v1/appointments/import"
FLAGS = {"true": True, "false": False, "1": True, "0": False}


def routes(ctx: ApiContext) -> list[Route]:
    async def import_file(request: Request) -> Response:
        raw = await request.body()

        def work() -> tuple[importer.ImportReport, bool]:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.WRITE)
                override = _override_conflicts(request)
                media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                rows = importer.parse_file(raw, media)
                report = importer.run(ctx.db, principal, rows, override_conflicts=override,
                                      now_of=ctx.clock.now)
                return report, principal.allows(accounts.READ)

        report, reveal = await run_in_threadpool(work)
        if report.changed:
            ctx.wake_worker()
        return JSONResponse(report.as_dict(reveal=reveal))

    return [Route(PATH, import_file, methods=["POST"])]


def _override_conflicts(request: Request) -> bool:
    value = request.query_params.get("override_conflicts", "false").lower()
    if value not in FLAGS:
        raise errors.ValidationFailed.one("override_conflicts", "must be true or false")
    return FLAGS[value]
