"""Creating executions: the one path used by manual runs, rules, reruns and retries.

It applies parameter defaults, validates against the action schema, moves secret parameters out
of ``config`` into the encrypted ``secret_params`` column, inserts the row and stages
``ExecutionRequested`` in the same transaction.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.bus.messages import MessageType
from attune.db.models import Action, Execution
from attune.db.outbox import enqueue
from attune.db.repos.idempotent import add_once
from attune.db.types import utcnow
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.domain.params import apply_defaults, secret_names, validate_params
from attune.errors import Conflict

SECRET_MASK = "********"
_PLAIN_PREFIX = "plain:"


def flat_schema(schema: Any) -> dict[str, Any] | None:
    return schema if isinstance(schema, dict) else None


def split_secrets(params: dict[str, Any], schema: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params with secret values masked, the secret values) per the schema's ``secret: true``."""
    names = secret_names(flat_schema(schema))
    secrets = {name: params[name] for name in names if name in params}
    public = {key: (SECRET_MASK if key in secrets else value) for key, value in params.items()}
    return public, secrets


def seal_secrets(secrets: dict[str, Any], box: SecretBox | None) -> str | None:
    if not secrets:
        return None
    text = json.dumps(secrets, separators=(",", ":"))
    # Without a master key there is nothing to encrypt with; keep it out of ``config`` anyway.
    return box.encrypt(text) if box is not None else _PLAIN_PREFIX + text


def reveal_secrets(sealed: str | None, box: SecretBox | None) -> dict[str, Any]:
    """Decrypt ``execution.secret_params`` (raises CryptoError when the key is wrong)."""
    if not sealed:
        return {}
    if sealed.startswith(_PLAIN_PREFIX):
        value = json.loads(sealed[len(_PLAIN_PREFIX) :])
    else:
        if box is None:
            raise ValueError("secret parameters are encrypted but no encryption key is configured")
        value = json.loads(box.decrypt(sealed))
    return value if isinstance(value, dict) else {}


def full_parameters(execution: Execution, box: SecretBox | None) -> dict[str, Any]:
    """The parameters an action receives: ``config`` with the secret values put back."""
    return parameters_from(execution.config, execution.secret_params, box)


def parameters_from(config: Any, secret_params: Any, box: SecretBox | None) -> dict[str, Any]:
    """:func:`full_parameters` from an execution's ``config`` and ``secret_params`` columns."""
    config = config if isinstance(config, dict) else {}
    params = config.get("parameters") if isinstance(config.get("parameters"), dict) else None
    base = (
        dict(params)
        if params is not None
        else {k: v for k, v in config.items() if k not in ("context", "env")}
    )
    base.update(reveal_secrets(secret_params, box))
    return base


async def request_execution(
    session: AsyncSession,
    action: Action,
    params: dict[str, Any] | None,
    *,
    box: SecretBox | None,
    source_service: str,
    executor: int | None = None,
    enforcement: int | None = None,
    parent: int | None = None,
    env_vars: dict[str, str] | None = None,
    original_execution: int | None = None,
    retry_count: int = 0,
    retry_reason: str | None = None,
    validate: bool = True,
    secret_values: dict[str, Any] | None = None,
) -> Execution:
    """Insert a ``requested`` execution of ``action`` and stage ``ExecutionRequested``.

    ``secret_values`` carries already-separated secrets (reruns and retries copy them).
    """
    schema = flat_schema(action.param_schema)
    parameters = apply_defaults(params or {}, schema)
    if validate:
        validate_params(parameters, schema, kind="action", ref=action.ref, allow_templates=False)
    public, secrets = split_secrets(parameters, schema)
    if secret_values:
        secrets = {**secret_values, **secrets}
    execution = Execution(
        action=action.id,
        action_ref=action.ref,
        config=public,
        env_vars=env_vars,
        executor=executor,
        enforcement=enforcement,
        parent=parent,
        status=ExecutionStatus.REQUESTED.value,
        is_workflow=action.workflow_def is not None,
        workflow_def=action.workflow_def,
        max_retries=action.max_retries or 0,
        retry_count=retry_count,
        retry_reason=retry_reason,
        original_execution=original_execution,
        secret_params=seal_secrets(secrets, box),
    )
    if enforcement is not None and parent is None and retry_count == 0:
        # The first run of an enforcement: ``uq_execution_enforcement`` keeps it unique.
        if not await add_once(session, execution, lambda: _has_first_run(session, enforcement)):
            raise Conflict(f"Enforcement {enforcement} already has an execution")
    else:
        session.add(execution)
        await session.flush()
    enqueue(
        session,
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": execution.id,
            "action_id": action.id,
            "action_ref": action.ref,
            "parent_id": parent,
            "enforcement_id": enforcement,
            "config": public,
        },
        source_service=source_service,
    )
    return execution


async def _has_first_run(session: AsyncSession, enforcement: int) -> bool:
    query = sa.select(Execution.id).where(
        Execution.enforcement == enforcement, Execution.parent.is_(None), Execution.retry_count == 0
    )
    return (await session.execute(query.limit(1))).first() is not None


def stage_status_changed(
    session: AsyncSession, execution: Execution, previous: str, new: str, *, source_service: str
) -> None:
    """Stage ``ExecutionStatusChanged`` for a transition ``source_service`` made to ``execution``."""
    enqueue(
        session,
        MessageType.EXECUTION_STATUS_CHANGED,
        {
            "execution_id": execution.id,
            "action_ref": execution.action_ref,
            "previous_status": previous,
            "new_status": new,
            "changed_at": utcnow().isoformat(),
        },
        source_service=source_service,
    )
