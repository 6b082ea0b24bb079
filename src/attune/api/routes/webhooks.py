"""Webhooks (api.md §4.11, §5.6): per-trigger key management and the public receiver."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from attune.api.deps import AUTH, RuntimeDep
from attune.api.schemas.common import Data
from attune.api.schemas.triggers import TriggerResponse
from attune.api.schemas.webhooks import WebhookReceiverResponse, WebhookRequest
from attune.bus.messages import MessageType
from attune.db.models import Trigger
from attune.db.outbox import enqueue
from attune.db.repos import triggers
from attune.db.types import utcnow
from attune.errors import BadRequest, Forbidden, NotFound, Unauthorized
from attune.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["webhooks"])

SOURCE = "api-webhook-receiver"
HMAC_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "sha1": hashlib.sha1}


# --- management (bearer) -------------------------------------------------------------------


async def _manage(runtime: Runtime, ref: str, operation: str) -> TriggerResponse:
    async with runtime.db.transaction() as session:
        trigger = await triggers.by_ref(session, ref)
        if trigger is None:
            raise NotFound(f"Trigger '{ref}' not found")
        if operation == "enable":
            triggers.enable_webhooks(trigger)
        elif operation == "disable":
            triggers.disable_webhooks(trigger)
        else:
            if not trigger.webhook_enabled:
                raise BadRequest("Webhooks are not enabled for this trigger. Enable webhooks first.")
            triggers.regenerate_webhook_key(trigger)
        await session.flush()
        await session.refresh(trigger)
        return TriggerResponse.model_validate(trigger)


@router.post("/triggers/{ref}/webhooks/enable", dependencies=AUTH)
async def enable_webhooks(ref: str, runtime: RuntimeDep) -> Data[TriggerResponse]:
    """Enable webhooks: keep the existing key or generate `wh_` + 32 hex characters, and reset
    the trigger's `webhook_config` to `{}`. The receive URL is `/api/v1/webhooks/<key>`."""
    return Data(data=await _manage(runtime, ref, "enable"))


@router.post("/triggers/{ref}/webhooks/disable", dependencies=AUTH)
async def disable_webhooks(ref: str, runtime: RuntimeDep) -> Data[TriggerResponse]:
    """Disable webhooks and remove the key (the old URL stops working)."""
    return Data(data=await _manage(runtime, ref, "disable"))


@router.post("/triggers/{ref}/webhooks/regenerate", dependencies=AUTH)
async def regenerate_webhook_key(ref: str, runtime: RuntimeDep) -> Data[TriggerResponse]:
    """Issue a new webhook key; the old one stops working. 400 unless webhooks are enabled."""
    return Data(data=await _manage(runtime, ref, "regenerate"))


# --- receive pipeline (public; the key is the credential) ----------------------------------


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name)
    return value if isinstance(value, Mapping) else {}


def _parse_body(raw: bytes) -> WebhookRequest:
    """Step 1: the raw body as a WebhookRequest, or 400 ``Invalid JSON payload: …``."""
    try:
        return WebhookRequest.model_validate_json(raw)
    except ValidationError as exc:
        details = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            details.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
        raise BadRequest(f"Invalid JSON payload: {'; '.join(details)}") from exc


def _check_size(config: Mapping[str, Any], raw: bytes) -> None:
    """Step 4: ``payload_size_limit_kb`` bounds the raw body (400, not 413)."""
    limit = config.get("payload_size_limit_kb")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and len(raw) > limit * 1024:
        raise BadRequest(f"Payload too large. Maximum size: {limit} KB")


def client_ip(request: Request) -> str | None:
    """The client IP as the allow-list sees it: the whole ``X-Forwarded-For`` value, else ``X-Real-IP``."""
    return request.headers.get("x-forwarded-for") or request.headers.get("x-real-ip")


def ip_allowed(ip: str | None, entries: Any) -> bool:
    """Whether ``ip`` is in the allow-list (exact v4/v6 addresses or CIDR networks).

    Per api.md §5.6 a missing IP, a missing list, or an unparsable IP/CIDR lets the request
    through; entries are checked in order and the first unparsable one ends the check.
    """
    if ip is None or not isinstance(entries, list):
        return True
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return True
    for entry in entries:
        try:
            if "/" in str(entry):
                if address in ipaddress.ip_network(str(entry).strip(), strict=False):
                    return True
            elif address == ipaddress.ip_address(str(entry).strip()):
                return True
        except ValueError:
            return True
    return False


