"""Liveness and readiness, without authentication."""

from __future__ import annotations

import logging

from peewee import PeeweeException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.api.context import ApiContext
from connector.api.problems import problem
from mappings.db import session

log = logging.getLogger("calsync.api")


def routes(ctx: ApiContext) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        def check() -> None:
            with session(ctx.db):
                ctx.db.execute_sql("SELECT 1")

        try:
            await run_in_threadpool(check)
        except (PeeweeException, OSError) as exc:
            log.warning("database not ready", extra={"action": "api.readyz",
                                                     "error": type(exc).__name__})
            return problem(503, "not-ready", "Not ready", "The database is not reachable.",
                           request.url.path)
        return JSONResponse({"status": "ready", "database": "ok"})

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
