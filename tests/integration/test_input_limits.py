"""Untrusted input has a budget (docs/security.md "Input limits").

Templates stop at their time and size limits and say so on the enforcement, YAML bombs and deep
nesting are refused with 422 naming the file, ids out of range are 404, and an oversized upload
without a Content-Length is 413.
"""

from __future__ import annotations

import io
import resource
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from attune.db import models
from attune.platform import Platform
from attune.settings import Settings
from tests.integration.test_executor import add_rule, rows, running_executor, seed_pack, settle

EVENTS = "/api/v1/events"
BIG_ID = 2**64
UPLOAD_LIMIT = 64 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.limits.template_timeout = 0.5
    settings.pack_install.max_archive_bytes = UPLOAD_LIMIT
    return settings


@pytest.fixture
async def loose(app: Any, platform: Platform, user: models.Identity) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client that sees the 500 answer instead of the server's exception."""
    token = platform.tokens.access(user.id, user.login)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://attune.test", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def laughs(levels: int) -> str:
    """A pack.yaml whose key ``lol`` expands to 9**levels strings through nine-fold aliases."""
    lines = [
        "ref: bomb",
        "label: Bomb",
        "version: 1.0.0",
        'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        alias = f"*l{level - 1}"
        lines.append(f"l{level}: &l{level} [{', '.join([alias] * 9)}]")
    return "\n".join(lines) + "\n"


# -- templates -----------------------------------------------------------------------------------------


async def test_a_template_over_its_time_limit_gives_a_disabled_enforcement_with_the_reason(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    # About ten million loop iterations: seconds of CPU, far past the 0.5 s limit set above.
    bomb = await add_rule(
        platform,
        pack,
        action,
        trigger,
        "bomb",
        action_params={
            "x": "{% for i in range(3200) %}{% for j in range(3200) %}{% endfor %}{% endfor %}done"
        },
    )
    fine = await add_rule(
        platform, pack, action, trigger, "fine", action_params={"x": "{{ event.payload.n }}"}
    )
    async with running_executor(platform):
        started = time.monotonic()
        response = await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 1}})
        assert response.status_code == 201
        await settle(platform)
        elapsed = time.monotonic() - started
    enforcements = {e.rule: e for e in await rows(platform, models.Enforcement)}
    refused = enforcements[bomb.id]
    assert refused.status == "disabled"
    assert refused.error is not None and "took longer than the limit of 0.5 s" in refused.error
    assert enforcements[fine.id].config == {"x": 1}
    assert elapsed < 10
    shown = await api.get(f"/api/v1/enforcements/{refused.id}")
    assert shown.json()["data"]["error"] == refused.error
    # Nothing ran for the refused firing.
    assert [x.enforcement for x in await rows(platform, models.Execution)] == [enforcements[fine.id].id]


async def test_a_template_over_its_output_limit_is_refused(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    doubling = (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    )
    bomb = await add_rule(
        platform, pack, action, trigger, "grow", action_params={"x": doubling + "{{ ns.s }}"}
    )
    async with running_executor(platform):
        assert (await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {}})).status_code == 201
        await settle(platform)
    [refused] = [e for e in await rows(platform, models.Enforcement) if e.rule == bomb.id]
    assert refused.status == "disabled"
    assert refused.error is not None and "limit" in refused.error


# -- YAML ---------------------------------------------------------------------------------------------


