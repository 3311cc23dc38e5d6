"""Real HTTP servers on 127.0.0.1 (never any other address) for integration tests."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn


class ServerThread:
    """Serve an ASGI app with uvicorn in a thread on a free loopback port."""

    def __init__(self, app, settings=None) -> None:
        """``settings``: run it as ``calsync serve`` would (connector/serve.server_config)."""
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if settings is None:
            config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        else:
            from connector.serve import server_config

            config = server_config(app, settings, "127.0.0.1", self.port)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.socket.close()


def wait_for(check, *, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``check`` until it returns a truthy value; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, **kwargs):
    return httpx.get(url, timeout=5, **kwargs).json()
