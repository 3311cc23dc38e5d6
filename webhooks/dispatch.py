"""Stored deliveries → their apply jobs, in the background, in batches, in order of receipt.

The door (webhooks/calcom.py) writes only the delivery row: that row, ``received``
with no ``queued_at``, is the durable queue entry, and the account's one
``dispatch_webhooks`` job is made sure to be queued in the same transaction. The
dispatcher takes the account's undispatched deliveries oldest first and, in one
transaction per batch:

- records each body's digest; a body the account has had before (Cal.com sending
  it twice, a replay) is closed as ``duplicate`` and never applied;
- works out whose each other delivery is — the appointment that owns the booking
  or that its metadata names, else the booking alone — and gives it its
  ``apply_webhook`` job under that serial key;
- marks them all dispatched (``queued_at``), conditionally.

So an apply and a converge of one appointment never run at once, one booking's
deliveries apply in the order received, and nothing is dispatched or applied
twice: the account's dispatchers share a serial key and the mark is conditional.
What the door used to pay per request before answering (a unique index on a
random key, lookups of bookings and appointments, a job with its indexes) is paid
here once per batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import cast

from peewee import Database

from connector import metrics
from connector.clock import Clock
from connector.jobs import queue
from mappings import bookings
from mappings.db import bulk_insert, is_postgres, write_transaction
from mappings.models import Appointment, Job, WebhookDelivery, WebhookDigest
from webhooks import events

log = logging.getLogger("calsync.webhooks")

APPLY_WEBHOOK = "apply_webhook"
DISPATCH_WEBHOOKS = "dispatch_webhooks"
BATCH = 500


def ensure_dispatcher(db: Database, account_id: str, *, now: datetime) -> None:
    """The account's dispatcher is queued and will see what the caller's transaction wrote."""
    queue.ensure_queued(db, DISPATCH_WEBHOOKS, dedupe_key=f"{DISPATCH_WEBHOOKS}:{account_id}",
                        serial_key=f"account:{account_id}:webhooks", account_id=account_id,
                        payload={"account_id": account_id}, now=now)


def undispatched_accounts(limit: int = BATCH) -> list[str]:
    """Accounts holding deliveries not yet dispatched (for the sweep's safety net)."""
    rows = (WebhookDelivery.select(WebhookDelivery.account).distinct()
            .where((WebhookDelivery.outcome == "received") & WebhookDelivery.queued_at.is_null())
            .limit(limit).tuples())
    return [account_id for (account_id,) in cast("Iterable[tuple[str]]", rows)]


def dispatch(db: Database, account_id: str, *, now: datetime, batch: int) -> int:
    """Dispatch one batch of the account's undispatched deliveries, oldest first: a body seen
    before is recorded ``duplicate``, each other gets its apply job. Answers how many were taken."""
    with write_transaction(db):
        query = (WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.raw_body, WebhookDelivery.dedupe_key)
                 .where((WebhookDelivery.account == account_id) & (WebhookDelivery.outcome == "received")
                        & WebhookDelivery.queued_at.is_null())
                 .order_by(WebhookDelivery.id).limit(batch))
        if is_postgres(db):
            query = query.for_update()
        rows = list(cast("Iterable[tuple[int, str, str]]", query.tuples()))
        if not rows:
            return 0
        marked = (WebhookDelivery.update(queued_at=now)
                  .where(WebhookDelivery.id.in_([delivery_id for delivery_id, _, _ in rows])
                         & WebhookDelivery.queued_at.is_null())
                  .execute())
        if marked != len(rows):  # cannot happen while dispatchers share a serial key
            raise RuntimeError(f"deliveries of {account_id} were dispatched twice at once")
        first = _first_of_each_body(db, account_id, rows)
        pending = []
        for delivery_id, raw_body, key in rows:
            try:
                event = _headline(raw_body)
            except Exception as error:  # noqa: BLE001 — one unreadable row must not hold the rest
                log.error("delivery not dispatched", extra={"action": "webhook.dispatch_failed",
                                                            "delivery_id": delivery_id})
                _close(delivery_id, "failed", f"unreadable: {error}", None)
                continue
            if first[key] != delivery_id:
                log.info("duplicate delivery", extra={"action": "webhook.duplicate", "delivery_id": delivery_id,
                                                      "trigger": event.trigger_name})
                _close(delivery_id, "duplicate", f"the same body as delivery {first[key]}", now)
                metrics.webhook_deliveries.labels(event.trigger.value, "duplicate").inc()
                continue
            pending.append((delivery_id, event))
        uids = {uid for _, event in pending for uid in (event.uid, event.reschedule_uid) if uid}
        owners = bookings.owners(account_id, uids)
        named = _named_appointments(account_id, {event.appointment_id for _, event in pending
                                                 if event.appointment_id})
        queue.enqueue_many(db, [{"kind": APPLY_WEBHOOK, "account_id": account_id,
                                 "payload": {"delivery_id": delivery_id},
                                 "serial_key": serial_key(account_id, event, owners, named)}
                                for delivery_id, event in pending], now=now)
    return len(rows)


