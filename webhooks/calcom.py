"""Cal.com's deliveries in: verify the raw bytes, parse, record with their job, answer.

``X-Cal-Signature-256`` is the lowercase hex HMAC-SHA256 of the exact body with
the webhook's secret; without a secret Cal.com sends the literal
``no-secret-provided`` (REFERENCE §7.2). Every secret the account holds is tried
(rotation), each compared in constant time. Nothing is stored unless the
signature is valid. No Cal.com call happens here (STYLE rule 5): the delivery row
and its ``apply_webhook`` job commit together, then the answer is 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from peewee import Database, IntegrityError

from connector import errors, queue
from connector.accounts import webhook_secrets
from mappings.db import write_transaction
from mappings.models import Account, Booking, WebhookDelivery
from mappings.sealing import Sealer, SealingError
from webhooks import events

log = logging.getLogger("calsync.webhooks")

SIGNATURE_HEADER = "x-cal-signature-256"
MAX_BODY_BYTES = 1_048_576
APPLY_WEBHOOK = "apply_webhook"
NO_SECRET = "no-secret-provided"
# Stored and answered 200, never applied: nothing in them changes an appointment.
IGNORED = {events.Trigger.PING, events.Trigger.UNKNOWN, events.Trigger.MEETING_STARTED,
           events.Trigger.BOOKING_PAYMENT_INITIATED, events.Trigger.BOOKING_PAID}


@dataclass(frozen=True)
class Receipt:
    outcome: str  # accepted | duplicate | ignored
    delivery_id: int


def signature_matches(raw_body: bytes, header: str | None, secrets: list[str]) -> bool:
    if not header or header.strip() == NO_SECRET or not secrets:
        return False
    given = header.strip().lower()
    matched = False
    for secret in secrets:  # every secret is tried, so timing does not tell which one matched
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(expected, given)
    return matched


def receive(db: Database, sealer: Sealer, account_id: str, raw_body: bytes,
            signature: str | None, *, now: datetime) -> Receipt:
    """Verify and record one delivery; raises ApiError subclasses for the answer's status."""
    if len(raw_body) > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"A Cal.com delivery is at most {MAX_BODY_BYTES} bytes.")
    account = Account.get_or_none(Account.id == account_id)
    try:
        secrets = webhook_secrets(account, sealer) if account is not None else []
    except SealingError:
        log.error("webhook secrets unreadable", extra={"action": "webhook.secrets_unreadable",
                                                       "account_id": account_id})
        secrets = []
    if not signature_matches(raw_body, signature, secrets):
        # Unknown account, no secret, missing or wrong signature: all look alike from outside.
        raise errors.Unauthorized("The X-Cal-Signature-256 header does not match this body.")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise errors.MalformedRequest("The delivery is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.MalformedRequest("The delivery must be a JSON object.")
    event = events.parse(body, raw_body)
    ignored = event.trigger in IGNORED
    with write_transaction(db):
        try:
            with db.atomic():
                delivery_id = WebhookDelivery.insert(
                    account=account_id, dedupe_key=event.delivery_key, trigger=event.trigger_name[:60],
                    booking_uid=event.uid, raw_body=raw_body.decode(), received_at=now,
                    processed_at=now if ignored else None,
                    outcome="ignored" if ignored else "received",
                ).execute()
        except IntegrityError:
            original = WebhookDelivery.get((WebhookDelivery.account == account_id)
                                           & (WebhookDelivery.dedupe_key == event.delivery_key))
            log.info("duplicate delivery", extra={"action": "webhook.duplicate",
                                                  "delivery_id": original.id, "trigger": event.trigger_name})
            return Receipt("duplicate", original.id)
        if not ignored:
            queue.enqueue(db, APPLY_WEBHOOK, now=now, account_id=account_id,
                          payload={"delivery_id": delivery_id},
                          serial_key=_serial_key(event))
    log.info("delivery recorded", extra={"action": "webhook.received", "delivery_id": delivery_id,
                                         "trigger": event.trigger_name, "booking_uid": event.uid})
    return Receipt("ignored" if ignored else "accepted", delivery_id)


def _serial_key(event: events.CalcomEvent) -> str:
    """The appointment's serial key when calsync knows the booking, so apply and converge
    of one appointment never run at once; else the booking's own."""
    for uid in (event.reschedule_uid, event.uid):
        if uid:
            appointment_id = Booking.select(Booking.appointment).where(Booking.uid == uid).scalar()
            if appointment_id:
                return f"appointment:{appointment_id}"
    return f"booking:{event.uid or event.delivery_key[:16]}"
