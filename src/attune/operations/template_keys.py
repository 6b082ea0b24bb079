"""Keys in rule and workflow templates: load what a template names, keep decrypted values sealed.

docs/rules.md "Keys in templates". A template is rendered synchronously, so the keys it names
(``key.system.x``, ``st2kv('pack.y')``…) are loaded first, through the one ownership-aware lookup
``attune.db.repos.keys.for_templates``. Decrypted values never reach a stored row in plain text:
in an enforcement's ``config`` they are sealed (encrypted) per parameter, and an execution gets them
as secret parameters (stored encrypted, masked in ``config``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.repos import keys
from attune.domain import keyrefs
from attune.domain.crypto import SecretBox

__all__ = ["SEALED", "namespace_for", "seal_revealed", "texts_of", "unseal"]

SEALED = "__sealed__"
"""An enforcement parameter holding decrypted key material: ``{"__sealed__": <ciphertext>}``."""


def texts_of(*values: Any) -> Iterator[str]:
    """Every string inside JSON values (where templates can be)."""
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            yield from texts_of(*value.values())
        elif isinstance(value, list | tuple):
            yield from texts_of(*value)


def _opener(box: SecretBox | None) -> Callable[[keyrefs.KeyValue], str] | None:
    if box is None:
        return None

    def open_key(key: keyrefs.KeyValue) -> str:
        return box.decrypt(key.value, key.key_hash)

    return open_key


async def namespace_for(
    session: AsyncSession,
    *values: Any,
    pack_id: int | None,
    identity_id: int | None,
    box: SecretBox | None,
) -> keyrefs.KeyNamespace | None:
    """The keys the templates in ``values`` name, or None when they name none."""
    wanted = keyrefs.referenced(texts_of(*values))
    if not wanted:
        return None
    loaded = await keys.for_templates(session, wanted, pack_id=pack_id, identity_id=identity_id)
    return keyrefs.KeyNamespace(loaded, _opener(box))


def seal_revealed(
    parameters: dict[str, Any],
    secret_names: set[str],
    namespace: keyrefs.KeyNamespace | None,
    box: SecretBox | None,
) -> dict[str, Any]:
    """Rendered rule parameters as an enforcement stores them: decrypted values sealed."""
    if namespace is None:
        return parameters
    public, revealed = keyrefs.split_revealed(parameters, secret_names, namespace.revealed)
    if not revealed or box is None:
        return public
    for name, value in revealed.items():
        public[name] = {SEALED: box.encrypt(json.dumps(value))}
    return public


def unseal(
    config: Mapping[str, Any], box: SecretBox | None, declared: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(parameters, secret values)`` of an enforcement's config: sealed values become secrets.

    A ``declared`` secret parameter keeps its value (the schema makes it secret); any other
    carries the mask and its value travels as a secret value.
    """
    public: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, Mapping) and set(value) == {SEALED} and box is not None:
            plain = json.loads(box.decrypt(str(value[SEALED])))
            if name in declared:
                public[name] = plain
            else:
                secrets[name] = plain
                public[name] = keyrefs.MASK
        else:
            public[name] = value
    return public, secrets
