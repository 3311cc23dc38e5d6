"""Bearer authentication and scopes for the /v1 API."""

from __future__ import annotations

from peewee import Database
from starlette.requests import Request

from connector import errors
from connector.clock import Clock
from connector.core import accounts


def principal_for(db: Database, clock: Clock, token: str) -> accounts.Principal:
    """The principal behind a token from a header or a URL; Unauthorized if none."""
    if len(token) > 200 or not token.isascii():
        raise errors.Unauthorized("The token is unknown or revoked.")
    return accounts.authenticate(db, token, now=clock.now())


def authenticate(request: Request, db: Database, clock: Clock, scope: str) -> accounts.Principal:
    """The caller's principal if its token is valid and carries ``scope``."""
    header = request.headers.get("authorization")
    if not header:
        raise errors.Unauthorized("Send Authorization: Bearer <token>.")
    kind, _, token = header.partition(" ")
    token = token.strip()
    if kind.lower() != "bearer" or not token:
        raise errors.Unauthorized("The Authorization header must be 'Bearer <token>'.")
    principal = principal_for(db, clock, token)
    if not principal.allows(scope):
        raise errors.Forbidden(f"This token lacks the '{scope}' scope.")
    return principal
