"""The composition root: settings, clock, database and Cal.com transport in; an app out.

``build_runtime`` wires the long-lived parts (database, HTTP client, Cal.com
clients, worker, scheduler, optional embedded sandbox); ``create_app`` puts the
HTTP API in front and, with ``run_background=True``, runs the worker and
scheduler in the app's lifespan — what ``calsync serve`` does.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from peewee import Database
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from connector import console
from connector.api import account_settings as settings_api
from connector.api import appointments as appointments_api
from connector.api import health
from connector.api import imports as imports_api
from connector.api import jobs as jobs_api
from connector.api import operations as operations_api
from connector.api import spec as spec_api
from connector.api import views as views_api
from connector.api import webhooks as webhooks_api
from connector.api.context import ApiContext
from connector.api.parameters import DeclaredParameters
from connector.api.problems import EXCEPTION_HANDLERS, BodyLimit
from connector.assistants.http import PATH as MCP_PATH
from connector.assistants.http import McpEndpoint
from connector.calcom.clients import CalcomClients
from connector.calcom.ratelimit import DatabaseWindows, RateLimiter
from connector.clock import Clock, SystemClock
from connector.core import import_runs, subscription
from connector.core.event_types import RefreshHandler
from connector.core.reconcile import ReconcileHandler, ReconcileOptions, Reconciler
from connector.core.slots import SlotCache
from connector.core.sync import ConvergeHandler, SyncContext
from connector.jobs import queue, reminders, sweeps
from connector.jobs.retry import RetryPolicy
from connector.jobs.scheduler import PeriodicTask, Scheduler, for_every_account
from connector.jobs.settled import Settled
from connector.jobs.worker import Worker, WorkerConfig
from connector.outputs import events
from connector.sandbox.app import Sandbox
from connector.settings import Settings
from mappings.db import dedicated_connection, is_postgres, open_database, refresh_statistics
from mappings.sealing import Sealer
from webhooks import calcom as calcom_webhooks
from webhooks.apply import ApplyHandler
from webhooks.dispatch import DISPATCH_WEBHOOKS, DispatchHandler
from webhooks.ingest import IngestWriter
from webhooks.outbound import DeliveryHandler

log = logging.getLogger("calsync.app")


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    sealer: Sealer
    http: httpx.Client
    clients: CalcomClients
    worker: Worker
    scheduler: Scheduler
    reconciler: Reconciler
    slot_cache: SlotCache
    ingest: IngestWriter
    sandbox: Sandbox | None = None
    background: bool = field(default=False)
    settled: Settled = field(default_factory=Settled)

    def start_background(self) -> None:
        self.worker.start()
        if self.settings.scheduler.enabled:
            self.scheduler.start()
        self.background = True

    def stop_background(self) -> None:
        if self.background:
            self.scheduler.stop()
            self.worker.stop()
            self.background = False

    def close(self) -> None:
        self.stop_background()
        self.settled.stop()
        self.ingest.stop()
        self.http.close()


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    transport: httpx.BaseTransport | None = None,
    sandbox: Sandbox | None = None,
    sandbox_url: str | None = None,
    rng: random.Random | None = None,
) -> Runtime:
    clock = clock or SystemClock()
    db = db or open_database(settings.database.url)
    sealer = Sealer(settings.security.secret_key or None)
    http = httpx.Client(transport=transport, follow_redirects=False,
                        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
    limiter = RateLimiter(clock, limit=settings.calcom.rate_limit_per_window,
                          window_seconds=settings.calcom.rate_limit_window_seconds,
                          windows=DatabaseWindows(db))  # one allowance per key across processes
    clients = CalcomClients(http, settings, sealer, sandbox_url=sandbox_url, limiter=limiter)
    reconciler = Reconciler(db, clock, clients, settings.calcom.booker_url, ReconcileOptions(
        page_size=settings.reconcile.page_size,
        window_before=timedelta(days=settings.reconcile.window_before_days),
        window_after=timedelta(days=settings.reconcile.window_after_days)))
    slot_cache = SlotCache()
    sync_ctx = SyncContext(db=db, clock=clock, clients=clients, booker_url=settings.calcom.booker_url,
                           slots_changed=slot_cache.invalidate)
    policy = RetryPolicy(
        max_attempts=settings.worker.max_attempts,
        base_seconds=settings.worker.backoff_base_seconds,
        max_seconds=settings.worker.backoff_max_seconds,
    )
    worker = Worker(
        db, clock,
        handlers={
            queue.CONVERGE: ConvergeHandler(sync_ctx),
            queue.REFRESH_EVENT_TYPES: RefreshHandler(db, clock, clients),
            events.DELIVER_EVENT: DeliveryHandler(db, clock, http, sealer),
            calcom_webhooks.APPLY_WEBHOOK: ApplyHandler(db, clock, settings.calcom.booker_url),
            subscription.REGISTER_WEBHOOK: subscription.RegisterHandler(db, clock, clients, sealer),
            queue.RECONCILE: ReconcileHandler(reconciler),
            queue.RECONCILE_SERIES: ReconcileHandler(reconciler),
            import_runs.IMPORT_FILE: import_runs.ImportHandler(db, clock),
        },
        policy=policy,
        config=WorkerConfig(
            concurrency=settings.worker.concurrency,
            poll_interval_seconds=settings.worker.poll_interval_seconds,
            lease_seconds=settings.worker.lease_seconds,
        ),
        rng=rng,
    )
    periods = settings.scheduler
    booker_url = settings.calcom.booker_url
    lead = timedelta(minutes=periods.briefing_lead_minutes)
    scheduler = Scheduler(db, clock, [
        PeriodicTask("sweep_stranded", timedelta(seconds=periods.pending_sweep_seconds),
                     lambda now: sweeps.sweep_stranded(db, now)),
        PeriodicTask("refresh_event_types", timedelta(seconds=periods.event_type_refresh_seconds),
                     for_every_account(lambda account, now: queue.enqueue_event_type_refresh(db, account, now=now))),
        PeriodicTask("reconcile", timedelta(seconds=periods.reconcile_seconds),
                     for_every_account(lambda account, now: queue.enqueue_reconcile(db, account, full=False, now=now))),
        PeriodicTask("reconcile_full", timedelta(seconds=periods.full_reconcile_seconds),
                     for_every_account(lambda account, now: queue.enqueue_reconcile(db, account, full=True, now=now))),
        PeriodicTask("complete_ended", timedelta(seconds=periods.completion_sweep_seconds),
                     lambda now: sweeps.complete_ended(db, now, booker_url)),
        PeriodicTask("briefings", timedelta(seconds=periods.briefing_seconds),
                     lambda now: sweeps.send_briefings(db, now, booker_url, lead)),
        PeriodicTask("reminders", timedelta(seconds=periods.reminder_seconds),
                     lambda now: reminders.send_due(db, now, booker_url)),
        PeriodicTask("refresh_statistics", timedelta(seconds=periods.statistics_seconds),
                     lambda now: int(refresh_statistics(db))),
    ])
    runtime = Runtime(settings, clock, db, sealer, http, clients, worker, scheduler, reconciler, slot_cache,
                      IngestWriter(db), sandbox)

    def after_job() -> None:
        runtime.settled.wake()  # this process's waiting requests
        Settled.announce(db)  # and, on PostgreSQL, every other process's

    worker.after_job = after_job
    worker.handlers[DISPATCH_WEBHOOKS] = DispatchHandler(db, clock, wake=worker.wake)
    return runtime


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    transport: httpx.BaseTransport | None = None,
    sandbox: Sandbox | None = None,
    sandbox_url: str | None = None,
    run_background: bool = False,
    runtime: Runtime | None = None,
) -> Starlette:
    runtime = runtime or build_runtime(settings, clock=clock, db=db, transport=transport,
                                       sandbox=sandbox, sandbox_url=sandbox_url)
    ctx = ApiContext(settings=runtime.settings, clock=runtime.clock, db=runtime.db,
                     wake_worker=runtime.worker.wake, clients=runtime.clients,
                     reconciler=runtime.reconciler, slot_cache=runtime.slot_cache, settled=runtime.settled,
                     run_now=lambda key: runtime.background and runtime.worker.run_now(key))
    routes: list[BaseRoute] = [*health.routes(ctx), *views_api.routes(ctx), *imports_api.routes(ctx),
              *appointments_api.routes(ctx),
              *jobs_api.routes(ctx), *operations_api.routes(ctx), *settings_api.routes(ctx),
              *spec_api.routes(),
              *console.routes(ctx, secret_key=runtime.settings.security.secret_key or None)]
    mcp = McpEndpoint(ctx)
    routes.append(Mount(MCP_PATH, app=mcp))
    if runtime.sandbox is not None:
        routes.append(Mount("/sandbox", app=runtime.sandbox.app))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if is_postgres(runtime.db):  # a worker in another process settles appointments too
            runtime.settled.listen(lambda: dedicated_connection(runtime.db))
        if run_background:
            runtime.start_background()
        try:
            async with mcp.running():
                yield
        finally:
            runtime.close()

    app = Starlette(routes=routes, exception_handlers=dict(EXCEPTION_HANDLERS), lifespan=lifespan)
    app.state.runtime = runtime
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes,
                       larger={imports_api.PATH: settings.server.max_import_bytes,
                        console.IMPORT_PATH: settings.server.max_import_bytes})
    app.add_middleware(DeclaredParameters, document=spec_api.document())
    # Outermost but for the 500 handler: Cal.com's deliveries skip the router (its docstring says why).
    app.add_middleware(webhooks_api.CalcomWebhookRoute, ctx=ctx, writer=runtime.ingest)
    return app
