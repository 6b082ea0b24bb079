"""StackStorm's Jinja filters, available in every Attune template (docs/stackstorm.md).

``to_json_string``, ``to_yaml_string``, ``to_complex``, ``json_escape``, ``regex_match``,
``regex_replace``, ``regex_search``, ``regex_substring``, ``use_none``, the ``version_*`` family and
``decrypt_kv`` (keys in templates). Pure functions; regular expressions run on bounded input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from attune.domain import keyrefs

__all__ = ["FILTERS", "install"]

_MAX_REGEX_INPUT = 1_000_000
_NONE_STRING = "%*****__%NONE%__*****%"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_REGEX_INPUT:
        raise ValueError("the text is too long for a regular expression filter")
    return text


def _to_json_string(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    return json.dumps(
        value, indent=indent, sort_keys=sort_keys, separators=(",", ":") if indent is None else None
    )


def _to_yaml_string(value: Any, indent: int | None = None) -> str:
    return str(yaml.safe_dump(value, indent=indent, allow_unicode=True, default_flow_style=False))


def _to_complex(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _json_escape(value: Any) -> str:
    return json.dumps(str(value))[1:-1]


def _regex_match(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.match(pattern, _text(value), re.IGNORECASE if ignorecase else 0) is not None


def _regex_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.search(pattern, _text(value), re.IGNORECASE if ignorecase else 0) is not None


def _regex_replace(value: Any, pattern: str, replacement: str, ignorecase: bool = False) -> str:
    return re.sub(pattern, replacement, _text(value), flags=re.IGNORECASE if ignorecase else 0)


def _regex_substring(value: Any, pattern: str, result_index: int = 0, ignorecase: bool = False) -> str:
    found = re.findall(pattern, _text(value), re.IGNORECASE if ignorecase else 0)
    if not found or result_index >= len(found):
        raise ValueError(f"no match {result_index} for {pattern!r}")
    match = found[result_index]
    return match if isinstance(match, str) else match[0]


def _use_none(value: Any) -> Any:
    return _NONE_STRING if value is None else value


def _version(text: Any) -> tuple[int, int, int]:
    parts = [*str(text).split("-", 1)[0].split("+", 1)[0].split("."), "0", "0"][:3]
    return int(parts[0]), int(parts[1]), int(parts[2])


def _version_compare(left: Any, right: Any) -> int:
    a, b = _version(left), _version(right)
    return (a > b) - (a < b)


def _version_match(value: Any, expression: str) -> bool:
    expression = expression.strip()
    for operator in (">=", "<=", "==", "!=", ">", "<"):
        if expression.startswith(operator):
            order = _version_compare(value, expression[len(operator) :])
            return _ORDER_TESTS[operator](order)
    return _version_compare(value, expression) == 0


_ORDER_TESTS: dict[str, Callable[[int], bool]] = {
    ">=": lambda order: order >= 0,
    "<=": lambda order: order <= 0,
    "==": lambda order: order == 0,
    "!=": lambda order: order != 0,
    ">": lambda order: order > 0,
    "<": lambda order: order < 0,
}


def _bump(index: int) -> Callable[[Any], str]:
    def bump(value: Any) -> str:
        parts = list(_version(value))
        parts[index] += 1
        for position in range(index + 1, 3):
            parts[position] = 0
        return ".".join(str(part) for part in parts)

    return bump


def _more(left: Any, right: Any) -> bool:
    return _version_compare(left, right) > 0


def _less(left: Any, right: Any) -> bool:
    return _version_compare(left, right) < 0


def _equal(left: Any, right: Any) -> bool:
    return _version_compare(left, right) == 0


def _strip_patch(value: Any) -> str:
    major, minor, _ = _version(value)
    return f"{major}.{minor}"


FILTERS: dict[str, Callable[..., Any]] = {
    "to_json_string": _to_json_string,
    "to_yaml_string": _to_yaml_string,
    "to_complex": _to_complex,
    "json_escape": _json_escape,
    "regex_match": _regex_match,
    "regex_search": _regex_search,
    "regex_replace": _regex_replace,
    "regex_substring": _regex_substring,
    "use_none": _use_none,
    "version_compare": _version_compare,
    "version_more_than": _more,
    "version_less_than": _less,
    "version_equal": _equal,
    "version_match": _version_match,
    "version_bump_major": _bump(0),
    "version_bump_minor": _bump(1),
    "version_bump_patch": _bump(2),
    "version_strip_patch": _strip_patch,
    "decrypt_kv": keyrefs.decrypt_kv,
}


def install(filters: dict[str, Any]) -> None:
    """Add the filters to a Jinja environment's ``filters``."""
    filters.update(FILTERS)
