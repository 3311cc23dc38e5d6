"""Group commit for inbound deliveries: many deliveries per transaction, one writer thread.

One SQLite transaction per delivery, from many threads, serialises on the write
lock and stalls in its busy handler. Here a request appends its verified delivery
to its event loop's lane; while a batch is being written, the next one gathers,
and it is written as one transaction as soon as the previous one commits: on
SQLite by the loop itself when the write lock is free at once, else (and always
on PostgreSQL) by the writer thread. Each request is answered only after its
batch has committed: the answer still comes after its delivery is durable. A
batch that fails is retried one delivery at a time, so one bad row fails alone.

A body this process stored lately is answered ``duplicate`` from memory, without a
write; the dispatcher (webhooks/dispatch.py) finds every other repeat.

The loop and the writer cross threads once per batch, not once per request: a
thread-safe hand-off per request (a queue put and a wake-up back) cost the loop
more than verifying and parsing the delivery did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from peewee import Database, SqliteDatabase

from mappings.db import SQLITE_PRAGMAS
from webhooks import calcom
from webhooks.events import Headline

log = logging.getLogger("calsync.webhooks")

WAL_CHECKPOINT_PAGES = 1000  # SQLite's default autocheckpoint, for every other write
CHECKPOINT_EVERY = 1000  # deliveries written on the loop (~1.5 WAL pages each) between checkpoints


@dataclass
class _Lane:
    """The deliveries of one event loop waiting for the next batch."""

    waiting: list[tuple[calcom.Incoming, asyncio.Future[calcom.Receipt]]] = field(default_factory=list)
    writing: bool = False


class IngestWriter:
    def __init__(self, db: Database, *, max_batch: int = 256, remembered: int = 16_384) -> None:
        self.db = db
        self.max_batch = max_batch
        self.batches = 0
        # The last bodies this process stored, by (account, dedupe key): a repeat (a replay, a
        # proxy's retry) is answered ``duplicate`` without a write. What this misses (another
        # process, an older body) the dispatcher finds: it is stored, then closed as a duplicate.
        self._recent: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._remembered = remembered
        self._on_loop = isinstance(getattr(db, "obj", db), SqliteDatabase)
        self._unchecked = 0  # deliveries written on the loop since the last checkpoint
        self._lanes: dict[asyncio.AbstractEventLoop, _Lane] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def store(self, account_id: str, event: Headline, raw_body: bytes,
                    now: datetime) -> calcom.Receipt:
        """Store one verified delivery; returns its Receipt once it is committed."""
        stored = self._recent.get((account_id, event.delivery_key))
        if stored is not None:
            log.info("duplicate delivery", extra={"action": "webhook.duplicate", "delivery_id": stored,
                                                  "trigger": event.trigger_name})
            return calcom.Receipt("duplicate", stored)
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
        items = [item for item, _ in batch]
        receipts = self._write_on_loop(items)
        if receipts is not None:
            written: asyncio.Future[list[calcom.Receipt | Exception]] = loop.create_future()
            written.set_result(receipts)
            self._answer(loop, lane, batch, written)
            return
        written = loop.run_in_executor(self._writer(), self._write, items)
        written.add_done_callback(lambda done: self._answer(loop, lane, batch, done))

    def _answer(self, loop: asyncio.AbstractEventLoop, lane: _Lane,
                batch: list[tuple[calcom.Incoming, asyncio.Future[calcom.Receipt]]],
                done: asyncio.Future[list[calcom.Receipt | Exception]]) -> None:
        failure = done.exception()
        outcomes: list[calcom.Receipt | BaseException] = (
            [failure] * len(batch) if failure is not None else list(done.result()))
        for (item, future), outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                self._remember(item, outcome)
            if future.done():  # the request was cancelled (its client went away); its row stays
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        # After the requests readable meanwhile have joined the lane.
        loop.call_soon(self._write_next, loop, lane)

    def _remember(self, item: calcom.Incoming, receipt: calcom.Receipt) -> None:
        with self._lock:  # lanes of several loops answer on their own threads
            self._recent[(item.account_id, item.event.delivery_key)] = receipt.delivery_id
            if len(self._recent) > self._remembered:
                self._recent.popitem(last=False)  # the oldest (a dict's first key is found in O(n))

    def _writer(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="calsync-ingest")
            return self._executor

    def _write_on_loop(self, items: list[calcom.Incoming]) -> list[calcom.Receipt | Exception] | None:
        """SQLite: the batch written on the loop's own thread if the write lock is free at once;
        None if it is not (or anything went wrong), for the writer thread, which may wait.

        Handing a batch to a thread cost more than writing it (~30 µs a delivery, measured): the
        writer waits for the interpreter lock the loop holds between its statements. Without a
        wait for the lock, a write here holds the loop only as long as SQLite works (~20 µs a
        delivery, and a WAL checkpoint now and then); PostgreSQL's round trips would hold it
        longer, so there the writer thread always writes.
        """
        if not self._on_loop:
            return None
        try:
            connection = self.db.connection()  # this thread's (opened once, kept)
            # Busy: the writer thread's turn, not a wait. No checkpoint here: the writer thread's.
            connection.execute("PRAGMA busy_timeout = 0")
            connection.execute("PRAGMA wal_autocheckpoint = 0")
        except Exception:  # noqa: BLE001 — the writer thread's path will do
            return None
        try:
            receipts: list[calcom.Receipt | Exception] = list(calcom.store(self.db, items))
        except Exception:  # noqa: BLE001 — rolled back: the writer thread's path retries it and reports
            return None
        finally:
            # Whatever happened, the loop's connection waits for locks again, as every other does.
            with contextlib.suppress(Exception):
                connection.execute(f"PRAGMA busy_timeout = {SQLITE_PRAGMAS['busy_timeout']}")
                connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        self.batches += 1
        self._unchecked += len(items)
        if self._unchecked >= CHECKPOINT_EVERY:
            self._unchecked = 0
            self._writer().submit(self._checkpoint)
        return receipts

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database (SQLite's autocheckpoint, off the loop): PASSIVE
        waits for no one, so writes on the loop go on meanwhile."""
        self.db.connect(reuse_if_open=True)
        try:
            self.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # noqa: BLE001 — the next one, or any other connection's, catches up
            log.warning("WAL checkpoint failed", exc_info=True)

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
