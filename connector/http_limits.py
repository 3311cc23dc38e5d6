"""Bounds on every connection uvicorn accepts: header size and count, idle and stalled time.

uvicorn's httptools protocol caps none of these: a client may send headers without
end, open a connection and say nothing, or start a request and stop halfway, each
holding a connection (and, for a body, an event-loop task) for as long as it likes.
``bounded_protocol(limits)`` is that protocol with them:

- the request line and headers together are at most ``max_header_bytes``, and at most
  ``max_headers`` of them: past either, 431 and the connection closes;
- a connection with no request in progress (new, or between keep-alive requests) is
  closed after ``keep_alive_seconds`` (uvicorn's own keep-alive timer, armed on open too);
- a request must arrive whole, headers and body, within ``request_timeout_seconds`` of its
  first byte: if its headers are still missing it gets 408, if its body stalls the
  connection closes and the application sees the client disconnect.

Deadlines are a number on each connection, checked by one sweep per server every
``SWEEP_SECONDS`` (a timer per request cost a bare endpoint up to 10 % of its throughput): a
request's deadline fires up to a sweep late.

What stays outside a process's reach (TLS handshakes, many connections from one
address, slow readers of an answer) is the reverse proxy's: docs/security.md.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

SWEEP_SECONDS = 0.25


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 16_384
    max_headers: int = 100
    keep_alive_seconds: float = 5.0
    request_timeout_seconds: float = 30.0


class _Refused(Exception):
    """Raised inside a parser callback; httptools turns it into a parser error."""


def _problem(status: int, title: str, detail: str) -> bytes:
    body = json.dumps({"type": f"/problems/{title.lower().replace(' ', '-')}", "title": title,
                       "status": status, "detail": detail}).encode()
    return (f"HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``limits`` (set on the subclass ``bounded_protocol`` makes)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._refusal: bytes | None = None
        self.deadline: float | None = None  # loop time by which the request in progress must be in

    # --- idle: a connection that has said nothing yet is as idle as one between requests --------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                            self.timeout_keep_alive_handler)
        _Sweeper.watch(self)

    # --- size: counted as it arrives, so one endless header cannot grow a buffer ----------------

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.limits.max_header_bytes \
                and not self.transport.is_closing():
            self._refuse(_too_large(f"The request line and headers exceed "
                                    f"{self.limits.max_header_bytes} bytes."))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.deadline = self.loop.time() + self.limits.request_timeout_seconds

    def on_headers_complete(self) -> None:
        # Counted once they are all in (the byte cap already bounds what they hold).
        if len(self.headers) > self.limits.max_headers:
            self._refusal = _too_large(f"A request carries at most {self.limits.max_headers} headers.")
            raise _Refused
        self._awaiting_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.deadline = None
        self._awaiting_headers = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error: ours when a limit raised it."""
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().send_400_response(msg)

    # --- time: a request arrives whole within its deadline ---------------------------------------

    def too_slow(self) -> None:
        """Its deadline passed (the sweep calls it)."""
        self.deadline = None
        if self.transport.is_closing():
            return
        if self._awaiting_headers:
            self._refuse(_problem(408, "Request Timeout", f"The request did not arrive within "
                                                          f"{self.limits.request_timeout_seconds:g} s."))
        else:  # the body stalled: the application sees the client go away
            self.transport.close()

    def _refuse(self, answer: bytes) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


class _Sweeper:
    """One periodic check per server (its set of open connections) for requests past their deadline."""

    sweeping: weakref.WeakSet[Any] = weakref.WeakSet()  # uvicorn's per-server states being swept

    @staticmethod
    def watch(protocol: BoundedHttpToolsProtocol) -> None:
        state = protocol.server_state  # uvicorn's per-server state: its set of open connections
        if state not in _Sweeper.sweeping:
            _Sweeper.sweeping.add(state)
            protocol.loop.call_later(SWEEP_SECONDS, _Sweeper.sweep, protocol.loop, protocol.connections,
                                     state)

    @staticmethod
    def sweep(loop: asyncio.AbstractEventLoop, connections: set[Any], state: Any) -> None:
        now = loop.time()
        for connection in list(connections):
            deadline = getattr(connection, "deadline", None)
            if deadline is not None and deadline <= now:
                connection.too_slow()
        if connections:
            loop.call_later(SWEEP_SECONDS, _Sweeper.sweep, loop, connections, state)
        else:
            _Sweeper.sweeping.discard(state)  # the next connection starts it again


def _too_large(detail: str) -> bytes:
    return _problem(431, "Request Header Fields Too Large", detail)


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=…)`` with these limits."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