def _first_of_each_body(db: Database, account_id: str, rows: list[tuple[int, str, str]]) -> dict[str, int]:
    """Dedupe key → the account's first delivery with that body, recording the new ones (rows in
    order of receipt, so within the batch the earliest wins)."""
    inserted = bulk_insert(db, WebhookDigest, [{"account": account_id, "dedupe_key": key, "delivery": delivery_id}
                                               for delivery_id, _, key in rows],
                           returning=("dedupe_key", "delivery"), skip_conflicts=True)
    first: dict[str, int] = dict(cast("Iterable[tuple[str, int]]", inserted))
    seen_before = sorted({key for _, _, key in rows} - set(first))
    if seen_before:
        earlier = WebhookDigest.select(WebhookDigest.dedupe_key, WebhookDigest.delivery).where(
            (WebhookDigest.account == account_id) & WebhookDigest.dedupe_key.in_(seen_before)).tuples()
        first.update(cast("Iterable[tuple[str, int]]", earlier))
    return first


def _close(delivery_id: int, outcome: str, why: str, processed_at: datetime | None) -> None:
    WebhookDelivery.update_by_id(delivery_id, outcome=outcome, error=why[:1000],
                                 processed_at=processed_at)


def _headline(raw_body: str) -> events.Headline:
    raw = raw_body.encode()
    return events.headline(json.loads(raw), raw)  # verified and parsed at the door


def _named_appointments(account_id: str, ids: set[str]) -> set[str]:
    """Those of ``ids`` that are the account's appointments: a delivery naming one is about a
    booking calsync made, perhaps before its answer was recorded."""
    if not ids:
        return set()
    rows = Appointment.select(Appointment.id).where(
        (Appointment.account == account_id) & Appointment.id.in_(sorted(ids))).tuples()
    return {appointment_id for (appointment_id,) in cast("Iterable[tuple[str]]", rows)}


def serial_key(account_id: str, event: events.Headline, owners: dict[str, str],
               named: set[str]) -> str:
    """The appointment's serial key when the account knows the booking, or when the booking
    names one of the account's appointments (calsync's own create, its answer maybe not yet
    recorded), so apply and converge of one appointment never run at once; else the booking's
    own within the account, so no tenant's delivery can queue behind another's (a digest keeps
    the key short)."""
    for uid in (event.reschedule_uid, event.uid):
        if uid and uid in owners:
            return f"appointment:{owners[uid]}"
    if event.appointment_id in named:
        return f"appointment:{event.appointment_id}"
    booking = hashlib.blake2b(f"{account_id}\n{event.uid or event.delivery_key}".encode(),
                              digest_size=12).hexdigest()
    return f"booking:{booking}"


class DispatchHandler:
    """The worker's handler for ``dispatch_webhooks``: drains the account's undispatched
    deliveries a batch per transaction, so a long backlog never holds one transaction open."""

    def __init__(self, db: Database, clock: Clock, wake: Callable[[], None] | None = None) -> None:
        self.db, self.clock, self.wake = db, clock, wake

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        """Nothing to mark: the deliveries stay undispatched, and the next delivery or the sweep
        queues the dispatcher again."""

    def run(self, job: Job) -> None:
        account_id = job.payload["account_id"]
        total = 0
        while True:
            count = dispatch(self.db, account_id, now=self.clock.now(), batch=BATCH)
            total += count
            if count and self.wake is not None:
                self.wake()  # the apply jobs just queued are for the worker's other threads
            if count < BATCH:
                break
        if total:
            log.info("deliveries dispatched", extra={"action": "webhook.dispatch",
                                                     "account_id": account_id, "count": total})
