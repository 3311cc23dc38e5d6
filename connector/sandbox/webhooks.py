"""The sandbox's webhooks: subscriptions (``/v2/webhooks``) and signed deliveries, once, no retry.

Each subscription belongs to the user whose key made it, as Cal.com's user-level
webhooks: a user lists, changes and hears of only their own.

Bodies follow ../shared/calcom/fixtures/webhook-*.json: the envelope
``{"triggerEvent", "createdAt", "payload"}``, compact JSON, ``X-Cal-Signature-256``
= hex HMAC-SHA256 of the bytes with the subscription's secret (or the literal
``no-secret-provided``). As Cal.com (REFERENCE §7.6), a failed delivery is
dropped, never retried; ``drop_rate`` loses a fraction on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from connector.clock import Clock
from mappings.times import to_wire_ms

log = logging.getLogger("calsync.sandbox.webhooks")

TRIGGERS = {
    "BOOKING_CREATED", "BOOKING_PAYMENT_INITIATED", "BOOKING_PAID", "BOOKING_RESCHEDULED",
    "BOOKING_REQUESTED", "BOOKING_CANCELLED", "BOOKING_REJECTED", "BOOKING_NO_SHOW_UPDATED",
    "FORM_SUBMITTED", "MEETING_ENDED", "MEETING_STARTED", "RECORDING_READY", "INSTANT_MEETING",
    "RECORDING_TRANSCRIPTION_GENERATED", "OOO_CREATED", "AFTER_HOSTS_CAL_VIDEO_NO_SHOW",
    "AFTER_GUESTS_CAL_VIDEO_NO_SHOW", "FORM_SUBMITTED_NO_EVENT",
}
Sender = Callable[[str, bytes, dict[str, str]], None]


@dataclass
class Subscription:
    id: str
    subscriber_url: str
    triggers: list[str]
    active: bool = True
    secret: str | None = None
    payload_template: str | None = None
    owner: int = 0  # the user whose subscription this is

    def output(self, user_id: int) -> dict[str, Any]:
        # Output as the source writes it: a UUID id (the spec says number, REFERENCE §11).
        body = {"payloadTemplate": self.payload_template, "userId": user_id, "id": self.id,
                "triggers": list(self.triggers), "subscriberUrl": self.subscriber_url,
                "active": self.active}
        if self.secret is not None:
            body["secret"] = self.secret
        return body


@dataclass
class Delivery:
    url: str
    trigger: str
    body: bytes
    headers: dict[str, str]


class WebhookHub:
    def __init__(self, clock: Clock, *, send: Sender | None = None, seed: int = 0) -> None:
        self.clock = clock
        self.subscriptions: dict[str, Subscription] = {}
        self.drop_rate = 0.0
        self.sent: list[Delivery] = []
        self.dropped = 0
        self.failed = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._send = send
        self._outbox: queue.Queue[Delivery | None] | None = None
        self._sender: threading.Thread | None = None

    # --- subscriptions --------------------------------------------------------

    def check(self, body: Any, *, partial: bool) -> str | None:
        """What is wrong with a create/update body, or None."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        allowed = {"payloadTemplate", "active", "subscriberUrl", "triggers", "secret", "version"}
        if set(body) - allowed:
            return f"{sorted(set(body) - allowed)[0]} property should not exist"
        if not partial:
            for name in ("subscriberUrl", "triggers", "active"):
                if name not in body:
                    return f"{name} is required"
        url = body.get("subscriberUrl")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            return "subscriberUrl must be a URL"
        triggers = body.get("triggers")
        if triggers is not None and (not isinstance(triggers, list)
                                     or not all(t in TRIGGERS for t in triggers)):
            return "each value in triggers must be one of the following values: " + ", ".join(sorted(TRIGGERS))
        if "active" in body and not isinstance(body["active"], bool):
            return "active must be a boolean value"
        return None

    def of(self, owner: int) -> list[Subscription]:
        with self._lock:
            return [sub for sub in self.subscriptions.values() if sub.owner == owner]

    def create(self, body: dict[str, Any], *, owner: int) -> Subscription | None:
        """A new subscription of ``owner``'s, or None when they use the URL already (Cal.com: 409)."""
        with self._lock:
            if any(s.subscriber_url == body["subscriberUrl"] and s.owner == owner
                   for s in self.subscriptions.values()):
                return None
            sub = Subscription(id=str(uuid.uuid4()), subscriber_url=body["subscriberUrl"],
                               triggers=list(body["triggers"]), active=body["active"],
                               secret=body.get("secret"), payload_template=body.get("payloadTemplate"),
                               owner=owner)
            self.subscriptions[sub.id] = sub
            return sub

    def _owned(self, webhook_id: str, owner: int) -> Subscription | None:
        sub = self.subscriptions.get(webhook_id)
        return sub if sub is not None and sub.owner == owner else None

    def update(self, webhook_id: str, body: dict[str, Any], *, owner: int) -> Subscription | None:
        with self._lock:
            sub = self._owned(webhook_id, owner)
            if sub is None:
                return None
            if "subscriberUrl" in body:
                sub.subscriber_url = body["subscriberUrl"]
            if "triggers" in body:
                sub.triggers = list(body["triggers"])
            if "active" in body:
                sub.active = body["active"]
            if "secret" in body:
                sub.secret = body["secret"]
            if "payloadTemplate" in body:
                sub.payload_template = body["payloadTemplate"]
            return sub

    def delete(self, webhook_id: str, *, owner: int) -> Subscription | None:
        with self._lock:
            return self.subscriptions.pop(webhook_id) if self._owned(webhook_id, owner) else None

    # --- deliveries -------------------------------------------------------------

    def emit(self, trigger: str, payload: dict[str, Any], *, owner: int) -> None:
        """Sign and send one event to each of ``owner``'s active subscriptions to ``trigger``."""
        envelope = {"triggerEvent": trigger, "createdAt": to_wire_ms(self.clock.now()), "payload": payload}
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        with self._lock:
            targets = [s for s in self.subscriptions.values()
                       if s.owner == owner and s.active and trigger in s.triggers]
            chosen = []
            for sub in targets:
                if self._rng.random() < self.drop_rate:
                    self.dropped += 1
                    continue
                chosen.append(sub)
        for sub in chosen:
            signature = (hmac.new(sub.secret.encode(), body, hashlib.sha256).hexdigest()
                         if sub.secret else "no-secret-provided")
            headers = {"Content-Type": "application/json", "X-Cal-Signature-256": signature}
            delivery = Delivery(sub.subscriber_url, trigger, body, headers)
            with self._lock:
                self.sent.append(delivery)
            self._dispatch(delivery)

    def _dispatch(self, delivery: Delivery) -> None:
        if self._send is not None:
            try:
                self._send(delivery.url, delivery.body, delivery.headers)
            except Exception:  # noqa: BLE001 — Cal.com logs and drops (REFERENCE §7.6)
                self.failed += 1
            return
        if self._outbox is None:
            self._outbox = queue.Queue()
            self._sender = threading.Thread(target=self._post_until_closed, args=(self._outbox,),
                                            name="sandbox-webhooks", daemon=True)
            self._sender.start()
        self._outbox.put(delivery)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop the sender thread and its connections."""
        if self._outbox is not None and self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout)

    def _post_until_closed(self, outbox: queue.Queue[Delivery | None]) -> None:
        """Real HTTP, off the request path, once per delivery (no redirects, no retry)."""
        with httpx.Client(timeout=10, follow_redirects=False) as http:
            while True:
                delivery = outbox.get()
                if delivery is None:
                    return
                try:
                    answer = http.post(delivery.url, content=delivery.body, headers=delivery.headers)
                    if not answer.is_success:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1


