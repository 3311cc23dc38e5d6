"""Secrets at rest: Cal.com keys, webhook and callback secrets.

With ``CALSYNC_SECRET_KEY`` set, values are sealed with Fernet (AES-128-CBC plus
HMAC-SHA256) under a key derived from it and stored as ``fernet:<token>``. Without
it they are stored as ``plain:<value>`` and calsync warns at start. A sealed value
never leaves this module except to the Cal.com client and the signers.
"""

from __future__ import annotations

import base64
import hashlib
from typing import overload

from cryptography.fernet import Fernet, InvalidToken

_FERNET = "fernet:"
_PLAIN = "plain:"


class SealingError(Exception):
    """A stored secret cannot be opened (no key configured, or the wrong one)."""


class Sealer:
    def __init__(self, secret_key: str | None) -> None:
        self._fernet = None
        if secret_key:
            digest = hashlib.sha256(b"calsync-sealing-v1:" + secret_key.encode()).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    @overload
    def seal(self, value: str) -> str: ...
    @overload
    def seal(self, value: None) -> None: ...
    def seal(self, value: str | None) -> str | None:
        if value is None:
            return None
        if self._fernet is None:
            return _PLAIN + value
        return _FERNET + self._fernet.encrypt(value.encode()).decode()

    @overload
    def open(self, stored: str) -> str: ...
    @overload
    def open(self, stored: None) -> None: ...
    def open(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN) :]
        if stored.startswith(_FERNET):
            if self._fernet is None:
                raise SealingError("a secret is encrypted but CALSYNC_SECRET_KEY is not set")
            try:
                return self._fernet.decrypt(stored[len(_FERNET) :].encode()).decode()
            except InvalidToken:
                raise SealingError("a secret cannot be decrypted with CALSYNC_SECRET_KEY") from None
        raise SealingError("a stored secret has an unknown format")
