"""``/mcp``: the MCP server over streamable HTTP in the running ``calsync serve``, behind the
bearer token. A request without a usable token is a 401 problem before the MCP layer sees it;
each tool call is then made as that token (its ``Authorization`` header, looked up again)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from connector import errors
from connector.api.context import ApiContext
from connector.api.problems import problem_for
from connector.assistants import build, principal_from
from connector.core import accounts
from mappings.db import session

PATH = "/mcp"


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization") if headers else None
    if not value or not value.lower().startswith("bearer "):
        return None
    return str(value[7:].strip())


class McpEndpoint:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.server = build(ctx, lambda context: principal_from(_bearer(context.headers), ctx))
        self.app = self._fresh_app()

    def _fresh_app(self) -> Any:
        # Stateless, JSON answers: every call stands alone, so any serve process can answer it.
        return self.server.streamable_http_app(streamable_http_path="/", json_response=True,
                                               stateless_http=True, host=self.ctx.settings.server.host)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The MCP session manager for one run of the app (a manager runs only once)."""
        self.app = self._fresh_app()
        async with self.server.session_manager.run():
            yield

    def _authenticate(self, token: str) -> accounts.Principal:
        with session(self.ctx.db):
            return accounts.authenticate(self.ctx.db, token, now=self.ctx.clock.now())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        token = _bearer(headers)
        try:
            if token is None or len(token) > 200 or not token.isascii():
                raise errors.Unauthorized("Send Authorization: Bearer <a calsync token>.")
            principal = await run_in_threadpool(self._authenticate, token)  # a database read: not on the loop
            if not principal.allows(accounts.READ) and not principal.allows(accounts.WRITE):
                raise errors.Forbidden("This token may neither read nor write appointments.")
        except errors.ApiError as refused:
            await problem_for(refused, PATH)(scope, receive, send)
            return
        await self.app(scope, receive, send)
