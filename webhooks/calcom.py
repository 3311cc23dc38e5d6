"""Cal.com's deliveries in: verify the raw bytes, parse, record, answer.

``X-Cal-Signature-256`` is the lowercase hex HMAC-SHA256 of the exact body with
the webhook's secret; without a secret Cal.com sends the literal
``no-secret-provided`` (REFERENCE §7.2). Every secret the account holds is tried
(rotation), each compared in constant time. Nothing is stored unless the
signature is valid. No Cal.com call happens here (STYLE rule 5): the delivery row
commits (an accepted one is its own queue entry: webhooks/dispatch.py), then the
answer is 200.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from peewee import Database

from connector import errors
from connector.core.accounts import webhook_secrets
from mappings.db import bulk_insert, write_transaction
from mappings.models import Account, WebhookDelivery
from mappings.sealing import Sealer, SealingError
from webhooks import dispatch, events

log = logging.getLogger("calsync.webhooks")

SIGNATURE_HEADER = "x-cal-signature-256"
MAX_BODY_BYTES = 1_048_576
APPLY_WEBHOOK = dispatch.APPLY_WEBHOOK
NO_SECRET = "no-secret-provided"
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_]{1,40}")  # mappings.models.new_id("acc"): acc_ + 26 base32
# Stored and answered 200, never applied: nothing in them changes an appointment.
IGNORED = {events.Trigger.PING, events.Trigger.MEETING_STARTED}
# Applied only when their payload names a booking: classified by what it says (webhooks/classify.py).
IGNORED_WITHOUT_A_BOOKING = {events.Trigger.UNKNOWN, events.Trigger.BOOKING_PAYMENT_INITIATED,
                             events.Trigger.BOOKING_PAID}


def _ignored(event: events.Headline) -> bool:
    return event.trigger in IGNORED or (event.trigger in IGNORED_WITHOUT_A_BOOKING and not event.uid)


@dataclass(frozen=True)
class Receipt:
    outcome: str  # accepted | duplicate | ignored
    delivery_id: int


def signature_matches(raw_body: bytes, header: str | None, secrets: list[str]) -> bool:
    given = (header or "").strip().lower()
    # Non-ASCII can never be hex (and compare_digest refuses non-ASCII text).
    if not given or given == NO_SECRET or not secrets or not given.isascii():
        return False
    matched = False
    for secret in secrets:  # every secret is tried, so timing does not tell which one matched
        expected = hmac.digest(secret.encode(), raw_body, "sha256").hex()  # OpenSSL's one-shot
        matched |= hmac.compare_digest(expected, given)
    return matched


@dataclass(frozen=True)
class Incoming:
    """A verified delivery on its way to the database."""

    account_id: str
    event: events.Headline
    raw_body: bytes
    received_at: datetime


def verify(raw_body: bytes, signature: str | None, secrets: list[str]) -> events.Headline:
    """The delivery's event if its signature holds; raises the ApiError for the answer."""
    if len(raw_body) > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"A Cal.com delivery is at most {MAX_BODY_BYTES} bytes.")
    if not signature_matches(raw_body, signature, secrets):
        # Unknown account, no secret, missing or wrong signature: all look alike from outside.
        raise errors.Unauthorized("The X-Cal-Signature-256 header does not match this body.")
    try:
        body = _loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise errors.MalformedRequest("The delivery is not valid UTF-8 JSON.") from None
    except RecursionError:
        raise errors.MalformedRequest("The delivery is nested too deeply to be Cal.com's.") from None
    if not isinstance(body, dict):
        raise errors.MalformedRequest("The delivery must be a JSON object.")
    return events.headline(body, raw_body)


def _loads(raw_body: bytes) -> Any:
    """orjson, ~3× faster, for the common body. What it refuses (an unpaired surrogate, an integer
    beyond 64 bits, NaN, deep nesting) goes to json, whose answer calsync has always given."""
    try:
        return orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        # UTF-8 only: json.loads would also take UTF-16/32, which the store cannot keep as text.
        return json.loads(raw_body.decode("utf-8"))


def secrets_of(account_id: str, sealer: Sealer) -> list[str]:
    """The secrets an account accepts; empty for an unknown account or unreadable secrets."""
    # A path segment is anything a stranger typed: only an id's shape reaches the database
    # (PostgreSQL refuses a NUL in a query's text with an error, not an empty answer).
    if not ACCOUNT_ID.fullmatch(account_id):
        return []
    account = Account.find_by_id(account_id)
    if account is None:
        return []
    try:
        return webhook_secrets(account, sealer)
    except SealingError:
        log.error("webhook secrets unreadable", extra={"action": "webhook.secrets_unreadable",
                                                       "account_id": account_id})
        return []


def receive(db: Database, sealer: Sealer, account_id: str, raw_body: bytes,
            signature: str | None, *, now: datetime) -> Receipt:
    """Verify and store one delivery (the route batches through webhooks/ingest.py instead)."""
    event = verify(raw_body, signature, secrets_of(account_id, sealer))
    return store(db, [Incoming(account_id, event, raw_body, now)])[0]


def store(db: Database, items: list[Incoming]) -> list[Receipt]:
    """Record deliveries in one transaction; a body repeated within the batch is a duplicate.

    An accepted delivery's row is its queue entry: the account's dispatcher
    (webhooks/dispatch.py) is made sure to be queued, and it gives each delivery its
    apply job off the request path, after checking its body was not seen before (a
    repeat stored here is recorded as ``duplicate`` there and never applied). Nothing
    else is read or written here: no index on the body is paid before the answer.
    """
    receipts: list[Receipt] = []
    with write_transaction(db):
        first: dict[tuple[str, str], int] = {}  # key → the index of its first item
        for index, item in enumerate(items):
            first.setdefault((item.account_id, item.event.delivery_key), index)
        # One statement for the batch (RETURNING's order is not promised: matched by key).
        inserted = bulk_insert(db, WebhookDelivery, [_row(items[index]) for index in first.values()],
                               returning=("id", "account", "dedupe_key"))
        stored = {(account_id, key): id_ for id_, account_id, key in inserted}
        to_dispatch: set[str] = set()
        for index, item in enumerate(items):
            key = (item.account_id, item.event.delivery_key)
            if first[key] != index:
                log.info("duplicate delivery", extra={"action": "webhook.duplicate", "delivery_id": stored[key],
                                                      "trigger": item.event.trigger_name})
                receipts.append(Receipt("duplicate", stored[key]))
            elif _ignored(item.event):
                receipts.append(Receipt("ignored", stored[key]))
            else:
                receipts.append(Receipt("accepted", stored[key]))
                to_dispatch.add(item.account_id)
        for account_id in sorted(to_dispatch):
            dispatch.ensure_dispatcher(db, account_id, now=items[0].received_at)
    return receipts


def _row(item: Incoming) -> dict[str, Any]:
    ignored = _ignored(item.event)
    return {"account": item.account_id, "dedupe_key": item.event.delivery_key,
            "trigger": item.event.trigger_name[:60], "booking_uid": item.event.uid,
            "raw_body": item.raw_body.decode("utf-8"), "received_at": item.received_at,
            "processed_at": item.received_at if ignored else None,
            "outcome": "ignored" if ignored else "received"}
