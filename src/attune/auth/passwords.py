"""Argon2id password hashing with the parameters of docs/security.md (m=19456, t=2, p=1)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Verified against when a login is unknown or has no password, so that path costs one Argon2
#: verification like a known login does and its timing does not tell which logins exist.
_DUMMY_PASSWORD = "attune-dummy-password-never-matches"


def make_hasher() -> PasswordHasher:
    """A hasher producing ``$argon2id$v=19$m=19456,t=2,p=1$…`` PHC strings."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)


def hash_password(hasher: PasswordHasher, password: str) -> str:
    return hasher.hash(password)


@functools.cache
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    hasher = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )
    return hasher.hash(_DUMMY_PASSWORD)


def dummy_hash(hasher: PasswordHasher) -> str:
    """A hash with ``hasher``'s parameters that no password matches (computed once)."""
    return _dummy_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism)


def verify_password(hasher: PasswordHasher, stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an identity without a hash can never log in.

    Without a stored hash the password is still verified, against :func:`dummy_hash`, so an
    unknown login takes as long as a wrong password (docs/security.md, "Sign-up and sessions").
    """
    if not stored_hash:
        try:
            hasher.verify(dummy_hash(hasher), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            pass
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
