"""The console's admin pages: settings with the event-type refresh, and operations (the queue,
Cal.com's deliveries in, reconcile runs, the CRM's deliveries out, a dead job replayed)."""

from __future__ import annotations

import json
from typing import Any

from peewee import fn
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector import errors
from connector.console.appointments import REMINDER_ROWS
from connector.console.frame import Caller, Console, field_messages, form_value, redirect
from connector.core import account_settings, accounts, event_types
from connector.inputs import REMINDER_CHANNELS, SettingsInput, parse
from connector.jobs import job_admin, queue
from connector.outputs import events, resources
from mappings.models import EventType, Job, ReconcileRun, WebhookDelivery

LIST_LIMIT = 50
SECRET_FIELDS = ("calcom_api_key", "callback_secret")


def routes(console: Console) -> list[Route]:
    pages = AdminPages(console)
    return [
        Route("/settings", pages.settings, methods=["GET"]),
        Route("/settings", pages.save_settings, methods=["POST"]),
        Route("/settings/refresh-event-types", pages.refresh_event_types, methods=["POST"]),
        Route("/operations", pages.operations, methods=["GET"]),
        Route("/operations/jobs/{job_id:int}/retry", pages.retry_job, methods=["POST"]),
        Route("/operations/reconcile", pages.start_reconcile, methods=["POST"]),
    ]


class AdminPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ctx = console.ctx
        self.check_key = account_settings.key_checker(
            lambda account, key: self.ctx.clients.for_account(account, candidate_key=key))

    # --- settings ---------------------------------------------------------------------------

    async def settings(self, request: Request) -> Response:
        return await self.console.view(request, accounts.ADMIN, lambda caller: self._settings(request, caller))

    def _settings(self, request: Request, caller: Caller, *, problems: dict[str, str] | None = None,
                  typed: dict[str, str] | None = None, refreshed: dict[str, Any] | None = None,
                  status: int = 200) -> Response:
        described = account_settings.describe(caller.account)
        values = {name: "" if value is None else str(value) for name, value in described.items()}
        for n, item in enumerate(described["default_reminders"][:REMINDER_ROWS]):
            values[f"default_reminder_channel_{n}"] = str(item.get("channel", ""))
            values[f"default_reminder_minutes_{n}"] = str(item.get("minutes_before", ""))
        values.update(typed or {})
        types = list(EventType.select().where(EventType.account == caller.account.id)
                     .order_by(EventType.active.desc(), EventType.title))
        return self.console.render(
            request, "settings.html", caller, status=status, settings=described, values=values,
            reminder_rows=range(REMINDER_ROWS), channels=REMINDER_CHANNELS,
            problems=problems or {}, refreshed=refreshed, done=request.query_params.get("done"),
            event_types=[{"row": row, "strategy": resources.strategy(row),
                          "has_address": resources.has_meeting_address(row)} for row in types])

    async def save_settings(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            typed = {name: form_value(form, name) for name in (
                "default_event_type_id", "time_zone", "duration_override_minutes", "callback_url",
                "public_url", *SECRET_FIELDS)}
            reminder_typed = {name: form_value(form, name) for n in range(REMINDER_ROWS)
                              for name in (f"default_reminder_channel_{n}", f"default_reminder_minutes_{n}")}
            body: dict[str, Any] = {}
            for name, value in typed.items():
                if name in SECRET_FIELDS:
                    if value:  # write-only: left empty, the secret stays as it is
                        body[name] = value
                elif name in ("default_event_type_id", "duration_override_minutes"):
                    body[name] = int(value) if value.isdigit() else (value or None)
                else:
                    body[name] = value or None
            if body.get("time_zone") is None:
                body.pop("time_zone")
            rows = [(form_value(form, f"default_reminder_channel_{n}"), form_value(form, f"default_reminder_minutes_{n}"))
                    for n in range(REMINDER_ROWS)]
            body["default_reminders"] = [  # the rows as shown: emptied, no default reminders
                {"channel": channel, "minutes_before": int(minutes) if minutes.isdigit() else minutes}
                for channel, minutes in rows if channel or minutes]
            try:
                data = parse(SettingsInput, json.dumps(body).encode())
                account_settings.update(self.ctx.db, caller.account.id, data, sealer=self.ctx.clients.sealer,
                                        actor=caller.principal.actor, now=self.ctx.clock.now(),
                                        check_key=self.check_key)
            except errors.ValidationFailed as failed:
                shown = {k: v for k, v in typed.items() if k not in SECRET_FIELDS} | reminder_typed  # no secret
                return self._settings(request, caller, problems=field_messages(failed), typed=shown, status=422)
            return redirect("/console/settings", done="Settings saved.")

        return await self.console.act(request, accounts.ADMIN, perform)

    async def refresh_event_types(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            try:
                result = event_types.refresh(self.ctx.db, self.ctx.clock, self.ctx.clients, caller.account.id)
            except errors.CalcomError as failed:
                return self._settings(request, caller, problems={"refresh": f"Cal.com did not answer: {failed}"},
                                      status=502)
            return self._settings(request, caller, refreshed=result.as_dict())

        return await self.console.act(request, accounts.ADMIN, perform)

    # --- operations -------------------------------------------------------------------------

    async def operations(self, request: Request) -> Response:
        return await self.console.view(request, accounts.ADMIN, lambda caller: self._operations(request, caller))

    def _operations(self, request: Request, caller: Caller, problems: dict[str, str] | None = None,
                    status: int = 200) -> Response:
        account_id = caller.account.id
        state = request.query_params.get("state")
        state = state if state in job_admin.STATUSES else None
        counted: Any = Job.select(Job.status, fn.COUNT(Job.id)).where(
            Job.account_id == account_id).group_by(Job.status).tuples()
        depth: dict[str, int] = dict(counted)
        oldest = (Job.select(fn.MIN(Job.created_at)).where(
            (Job.account_id == account_id) & (Job.kind == queue.CONVERGE)
            & Job.status.in_(("queued", "running"))).scalar())
        runs = list(ReconcileRun.select().where(ReconcileRun.account == account_id)
                    .order_by(ReconcileRun.id.desc()).limit(10))
        jobs = [job for job in job_admin.listing(account_id, state).limit(LIST_LIMIT)
                if job.kind != events.DELIVER_EVENT]
        crm = list(Job.select().where((Job.account_id == account_id) & (Job.kind == events.DELIVER_EVENT))
                   .order_by(Job.id.desc()).limit(LIST_LIMIT))
        deliveries = list(WebhookDelivery.select(
            WebhookDelivery.id, WebhookDelivery.trigger, WebhookDelivery.received_at, WebhookDelivery.outcome,
            WebhookDelivery.booking_uid, WebhookDelivery.error).where(WebhookDelivery.account == account_id)
            .order_by(WebhookDelivery.id.desc()).limit(LIST_LIMIT))
        limiter, bucket = self.ctx.clients.limiter, self.ctx.clients.allowance(caller.account)
        headroom = limiter.headroom(bucket) if limiter is not None and bucket is not None else None
        registration = (Job.select().where((Job.account_id == account_id) & (Job.kind == "register_webhook"))
                        .order_by(Job.id.desc()).first())
        return self.console.render(
            request, "operations.html", caller, status=status, depth=depth, oldest=oldest,
            runs=runs, last_run=runs[0] if runs else None, jobs=jobs, crm=crm, deliveries=deliveries,
            headroom=headroom, registration=registration, subscribed=bool(caller.account.calcom_webhook_secrets),
            state=state, states=job_admin.STATUSES, problems=problems or {},
            done=request.query_params.get("done"))

    async def retry_job(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            job_id = request.path_params["job_id"]
            try:
                job_admin.retry(self.ctx.db, job_id, account_id=caller.account.id, now=self.ctx.clock.now())
            except (errors.NotFound, errors.Conflict) as failed:
                return self._operations(request, caller, problems={"jobs": str(failed)}, status=409)
            return redirect("/console/operations", done=f"Job {job_id} queued again.")

        return await self.console.act(request, accounts.ADMIN, perform)

    async def start_reconcile(self, request: Request) -> Response:
        def perform(caller: Caller, form: FormData) -> Response:
            full = form_value(form, "mode") == "full"
            queue.enqueue_reconcile(self.ctx.db, caller.account.id, full=full, now=self.ctx.clock.now())
            return redirect("/console/operations",
                            done=f"A {'full' if full else 'quick'} reconcile is queued; its run shows below.")

        return await self.console.act(request, accounts.ADMIN, perform)
