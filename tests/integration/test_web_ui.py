"""The API serves the built web UI at / (docs/web-ui.md) without taking over the API's own paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from attune.api.ui import install_ui


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "ui_dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><div id=root></div>")
    (root / "assets" / "app-1234.js").write_text("console.log('attune')")
    (tmp_path / "secret.txt").write_text("outside the build")
    return root


@pytest.fixture
async def ui(app: Any, dist: Path, api: httpx.AsyncClient) -> Any:
    """An unauthenticated client of an app serving ``dist`` (``api`` shares the app, with a token)."""
    install_ui(app.router, dist)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://attune.test") as client:
        yield client


async def test_root_and_deep_links_serve_the_single_page_app(ui: httpx.AsyncClient) -> None:
    for path in ("/", "/executions/42", "/actions/workflows/core.x/edit", "/login?next=%2F"):
        response = await ui.get(path)
        assert response.status_code == 200, path
        assert "id=root" in response.text
        assert response.headers["cache-control"] == "no-cache"


async def test_built_assets_are_served_with_a_long_cache(ui: httpx.AsyncClient) -> None:
    response = await ui.get("/assets/app-1234.js")
    assert response.status_code == 200
    assert response.text == "console.log('attune')"
    assert "immutable" in response.headers["cache-control"]


async def test_a_path_cannot_leave_the_build_directory(ui: httpx.AsyncClient) -> None:
    response = await ui.get("/assets/%2e%2e/%2e%2e/secret.txt")
    assert "outside the build" not in response.text


async def test_api_paths_keep_their_routes_and_their_empty_404(ui: httpx.AsyncClient) -> None:
    assert (await ui.get("/health")).status_code == 200
    assert (await ui.get("/api-spec/openapi.json")).json()["info"]["title"] == "Attune API"
    assert (await ui.get("/docs")).status_code == 200
    for path in ("/api/v1/nothing-here", "/api/v1/packs/", "/auth/nothing", "/api", "/docs/x", "/health/x"):
        response = await ui.get(path)
        assert response.status_code == 404, path
        assert response.content == b"", path
    unauthenticated = await ui.get("/api/v1/packs")
    assert unauthenticated.status_code == 401


async def test_wrong_method_on_an_api_route_is_still_405_and_posts_never_get_the_ui(
    ui: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    assert (await api.patch("/api/v1/packs")).status_code == 405
    assert (await ui.post("/executions/1")).status_code == 404


async def test_without_a_build_the_root_explains_how_to_build_it(app: Any, tmp_path: Path) -> None:
    install_ui(app.router, tmp_path / "missing")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://attune.test") as client:
        response = await client.get("/")
    assert response.status_code == 404
    assert "make web" in response.text


async def test_validate_a_workflow_document_without_storing_it(api: httpx.AsyncClient) -> None:
    good = {
        "ref": "core.drawn",
        "label": "Drawn",
        "version": "1.0.0",
        "tasks": [
            {"name": "a", "action": "core.echo", "next": [{"when": "{{ succeeded() }}", "do": ["b"]}]},
            {"name": "b", "action": "core.noop", "__chart_meta__": {"position": {"x": 1, "y": 2}}},
        ],
    }
    # No actions are registered here: the document parses, and only the actions are unknown.
    ok = await api.post("/api/v1/workflows/validate", json={"definition": good})
    assert ok.status_code == 200
    assert ok.json()["data"] == {
        "valid": False,
        "errors": ["tasks[0] (a): unknown action 'core.echo'", "tasks[1] (b): unknown action 'core.noop'"],
    }
    bad = {**good, "tasks": [{"name": "a", "action": "core.echo", "next": [{"do": ["ghost"]}]}]}
    data = (await api.post("/api/v1/workflows/validate", json={"definition": bad})).json()["data"]
    assert data["valid"] is False
    assert any("ghost" in e for e in data["errors"]), data
    not_a_document = await api.post("/api/v1/workflows/validate", json={"definition": []})
    assert not_a_document.status_code == 422
    assert (await api.get("/api/v1/workflows/core.drawn")).status_code == 404
