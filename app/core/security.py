"""Password hashing, API-token minting, CSRF tokens and sealing secrets. Nothing here touches the database."""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a login's timing does not reveal which
# accounts exist.
_DUMMY_HASH = _hasher.hash("prefloop-dummy-password")

TOKEN_PREFIX = "pfl"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def new_api_token() -> tuple[str, str, str]:
    """A fresh token as (full token shown once, public prefix, sha256 of the full token).

    Tokens carry 256 bits of randomness, so a fast hash is enough to store them: unlike
    passwords they cannot be guessed from a dictionary.
    """
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return token, prefix, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1]:
        return None
    return parts[1]


def csrf_token_for(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use (synchronizer-token pattern)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def csrf_token_matches(session: dict[str, Any], submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted and secrets.compare_digest(expected, submitted))


# ---- sealed secrets -------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def fernet_for(secret_key: str, purpose: str) -> Fernet:
    """Fernet (AES-128-CBC plus an HMAC-SHA256 tag) under a key derived from SECRET_KEY with HKDF, labelled
    by `purpose`: each use gets its own key, never the one that signs session cookies."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret_key: str, purpose: str, text: str) -> str:
    """`text` encrypted and authenticated, to pass through a place that is signed but readable (a cookie)."""
    return fernet_for(secret_key, purpose).encrypt(text.encode()).decode()


def unseal(secret_key: str, purpose: str, sealed: str, *, max_age_s: int) -> str | None:
    """The sealed text; None when it is older than max_age_s, altered, or sealed under another key."""
    try:
        return fernet_for(secret_key, purpose).decrypt(sealed.encode(), ttl=max_age_s).decode()
    except InvalidToken:
        return None
