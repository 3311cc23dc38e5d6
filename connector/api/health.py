"""Liveness, readiness and Prometheus metrics, without authentication (DESIGN §6).

``/metrics`` shows counts and latencies, never an id, a name or a secret; put it
behind the network's own access control like any scrape target."""

from __future__ import annotations

import logging

from peewee import PeeweeException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector import metrics
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

    async def prometheus(request: Request) -> Response:
        return Response(await run_in_threadpool(metrics.render, ctx.db),
                        media_type=metrics.CONTENT_TYPE)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"])]
