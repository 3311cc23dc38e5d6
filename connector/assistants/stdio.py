"""``calsync mcp``: the MCP server over stdio, for an assistant that starts calsync itself.

The token comes from ``CALSYNC_MCP_TOKEN`` (never an argument: it would show in process lists),
checked before the server starts. The process also runs workers, like ``calsync worker``, so a
booking goes through even when no other calsync process is running; with others on the same
database they share the queue.
"""

from __future__ import annotations

import logging
import os

import anyio
from peewee import Database

from connector import errors
from connector.api.context import ApiContext
from connector.app import build_runtime
from connector.assistants import build
from connector.clock import SystemClock
from connector.core import accounts
from connector.settings import Settings
from mappings.db import session

log = logging.getLogger("calsync.assistants")
TOKEN_ENV = "CALSYNC_MCP_TOKEN"


def run(settings: Settings, db: Database) -> None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise errors.ConfigurationError(f"calsync mcp needs {TOKEN_ENV}: a calsync token for the assistant")
    with session(db):
        try:
            principal = accounts.authenticate(db, token, now=SystemClock().now())
        except errors.Unauthorized:
            raise errors.ConfigurationError(f"{TOKEN_ENV} is unknown or revoked") from None
    assistant = accounts.Principal(principal.account_id, principal.token_id, principal.token_name,
                                   principal.scopes, source="assistant")
    sandbox_url = (settings.sandbox.url or None) if settings.sandbox.mode != "off" else None
    runtime = build_runtime(settings, db=db, sandbox_url=sandbox_url)
    ctx = ApiContext(settings=settings, clock=runtime.clock, db=db, wake_worker=runtime.worker.wake,
                     clients=runtime.clients, reconciler=runtime.reconciler, slot_cache=runtime.slot_cache,
                     settled=runtime.settled, run_now=runtime.worker.run_now)

    def principal_of(context: object) -> accounts.Principal:
        with session(db):  # a revoked token stops working mid-session too
            accounts.principal_of_token(db, assistant.token_id, source="assistant")
        return assistant

    server = build(ctx, principal_of)
    runtime.start_background()
    log.info("mcp over stdio", extra={"action": "mcp.stdio", "account_id": assistant.account_id})
    try:
        anyio.run(server.run_stdio_async)
    finally:
        runtime.close()
