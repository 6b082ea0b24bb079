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
    "reveal_all",
    "split_revealed",
]

MASK = "********"

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


def contains_revealed(value: Any, texts: Iterable[str] = ()) -> bool:
    """Whether a rendered JSON value holds decrypted key material anywhere.

    ``texts`` are the values decrypted while rendering (``KeyNamespace.revealed``): a string that
    contains one (a mixed template such as ``"pw={{ key.system.pw | decrypt_kv }}"``) counts too.
    """
    if isinstance(value, Revealed):
        return True
    if isinstance(value, str):
        return any(text and text in value for text in texts)
    if isinstance(value, Mapping):
        return any(contains_revealed(item, texts) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_revealed(item, texts) for item in value)
    return False


def reveal_all(value: Any) -> Any:
    """``value`` with every encrypted key opened (for ``secret: true`` parameters)."""
    if isinstance(value, Sealed):
        return decrypt_kv(value)
    if isinstance(value, Mapping):
        return {key: reveal_all(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [reveal_all(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def split_revealed(
    parameters: Mapping[str, Any], secret_names: Iterable[str], texts: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(parameters to store, decrypted values)`` of rendered execution parameters.

    Encrypted keys in ``secret_names`` parameters are opened; every parameter holding decrypted
    material is masked in the first map and carried, in plain text, only in the second (which the
    caller stores encrypted, like any secret parameter).
    """
    secret = set(secret_names)
    opened = list(texts)
    public: dict[str, Any] = {}
    revealed: dict[str, Any] = {}
    for name, value in parameters.items():
        if name in secret:
            value = reveal_all(value)
        if contains_revealed(value, opened):
            revealed[name] = _plain(value)
            public[name] = MASK
        else:
            public[name] = _plain(value)
    return public, revealed


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
        #: Plain texts decrypted through this namespace (to keep them out of stored rows).
        self.revealed: list[str] = []

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
        text = self._opener(key)
        if text not in self.revealed:
            self.revealed.append(text)
        return text

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
