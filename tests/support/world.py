"""calsync and a sandbox Cal.com in one process: the sandbox's signed webhooks go through
calsync's receiver as it sends them, and one worker runs converges, deliveries and
reconciliations on the test's clock."""

from __future__ import annotations

import random
from dataclasses import dataclass

from connector.calcom.clients import CalcomClients
from connector.core import subscription
from connector.core.reconcile import ReconcileHandler, Reconciler
from connector.core.sync import ConvergeHandler
from connector.jobs import queue
from connector.jobs.retry import RetryPolicy
from connector.jobs.worker import Worker, WorkerConfig
from connector.sandbox.app import Sandbox, create_sandbox
from connector.settings import SandboxSettings
from mappings.models import Account
from tests.support.factories import sandbox_clients, sync_context
from webhooks import calcom as calcom_webhooks
from webhooks.apply import ApplyHandler
from webhooks.dispatch import DISPATCH_WEBHOOKS, DispatchHandler


@dataclass
class World:
    sandbox: Sandbox
    worker: Worker
    account: Account
    clients: CalcomClients
    reconciler: Reconciler

    def run_all(self, clock, limit: int = 200) -> None:
        """Run every job that is due, moving the clock over backoffs, until the queue is idle."""
        for _ in range(limit):
            if not self.worker.run_once():
                clock.advance(seconds=10)
                if not self.worker.run_once():
                    return
        raise AssertionError("the queue did not go idle")


def make_world(db, clock, make_account, sealer, *, seed: int = 7) -> World:
    def deliver(url: str, body: bytes, headers: dict[str, str]) -> None:
        calcom_webhooks.receive(db, sealer, url.rsplit("/", 1)[-1], body,
                                headers.get("X-Cal-Signature-256"), now=clock.now())

    sandbox = create_sandbox(clock, SandboxSettings(weekly_hours="Mon-Sun 00:00-24:00"), seed=seed,
                             send=deliver)
    clients = sandbox_clients(sandbox, sealer=sealer)
    reconciler = Reconciler(db, clock, clients, "https://cal.com")
    worker = Worker(db, clock, {queue.CONVERGE: ConvergeHandler(sync_context(db, clock, clients)),
                                calcom_webhooks.APPLY_WEBHOOK: ApplyHandler(db, clock),
                                DISPATCH_WEBHOOKS: DispatchHandler(db, clock),
                                queue.RECONCILE: ReconcileHandler(reconciler),
                                queue.RECONCILE_SERIES: ReconcileHandler(reconciler)},
                    RetryPolicy(max_attempts=5, base_seconds=1, max_seconds=5), WorkerConfig(),
                    rng=random.Random(seed))
    account = make_account(public_url="https://calsync.example.test")[0]
    subscription.register(db, clock, clients, sealer, account.id)
    return World(sandbox, worker, account, clients, reconciler)
