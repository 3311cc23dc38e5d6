"""Fault switches per sandbox endpoint: latency, 5xx rate, and "commit then drop the answer".

Endpoints are named as ``"POST /v2/bookings"``, ``"GET /v2/bookings/{uid}"`` …, or
``"*"`` for all. Rates draw from a seeded generator, so a run is repeatable;
``*_next`` counters hit the next N calls exactly.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class FaultRule:
    latency_ms: int = 0
    error_rate: float = 0.0  # answer 503 without doing anything
    drop_rate: float = 0.0  # do the work, commit it, then drop the connection
    rate_limit_rate: float = 0.0  # answer 429 and block the caller's key, as Cal.com's throttler
    error_next: int = 0
    drop_next: int = 0
    rate_limit_next: int = 0

    @classmethod
    def from_json(cls, value: Any) -> FaultRule:
        if not isinstance(value, dict):
            raise ValueError("a fault rule must be an object")
        known = {f.name: f for f in fields(cls)}
        unknown = set(value) - set(known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        rule = cls(**value)
        for name in ("error_rate", "drop_rate", "rate_limit_rate"):
            rate = getattr(rule, name)
            if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if rule.error_rate + rule.drop_rate + rule.rate_limit_rate > 1:
            raise ValueError("error_rate + drop_rate + rate_limit_rate must not exceed 1")
        for name in ("latency_ms", "error_next", "drop_next", "rate_limit_next"):
            count = getattr(rule, name)
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more")
        return rule


@dataclass(frozen=True)
class Fault:
    latency_seconds: float = 0.0
    error: bool = False
    drop: bool = False
    rate_limit: bool = False


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = {"error": 0, "drop": 0, "rate_limit": 0}

    def set(self, endpoint: str, rule: FaultRule) -> None:
        with self._lock:
            self._rules[endpoint] = rule

    def clear(self, seed: int | None = None) -> None:
        with self._lock:
            self._rules.clear()
            if seed is not None:
                self._rng.seed(seed)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: asdict(rule) for name, rule in self._rules.items()}

    def draw(self, endpoint: str) -> Fault:
        with self._lock:
            rule = self._rules.get(endpoint) or self._rules.get("*")
            if rule is None:
                return Fault()
            kind = None
            for name in ("error", "drop", "rate_limit"):
                if getattr(rule, f"{name}_next") > 0:
                    setattr(rule, f"{name}_next", getattr(rule, f"{name}_next") - 1)
                    kind = name
                    break
            else:
                roll = self._rng.random()
                threshold = 0.0
                for name in ("error", "drop", "rate_limit"):
                    threshold += getattr(rule, f"{name}_rate")
                    if roll < threshold:
                        kind = name
                        break
            if kind is not None:
                self.injected[kind] += 1
            return Fault(rule.latency_ms / 1000, kind == "error", kind == "drop", kind == "rate_limit")
