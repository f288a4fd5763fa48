"""Webhook signing secrets, encrypted at rest.

Why encryption and not a hash (as API tokens are kept): every delivery is signed with HMAC, which
needs the secret itself, so it must be recoverable. It is encrypted with Fernet (AES-128-CBC plus an
HMAC-SHA256 tag, from `cryptography`) under a key derived from the app's SECRET_KEY with HKDF, so a
copy of the database alone (a backup, a dump, a read-only SQL injection) does not reveal secrets that
would let someone forge deliveries. The derivation is labelled for this one purpose, so the key never
equals the one that signs session cookies. Changing SECRET_KEY makes stored secrets unreadable:
deliveries then fail saying so, and rotating each endpoint's secret repairs it.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["InvalidToken", "decrypt", "encrypt"]


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"prefloop webhook secrets v1").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret_key: str, secret: str) -> str:
    return _fernet(secret_key).encrypt(secret.encode()).decode()


def decrypt(secret_key: str, token: str) -> str:
    """The secret; raises InvalidToken when it was encrypted under another SECRET_KEY."""
    return _fernet(secret_key).decrypt(token.encode()).decode()
