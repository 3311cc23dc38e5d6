"""Client-side rate limiting per account, so bulk work spends Cal.com's allowance without 429s.

Cal.com allows an API key 120 requests a minute in a fixed window, then blocks it
for 60 s, and sends no Retry-After (REFERENCE §4). calsync therefore:

- keeps a sliding window of its own requests per account (any window of
  ``window`` seconds holds at most ``limit`` of them, so no fixed window of
  Cal.com's can hold more), widened by a small margin for network delay;
- trusts the ``X-RateLimit-Remaining-*``/``Reset-*`` headers of every answer: at 0
  remaining, or after a 429, the account pauses until the reset;
- waits briefly in the caller when the next slot is near, and otherwise raises
  ``RateLimitDeferred`` so the job goes back to the queue until then.

The allowance belongs to the Cal.com key, not to a process: with several ``serve`` and
``worker`` processes on one database the window lives in a row per key (``rate_window``),
read and written under that row's lock (``DatabaseWindows``), so a new or restarted
process does not start with a fresh allowance. ``MemoryWindows`` keeps it in the process
(one process, or a test).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from peewee import Database, IntegrityError, Node

from connector import errors, metrics
from connector.calcom.responses import RateLimitInfo
from connector.clock import Clock
from mappings.db import database, is_postgres, session, write_transaction
from mappings.models import RateWindow
from mappings.prepared import Prepared

MARGIN = 0.02  # of the window, for the request's travel time to Cal.com's clock


@dataclass
class WindowState:
    """One key's allowance: its limit, the times (epoch seconds) of its requests still in the
    window, and a pause Cal.com asked for."""

    limit: int
    sent: list[float] = field(default_factory=list)
    paused_until: float | None = None


class Windows(Protocol):
    def locked(self, bucket: str, default_limit: int) -> contextlib.AbstractContextManager[WindowState]: ...


class MemoryWindows:
    """The allowance in this process's memory."""

    def __init__(self) -> None:
        self._states: dict[str, WindowState] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self, bucket: str, default_limit: int) -> Iterator[WindowState]:
        with self._lock:
            yield self._states.setdefault(bucket, WindowState(default_limit))


class DatabaseWindows:
    """The allowance in the database, shared by every process: one row per key, changed in a
    write transaction that holds its lock (``FOR UPDATE`` on PostgreSQL; SQLite's write lock)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextlib.contextmanager
    def locked(self, bucket: str, default_limit: int) -> Iterator[WindowState]:
        with session(self.db), write_transaction(self.db):
            row = self._row(bucket, default_limit)
            state = WindowState(row.limit, list(row.sent or []), row.paused_until)
            yield state
            RateWindow.update_by_id(bucket, limit=state.limit, sent=state.sent,
                                    paused_until=state.paused_until)

    def _row(self, bucket: str, default_limit: int) -> RateWindow:
        row = _LOCKED_ROW.first(bucket=bucket)
        if row is not None:
            return row
        try:
            with self.db.atomic():  # a savepoint: another process may create it at the same moment
                RateWindow.create(bucket=bucket, limit=default_limit, sent=[], paused_until=None)
        except IntegrityError:
            pass
        found = _LOCKED_ROW.first(bucket=bucket)
        if found is None:
            raise RuntimeError(f"the rate window {bucket!r} is missing right after it was made")
        return found


def _locked_row(slot: Callable[..., Node]) -> Any:
    query = RateWindow.select().where(RateWindow.bucket == slot("bucket")).limit(1)
    return query.for_update() if is_postgres(database) else query  # built per engine


_LOCKED_ROW: Prepared[RateWindow] = Prepared(_locked_row)


class RateLimiter:
    def __init__(self, clock: Clock, *, limit: int = 120, window_seconds: float = 60.0,
                 max_wait_seconds: float = 2.0, windows: Windows | None = None) -> None:
        self.clock = clock
        self.default_limit = limit
        self.window = window_seconds * (1 + MARGIN)
        self.max_wait = max_wait_seconds
        self.windows: Windows = windows or MemoryWindows()
        self._limits: dict[str, int] = {}  # the limit last learned per key: unchanged, nothing to write

    def acquire(self, bucket: str, *, patient: bool = False) -> None:
        """Take a slot for one request to the key ``bucket`` names now, waiting up to
        ``max_wait_seconds`` for it (as long as it takes when ``patient``: a caller that has no
        queue to go back to)."""
        while True:
            with self.windows.locked(bucket, self.default_limit) as state:
                now = self.clock.now().timestamp()
                state.sent = [sent for sent in state.sent if sent > now - self.window]
                wait_until = None
                if state.paused_until is not None and now < state.paused_until:
                    wait_until = state.paused_until
                elif len(state.sent) >= state.limit:
                    wait_until = sorted(state.sent)[len(state.sent) - state.limit] + self.window
                if wait_until is None:
                    state.sent.append(now)
                    return
                wait = wait_until - now
            if wait > self.max_wait and not patient:
                metrics.rate_limit_waits.labels("deferred").inc()
                raise errors.RateLimitDeferred(
                    f"held back {wait:.1f}s to stay within Cal.com's rate limit", retry_after=wait)
            metrics.rate_limit_waits.labels("waited").inc()
            metrics.rate_limit_wait_seconds.inc(wait)
            self.clock.sleep(wait)

    def headroom(self, bucket: str) -> tuple[int, int, datetime | None]:
        """Calls left in the window now, the window's limit, and a pause Cal.com asked for."""
        with self.windows.locked(bucket, self.default_limit) as state:
            now = self.clock.now().timestamp()
            used = sum(1 for sent in state.sent if sent > now - self.window)
            paused = (datetime.fromtimestamp(state.paused_until, UTC)
                      if state.paused_until and state.paused_until > now else None)
            return max(0, state.limit - used), state.limit, paused

    def observe(self, bucket: str, info: RateLimitInfo) -> None:
        """Learn from Cal.com's headers: its limit, and a pause when nothing remains."""
        limit = min(info.limit, self.default_limit) if info.limit else None
        exhausted = info.remaining is not None and info.remaining <= 0 and bool(info.reset_seconds)
        if not exhausted and (limit is None or self._limits.get(bucket) == limit):
            return  # nothing new: no lock taken, nothing written
        with self.windows.locked(bucket, self.default_limit) as state:
            if limit is not None:
                state.limit = self._limits[bucket] = limit
            if info.remaining is not None and info.remaining <= 0 and info.reset_seconds:
                until = (self.clock.now() + timedelta(seconds=info.reset_seconds)).timestamp()
                if state.paused_until is None or until > state.paused_until:
                    state.paused_until = until
