"""The Cal.com webhook that points at calsync: one per account, made or updated by ``register``.

Subscriber URL: ``{account.public_url}/webhooks/calcom/{account.id}``. Each run
generates a fresh secret and commits it to the account's accepted list *before*
telling Cal.com, so a delivery signed with it is never refused; the previous
secrets stay accepted (rotation). No payload template: calsync reads Cal.com's
standard envelope (REFERENCE §7.3). Running it twice leaves one subscription.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass

from peewee import Database

from connector import errors
from connector.calcom.clients import CalcomClients
from connector.clock import Clock
from connector.core.accounts import webhook_secrets
from mappings.db import write_transaction
from mappings.models import Account, Job
from mappings.sealing import Sealer

log = logging.getLogger("calsync.subscription")

REGISTER_WEBHOOK = "register_webhook"
KEPT_SECRETS = 3  # the new one and two before it, while deliveries signed with those drain
TRIGGERS = [
    "BOOKING_CREATED", "BOOKING_REQUESTED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED",
    "BOOKING_REJECTED", "BOOKING_NO_SHOW_UPDATED", "MEETING_ENDED",
    "AFTER_HOSTS_CAL_VIDEO_NO_SHOW", "AFTER_GUESTS_CAL_VIDEO_NO_SHOW",
]


@dataclass(frozen=True)
class Registration:
    action: str  # created | updated
    webhook_id: str
    subscriber_url: str
    removed_duplicates: int = 0


def subscriber_url(account: Account) -> str:
    if not account.public_url:
        raise errors.ConfigurationError(
            f"account {account.id} has no public URL; set one with "
            f"'calsync accounts update {account.id} --public-url https://calsync.example.com'")
    return f"{account.public_url}/webhooks/calcom/{account.id}"


def register(db: Database, clock: Clock, clients: CalcomClients, sealer: Sealer,
             account_id: str) -> Registration:
    account = Account.get_by_id(account_id)
    url = subscriber_url(account)
    secret = secrets.token_urlsafe(32)
    with write_transaction(db):
        kept = [secret, *webhook_secrets(account, sealer)][:KEPT_SECRETS]
        Account.update_by_id(account_id, calcom_webhook_secrets=sealer.seal(json.dumps(kept)),
                             updated_at=clock.now())
    client = clients.for_account(account)
    body = {"subscriberUrl": url, "triggers": TRIGGERS, "active": True, "secret": secret}
    mine = [hook for hook in client.list_webhooks() if hook.get("subscriberUrl") == url]
    if mine:
        client.update_webhook(mine[0]["id"], body)
        for extra in mine[1:]:
            client.delete_webhook(extra["id"])
        result = Registration("updated", str(mine[0]["id"]), url, len(mine) - 1)
    else:
        try:
            made = client.create_webhook(body)
            result = Registration("created", str(made.get("id")), url)
        except errors.CalcomRejected as rejected:
            if rejected.status != 409:
                raise
            # Made meanwhile by a concurrent run: update that one instead.
            existing = [h for h in client.list_webhooks() if h.get("subscriberUrl") == url]
            client.update_webhook(existing[0]["id"], body)
            result = Registration("updated", str(existing[0]["id"]), url)
    log.info("webhook registered", extra={"action": "webhook.register", "account_id": account_id,
                                          "webhook_id": result.webhook_id, "outcome": result.action})
    return result


class RegisterHandler:
    """The worker's handler for ``register_webhook`` jobs (queued when a key or URL changes)."""

    def __init__(self, db: Database, clock: Clock, clients: CalcomClients, sealer: Sealer) -> None:
        self.db, self.clock, self.clients, self.sealer = db, clock, clients, sealer

    def run(self, job: Job) -> None:
        register(self.db, self.clock, self.clients, self.sealer, job.payload["account_id"])

    def failed(self, job: Job, error: BaseException, final: bool) -> None:
        """The job's state says it; the account keeps the secrets it had."""
