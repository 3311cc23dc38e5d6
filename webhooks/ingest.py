"""Group commit for inbound deliveries: one writer thread, many deliveries per transaction.

One SQLite transaction per delivery, from many threads, serialises on the write
lock and stalls in its busy handler. Here requests hand their verified event to
one writer that commits whatever has queued up (up to ``max_batch``) in a single
transaction, delivery rows and jobs together, and only then resolves each
request's future: the answer still comes after its delivery is durable.
A batch that fails is retried one delivery at a time, so one bad row fails alone.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from peewee import Database

from mappings.db import session
from webhooks import calcom
from webhooks.events import CalcomEvent

log = logging.getLogger("calsync.webhooks")


@dataclass
class _Pending:
    item: calcom.Incoming
    future: Future


class IngestWriter:
    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0

    def submit(self, account_id: str, event: CalcomEvent, raw_body: bytes, now: datetime) -> Future:
        """Queue one verified delivery; the future resolves to its Receipt once committed."""
        self._ensure_started()
        future: Future = Future()
        self._queue.put(_Pending(calcom.Incoming(account_id, event, raw_body, now), future))
        return future

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="calsync-ingest", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        # One connection for the writer's life: opening one per batch cost more than the batch.
        with session(self.db):
            self._drain()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Pending]) -> None:
        try:
            receipts = calcom.store(self.db, [p.item for p in batch])
            self.batches += 1
        except Exception as error:  # noqa: BLE001 — every request must get an answer
            if len(batch) > 1:
                for pending in batch:
                    self._write([pending])
                return
            log.exception("delivery not stored", extra={"action": "webhook.store_failed"})
            batch[0].future.set_exception(error)
            return
        for pending, receipt in zip(batch, receipts, strict=True):
            pending.future.set_result(receipt)
