"""``GET/PUT /v1/settings`` (admin): the caller's account settings; secrets are write-only."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.api.auth import authenticate
from connector.api.context import ApiContext
from connector.api.problems import json_body_required
from connector.core import account_settings, accounts
from connector.inputs import SettingsInput, parse
from mappings.db import session
from mappings.models import Account


def routes(ctx: ApiContext) -> list[Route]:
    check_key = account_settings.key_checker(
        lambda account, key: ctx.clients.for_account(account, candidate_key=key))

    def shown(account: Account) -> dict:
        return {**account_settings.describe(account),
                "changes": account_settings.recent_changes(account.id)}

    async def read(request: Request) -> Response:
        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                return shown(Account.get_by_id(principal.account_id))

        return JSONResponse(await run_in_threadpool(work))

    async def write(request: Request) -> Response:
        raw = await request.body()

        def work() -> dict:
            with session(ctx.db):
                principal = authenticate(request, ctx.db, ctx.clock, accounts.ADMIN)
                json_body_required(request)
                data = parse(SettingsInput, raw)
                account, _ = account_settings.update(
                    ctx.db, principal.account_id, data, sealer=ctx.clients.sealer,
                    actor=principal.actor, now=ctx.clock.now(), check_key=check_key)
                return shown(account)

        return JSONResponse(await run_in_threadpool(work))

    return [Route("/v1/settings", read, methods=["GET"]), Route("/v1/settings", write, methods=["PUT"])]
