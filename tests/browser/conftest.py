"""Browser tests: Playwright driving Debian's chromium against a real embedded server.

They test the UI, not the backend pair, so they run in the SQLite pass only (the Makefile's
PostgreSQL pass leaves ``tests/browser`` out; run directly under the postgres backend they fail
with that explanation rather than skipping). The UI must be built first (``make web``).
Screenshots for the README's tour land in ``docs/screenshots/``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from attune.api.ui import UI_DIST
from attune.testing.deployment import DEFAULT_LOGIN, Deployment
from tests.acceptance.harness import running_deployment
from tests.conftest import BACKEND, REPO, require

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = REPO / "docs" / "screenshots"
TEST_PACK = Path(__file__).parent / "packs" / "uitest"

pytestmark = pytest.mark.slow


def _ensure_chromium() -> None:
    """Install Debian's chromium when it is missing (the machines run as root)."""
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=False,
            capture_output=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    require(CHROMIUM.exists(), "chromium is not installed and `apt-get install chromium` failed")


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """The preconditions of every browser test: the SQLite pass, a built UI, chromium."""
    if BACKEND != "sqlite":
        pytest.fail(
            "browser tests test the UI, not the backend pair: run them in the SQLite pass "
            "(make test-sqlite / make test-browser)"
        )
    require((UI_DIST / "index.html").is_file(), "the web UI is not built: run `make web`")
    _ensure_chromium()


@pytest.fixture(scope="module")
def playwright_browser(browser_ready: None) -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop running while it is started, which
    # would break the asyncio tests that run after this directory if it lived for the session.
    with sync_playwright() as pw:
        browser = _launch(pw)
        yield browser
        browser.close()


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, browser_ready: None) -> Iterator[Deployment]:
    """One embedded server for the browser tests, with the test pack registered."""
    root = tmp_path_factory.mktemp("browser")
    with running_deployment(root) as deployment:
        pack_dir = deployment.workdir / "uitest"
        shutil.copytree(TEST_PACK, pack_dir)
        deployment.post("/api/v1/packs/register", {"path": str(pack_dir), "skip_tests": True})
        yield deployment


@pytest.fixture
def page(playwright_browser: Browser, server: Deployment) -> Iterator[Page]:
    context = playwright_browser.new_context(viewport=VIEWPORT, base_url=server.base)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def login(page: Page, path: str = "/", credentials: dict[str, str] | None = None) -> None:
    """Sign in through the login form and land on ``path``."""
    creds = credentials or DEFAULT_LOGIN
    page.goto(path)
    page.wait_for_url("**/login")
    page.fill("input[name=login]", creds["login"])
    page.fill("input[name=password]", creds["password"])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def signed_in(page: Page) -> Page:
    login(page)
    page.get_by_role("heading", name="Welcome back", exact=False).wait_for()
    return page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def no_horizontal_scroll(page: Page) -> None:
    widths: Any = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url} scrolls horizontally at 1280x800: {widths}"


def api(server: Deployment, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, f"{server.base}{path}", headers=server.headers, json=body, timeout=30)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json().get("data") if response.content else None
