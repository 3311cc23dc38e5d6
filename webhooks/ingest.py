"""Group commit for inbound deliveries: many deliveries per transaction, one writer thread.

One SQLite transaction per delivery, from many threads, serialises on the write
lock and stalls in its busy handler. Here a request appends its verified delivery
to its event loop's lane; while a batch is being written, the next one gathers,
and it goes to the writer thread as one transaction (delivery rows and jobs
together) as soon as the previous one commits. Each request is answered only
after its batch has committed: the answer still comes after its delivery is
durable. A batch that fails is retried one delivery at a time, so one bad row
fails alone.

The loop and the writer cross threads once per batch, not once per request: a
thread-safe hand-off per request (a queue put and a wake-up back) cost the loop
more than verifying and parsing the delivery did.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from peewee import Database

from webhooks import calcom
from webhooks.events import CalcomEvent

log = logging.getLogger("calsync.webhooks")


@dataclass
class _Lane:
    """The deliveries of one event loop waiting for the next batch."""

    waiting: list[tuple[calcom.Incoming, asyncio.Future[calcom.Receipt]]] = field(default_factory=list)
    writing: bool = False


class IngestWriter:
    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self.batches = 0
        self._lanes: dict[asyncio.AbstractEventLoop, _Lane] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def store(self, account_id: str, event: CalcomEvent, raw_body: bytes,
                    now: datetime) -> calcom.Receipt:
        """Store one verified delivery; returns its Receipt once it is committed."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop) or self._lanes.setdefault(loop, _Lane())
        future: asyncio.Future[calcom.Receipt] = loop.create_future()
        lane.waiting.append((calcom.Incoming(account_id, event, raw_body, now), future))
        if not lane.writing:
            lane.writing = True
            # After the requests already readable on this loop have joined the lane.
            loop.call_soon(self._write_next, loop, lane)
        return await future

    def stop(self) -> None:
        """Close the writer's connection and its thread (waits for a batch being written)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self._close_connection)
            executor.shutdown(wait=True)

    def _write_next(self, loop: asyncio.AbstractEventLoop, lane: _Lane) -> None:
        batch = lane.waiting[:self.max_batch]
        del lane.waiting[:self.max_batch]
        if not batch:
            lane.writing = False
            if self._lanes.get(loop) is lane:
                del self._lanes[loop]
            return
        written = loop.run_in_executor(self._writer(), self._write, [item for item, _ in batch])
        written.add_done_callback(lambda done: self._answer(loop, lane, batch, done))

    def _answer(self, loop: asyncio.AbstractEventLoop, lane: _Lane,
                batch: list[tuple[calcom.Incoming, asyncio.Future[calcom.Receipt]]],
                done: asyncio.Future[list[calcom.Receipt | Exception]]) -> None:
        failure = done.exception()
        outcomes: list[calcom.Receipt | BaseException] = (
            [failure] * len(batch) if failure is not None else list(done.result()))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled (its client went away); its row stays
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._write_next(loop, lane)

    def _writer(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="calsync-ingest")
            return self._executor

    def _write(self, items: list[calcom.Incoming]) -> list[calcom.Receipt | Exception]:
        # The writer thread keeps its connection: opening one per batch cost more than the batch.
        self.db.connect(reuse_if_open=True)
        try:
            receipts: list[calcom.Receipt | Exception] = list(calcom.store(self.db, items))
            self.batches += 1
            return receipts
        except Exception as error:  # noqa: BLE001 — every request must get an answer
            if len(items) > 1:
                return [outcome for item in items for outcome in self._write([item])]
            log.exception("delivery not stored", extra={"action": "webhook.store_failed"})
            return [error]

    def _close_connection(self) -> None:
        if not self.db.is_closed():
            self.db.close()
