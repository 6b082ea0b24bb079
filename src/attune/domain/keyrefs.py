"""Keys in templates: ``{{ key.system.name }}``, ``key.pack.name``, ``key.user.name`` (docs/rules.md).

``st2kv.`` is accepted as an alias of ``key.`` and ``st2kv('system.name')`` as a function, as in
StackStorm. An encrypted key renders as its stored (encrypted) text; only ``| decrypt_kv`` (or a
``secret: true`` parameter) opens it, and the opened text is a ``Revealed`` string so that callers
can keep it out of stored rows. Templates are evaluated synchronously, so the values a template
refers to are loaded beforehand (``referenced``) by ``attune.db.repos.keys.for_templates``. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCOPES",
    "KeyNamespace",
    "KeyValue",
    "Revealed",
    "Sealed",
    "contains_revealed",
    "decrypt_kv",
    "referenced",
]

SCOPES = ("system", "pack", "user")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.:-]*?"
_DOTTED = re.compile(rf"\b(?:key|st2kv)\.(system|pack|user)\.({_NAME})(?=[^A-Za-z0-9_.:-]|\.[A-Za-z_(|]|$)")
_CALLED = re.compile(r"\bst2kv\(\s*['\"](system|pack|user)\.([^'\"]+)['\"]")
_INDEXED = re.compile(r"\b(?:key|st2kv)\.(system|pack|user)\[\s*['\"]([^'\"]+)['\"]\s*\]")


@dataclass(frozen=True)
class KeyValue:
    """A key's stored value; ``encrypted`` values are ciphertext until decrypted."""

    value: str
    encrypted: bool
    key_hash: str | None = None


class Sealed(str):
    """An encrypted key's stored text; ``decrypt_kv`` opens it."""

    key: KeyValue
    opener: Callable[[KeyValue], str]

    def __new__(cls, key: KeyValue, opener: Callable[[KeyValue], str]) -> Sealed:
        sealed = super().__new__(cls, key.value)
        sealed.key = key
        sealed.opener = opener
        return sealed


class Revealed(str):
    """A decrypted key value. Never store it in plain text (it goes to secret parameters)."""


def decrypt_kv(value: Any) -> Any:
    """The ``decrypt_kv`` filter: open an encrypted key; plain values pass through unchanged."""
    if isinstance(value, Sealed):
        return Revealed(value.opener(value.key))
    return value


def referenced(texts: Iterable[str]) -> set[tuple[str, str]]:
    """``(scope, name)`` of every key a set of templates names (``key.x.y``, ``st2kv('x.y')``)."""
    found: set[tuple[str, str]] = set()
    for text in texts:
        if "key" not in text and "st2kv" not in text:
            continue
        for pattern in (_DOTTED, _CALLED, _INDEXED):
            found.update((scope, name) for scope, name in pattern.findall(text))
    return found


def contains_revealed(value: Any) -> bool:
    """Whether a rendered JSON value holds decrypted key material anywhere."""
    if isinstance(value, Revealed):
        return True
    if isinstance(value, Mapping):
        return any(contains_revealed(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_revealed(item) for item in value)
    return False


class _Scope(Mapping[str, Any]):
    def __init__(self, namespace: KeyNamespace, scope: str) -> None:
        self._namespace = namespace
        self._scope = scope

    def __getitem__(self, name: str) -> Any:
        value = self._namespace.lookup(self._scope, name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for scope, name in self._namespace.known if scope == self._scope)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class KeyNamespace(Mapping[str, Any]):
    """``key`` / ``st2kv`` in templates: ``key.system.x``, ``key['pack']['x']``, ``st2kv('user.x')``.

    ``values`` holds the keys loaded for this evaluation; a missing key is undefined (empty).
    ``opener`` decrypts an encrypted value (it raises when no encryption key is configured).
    """

    def __init__(
        self, values: Mapping[tuple[str, str], KeyValue], opener: Callable[[KeyValue], str] | None = None
    ) -> None:
        """Wrap the loaded key values."""
        self._values = dict(values)
        self._opener = opener

    @property
    def known(self) -> list[tuple[str, str]]:
        """The loaded ``(scope, name)`` pairs."""
        return list(self._values)

    def lookup(self, scope: str, name: str, *, decrypt: bool = False) -> Any:
        """The template value of one key (None when it was not loaded or does not exist)."""
        key = self._values.get((scope, name))
        if key is None:
            return None
        if not key.encrypted:
            return key.value
        sealed = Sealed(key, self._open)
        return decrypt_kv(sealed) if decrypt else sealed

    def _open(self, key: KeyValue) -> str:
        if self._opener is None:
            raise ValueError("encrypted keys cannot be decrypted here (no encryption key configured)")
        return self._opener(key)

    def __call__(self, path: str, decrypt: bool = False) -> Any:
        """``st2kv('system.name', decrypt=true)``."""
        scope, _, name = str(path).partition(".")
        return self.lookup(scope, name, decrypt=bool(decrypt))

    def __getitem__(self, scope: str) -> Any:
        if scope not in SCOPES:
            raise KeyError(scope)
        return _Scope(self, scope)

    def __iter__(self) -> Iterator[str]:
        return iter(SCOPES)

    def __len__(self) -> int:
        return len(SCOPES)
