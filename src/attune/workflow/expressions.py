"""The workflow expression context on top of the sandboxed ``TemplateEngine`` (docs/workflows.md).

``{{ }}`` is Jinja and ``<% %>`` is YAQL (``attune.workflow.yaql_eval``), over the same context.
Roots: ``parameters``, ``vars``/``variables`` (also every variable by bare name), ``task``/``tasks``
(``task.NAME`` is the task's result document; ``task.NAME.result`` and ``task.NAME.status`` also
work), ``item``, ``index``, ``system.workflow_start``. Functions: ``result()``, ``succeeded()``,
``failed()``, ``timed_out()`` about the task whose completion is being processed, ``ctx()``/
``ctx(name)`` (variables), ``now()``, ``uuid()`` and every Level 2 filter as a function
(``length(x)``). Operators, comparisons and filters come from the Jinja sandbox (Level 2).

Level 1 paths whose segments contain ``-`` (``{{ my-var.x }}``) are evaluated as paths, not as a
subtraction. A missing variable or key is null (write ``x | default(v)`` to choose a value).
"""

from __future__ import annotations

import itertools
import json
import re
import uuid as uuid_module
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from attune.domain import keyrefs
from attune.domain.templates import TemplateEngine, TemplateError, rfc3339
from attune.workflow import yaql_eval

__all__ = [
    "Outcome",
    "TemplateError",
    "build_context",
    "decide",
    "evaluate_condition",
    "render",
    "with_item",
]

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_HYPHEN_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no", ""})
_MISSING = object()


class Outcome:
    """The task whose completion is being processed: its result and how it ended."""

    __slots__ = ("result", "status")

    def __init__(self, status: str, result: Any) -> None:
        self.status = status  # 'completed' | 'failed' | 'timeout' | 'cancelled'
        self.result = result


class _TaskView(Mapping[str, Any]):
    """``task.NAME``: the result document, plus ``result`` and ``status`` when not shadowed."""

    __slots__ = ("_record",)

    def __init__(self, record: Mapping[str, Any]) -> None:
        self._record = record

    def _doc(self) -> Mapping[str, Any]:
        result = self._record.get("result")
        return result if isinstance(result, Mapping) else {}

    def __getitem__(self, key: str) -> Any:
        doc = self._doc()
        if key in doc:
            return doc[key]
        if key == "result":
            return self._record.get("result")
        if key == "status":
            return self._record.get("status")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._doc())

    def __len__(self) -> int:
        return len(self._doc())


class _TaskResults(Mapping[str, Any]):
    """``task``/``tasks``: the tasks that have a recorded result, viewed lazily."""

    __slots__ = ("_tasks",)

    def __init__(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        self._tasks = tasks

    def __getitem__(self, key: str) -> Any:
        record = self._tasks.get(key)
        if record is None or "result" not in record:
            raise KeyError(key)
        return _TaskView(record)

    def __iter__(self) -> Iterator[str]:
        return (name for name, record in self._tasks.items() if "result" in record)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _length(value: Any) -> int:
    return len(value)


def _default(value: Any, fallback: Any = "") -> Any:
    return fallback if value is None else value


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    return list(value)


def _join(value: Any, sep: str = "") -> str:
    return sep.join(_text(item) for item in value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _map(value: Any, attribute: str) -> list[Any]:
    return [item.get(attribute) if isinstance(item, Mapping) else None for item in value]


def _from_json(value: Any) -> Any:
    return json.loads(value)


def _to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_FILTER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "length": _length,
    "default": _default,
    "upper": lambda value: str(value).upper(),
    "lower": lambda value: str(value).lower(),
    "trim": lambda value: str(value).strip(),
    "first": lambda value: value[0],
    "last": lambda value: value[-1],
    "join": _join,
    "map": _map,
    "list": _to_list,
    "to_json": _to_json,
    "from_json": _from_json,
    "int": int,
    "float": float,
    "string": _text,
}


_NO_KEYS = keyrefs.KeyNamespace({})
"""Templates of a workflow that names no key see an empty key namespace."""

#: Orquesta's task status names for the conductor's (``task_status()`` in Orquesta workflows).
_ORQUESTA_STATUS = {
    "completed": "succeeded",
    "cancelled": "canceled",
    "pending": "requested",
    "skipped": "null",
}


def _zip(*lists: Any, pad: Any = None) -> list[Any]:
    """Orquesta's ``zip()``: one list as is, several zipped to the longest (padded with ``pad``)."""
    columns = [[] if column is None else list(column) for column in lists]
    if len(columns) == 1:
        return columns[0]
    return [list(row) for row in itertools.zip_longest(*columns, fillvalue=pad)]


def _json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str):
        raise TypeError("json() expects a string")
    return json.loads(value)


