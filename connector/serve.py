"""Running calsync as a process: the API with worker and scheduler, workers alone, the sandbox alone."""

from __future__ import annotations

import gc
import ipaddress
import logging
import signal
import threading
from typing import Any

import uvicorn
from peewee import Database

from connector.app import build_runtime, create_app
from connector.clock import SystemClock
from connector.http_limits import ConnectionLimits, bounded_protocol
from connector.sandbox.app import create_sandbox
from connector.settings import Settings
from mappings.db import redact_url, session
from mappings.models import Account

log = logging.getLogger("calsync.serve")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def sandbox_plan(settings: Settings) -> tuple[str | None, bool]:
    """Where accounts find the sandbox (None: nowhere), and whether ``serve`` mounts it itself.

    ``serve`` mounts it under /sandbox only on a loopback address, unless ``sandbox.mode`` is
    ``on``: bound to a public address it would hand a fake Cal.com to anyone who can reach the
    port. A sandbox elsewhere (``sandbox.url``) is the operator's to place.
    """
    mode, host = settings.sandbox.mode, settings.server.host
    if mode == "off":
        return None, False
    if settings.sandbox.url:
        return settings.sandbox.url, False
    if not is_loopback(host) and mode != "on":
        return None, False
    local = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    local = f"[{local.strip('[]')}]" if ":" in local else local
    return f"http://{local}:{settings.server.port}/sandbox", True


def _warn_about_the_sandbox(settings: Settings, embedded: bool) -> None:
    host = settings.server.host
    if is_loopback(host) or settings.sandbox.mode == "off" or settings.sandbox.url:
        return
    if embedded:
        log.warning(
            f"THE CAL.COM SANDBOX IS MOUNTED ON {host}, NOT LOOPBACK (sandbox.mode = \"on\"): anyone who "
            "can reach this port can use its fake Cal.com API. Set sandbox.mode = \"auto\" to keep it "
            "off a public address.", extra={"action": "serve.sandbox_exposed", "host": host})
    else:
        log.warning(
            f"the Cal.com sandbox is not mounted: calsync serves on {host}, not loopback. Accounts "
            "without a Cal.com API key fail until they have one; set sandbox.mode = \"on\" to mount "
            "it anyway.", extra={"action": "serve.sandbox_not_mounted", "host": host})


def _announce(settings: Settings, db: Database, sandbox_url: str | None, embedded: bool) -> None:
    if not settings.security.secret_key:
        log.warning("CALSYNC_SECRET_KEY is not set: Cal.com keys and secrets are stored unencrypted",
                    extra={"action": "serve.insecure"})
    with session(db):
        total = Account.select().count()
        keyless = Account.select().where(Account.calcom_api_key.is_null()).count()
    if sandbox_url is not None:
        using = total if settings.sandbox.mode == "on" else keyless
        where = "built in" if embedded else "external"
        log.warning(
            f"Cal.com sandbox ({where}) at {sandbox_url}: {using} of {total} accounts use it instead of "
            "Cal.com (accounts with no Cal.com API key). Its bookings live in memory and vanish on restart.",
            extra={"action": "serve.sandbox", "sandbox_url": sandbox_url})
    if total == 0:
        log.warning("no accounts yet: create one with "
                    "'.venv/bin/calsync accounts create --name demo --event-type-id 123456'",
                    extra={"action": "serve.no_accounts"})


def server_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn as calsync runs it: bounded headers, idle and stalled time, connections (config
    [server]); the access log as the settings say."""
    server = settings.server
    limits = ConnectionLimits(max_header_bytes=server.max_header_bytes, max_headers=server.max_headers,
                              keep_alive_seconds=server.keep_alive_seconds,
                              request_timeout_seconds=server.request_timeout_seconds)
    return uvicorn.Config(app, host=host, port=port, http=bounded_protocol(limits),
                          # Annotated int, used as a float (loop.call_later): tests idle for 0.5 s.
                          timeout_keep_alive=server.keep_alive_seconds,  # type: ignore[arg-type]
                          limit_concurrency=server.max_connections, access_log=server.access_log,
                          log_config=None, lifespan="on")


def freeze_startup_heap() -> None:
    """Put what start-up made (modules, the app, its routes, models and schemas) out of the
    garbage collector's reach, once it is all made.

    A full collection walks every tracked object: once in a webhook ingest run it stalled the
    process for 71 ms, and every delivery that came meanwhile waited (p99 7–29 ms at half the bare
    endpoint's rate; 5.5 ms frozen, docs/benchmarks.md). What is made later is collected as usual.
    """
    gc.collect()  # what is garbage now is not kept forever
    gc.freeze()


def serve(settings: Settings, db: Database) -> None:
    clock = SystemClock()
    host, port = settings.server.host, settings.server.port
    sandbox_url, embedded = sandbox_plan(settings)
    sandbox = create_sandbox(clock, settings.sandbox) if embedded else None
    _warn_about_the_sandbox(settings, embedded)
    log.info(f"calsync serving on http://{host}:{port} (database {redact_url(settings.database.url)})",
             extra={"action": "serve.start", "host": host, "port": port})
    _announce(settings, db, sandbox_url, embedded=sandbox is not None)
    log.info(f"operator console on http://{host}:{port}/console (sign in with a calsync token)"
             + ("" if settings.security.secret_key else
                "; without CALSYNC_SECRET_KEY its sessions end when calsync restarts"),
             extra={"action": "serve.console", "url": f"http://{host}:{port}/console"})
    runtime = build_runtime(settings, clock=clock, db=db, sandbox=sandbox, sandbox_url=sandbox_url)
    app = create_app(settings, runtime=runtime, run_background=True)
    freeze_startup_heap()
    uvicorn.Server(server_config(app, settings, host, port)).run()


def run_worker(settings: Settings, db: Database) -> None:
    """Workers and the scheduler, no API; stops cleanly on SIGINT/SIGTERM."""
    # A worker has no HTTP server to embed a sandbox in: only an external one (sandbox.url) serves.
    sandbox_url = (settings.sandbox.url or None) if settings.sandbox.mode != "off" else None
    _announce(settings, db, sandbox_url, embedded=False)
    runtime = build_runtime(settings, db=db, sandbox_url=sandbox_url)
    freeze_startup_heap()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    runtime.start_background()
    log.info("worker running", extra={"action": "worker.run",
                                      "concurrency": settings.worker.concurrency})
    try:
        stop.wait()
    finally:
        runtime.close()


def run_sandbox(settings: Settings, host: str, port: int) -> None:
    sandbox = create_sandbox(SystemClock(), settings.sandbox)
    log.info(f"Cal.com sandbox on http://{host}:{port} (API under /v2, controls under /_sandbox)",
             extra={"action": "sandbox.start"})
    uvicorn.Server(server_config(sandbox.app, settings, host, port)).run()
