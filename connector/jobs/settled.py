"""Wakes the requests that wait for an appointment to settle (``Prefer: wait``) the moment a job
finishes, instead of at their next poll.

In one process the worker calls ``wake`` after every job. Across processes on PostgreSQL
the worker also sends ``NOTIFY calsync_settled`` and every ``serve`` process listens on a
connection of its own (``listen``). Polling stays as the fallback (SQLite with a separate
worker process, a lost notification), at a slower pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
from collections.abc import Iterator
from typing import Any

from peewee import Database

from mappings.db import is_postgres

log = logging.getLogger("calsync.settled")

CHANNEL = "calsync_settled"


class Settled:
    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def wake(self) -> None:
        """Something settled: every waiting request looks again (each is one cheap read)."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    @contextlib.contextmanager
    def watching(self) -> Iterator[asyncio.Event]:
        """An event set at every ``wake`` while the block runs. Clear it *before* looking at the
        database, then wait on it: a wake that comes between the look and the wait is not lost."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._waiters.discard(entry)

    # --- across processes (PostgreSQL) ------------------------------------------------------

    @staticmethod
    def announce(db: Database) -> None:
        """After a job: tell the other processes' waiting requests (PostgreSQL only)."""
        if not is_postgres(db):
            return
        try:
            db.execute_sql(f"NOTIFY {CHANNEL}")
        except Exception:  # noqa: BLE001 — a lost notification only means a poll answers instead
            log.debug("notify failed", exc_info=True, extra={"action": "settled.notify_failed"})

    def listen(self, dsn_of: Any) -> threading.Thread | None:
        """Wake on the other processes' notifications, on a connection of its own (PostgreSQL);
        ``dsn_of()`` opens that connection. None on SQLite."""
        def run() -> None:
            while not self._stop.is_set():
                connection = None
                try:
                    connection = dsn_of()
                    connection.autocommit = True
                    with connection.cursor() as cursor:
                        cursor.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        if select.select([connection], [], [], 1.0)[0]:
                            connection.poll()
                            if connection.notifies:
                                connection.notifies.clear()
                                self.wake()
                except Exception:  # noqa: BLE001 — reconnect after a dropped connection
                    log.warning("settle listener reconnecting", exc_info=True,
                                extra={"action": "settled.listen_error"})
                    self._stop.wait(1.0)
                finally:
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            connection.close()

        thread = threading.Thread(target=run, name="calsync-settled-listener", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
