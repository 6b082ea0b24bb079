"""What an action process receives besides its code: parameters, secrets and environment.

docs/packs.md and docs/security.md. Parameters and secrets travel on stdin (or the parameter file);
the environment carries only identifiers, the execution-scoped token and non-secret settings, so
nothing secret is visible in ``/proc/<pid>/environ``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action
from attune.db.repos import action_inputs
from attune.domain.crypto import SecretBox
from attune.domain.enums import OwnerType

log = logging.getLogger(__name__)

#: Variables the worker owns; neither the runtime nor the user's ``env_vars`` may replace them.
RESERVED_PREFIX = "ATTUNE_"


@dataclass
class KeyValues:
    """The keys an action may read: every value by name, and the names of the encrypted ones."""

    values: dict[str, str] = field(default_factory=dict)
    encrypted: set[str] = field(default_factory=set)

    @property
    def secrets(self) -> dict[str, str]:
        """The values of encrypted keys: the only key values masked in the action's output."""
        return {name: value for name, value in self.values.items() if name in self.encrypted}


async def load_key_secrets(session: AsyncSession, action: Action, box: SecretBox | None) -> KeyValues:
    """The keys an action may read: system, then its pack, then itself.

    Later scopes override earlier ones on an equal name (and decide whether the name is
    encrypted). Any error (a value encrypted with another key, no master key configured, ...)
    drops every key for this run with a warning; the run itself goes on (docs/security.md).
    """
    rows = await action_inputs.keys_for(session, action)
    order = {OwnerType.SYSTEM.value: 0, OwnerType.PACK.value: 1, OwnerType.ACTION.value: 2}
    keys = KeyValues()
    try:
        for row in sorted(rows, key=lambda key: (order.get(key.owner_type, 0), key.id)):
            keys.values[row.name] = _reveal(row, box)
            if row.encrypted:
                keys.encrypted.add(row.name)
            else:
                keys.encrypted.discard(row.name)
    except Exception as exc:
        log.warning("action %s runs without secrets: cannot decrypt key values (%s)", action.ref, exc)
        return KeyValues()
    return keys


def _reveal(key: action_inputs.KeyRow, box: SecretBox | None) -> str:
    if not key.encrypted:
        return key.value
    if box is None:
        raise ValueError(f"key {key.ref!r} is encrypted but no encryption key is configured")
    return box.decrypt(key.value, key.encryption_key_hash)


def context_variables(config: Any) -> dict[str, str]:
    """``ATTUNE_CONTEXT_<KEY>`` for each entry of ``config.context`` (strings raw, others as JSON)."""
    context = config.get("context") if isinstance(config, dict) else None
    if not isinstance(context, dict):
        return {}
    return {f"ATTUNE_CONTEXT_{str(key).upper()}": _env_text(value) for key, value in context.items()}


def _env_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def build_environment(
    inherited: Mapping[str, str],
    attune: Mapping[str, str],
    runtime_vars: Mapping[str, str],
    user_vars: Any,
) -> dict[str, str]:
    """The process environment: inherited, then ``ATTUNE_*``, runtime ``env_vars``, user ``env_vars``.

    Inherited ``ATTUNE_*`` variables are dropped: the worker's own ``ATTUNE__SECURITY__*``
    configuration (JWT secret, encryption key) and database URL must never reach an action.
    Neither the runtime's nor the user's variables may replace an ``ATTUNE_*`` variable: those
    identify the run and carry its token, and a user-controlled value there would let one
    execution impersonate another.
    """
    env = {key: value for key, value in inherited.items() if not key.startswith(RESERVED_PREFIX)}
    env.update(attune)
    for key, value in _extra(runtime_vars, user_vars):
        if key.upper().startswith(RESERVED_PREFIX):
            log.debug("ignoring env var %s: ATTUNE_* variables are set by the worker", key)
            continue
        env[key] = value
    return env


def _extra(runtime_vars: Mapping[str, str], user_vars: Any) -> Iterable[tuple[str, str]]:
    yield from ((str(key), str(value)) for key, value in runtime_vars.items())
    if isinstance(user_vars, dict):
        yield from ((str(key), _env_text(value)) for key, value in user_vars.items() if value is not None)


def attune_variables(
    *,
    execution_id: int,
    action_ref: str,
    api_url: str,
    api_token: str,
    rule_ref: str | None,
    trigger_ref: str | None,
    config: Any,
    delivery: str,
    fmt: str,
    param_file: str | None,
) -> dict[str, str]:
    """The ``ATTUNE_*`` variables of one execution (docs/packs.md)."""
    env = {
        "ATTUNE_EXEC_ID": str(execution_id),
        "ATTUNE_ACTION": action_ref,
        "ATTUNE_API_URL": api_url,
        "ATTUNE_API_TOKEN": api_token,
        "ATTUNE_PARAMETER_DELIVERY": delivery,
        "ATTUNE_PARAMETER_FORMAT": fmt,
    }
    if rule_ref:
        env["ATTUNE_RULE"] = rule_ref
    if trigger_ref:
        env["ATTUNE_TRIGGER"] = trigger_ref
    if param_file is not None:
        env["ATTUNE_PARAMETER_FILE"] = param_file
    env.update(context_variables(config))
    return env