def _check_ip(config: Mapping[str, Any], request: Request) -> None:
    """Step 5: the IP allow-list (403 ``IP address not allowed``)."""
    whitelist = _section(config, "ip_whitelist")
    if whitelist.get("enabled") is True and not ip_allowed(client_ip(request), whitelist.get("ips")):
        raise Forbidden("IP address not allowed")


def _verify_hmac(config: Mapping[str, Any], request: Request, raw: bytes) -> bool | None:
    """Step 7: verify the signature over the raw body. None when HMAC is off, True when verified."""
    settings = _section(config, "hmac")
    if settings.get("enabled") is not True:
        return None
    secret, algorithm = settings.get("secret"), settings.get("algorithm")
    if not secret or not algorithm:
        return False
    header = request.headers.get("x-webhook-signature") or request.headers.get("x-hub-signature-256")
    if not header:
        raise Unauthorized("Signature required")
    algorithm = str(algorithm).lower()
    digest = HMAC_ALGORITHMS.get(algorithm)
    if digest is None:
        raise Unauthorized(f"Signature verification failed: Unsupported algorithm: {algorithm}")
    signature = header.strip()
    if "=" in signature:
        prefix, signature = signature.split("=", 1)
        if prefix.strip().lower() != algorithm:
            raise Unauthorized(
                f"Signature verification failed: Algorithm mismatch: expected {algorithm}, got {prefix}"
            )
    try:
        given = bytes.fromhex(signature.strip())
    except ValueError as exc:
        raise Unauthorized("Signature verification failed: Invalid hex signature") from exc
    expected = hmac.new(str(secret).encode(), raw, digest).digest()
    if not hmac.compare_digest(expected, given):
        raise Unauthorized("Invalid webhook signature")
    return True


@router.post(
    "/webhooks/{webhook_key}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookRequest.model_json_schema()}},
        }
    },
)
async def receive_webhook(
    webhook_key: str, request: Request, runtime: RuntimeDep
) -> Data[WebhookReceiverResponse]:
    """Receive a webhook (no bearer token: the key is the credential) and record an event.

    The raw body is `{"payload": any, "headers"?: any, ...}`. Checks, in order (first failure
    wins): JSON body (400), key (404 `Invalid webhook key`), enabled (400), `payload_size_limit_kb`
    (400), IP allow-list (403), rate limit (configured per trigger), HMAC signature over the raw
    body in `X-Webhook-Signature` or `X-Hub-Signature-256` (401). Then an event with
    `source_ref = "webhook"` is created and `EventCreated` is published.
    """
    raw = await request.body()
    body = _parse_body(raw)
    async with runtime.db.session() as session:
        trigger = await triggers.by_webhook_key(session, webhook_key)
    if trigger is None:
        raise NotFound("Invalid webhook key")
    if not trigger.webhook_enabled:
        raise BadRequest("Webhooks are not enabled for this trigger")
    config: Mapping[str, Any] = trigger.webhook_config if isinstance(trigger.webhook_config, Mapping) else {}
    _check_size(config, raw)
    _check_ip(config, request)
    # Step 6: ``rate_limit`` {enabled, requests, window_seconds} is configured per trigger; it is
    # read here and deliberately not enforced in API v1, which never answers 429.
    _section(config, "rate_limit")
    verified = _verify_hmac(config, request, raw)
    received_at = utcnow()
    event_config: dict[str, Any] = {
        "source": "webhook",
        "webhook_key": webhook_key,
        "received_at": received_at.isoformat().replace("+00:00", "Z"),
    }
    if body.headers is not None:
        event_config["headers"] = body.headers
    source_ip = client_ip(request) or (request.client.host if request.client else None)
    if source_ip:
        event_config["source_ip"] = source_ip
    user_agent = request.headers.get("user-agent")
    if user_agent:
        event_config["user_agent"] = user_agent
    if verified is not None:
        event_config["hmac_verified"] = verified
    async with runtime.db.transaction() as session:
        current = await session.get(Trigger, trigger.id)
        if current is None:
            raise NotFound("Invalid webhook key")
        event = await triggers.record_event(
            session,
            current,
            payload=body.payload,
            config=event_config,
            source_ref="webhook",
            created=received_at,
        )
        enqueue(
            session,
            MessageType.EVENT_CREATED,
            {
                "event_id": event.id,
                "trigger_id": current.id,
                "trigger_ref": current.ref,
                "payload": body.payload if isinstance(body.payload, dict) else {},
                "config": event_config,
            },
            source_service=SOURCE,
        )
    return Data(
        data=WebhookReceiverResponse(
            event_id=event.id, trigger_ref=event.trigger_ref, received_at=event.created
        )
    )