def build_context(
    *,
    parameters: Mapping[str, Any],
    variables: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    outcome: Outcome | None,
    started_at: str,
    item: Any = _MISSING,
    index: int | None = None,
    orquesta: bool = False,
    keys: keyrefs.KeyNamespace | None = None,
) -> dict[str, Any]:
    """The evaluation context of one step; ``outcome`` is the task just finished.

    ``orquesta`` selects Orquesta's names where they differ (``item()`` is a function, statuses
    are ``succeeded``/``canceled``). ``keys`` are the keys templates may read (``key.*``).
    """
    result_doc = outcome.result if outcome is not None else None
    status = outcome.status if outcome is not None else None

    def ctx(name: str | None = None) -> Any:
        return dict(variables) if name is None else variables.get(name)

    def task_status(name: str) -> str:
        record = tasks.get(name)
        if record is None:
            return "null" if orquesta else "unknown"
        raw = str(record.get("status"))
        return _ORQUESTA_STATUS.get(raw, raw) if orquesta else raw

    def task(name: str) -> dict[str, Any]:
        record = tasks.get(name) or {}
        return {"id": name, "name": name, "status": task_status(name), "result": record.get("result")}

    namespace = keys if keys is not None else _NO_KEYS
    context: dict[str, Any] = dict(_FILTER_FUNCTIONS)
    context.update(variables)
    context.update(
        {
            "null": None,
            "parameters": parameters,
            "vars": variables,
            "variables": variables,
            "task": _TaskResults(tasks),
            "tasks": _TaskResults(tasks),
            "system": {"workflow_start": started_at},
            "result": lambda: result_doc,
            "succeeded": lambda: status == "completed",
            "failed": lambda: status in (("failed", "timeout") if orquesta else ("failed", "cancelled")),
            "completed": lambda: status in ("completed", "failed", "timeout", "cancelled"),
            "timed_out": lambda: status == "timeout",
            "ctx": ctx,
            "task_status": task_status,
            "json": _json_value,
            "zip": _zip,
            "key": namespace,
            "st2kv": namespace,
            "decrypt_kv": keyrefs.decrypt_kv,
            "now": lambda: rfc3339(datetime.now(UTC)),
            "uuid": lambda: str(uuid_module.uuid4()),
        }
    )
    if orquesta:
        context["task"] = task  # Orquesta's task(name); Attune's task.NAME stays under ``tasks``
    if item is not _MISSING:
        _set_item(context, item, index, orquesta)
    context["_lookup_path"] = _path_lookup(context)
    return context


def _set_item(context: dict[str, Any], item: Any, index: int | None, orquesta: bool) -> None:
    if orquesta:

        def current(name: str | None = None) -> Any:
            if name is None:
                return item
            if not isinstance(item, Mapping) or name not in item:
                raise KeyError(f"the item has no key {name!r}")
            return item[name]

        context["item"] = current
    else:
        context["item"] = item
    context["index"] = index


def with_item(context: Mapping[str, Any], item: Any, index: int, *, orquesta: bool = False) -> dict[str, Any]:
    """A copy of ``context`` with ``item`` and ``index`` set (one with_items element)."""
    scoped = dict(context)
    _set_item(scoped, item, index, orquesta)
    scoped["_lookup_path"] = _path_lookup(scoped)
    return scoped


def _path_lookup(context: Mapping[str, Any]) -> Callable[[str], Any]:
    """Level 1 dotted-path resolution, used for paths that contain ``-``."""

    def lookup(path: str) -> Any:
        segments = path.split(".")
        root = segments[0]
        value: Any = context[root] if root in context else None
        for segment in segments[1:]:
            if isinstance(value, Mapping):
                value = value.get(segment)
            elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
                value = value[int(segment)]
            else:
                return None
        return value

    return lookup


@lru_cache(maxsize=1024)
def _rewrite(source: str) -> str:
    """Turn ``{{ a-b.c }}`` into ``{{ _lookup_path('a-b.c') }}``; other templates are unchanged."""
    if "-" not in source:
        return source

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if "-" in inner and _HYPHEN_PATH.match(inner):
            return "{{ _lookup_path(" + json.dumps(inner) + ") }}"
        return match.group(0)

    return _TEMPLATE.sub(replace, source)


def render(engine: TemplateEngine, value: Any, context: Mapping[str, Any]) -> Any:
    """Render a JSON value with type preservation: ``{{ }}`` is Jinja, ``<% %>`` is YAQL.

    Raises TemplateError.
    """
    if isinstance(value, str):
        if yaql_eval.has_yaql(value):
            value = yaql_eval.render_yaql(value, context, yaql_eval.default_evaluator(), _text)
            if not isinstance(value, str):
                return value
        if not engine.is_template(value):
            return value
        source = _rewrite(value)
        stripped = source.strip()
        if stripped != source and stripped.startswith("{{") and stripped.endswith("}}"):
            if stripped.count("{{") == 1:
                # A pure template is recognised after trimming surrounding whitespace.
                source = stripped
        return engine.render_value(source, context)
    if isinstance(value, Mapping):
        return {key: render(engine, item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(engine, item, context) for item in value]
    return value


def decide(value: Any) -> bool:
    """Turn an evaluated condition into a decision."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_WORDS:
            return True
        return text not in _FALSE_WORDS
    return True


def evaluate_condition(engine: TemplateEngine, template: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a ``when``-style condition to a boolean. Raises TemplateError on failure."""
    return decide(render(engine, template, context))
