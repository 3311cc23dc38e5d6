"""Query parameters an operation does not declare in ``/openapi.json`` are refused before it runs.

One rule for every route, read from the one document that describes them: a typo
(``?per_pgae=100``, ``?override_conflict=true``) is a 422 naming the parameter, never
a silently different answer, and it is refused before the endpoint can write
anything. Values are each endpoint's to check. Paths the document does not
describe (the sandbox, Cal.com's subscriber URL ahead of this) pass through.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from connector import errors
from connector.api.problems import problem_for
from connector.inputs import unknown_parameters

_PLACEHOLDER = re.compile(r"\{[^/}]+\}")


def declared_parameters(document: dict[str, Any]) -> list[tuple[re.Pattern[str], dict[str, frozenset[str]]]]:
    """(path pattern, method → the query names it declares), literal paths before templated ones.

    A query name a security scheme reads (the feed's ``?token=``) counts as declared where the
    operation uses that scheme.
    """
    schemes = document.get("components", {}).get("securitySchemes", {})
    in_query = {key: scheme["name"] for key, scheme in schemes.items() if scheme.get("in") == "query"}
    table = []
    for template, item in document["paths"].items():
        shared = [p["name"] for p in item.get("parameters", []) if p.get("in") == "query"]
        methods: dict[str, frozenset[str]] = {}
        for method, operation in item.items():
            if method == "parameters":
                continue
            names = {*shared, *(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")}
            for requirement in operation.get("security") or []:
                names |= {in_query[key] for key in requirement if key in in_query}
            methods[method.upper()] = frozenset(names)
        pattern = re.compile("^" + "[^/]+".join(map(re.escape, _PLACEHOLDER.split(template))) + "$")
        table.append((template.count("{"), pattern, methods))
    return [(pattern, methods) for _, pattern, methods in sorted(table, key=lambda row: row[0])]


class DeclaredParameters:
    """ASGI middleware: 422 for a query parameter the matched operation does not declare."""

    def __init__(self, app: ASGIApp, document: dict[str, Any]) -> None:
        self.app = app
        self.table = declared_parameters(document)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        known = self._known(scope["path"], scope["method"])
        if known is not None:
            problems = unknown_parameters(QueryParams(scope["query_string"]), known)
            if problems:
                await problem_for(errors.ValidationFailed(problems), scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _known(self, path: str, method: str) -> frozenset[str] | None:
        for pattern, methods in self.table:
            if pattern.match(path) and method in methods:
                return methods[method]
        return None
