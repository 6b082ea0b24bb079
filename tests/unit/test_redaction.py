"""What the worker masks in an action's output (docs/packs.md "Secrets in output")."""

from __future__ import annotations

from attune.worker.redaction import Redactor, secret_strings


def redact(secrets: list[str], text: str) -> str:
    return Redactor(secrets)(text.encode()).decode()


def test_values_shorter_than_four_characters_are_never_masked() -> None:
    assert redact(["1"], "build 10 of 1001 ok") == "build 10 of 1001 ok"
    assert redact(["42", "yes"], "42 yes") == "42 yes"
    assert secret_strings({"a": "1", "b": 42, "c": "abcd"}) == ["abcd"]


def test_short_secrets_are_masked_as_whole_tokens_only() -> None:
    assert redact(["hunter"], "pw=hunter; hunters and thehunter") == "pw=********; hunters and thehunter"


def test_long_secrets_are_masked_anywhere() -> None:
    assert redact(["S3cretValue"], "auth:S3cretValueX") == "auth:********X"


def test_longest_secret_wins_over_a_shorter_one_inside_it() -> None:
    assert redact(["abcd", "abcdefghij"], "abcdefghij abcd") == "******** ********"
