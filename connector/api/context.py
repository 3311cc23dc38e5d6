"""What every API resource needs, handed in by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from peewee import Database

from connector.clock import Clock
from connector.settings import Settings


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    clock: Clock
    db: Database
    wake_worker: Callable[[], None] = field(default=lambda: None)
