"""What bounding connections costs: a bare endpoint under uvicorn's httptools protocol and under
calsync's bounded one (connector/http_limits.py), same run, same load.

Each server runs in its own process (1 worker, access log off) on 127.0.0.1; wrk loads it with
keep-alive connections. Printed: requests/s of each and the ratio bounded ÷ plain.

    .venv/bin/python bench/http_limits.py [--seconds 5] [--connections 32]

Needs wrk (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from connector.http_limits import ConnectionLimits, bounded_protocol


async def ok(request):
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/ok", ok)])
http = bounded_protocol(ConnectionLimits()) if sys.argv[2] == "bounded" else "httptools"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http=http, access_log=False,
            log_level="warning", timeout_keep_alive=5)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(kind: str, seconds: int, connections: int) -> float:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), kind],
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        done = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s",
                               f"http://127.0.0.1:{port}/ok"], capture_output=True, text=True, check=True)
        return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/http_limits.py needs wrk: apt-get install -y wrk")
    plain = measure("plain", args.seconds, args.connections)
    bounded = measure("bounded", args.seconds, args.connections)
    print(f"http_limits: wrk -t2 -c{args.connections} -d{args.seconds}s, bare endpoint, 1 uvicorn worker, "
          f"access log off")
    print(f"  uvicorn httptools      {plain:>9,.0f} requests/s")
    print(f"  calsync bounded        {bounded:>9,.0f} requests/s   bounded ÷ plain {bounded / plain:.3f}")


if __name__ == "__main__":
    main()
