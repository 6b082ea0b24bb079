"""The one YAML loader for user documents (docs/security.md "Input limits")."""

from __future__ import annotations

import time

import pytest
import yaml

from attune.domain import safe_yaml


def laughs(levels: int) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (laughs(9), "aliases"),
        (laughs(7), "nodes once aliases are expanded"),
        ("a: " + "[" * 200_000 + "]" * 200_000, "nested deeper than 100 levels"),
        (
            "a:\n" + "".join("  " * d + f"k{d}:\n" for d in range(1, 200)) + "  " * 200 + "v: 1\n",
            "nested deeper",
        ),
        ("a: &x [1, *x]", "recursive"),
    ],
    ids=["billion-laughs", "expansion", "flow-depth", "block-depth", "recursive"],
)
def test_a_hostile_document_is_refused_quickly(text: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(safe_yaml.YamlLimitError) as caught:
        safe_yaml.load(text)
    assert time.monotonic() - started < 2
    assert reason in str(caught.value)
    assert isinstance(caught.value, yaml.YAMLError)


def test_ordinary_documents_load_with_shared_anchors() -> None:
    assert safe_yaml.load("a: &x {b: 1}\nc: *x\nd: [1, 2, {e: f}]") == {
        "a": {"b": 1},
        "c": {"b": 1},
        "d": [1, 2, {"e": "f"}],
    }
    assert safe_yaml.load(laughs(4)) is not None  # 9**4 strings: well inside the limits


def test_python_tags_are_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        safe_yaml.load("!!python/object/apply:os.system ['true']")


def test_limits_are_configurable() -> None:
    previous = safe_yaml.limits()
    safe_yaml.configure(safe_yaml.YamlLimits(max_depth=3))
    try:
        with pytest.raises(safe_yaml.YamlLimitError):
            safe_yaml.load("a: {b: {c: {d: 1}}}")
    finally:
        safe_yaml.configure(previous)
    assert safe_yaml.load("a: {b: {c: {d: 1}}}") == {"a": {"b": {"c": {"d": 1}}}}
