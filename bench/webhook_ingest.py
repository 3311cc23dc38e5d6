"""Signed Cal.com deliveries stored per second by calsync, against a bare Starlette endpoint.

Both run under uvicorn in their own process (1 worker, access log off) on
127.0.0.1, loaded by the same wrk run settings in the same run. calsync verifies
each signature, dedupes, and commits the delivery row (the worker is off: this
measures ingest; the row is the queue entry, its apply job is made later by the
dispatcher). Each request is a distinct BOOKING_CREATED body, so none takes the
cheap duplicate path; calsync's figure counts the rows it stored.

    .venv/bin/python bench/webhook_ingest.py [--seconds 6] [--connections 32] [--postgres URL]

Needs wrk (Debian: apt-get install wrk). Prints stored/s, the bare endpoint's
requests/s, their ratio, and p50/p99 latency of each; p50/p99 of calsync under a
paced load at half the bare endpoint's rate and at half its own; and, as a
ceiling, calsync's receiver with the write taken out (verify, parse, answer).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-webhook-secret-0123456789"
LUA = r"""
local requests = {}
local i = 0
local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end
function init(args)
  for line in io.lines(args[1]) do
    local signature, body = line:match("([^\t]+)\t(.*)")
    requests[#requests + 1] = wrk.format("POST", args[2], {
      ["Content-Type"] = "application/json", ["X-Cal-Signature-256"] = signature}, body)
  end
  -- each thread walks its own slice, so no body is sent twice while the slices last
  i = math.floor(#requests / 2) * (index or 0)
end
function request()
  i = i % #requests + 1
  return requests[i]
end
local pause = tonumber(os.getenv("BENCH_PAUSE_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end
"""

# --- the two servers (imported by uvicorn in a subprocess) ----------------------------


def bare_app():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request):
        await request.body()
        return Response(b'{"status":"accepted"}', media_type="application/json")

    return Starlette(routes=[Route("/webhooks/calcom/{account_id}", hook, methods=["POST"])])


def calsync_app():
    from connector.app import create_app
    from connector.settings import Settings

    settings = Settings().replace(database={"url": os.environ["BENCH_DATABASE_URL"]},
                                  sandbox={"mode": "off"}, scheduler={"enabled": False},
                                  log={"level": "warning"})
    from connector import logs
    from connector.serve import freeze_startup_heap

    logs.configure("warning", "json")
    app = create_app(settings, run_background=False)
    freeze_startup_heap()  # as calsync serve does
    return app


def calsync_storing_nothing_app():
    """calsync's receiver with the write taken out: what the checks before it cost."""
    from webhooks.calcom import Receipt

    app = calsync_app()

    async def store_nothing(account_id, event, raw_body, now):
        return Receipt("accepted", 0)

    app.state.runtime.ingest.store = store_nothing
    return app


# --- the harness ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(factory: str, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"webhook_ingest:{factory}", "--factory", "--app-dir",
         str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--no-access-log", "--log-level", "warning"],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{factory} did not start: {process.stderr.read().decode()[-2000:]}")


def wrk(port: int, path: str, requests_file: Path, seconds: int, connections: int,
        pause_ms: float = 0) -> dict:
    """wrk's figures; with ``pause_ms`` each connection waits that long before each request
    (a paced load, for latency at a given rate rather than at saturation)."""
    script = requests_file.with_suffix(".lua")
    script.write_text(LUA)
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}{path}", "--", str(requests_file), path],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
        env={**os.environ, "BENCH_PAUSE_MS": str(int(pause_ms))})
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def percentile(label: str) -> str:
        match = re.search(rf"\s{label}%\s+([\d.]+\w+)", out)
        return match.group(1) if match else "?"

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "total": total, "p50": percentile("50"), "p99": percentile("99"),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def paced(port: int, path: str, requests_file: Path, seconds: int, rate: float) -> dict:
    """wrk at about ``rate`` requests/s: 64 connections, each pausing so that pause plus answer
    spans 64/rate; the pause is set from a short first run's median answer time."""
    connections = 64
    interval_ms = connections / rate * 1000
    trial = wrk(port, path, requests_file, 2, connections, pause_ms=interval_ms)
    answer_ms = _milliseconds(trial["p50"])
    return wrk(port, path, requests_file, seconds, connections, pause_ms=max(interval_ms - answer_ms, 0))


def _milliseconds(figure: str) -> float:
    value = float(re.match(r"[\d.]+", figure).group(0))
    return value / 1000 if figure.endswith("us") else value * 1000 if figure.endswith("s") and not figure.endswith("ms") else value


