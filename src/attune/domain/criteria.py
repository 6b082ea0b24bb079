"""Rule condition evaluation (docs/operations.md, extended with more operators and grouping).

A rule's ``conditions`` decide whether an event fires the rule. Forms (documented in docs/rules.md):

* a list of conditions: all must hold;
* ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": cond}``: groups, nestable;
* ``{"expression": "{{ ... }}"}``: truthiness of a template expression over the rule context;
* ``{"field": "a.b", "operator": "equals", "value": ...}``: a test on one payload field.

Pure: no I/O. A malformed condition or a missing field raises CriteriaError; the caller skips the
rule and logs the error.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from attune.domain.templates import TemplateBudgetExceeded, TemplateEngine, TemplateError

__all__ = [
    "OPERATORS",
    "SEARCH_CONDITIONS",
    "CriteriaError",
    "MissingFieldError",
    "json_equal",
    "matches",
]

_log = logging.getLogger(__name__)

_GROUP_KEYS = ("all", "any", "not", "expression")
_MISSING = object()


class CriteriaError(Exception):
    """A condition is malformed or references a missing field; the rule must be skipped."""


class MissingFieldError(CriteriaError):
    """A field test names a field the payload does not have."""


SEARCH_CONDITIONS = ("any", "all", "any2any", "all2any")
"""How ``search`` combines its item conditions (StackStorm's, docs/rules.md#search)."""


def matches(conditions: Any, payload: Any, *, engine: TemplateEngine, context: Mapping[str, Any]) -> bool:
    """True when the event ``payload`` satisfies the rule ``conditions``.

    Null or empty conditions, or a null payload, match. A value that is neither a list nor an
    object never matches. ``context`` (the rule template context) serves ``expression`` conditions.
    Raises CriteriaError for a malformed condition or a missing field.
    """
    if conditions is None or payload is None:
        return True
    if not isinstance(conditions, list | Mapping):
        return False
    if not conditions:
        return True
    return _Evaluator(payload, engine, context).holds(conditions)


class _Evaluator:
    def __init__(self, payload: Any, engine: TemplateEngine, context: Mapping[str, Any]) -> None:
        self._payload = payload
        self._engine = engine
        self._context = context

    def holds(self, node: Any) -> bool:
        if isinstance(node, list):
            return all(self.holds(item) for item in node)
        if not isinstance(node, Mapping):
            raise CriteriaError(f"malformed condition {node!r}: expected an object or a list")
        groups = [key for key in _GROUP_KEYS if key in node]
        if len(groups) > 1 or (groups and ("field" in node or "operator" in node)):
            raise CriteriaError(
                f"malformed condition {dict(node)!r}: use one of {', '.join(_GROUP_KEYS)} or field"
            )
        if not groups:
            return self._test(node)
        kind = groups[0]
        body = node[kind]
        if kind == "not":
            return not self.holds(body)
        if kind == "expression":
            return self._expression(body)
        if not isinstance(body, list):
            raise CriteriaError(f"malformed condition: {kind!r} needs a list of conditions")
        if kind == "all":
            return all(self.holds(item) for item in body)
        return any(self.holds(item) for item in body)

    def _expression(self, expression: Any) -> bool:
        if not isinstance(expression, str):
            raise CriteriaError(f"malformed condition: expression must be a string, got {expression!r}")
        try:
            return bool(self._engine.evaluate(expression, self._context))
        except TemplateBudgetExceeded:
            raise  # a budget failure is recorded on the enforcement, not taken as "no match"
        except TemplateError as exc:
            raise CriteriaError(str(exc)) from exc

    def _test(self, condition: Mapping[str, Any]) -> bool:
        field = condition.get("field")
        operator = condition.get("operator")
        if not isinstance(field, str) or not field:
            raise CriteriaError(
                f"malformed condition {dict(condition)!r}: 'field' must be a non-empty string"
            )
        if not isinstance(operator, str) or not operator:
            raise CriteriaError(f"malformed condition {dict(condition)!r}: 'operator' must be a string")
        name = operator.strip().lower()
        if name in ("exists", "nexists"):
            found = _resolve_path(self._payload, field) is not _MISSING
            return found if name == "exists" else not found
        if name == "search":
            return self._search(field, condition.get("value"))
        test = OPERATORS.get(name)
        if test is None:
            _log.warning(
                "Unknown rule condition operator %r on field %r: the condition is false", operator, field
            )
            return False
        actual = _resolve_path(self._payload, field)
        if actual is _MISSING:
            raise MissingFieldError(f"condition field {field!r} is not in the event payload")
        return test(actual, condition.get("value"))

    def _search(self, field: str, spec: Any) -> bool:
        """StackStorm's ``search``: item conditions over each element of the list at ``field``.

        ``any``/``all``: some/every element satisfies every item condition; ``any2any``/``all2any``:
        some/every element satisfies at least one. Item conditions see the element as ``item``
        (``item.status``). A field an element lacks makes that condition false for that element
        (st2 reads it as null) instead of skipping the rule, since lists often mix shapes.
        """
        if not isinstance(spec, Mapping):
            raise CriteriaError(f"search on {field!r} needs a value {{condition, conditions}}, got {spec!r}")
        mode = str(spec.get("condition") or "").strip().lower()
        if mode not in SEARCH_CONDITIONS:
            raise CriteriaError(
                f"search on {field!r}: condition must be one of {', '.join(SEARCH_CONDITIONS)}, "
                f"got {spec.get('condition')!r}"
            )
        children = spec.get("conditions")
        if not isinstance(children, list) or not children:
            raise CriteriaError(f"search on {field!r} needs a non-empty list of conditions")
        actual = _resolve_path(self._payload, field)
        if actual is _MISSING:
            raise MissingFieldError(f"condition field {field!r} is not in the event payload")
        if not isinstance(actual, list):
            return False
        combine_items = any if mode in ("any", "any2any") else all
        combine_children = all if mode in ("any", "all") else any
        return combine_items(
            combine_children(self._item_holds(element, child) for child in children) for element in actual
        )

    def _item_holds(self, element: Any, condition: Any) -> bool:
        nested = _Evaluator({"item": element}, self._engine, self._context)
        try:
            return nested.holds(condition)
        except MissingFieldError:
            return False


def _resolve_path(payload: Any, path: str) -> Any:
    """The value at dot ``path`` from the payload root, or the module's missing sentinel.

    Each segment is an object key; on a list it must be a 0-based index (``items.0.name``).
    """
    current = payload
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                return _MISSING
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


# -- value semantics ------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality, type included: ``"5" != 5`` and ``true != 1``, but ``1 == 1.0``."""
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _fold(value: str) -> str:
    return value.casefold()


def _equals(actual: Any, expected: Any) -> bool:
    return json_equal(actual, expected)


def _not_equals(actual: Any, expected: Any) -> bool:
    return not json_equal(actual, expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(json_equal(item, expected) for item in actual)
    return False


def _iequals(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return _fold(actual) == _fold(expected)
    return json_equal(actual, expected)


def _icontains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and _fold(expected) in _fold(actual)
    if isinstance(actual, list):
        return any(_iequals(item, expected) for item in actual)
    return False


def _startswith(actual: Any, expected: Any) -> bool:
    return isinstance(actual, str) and isinstance(expected, str) and actual.startswith(expected)


def _endswith(actual: Any, expected: Any) -> bool:
    return isinstance(actual, str) and isinstance(expected, str) and actual.endswith(expected)


def _matchregex(actual: Any, expected: Any) -> bool:
    if not isinstance(expected, str):
        raise CriteriaError(f"matchregex needs a string pattern, got {expected!r}")
    try:
        pattern = re.compile(expected)
    except re.error as exc:
        raise CriteriaError(f"invalid regular expression {expected!r}: {exc}") from exc
    return isinstance(actual, str) and pattern.search(actual) is not None


def _negated(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda actual, expected: not test(actual, expected)


def _istartswith(actual: Any, expected: Any) -> bool:
    return isinstance(actual, str) and isinstance(expected, str) and _fold(actual).startswith(_fold(expected))


def _iendswith(actual: Any, expected: Any) -> bool:
    return isinstance(actual, str) and isinstance(expected, str) and _fold(actual).endswith(_fold(expected))


def _iregex(actual: Any, expected: Any) -> bool:
    if not isinstance(expected, str):
        raise CriteriaError(f"iregex needs a string pattern, got {expected!r}")
    return _matchregex(actual, f"(?i){expected}")


def _wildcard(actual: Any, expected: Any) -> bool:
    return isinstance(actual, str) and isinstance(expected, str) and fnmatch.fnmatchcase(actual, expected)


def _inside(actual: Any, expected: Any) -> bool:
    """st2's ``inside``: the field's value is contained in the condition value."""
    return _contains(expected, actual)


def _timediff(compare: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    """st2's ``timediff_*``: seconds between the field's timestamp and now, against the value."""

    def test(actual: Any, expected: Any) -> bool:
        if not isinstance(actual, str) or not _is_number(expected):
            return False
        try:
            moment = datetime.fromisoformat(actual.replace("Z", "+00:00"))
        except ValueError:
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return compare((datetime.now(UTC) - moment).total_seconds(), float(expected))

    return test


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Order test on two numbers or two strings; anything else (including bools) is false."""

    def test(actual: Any, expected: Any) -> bool:
        if _is_number(actual) and _is_number(expected):
            return compare(actual, expected)
        if isinstance(actual, str) and isinstance(expected, str):
            return compare(actual, expected)
        return False

    return test


def _member_list(operator: str, expected: Any) -> list[Any]:
    if not isinstance(expected, list):
        raise CriteriaError(f"{operator} needs a list value, got {expected!r}")
    return expected


def _in(actual: Any, expected: Any) -> bool:
    return any(json_equal(actual, item) for item in _member_list("in", expected))


def _nin(actual: Any, expected: Any) -> bool:
    return not any(json_equal(actual, item) for item in _member_list("nin", expected))


OPERATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "equals": _equals,
    "not_equals": _not_equals,
    "contains": _contains,
    "iequals": _iequals,
    "icontains": _icontains,
    "startswith": _startswith,
    "endswith": _endswith,
    "matchregex": _matchregex,
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "in": _in,
    "nin": _nin,
    # StackStorm's criteria operators (docs/stackstorm.md)
    "ncontains": _negated(_contains),
    "incontains": _negated(_icontains),
    "istartswith": _istartswith,
    "iendswith": _iendswith,
    "regex": _matchregex,
    "iregex": _iregex,
    "matchwildcard": _wildcard,
    "inside": _inside,
    "ninside": _negated(_inside),
    "timediff_lt": _timediff(lambda diff, limit: diff < limit),
    "timediff_gt": _timediff(lambda diff, limit: diff > limit),
    "timediff_nlt": _timediff(lambda diff, limit: not diff < limit),
    "timediff_ngt": _timediff(lambda diff, limit: not diff > limit),
}
"""Value operators: ``test(field_value, condition_value)``. ``exists``/``nexists`` are handled apart
because they must not fail on a missing field."""
