"""A CRM's callback endpoint for tests: records every delivery, answers what it is told."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class CrmReceiver:
    """Answers 204 unless ``fail_next`` says how many to refuse (with ``fail_status``)."""

    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 503
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.headers.get("x-test-accepted") == "yes"]

    def types(self) -> list[str]:
        return [d.event["type"] for d in self.accepted]

    @property
    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                refuse = self.fail_next > 0
                if refuse:
                    self.fail_next -= 1
                headers = dict(request.headers)
                headers["x-test-accepted"] = "no" if refuse else "yes"
                self.deliveries.append(Delivery(headers, body))
            return Response(status_code=self.fail_status if refuse else 204)

        return Starlette(routes=[Route("/hooks/calsync", hook, methods=["POST"])])


class RoutingTransport(httpx.BaseTransport):
    """Send each request to the transport registered for its host."""

    def __init__(self, routes: dict[str, httpx.BaseTransport]) -> None:
        self.routes = routes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.routes.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no test route to {request.url.host}", request=request)
        return transport.handle_request(request)
