"""A request waiting on ``Prefer: wait`` is woken when a job finishes, not at its next poll."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from connector.api import waiting
from connector.jobs.settled import Settled


def test_a_wake_between_the_look_and_the_wait_is_not_lost(monkeypatch):
    """The waiter clears its event before it looks, so a wake that lands after the look (the job
    finished meanwhile) still ends the wait at once; the fallback poll is set to never come."""
    settled = Settled()
    monkeypatch.setattr(waiting, "FALLBACK_POLL_SECONDS", 60)
    looks = []

    def look(ctx, appointment_id):
        looks.append(time.monotonic())
        if len(looks) == 1:
            settled.wake()  # the job finishes right after the first look
            return False
        return True

    monkeypatch.setattr(waiting, "_settled", look)
    ctx = SimpleNamespace(settled=settled, run_now=None)
    started = time.monotonic()
    asyncio.run(waiting.until_settled(ctx, "apt_1", 20))
    assert len(looks) == 2 and time.monotonic() - started < 5  # woken, not the 60 s poll


def test_a_wake_from_the_worker_thread_ends_the_wait(monkeypatch):
    settled = Settled()
    monkeypatch.setattr(waiting, "FALLBACK_POLL_SECONDS", 60)
    done = threading.Event()
    monkeypatch.setattr(waiting, "_settled", lambda ctx, appointment_id: done.is_set())

    def worker() -> None:
        time.sleep(0.05)
        done.set()
        settled.wake()

    threading.Thread(target=worker).start()
    started = time.monotonic()
    asyncio.run(waiting.until_settled(SimpleNamespace(settled=settled, run_now=None), "apt_1", 20))
    assert time.monotonic() - started < 5


def test_a_worker_in_another_process_wakes_the_waiters_through_postgres(db, engine):
    """NOTIFY from the worker's connection reaches a serve process LISTENing on its own."""
    if engine != "postgres":
        assert Settled.announce(db) is None  # SQLite: nothing to send; waiters fall back to polling
        return
    from mappings.db import dedicated_connection

    settled = Settled()
    woke = threading.Event()
    settled.wake = woke.set  # type: ignore[method-assign]
    settled.listen(lambda: dedicated_connection(db))
    try:
        deadline = time.monotonic() + 10
        while not woke.is_set() and time.monotonic() < deadline:
            Settled.announce(db)  # until the listener is connected and hears one
            woke.wait(0.1)
        assert woke.is_set()
    finally:
        settled.stop()
