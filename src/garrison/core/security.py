"""Secrets, hashes and passwords.

API keys, enrollment secrets and device credentials are 32 random bytes: a fast SHA-256 is
the right hash for them (they cannot be guessed, so stretching buys nothing and would cost
every request). Passwords are chosen by people, so they get Argon2id (memory-hard).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_secret(secret))


def new_prefixed_secret(kind: str) -> tuple[str, str, str]:
    """Return (full secret, public prefix, hash). Format ``<kind>_<prefix>_<random>``;
    the prefix finds the row, the hash proves the rest."""
    prefix = secrets.token_hex(6)
    full = f"{kind}_{prefix}_{secrets.token_urlsafe(32)}"
    return full, prefix, hash_secret(full)


def split_prefixed_secret(full: str, kind: str) -> str | None:
    parts = full.split("_", 2)
    if len(parts) != 3 or parts[0] != kind or len(parts[1]) != 12:
        return None
    return parts[1]


def new_credential() -> tuple[str, str]:
    cred = secrets.token_urlsafe(32)
    return cred, hash_secret(cred)
