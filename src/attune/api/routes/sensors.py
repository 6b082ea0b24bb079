"""``/api/v1/sensors`` (docs/api.md): sensor definitions, by pack and by trigger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import check_pack, in_readable_packs, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.sensors import CreateSensor, SensorResponse, SensorSummary, UpdateSensor
from attune.db.models import Sensor
from attune.db.repos import actions, sensors, triggers
from attune.db.repos.runtimes import resolve as resolve_runtime
from attune.errors import Conflict, NotFound
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["sensors"], dependencies=AUTH)

PageA = Annotated[PageRequest, Depends(page_a)]


async def _get(session: AsyncSession, ref: str, action: str = "read") -> Sensor:
    sensor = await sensors.by_ref(session, ref)
    if sensor is None:
        raise NotFound(f"Sensor '{ref}' not found")
    check_pack("sensors", action, sensor.pack_ref, f"{action} sensor '{ref}'")
    return sensor


@router.get("/sensors", dependencies=[require("sensors", "read", scoped=True)])
async def list_sensors(platform: PlatformDep, page: PageA) -> Page[SensorSummary]:
    """List sensors, ordered by ref (pagination family A)."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session, in_readable_packs(sensors.list_query(), "sensors", Sensor.pack_ref), page
        )
    return make_page([SensorSummary.model_validate(r) for r in rows], total, page)


