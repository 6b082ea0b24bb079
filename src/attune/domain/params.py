"""The flat parameter schema (docs/packs.md, docs/api.md): conversion, validation and defaults.

Action and trigger ``parameters``, output schemas and pack ``conf_schema`` are stored in a *flat*
form, ``{name: {type, required?, secret?, position?, ...JSON Schema keywords}}``. This module turns
that into JSON Schema, validates parameter sets (optionally replacing ``{{ template }}`` values by
placeholders that satisfy the property), fills defaults and lists secret parameters. Pure: no I/O.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema.validators

from attune.errors import AttuneError, ValidationFailed

TEMPLATE_PLACEHOLDER = "__template_placeholder__"
"""Stand-in for a template string whose property is a string, untyped, or unknown."""

_ATTUNE_KEYS = ("required", "secret", "position")
_DEFAULT_VALIDATOR = jsonschema.Draft202012Validator


def is_full_form(schema: Mapping[str, Any]) -> bool:
    """True when ``schema`` is already JSON Schema (top-level ``type: object`` and ``properties``)."""
    return schema.get("type") == "object" and "properties" in schema


def to_json_schema(flat: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Convert a flat parameter schema into a JSON Schema object schema.

    ``None`` stays ``None`` (no validation). A full-form schema is returned as a copy. For every
    mapping entry the Attune keys ``required``/``secret``/``position`` are removed and names with
    ``required: true`` go into the top-level ``required`` list (omitted when empty). Non-mapping
    entries are ignored; extra parameters remain allowed.
    """
    if flat is None:
        return None
    if is_full_form(flat):
        return copy.deepcopy(dict(flat))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, definition in flat.items():
        if not isinstance(definition, Mapping):
            continue
        prop = {k: copy.deepcopy(v) for k, v in definition.items() if k not in _ATTUNE_KEYS}
        properties[str(name)] = prop
        if definition.get("required") is True:
            required.append(str(name))
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def is_template(value: object) -> bool:
    """True when ``value`` is a string containing both ``{{`` and ``}}``."""
    return isinstance(value, str) and "{{" in value and "}}" in value


