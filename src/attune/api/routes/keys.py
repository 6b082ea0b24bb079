"""``/api/v1/keys`` (docs/api.md): owned configuration values and encrypted secrets.

Values marked ``encrypted`` are stored as AES-256-GCM ciphertext with the fingerprint of the key
that sealed them; responses for one key carry the decrypted value, lists never carry values.

Ownership (docs/security.md "Ownership"): a key owned by an identity is visible only to that
identity and administrators; a pack's keys (and its actions' and sensors') to identities granted
``keys`` on that pack; system keys to identities granted ``keys`` without constraints. An execution
token reads only what the worker hands its action: system keys, its pack's and its own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import Principal, PrincipalDep, refusal, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_b
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.keys import CreateKeyRequest, KeyResponse, KeySummary, UpdateKeyRequest
from attune.db.models import Key
from attune.db.repos import identities, keys
from attune.domain.crypto import CryptoError, SecretBox
from attune.domain.enums import OwnerType
from attune.errors import AttuneError, BadRequest, Conflict, Forbidden, NotFound

router = APIRouter(prefix="/api/v1", tags=["keys"], dependencies=AUTH)

NO_ENCRYPTION_KEY = "Cannot encrypt: encryption key not configured on server"

_OWNER_LABELS = {"pack": "Pack", "action": "Action", "sensor": "Sensor"}
_OWNER_ID_FIELDS = ("identity", "pack", "action", "sensor")


def seal(secrets: SecretBox | None, plaintext: str, encrypted: bool) -> tuple[str, str | None]:
    """The stored ``(value, encryption_key_hash)`` for ``plaintext`` under the ``encrypted`` flag."""
    if not encrypted:
        return plaintext, None
    if secrets is None:
        raise BadRequest(NO_ENCRYPTION_KEY)
    return secrets.encrypt(plaintext), secrets.fingerprint


def reveal(secrets: SecretBox | None, key: Key) -> str:
    """The plaintext value of ``key``; 500 when it cannot be decrypted."""
    if not key.encrypted:
        return key.value
    if secrets is None:
        raise AttuneError(f"Cannot decrypt key '{key.ref}': encryption key not configured on server")
    try:
        return secrets.decrypt(key.value, key.encryption_key_hash)
    except CryptoError as exc:
        raise AttuneError(f"Cannot decrypt key '{key.ref}': {exc}") from exc


def _response(key: Key, plaintext: str) -> KeyResponse:
    fields = {name: getattr(key, name) for name in KeyResponse.model_fields if name != "value"}
    return KeyResponse(**fields, value=plaintext)


def key_allowed(principal: Principal, key: Key, action: str) -> bool:
    """Whether ``principal`` may ``action`` (read/create/update/delete) the key ``key``."""
    scope = principal.execution
    if scope is not None:
        in_action = (key.owner_type == OwnerType.PACK and key.owner_pack == scope.pack_id) or (
            key.owner_type == OwnerType.ACTION and key.owner_action == scope.action_id
        )
        return in_action or (action == "read" and key.owner_type == OwnerType.SYSTEM)
    if principal.is_admin:
        return True
    if key.owner_type == OwnerType.IDENTITY:
        return key.owner_identity == principal.identity_id and principal.may_on(
            "keys", action, owner=principal.identity_id
        )
    return principal.may_on("keys", action, pack=keys.key_pack_ref(key))


def visibility(principal: Principal) -> keys.KeyVisibility:
    """The keys ``principal`` may list."""
    scope = principal.execution
    if scope is not None:
        return keys.KeyVisibility(action=(scope.pack_id, scope.action_id))
    if principal.is_admin:
        return keys.KeyVisibility(everything=True)
    grants = [grant for grant in principal.grants if grant.covers("keys", "read")]
    packs: set[str] = set()
    for grant in grants:
        if grant.packs is not None and not grant.owner_self:
            packs |= grant.packs
    return keys.KeyVisibility(
        identity_id=principal.identity_id,
        own=bool(grants),
        shared=any(grant.unconstrained for grant in grants),
        packs=frozenset(packs),
    )


def _check(principal: Principal, key: Key, action: str) -> None:
    if not key_allowed(principal, key, action):
        raise Forbidden(refusal(action, "keys", f"key '{key.ref}'"))


async def _owner_fields(session: AsyncSession, body: CreateKeyRequest) -> dict[str, Any]:
    """Resolve ``*_ref`` owners, enforce the ownership invariant and derive ``owner``."""
    owner_type = body.owner_type.value
    ids: dict[str, int | None] = {kind: getattr(body, f"owner_{kind}") for kind in _OWNER_ID_FIELDS}
    if owner_type in keys.REF_OWNERS and ids[owner_type] is None:
        ref = getattr(body, f"owner_{owner_type}_ref")
        if ref is not None:
            ids[owner_type] = await keys.owner_id_by_ref(session, owner_type, ref)
            if ids[owner_type] is None:
                raise BadRequest(f"{_OWNER_LABELS[owner_type]} with ref '{ref}' not found")
    if owner_type == OwnerType.IDENTITY and ids["identity"] is None and body.owner_identity_login:
        identity = await identities.by_login(session, body.owner_identity_login)
        if identity is None:
            raise BadRequest(f"Identity with login '{body.owner_identity_login}' not found")
        ids["identity"] = identity.id
    elif body.owner_identity_login and owner_type != OwnerType.IDENTITY:
        raise BadRequest(f"owner_identity_login is only for owner_type identity, not {owner_type}")
    present = [kind for kind, value in ids.items() if value is not None]
    if owner_type == OwnerType.SYSTEM:
        if present:
            raise BadRequest("No owner field may be set for owner_type system")
        return {"owner": "system"}
    if present != [owner_type]:
        raise BadRequest(f"Exactly one owner field must be set for owner_type {owner_type}")
    owner_id = ids[owner_type]
    assert owner_id is not None
    fields: dict[str, Any] = {"owner": str(owner_id), f"owner_{owner_type}": owner_id}
    if owner_type in keys.REF_OWNERS:
        # Stored from the row itself, so the ref always names the owner the id points at. A
        # missing owner leaves it None and the insert fails on the foreign key (422).
        fields[f"owner_{owner_type}_ref"] = await keys.owner_ref_by_id(session, owner_type, owner_id)
    return fields


@router.get("/keys", dependencies=[require("keys", "read", scoped=True)])
async def list_keys(
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_b)],
    owner_type: Annotated[OwnerType | None, Query(description="Exact owner type")] = None,
    owner: Annotated[str | None, Query(description="Exact owner (`system` or the owner id)")] = None,
) -> Page[KeySummary]:
    """Keys by ``ref`` ascending, without values; only those the caller may read."""
    query = keys.restrict_visible(
        keys.list_query(owner_type.value if owner_type else None, owner), visibility(principal)
    )
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, query, paging)
    return make_page([KeySummary.model_validate(row) for row in rows], total, paging)


@router.post("/keys", status_code=201, dependencies=[require("keys", "create", scoped=True)])
async def create_key(
    body: CreateKeyRequest, platform: PlatformDep, principal: PrincipalDep
) -> Data[KeyResponse]:
    """Create a key; the value is encrypted unless ``encrypted`` is false.

    An identity key without an owner named belongs to the caller.
    """
    value, fingerprint = seal(platform.secrets, body.value, body.encrypted)
    if (
        body.owner_type == OwnerType.IDENTITY
        and body.owner_identity is None
        and not body.owner_identity_login
        and principal.identity_id is not None
    ):
        body = body.model_copy(update={"owner_identity": principal.identity_id})
    async with platform.db.transaction() as session:
        owner = await _owner_fields(session, body)
        draft = Key(owner_type=body.owner_type.value, **owner)
        if not key_allowed(principal, draft, "create"):
            raise Forbidden(
                refusal("create", "keys", f"keys of owner {body.owner_type.value} {owner['owner']}")
            )
        if await keys.get_by_ref(session, body.ref) is not None:
            raise Conflict(f"Key with ref '{body.ref}' already exists")
        if await keys.name_taken(session, body.owner_type.value, owner["owner"], body.name):
            raise Conflict(f"Key with name '{body.name}' already exists for owner '{owner['owner']}'")
        key = await keys.add(
            session,
            Key(
                ref=body.ref,
                owner_type=body.owner_type.value,
                name=body.name,
                encrypted=body.encrypted,
                encryption_key_hash=fingerprint,
                value=value,
                **owner,
            ),
        )
    return Data(data=_response(key, body.value), message="Key created successfully")


@router.get("/keys/{ref}", dependencies=[require("keys", "read", scoped=True)])
async def get_key(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Data[KeyResponse]:
    """One key with its decrypted value."""
    async with platform.db.session() as session:
        key = await keys.get_by_ref(session, ref)
    if key is None:
        raise NotFound(f"Key '{ref}' not found")
    _check(principal, key, "read")
    return Data(data=_response(key, reveal(platform.secrets, key)))


@router.put("/keys/{ref}", dependencies=[require("keys", "update", scoped=True)])
async def update_key(
    ref: str, body: UpdateKeyRequest, platform: PlatformDep, principal: PrincipalDep
) -> Data[KeyResponse]:
    """Update name, value and/or the encryption flag.

    The stored value always matches the flag: changing only ``encrypted`` decrypts and re-seals
    the current value (fixing the flag-only flip of docs/api.md).
    """
    async with platform.db.transaction() as session:
        key = await keys.get_by_ref(session, ref)
        if key is None:
            raise NotFound(f"Key '{ref}' not found")
        _check(principal, key, "update")
        encrypted = key.encrypted if body.encrypted is None else body.encrypted
        plaintext = body.value
        if plaintext is None and encrypted != key.encrypted:
            plaintext = reveal(platform.secrets, key)
        if body.name is not None and body.name != key.name:
            if await keys.name_taken(session, key.owner_type, key.owner, body.name, except_id=key.id):
                raise Conflict(f"Key with name '{body.name}' already exists for owner '{key.owner}'")
            key.name = body.name
        if plaintext is not None:
            key.value, key.encryption_key_hash = seal(platform.secrets, plaintext, encrypted)
            key.encrypted = encrypted
        await session.flush()
        current = plaintext if plaintext is not None else reveal(platform.secrets, key)
    return Data(data=_response(key, current), message="Key updated successfully")


@router.delete("/keys/{ref}", dependencies=[require("keys", "delete", scoped=True)])
async def delete_key(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Success:
    """Delete one key."""
    async with platform.db.transaction() as session:
        key = await keys.get_by_ref(session, ref)
        if key is None:
            raise NotFound(f"Key '{ref}' not found")
        _check(principal, key, "delete")
        await keys.delete(session, key)
    return Success(message="Key deleted successfully")
