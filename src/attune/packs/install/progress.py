"""Progress reports of an install, streamed to the CLI and the web UI (docs/packs.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an install.

    ``stage`` is ``fetch``, ``verify``, ``dependencies``, ``environment``, ``tests`` or ``register``.
    ``current``/``total`` measure the step in ``unit`` (``bytes``, ``objects`` or ``steps``) when known.
    """

    stage: str
    message: str
    pack: str | None = None
    current: int | None = None
    total: int | None = None
    unit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


Progress = Callable[[ProgressEvent], None]


def silent(_event: ProgressEvent) -> None:
    """A progress sink that drops everything."""


class Throttle:
    """Lets through at most one counter update per ``interval`` seconds (plus the last one)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self._last = 0.0

    def ready(self, *, final: bool = False) -> bool:
        now = time.monotonic()
        if final or now - self._last >= self.interval:
            self._last = now
            return True
        return False
