"""Scopes decide what a token reads as well as what it writes, for every route of /openapi.json.

The rule (docs/api.md, "Scopes"): each scope grants what it names and nothing more;
``admin`` grants every scope but the feed's; ``calendar:feed`` opens only the feed.
A write with a token that cannot read answers a receipt, never the resource.
"""

from __future__ import annotations

import pytest

from connector.api import spec
from connector.core import accounts
from connector.outputs import resources

TOKENS = {
    "read": {accounts.READ},
    "write": {accounts.WRITE},
    "read+write": {accounts.READ, accounts.WRITE},
    "admin": {accounts.ADMIN},
    "feed": {accounts.FEED},
}
PATH_VALUES = {"external_id": "crm-1", "job_id": "1", "import_id": "imp_none"}
BODY = {"title": "Intro call", "attendee_name": "Alex Prospect", "attendee_email": "alex@example.org",
        "start_time": "2026-03-17T11:00:00+01:00"}


def _operations() -> list[tuple[str, str, dict]]:
    return [(path, method, operation) for path, item in spec.document()["paths"].items()
            for method, operation in item.items() if method != "parameters"]


def _grants(token: set[str], scope: str) -> bool:
    if scope == accounts.FEED:
        return accounts.FEED in token
    return scope in token or accounts.ADMIN in token


def test_every_operation_states_its_scope_or_is_public():
    for path, method, operation in _operations():
        public = operation.get("security") == []
        assert public or operation.get("x-scope") in accounts.SCOPES, f"{method.upper()} {path}"


@pytest.fixture
def booked(client, tenant, run_jobs):
    account, owner = tenant
    assert client.put("/v1/appointments/crm-1", json=BODY, headers=owner).status_code == 201
    run_jobs()
    return account


CASES = [(path, method, kind) for path, method, operation in _operations()
         if operation.get("x-scope") for kind in TOKENS]


@pytest.mark.parametrize(("path", "method", "kind"), CASES,
                         ids=[f"{m.upper()} {p} as {k}" for p, m, k in CASES])
def test_each_route_lets_in_exactly_the_tokens_its_scope_names(client, booked, token_with, path, method,
                                                                kind):
    scope = spec.document()["paths"][path][method]["x-scope"]
    headers = token_with(booked, *TOKENS[kind])
    url = path.format(**PATH_VALUES)
    params = {}
    if scope == accounts.FEED:
        params["token"] = headers.pop("Authorization").removeprefix("Bearer ")
    answer = client.request(method.upper(), url, params=params, headers={
        **headers, "Content-Type": "application/json"}, content=b"{}" if method != "get" else None)
    if _grants(TOKENS[kind], scope):
        assert answer.status_code not in (401, 403), answer.text
    else:
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/v1/appointments/crm-1", {**BODY, "title": "Renamed"}),
    ("PUT", "/v1/appointments/crm-2", BODY),
    ("PATCH", "/v1/appointments/crm-1", {}),
    ("PATCH", "/v1/appointments/crm-1", {"label": "hot"}),
    ("POST", "/v1/appointments/crm-1/cancel", {}),
])
def test_a_write_only_token_gets_a_receipt_never_the_resource(client, booked, token_with, method, path,
                                                              body):
    writer = token_with(booked, accounts.WRITE)
    answer = client.request(method, path, json=body, headers=writer)
    assert answer.status_code in (200, 201), answer.text
    assert sorted(answer.json()) == sorted(resources.RECEIPT_FIELDS)
    waited = client.request(method, path, json=body, headers={**writer, "Prefer": "wait=1"})
    assert waited.status_code in (200, 201, 409)
    if waited.status_code != 409:
        assert sorted(waited.json()) == sorted(resources.RECEIPT_FIELDS)
    reader_too = token_with(booked, accounts.READ, accounts.WRITE)
    assert "attendee_email" in client.get("/v1/appointments/crm-1", headers=reader_too).json()


def test_an_import_tells_a_write_only_token_of_a_conflict_without_naming_the_other(
        client, booked, token_with):
    csv = (b"external_id,title,attendee_name,attendee_email,start_time\n"
           b"crm-9,Clash,Kim,kim@example.org,2026-03-17T10:00:00Z\n")
    answers = {}
    for kind in ("write", "read+write"):
        answer = client.post("/v1/appointments/import", content=csv, headers={
            **token_with(booked, *TOKENS[kind]), "Content-Type": "text/csv"})
        assert answer.status_code == 200, answer.text
        answers[kind] = answer.json()["rows"][0]
    assert answers["read+write"]["conflicts_with"] == "crm-1"
    assert answers["write"]["outcome"] == "conflict" and "conflicts_with" not in answers["write"]
    assert "crm-1" not in str(answers["write"])
