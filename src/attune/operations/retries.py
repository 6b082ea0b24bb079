"""Automatic retries, decided by the action's retry policy (docs/packs.md "Retries").

An attempt that ended ``failed``, ``abandoned`` (its worker died) or ``timeout`` is retried when
the action's ``retry.on`` covers that outcome and the attempt's budget allows another one
(``retry_count < max_retries``, the policy's ``count`` copied onto the execution when it was
created). The next attempt starts after ``retry.delay`` seconds, or after an exponential backoff
when the policy has no delay. The retry is a new execution of the same action with the same
parameters (secret ones included, still sealed), ``env_vars``, ``parent``, ``enforcement`` and
initiating identity; ``original_execution`` points at the first execution of the chain and
``retry_count`` grows by one. ``retry_reason`` records why: the failure's classification
(docs/operations.md: ``worker_unavailable``, ``transient_error``, …), ``action_failed`` for an
ordinary failure, ``action_timeout`` or ``worker_heartbeat_stale``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution
from attune.db.repos import executions
from attune.domain.retry import RetryPolicy

log = logging.getLogger(__name__)

WORKER_UNAVAILABLE = "worker_unavailable"
QUEUE_TIMEOUT = "queue_timeout"
WORKER_HEARTBEAT_STALE = "worker_heartbeat_stale"
TRANSIENT_ERROR = "transient_error"
UNKNOWN = "unknown"
ACTION_FAILED = "action_failed"
ACTION_TIMEOUT = "action_timeout"
#: Attempt outcomes a retry policy may cover.
RETRIABLE_STATUSES = ("failed", "timeout", "abandoned")

# First match wins (docs/operations.md).
_CLASSIFICATION: tuple[tuple[tuple[str, ...], str], ...] = (
    (("worker queue ttl expired", "worker unavailable"), WORKER_UNAVAILABLE),
    (("timeout", "timed out"), QUEUE_TIMEOUT),
    (("heartbeat", "stale"), WORKER_HEARTBEAT_STALE),
    (("transient", "temporary", "connection"), TRANSIENT_ERROR),
)

MAX_BACKOFF_SECONDS = 300.0


def classify(result: Any) -> str:
    """The retry reason for a failure result: its ``error`` (else ``message``), lower-cased."""
    text = ""
    if isinstance(result, dict):
        for key in ("error", "message"):
            value = result.get(key)
            if isinstance(value, str) and value:
                text = value.lower()
                break
    for needles, reason in _CLASSIFICATION:
        if any(needle in text for needle in needles):
            return reason
    return UNKNOWN


def retries_left(execution: Execution) -> bool:
    """Whether the execution's retry budget allows another attempt."""
    max_retries = execution.max_retries or 0
    return max_retries > 0 and execution.retry_count < max_retries


def retry_reason(execution: Execution, policy: RetryPolicy) -> str | None:
    """Why ``execution`` is retried under ``policy``, or ``None`` when it must not be."""
    if not retries_left(execution) or not policy.retries(execution.status):
        return None
    if execution.status == "timeout":
        return ACTION_TIMEOUT
    if execution.status == "abandoned":
        return WORKER_HEARTBEAT_STALE
    reason = classify(execution.result)
    return ACTION_FAILED if reason == UNKNOWN else reason


async def policy_for(session: AsyncSession, execution: Execution) -> RetryPolicy | None:
    """The retry policy of the execution's action (None when the action is gone)."""
    action = await executions.action_for(session, execution)
    return action.retry_policy if action is not None else None


def delay_seconds(
    execution: Execution, policy: RetryPolicy, backoff: Callable[[int], float] | None = None
) -> float:
    """The policy's fixed ``delay``, else the exponential backoff for this attempt."""
    if policy.delay is not None:
        return float(policy.delay)
    return (backoff or backoff_seconds)(execution.retry_count)


def backoff_seconds(retry_count: int, *, jitter: Callable[[], float] = random.random) -> float:
    """``min(1 s × 2^retry_count, 300 s)`` times a random factor in [0.8, 1.2]."""
    base = min(2.0 ** max(retry_count, 0), MAX_BACKOFF_SECONDS)
    return base * (0.8 + 0.4 * jitter())


async def existing_retry(session: AsyncSession, execution: Execution) -> int | None:
    """The id of an automatic retry already created for ``execution`` (redelivery guard)."""
    return await executions.existing_retry(session, execution)
