"""YAQL for ``<% … %>`` expressions (Orquesta's expression language; docs/workflows.md).

Expressions see the same context as the Jinja templates of ``attune.workflow.expressions``:
``$`` is the workflow context (``ctx()``), and the workflow functions (``ctx()``, ``result()``,
``succeeded()``, ``failed()``, ``completed()``, ``item()``, ``task_status()``, ``task()``,
``st2kv()``, ``json()``, ``zip()``…) are looked up in that context, so both languages always agree.

Evaluation goes through the small ``ExpressionEvaluator`` interface so that it runs under the same
sandbox and resource budget as Jinja. YAQL's own limits apply too: collections are cut at
``max_items`` elements and the memory a query may build is bounded. Pure: no I/O.
"""

from __future__ import annotations

import collections.abc
import re
import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Protocol

import yaql
from yaql.language import contexts as yaql_contexts
from yaql.language import exceptions as yaql_exceptions
from yaql.language import utils as yaql_utils

from attune.domain import budget
from attune.domain.templates import TemplateBudgetExceeded, TemplateError
from attune.lru import LruCache

__all__ = [
    "ExpressionEvaluator",
    "YaqlEvaluator",
    "default_evaluator",
    "has_yaql",
    "render_yaql",
]

_EXPRESSION = re.compile(r"<%(.*?)%>", re.DOTALL)
_MAX_ITEMS = 10_000
_MEMORY_QUOTA = 10_000_000
#: Workflow functions delegated to the evaluation context, with their YAQL arity.
_FUNCTIONS: tuple[str, ...] = (
    "ctx",
    "result",
    "succeeded",
    "failed",
    "completed",
    "timed_out",
    "item",
    "task_status",
    "task",
    "st2kv",
    "json",
    "zip",
    "now",
    "uuid",
)


class ExpressionEvaluator(Protocol):
    """Evaluates one expression (no delimiters) against a workflow context; raises TemplateError."""

    def evaluate(self, expression: str, context: Mapping[str, Any]) -> Any: ...


def _delegate(name: str) -> Callable[..., Any]:
    def call(context: Any, *args: Any) -> Any:
        env = context["__env"]
        function = env.get(name) if isinstance(env, Mapping) else None
        if not callable(function):
            raise TemplateError(name, f"function {name}() is not available here")
        return function(*[_json(arg) for arg in args])

    call.__name__ = name
    return call


class _BudgetedContext(yaql_contexts.Context):  # type: ignore[misc]
    """The scope of one query: every function lookup (each YAQL operation) checks the budget."""

    def get_functions(self, name: str, predicate: Any = None, use_convention: bool = False) -> Any:
        budget.check()
        return super().get_functions(name, predicate, use_convention)


class YaqlEvaluator:
    """A YAQL engine with the workflow functions registered and compiled queries cached."""

    def __init__(self, *, max_items: int = _MAX_ITEMS, memory_quota: int = _MEMORY_QUOTA) -> None:
        """Build the engine with iteration and memory limits."""
        options = {
            "yaql.limitIterators": max_items,
            "yaql.memoryQuota": memory_quota,
            "yaql.convertInputData": True,
            "yaql.convertOutputData": True,
        }
        self._engine = yaql.factory.YaqlFactory().create(options=options)
        self._root = yaql.create_context()
        for name in _FUNCTIONS:
            self._root.register_function(_delegate(name), name=name)
        self._cache: LruCache[str, Any] = LruCache(512)
        # The parser keeps state while it parses; queries are parsed from several render threads.
        self._parse_lock = threading.Lock()

    def evaluate(self, expression: str, context: Mapping[str, Any]) -> Any:
        """The JSON value of ``expression``; raises TemplateError for any failure."""
        source = expression.strip()
        parsed = self._cache.get(source)
        if parsed is None:
            try:
                with self._parse_lock:
                    parsed = self._cache.put(source, self._engine(source))
            except (yaql_exceptions.YaqlException, ValueError, TypeError) as exc:
                raise TemplateError(f"<% {source} %>", f"YAQL syntax error: {exc}") from exc
        scope = _BudgetedContext(self._root)
        variables = context.get("vars")
        scope["$"] = yaql_utils.convert_input_data(dict(variables) if isinstance(variables, Mapping) else {})
        scope["__env"] = context
        try:
            with budget.scope():
                return _json(parsed.evaluate(context=scope))
        except TemplateError:
            raise
        except (budget.BudgetExceeded, MemoryError, RecursionError) as exc:
            raise TemplateBudgetExceeded(f"<% {source} %>", f"over budget: {exc}") from exc
        except Exception as exc:  # anything raised inside a user's query is the query's fault
            raise TemplateError(f"<% {source} %>", f"{type(exc).__name__}: {exc}") from exc


def _json(value: Any) -> Any:
    """YAQL values (frozen dicts, tuples, generators) as plain JSON data."""
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset | collections.abc.Iterator):
        return [_json(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@lru_cache(maxsize=1)
def default_evaluator() -> YaqlEvaluator:
    """The process-wide evaluator (built on first use, not at import)."""
    return YaqlEvaluator()


def has_yaql(text: str) -> bool:
    """Whether ``text`` holds a ``<% … %>`` expression."""
    return "<%" in text and _EXPRESSION.search(text) is not None


def render_yaql(
    text: str, context: Mapping[str, Any], evaluator: ExpressionEvaluator, as_text: Callable[[Any], str]
) -> Any:
    """Evaluate the ``<% %>`` expressions of ``text``.

    A string that is one expression (surrounding whitespace aside) keeps the value's JSON type;
    otherwise each expression is replaced by ``as_text`` of its value.
    """
    stripped = text.strip()
    matches = list(_EXPRESSION.finditer(stripped))
    if len(matches) == 1 and matches[0].span() == (0, len(stripped)):
        return evaluator.evaluate(matches[0].group(1), context)
    return _EXPRESSION.sub(lambda match: as_text(evaluator.evaluate(match.group(1), context)), text)
