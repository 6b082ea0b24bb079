"""``/api/v1/events`` (docs/api.md, docs/operations.md): event intake and the event log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from attune.api.authz import require
from attune.api.deps import AUTH, ClaimsDep, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_b
from attune.api.schemas.common import Data, Page
from attune.api.schemas.events import CreateEventRequest, EventResponse, EventSummary
from attune.db.models import Event
from attune.db.repos import events
from attune.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1", tags=["events"], dependencies=AUTH)

RULE_INSTANCE_PREFIX = "rule_"


def _summary(event: Event) -> EventSummary:
    return EventSummary(
        id=event.id,
        trigger=event.trigger,
        trigger_ref=event.trigger_ref,
        source=event.source,
        source_ref=event.source_ref,
        rule=event.rule,
        rule_ref=event.rule_ref,
        has_payload=event.payload is not None,
        created=event.created,
    )


def _rule_id(trigger_instance_id: str | None) -> int | None:
    """The rule id named by a ``rule_<id>`` trigger instance id, if it has that form."""
    if trigger_instance_id is None or not trigger_instance_id.startswith(RULE_INSTANCE_PREFIX):
        return None
    digits = trigger_instance_id[len(RULE_INSTANCE_PREFIX) :]
    return int(digits) if digits.isascii() and digits.isdigit() else None


@router.get("/events", dependencies=[require("events", "read")])
async def list_events(
    platform: PlatformDep,
    paging: Annotated[PageRequest, Depends(page_b)],
    trigger: Annotated[int | None, Query(description="Trigger id; wins over trigger_ref")] = None,
    trigger_ref: Annotated[str | None, Query(description="Exact trigger ref")] = None,
    rule_ref: Annotated[str | None, Query(description="Case-insensitive substring of the rule ref")] = None,
    source: Annotated[int | None, Query(description="Emitting sensor id")] = None,
) -> Page[EventSummary]:
    """Events, newest first."""
    query = events.list_query(trigger=trigger, trigger_ref=trigger_ref, rule_ref=rule_ref, source=source)
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, query, paging)
    return make_page([_summary(row) for row in rows], total, paging)


@router.post("/events", status_code=201, dependencies=[require("events", "create")])
async def create_event(
    body: CreateEventRequest, claims: ClaimsDep, platform: PlatformDep
) -> Data[EventResponse]:
    """Record one firing of a trigger and stage ``EventCreated`` for the rule matcher.

    A sensor token may fire only the triggers it was issued for (docs/security.md).
    """
    if claims.token_type == "sensor" and body.trigger_ref not in (claims.metadata.get("trigger_types") or []):
        raise Forbidden(f"This sensor token may not create events for trigger '{body.trigger_ref}'")
    async with platform.db.transaction() as session:
        trigger = await events.trigger_by_ref(session, body.trigger_ref)
        if trigger is None:
            raise NotFound(f"Trigger '{body.trigger_ref}' not found")
        rule_id = _rule_id(body.trigger_instance_id)
        rule = await events.rule_by_id(session, rule_id) if rule_id is not None else None
        source_ref: str | None = None
        source: int | None = None
        if claims.token_type == "sensor":
            # A sensor token's login is the sensor ref (docs/api.md).
            source_ref = claims.login
            source = await events.sensor_id_by_ref(session, claims.login)
        event = await events.create_event(
            session,
            trigger,
            payload=body.payload,
            config=body.config,
            source=source,
            source_ref=source_ref,
            rule=rule,
            source_service="api",
        )
    return Data(data=EventResponse.model_validate(event))


@router.get("/events/{id}", dependencies=[require("events", "read")])
async def get_event(id: int, platform: PlatformDep) -> Data[EventResponse]:
    """One event."""
    async with platform.db.session() as session:
        event = await events.get(session, id)
    if event is None:
        raise NotFound(f"Event with ID {id} not found")
    return Data(data=EventResponse.model_validate(event))
