"""Field checks shared by the workflow parsers: typed access that collects every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune.workflow.model import CHART_META, RESULT_TEMPLATE

__all__ = [
    "Errors",
    "chart_meta",
    "is_int",
    "is_number",
    "optional_mapping",
    "parse_publish",
    "positive_int",
    "task_template",
    "text",
]


class Errors:
    """Collects problems with a location prefix so every message names its task and field."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def text(doc: Mapping[str, Any], key: str, where: str, errors: Errors, *, limit: int | None) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(where, f"{key} must be a string")
        return None
    if limit is not None and not 1 <= len(value) <= limit:
        errors.add(where, f"{key} must be 1–{limit} characters")
        return None
    return value


def optional_mapping(doc: Mapping[str, Any], key: str, where: str, errors: Errors) -> dict[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(where, f"{key} must be a mapping")
        return None
    return dict(value)


def task_template(entry: Mapping[str, Any], key: str, where: str, errors: Errors) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(where, f"{key} must be a template string")
        return None
    return value


def positive_int(entry: Mapping[str, Any], key: str, where: str, errors: Errors) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not (is_int(value) and value > 0):
        errors.add(where, f"{key} must be a positive integer")
        return None
    return int(value)


def chart_meta(entry: Mapping[str, Any], where: str, errors: Errors) -> dict[str, Any] | None:
    value = entry.get(CHART_META)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(where, f"{CHART_META} must be a mapping")
        return None
    return dict(value)


def parse_publish(value: Any, field_name: str, where: str, errors: Errors) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(where, f"{field_name} must be a list")
        return []
    entries: list[tuple[str, Any]] = []
    for position, item in enumerate(value):
        if isinstance(item, str):
            entries.append((item, RESULT_TEMPLATE))
        elif isinstance(item, Mapping) and item:
            for name, template in item.items():
                if not isinstance(template, str):
                    errors.add(where, f"{field_name}[{position}].{name} must be a string (quote literals)")
                    continue
                entries.append((str(name), template))
        else:
            errors.add(where, f"{field_name}[{position}] must be a variable name or a mapping")
    return entries
