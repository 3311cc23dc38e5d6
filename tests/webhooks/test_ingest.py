"""The door's group commit: every delivery answered after its batch commits, never a wait on
the event loop (SQLite writes there only when its lock is free at once), checkpoints off the loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time

import pytest

from mappings.db import is_postgres, session
from mappings.models import WebhookDelivery
from webhooks import calcom, events, ingest
from webhooks.ingest import IngestWriter

_SENT = itertools.count()


@pytest.fixture
def account(make_account):
    return make_account(calcom_webhook_secrets=("whsec-ingest-0123456789ab",))[0]


def _body(uid: str) -> tuple[events.Headline, bytes]:
    raw = json.dumps({"triggerEvent": "BOOKING_CANCELLED", "createdAt": f"2026-03-16T08:00:{next(_SENT):02d}Z",
                      "payload": {"uid": uid}}, separators=(",", ":")).encode()
    return events.headline(json.loads(raw), raw), raw


def _store_all(writer: IngestWriter, account, clock, uids: list[str]) -> list[calcom.Receipt]:
    async def run() -> list[calcom.Receipt]:
        bodies = [_body(uid) for uid in uids]
        return await asyncio.gather(*(writer.store(account.id, event, raw, clock.now()) for event, raw in bodies))
    return asyncio.run(run())


def test_each_delivery_is_answered_once_its_row_is_committed(db, account, clock):
    writer = IngestWriter(db)
    try:
        receipts = _store_all(writer, account, clock, [f"uid-{n}" for n in range(20)])
    finally:
        writer.stop()
    assert [receipt.outcome for receipt in receipts] == ["accepted"] * 20
    assert len({receipt.delivery_id for receipt in receipts}) == 20
    assert WebhookDelivery.select().count() == 20
    assert writer.batches < 20  # gathered: the deliveries came in together


def test_a_body_stored_lately_is_answered_duplicate_without_a_write(db, account, clock):
    writer = IngestWriter(db)
    event, raw = _body("uid-a")

    async def twice() -> list[calcom.Receipt]:
        first = await writer.store(account.id, event, raw, clock.now())
        return [first, await writer.store(account.id, event, raw, clock.now())]
    try:
        first, again = asyncio.run(twice())
    finally:
        writer.stop()
    assert (again.outcome, again.delivery_id) == ("duplicate", first.delivery_id)
    assert WebhookDelivery.select().count() == 1


def test_a_held_lock_delays_the_answer_but_never_the_loop(db, account, clock):
    """Another writer holds what the door's transaction needs (SQLite's write lock; on
    PostgreSQL the account's queued dispatcher): the delivery is stored and answered after the
    lock goes, and meanwhile the event loop keeps serving."""
    writer = IngestWriter(db)
    _store_all(writer, account, clock, ["uid-first"])  # the dispatcher is queued
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with session(db), db.atomic() as transaction:
            if is_postgres(db):
                db.execute_sql("SELECT id FROM job WHERE kind = 'dispatch_webhooks' FOR UPDATE")
            else:
                db.execute_sql("UPDATE account SET name = name")  # takes the write lock
            held.set()
            release.wait(10)
            transaction.rollback()

    async def run() -> tuple[calcom.Receipt, int, float]:
        ticks = 0
        event, raw = _body("uid-late")
        started = time.monotonic()
        storing = asyncio.ensure_future(writer.store(account.id, event, raw, clock.now()))
        while not storing.done():
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 30:
                release.set()
        return storing.result(), ticks, time.monotonic() - started

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    try:
        receipt, ticks, elapsed = asyncio.run(run())
    finally:
        release.set()
        thread.join(10)
        writer.stop()
    # The loop ticked all along: it never sat in SQLite's busy handler (15 s) for the lock.
    assert receipt.outcome == "accepted" and ticks >= 30 and 0.25 <= elapsed < 5
    assert WebhookDelivery.get_by_id(receipt.delivery_id).booking_uid == "uid-late"
    if not is_postgres(db):  # the loop's connection waits for locks again, as every other does
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 15_000
        assert db.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == ingest.WAL_CHECKPOINT_PAGES


def test_writes_on_the_loop_leave_their_checkpoints_to_the_writer_thread(db, account, clock, monkeypatch):
    monkeypatch.setattr(ingest, "CHECKPOINT_EVERY", 3)
    checkpoints = []
    original = IngestWriter._checkpoint
    monkeypatch.setattr(IngestWriter, "_checkpoint",
                        lambda self: checkpoints.append(threading.current_thread().name) or original(self))
    writer = IngestWriter(db)
    try:
        for n in range(3):
            _store_all(writer, account, clock, [f"uid-{n}-a", f"uid-{n}-b"])
    finally:
        writer.stop()
    if is_postgres(db):
        assert checkpoints == []  # PostgreSQL's writes are the writer thread's, and it checkpoints itself
    else:
        assert checkpoints and all(name.startswith("calsync-ingest") for name in checkpoints)
