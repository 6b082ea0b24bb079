"""An action's ``retry: {count, delay, on}`` policy (docs/packs.md "Retries")."""

from __future__ import annotations

import pytest

from attune.domain.retry import RetryPolicy, RetryPolicyError, parse_retry, policy_of


def test_retry_block_with_every_field() -> None:
    policy = parse_retry({"count": 2, "delay": 5, "on": ["timeout"]})
    assert policy == RetryPolicy(count=2, delay=5, on=("timeout",))
    assert policy.retries("timeout") and not policy.retries("failed")


def test_max_retries_is_the_older_form_of_count() -> None:
    assert parse_retry(None, 3) == RetryPolicy(count=3, delay=None, on=("failed", "timeout"))
    assert parse_retry({"delay": 1}, 3) == RetryPolicy(count=3, delay=1)
    assert parse_retry({"count": 1}, 3) == RetryPolicy(count=1)
    assert parse_retry(None, None) is None


def test_a_dead_worker_counts_as_a_failure() -> None:
    assert RetryPolicy(count=1).retries("abandoned")
    assert not RetryPolicy(count=1, on=("timeout",)).retries("abandoned")
    assert not RetryPolicy(count=1).retries("cancelled")


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ("3", "retry must be a mapping"),
        ({"count": -1}, "retry.count must be between 0 and 100"),
        ({"count": True}, "retry.count must be a whole number"),
        ({"delay": "5s"}, "retry.delay must be a whole number"),
        ({"on": ["crashed"]}, "retry.on must list one or more of: failed, timeout"),
        ({"on": []}, "retry.on must list"),
        ({"tries": 2}, "unknown field(s): tries"),
    ],
)
def test_invalid_retry_blocks_are_rejected(retry: object, message: str) -> None:
    with pytest.raises(RetryPolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_retry(retry)


def test_stored_columns_read_back_with_defaults() -> None:
    assert policy_of(None, None, None) == RetryPolicy(count=0)
    assert policy_of(2, 10, ["failed"]) == RetryPolicy(count=2, delay=10, on=("failed",))
