"""What keeps a server process's idle memory down (docs/performance.md "Idle RSS"): glibc's
malloc thresholds are pinned so that freed Argon2 blocks do not stay resident
(attune.services.memory), and a scaled service's process does not load the migration stack."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def run(code: str) -> str:
    """Runs ``code`` in a fresh interpreter: the thresholds are per process."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@glibc_only
def test_the_thresholds_are_pinned_on_glibc() -> None:
    assert run("from attune.services.memory import pin_malloc_thresholds as p; print(p())") == "True"


def test_the_server_pins_them_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from attune import server
    from attune.db import migrate
    from attune.settings import Settings

    calls: list[str] = []

    class Stop(Exception):
        pass

    def pin() -> bool:
        calls.append("pin")
        return True

    async def upgrade(url: str) -> None:
        calls.append("upgrade")
        raise Stop

    monkeypatch.setattr(server, "pin_malloc_thresholds", pin)
    monkeypatch.setattr(migrate, "upgrade", upgrade)
    with pytest.raises(Stop):
        asyncio.run(server.run_server(Settings()))
    assert calls == ["pin", "upgrade"]


def test_the_server_module_leaves_alembic_to_the_embedded_server() -> None:
    code = "import sys, attune.server; print([m for m in ('alembic', 'mako') if m in sys.modules])"
    assert run(code) == "[]"
