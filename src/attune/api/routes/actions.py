"""``/api/v1/actions`` (docs/api.md): action definitions, their queue statistics and pack listing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import check_pack, in_readable_packs, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.actions import (
    ActionResponse,
    ActionSummary,
    CreateAction,
    QueueStatsResponse,
    UpdateAction,
    retry_policy,
)
from attune.api.schemas.common import Data, Page, Success
from attune.db.models import Action
from attune.db.repos import actions
from attune.db.repos.runtimes import resolve as resolve_runtime
from attune.domain import retry
from attune.errors import Conflict, NotFound, Unprocessable

router = APIRouter(prefix="/api/v1", tags=["actions"], dependencies=AUTH)

PageA = Annotated[PageRequest, Depends(page_a)]

#: The FK name a missing runtime id violates; checked up front so both databases answer alike.
RUNTIME_FK = "fk_action_runtime_runtime"


async def _runtime_id(session: AsyncSession, runtime_ref: str | None, runtime_id: int | None) -> int | None:
    """Resolve ``runtime_ref`` (404 when unknown), else check ``runtime`` exists (422 FK-style)."""
    if runtime_ref is not None:
        row = await resolve_runtime(session, runtime_ref)
        if row is None:
            raise NotFound(f"Runtime '{runtime_ref}' not found")
        return row.id
    if runtime_id is not None and await actions.runtime_by_id(session, runtime_id) is None:
        raise Unprocessable(f"Referenced entity does not exist ({RUNTIME_FK})")
    return runtime_id


async def _get(session: AsyncSession, ref: str, operation: str = "read") -> Action:
    action = await actions.by_ref(session, ref)
    if action is None:
        raise NotFound(f"Action '{ref}' not found")
    check_pack("actions", operation, action.pack_ref, f"{operation} action '{ref}'")
    return action


@router.get("/actions", dependencies=[require("actions", "read", scoped=True)])
async def list_actions(platform: PlatformDep, page: PageA) -> Page[ActionSummary]:
    """List actions, ordered by ref (pagination family A)."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session, in_readable_packs(actions.list_query(), "actions", Action.pack_ref), page
        )
    return make_page([ActionSummary.model_validate(r) for r in rows], total, page)


