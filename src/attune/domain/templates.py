"""Sandboxed Jinja2 templating for rule ``action_params`` and rule condition expressions.

services.md §1.4 / domain.md §3.6 / workflows.md §6.6–§6.7: string values of a JSON document may
contain ``{{ expr }}`` templates. A string that is exactly one template keeps the JSON type of the
evaluated expression; any other string is rendered as text with JSON-style value formatting.
Expressions run in an immutable Jinja2 sandbox: no underscore attributes, no mutation of the
context, bounded ranges and repetitions. Every render runs under a budget (time, output size and
what it may build; :mod:`attune.domain.budget`, docs/security.md "Input limits"): the sandbox
checks it in every loop iteration, call, attribute access and filter, so a runaway template stops
with a :class:`TemplateBudgetExceeded` instead of stalling the server. Pure: no I/O.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import string
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import jinja2
import jinja2.sandbox
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError

from attune.domain import budget, jinja_filters, keyrefs
from attune.domain.budget import BudgetExceeded
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
_MAX_REPEAT = 1_000_000
"""Upper bound on the length of a string or list built with ``*`` inside a template."""
_MAX_EXPONENT = 1_000
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


class _LenientUndefined(jinja2.ChainableUndefined):
    """A missing value: renders as ``""``, is falsy, and can be walked further (``a.b.c`` stays missing).

    Comparisons and arithmetic on it still raise, so ``missing > 3`` is an error rather than a guess.
    """

    __slots__ = ()


def _to_json(value: Any) -> Any:
    """``value`` as plain JSON data: missing → None, tuples/generators → lists, non-data → None."""
    if isinstance(value, jinja2.Undefined) or value is None:
        return None
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, keyrefs.Sealed | keyrefs.Revealed):
        return value  # key material keeps its marker (docs/rules.md "Keys in templates")
    if isinstance(value, str):
        return str(value)  # drops str subclasses such as Markup
    if isinstance(value, Mapping):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset | range | Iterator):
        # Generators come out of filters such as map/select; ranges are bounded by the sandbox.
        return [_to_json(item) for item in value]
    # Anything else is not data: a method reached through a path (``payload.items`` on a dict
    # without that key), a builtin, or a Jinja internal such as ``self``. Treat it as missing.
    return None


def _compact_json(value: Any) -> str:
    data = _to_json(value)
    running = budget.current()
    if running is not None:
        # Refuse before serialising: a list repeating one long string is cheap to hold, not to dump.
        if not budget.json_size_within(data, running.limits.max_output):
            running.output(running.limits.max_output + 1)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    budget.charge(len(text))
    return text


def _finalize(value: Any) -> Any:
    """String form of an interpolated value (mixed templates): JSON style, not Python style."""
    if isinstance(value, jinja2.Undefined) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping | list | tuple):
        return _compact_json(value)
    return _finalize(_to_json(value))


def _from_json(value: Any) -> Any:
    if not isinstance(value, str | bytes | bytearray):
        raise TypeError(f"from_json expects a string, got {type(value).__name__}")
    return json.loads(value)


def _list_index(segment: str) -> int | None:
    """A path segment naming a list element (non-negative decimal), else None."""
    return int(segment) if segment.isdigit() else None


#: A list element counts as this many characters of what a render builds.
_ELEMENT_COST = 8
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def _built_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return len(value) * _ELEMENT_COST
    return 0


def _check_width(width: Any, what: str) -> None:
    running = budget.current()
    limit = running.limits.max_output if running is not None else budget.limits().max_output
    if isinstance(width, str):
        width = len(width)
    if isinstance(width, int) and width > limit:
        raise BudgetExceeded(f"{what} {width} is larger than the output limit of {limit} characters")


def _check_format(template: Any, *, percent: bool) -> None:
    """Refuse a format string whose field widths or precisions could build a huge string."""
    if not isinstance(template, str):
        return
    if percent:
        for match in _PERCENT_SPEC.finditer(template):
            for group in match.groups():
                if group == "*":
                    raise SecurityError("a '*' width or precision is not allowed in templates")
                if group is not None:
                    _check_width(int(group), "format width")
        return
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format raises its own error for a malformed string
    for _, _, spec, _ in fields:
        if spec:
            if "{" in spec:
                raise SecurityError("nested format fields are not allowed in templates")
            for digits in _DIGITS.findall(spec):
                _check_width(int(digits), "format width")


def _guard_replace(value: Any, old: Any, new: Any, count: int | None = None, *rest: Any) -> None:
    text, old_text, new_text = str(value), str(old), str(new)
    hits = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _check_width(len(text) + hits * max(0, len(new_text) - len(old_text)), "replace result")


def _guard_center(value: Any, width: Any = 80, *rest: Any) -> None:
    _check_width(width, "width")


def _guard_indent(value: Any, width: Any = 4, *rest: Any) -> None:
    lines = str(value).count("\n") + 1
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _check_width(len(str(value)) + lines * size, "indented text")


def _guard_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_format(value, percent=True)


def _guard_count(value: Any, count: Any = 1, *rest: Any) -> None:
    if isinstance(count, int) and count > jinja2.sandbox.MAX_RANGE:
        raise BudgetExceeded(f"count {count} is larger than {jinja2.sandbox.MAX_RANGE}")


#: Pre-checks of the built-in filters whose result size depends on an argument, not the input.
_FILTER_GUARDS: dict[str, Callable[..., None]] = {
    "replace": _guard_replace,
    "center": _guard_center,
    "indent": _guard_indent,
    "format": _guard_format,
    "batch": _guard_count,
    "slice": _guard_count,
}


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` checking the budget before it runs and charging what it returns."""
    guard = _FILTER_GUARDS.get(name)
    # pass_context / pass_eval_context / pass_environment filters get that object first.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_context / pass_eval_context)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget.check()
        if guard is not None:
            guard(*args[skip:], **kwargs)
        result = func(*args, **kwargs)
        if inspect.isgenerator(result) or isinstance(result, Iterator):
            return budget.budgeted_iter(result)
        budget.charge(_built_size(result))
        return result

    return wrapper


