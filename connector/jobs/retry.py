"""Retry policy as data: (error, attempt) → a decision value; the worker carries it out.

Short in-call retries live in the Cal.com client (tenacity); this policy decides
the long ones, which go back to the queue with a growing, jittered ``run_at``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector import errors


@dataclass(frozen=True)
class RetryAt:
    at: datetime
    reason: str
    counts: bool = True  # False: the wait was not the job's failure (a rate-limit pause)


@dataclass(frozen=True)
class GiveUp:
    reason: str


Decision = RetryAt | GiveUp


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    jitter: float = 0.2  # ± this fraction of the delay

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``: base·2^(attempt−1), capped, jittered."""
        raw = min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        return raw * (1 + rng.uniform(-self.jitter, self.jitter))

    def decide(self, error: BaseException, attempt: int, now: datetime,
               rng: random.Random) -> Decision:
        reason = describe(error)
        if isinstance(error, errors.CalcomRateLimited):
            # Waiting out Cal.com's rate limit is not a failed attempt: come back at the reset,
            # spread a little so paused jobs do not return in one burst.
            wait = float(error.retry_after or self.base_seconds)
            return RetryAt(now + timedelta(seconds=wait * (1 + rng.uniform(0, self.jitter))),
                           reason, counts=False)
        if attempt >= self.max_attempts:
            return GiveUp(f"gave up after {attempt} attempts: {reason}")
        wait = self.delay(attempt, rng)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, float(retry_after))
        return RetryAt(now + timedelta(seconds=wait), reason)


def describe(error: BaseException) -> str:
    """A one-line, secret-free description of an error for ``last_error``."""
    if isinstance(error, errors.CalsyncError):
        prefix = type(error).__name__
        status = getattr(error, "status", None)
        if isinstance(error, errors.CalcomError) and status:
            prefix += f" ({status})"
        return f"{prefix}: {error.message}"
    return f"{type(error).__name__}: {error}"[:1000]