def _first_alternative(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """Rule 1: for ``anyOf``/``oneOf`` use the first alternative (recursively)."""
    for keyword in ("anyOf", "oneOf"):
        alternatives = schema.get(keyword)
        if isinstance(alternatives, list) and alternatives and isinstance(alternatives[0], Mapping):
            return _first_alternative(alternatives[0])
    return schema


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        # A union such as ["string", "null"]: the first non-null member decides the placeholder.
        declared = next((t for t in declared if t != "null"), None)
    return declared if isinstance(declared, str) else None


def placeholder_for(schema: Mapping[str, Any] | None) -> Any:
    """A value that stands in for a template in a property with ``schema`` (docs/packs.md rules 1–4)."""
    if schema is None:
        return TEMPLATE_PLACEHOLDER
    schema = _first_alternative(schema)
    kind = _schema_type(schema)
    enum = schema.get("enum")
    first_enum = enum[0] if isinstance(enum, list) and enum else None
    if kind in (None, "string"):
        if first_enum is not None:
            return copy.deepcopy(first_enum)
        if "default" in schema:
            return copy.deepcopy(schema["default"])
        return TEMPLATE_PLACEHOLDER
    if kind not in ("integer", "number", "boolean", "array", "object"):
        return None
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    # Beyond the spec's list: an enum or const fallback keeps the placeholder inside the
    # allowed set, so a templated value for `exit_code: {enum: [1, 2]}` is not rejected.
    if first_enum is not None:
        return copy.deepcopy(first_enum)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if kind == "integer":
        minimum = schema.get("minimum")
        return minimum if isinstance(minimum, int) and not isinstance(minimum, bool) else 0
    if kind == "number":
        minimum = schema.get("minimum")
        return minimum if isinstance(minimum, int | float) and not isinstance(minimum, bool) else 0.0
    if kind == "boolean":
        return True
    if kind == "array":
        # `minItems` is honoured so `{packs: "{{ event.payload.packs }}"}` with minItems 1 passes.
        items = schema.get("items")
        min_items = schema.get("minItems")
        count = min_items if isinstance(min_items, int) and not isinstance(min_items, bool) else 0
        return [placeholder_for(items if isinstance(items, Mapping) else None) for _ in range(count)]
    return {}


def substitute_placeholders(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """Return ``value`` with every template string replaced by a placeholder for its property.

    ``schema`` is the JSON Schema of ``value`` (use :func:`to_json_schema` first). Objects are
    walked with their ``properties`` (or ``additionalProperties`` when it is a schema), arrays with
    their ``items``. A template for a property that has no schema becomes
    ``__template_placeholder__``. Literal values are returned unchanged.
    """
    if is_template(value):
        return placeholder_for(schema)
    resolved = _first_alternative(schema) if schema is not None else None
    if isinstance(value, Mapping):
        properties = resolved.get("properties") if resolved is not None else None
        extra = resolved.get("additionalProperties") if resolved is not None else None
        result: dict[str, Any] = {}
        for key, item in value.items():
            prop = properties.get(key) if isinstance(properties, Mapping) else None
            if prop is None and isinstance(extra, Mapping):
                prop = extra
            result[key] = substitute_placeholders(item, prop if isinstance(prop, Mapping) else None)
        return result
    if isinstance(value, list):
        items = resolved.get("items") if resolved is not None else None
        item_schema = items if isinstance(items, Mapping) else None
        return [substitute_placeholders(item, item_schema) for item in value]
    return value


def json_pointer(path: Iterable[object]) -> str:
    """RFC 6901 pointer for a jsonschema error path (``""`` for the document root)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _compile(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    # Checking and compiling a schema costs far more than validating with it, and the same few
    # action schemas are validated on every execution: cache by the schema's canonical text.
    return _compile_text(json.dumps(schema, sort_keys=True, separators=(",", ":")))


@functools.lru_cache(maxsize=512)
def _compile_text(text: str) -> jsonschema.protocols.Validator:
    schema = json.loads(text)
    validator_cls = jsonschema.validators.validator_for(schema, default=_DEFAULT_VALIDATOR)
    validator_cls.check_schema(schema)
    return validator_cls(schema)


def schema_errors(instance: Any, flat_schema: Mapping[str, Any] | None) -> list[str]:
    """Every violation of ``flat_schema`` by ``instance`` as ``<error>[ at <json-pointer>]``.

    Sorted by pointer, then message, so messages are deterministic. A missing schema yields no
    errors. Raises ``jsonschema.exceptions.SchemaError`` when the schema cannot be compiled.
    """
    schema = to_json_schema(flat_schema)
    if schema is None:
        return []
    validator = _compile(schema)
    found: list[tuple[str, str]] = []
    for error in validator.iter_errors(instance):
        found.append((json_pointer(error.absolute_path), error.message))
    found.sort()
    return [f"{message} at {pointer}" if pointer else message for pointer, message in found]


def validate_params(
    params: Mapping[str, Any] | None,
    flat_schema: Mapping[str, Any] | None,
    *,
    kind: Literal["action", "trigger"],
    ref: str,
    allow_templates: bool,
) -> None:
    """Validate a parameter set against an action's or trigger's flat schema (docs/api.md).

    With ``allow_templates`` (rule ``action_params``/``trigger_params``) template strings are
    replaced by placeholders first. Raises :class:`ValidationFailed` listing every error as
    ``Invalid parameters for <kind> '<ref>': <error>[ at <pointer>], …``, or :class:`AttuneError`
    (500) when the schema itself cannot be compiled. A missing schema accepts anything.
    """
    schema = to_json_schema(flat_schema)
    if schema is None:
        return
    instance: Any = dict(params) if params is not None else {}
    if allow_templates:
        instance = substitute_placeholders(instance, schema)
    try:
        errors = schema_errors(instance, schema)
    except (jsonschema.exceptions.SchemaError, re.error) as exc:
        detail = exc.message if isinstance(exc, jsonschema.exceptions.SchemaError) else str(exc)
        raise AttuneError(f"Invalid parameter schema for {kind} '{ref}': {detail}") from exc
    if errors:
        raise ValidationFailed(f"Invalid parameters for {kind} '{ref}': {', '.join(errors)}")


def _definitions(flat_schema: Mapping[str, Any] | None) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if flat_schema is None:
        return []
    source = flat_schema.get("properties") if is_full_form(flat_schema) else flat_schema
    if not isinstance(source, Mapping):
        return []
    return [(str(name), spec) for name, spec in source.items() if isinstance(spec, Mapping)]


def apply_defaults(params: Mapping[str, Any] | None, flat_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new dict: ``params`` plus a copy of ``default`` for every omitted top-level parameter."""
    result = dict(params) if params is not None else {}
    for name, spec in _definitions(flat_schema):
        if name not in result and "default" in spec:
            result[name] = copy.deepcopy(spec["default"])
    return result


def secret_names(flat_schema: Mapping[str, Any] | None) -> set[str]:
    """Names of the top-level parameters marked ``secret: true``."""
    return {name for name, spec in _definitions(flat_schema) if spec.get("secret") is True}
