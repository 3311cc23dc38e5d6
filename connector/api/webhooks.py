"""``POST /webhooks/calcom/{account_id}``: Cal.com's subscriber URL (signed, no bearer token)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.api.context import ApiContext
from mappings.db import session
from mappings.sealing import Sealer
from webhooks import calcom


def routes(ctx: ApiContext) -> list[Route]:
    sealer = Sealer(ctx.settings.security.secret_key or None)

    async def receive(request: Request) -> Response:
        raw = await request.body()

        def work() -> calcom.Receipt:
            with session(ctx.db):
                return calcom.receive(ctx.db, sealer, request.path_params["account_id"], raw,
                                      request.headers.get(calcom.SIGNATURE_HEADER), now=ctx.clock.now())

        receipt = await run_in_threadpool(work)
        if receipt.outcome == "accepted":
            ctx.wake_worker()
        return JSONResponse({"status": receipt.outcome, "delivery_id": receipt.delivery_id})

    return [Route("/webhooks/calcom/{account_id}", receive, methods=["POST"])]
