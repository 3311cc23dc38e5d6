"""Periodic work inside the worker process, each task once per period across all processes.

Several worker processes may share one PostgreSQL database. Each task has a row
in ``periodic_claim`` holding its next due time; a process runs the task only if
its conditional update moves that time forward (``UPDATE … WHERE next_due_at <=
now``), which one process wins. The same holds on SQLite, whose writes are
serialised anyway. Tasks run when due by the injected clock, so tests drive
them with ``run_due()``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Database, IntegrityError

from connector.clock import Clock
from mappings.db import session, write_transaction
from mappings.models import Account, PeriodicClaim

log = logging.getLogger("calsync.scheduler")


@dataclass
class PeriodicTask:
    name: str
    every: timedelta
    run: Callable[[datetime], int]


def claim(db: Database, name: str, every: timedelta, now: datetime, owner: str) -> tuple[bool, datetime]:
    """Whether this process runs ``name`` now, and when it is next due."""
    following = now + every
    with write_transaction(db):
        row = PeriodicClaim.get_or_none(PeriodicClaim.name == name)
        if row is None:
            try:
                with db.atomic():
                    PeriodicClaim.create(name=name, next_due_at=following, claimed_by=owner, claimed_at=now)
                return True, following
            except IntegrityError:  # another process made the row first: it runs this period
                return False, PeriodicClaim.get(PeriodicClaim.name == name).next_due_at
        if row.next_due_at > following:
            # The period was shortened in the settings: due at the new period's end, not the old one's.
            PeriodicClaim.update(next_due_at=following).where(PeriodicClaim.name == name).execute()
            return False, following
        if row.next_due_at > now:
            return False, row.next_due_at
        won = PeriodicClaim.update(next_due_at=following, claimed_by=owner, claimed_at=now).where(
            (PeriodicClaim.name == name) & (PeriodicClaim.next_due_at <= now)).execute()
    if won:
        return True, following
    return False, PeriodicClaim.get(PeriodicClaim.name == name).next_due_at


class Scheduler:
    def __init__(self, db: Database, clock: Clock, tasks: list[PeriodicTask],
                 tick_seconds: float = 1.0, owner: str | None = None) -> None:
        self.db = db
        self.clock = clock
        self.tasks = tasks
        self.tick_seconds = tick_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._next: dict[str, datetime] = {}  # known due times, so an idle tick reads nothing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> dict[str, int]:
        """Run every task whose time has come and that this process claims; returns what each did."""
        now = self.clock.now()
        ran: dict[str, int] = {}
        for task in self.tasks:
            if now < self._next.get(task.name, now):
                continue
            try:
                with session(self.db):
                    won, self._next[task.name] = claim(self.db, task.name, task.every, now, self.owner)
                    if not won:
                        continue
                    ran[task.name] = task.run(now)
            except Exception:  # noqa: BLE001 — one failing task must not stop the others
                log.exception("periodic task failed", extra={"action": "scheduler.error",
                                                             "task": task.name})
                continue
            if ran[task.name]:
                log.info("periodic task ran", extra={"action": f"scheduler.{task.name}",
                                                     "count": ran[task.name]})
        return ran

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="calsync-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.run_due()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def for_every_account(enqueue: Callable[[str, datetime], object]) -> Callable[[datetime], int]:
    """A task that queues one job per account (``enqueue(account_id, now)``); returns how many."""

    def run(now: datetime) -> int:
        accounts = [row.id for row in Account.select(Account.id)]
        for account_id in accounts:
            enqueue(account_id, now)
        return len(accounts)

    return run
