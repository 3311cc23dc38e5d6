"""``Prefer: wait=N`` (RFC 7240): answer once the appointment is synced or failed, or after N s.

The wait is woken when a job finishes (connector/jobs/settled.py) and looks at the
database again, without blocking the event loop; a slow poll remains for what no signal
reaches; N is capped at 30 seconds. A ``wait`` whose
value is not a whole number is refused (422 naming ``Prefer``) before anything is
written; other preferences are ignored, as RFC 7240 asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from connector import errors
from connector.api.context import ApiContext
from mappings.db import session
from mappings.models import Appointment

MAX_WAIT_SECONDS = 30
FALLBACK_POLL_SECONDS = 0.5
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?([^\",;\s]*)\"?", re.IGNORECASE)
_SECONDS = re.compile(r"[0-9]+")  # ASCII digits: "\d" would take "٣"


def requested_wait(request: Request) -> int | None:
    """Seconds asked for by ``Prefer: wait=N``, capped at 30; None when no wait is asked."""
    for header in request.headers.getlist("prefer"):
        match = _WAIT.search(header)
        if match:
            value = match.group(1)
            if not _SECONDS.fullmatch(value):
                raise errors.ValidationFailed.one(
                    "Prefer", "wait must be a whole number of seconds, e.g. 'Prefer: wait=10'")
            digits = value.lstrip("0")
            return MAX_WAIT_SECONDS if len(digits) > 2 else min(int(digits or "0"), MAX_WAIT_SECONDS)
    return None


def _settled(ctx: ApiContext, appointment_id: str) -> bool:
    with session(ctx.db):
        row = Appointment.get_by_id(appointment_id)
    caught_up = row.synced_version >= row.desired_version
    return row.sync_state == "dead" or (caught_up and row.sync_state == "synced")


async def until_settled(ctx: ApiContext, appointment_id: str, seconds: int) -> None:
    """Return when the appointment's current version is synced (or failed, or dead), or in time.

    Woken when a job finishes (jobs/settled.py: in this process, or any on PostgreSQL); a poll
    with growing pauses stays as the fallback for what no signal reaches."""
    deadline = time.monotonic() + seconds
    if ctx.run_now is not None:
        # The change's converge is queued and committed: do it here rather than wait for a worker
        # thread to wake, claim it and do it (another process's worker may have taken it: then wait).
        await run_in_threadpool(ctx.run_now, f"converge:{appointment_id}")
    if ctx.settled is None:
        pause = 0.02
        while time.monotonic() < deadline:
            if await run_in_threadpool(_settled, ctx, appointment_id):
                return
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 0.25)
        return
    with ctx.settled.watching() as woken:
        while time.monotonic() < deadline:
            woken.clear()
            if await run_in_threadpool(_settled, ctx, appointment_id):
                return
            with contextlib.suppress(TimeoutError):  # the fallback poll, for what no signal reaches
                await asyncio.wait_for(woken.wait(), min(FALLBACK_POLL_SECONDS,
                                                         max(deadline - time.monotonic(), 0)))
