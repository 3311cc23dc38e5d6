"""``POST /v1/appointments/import``: a CSV or JSON-lines file of appointments, a result per row;
``?dry_run=true`` answers the same without writing anything. A file of more rows than
``server.import_background_rows`` runs as a background job: 202, and ``GET /v1/imports/{id}``
shows its progress and, once done, its report."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import errors
from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.core import accounts, import_runs, importer
from mappings.db import session

PATH = "/v1/appointments/import"
FLAGS = {"true": True, "false": False, "1": True, "0": False}


def routes(ctx: ApiContext) -> list[Route]:
    background_from = ctx.settings.server.import_background_rows

    async def import_file(request: Request) -> Response:
        raw = await request.body()

        def work() -> tuple[int, dict, dict[str, str], bool]:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.WRITE)
                override = _flag(request, "override_conflicts")
                dry_run = _flag(request, "dry_run")
                media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                rows = importer.parse_file(raw, media)
                reveal = principal.allows(accounts.READ)
                writer = import_runs.as_importer(principal)
                if not dry_run and len(rows) > background_from:
                    run = import_runs.hold(ctx.db, writer, raw.decode("utf-8-sig"), media,
                                           override_conflicts=override, total=len(rows), now=ctx.clock.now())
                    location = f"/v1/imports/{run.id}"
                    return 202, import_runs.describe(run, reveal=reveal), {"Location": location}, True
                report = importer.run(ctx.db, writer, rows, override_conflicts=override,
                                      now_of=ctx.clock.now, dry_run=dry_run)
                return 200, report.as_dict(reveal=reveal), {}, report.changed

        status, body, headers, changed = await run_in_threadpool(work)
        if changed:
            ctx.wake_worker()
        return JSONResponse(body, status_code=status, headers=headers)

    async def import_progress(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.WRITE)
                run_id = request.path_params["import_id"]
                if len(run_id) > 40 or not run_id.isascii():
                    raise errors.NotFound(f"There is no import {run_id[:40]!r} in this account.")
                run = import_runs.get(principal.account_id, run_id)
                return import_runs.describe(run, reveal=principal.allows(accounts.READ))

        return JSONResponse(await run_in_threadpool(work))

    return [Route(PATH, import_file, methods=["POST"]),
            Route("/v1/imports/{import_id}", import_progress, methods=["GET"])]


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in FLAGS:
        raise errors.ValidationFailed.one(name, "must be true or false")
    return FLAGS[value]
