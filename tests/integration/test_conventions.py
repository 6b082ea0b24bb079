"""Cross-cutting HTTP conventions (docs/api.md): auth guard, errors, limits, CORS, health, OpenAPI."""

from __future__ import annotations

import re

import httpx

from attune.api.app import PUBLIC_PATHS


async def test_every_non_public_route_requires_a_token(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api-spec/openapi.json")).json()
    checked = 0
    for path, operations in spec["paths"].items():
        if path in PUBLIC_PATHS:
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            response = await client.request(
                method.upper(), concrete, json={} if method in ("post", "put") else None
            )
            assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code}"
            assert response.json() == {"error": {"code": 401, "message": "Missing authentication token"}}
            checked += 1
    assert checked >= 60, f"only {checked} protected operations found"


async def test_unauthenticated_bad_request_gets_401_not_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/executions/abc")
    assert response.status_code == 401
    response = await client.post(
        "/api/v1/packs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api-spec/openapi.json")).json()
    assert spec["info"]["title"] == "Attune API"
    assert spec["info"]["version"] == "0.1.0"
    assert "bearer_auth" in spec["components"]["securitySchemes"]
    pagination = spec["components"]["schemas"]["Pagination"]["properties"]
    assert {"has_next", "has_previous"} <= set(pagination)
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_unknown_api_path_is_a_standard_404_and_no_trailing_slash(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "No such route: /api/v1/nothing-here", "code": "NOT_FOUND"}
    slash = await api.get("/api/v1/packs/")
    assert slash.status_code == 404
    assert slash.json()["code"] == "NOT_FOUND"
    assert (await api.get("/auth/nope")).json()["code"] == "NOT_FOUND"


async def test_a_login_under_api_v1_points_at_auth(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/login", json={"login": "a", "password": "b"})
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "NOT_FOUND"
    assert "/auth/login" in body["error"] and "not /api/v1/auth/" in body["error"]


async def test_wrong_method_is_empty_405_with_allow(api: httpx.AsyncClient) -> None:
    response = await api.patch("/api/v1/packs")
    assert response.status_code == 405
    assert response.content == b""
    assert "GET" in response.headers["allow"]


async def test_malformed_input_is_rejected_in_plain_text(api: httpx.AsyncClient) -> None:
    bad_json = await api.post("/api/v1/packs", content=b"{nope", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.headers["content-type"].startswith("text/plain")
    wrong_type = await api.post("/api/v1/packs", content=b"ref=x", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    shape = await api.post("/api/v1/packs", json={"ref": "x"})
    assert shape.status_code == 422
    assert shape.headers["content-type"].startswith("text/plain")
    assert "label" in shape.text
    bad_query = await api.get("/api/v1/packs", params={"page": "abc"})
    assert bad_query.status_code == 400


async def test_field_rule_failure_is_json_422_naming_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/packs", json={"ref": "ok", "label": "", "version": "1.0.0"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["error"].startswith("Validation failed: label")


async def test_body_over_two_mebibytes_is_413(api: httpx.AsyncClient) -> None:
    big = b'{"x": "' + b"a" * (2 * 1024 * 1024 + 10) + b'"}'
    response = await api.post("/api/v1/packs", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/plain")


async def test_cors_allows_default_origins_only(client: httpx.AsyncClient) -> None:
    allowed = await client.options(
        "/api/v1/packs",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = await client.get("/health", headers={"Origin": "http://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_health_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    detailed = await client.get("/health/detailed")
    assert detailed.json() == {"status": "ok", "version": "0.1.0", "database": "connected"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.content == b""
    assert (await client.get("/health/live")).status_code == 200


async def test_docs_page_loads_its_assets_from_this_server(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
    assert scripts, page.text
    for url in scripts:
        assert url.startswith("/docs/assets/"), url  # nothing from a CDN
        asset = await client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
