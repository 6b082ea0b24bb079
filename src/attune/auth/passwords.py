"""Argon2id password hashing with the parameters of api.md §2.4 (m=19456, t=2, p=1)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


def make_hasher() -> PasswordHasher:
    """A hasher producing ``$argon2id$v=19$m=19456,t=2,p=1$…`` PHC strings."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)


def hash_password(hasher: PasswordHasher, password: str) -> str:
    return hasher.hash(password)


def verify_password(hasher: PasswordHasher, stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an identity without a hash can never log in."""
    if not stored_hash:
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
