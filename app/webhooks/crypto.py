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

from cryptography.fernet import InvalidToken

from app.core.security import fernet_for

__all__ = ["InvalidToken", "decrypt", "encrypt"]

PURPOSE = "prefloop webhook secrets v1"


def encrypt(secret_key: str, secret: str) -> str:
    return fernet_for(secret_key, PURPOSE).encrypt(secret.encode()).decode()


def decrypt(secret_key: str, token: str) -> str:
    """The secret; raises InvalidToken when it was encrypted under another SECRET_KEY."""
    return fernet_for(secret_key, PURPOSE).decrypt(token.encode()).decode()