@router.get("/sensors/enabled", dependencies=[require("sensors", "read", scoped=True)])
async def list_enabled_sensors(platform: PlatformDep, page: PageA) -> Page[SensorSummary]:
    """List the enabled sensors, ordered by ref."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session, in_readable_packs(sensors.list_query(enabled=True), "sensors", Sensor.pack_ref), page
        )
    return make_page([SensorSummary.model_validate(r) for r in rows], total, page)


@router.post("/sensors", status_code=201, dependencies=[require("sensors", "create", scoped=True)])
async def create_sensor(body: CreateSensor, platform: PlatformDep) -> Data[SensorResponse]:
    """Create a sensor; the pack, runtime and trigger must exist (404 naming the missing one).

    `runtime_ref` is resolved by ref, then by alias-equal runtime name (`shell` finds
    `core.shell`); the stored `runtime_ref` is the runtime's own ref. Attune extensions: sensors
    created through the API get `is_adhoc = true` (so a pack reinstall keeps them), and
    `param_schema` must be a flat schema that compiles (422 naming the field).
    """
    check_pack("sensors", "create", body.pack_ref, f"create sensors in pack '{body.pack_ref}'")
    async with platform.db.transaction() as session:
        if await sensors.by_ref(session, body.ref) is not None:
            raise Conflict(f"Sensor with ref '{body.ref}' already exists")
        pack = await actions.pack_by_ref(session, body.pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{body.pack_ref}' not found")
        runtime_row = await resolve_runtime(session, body.runtime_ref)
        if runtime_row is None:
            raise NotFound(f"Runtime '{body.runtime_ref}' not found")
        trigger = await triggers.by_ref(session, body.trigger_ref)
        if trigger is None:
            raise NotFound(f"Trigger '{body.trigger_ref}' not found")
        actions.check_ref_format("sensor", body.ref)
        sensor = await sensors.create(
            session,
            ref=body.ref,
            pack=pack.id,
            pack_ref=pack.ref,
            label=body.label,
            description=body.description,
            entrypoint=body.entrypoint,
            runtime=runtime_row.id,
            runtime_ref=runtime_row.ref,
            trigger=trigger.id,
            trigger_ref=trigger.ref,
            enabled=body.enabled,
            is_adhoc=True,
            param_schema=body.param_schema,
            config=body.config,
        )
        data = SensorResponse.model_validate(sensor)
    return Data(data=data, message="Sensor created successfully")


@router.get("/sensors/{ref}", dependencies=[require("sensors", "read", scoped=True)])
async def get_sensor(ref: str, platform: PlatformDep) -> Data[SensorResponse]:
    """One sensor by ref (its `config` is not returned)."""
    async with platform.db.session() as session:
        sensor = await _get(session, ref, "read")
    return Data(data=SensorResponse.model_validate(sensor))


@router.put("/sensors/{ref}", dependencies=[require("sensors", "update", scoped=True)])
async def update_sensor(ref: str, body: UpdateSensor, platform: PlatformDep) -> Data[SensorResponse]:
    """Update a sensor; absent and null fields are left unchanged. Runtime, trigger and config
    cannot be changed."""
    async with platform.db.transaction() as session:
        sensor = await _get(session, ref, "update")
        changes = {
            "label": body.label,
            "description": body.description,
            "entrypoint": body.entrypoint,
            "param_schema": body.param_schema,
            "enabled": body.enabled,
        }
        if actions.apply_changes(sensor, changes):
            await actions.save(session, sensor)
        data = SensorResponse.model_validate(sensor)
    return Data(data=data, message="Sensor updated successfully")


@router.delete("/sensors/{ref}", dependencies=[require("sensors", "delete", scoped=True)])
async def delete_sensor(ref: str, platform: PlatformDep) -> Success:
    """Delete a sensor; its keys are deleted and its events keep `source_ref` with `source = null`."""
    async with platform.db.transaction() as session:
        sensor = await _get(session, ref, "delete")
        await sensors.delete(session, sensor)
    return Success(message=f"Sensor '{ref}' deleted successfully")


async def _set_enabled(platform: Platform, ref: str, enabled: bool) -> SensorResponse:
    async with platform.db.transaction() as session:
        sensor = await _get(session, ref, "delete")
        if actions.apply_changes(sensor, {"enabled": enabled}):
            await actions.save(session, sensor)
        return SensorResponse.model_validate(sensor)


@router.post("/sensors/{ref}/enable", dependencies=[require("sensors", "update")])
async def enable_sensor(ref: str, platform: PlatformDep) -> Data[SensorResponse]:
    """Set `enabled = true` and return the sensor."""
    return Data(data=await _set_enabled(platform, ref, True), message="Sensor enabled successfully")


@router.post("/sensors/{ref}/disable", dependencies=[require("sensors", "update")])
async def disable_sensor(ref: str, platform: PlatformDep) -> Data[SensorResponse]:
    """Set `enabled = false` and return the sensor."""
    return Data(data=await _set_enabled(platform, ref, False), message="Sensor disabled successfully")


@router.get("/packs/{pack_ref}/sensors", dependencies=[require("sensors", "read", scoped=True)])
async def list_pack_sensors(pack_ref: str, platform: PlatformDep, page: PageA) -> Page[SensorSummary]:
    """The sensors of one pack, ordered by ref; 404 when the pack does not exist."""
    async with platform.db.session() as session:
        pack = await actions.pack_by_ref(session, pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{pack_ref}' not found")
        rows, total = await fetch_page(
            session, in_readable_packs(sensors.list_query(pack_id=pack.id), "sensors", Sensor.pack_ref), page
        )
    return make_page([SensorSummary.model_validate(r) for r in rows], total, page)


@router.get("/triggers/{trigger_ref}/sensors", dependencies=[require("sensors", "read", scoped=True)])
async def list_trigger_sensors(trigger_ref: str, platform: PlatformDep, page: PageA) -> Page[SensorSummary]:
    """The sensors emitting events for one trigger; 404 when the trigger does not exist."""
    async with platform.db.session() as session:
        trigger = await triggers.by_ref(session, trigger_ref)
        if trigger is None:
            raise NotFound(f"Trigger '{trigger_ref}' not found")
        rows, total = await fetch_page(
            session,
            in_readable_packs(sensors.list_query(trigger_id=trigger.id), "sensors", Sensor.pack_ref),
            page,
        )
    return make_page([SensorSummary.model_validate(r) for r in rows], total, page)
