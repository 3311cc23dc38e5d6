"""Periodic work inside the worker process; each task only enqueues jobs.

Tasks run when due by the injected clock, so tests drive them with ``run_due()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import SQL, Database, Value, fn

from connector import queue
from connector.clock import Clock
from mappings.db import session
from mappings.models import Account, Appointment, Job

log = logging.getLogger("calsync.scheduler")

SWEEP_BATCH = 500


@dataclass
class PeriodicTask:
    name: str
    every: timedelta
    run: Callable[[datetime], int]


class Scheduler:
    def __init__(self, db: Database, clock: Clock, tasks: list[PeriodicTask],
                 tick_seconds: float = 1.0) -> None:
        self.db = db
        self.clock = clock
        self.tasks = tasks
        self.tick_seconds = tick_seconds
        self._next: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> dict[str, int]:
        """Run every task whose time has come; returns how many jobs each enqueued."""
        now = self.clock.now()
        ran: dict[str, int] = {}
        for task in self.tasks:
            if now < self._next.get(task.name, now):
                continue
            self._next[task.name] = now + task.every
            try:
                with session(self.db):
                    ran[task.name] = task.run(now)
            except Exception:  # noqa: BLE001 — one failing task must not stop the others
                log.exception("periodic task failed", extra={"action": "scheduler.error",
                                                             "task": task.name})
                continue
            if ran[task.name]:
                log.info("periodic task ran", extra={"action": f"scheduler.{task.name}",
                                                     "enqueued": ran[task.name]})
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


def sweep_stranded(db: Database) -> Callable[[datetime], int]:
    """Appointments out of sync with no converge job waiting or running get one.

    A safety net: a job is always written with its appointment, but an admin's
    database restore or a bug must not leave an appointment stranded.
    """

    def run(now: datetime) -> int:
        waiting = Job.select(SQL("1")).where(
            (Job.serial_key == Value("appointment:").concat(Appointment.id))
            & (Job.status.in_(["queued", "running"])))
        stranded = (Appointment.select(Appointment.id, Appointment.account)
                    .where(((Appointment.sync_state.in_(["pending", "retrying"]))
                            | (Appointment.synced_version < Appointment.desired_version))
                           & ~fn.EXISTS(waiting))
                    .limit(SWEEP_BATCH))
        count = 0
        for row in stranded:
            queue.enqueue_converge(db, row.id, row.account_id, now=now)
            count += 1
        return count

    return run


def refresh_all_event_types(db: Database) -> Callable[[datetime], int]:
    def run(now: datetime) -> int:
        count = 0
        for account in Account.select(Account.id):
            queue.enqueue_event_type_refresh(db, account.id, now=now)
            count += 1
        return count

    return run
