"""The Jinja2 sandbox behind :class:`attune.domain.templates.TemplateEngine`.

Immutable sandbox, no underscore attributes, bounded ranges, repetitions and exponents, and a
budget (time, output, what a render builds; :mod:`attune.domain.budget`, docs/security.md "Input
limits") checked in every loop iteration, call, attribute access and filter. Values that leave a
template are plain JSON data (:func:`to_json`). Pure: no I/O.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import jinja2
import jinja2.sandbox
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError

from attune.domain import budget, jinja_filters, keyrefs
from attune.domain.budget import BudgetExceeded

__all__ = ["build_environment", "to_json"]

_MAX_REPEAT = 1_000_000
"""Upper bound on the length of a string or list built with ``*`` inside a template."""
_MAX_EXPONENT = 1_000


class _LenientUndefined(jinja2.ChainableUndefined):
    """A missing value: renders as ``""``, is falsy, and can be walked further (``a.b.c`` stays missing).

    Comparisons and arithmetic on it still raise, so ``missing > 3`` is an error rather than a guess.
    """

    __slots__ = ()


def to_json(value: Any) -> Any:
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
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset | range | Iterator):
        # Generators come out of filters such as map/select; ranges are bounded by the sandbox.
        return [to_json(item) for item in value]
    # Anything else is not data: a method reached through a path (``payload.items`` on a dict
    # without that key), a builtin, or a Jinja internal such as ``self``. Treat it as missing.
    return None


def _compact_json(value: Any) -> str:
    data = to_json(value)
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
    return _finalize(to_json(value))


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


def build_environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
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
