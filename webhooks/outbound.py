"""Signed delivery of events to the CRM's callback URL (Standard Webhooks).

Each attempt POSTs the event's fixed body with ``webhook-id`` (the event's stable
id), ``webhook-timestamp`` (this attempt, Unix seconds) and ``webhook-signature``.
Anything but a 2xx raises ``CallbackFailed``; the worker's retry policy decides
when to try again and when the event is ``dead`` (replayable like any job).
"""

from __future__ import annotations

import logging

import httpx
from peewee import Database

from connector import errors, metrics
from connector.clock import Clock
from mappings.models import Account, Job
from mappings.sealing import Sealer
from webhooks import signing

log = logging.getLogger("calsync.outbound")

USER_AGENT = "calsync-webhooks/0.1"


class DeliveryHandler:
    """The worker's handler for ``deliver_event`` jobs."""

    def __init__(self, db: Database, clock: Clock, http: httpx.Client, sealer: Sealer,
                 timeout_seconds: float = 10.0) -> None:
        self.db, self.clock, self.http, self.sealer = db, clock, http, sealer
        self.timeout = httpx.Timeout(timeout_seconds)

    def run(self, job: Job) -> None:
        account = Account.get_by_id(job.account_id)
        event_id, body = job.payload["event_id"], job.payload["body"].encode()
        context = {"action": "callback.deliver", "event_id": event_id,
                   "event": job.payload["type"], "account_id": account.id}
        if not account.callback_url:
            log.warning("callback URL removed; event dropped", extra=context)
            return
        timestamp = int(self.clock.now().timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "webhook-id": event_id, "webhook-timestamp": str(timestamp)}
        secret = self.sealer.open(account.callback_secret)
        if secret:
            headers["webhook-signature"] = signing.sign(secret, event_id, timestamp, body)
        try:
            response = self.http.post(account.callback_url, content=body, headers=headers,
                                      timeout=self.timeout)
        except httpx.HTTPError as exc:
            metrics.crm_deliveries.labels(job.payload["type"], "failed").inc()
            raise errors.CallbackFailed(f"the CRM's callback URL is unreachable: "
                                        f"{type(exc).__name__}") from None
        if not response.is_success:
            metrics.crm_deliveries.labels(job.payload["type"], "failed").inc()
            raise errors.CallbackFailed(f"the CRM's callback URL answered {response.status_code}")
        metrics.crm_deliveries.labels(job.payload["type"], "delivered").inc()
        log.info("event delivered", extra={**context, "status": response.status_code})

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        """The job's own state (retrying, dead) is the record; nothing else to update."""
