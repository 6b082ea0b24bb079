"""Secret encryption (docs/security.md): AES-256-GCM, key = SHA-256(master secret).

Stored value: Base64(nonce[12] ‖ ciphertext ‖ tag). The fingerprint stored beside it is the hex
SHA-256 of the *derived* key, so the database never holds anything that decrypts it.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MIN_SECRET_LENGTH = 32
NONCE_BYTES = 12


class CryptoError(Exception):
    """Encryption or decryption was impossible (no key, wrong key, corrupt data)."""


class SecretBox:
    """Encrypts and decrypts key values with one master secret."""

    def __init__(self, master_secret: str) -> None:
        if len(master_secret) < MIN_SECRET_LENGTH:
            raise CryptoError(f"encryption key must be at least {MIN_SECRET_LENGTH} characters")
        self._key = hashlib.sha256(master_secret.encode()).digest()
        self.fingerprint = hashlib.sha256(self._key).hexdigest()
        self._aead = AESGCM(self._key)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, fingerprint: str | None = None) -> str:
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise CryptoError("value was encrypted with a different key")
        try:
            raw = base64.b64decode(stored, validate=True)
            if len(raw) < NONCE_BYTES + 16:
                raise CryptoError("ciphertext too short")
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError) as exc:
            raise CryptoError("value cannot be decrypted") from exc
