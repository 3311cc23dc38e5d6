"""Connections and headers are bounded (config [server]), over real sockets on loopback."""

from __future__ import annotations

import socket
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connector.settings import Settings
from tests.support.servers import ServerThread

pytestmark = pytest.mark.integration

LIMITS = {"max_header_bytes": 2048, "max_headers": 20, "keep_alive_seconds": 0.5,
          "request_timeout_seconds": 0.5}
seen: list[str] = []


async def echo(request: Request) -> JSONResponse:
    try:
        body = await request.body()
    except Exception as exc:  # noqa: BLE001 — what the application sees of a stalled body
        seen.append(type(exc).__name__)
        raise
    return JSONResponse({"bytes": len(body)})


@pytest.fixture(scope="module")
def server():
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])
    with ServerThread(app, Settings().replace(server=LIMITS)) as running:
        yield running


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_an_ordinary_request_is_answered_and_the_connection_kept(server):
    with _connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_too_many_headers_are_a_431(server):
    with _connect(server) as sock:
        headers = b"".join(b"X-H%d: 1\r\n" % n for n in range(21))
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431") and b"application/problem+json" in answer


@pytest.mark.parametrize("trickle", [False, True])
def test_headers_larger_than_the_cap_are_a_431_whether_sent_at_once_or_bit_by_bit(server, trickle):
    with _connect(server) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(8 if trickle else 1):
            try:
                sock.sendall(b"a" * (400 if trickle else 5000))
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431")


def test_a_connection_that_says_nothing_is_closed_when_idle(server):
    with _connect(server) as sock:
        started = time.monotonic()
        assert _answer(sock) == b""
        assert time.monotonic() - started < 3


def test_a_request_whose_headers_stall_gets_a_408(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3


def test_a_body_that_stalls_closes_the_connection_and_the_app_sees_it_go(server):
    seen.clear()
    with _connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        started = time.monotonic()
        assert _answer(sock) == b""
        assert time.monotonic() - started < 3
    deadline = time.monotonic() + 3
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == ["ClientDisconnect"]


def test_a_keep_alive_connection_idle_between_requests_is_closed(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _answer(sock) == b""
        assert time.monotonic() - started < 3
