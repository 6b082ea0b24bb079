"""Sandboxed Jinja2 templating for rule ``action_params`` and rule condition expressions.

docs/operations.md / docs/packs.md / docs/workflows.md: string values of a JSON document may
contain ``{{ expr }}`` templates. A string that is exactly one template keeps the JSON type of the
evaluated expression; any other string is rendered as text with JSON-style value formatting.
Expressions run in an immutable Jinja2 sandbox: no underscore attributes, no mutation of the
context, bounded ranges and repetitions. Every render runs under a budget (time, output size and
what it may build; :mod:`attune.domain.budget`, docs/security.md "Input limits"): the sandbox
checks it in every loop iteration, call, attribute access and filter, so a runaway template stops
with a :class:`TemplateBudgetExceeded` instead of stalling the server. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
import jinja2.sandbox
from jinja2.exceptions import SecurityError

from attune.domain import budget
from attune.domain.budget import BudgetExceeded
from attune.domain.template_sandbox import build_environment, to_json
from attune.errors import ValidationFailed
from attune.lru import LruCache

__all__ = [
    "TemplateBudgetExceeded",
    "TemplateEngine",
    "TemplateError",
    "resolve_action_params",
    "rfc3339",
    "rule_context",
]

_CACHE_SIZE = 512
#: Pieces of rendered text gathered before they are joined into one chunk.
_JOIN_EVERY = 4096
_MESSAGE_SOURCE_LIMIT = 200
_TEMPLATE_STARTS = ("{{", "{%", "{#")


class TemplateError(ValidationFailed):
    """A template failed to compile or evaluate (syntax error, sandbox violation, type error)."""

    def __init__(self, template: str, reason: str) -> None:
        shown = template if len(template) <= _MESSAGE_SOURCE_LIMIT else template[:_MESSAGE_SOURCE_LIMIT] + "…"
        super().__init__(f"Template {shown!r} failed: {reason}")
        self.template = template
        self.reason = reason


class TemplateBudgetExceeded(TemplateError):
    """A template went over its time, output or build limit (docs/security.md "Input limits")."""


class _Compiled:
    """One cached source: a pure expression (typed value) or a text template."""

    __slots__ = ("expression", "template")

    def __init__(
        self,
        *,
        expression: jinja2.environment.TemplateExpression | None = None,
        template: jinja2.Template | None = None,
    ) -> None:
        self.expression = expression
        self.template = template


class TemplateEngine:
    """Renders JSON documents and evaluates expressions in one sandboxed Jinja2 environment.

    Compiled templates are kept in a per-instance LRU cache keyed by source, so repeated rule
    parameters are parsed once. Instances are safe to share between coroutines.
    """

    def __init__(self) -> None:
        """Build the sandboxed environment and an empty compile cache."""
        self._env = build_environment()
        self._cache: LruCache[tuple[str, str], _Compiled] = LruCache(_CACHE_SIZE)

    @property
    def environment(self) -> jinja2.Environment:
        """The underlying sandboxed environment (to register extra filters or tests)."""
        return self._env

    def is_template(self, value: Any) -> bool:
        """True when ``value`` is a string containing Jinja markup (``{{``, ``{%`` or ``{#``)."""
        return isinstance(value, str) and any(start in value for start in _TEMPLATE_STARTS)

    def render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Render every string value of the JSON document ``value`` (keys are left untouched).

        A string that is exactly one ``{{ expr }}`` (untrimmed) becomes the expression's JSON
        value (missing → None); other template strings render as text. Raises TemplateError
        (TemplateBudgetExceeded when the render goes over its limits).
        """
        with budget.scope() as running:
            rendered = self._render_value(value, context)
            if rendered is not value and not budget.json_size_within(rendered, running.limits.max_output):
                raise TemplateBudgetExceeded(
                    _source_of(value),
                    f"output is larger than the limit of {running.limits.max_output} characters",
                )
            return rendered

    def _render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        if isinstance(value, str):
            return self._render_string(value, context) if self.is_template(value) else value
        if isinstance(value, Mapping):
            return {key: self._render_value(item, context) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._render_value(item, context) for item in value]
        return value

    def evaluate(self, expression: str, context: Mapping[str, Any]) -> Any:
        """Evaluate ``"{{ expr }}"`` or a bare ``"expr"`` to its JSON value (missing → None).

        A string mixing text and templates is not an expression and raises TemplateError.
        """
        source = expression.strip()
        if not source:
            raise TemplateError(expression, "empty expression")
        if self.is_template(source):
            compiled = self._compile_string(source)
            if compiled.expression is None:
                raise TemplateError(expression, "expected a single {{ expression }}")
        else:
            compiled = self._compile_expression(source)
        assert compiled.expression is not None
        with budget.scope():
            return self._run_expression(expression, compiled.expression, context)

    # -- internals -------------------------------------------------------------------------------

    def _render_string(self, source: str, context: Mapping[str, Any]) -> Any:
        compiled = self._compile_string(source)
        if compiled.expression is not None:
            return self._run_expression(source, compiled.expression, context)
        assert compiled.template is not None
        running = budget.current()
        try:
            if running is None:  # pragma: no cover - render_value always opens a budget
                return compiled.template.render(context)
            chunks: list[str] = []
            parts: list[str] = []
            size = 0
            # Chunk by chunk, so a loop that only prints is stopped by the output limit too.
            for part in compiled.template.generate(context):
                size += len(part)
                running.output(size)
                running.check()
                parts.append(part)
                if len(parts) >= _JOIN_EVERY:
                    # A piece costs Python ~50 bytes of object (+ 8 of list) for a character or
                    # two: joined as they come, memory tracks the output's size, not its pieces.
                    chunks.append("".join(parts))
                    parts.clear()
            chunks.append("".join(parts))
            return "".join(chunks)
        except Exception as exc:  # any failure inside user code is the template's fault
            raise _template_error(source, exc) from exc

    def _run_expression(
        self, source: str, expression: jinja2.environment.TemplateExpression, context: Mapping[str, Any]
    ) -> Any:
        try:
            result = to_json(expression(**context))
        except Exception as exc:
            raise _template_error(source, exc) from exc
        running = budget.current()
        if running is not None and not budget.json_size_within(result, running.limits.max_output):
            raise TemplateBudgetExceeded(
                source, f"output is larger than the limit of {running.limits.max_output} characters"
            )
        return result

    def _cached(self, key: tuple[str, str]) -> _Compiled | None:
        return self._cache.get(key)

    def _store(self, key: tuple[str, str], compiled: _Compiled) -> _Compiled:
        return self._cache.put(key, compiled)

    def _compile_expression(self, source: str) -> _Compiled:
        key = ("expr", source)
        hit = self._cached(key)
        if hit is not None:
            return hit
        try:
            expression = self._env.compile_expression(source, undefined_to_none=False)
        except Exception as exc:
            raise TemplateError(source, _reason(exc)) from exc
        return self._store(key, _Compiled(expression=expression))

    def _compile_string(self, source: str) -> _Compiled:
        """Classify ``source`` (pure single expression or text template) and compile it once."""
        key = ("text", source)
        hit = self._cached(key)
        if hit is not None:
            return hit
        try:
            inner = self._pure_expression_source(source)
            if inner is not None:
                compiled = _Compiled(expression=self._env.compile_expression(inner, undefined_to_none=False))
            else:
                compiled = _Compiled(template=self._env.from_string(source))
        except Exception as exc:
            raise TemplateError(source, _reason(exc)) from exc
        return self._store(key, compiled)

    def _pure_expression_source(self, source: str) -> str | None:
        """The expression text when ``source`` is exactly one ``{{ … }}`` and nothing else.

        The Jinja lexer decides, so braces inside the expression (``{{ {'a': {'b': 1}} }}``) and
        ``}}`` inside string literals are handled like Jinja itself handles them.
        """
        if not (source.startswith("{{") and source.endswith("}}")):
            return None
        tokens = [(kind, value) for _, kind, value in self._env.lex(source)]
        if not tokens or tokens[0][0] != "variable_begin" or tokens[-1][0] != "variable_end":
            return None
        if any(kind in ("variable_begin", "variable_end") for kind, _ in tokens[1:-1]):
            return None
        inner = source[len(tokens[0][1]) : len(source) - len(tokens[-1][1])]
        return inner if inner.strip() else None


def _source_of(value: Any) -> str:
    """The first template string of a document, to name it in an error message."""
    if isinstance(value, str):
        return value
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else ()
    for item in items:
        found = _source_of(item)
        if found:
            return found
    return ""


def _template_error(source: str, exc: BaseException) -> TemplateError:
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, BudgetExceeded | MemoryError | RecursionError):
        return TemplateBudgetExceeded(source, _reason(exc))
    return TemplateError(source, _reason(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BudgetExceeded):
        return f"over budget: {exc}"
    if isinstance(exc, MemoryError):
        return "over budget: out of memory"
    if isinstance(exc, RecursionError):
        return "over budget: nested too deeply"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"syntax error: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def rfc3339(value: datetime) -> str:
    """``value`` as RFC 3339 UTC text ending in ``Z``; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rule_context(
    *,
    event: Mapping[str, Any],
    pack_config: Mapping[str, Any] | None,
    rule_id: int,
    rule_ref: str,
    now: datetime,
) -> dict[str, Any]:
    """The template context of a rule firing (docs/operations.md).

    ``event`` carries ``payload``, ``id``, ``trigger`` (or ``trigger_ref``) and ``created``
    (datetime or text). Roots: ``event``, ``pack.config``, ``system`` and ``trigger`` (st2's name
    for the payload).
    """
    created = event.get("created")
    payload = event.get("payload")
    trigger = event.get("trigger")
    if trigger is None:
        trigger = event.get("trigger_ref")
    return {
        "event": {
            "payload": payload if payload is not None else {},
            "id": event.get("id"),
            "trigger": trigger,
            "created": rfc3339(created) if isinstance(created, datetime) else created,
        },
        "pack": {"config": dict(pack_config) if pack_config else {}},
        "system": {"timestamp": rfc3339(now), "rule": {"id": rule_id, "ref": rule_ref}},
        # StackStorm rules write ``{{ trigger.x }}`` for the payload (docs/stackstorm.md).
        "trigger": payload if payload is not None else {},
    }


def resolve_action_params(
    engine: TemplateEngine, action_params: Any, context: Mapping[str, Any]
) -> dict[str, Any]:
    """Resolve a rule's ``action_params`` into the enforcement config (always an object).

    Null or empty params give ``{}`` without evaluating anything; a non-object result gives ``{}``.
    Raises TemplateError when a template cannot be compiled or evaluated.
    """
    if action_params is None or (isinstance(action_params, Mapping | list | str) and not action_params):
        return {}
    resolved = engine.render_value(action_params, context)
    return resolved if isinstance(resolved, dict) else {}
