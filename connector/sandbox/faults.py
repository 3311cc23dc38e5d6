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
    error_next: int = 0
    drop_next: int = 0

    @classmethod
    def from_json(cls, value: Any) -> FaultRule:
        if not isinstance(value, dict):
            raise ValueError("a fault rule must be an object")
        known = {f.name: f for f in fields(cls)}
        unknown = set(value) - set(known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        rule = cls(**value)
        for name in ("error_rate", "drop_rate"):
            rate = getattr(rule, name)
            if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("latency_ms", "error_next", "drop_next"):
            count = getattr(rule, name)
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more")
        return rule


@dataclass(frozen=True)
class Fault:
    latency_seconds: float = 0.0
    error: bool = False
    drop: bool = False


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = {"error": 0, "drop": 0}

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
            error = drop = False
            if rule.error_next > 0:
                rule.error_next -= 1
                error = True
            elif rule.drop_next > 0:
                rule.drop_next -= 1
                drop = True
            else:
                roll = self._rng.random()
                error = roll < rule.error_rate
                drop = not error and roll < rule.error_rate + rule.drop_rate
            if error:
                self.injected["error"] += 1
            if drop:
                self.injected["drop"] += 1
            return Fault(rule.latency_ms / 1000, error, drop)