class _BudgetedCodeGenerator(CodeGenerator):
    """Jinja's code generator with the budget hooks that no sandbox method reaches.

    ``{% for %}`` iterates through ``environment.budget_iter`` (one deadline check per item) and
    ``~`` concatenations pass through ``environment.budget_text`` (charged to the build limit).
    """

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        wrapped = copy.copy(node)
        wrapped.iter = nodes.Call(
            nodes.EnvironmentAttribute("budget_iter", lineno=node.lineno),
            [node.iter],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        super().visit_For(wrapped, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.budget_text(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Environment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox, adapted to JSON data.

    * ``x.key`` on a dict prefers the key over a dict method (``payload.items`` is the payload's
      ``items`` field, not ``dict.items``);
    * ``x.0`` / ``x["0"]`` index lists, and an integer segment finds a dict key ``"0"``;
    * unsafe attributes raise immediately instead of becoming a silent empty value;
    * ``*``, ``**``, ``+``, ``%`` and ``~`` are bounded so a template cannot exhaust memory or CPU;
    * loops, calls, attribute lookups and filters check the render's budget.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BudgetedCodeGenerator

    @staticmethod
    def budget_iter(iterable: Any) -> Iterator[Any]:
        """Every template loop goes through here (see :class:`_BudgetedCodeGenerator`)."""
        return budget.budgeted_iter(iterable)

    @staticmethod
    def budget_text(text: str) -> str:
        budget.charge(len(text))
        return text

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget.check()
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format(value.__self__, percent=False)
        return wrapped

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget.check()
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        if isinstance(obj, list | tuple):
            index = _list_index(attribute)
            if index is not None:
                return obj[index] if index < len(obj) else self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget.check()
        if isinstance(obj, Mapping) and isinstance(argument, int) and not isinstance(argument, bool):
            if argument not in obj and str(argument) in obj:
                return obj[str(argument)]
        if isinstance(obj, list | tuple) and isinstance(argument, str):
            index = _list_index(argument)
            if index is not None:
                return obj[index] if index < len(obj) else self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large")
            return left**right
        if operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                budget.charge(_built_size(left) + _built_size(right))
            return left + right
        if operator == "%":
            _check_format(left, percent=True)
            result = left % right
            budget.charge(_built_size(result))
            return result
        # operator == "*": repeating a sequence must stay bounded.
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(count, int):
                if len(seq) * count > _MAX_REPEAT:
                    raise SecurityError("repetition result is too long")
                budget.charge(_built_size(seq) * max(0, count))
        return left * right


def _build_environment() -> _Environment:
    env = _Environment(
        undefined=_LenientUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=True,
        # Cached per TemplateEngine instead; the Environment cache only serves loader templates.
        cache_size=0,
    )
    env.filters["to_json"] = _compact_json
    env.filters["from_json"] = _from_json
    jinja_filters.install(env.filters)  # StackStorm's filters and decrypt_kv
    for name, func in list(env.filters.items()):
        env.filters[name] = _budgeted_filter(name, func)
    # lipsum and friends have no use in automation parameters.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


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
        self._env = _build_environment()
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
            parts: list[str] = []
            size = 0
            # Chunk by chunk, so a loop that only prints is stopped by the output limit too.
            for part in compiled.template.generate(context):
                size += len(part)
                running.output(size)
                running.check()
                parts.append(part)
            return "".join(parts)
        except Exception as exc:  # any failure inside user code is the template's fault
            raise _template_error(source, exc) from exc

    def _run_expression(
        self, source: str, expression: jinja2.environment.TemplateExpression, context: Mapping[str, Any]
    ) -> Any:
        try:
            result = _to_json(expression(**context))
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
    """The template context of a rule firing (services.md §1.4).

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
