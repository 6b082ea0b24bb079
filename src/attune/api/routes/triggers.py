"""``/api/v1/triggers`` (docs/api.md): trigger definitions. Webhook routes live in ``webhooks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import check_pack, in_readable_packs, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.triggers import CreateTrigger, TriggerResponse, TriggerSummary, UpdateTrigger
from attune.db.models import Trigger
from attune.db.repos import actions, triggers
from attune.errors import Conflict, NotFound
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["triggers"], dependencies=AUTH)

PageA = Annotated[PageRequest, Depends(page_a)]


async def get_trigger(session: AsyncSession, ref: str) -> Trigger:
    """The trigger with this ref, or 404 ``Trigger 'x' not found``."""
    trigger = await triggers.by_ref(session, ref)
    if trigger is None:
        raise NotFound(f"Trigger '{ref}' not found")
    return trigger


async def _list(
    platform: Platform, page: PageRequest, *, enabled: bool | None = None
) -> Page[TriggerSummary]:
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session,
            in_readable_packs(triggers.list_query(enabled=enabled), "triggers", Trigger.pack_ref),
            page,
        )
    return make_page([TriggerSummary.model_validate(r) for r in rows], total, page)


@router.get("/triggers", dependencies=[require("triggers", "read", scoped=True)])
async def list_triggers(platform: PlatformDep, page: PageA) -> Page[TriggerSummary]:
    """List triggers, ordered by ref (pagination family A)."""
    return await _list(platform, page)


@router.get("/triggers/enabled", dependencies=[require("triggers", "read", scoped=True)])
async def list_enabled_triggers(platform: PlatformDep, page: PageA) -> Page[TriggerSummary]:
    """List the enabled triggers, ordered by ref."""
    return await _list(platform, page, enabled=True)


@router.post("/triggers", status_code=201, dependencies=[require("triggers", "create", scoped=True)])
async def create_trigger(body: CreateTrigger, platform: PlatformDep) -> Data[TriggerResponse]:
    """Create an ad-hoc trigger (``is_adhoc = true``); without `pack_ref` it has no pack.

    Attune extension: `param_schema`/`out_schema` must be flat schemas that compile (422 naming
    the field), so rule validation against them cannot fail later.
    """
    check_pack("triggers", "create", body.pack_ref, f"create triggers in pack '{body.pack_ref}'")
    async with platform.db.transaction() as session:
        if await triggers.by_ref(session, body.ref) is not None:
            raise Conflict(f"Trigger with ref '{body.ref}' already exists")
        pack_id: int | None = None
        if body.pack_ref is not None:
            pack = await actions.pack_by_ref(session, body.pack_ref)
            if pack is None:
                raise NotFound(f"Pack '{body.pack_ref}' not found")
            pack_id = pack.id
        actions.check_ref_format("trigger", body.ref)
        trigger = await triggers.create(
            session,
            ref=body.ref,
            pack=pack_id,
            pack_ref=body.pack_ref,
            label=body.label,
            description=body.description,
            param_schema=body.param_schema,
            out_schema=body.out_schema,
            enabled=body.enabled,
            is_adhoc=True,
            webhook_enabled=False,
            webhook_key=None,
            webhook_config={},
        )
        data = TriggerResponse.model_validate(trigger)
    return Data(data=data, message="Trigger created successfully")


@router.get("/triggers/{ref}", dependencies=[require("triggers", "read")])
async def get_trigger_route(ref: str, platform: PlatformDep) -> Data[TriggerResponse]:
    """One trigger by ref."""
    async with platform.db.session() as session:
        trigger = await get_trigger(session, ref)
    return Data(data=TriggerResponse.model_validate(trigger))


@router.put("/triggers/{ref}", dependencies=[require("triggers", "update")])
async def update_trigger(ref: str, body: UpdateTrigger, platform: PlatformDep) -> Data[TriggerResponse]:
    """Update a trigger; absent and null fields are left unchanged. Webhook fields are changed
    only through the webhook routes."""
    async with platform.db.transaction() as session:
        trigger = await get_trigger(session, ref)
        changes = {
            "label": body.label,
            "description": body.description,
            "param_schema": body.param_schema,
            "out_schema": body.out_schema,
            "enabled": body.enabled,
        }
        if actions.apply_changes(trigger, changes):
            await actions.save(session, trigger)
        data = TriggerResponse.model_validate(trigger)
    return Data(data=data, message="Trigger updated successfully")


@router.delete("/triggers/{ref}", dependencies=[require("triggers", "delete")])
async def delete_trigger(ref: str, platform: PlatformDep) -> Success:
    """Delete a trigger and its sensors; rules and events keep `trigger_ref` with the id nulled."""
    async with platform.db.transaction() as session:
        trigger = await get_trigger(session, ref)
        await triggers.delete(session, trigger)
    return Success(message=f"Trigger '{ref}' deleted successfully")


async def _set_enabled(platform: Platform, ref: str, enabled: bool) -> TriggerResponse:
    async with platform.db.transaction() as session:
        trigger = await get_trigger(session, ref)
        if actions.apply_changes(trigger, {"enabled": enabled}):
            await actions.save(session, trigger)
        return TriggerResponse.model_validate(trigger)


@router.post("/triggers/{ref}/enable", dependencies=[require("triggers", "update")])
async def enable_trigger(ref: str, platform: PlatformDep) -> Data[TriggerResponse]:
    """Set `enabled = true` and return the trigger."""
    return Data(data=await _set_enabled(platform, ref, True), message="Trigger enabled successfully")


@router.post("/triggers/{ref}/disable", dependencies=[require("triggers", "update")])
async def disable_trigger(ref: str, platform: PlatformDep) -> Data[TriggerResponse]:
    """Set `enabled = false` and return the trigger."""
    return Data(data=await _set_enabled(platform, ref, False), message="Trigger disabled successfully")


@router.get("/packs/{pack_ref}/triggers", dependencies=[require("triggers", "read", scoped=True)])
async def list_pack_triggers(pack_ref: str, platform: PlatformDep, page: PageA) -> Page[TriggerSummary]:
    """The triggers of one pack, ordered by ref; 404 when the pack does not exist."""
    async with platform.db.session() as session:
        pack = await actions.pack_by_ref(session, pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{pack_ref}' not found")
        rows, total = await fetch_page(
            session,
            in_readable_packs(triggers.list_query(pack_id=pack.id), "triggers", Trigger.pack_ref),
            page,
        )
    return make_page([TriggerSummary.model_validate(r) for r in rows], total, page)