async def test_a_billion_laughs_pack_yaml_is_refused_quickly_and_cheaply(loose: httpx.AsyncClient) -> None:
    archive = tarball({"pack.yaml": laughs(9)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    response = await loose.post(
        "/api/v1/packs/upload", files={"file": ("bomb.tar.gz", archive, "application/gzip")}
    )
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("pack.yaml:")
    assert "aliases" in response.json()["error"]
    assert elapsed < 5
    assert grown_mb < 100


async def test_a_pack_yaml_expanding_past_the_node_limit_is_refused(loose: httpx.AsyncClient) -> None:
    # 9**6 = 531441 strings: small enough to load without limits, over the 200000-node limit.
    archive = tarball({"pack.yaml": laughs(6)})
    response = await loose.post(
        "/api/v1/packs/upload", files={"file": ("b.tar.gz", archive, "application/gzip")}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("pack.yaml:")


@pytest.mark.parametrize(
    "nesting",
    [
        "x: " + "[" * 5000 + "]" * 5000,
        "x:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 1500)) + "  " * 1500 + "v: 1",
    ],
    ids=["flow", "block"],
)
async def test_deeply_nested_yaml_is_refused_with_422(loose: httpx.AsyncClient, nesting: str) -> None:
    manifest = "ref: deep\nlabel: Deep\nversion: 1.0.0\n" + nesting + "\n"
    response = await loose.post(
        "/api/v1/packs/upload",
        files={"file": ("d.tar.gz", tarball({"pack.yaml": manifest}), "application/gzip")},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("pack.yaml:")
    assert "nested deeper than 100 levels" in response.json()["error"]


async def test_a_deeply_nested_workflow_file_is_reported_not_a_server_error(
    loose: httpx.AsyncClient, platform: Platform, packs_dir: Any
) -> None:
    pack_dir = packs_dir / "deep"
    pack_dir.mkdir()
    (pack_dir / "pack.yaml").write_text("ref: deep\nlabel: Deep\nversion: 1.0.0\n")
    registered = await loose.post("/api/v1/packs/register", json={"path": str(pack_dir)})
    assert registered.status_code == 201, registered.text
    (pack_dir / "workflows").mkdir()
    (pack_dir / "workflows" / "w.yaml").write_text("tasks: " + "[" * 3000 + "]" * 3000 + "\n")
    response = await loose.post("/api/v1/packs/deep/workflows/validate")
    assert response.status_code == 200, response.text
    [problem] = response.json()["data"]["errors"]["deep.w"]
    assert "nested deeper than 100 levels" in problem


# -- ids out of range ---------------------------------------------------------------------------------


def int_path_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(method, url with every integer path parameter set to 2**64, template) of every operation."""
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", []) if p.get("in") == "path"]
            integers = {p["name"] for p in params if p.get("schema", {}).get("type") == "integer"}
            if not integers:
                continue
            url = template
            for param in params:
                url = url.replace(
                    "{" + param["name"] + "}", str(BIG_ID) if param["name"] in integers else "x"
                )
            yield method.upper(), url, template


async def test_every_integer_path_id_above_int64_is_404(loose: httpx.AsyncClient) -> None:
    spec = (await loose.get("/api-spec/openapi.json")).json()
    operations = list(int_path_operations(spec))
    assert len(operations) >= 17
    answers = {}
    for method, url, template in operations:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        response = await loose.request(method, url, json=body)
        answers[f"{method} {template}"] = response.status_code
        if response.status_code == 404:
            assert response.json()["code"] == "NOT_FOUND"
    assert {op: status for op, status in answers.items() if status != 404} == {}


async def test_an_id_with_leading_zeros_is_still_an_id(loose: httpx.AsyncClient) -> None:
    response = await loose.get("/api/v1/executions/" + "0" * 30 + "7")
    assert response.status_code == 404
    assert "out of range" not in response.json()["error"]


async def test_an_out_of_range_id_in_a_query_or_body_is_not_a_server_error(loose: httpx.AsyncClient) -> None:
    listed = await loose.get("/api/v1/executions", params={"parent": str(BIG_ID)})
    assert listed.status_code in (200, 400, 422), listed.text
    created = await loose.post(
        EVENTS, json={"trigger_ref": "core.webhook", "payload": {}, "source": BIG_ID, "rule": BIG_ID}
    )
    assert created.status_code in (400, 404, 422), created.text


# -- uploads ------------------------------------------------------------------------------------------


async def test_a_chunked_upload_over_the_limit_is_413(loose: httpx.AsyncClient) -> None:
    boundary = "limitboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.tar.gz"\r\n'
        "Content-Type: application/gzip\r\n\r\n"
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        for _ in range(UPLOAD_LIMIT // 4096 + 8):
            yield b"\0" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await loose.post(
        "/api/v1/packs/upload",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text


# -- the API description -----------------------------------------------------------------------------


async def test_every_operation_declares_the_shared_failure_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api-spec/openapi.json")).json()
    missing = []
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            wanted = set()
            if template.startswith(("/api/", "/auth/")):
                wanted |= {"401", "403"}
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                wanted |= {"404", "400", "422"}
            if method in ("post", "put", "patch"):
                wanted |= {"400", "409", "413", "415", "422"}
            if template == "/auth/login":
                wanted.add("429")
            if wanted - declared:
                missing.append(f"{method.upper()} {template}: {sorted(wanted - declared)}")
    assert missing == []
    assert spec["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]


# -- server errors found by make fuzz ---------------------------------------------------------------


async def test_pack_sources_naming_an_unknown_home_or_nothing_fail_cleanly(loose: httpx.AsyncClient) -> None:
    response = await loose.post("/api/v1/packs/download", json={"packs": ["~nosuchuser_attune/p", ""]})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["failure_count"] == 2
    registered = await loose.post("/api/v1/packs/register", json={"path": "~nosuchuser_attune/p"})
    assert 400 <= registered.status_code < 500, registered.text
