"""Signatures: Standard Webhooks for events to the CRM; Cal.com's HMAC for deliveries in.

Standard Webhooks (https://www.standardwebhooks.com): the secret is ``whsec_`` +
base64 of 24–64 random bytes; the signature is ``v1,`` + base64 of HMAC-SHA256
over ``"{webhook-id}.{webhook-timestamp}.{body}"``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str | None:
    """What is wrong with a ``whsec_…`` secret, or None if it is usable."""
    if not secret.startswith(SECRET_PREFIX):
        return "must start with whsec_ (Standard Webhooks form)"
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return "must be whsec_ followed by base64"
    if not 24 <= len(key) <= 64:
        return "must carry 24 to 64 bytes of key material"
    return None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery attempt."""
    key = base64.b64decode(secret[len(SECRET_PREFIX):])
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
