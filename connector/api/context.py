"""What every API resource needs, handed in by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from peewee import Database

from connector.clock import Clock
from connector.settings import Settings

if TYPE_CHECKING:
    from connector.calcom.clients import CalcomClients
    from connector.core.reconcile import Reconciler
    from connector.core.slots import SlotCache
    from connector.jobs.settled import Settled


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    clock: Clock
    db: Database
    clients: CalcomClients
    reconciler: Reconciler
    slot_cache: SlotCache
    wake_worker: Callable[[], None] = field(default=lambda: None)
    settled: Settled | None = None  # wakes Prefer: wait the moment a job finishes
    # Runs a queued job in the calling thread (a worker runs in this process); False: not taken.
    run_now: Callable[[str], bool] | None = None
