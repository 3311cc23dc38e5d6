"""The operator console at ``/console``: server-rendered pages over the same core the API uses.

The second edge over connector/core (DESIGN §3): every page calls the domain functions the
API calls — never the API over HTTP — with a principal whose ``source`` is ``console``, so
what it creates says so and every change is audited under the token's name. Plain HTML forms
work without JavaScript; ``static/console.js`` only enhances them (search as you type, the
slot picker, dialogs, the sync state moving). Scopes decide what is shown *and* accepted.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from connector.api.context import ApiContext
from connector.console import admin, appointments, imports
from connector.console.frame import STATIC, Console
from connector.console.session import SessionCodec

SESSION_LIFETIME = timedelta(hours=8)
IMPORT_PATH = imports.PATH  # takes files as large as the API's import (server.max_import_bytes)


def routes(ctx: ApiContext, *, secret_key: str | None) -> list[BaseRoute]:
    console = Console(ctx, SessionCodec(secret_key, SESSION_LIFETIME))
    inner: list[BaseRoute] = [
        Route("/", console.home, methods=["GET"]),
        Route("/sign-in", console.sign_in_page, methods=["GET"]),
        Route("/sign-in", console.sign_in, methods=["POST"]),
        Route("/sign-out", console.sign_out, methods=["POST"]),
        *appointments.routes(console),
        *admin.routes(console),
        *imports.routes(console),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return [Mount("/console", routes=inner)]
