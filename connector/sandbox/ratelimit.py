"""Cal.com's throttler as the sandbox plays it (REFERENCE §4).

A fixed window per tracker (the API key's hash, else the client address); once
the count passes the limit the tracker is blocked for ``block_seconds`` and every
request in the block is refused. Every ``/v2`` answer carries
``X-RateLimit-{Limit,Remaining,Reset}-Default``; there is no ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.clock import Clock


@dataclass
class _Window:
    started: datetime
    count: int = 0
    blocked_until: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit-default", str(self.limit).encode()),
            (b"x-ratelimit-remaining-default", str(self.remaining).encode()),
            (b"x-ratelimit-reset-default", str(self.reset_seconds).encode()),
        ]


class Throttler:
    def __init__(self, clock: Clock, limit: int = 120, window_seconds: int = 60,
                 block_seconds: int = 60) -> None:
        self.clock = clock
        self.limit = limit
        self.window = timedelta(seconds=window_seconds)
        self.block_duration = timedelta(seconds=block_seconds)
        self.enabled = True
        self.refused = 0
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def configure(self, *, limit: int | None = None, window_seconds: int | None = None,
                  block_seconds: int | None = None, enabled: bool | None = None) -> None:
        with self._lock:
            if limit is not None:
                self.limit = limit
            if window_seconds is not None:
                self.window = timedelta(seconds=window_seconds)
            if block_seconds is not None:
                self.block_duration = timedelta(seconds=block_seconds)
            if enabled is not None:
                self.enabled = enabled
            self._windows.clear()

    @staticmethod
    def tracker(authorization: str | None, client_host: str | None) -> str:
        if authorization and authorization.lower().startswith("bearer cal_"):
            return "key:" + hashlib.sha256(authorization[7:].encode()).hexdigest()
        return f"ip:{client_host or 'unknown'}"

    def block(self, tracker: str) -> Verdict:
        """Block a tracker now, as if it had just gone over the limit (the 429 fault switch)."""
        now = self.clock.now()
        with self._lock:
            window = self._windows.setdefault(tracker, _Window(started=now))
            window.blocked_until = now + (self.block_duration or self.window)
            self.refused += 1
            return Verdict(False, self.limit, 0, _ceil(window.blocked_until - now))

    def hit(self, tracker: str) -> Verdict:
        now = self.clock.now()
        with self._lock:
            if not self.enabled:
                return Verdict(True, self.limit, self.limit, int(self.window.total_seconds()))
            window = self._windows.get(tracker)
            if window is not None and window.blocked_until is not None:
                if now < window.blocked_until:
                    self.refused += 1
                    return Verdict(False, self.limit, 0, _ceil(window.blocked_until - now))
                window = None
            if window is None or now >= window.started + self.window:
                window = _Window(started=now)
                self._windows[tracker] = window
            window.count += 1
            if window.count > self.limit:
                self.refused += 1
                window.blocked_until = now + (self.block_duration or window.started + self.window - now)
                return Verdict(False, self.limit, 0, _ceil(window.blocked_until - now))
            return Verdict(True, self.limit, self.limit - window.count,
                           _ceil(window.started + self.window - now))


def _ceil(delta: timedelta) -> int:
    return max(0, math.ceil(delta.total_seconds()))