def make_bodies(path: Path, count: int, first: int = 0) -> Path:
    """``count`` signed bodies, each of its own booking, numbered from ``first``."""
    template = json.loads((ROOT / "tests" / "fixtures" / "webhook_booking_created.json").read_text())
    with path.open("w") as out:
        for index in range(first, first + count):
            body = copy.deepcopy(template)
            body["payload"]["uid"] = f"bench{index:017d}"
            body["payload"]["bookingId"] = 10_000_000 + index
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            out.write(f"{signature}\t{raw.decode()}\n")
    return path


@contextlib.contextmanager
def bench_database(folder: str, postgres_url: str | None) -> Iterator[str]:
    """A new SQLite file, or a new database on the PostgreSQL server named (dropped after)."""
    if postgres_url is None:
        yield f"sqlite:///{folder}/bench.db"
        return
    import psycopg2

    name = f"calsync_bench_ingest_{os.getpid()}"
    parts = urlsplit(postgres_url)
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bodies", type=int, default=80_000, help="distinct signed bodies per run")
    parser.add_argument("--postgres", metavar="URL", help="store in a new database on this server "
                        "(e.g. postgresql://postgres@127.0.0.1:5432/postgres) instead of SQLite")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("webhook_ingest needs wrk on PATH (Debian: apt-get install wrk)")

    from connector.clock import SystemClock
    from connector.core import accounts
    from mappings.db import open_database, session
    from mappings.migrations import migrate
    from mappings.models import WebhookDelivery
    from mappings.sealing import Sealer

    with tempfile.TemporaryDirectory() as folder, bench_database(folder, args.postgres) as url:
        # Each calsync run gets bodies of its own: a body seen before takes the cheap duplicate path.
        bodies, half_bare, half_own = (make_bodies(Path(folder) / f"{name}.tsv", args.bodies, n * args.bodies)
                                       for n, name in enumerate(("bodies", "half_bare", "half_own")))
        db = open_database(url)
        with session(db):
            migrate(db, SystemClock().now())
            account, _ = accounts.create_account(
                db, accounts.AccountChanges(name="bench", calcom_webhook_secrets=(SECRET,)),
                Sealer(None), now=SystemClock().now())

        def stored() -> int:
            with session(db):
                return WebhookDelivery.select().count()

        path = f"/webhooks/calcom/{account.id}"
        engine = "PostgreSQL" if args.postgres else "SQLite (WAL)"
        print(f"webhook_ingest: wrk -t2 -c{args.connections} -d{args.seconds}s, uvicorn 1 worker, "
              f"access log off, {engine}, {args.bodies} distinct signed BOOKING_CREATED bodies "
              f"of ~{bodies.stat().st_size // args.bodies} bytes, {os.cpu_count()} CPUs shared with wrk")
        env = {"BENCH_DATABASE_URL": url}
        process, port = serve("bare_app", {})
        try:
            bare = wrk(port, path, bodies, args.seconds, args.connections)
        finally:
            process.terminate()
            process.wait(timeout=20)
        process, port = serve("calsync_app", env)
        try:
            before = stored()
            ours = wrk(port, path, bodies, args.seconds, args.connections)
            stored_rate = (stored() - before) / args.seconds
            # Latency below saturation: at half the bare endpoint's rate (the target), and at half
            # calsync's own (its headroom), each a paced load on fresh bodies.
            at_half_bare = paced(port, path, half_bare, args.seconds, bare["rate"] / 2)
            at_half_own = paced(port, path, half_own, args.seconds, stored_rate / 2)
        finally:
            process.terminate()
            process.wait(timeout=20)
        process, port = serve("calsync_storing_nothing_app", env)
        try:
            ceiling = wrk(port, path, bodies, args.seconds, args.connections)
        finally:
            process.terminate()
            process.wait(timeout=20)
        db.close()
    print(f"  bare Starlette: {bare['rate']:.0f} requests/s; p50 {bare['p50']}, p99 {bare['p99']}")
    print(f"  calsync:        {stored_rate:.0f} deliveries stored/s (wrk saw {ours['rate']:.0f}/s, "
          f"{ours['non_2xx']} non-2xx); p50 {ours['p50']}, p99 {ours['p99']}")
    print(f"  ratio (calsync stored/s ÷ bare requests/s): {stored_rate / bare['rate']:.2f}")
    for label, run in (("half the bare rate", at_half_bare), ("half its own rate", at_half_own)):
        print(f"  paced at {label}: {run['rate']:.0f}/s answered, p50 {run['p50']}, p99 {run['p99']}, "
              f"{run['non_2xx']} non-2xx")
    print(f"  ceiling: calsync's receiver storing nothing answers {ceiling['rate']:.0f}/s "
          f"(p50 {ceiling['p50']}, p99 {ceiling['p99']}), {ceiling['rate'] / bare['rate']:.2f} of bare")


if __name__ == "__main__":
    main()
