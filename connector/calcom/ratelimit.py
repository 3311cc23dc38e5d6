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
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector import errors, metrics
from connector.calcom.responses import RateLimitInfo
from connector.clock import Clock

MARGIN = 0.02  # of the window, for the request's travel time to Cal.com's clock


@dataclass
class _AccountState:
    limit: int
    sent: deque[datetime] = field(default_factory=deque)
    paused_until: datetime | None = None


class RateLimiter:
    def __init__(self, clock: Clock, *, limit: int = 120, window_seconds: float = 60.0,
                 max_wait_seconds: float = 2.0) -> None:
        self.clock = clock
        self.default_limit = limit
        self.window = timedelta(seconds=window_seconds * (1 + MARGIN))
        self.max_wait = max_wait_seconds
        self._states: dict[str, _AccountState] = {}
        self._lock = threading.Lock()

    def _state(self, account_id: str) -> _AccountState:
        state = self._states.get(account_id)
        if state is None:
            state = self._states[account_id] = _AccountState(limit=self.default_limit)
        return state

    def acquire(self, account_id: str, *, patient: bool = False) -> None:
        """Take a slot for one request now, waiting up to ``max_wait_seconds`` for it (as long
        as it takes when ``patient``: a caller that has no queue to go back to)."""
        while True:
            with self._lock:
                now = self.clock.now()
                state = self._state(account_id)
                while state.sent and state.sent[0] <= now - self.window:
                    state.sent.popleft()
                wait_until = None
                if state.paused_until is not None and now < state.paused_until:
                    wait_until = state.paused_until
                elif len(state.sent) >= state.limit:
                    wait_until = state.sent[len(state.sent) - state.limit] + self.window
                if wait_until is None:
                    state.sent.append(now)
                    return
                wait = (wait_until - now).total_seconds()
            if wait > self.max_wait and not patient:
                metrics.rate_limit_waits.labels("deferred").inc()
                raise errors.RateLimitDeferred(
                    f"held back {wait:.1f}s to stay within Cal.com's rate limit", retry_after=wait)
            metrics.rate_limit_waits.labels("waited").inc()
            metrics.rate_limit_wait_seconds.inc(wait)
            self.clock.sleep(wait)

    def headroom(self, account_id: str) -> tuple[int, int, datetime | None]:
        """Calls left in the window now, the window's limit, and a pause Cal.com asked for."""
        with self._lock:
            now = self.clock.now()
            state = self._state(account_id)
            used = sum(1 for sent in state.sent if sent > now - self.window)
            paused = state.paused_until if state.paused_until and state.paused_until > now else None
            return max(0, state.limit - used), state.limit, paused

    def observe(self, account_id: str, info: RateLimitInfo) -> None:
        """Learn from Cal.com's headers: its limit, and a pause when nothing remains."""
        with self._lock:
            state = self._state(account_id)
            if info.limit:
                state.limit = min(info.limit, self.default_limit)
            if info.remaining is not None and info.remaining <= 0 and info.reset_seconds:
                until = self.clock.now() + timedelta(seconds=info.reset_seconds)
                if state.paused_until is None or until > state.paused_until:
                    state.paused_until = until
