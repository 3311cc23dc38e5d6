"""``POST /webhooks/calcom/{account_id}``: Cal.com's subscriber URL (signed, no bearer token).

Plain ASGI, placed outside the router and the other middleware: it is the one
route hit in bursts by a machine, and Starlette's Request, routing and response
objects cost it more than verifying the signature did (docs/benchmarks.md).
Every other method or path falls through to the application. It keeps the
application's contract: problem+json for every refusal, 413 over 1 MiB (counted,
not only declared), and an unexpected error goes on up to the 500 handler.

Verifying and parsing run on the event loop (CPU only, microseconds); the write
goes to the group-commit writer (webhooks/ingest.py) and the answer waits for it.
An account's secrets are cached for a few seconds, so a rotation takes effect
within ``SECRETS_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from connector import errors, metrics
from connector.api.context import ApiContext
from connector.api.problems import problem, problem_for
from mappings.db import session
from mappings.sealing import Sealer
from webhooks import calcom
from webhooks.ingest import IngestWriter

PATH_PREFIX = "/webhooks/calcom/"
SECRETS_TTL_SECONDS = 5.0
_SIGNATURE = calcom.SIGNATURE_HEADER.encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]
_MAX_DIGITS = str(calcom.MAX_BODY_BYTES)


class SecretsCache:
    """An account's webhook secrets, kept ``SECRETS_TTL_SECONDS``; one load per account at once.

    When an entry expires under load every request in flight would otherwise start
    its own load, each holding a threadpool slot and a connection.
    """

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx
        self._sealer = Sealer(ctx.settings.security.secret_key or None)
        self._entries: dict[str, tuple[float, list[str]]] = {}
        self._loading: dict[str, asyncio.Future] = {}

    async def get(self, account_id: str) -> list[str]:
        hit = self._entries.get(account_id)
        if hit is not None and time.monotonic() - hit[0] < SECRETS_TTL_SECONDS:
            return hit[1]
        loading = self._loading.get(account_id)
        if loading is None or loading.get_loop() is not asyncio.get_running_loop():
            loading = asyncio.ensure_future(run_in_threadpool(self._load, account_id))
            self._loading[account_id] = loading
            loading.add_done_callback(lambda done: self._forget(account_id, done))
        return await asyncio.shield(loading)

    def _load(self, account_id: str) -> list[str]:
        with session(self._ctx.db):
            secrets = calcom.secrets_of(account_id, self._sealer)
        if len(self._entries) > 10_000:  # unknown ids from strangers must not grow it unbounded
            self._entries.clear()
        self._entries[account_id] = (time.monotonic(), secrets)
        return secrets

    def _forget(self, account_id: str, done: asyncio.Future) -> None:
        if self._loading.get(account_id) is done:
            del self._loading[account_id]


# What the door's receipt means in calsync_webhook_deliveries (the applied outcome comes later).
_DOOR_OUTCOMES = {"accepted": "received"}


class CalcomWebhookRoute:
    """ASGI middleware answering ``POST /webhooks/calcom/{account_id}`` itself."""

    def __init__(self, app: ASGIApp, ctx: ApiContext, writer: IngestWriter) -> None:
        self.app = app
        self.ctx = ctx
        self.writer = writer
        self.secrets = SecretsCache(ctx)
        self._counters: dict[tuple[str, str], Any] = {}  # bounded: triggers × outcomes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        account_id = path[len(PATH_PREFIX):] if path.startswith(PATH_PREFIX) else ""
        if not account_id or "/" in account_id:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await problem(405, "method-not-allowed", "Method not allowed",
                          "Cal.com posts its deliveries here: only POST is allowed.", path,
                          {"Allow": "POST"})(scope, receive, send)
            return
        try:
            answer = await self._receive(scope, receive, account_id)
        except errors.ApiError as refusal:
            metrics.webhook_deliveries.labels("UNKNOWN", "rejected").inc()
            await problem_for(refusal, path)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            *_JSON_HEADERS, (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})

    def _counter(self, trigger: str, outcome: str) -> Any:
        """The door's counter for a trigger and outcome (prometheus' labels() takes a lock each call)."""
        counter = self._counters.get((trigger, outcome))
        if counter is None:
            counter = metrics.webhook_deliveries.labels(trigger, _DOOR_OUTCOMES.get(outcome, outcome))
            self._counters[(trigger, outcome)] = counter
        return counter

    async def _receive(self, scope: Scope, receive: Receive, account_id: str) -> bytes:
        signature = declared = None
        for name, value in scope["headers"]:
            if name == _SIGNATURE:
                signature = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        if declared is not None and not declared.isdigit():
            raise errors.MalformedRequest("Content-Length is not a number.")
        # Compared as digits: int() of thousands of digits would raise, and anything longer is too large.
        if declared is not None and (len(declared.lstrip(b"0")) > len(_MAX_DIGITS)
                                     or int(declared) > calcom.MAX_BODY_BYTES):
            raise _too_large()
        raw = await _read_body(receive)
        event = calcom.verify(raw, signature, await self.secrets.get(account_id))
        receipt = await self.writer.store(account_id, event, raw, self.ctx.clock.now())
        self._counter(event.trigger.value, receipt.outcome).inc()
        if receipt.outcome == "accepted":
            self.ctx.wake_worker()
        return orjson.dumps({"status": receipt.outcome, "delivery_id": receipt.delivery_id})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.MalformedRequest("The client closed the connection before the body ended.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > calcom.MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large() -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"A Cal.com delivery is at most {calcom.MAX_BODY_BYTES} bytes.")
