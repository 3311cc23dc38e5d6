"""``POST /webhooks/calcom/{account_id}``: Cal.com's subscriber URL (signed, no bearer token).

Verifying and parsing run on the event loop (CPU only, microseconds); the write
goes to the group-commit writer (webhooks/ingest.py) and the answer waits for it.
An account's secrets are cached for a few seconds, so a rotation takes effect
within ``SECRETS_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.api.context import ApiContext
from mappings.db import session
from mappings.sealing import Sealer
from webhooks import calcom
from webhooks.ingest import IngestWriter

SECRETS_TTL_SECONDS = 5.0


def routes(ctx: ApiContext, writer: IngestWriter) -> list[Route]:
    sealer = Sealer(ctx.settings.security.secret_key or None)
    cache: dict[str, tuple[float, list[str]]] = {}

    async def secrets_for(account_id: str) -> list[str]:
        hit = cache.get(account_id)
        if hit is not None and time.monotonic() - hit[0] < SECRETS_TTL_SECONDS:
            return hit[1]

        def load() -> list[str]:
            with session(ctx.db):
                return calcom.secrets_of(account_id, sealer)

        secrets = await run_in_threadpool(load)
        if len(cache) > 10_000:  # unknown ids from strangers must not grow it without bound
            cache.clear()
        cache[account_id] = (time.monotonic(), secrets)
        return secrets

    async def receive(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        raw = await request.body()
        event = calcom.verify(raw, request.headers.get(calcom.SIGNATURE_HEADER),
                              await secrets_for(account_id))
        receipt = await asyncio.wrap_future(writer.submit(account_id, event, raw, ctx.clock.now()))
        if receipt.outcome == "accepted":
            ctx.wake_worker()
        return JSONResponse({"status": receipt.outcome, "delivery_id": receipt.delivery_id})

    return [Route("/webhooks/calcom/{account_id}", receive, methods=["POST"])]
