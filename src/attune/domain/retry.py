"""An action's retry policy: ``retry: {count, delay, on}`` (docs/packs.md "Retries").

* ``count`` — how many more attempts after the first (0 = never retry);
* ``delay`` — seconds between attempts; absent: exponential backoff (1 s, 2 s, 4 s, … at most
  300 s, with jitter);
* ``on`` — which outcomes are retried: ``failed`` (the action failed, or its worker died) and/or
  ``timeout``; absent: both.

``max_retries: N`` (the older field) means ``retry: {count: N}``. The count is stored in the
action's ``max_retries`` column and copied onto each execution, so an attempt keeps the budget it
started with; delay and ``on`` are read from the action when an attempt ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAILED = "failed"
TIMEOUT = "timeout"
RETRY_ON = (FAILED, TIMEOUT)
#: Upper bounds that keep a typo from scheduling attempts for days.
MAX_COUNT = 100
MAX_DELAY_SECONDS = 86_400


class RetryPolicyError(ValueError):
    """A ``retry`` block that cannot be used; the message names the offending field."""


@dataclass(frozen=True)
class RetryPolicy:
    count: int = 0
    delay: int | None = None
    on: tuple[str, ...] = RETRY_ON

    def as_dict(self) -> dict[str, Any]:
        """The API/YAML shape: ``{"count", "delay", "on"}``."""
        return {"count": self.count, "delay": self.delay, "on": list(self.on)}

    def retries(self, status: str) -> bool:
        """Whether an attempt that ended ``status`` is one this policy retries."""
        if status == TIMEOUT:
            return TIMEOUT in self.on
        # A worker that died (``abandoned``) is a failure of the attempt like any other.
        return status in (FAILED, "abandoned") and FAILED in self.on


def _int(value: Any, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetryPolicyError(f"{field} must be a whole number")
    if not 0 <= value <= maximum:
        raise RetryPolicyError(f"{field} must be between 0 and {maximum}")
    return value


def parse_retry(retry: Any, max_retries: Any = None) -> RetryPolicy | None:
    """The policy written as ``retry`` (a mapping) and/or ``max_retries`` (an int); None when
    neither is given. ``retry.count`` wins over ``max_retries`` when both are present."""
    if retry is None and max_retries is None:
        return None
    if retry is not None and not isinstance(retry, Mapping):
        raise RetryPolicyError("retry must be a mapping with count, delay and on")
    # YAML 1.1 reads an unquoted ``on:`` key as the boolean true (which may arrive as "True").
    block: Mapping[Any, Any] = {
        ("on" if key is True or key == "True" else key): value for key, value in (retry or {}).items()
    }
    unknown = sorted(set(block) - {"count", "delay", "on"})
    if unknown:
        raise RetryPolicyError(f"retry has unknown field(s): {', '.join(map(str, unknown))}")
    raw_count = block.get("count", max_retries)
    count = 0 if raw_count is None else _int(raw_count, "retry.count", MAX_COUNT)
    raw_delay = block.get("delay")
    delay = None if raw_delay is None else _int(raw_delay, "retry.delay", MAX_DELAY_SECONDS)
    on = RETRY_ON
    if block.get("on") is not None:
        raw_on = block["on"]
        items = [raw_on] if isinstance(raw_on, str) else raw_on
        if not isinstance(items, list) or not items or any(item not in RETRY_ON for item in items):
            raise RetryPolicyError(f"retry.on must list one or more of: {', '.join(RETRY_ON)}")
        on = tuple(dict.fromkeys(items))
    return RetryPolicy(count=count, delay=delay, on=on)


def policy_of(max_retries: int | None, delay: int | None, on: Any) -> RetryPolicy:
    """The policy stored in an action's ``max_retries``/``retry_delay_seconds``/``retry_on``."""
    stored_on = tuple(item for item in on if item in RETRY_ON) if isinstance(on, list) else ()
    return RetryPolicy(count=max_retries or 0, delay=delay, on=stored_on or RETRY_ON)


def columns(policy: RetryPolicy) -> dict[str, Any]:
    """The action columns that store ``policy``."""
    return {
        "max_retries": policy.count,
        "retry_delay_seconds": policy.delay,
        "retry_on": list(policy.on),
    }
