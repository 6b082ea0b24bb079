"""/api/v1/keys (docs/api.md): ownership, uniqueness, encryption at rest, CRUD."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import sqlalchemy as sa

from attune.db import models
from attune.domain.crypto import SecretBox
from attune.platform import Platform

KEYS = "/api/v1/keys"


def master_secret(platform: Platform) -> str:
    secret = platform.settings.security.encryption_key
    assert secret
    return secret


async def key_row(platform: Platform, ref: str) -> models.Key:
    async with platform.db.session() as session:
        return (await session.execute(sa.select(models.Key).where(models.Key.ref == ref))).scalar_one()


async def add_pack(platform: Platform, ref: str = "demo") -> models.Pack:
    async with platform.db.transaction() as session:
        pack = models.Pack(ref=ref, label=ref, version="1.0.0")
        session.add(pack)
        await session.flush()
    return pack


async def add_action(platform: Platform, pack: models.Pack, name: str = "run") -> models.Action:
    async with platform.db.transaction() as session:
        action = models.Action(
            ref=f"{pack.ref}.{name}",
            pack=pack.id,
            pack_ref=pack.ref,
            label=name,
            description="",
            entrypoint="run.sh",
        )
        session.add(action)
        await session.flush()
    return action


async def create(api: httpx.AsyncClient, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"ref": "app.token", "owner_type": "system", "name": "token", "value": "s3cr3t"}
    payload.update(body)
    return await api.post(KEYS, json=payload)


async def test_create_encrypts_by_default_and_returns_plaintext(api: httpx.AsyncClient) -> None:
    response = await create(api, owner="ignored")
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Key created successfully"
    data = body["data"]
    assert data["value"] == "s3cr3t"
    assert data["encrypted"] is True
    assert data["owner_type"] == "system"
    assert data["owner"] == "system"
    assert data["created"].endswith("Z")
    assert "encryption_key_hash" not in data
    assert set(data) == {
        "id",
        "ref",
        "owner_type",
        "owner",
        "owner_identity",
        "owner_pack",
        "owner_pack_ref",
        "owner_action",
        "owner_action_ref",
        "owner_sensor",
        "owner_sensor_ref",
        "name",
        "encrypted",
        "value",
        "created",
        "updated",
    }


async def test_database_never_holds_the_plaintext_or_the_aes_key(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    plaintext = "very-secret-password-value"
    assert (await create(api, value=plaintext)).status_code == 201
    row = await key_row(platform, "app.token")
    secret = master_secret(platform)
    aes_key = hashlib.sha256(secret.encode()).digest()
    assert row.encrypted is True
    assert row.value != plaintext
    assert plaintext not in row.value
    # The fingerprint is SHA-256 of the derived key, never the derived key itself (docs/development.md).
    assert row.encryption_key_hash == hashlib.sha256(aes_key).hexdigest()
    assert row.encryption_key_hash != aes_key.hex()
    stored = " ".join(str(getattr(row, column.key)) for column in models.Key.__table__.columns)
    for forbidden in (plaintext, secret, aes_key.hex()):
        assert forbidden not in stored
    # The stored value is the documented format: only the master secret opens it.
    assert SecretBox(secret).decrypt(row.value, row.encryption_key_hash) == plaintext


async def test_plain_key_is_stored_as_is(api: httpx.AsyncClient, platform: Platform) -> None:
    response = await create(api, encrypted=False, value="visible")
    assert response.status_code == 201
    row = await key_row(platform, "app.token")
    assert (row.encrypted, row.value, row.encryption_key_hash) == (False, "visible", None)


async def test_create_without_encryption_key_is_400(api: httpx.AsyncClient, platform: Platform) -> None:
    platform.secrets = None
    response = await create(api)
    assert response.status_code == 400
    assert response.json() == {
        "error": "Cannot encrypt: encryption key not configured on server",
        "code": "BAD_REQUEST",
    }
    plain = await create(api, encrypted=False)
    assert plain.status_code == 201


async def test_get_returns_decrypted_value_and_404(api: httpx.AsyncClient) -> None:
    await create(api, value="hunter2")
    response = await api.get(f"{KEYS}/app.token")
    assert response.status_code == 200
    assert "message" not in response.json()
    assert response.json()["data"]["value"] == "hunter2"
    missing = await api.get(f"{KEYS}/nope.nothing")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Key 'nope.nothing' not found", "code": "NOT_FOUND"}


async def test_owner_resolved_from_pack_ref(api: httpx.AsyncClient, platform: Platform) -> None:
    pack = await add_pack(platform)
    response = await create(api, ref="demo.api_key", owner_type="pack", owner_pack_ref="demo", owner="x")
    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["owner"], data["owner_pack"], data["owner_pack_ref"]) == (str(pack.id), pack.id, "demo")
    assert data["owner_action"] is None


async def test_owner_resolved_from_action_ref_and_by_id(api: httpx.AsyncClient, platform: Platform) -> None:
    pack = await add_pack(platform)
    action = await add_action(platform, pack)
    by_ref = await create(api, ref="a.one", owner_type="action", owner_action_ref="demo.run")
    assert by_ref.status_code == 201
    assert by_ref.json()["data"]["owner"] == str(action.id)
    by_id = await create(api, ref="a.two", name="other", owner_type="action", owner_action=action.id)
    assert by_id.status_code == 201
    assert by_id.json()["data"]["owner_action_ref"] == "demo.run"


async def test_unknown_owner_ref_is_400(api: httpx.AsyncClient) -> None:
    cases = [
        ("pack", "owner_pack_ref", "nope", "Pack with ref 'nope' not found"),
        ("action", "owner_action_ref", "nope.x", "Action with ref 'nope.x' not found"),
        ("sensor", "owner_sensor_ref", "nope.s", "Sensor with ref 'nope.s' not found"),
    ]
    for owner_type, field, ref, message in cases:
        response = await create(api, owner_type=owner_type, **{field: ref})
        assert response.status_code == 400
        assert response.json() == {"error": message, "code": "BAD_REQUEST"}


async def test_owner_invariant_violations_are_400(api: httpx.AsyncClient, platform: Platform) -> None:
    pack = await add_pack(platform)
    action = await add_action(platform, pack)
    missing = await create(api, owner_type="pack")
    assert missing.status_code == 400
    assert missing.json()["error"] == "Exactly one owner field must be set for owner_type pack"
    two = await create(api, owner_type="pack", owner_pack=pack.id, owner_action=action.id)
    assert two.status_code == 400
    assert two.json()["error"] == "Exactly one owner field must be set for owner_type pack"
    wrong = await create(api, owner_type="pack", owner_action=action.id)
    assert wrong.status_code == 400
    system = await create(api, owner_type="system", owner_pack=pack.id)
    assert system.status_code == 400
    assert system.json()["code"] == "BAD_REQUEST"


async def test_identity_owned_key(api: httpx.AsyncClient, user: models.Identity) -> None:
    response = await create(api, owner_type="identity", owner_identity=user.id)
    assert response.status_code == 201
    assert response.json()["data"]["owner"] == str(user.id)


async def test_duplicates_are_409(api: httpx.AsyncClient) -> None:
    assert (await create(api)).status_code == 201
    same_ref = await create(api, name="another")
    assert same_ref.status_code == 409
    assert same_ref.json() == {"error": "Key with ref 'app.token' already exists", "code": "CONFLICT"}
    same_name = await create(api, ref="app.token2")
    assert same_name.status_code == 409
    assert same_name.json()["code"] == "CONFLICT"


async def test_field_rules_are_422_naming_the_field(api: httpx.AsyncClient) -> None:
    upper = await create(api, ref="App.Token")
    assert upper.status_code == 422
    assert upper.json()["code"] == "VALIDATION_ERROR"
    assert "ref" in upper.json()["error"]
    empty_segment = await create(api, ref="app..token")
    assert empty_segment.status_code == 422
    empty = await create(api, value="")
    assert empty.status_code == 422
    assert "value" in empty.json()["error"]
    unknown_type = await create(api, owner_type="planet")
    assert unknown_type.status_code == 422
    assert unknown_type.headers["content-type"].startswith("text/plain")


async def test_list_has_no_values_sorted_by_ref_with_family_b(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    for index, ref in enumerate(["c.key", "a.key", "b.key"]):
        assert (await create(api, ref=ref, name=f"n{index}")).status_code == 201
    response = await api.get(KEYS)
    assert response.status_code == 200
    body = response.json()
    assert [item["ref"] for item in body["data"]] == ["a.key", "b.key", "c.key"]
    assert all("value" not in item for item in body["data"])
    assert set(body["data"][0]) == {"id", "ref", "owner_type", "owner", "name", "encrypted", "created"}
    assert body["pagination"]["page_size"] == 50
    page = (await api.get(KEYS, params={"per_page": 2, "page": 2, "page_size": 1})).json()
    assert [item["ref"] for item in page["data"]] == ["c.key"]
    assert page["pagination"] == {
        "page": 2,
        "page_size": 2,
        "total_items": 3,
        "total_pages": 2,
        "has_next": False,
        "has_previous": True,
    }


async def test_list_filters_by_owner_type_and_owner(api: httpx.AsyncClient, platform: Platform) -> None:
    pack = await add_pack(platform)
    await create(api, ref="sys.key")
    await create(api, ref="pack.key", owner_type="pack", owner_pack=pack.id)
    by_type = (await api.get(KEYS, params={"owner_type": "pack"})).json()
    assert [item["ref"] for item in by_type["data"]] == ["pack.key"]
    by_owner = (await api.get(KEYS, params={"owner": "system"})).json()
    assert [item["ref"] for item in by_owner["data"]] == ["sys.key"]
    bad = await api.get(KEYS, params={"owner_type": "planet"})
    assert bad.status_code == 400


async def test_put_value_reencrypts(api: httpx.AsyncClient, platform: Platform) -> None:
    await create(api, value="old-value")
    before = await key_row(platform, "app.token")
    response = await api.put(f"{KEYS}/app.token", json={"value": "new-value"})
    assert response.status_code == 200
    assert response.json()["message"] == "Key updated successfully"
    assert response.json()["data"]["value"] == "new-value"
    after = await key_row(platform, "app.token")
    assert after.value not in (before.value, "new-value")
    assert SecretBox(master_secret(platform)).decrypt(after.value) == "new-value"


async def test_put_changing_only_encrypted_reseals_the_value(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await create(api, value="flip-me")
    to_plain = await api.put(f"{KEYS}/app.token", json={"encrypted": False})
    assert to_plain.status_code == 200
    assert to_plain.json()["data"]["value"] == "flip-me"
    row = await key_row(platform, "app.token")
    assert (row.encrypted, row.value, row.encryption_key_hash) == (False, "flip-me", None)

    to_secret = await api.put(f"{KEYS}/app.token", json={"encrypted": True})
    assert to_secret.status_code == 200
    assert to_secret.json()["data"]["value"] == "flip-me"
    row = await key_row(platform, "app.token")
    assert row.encrypted is True
    assert "flip-me" not in row.value
    assert row.encryption_key_hash == SecretBox(master_secret(platform)).fingerprint
    assert (await api.get(f"{KEYS}/app.token")).json()["data"]["value"] == "flip-me"


async def test_put_value_with_encrypted_false_stores_plain(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await create(api)
    response = await api.put(f"{KEYS}/app.token", json={"value": "now-plain", "encrypted": False})
    assert response.status_code == 200
    row = await key_row(platform, "app.token")
    assert (row.encrypted, row.value) == (False, "now-plain")


async def test_put_without_encryption_key_cannot_encrypt(api: httpx.AsyncClient, platform: Platform) -> None:
    await create(api, encrypted=False)
    platform.secrets = None
    response = await api.put(f"{KEYS}/app.token", json={"encrypted": True})
    assert response.status_code == 400
    assert response.json()["error"] == "Cannot encrypt: encryption key not configured on server"
    row = await key_row(platform, "app.token")
    assert row.encrypted is False


async def test_empty_put_changes_nothing(api: httpx.AsyncClient) -> None:
    created = (await create(api)).json()["data"]
    response = await api.put(f"{KEYS}/app.token", json={"name": None})
    assert response.status_code == 200
    assert response.json()["data"] == created


async def test_put_rename_conflict_and_404(api: httpx.AsyncClient) -> None:
    await create(api)
    await create(api, ref="app.other", name="other")
    clash = await api.put(f"{KEYS}/app.other", json={"name": "token"})
    assert clash.status_code == 409
    renamed = await api.put(f"{KEYS}/app.other", json={"name": "renamed"})
    assert renamed.json()["data"]["name"] == "renamed"
    missing = await api.put(f"{KEYS}/nope", json={"value": "x"})
    assert missing.status_code == 404


async def test_delete(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.delete(f"{KEYS}/app.token")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Key deleted successfully"}
    assert (await api.get(f"{KEYS}/app.token")).status_code == 404
    assert (await api.delete(f"{KEYS}/app.token")).status_code == 404
