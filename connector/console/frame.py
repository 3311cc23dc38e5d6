"""What every console page shares: the session, the scope check, CSRF, templates and times.

``view`` and ``act`` run a page's work in the threadpool inside a database session, as the
API's handlers do: ``view`` for GET (the session and scope checked first), ``act`` for a
form's POST (also its CSRF token). A domain error becomes the page again with the message
beside the field, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from connector import errors
from connector.api.context import ApiContext
from connector.console.session import COOKIE, CSRF_FIELD, Session, SessionCodec
from connector.core import accounts
from mappings.db import session as db_session
from mappings.models import Account

HERE = Path(__file__).parent
STATIC = HERE / "static"
SOURCE = "console"
# Statuses and the colour class each badge gets (console.css).
BADGES = {"pending": "grey", "active": "green", "rescheduled": "blue", "completed": "teal",
          "cancelled": "red", "rejected": "red", "awaiting_confirmation": "amber",
          "reschedule_requested": "amber", "failed": "red"}


@dataclass(frozen=True)
class Caller:
    """The signed-in principal, its account and its session, for one request."""

    principal: accounts.Principal
    account: Account
    session: Session
    csrf: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.account.time_zone or "UTC")

    @property
    def can_write(self) -> bool:
        return self.principal.allows(accounts.WRITE)

    @property
    def is_admin(self) -> bool:
        return self.principal.allows(accounts.ADMIN)


class Console:
    def __init__(self, ctx: ApiContext, codec: SessionCodec) -> None:
        self.ctx, self.codec = ctx, codec
        self.templates = Jinja2Templates(directory=HERE / "templates")
        env = self.templates.env
        env.autoescape = True  # every template, whatever its name: hostile text stays text
        env.filters.update(is_http=is_http, badge=lambda status: BADGES.get(status, "grey"))
        self.booker_url = ctx.settings.calcom.booker_url

    # --- the frame ------------------------------------------------------------------

    def render(self, request: Request, name: str, caller: Caller | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        base = {"caller": caller, "static": "/console/static",
                "csrf_field": CSRF_FIELD, "local": _local(caller)}
        response = self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def caller(self, request: Request) -> Caller | None:
        """Inside a database session: the signed-in caller, or None."""
        found = self.codec.read(request.cookies.get(COOKIE), self.ctx.clock.now())
        if found is None:
            return None
        try:
            principal = accounts.principal_of_token(self.ctx.db, found.token_id, source=SOURCE)
        except errors.Unauthorized:
            return None
        account = Account.get_by_id(principal.account_id)
        return Caller(principal, account, found, self.codec.csrf_token(found))

    async def view(self, request: Request, scope: str,
                   build: Callable[[Caller], Response]) -> Response:
        def work() -> Response:
            with db_session(self.ctx.db):
                caller = self.caller(request)
                if caller is None:
                    return _to_sign_in(request)
                if not caller.principal.allows(scope):
                    return self.refused(request, caller, scope)
                return build(caller)

        return await run_in_threadpool(work)

    async def act(self, request: Request, scope: str,
                  perform: Callable[[Caller, FormData], Response]) -> Response:
        form = await request.form(max_files=1, max_fields=100)

        def work() -> Response:
            with db_session(self.ctx.db):
                caller = self.caller(request)
                if caller is None:
                    return _to_sign_in(request)
                if not self.codec.csrf_ok(caller.session, _text(form.get(CSRF_FIELD))):
                    return self.render(request, "refused.html", caller, status=403,
                                       reason="The form's security token is missing or stale: "
                                              "reload the page and try again.")
                if not caller.principal.allows(scope):
                    return self.refused(request, caller, scope)
                response = perform(caller, form)
                self.ctx.wake_worker()
                return response

        try:
            return await run_in_threadpool(work)
        finally:
            await form.close()

    def refused(self, request: Request, caller: Caller, scope: str) -> HTMLResponse:
        return self.render(request, "refused.html", caller, status=403,
                           reason=f"This token lacks the '{scope}' scope.")

    # --- sign in and out --------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/console/appointments", status_code=303)

    async def sign_in_page(self, request: Request) -> Response:
        return self.render(request, "sign_in.html", None, next=_safe_next(request.query_params.get("next")))

    async def sign_in(self, request: Request) -> Response:
        if not _same_origin(request):
            # No session yet, so no CSRF token: a browser's Origin header says where the form was.
            return self.render(request, "refused.html", None, status=403,
                               reason="Sign in from calsync's own sign-in page.")
        form = await request.form(max_files=0, max_fields=10)
        token = (_text(form.get("token")) or "").strip()
        target = _safe_next(_text(form.get("next")))

        def work() -> Response:
            with db_session(self.ctx.db):
                try:
                    if not token or len(token) > 200 or not token.isascii():
                        raise errors.Unauthorized("Paste a calsync token (csk_…).")
                    principal = accounts.authenticate(self.ctx.db, token, now=self.ctx.clock.now())
                except errors.Unauthorized:
                    return self.render(request, "sign_in.html", None, status=401, next=target,
                                       error="That token is unknown or revoked.")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.codec.issue(principal.token_id, self.ctx.clock.now()),
                                max_age=int(self.codec.lifetime.total_seconds()), path="/console",
                                httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
            return response

        return await run_in_threadpool(work)

    async def sign_out(self, request: Request) -> Response:
        def signed_out(caller: Caller, form: FormData) -> Response:
            response = RedirectResponse("/console/sign-in", status_code=303)
            response.delete_cookie(COOKIE, path="/console")
            return response

        return await self.act(request, accounts.READ, signed_out)


def _same_origin(request: Request) -> bool:
    """A form posted from this site (or by a client that sends no Origin, which no browser omits on
    a cross-site POST)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def is_http(url: Any) -> bool:
    """A link the console may make clickable: http(s) only, never javascript: or data:."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def _local(caller: Caller | None) -> Callable[[datetime | None, str], str]:
    zone = caller.zone if caller is not None else ZoneInfo("UTC")

    def local(value: datetime | None, pattern: str = "%a %d %b %Y, %H:%M") -> str:
        return value.astimezone(zone).strftime(pattern) if value is not None else "—"

    return local


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _safe_next(target: str | None) -> str:
    """Only a console page of this site: never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/appointments"


def _to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/console/appointments"
    return RedirectResponse(f"/console/sign-in?next={quote(target, safe='')}", status_code=303)


def redirect(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def field_messages(error: errors.ValidationFailed) -> dict[str, str]:
    return {item.field: item.message for item in error.errors}


def form_value(form: FormData | Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
