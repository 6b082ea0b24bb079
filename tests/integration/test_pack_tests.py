"""Pack tests through the API (docs/packs.md): the test routes, and tests at registration."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.pack_sources import make_pack

PACKS = "/api/v1/packs"
PASSING = 'echo "Total Tests: 2"; echo "Passed: 2"; echo "Failed: 0"; echo "Skipped: 0"\n'
HALF = 'echo "Total Tests: 2"; echo "Passed: 1"; echo "Failed: 1"; exit 1\n'


async def register(api: httpx.AsyncClient, path: Path, **extra: object) -> httpx.Response:
    return await api.post(f"{PACKS}/register", json={"path": str(path), **extra})


async def test_core_pack_tests_pass_through_the_test_route(api: httpx.AsyncClient, packs_dir: Path) -> None:
    registered = await register(api, packs_dir / "core", skip_tests=True)
    assert registered.status_code == 201, registered.text
    assert (await api.get(f"{PACKS}/core/tests/latest")).status_code == 404

    response = await api.post(f"{PACKS}/core/test")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Pack tests executed successfully"
    result = body["data"]
    failures = [c for s in result["testSuites"] for c in s["testCases"] if c["status"] != "passed"]
    assert result["status"] == "passed", failures
    assert sorted(s["name"] for s in result["testSuites"]) == ["python", "shell"]
    assert result["totalTests"] > 10 and result["passRate"] == 1.0 and result["packRef"] == "core"

    listed = (await api.get(f"{PACKS}/core/tests")).json()
    assert listed["pagination"]["total_items"] == 1
    (run,) = listed["data"]
    assert (run["triggerReason"], run["packVersion"], run["passed"], run["failed"]) == (
        "manual",
        "1.0.0",
        result["passed"],
        0,
    )
    assert run["result"]["testSuites"][0]["testCases"][0]["name"].endswith("_suite")
    latest = (await api.get(f"{PACKS}/core/tests/latest")).json()["data"]
    assert latest["id"] == run["id"] and set(latest) == {
        "id", "packId", "packVersion", "executionTime", "triggerReason", "totalTests", "passed",
        "failed", "skipped", "passRate", "durationMs", "result", "created",
    }  # fmt: skip


async def test_test_route_errors(api: httpx.AsyncClient, tmp_path: Path) -> None:
    assert (await api.post(f"{PACKS}/nope/test")).status_code == 404
    assert (await api.get(f"{PACKS}/nope/tests")).status_code == 404
    plain = make_pack(tmp_path / "a", "plain")
    assert (await register(api, plain)).status_code == 201
    none = await api.post(f"{PACKS}/plain/test")
    assert none.status_code == 400 and none.json()["error"] == "No testing configuration found in pack.yaml"
    latest = await api.get(f"{PACKS}/plain/tests/latest")
    assert latest.json() == {"error": "No test results found for pack 'plain'", "code": "NOT_FOUND"}

    off = make_pack(tmp_path / "b", "muted", test_script=PASSING)
    (off / "pack.yaml").write_text((off / "pack.yaml").read_text().replace("enabled: true", "enabled: false"))
    assert (await register(api, off)).status_code == 201
    disabled = await api.post(f"{PACKS}/muted/test")
    assert disabled.status_code == 400 and disabled.json()["error"] == "Testing is disabled for this pack"


async def test_registration_runs_the_tests_and_stores_the_run(api: httpx.AsyncClient, tmp_path: Path) -> None:
    good = make_pack(tmp_path / "good", "good", test_script=PASSING)
    assert (await register(api, good)).status_code == 201
    (run,) = (await api.get(f"{PACKS}/good/tests")).json()["data"]
    assert (run["triggerReason"], run["totalTests"], run["passed"]) == ("install", 2, 2)

    bad = make_pack(tmp_path / "bad", "bad", test_script=HALF)
    refused = await register(api, bad)
    assert refused.status_code == 400
    assert refused.json()["error"].startswith(
        "Pack registration failed: tests did not pass. Use force=true to register anyway.\n"
        "pack tests did not pass: 1/2 passed (pass rate 50%, minimum 100%)"
    )
    assert (await api.get(f"{PACKS}/bad")).status_code == 404

    forced = await register(api, bad, force=True)
    assert forced.status_code == 201
    (stored,) = (await api.get(f"{PACKS}/bad/tests")).json()["data"]
    assert (stored["failed"], stored["passRate"]) == (1, 0.5)

    # A lower bar: half the tests passing is enough.
    lenient = make_pack(tmp_path / "lenient", "lenient", test_script=HALF, extra="")
    manifest = (lenient / "pack.yaml").read_text().replace("  on_failure: block", "  min_pass_rate: 0.5")
    (lenient / "pack.yaml").write_text(manifest)
    assert (await register(api, lenient)).status_code == 201