@router.post("/actions", status_code=201, dependencies=[require("actions", "create", scoped=True)])
async def create_action(body: CreateAction, platform: PlatformDep) -> Data[ActionResponse]:
    """Create an ad-hoc action (``is_adhoc = true``).

    Attune extensions to docs/api.md:

    - `runtime_ref` names the runtime by ref, or by alias-equal runtime name (`core.shell`, `shell`,
      `bash`); it takes precedence over `runtime`. An unknown `runtime_ref` gets 404
      `Runtime 'x' not found`; an unknown `runtime` id gets 422
      `Referenced entity does not exist (fk_action_runtime_runtime)`.
    - `description` is optional (stored as `""`).
    - `parameter_delivery` (stdin|file), `parameter_format` (dotenv|json|yaml), `output_format`
      (text|json|yaml|jsonl) and `timeout_seconds` (≥1) may be set; they are returned too.
    - `param_schema`/`out_schema` must be flat schemas that compile (422 naming the field).
    - `retry: {count, delay, on}` sets the retry policy (docs/packs.md); `max_retries: N` is the
      older form of `retry: {count: N}`.
    """
    check_pack("actions", "create", body.pack_ref, f"create actions in pack '{body.pack_ref}'")
    async with platform.db.transaction() as session:
        if await actions.by_ref(session, body.ref) is not None:
            raise Conflict(f"Action with ref '{body.ref}' already exists")
        pack = await actions.pack_by_ref(session, body.pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{body.pack_ref}' not found")
        runtime_id = await _runtime_id(session, body.runtime_ref, body.runtime)
        actions.check_ref_format("action", body.ref)
        values: dict[str, Any] = {
            "ref": body.ref,
            "pack": pack.id,
            "pack_ref": pack.ref,
            "label": body.label,
            "description": body.description or "",
            "entrypoint": body.entrypoint,
            "runtime": runtime_id,
            "runtime_version_constraint": body.runtime_version_constraint,
            "param_schema": body.param_schema,
            "out_schema": body.out_schema,
            "timeout_seconds": body.timeout_seconds,
            **retry.columns(retry_policy(body.retry, body.max_retries) or retry.RetryPolicy()),
            "is_adhoc": True,
        }
        for name in ("parameter_delivery", "parameter_format", "output_format"):
            chosen = getattr(body, name)
            if chosen is not None:
                values[name] = chosen.value
        action = await actions.create(session, **values)
        data = ActionResponse.model_validate(action)
    return Data(data=data, message="Action created successfully")


@router.get("/actions/{ref}", dependencies=[require("actions", "read", scoped=True)])
async def get_action(ref: str, platform: PlatformDep) -> Data[ActionResponse]:
    """One action by ref."""
    async with platform.db.session() as session:
        action = await _get(session, ref, "read")
    return Data(data=ActionResponse.model_validate(action))


@router.put("/actions/{ref}", dependencies=[require("actions", "update", scoped=True)])
async def update_action(ref: str, body: UpdateAction, platform: PlatformDep) -> Data[ActionResponse]:
    """Update an action; absent and null fields are left unchanged.

    Attune extensions: `runtime_ref` (as on create) and the four execution fields
    `parameter_delivery`, `parameter_format`, `output_format`, `timeout_seconds` may be changed,
    and `retry` (or `max_retries`) replaces the retry policy.
    """
    async with platform.db.transaction() as session:
        action = await _get(session, ref, "update")
        runtime_id = await _runtime_id(session, body.runtime_ref, body.runtime)
        changes: dict[str, Any] = {
            "label": body.label,
            "description": body.description,
            "entrypoint": body.entrypoint,
            "runtime": runtime_id,
            "runtime_version_constraint": body.runtime_version_constraint,
            "param_schema": body.param_schema,
            "out_schema": body.out_schema,
            "parameter_delivery": body.parameter_delivery.value if body.parameter_delivery else None,
            "parameter_format": body.parameter_format.value if body.parameter_format else None,
            "output_format": body.output_format.value if body.output_format else None,
            "timeout_seconds": body.timeout_seconds,
        }
        changed = actions.apply_changes(action, changes)
        policy = retry_policy(body.retry, body.max_retries)
        if policy is not None:
            # Set as a whole: a null delay here means "back to exponential backoff".
            for name, value in retry.columns(policy).items():
                if getattr(action, name) != value:
                    setattr(action, name, value)
                    changed = True
        if changed:
            await actions.save(session, action)
        data = ActionResponse.model_validate(action)
    return Data(data=data, message="Action updated successfully")


@router.delete("/actions/{ref}", dependencies=[require("actions", "delete", scoped=True)])
async def delete_action(ref: str, platform: PlatformDep) -> Success:
    """Delete an action. Rules keep `action_ref` with `action = null`; its policies, queue stats
    and action-owned keys are deleted."""
    async with platform.db.transaction() as session:
        action = await _get(session, ref, "delete")
        await actions.delete(session, action)
    return Success(message=f"Action '{ref}' deleted successfully")


@router.get("/actions/{ref}/queue-stats", dependencies=[require("actions", "read", scoped=True)])
async def action_queue_stats(ref: str, platform: PlatformDep) -> Data[QueueStatsResponse]:
    """The FIFO queue counters of an action; 404 when it has never been queued."""
    async with platform.db.session() as session:
        action = await _get(session, ref, "read")
        stats = await actions.queue_stats(session, action.id)
    if stats is None:
        raise NotFound(f"No queue statistics available for action '{ref}'")
    return Data(
        data=QueueStatsResponse(
            action_id=action.id,
            action_ref=action.ref,
            queue_length=stats.queue_length,
            active_count=stats.active_count,
            max_concurrent=stats.max_concurrent,
            oldest_enqueued_at=stats.oldest_enqueued_at,
            total_enqueued=stats.total_enqueued,
            total_completed=stats.total_completed,
            last_updated=stats.last_updated,
        )
    )


@router.get("/packs/{pack_ref}/actions", dependencies=[require("actions", "read", scoped=True)])
async def list_pack_actions(pack_ref: str, platform: PlatformDep, page: PageA) -> Page[ActionSummary]:
    """The actions of one pack, ordered by ref; 404 when the pack does not exist."""
    async with platform.db.session() as session:
        pack = await actions.pack_by_ref(session, pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{pack_ref}' not found")
        rows, total = await fetch_page(
            session, in_readable_packs(actions.list_query(pack_id=pack.id), "actions", Action.pack_ref), page
        )
    return make_page([ActionSummary.model_validate(r) for r in rows], total, page)
