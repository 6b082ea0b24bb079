"""Webhooks (docs/api.md): key management, security configuration and the receiver.

Each trigger's ``webhook_config`` holds its security settings, set with
``PUT /triggers/{ref}/webhooks/config`` and enforced by the receiver: payload size (413), client
IP allow-list (403), rate limit (429 with ``Retry-After``) and HMAC signature (401).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api import intake, waiting
from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.errors import too_many_requests
from attune.api.schemas.common import Data
from attune.api.schemas.triggers import TriggerResponse
from attune.api.schemas.webhooks import (
    HmacConfigResponse,
    IpWhitelistResponse,
    RateLimitResponse,
    WebhookConfig,
    WebhookConfigResponse,
    WebhookExecution,
    WebhookReceiverResponse,
    WebhookRequest,
)
from attune.db.models import Trigger
from attune.db.repos import events, executions, triggers
from attune.domain.crypto import CryptoError
from attune.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from attune.notifier.hub import Subscription
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["webhooks"])

SOURCE = "api-webhook-receiver"
HMAC_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "sha1": hashlib.sha1}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- management (bearer) -------------------------------------------------------------------


async def _manage(platform: Platform, ref: str, operation: str) -> TriggerResponse:
    async with platform.db.transaction() as session:
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


@router.post("/triggers/{ref}/webhooks/enable", dependencies=[*AUTH, require("webhooks", "update")])
async def enable_webhooks(ref: str, platform: PlatformDep) -> Data[TriggerResponse]:
    """Enable webhooks: keep the existing key or generate `wh_` + 32 hex characters.

    The receive URL is `/api/v1/webhooks/<key>`. Attune change: the security configuration
    (`/webhooks/config`) is kept, so disabling and re-enabling never silently drops HMAC, the
    IP allow-list or the limits.
    """
    return Data(data=await _manage(platform, ref, "enable"))


@router.post("/triggers/{ref}/webhooks/disable", dependencies=[*AUTH, require("webhooks", "update")])
async def disable_webhooks(ref: str, platform: PlatformDep) -> Data[TriggerResponse]:
    """Disable webhooks and remove the key (the old URL stops working); the config is kept."""
    return Data(data=await _manage(platform, ref, "disable"))


@router.post("/triggers/{ref}/webhooks/regenerate", dependencies=[*AUTH, require("webhooks", "update")])
async def regenerate_webhook_key(ref: str, platform: PlatformDep) -> Data[TriggerResponse]:
    """Issue a new webhook key; the old one stops working. 400 unless webhooks are enabled."""
    return Data(data=await _manage(platform, ref, "regenerate"))


# --- security configuration (bearer) -------------------------------------------------------


def _section(config: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    value = (config or {}).get(name)
    return value if isinstance(value, Mapping) else {}


def _limit_kb(config: Mapping[str, Any]) -> int | None:
    limit = config.get("payload_size_limit_kb")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit >= 1:
        return math.floor(limit)
    return None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def config_response(config: Mapping[str, Any] | None) -> WebhookConfigResponse:
    """The stored configuration as the API shows it: the HMAC secret becomes ``secret_set``."""
    hmac_section = _section(config, "hmac")
    whitelist = _section(config, "ip_whitelist")
    rate = _section(config, "rate_limit")
    ips = whitelist.get("ips")
    return WebhookConfigResponse(
        hmac=HmacConfigResponse(
            enabled=hmac_section.get("enabled") is True,
            algorithm=str(hmac_section.get("algorithm") or "sha256"),
            secret_set=bool(hmac_section.get("secret") or hmac_section.get("secret_encrypted")),
        ),
        ip_whitelist=IpWhitelistResponse(
            enabled=whitelist.get("enabled") is True,
            ips=[str(ip) for ip in ips] if isinstance(ips, list) else [],
        ),
        payload_size_limit_kb=_limit_kb(config or {}),
        rate_limit=RateLimitResponse(
            enabled=rate.get("enabled") is True,
            requests=_positive_int(rate.get("requests")),
            window_seconds=_positive_int(rate.get("window_seconds")),
        ),
    )


def parse_network(entry: str) -> IpNetwork:
    """An IP address (as a /32 or /128) or a CIDR network; host bits may be set."""
    return ipaddress.ip_network(entry.strip(), strict=False)


def _validate_ips(ips: list[str]) -> list[str]:
    cleaned: list[str] = []
    for index, entry in enumerate(ips):
        try:
            parse_network(entry)
        except ValueError as exc:
            raise ValidationFailed(
                f"Validation failed: ip_whitelist.ips[{index}]: "
                f"'{entry}' is not an IP address or CIDR network"
            ) from exc
        cleaned.append(entry.strip())
    return cleaned


def _stored_config(
    body: WebhookConfig, current: Mapping[str, Any] | None, platform: Platform
) -> dict[str, Any]:
    """Validate ``body`` against the rules the schema cannot express and build the stored form."""
    ips = _validate_ips(body.ip_whitelist.ips)
    if body.ip_whitelist.enabled and not ips:
        raise ValidationFailed(
            "Validation failed: ip_whitelist.ips: "
            "at least one address is required when the allow-list is enabled"
        )
    hmac_config: dict[str, Any] = {"enabled": body.hmac.enabled, "algorithm": body.hmac.algorithm}
    if body.hmac.secret is not None:
        # Encrypted at rest when an encryption key is configured, like secret keys.
        if platform.secrets is not None:
            hmac_config["secret_encrypted"] = platform.secrets.encrypt(body.hmac.secret)
        else:
            hmac_config["secret"] = body.hmac.secret
    else:
        previous = _section(current, "hmac")
        for name in ("secret", "secret_encrypted"):
            if previous.get(name):
                hmac_config[name] = previous[name]
    if body.hmac.enabled and not (hmac_config.get("secret") or hmac_config.get("secret_encrypted")):
        raise ValidationFailed("Validation failed: hmac.secret: required when hmac is enabled")
    stored: dict[str, Any] = {
        "hmac": hmac_config,
        "ip_whitelist": {"enabled": body.ip_whitelist.enabled, "ips": ips},
        "rate_limit": {
            "enabled": body.rate_limit.enabled,
            "requests": body.rate_limit.requests,
            "window_seconds": body.rate_limit.window_seconds,
        },
    }
    if body.payload_size_limit_kb is not None:
        stored["payload_size_limit_kb"] = body.payload_size_limit_kb
    return stored


@router.get("/triggers/{ref}/webhooks/config", dependencies=[*AUTH, require("webhooks", "read")])
async def get_webhook_config(ref: str, platform: PlatformDep) -> Data[WebhookConfigResponse]:
    """The trigger's webhook security configuration. The HMAC secret is write-only:
    `hmac.secret_set` tells whether one is stored."""
    async with platform.db.session() as session:
        trigger = await triggers.by_ref(session, ref)
        if trigger is None:
            raise NotFound(f"Trigger '{ref}' not found")
        return Data(data=config_response(trigger.webhook_config))


@router.put("/triggers/{ref}/webhooks/config", dependencies=[*AUTH, require("webhooks", "update")])
async def put_webhook_config(
    ref: str, body: WebhookConfig, platform: PlatformDep
) -> Data[WebhookConfigResponse]:
    """Replace the trigger's webhook security configuration (sections left out are disabled).

    `hmac.secret` absent or null keeps the stored secret; enabling HMAC needs one. Every field
    is validated (422 `VALIDATION_ERROR` naming it, e.g. `ip_whitelist.ips[1]`). The config
    survives disabling and re-enabling webhooks and can be set before they are enabled.
    """
    async with platform.db.transaction() as session:
        trigger = await triggers.by_ref(session, ref)
        if trigger is None:
            raise NotFound(f"Trigger '{ref}' not found")
        trigger.webhook_config = _stored_config(body, trigger.webhook_config, platform)
        data = config_response(trigger.webhook_config)
    return Data(data=data, message="Webhook configuration updated successfully")


# --- receive pipeline (public; the key is the credential) ----------------------------------


def _parse_body(raw: bytes) -> WebhookRequest:
    """The raw body as a WebhookRequest, or 400 ``Invalid JSON payload: …``."""
    try:
        return WebhookRequest.model_validate_json(raw)
    except ValidationError as exc:
        details = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            details.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
        raise BadRequest(f"Invalid JSON payload: {'; '.join(details)}") from exc


def _check_size(config: Mapping[str, Any], raw: bytes) -> None:
    """``payload_size_limit_kb`` bounds the raw body: 413 ``PAYLOAD_TOO_LARGE``."""
    limit = _limit_kb(config)
    if limit is not None and len(raw) > limit * 1024:
        raise PayloadTooLarge(f"Payload too large. Maximum size: {limit} KB")


def _networks(entries: Iterable[Any]) -> list[IpNetwork]:
    networks = []
    for entry in entries:
        try:
            networks.append(parse_network(str(entry)))
        except ValueError:
            continue  # an unusable entry matches nothing
    return networks


def _address(text: str | None) -> IpAddress | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").split("]")[0].split("%")[0])
    except ValueError:
        return None


def _in(address: IpAddress, networks: list[IpNetwork]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def client_address(request: Request, trusted_proxies: Iterable[str]) -> IpAddress | None:
    """The caller's IP address, or None when it cannot be determined.

    It is the socket peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` is read
    from the right, skipping trusted proxies, and the first other address is the client (else
    ``X-Real-IP``). Headers from untrusted peers are ignored, so they cannot be spoofed.
    """
    peer = _address(request.client.host if request.client else None)
    trusted = _networks(trusted_proxies)
    if peer is None or not trusted or not _in(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return None
            if not _in(address, trusted):
                return address
        return _address(hops[0]) if hops else peer
    real_ip = request.headers.get("x-real-ip")
    if real_ip:
        return _address(real_ip)
    return peer


def _check_ip(config: Mapping[str, Any], client: IpAddress | None) -> None:
    """The IP allow-list: 403 ``IP address not allowed`` (also for an unknown client address)."""
    whitelist = _section(config, "ip_whitelist")
    if whitelist.get("enabled") is not True:
        return
    ips = whitelist.get("ips")
    if client is None or not _in(client, _networks(ips if isinstance(ips, list) else [])):
        raise Forbidden("IP address not allowed")


class _RateLimited(TooManyRequests):
    """The trigger's webhook rate limit is reached (answered, not raised: see _record_event)."""


def _rate_limit(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """The trigger's rate limit as (requests, window seconds), or None when it is off."""
    rate = _section(config, "rate_limit")
    requests, window = _positive_int(rate.get("requests")), _positive_int(rate.get("window_seconds"))
    if rate.get("enabled") is not True or requests is None or window is None:
        return None
    return requests, window


async def _check_rate(platform: Platform, trigger: Trigger, limit: tuple[int, int] | None) -> None:
    """Sliding window over the trigger's webhook events in the database: 429 when full.

    A quick look before the signature check (so the order of checks holds); the binding check
    is :func:`_check_rate_locked`, in the transaction that inserts the event.
    """
    if limit is not None:
        async with platform.db.session() as session:
            await _check_rate_locked(session, trigger, limit, platform.clock.now())


async def _check_rate_locked(
    session: AsyncSession, trigger: Trigger, limit: tuple[int, int], now: datetime
) -> None:
    """The window counted under the trigger's lock (``triggers.lock_for_webhook``), so that
    concurrent posts cannot all see room for one more (docs/webhooks.md).

    ``now`` is the platform clock's: the window is compared with ``Event.created``, which a
    webhook event takes from the same clock (its ``received_at``), not from a column default.
    """
    requests, window = limit
    since = now - timedelta(seconds=window)
    count, frees_at = await triggers.webhook_window(session, trigger, since, requests)
    if count >= requests:
        wait = (frees_at + timedelta(seconds=window) - now).total_seconds() if frees_at else window
        raise _RateLimited(
            f"Rate limit exceeded: {requests} requests per {window} seconds", max(1, math.ceil(wait))
        )


def _hmac_secret(settings: Mapping[str, Any], platform: Platform) -> str | None:
    if settings.get("secret"):
        return str(settings["secret"])
    encrypted = settings.get("secret_encrypted")
    if encrypted and platform.secrets is not None:
        try:
            return platform.secrets.decrypt(str(encrypted))
        except CryptoError:
            return None
    return None


def _verify_hmac(config: Mapping[str, Any], request: Request, raw: bytes, platform: Platform) -> bool | None:
    """Verify the signature over the raw body. None when HMAC is off, True when verified."""
    settings = _section(config, "hmac")
    if settings.get("enabled") is not True:
        return None
    secret, algorithm = _hmac_secret(settings, platform), settings.get("algorithm")
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
    expected = hmac.new(secret.encode(), raw, digest).digest()
    if not hmac.compare_digest(expected, given):
        raise Unauthorized("Invalid webhook signature")
    return True


@router.post(
    "/webhooks/{webhook_key}",
    response_model=Data[WebhookReceiverResponse],
    responses={
        413: {"description": "Body larger than the trigger's payload_size_limit_kb"},
        429: {
            "description": "Rate limit exceeded, too many waiting requests, or the event pipeline "
            "is behind (`server.max_backlog`); see the Retry-After header"
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookRequest.model_json_schema()}},
        }
    },
)
async def receive_webhook(
    webhook_key: str,
    request: Request,
    platform: PlatformDep,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            description="Answer once the runs the event caused have ended, or after this many "
            "seconds (clamped to `server.max_wait_seconds`); see docs/webhooks.md",
        ),
    ] = None,
) -> Data[WebhookReceiverResponse] | JSONResponse:
    """Receive a webhook (no bearer token: the key is the credential) and record an event.

    The raw body is `{"payload": any, "headers"?: any, ...}`. Checks, first failure wins:
    payload size when the key is valid (413 `PAYLOAD_TOO_LARGE`, before the body is parsed),
    JSON body (400), key (404 `Invalid webhook key`), enabled (400), IP allow-list (403),
    rate limit (429 `TOO_MANY_REQUESTS` with `Retry-After`), HMAC signature over the raw body
    in `X-Webhook-Signature` or `X-Hub-Signature-256` (401), the pipeline's backlog (429 with
    `Retry-After` while more than `server.max_backlog` events wait). Then an event with
    `source_ref = "webhook"` is created and `EventCreated` is published.

    With `?wait=<seconds>` the answer waits until every execution the event caused has a
    terminal status (or the wait elapses) and adds `executions` (id, action_ref, status,
    result) and `completed`; beyond `server.max_waiters` concurrent waiters the request is
    refused with 429 and `Retry-After` before any event is recorded (docs/webhooks.md).
    """
    raw = await request.body()
    listened = 0
    async with platform.db.session() as session:
        if wait:
            trigger, listened = await triggers.by_webhook_key_with_rules(session, webhook_key)
        else:
            trigger = await triggers.by_webhook_key(session, webhook_key)
    config: Mapping[str, Any] = (
        trigger.webhook_config if trigger and isinstance(trigger.webhook_config, Mapping) else {}
    )
    if trigger is not None and trigger.webhook_enabled:
        # Checked before parsing, so an oversized body costs no JSON decoding.
        _check_size(config, raw)
    body = _parse_body(raw)
    if trigger is None:
        raise NotFound("Invalid webhook key")
    if not trigger.webhook_enabled:
        raise BadRequest("Webhooks are not enabled for this trigger")
    client = client_address(request, platform.settings.server.trusted_proxies)
    _check_ip(config, client)
    try:
        await _check_rate(platform, trigger, _rate_limit(config))
    except _RateLimited as exc:
        return too_many_requests(exc)
    verified = _verify_hmac(config, request, raw, platform)
    # Before anything is recorded: a refused caller has started nothing.
    await intake.backlog_for(request.app.state, platform).admit()
    received_at = platform.clock.now()
    event_config: dict[str, Any] = {
        "source": "webhook",
        "webhook_key": webhook_key,
        "received_at": received_at.isoformat().replace("+00:00", "Z"),
    }
    if body.headers is not None:
        event_config["headers"] = body.headers
    if client is not None:
        event_config["source_ip"] = str(client)
    user_agent = request.headers.get("user-agent")
    if user_agent:
        event_config["user_agent"] = user_agent
    if verified is not None:
        event_config["hmac_verified"] = verified
    async with contextlib.AsyncExitStack() as stack:
        runs = waiting.EventRuns(trigger.ref, listened)
        subscription: Subscription | None = None
        if wait:
            # Taken before the event exists: a refused caller has started nothing.
            try:
                await stack.enter_async_context(waiting.waiters_for(request.app.state, platform).slot())
            except waiting.WaitersExhausted as exc:
                return too_many_requests(exc)
            if listened:
                # Subscribed before the event exists: none of its runs' notifications is missed.
                subscription = await stack.enter_async_context(
                    waiting.watching(request.app.state, platform, runs.wants)
                )
        answer = await _record_event(platform, trigger, config, body, event_config, received_at)
        if wait and isinstance(answer, Data):
            await _wait_for_runs(platform, answer.data, runs, subscription, waiting.bounded(platform, wait))
        return answer
    raise AssertionError("unreachable")  # pragma: no cover - the stack never swallows


async def _wait_for_runs(
    platform: Platform,
    answer: WebhookReceiverResponse,
    runs: waiting.EventRuns,
    subscription: Subscription | None,
    seconds: float,
) -> None:
    """Fill ``answer.executions`` / ``completed`` once the event's runs end or ``seconds`` pass.

    Done when the trigger has no enabled rule (nothing will run), or when at least one
    execution exists and all of them are terminal. An event whose rules all decline it
    (criteria) therefore waits the full time: docs/webhooks.md. Followed by notification
    (:class:`~attune.api.waiting.EventRuns`); the database is read for the answer's body.
    """
    runs.event_id = answer.event_id
    found: list[WebhookExecution] = []

    async def ended() -> bool:
        async with platform.db.session() as session:
            rows = await executions.of_event(session, answer.event_id)
            found[:] = [
                WebhookExecution(
                    id=row.id,
                    action_ref=row.action_ref,
                    status=row.status,
                    result=row.result,
                    created=row.created,
                    updated=row.updated,
                )
                for row in rows
            ]
        runs.adopt({e.id: str(e.status) for e in found})
        return runs.listened == 0 or (bool(found) and all(e.status in waiting.TERMINAL for e in found))

    if subscription is None:
        answer.completed = await ended()
    else:
        # At the deadline the body is read once more, and says whether the runs ended.
        answer.completed = await waiting.wait_on(subscription, runs.seen, ended, seconds) or await ended()
    answer.executions = found


async def _record_event(
    platform: Platform,
    trigger: Trigger,
    config: Mapping[str, Any],
    body: WebhookRequest,
    event_config: dict[str, Any],
    received_at: datetime,
) -> Data[WebhookReceiverResponse] | JSONResponse:
    try:
        async with platform.db.transaction() as session:
            current, limit = trigger, _rate_limit(config)
            if limit is not None:
                locked = await triggers.lock_for_webhook(session, trigger.id)
                if locked is None:
                    raise NotFound("Invalid webhook key")
                current = locked
                await _check_rate_locked(session, current, limit, platform.clock.now())
            event = await events.create_event(
                session,
                current,
                payload=body.payload,
                config=event_config,
                source_ref=triggers.WEBHOOK_SOURCE,
                created=received_at,
                source_service=SOURCE,
            )
    except _RateLimited as exc:
        return too_many_requests(exc)
    except IntegrityError as exc:
        # Without a rate limit the trigger read before the transaction is not read again: one
        # deleted meanwhile fails the event's foreign key, and answers as an unknown key would.
        raise NotFound("Invalid webhook key") from exc
    return Data(
        data=WebhookReceiverResponse(
            event_id=event.id, trigger_ref=event.trigger_ref, received_at=event.created
        )
    )
