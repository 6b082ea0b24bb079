"""Reading pack YAML files: safe loading that keeps version text, and typed field access.

Every error is a ``PackFormatError`` whose message starts with the file's path relative to the pack
directory and names the field (docs/packs.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import jsonschema
import jsonschema.exceptions
import yaml

from attune.domain import params, safe_yaml
from attune.errors import BadRequest, ValidationFailed
from attune.packs.manifest import JsonObject

__all__ = ["Fields", "PackFormatError", "PackNotFoundError", "YamlFloat", "load_yaml", "type_name"]

_T = TypeVar("_T")


class PackFormatError(ValidationFailed):
    """A pack file is malformed; the message names the file (pack-relative) and the field."""


class PackNotFoundError(BadRequest):
    """The pack directory or its ``pack.yaml`` does not exist (HTTP 400)."""


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


class YamlFloat(float):
    """A YAML float that remembers its source text, so ``version: 3.10`` reads as "3.10".

    It stays in the loaded documents (it is a ``float`` for every other purpose).
    """

    text: str


class _Loader(safe_yaml.SafeLoader):
    """Safe loader with the input limits (docs/security.md) whose floats keep their source text."""


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    number = YamlFloat(loader.construct_yaml_float(node))
    number.text = str(node.value)
    return number


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _jsonable(value: Any, where: str) -> Any:
    """Make YAML data JSON-compatible: dates become ISO strings, mapping keys become strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dt.date):  # also datetime; YAML turns `eol: 2025-04-30` into a date
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{where}: unsupported YAML value of type {type(value).__name__}")


def load_yaml(path: Path, rel: str) -> JsonObject:
    """Load one YAML file that must hold a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PackFormatError(f"{rel}: file is not valid UTF-8") from exc
    except OSError as exc:
        raise PackFormatError(f"{rel}: cannot read file ({exc.strerror})") from exc
    try:
        doc = safe_yaml.load(text, _Loader)
    except safe_yaml.YamlLimitError as exc:
        raise PackFormatError(f"{rel}: YAML document refused: {exc}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise PackFormatError(f"{rel}: YAML syntax error{line}: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise PackFormatError(f"{rel}: YAML syntax error: {exc}") from exc
    if not isinstance(doc, dict):
        raise PackFormatError(f"{rel}: must contain a YAML mapping (got {type_name(doc)})")
    try:
        result: JsonObject = _jsonable(doc, rel)
    except ValueError as exc:
        raise PackFormatError(str(exc)) from exc
    return result


class Fields:
    """Typed field access on one YAML mapping; every error is prefixed with the file path."""

    def __init__(self, rel: str, doc: Mapping[str, Any], prefix: str = "") -> None:
        self.rel = rel
        self.doc = doc
        self.prefix = prefix

    def fail(self, message: str) -> NoReturn:
        raise PackFormatError(f"{self.rel}: {message}")

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def nested(self, key: str, value: Mapping[str, Any]) -> Fields:
        return Fields(self.rel, value, f"{self.prefix}{key}.")

    def _get(self, key: str, check: Callable[[Any], bool], expected: str, default: _T) -> Any | _T:
        value = self.doc.get(key)
        if value is None:
            return default
        if not check(value):
            self.fail(f"{self._name(key)} must be {expected} (got {type_name(value)})")
        return value

    def required_text(self, key: str) -> str:
        value = self.doc.get(key)
        if value is None or value == "":
            self.fail(f"missing required field '{self._name(key)}'")
        if not isinstance(value, str):
            self.fail(f"{self._name(key)} must be a string (got {type_name(value)})")
        return value

    def opt_text(self, key: str) -> str | None:
        value: str | None = self._get(key, lambda v: isinstance(v, str), "a string", None)
        return value

    def text(self, key: str, default: str = "") -> str:
        value: str = self._get(key, lambda v: isinstance(v, str), "a string", default)
        return value

    def version_text(self, key: str) -> str | None:
        """A version-like scalar; YAML reads ``3.12`` as a number, so numbers are accepted too."""
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(f"{self._name(key)} must be a string (got {type_name(value)})")
        if isinstance(value, YamlFloat):
            return value.text.strip()
        return str(value).strip()

    def boolean(self, key: str, default: bool) -> bool:
        value: bool = self._get(key, lambda v: isinstance(v, bool), "true or false", default)
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        value = self._get(key, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", None)
        if value is not None and minimum is not None and value < minimum:
            self.fail(f"{self._name(key)} must be at least {minimum} (got {value})")
        result: int | None = value
        return result

    def mapping(self, key: str) -> JsonObject:
        value: JsonObject = self._get(key, lambda v: isinstance(v, dict), "a mapping", {})
        return value

    def opt_mapping(self, key: str) -> JsonObject | None:
        value: JsonObject | None = self._get(key, lambda v: isinstance(v, dict), "a mapping", None)
        return value

    def items(self, key: str) -> list[Any]:
        value: list[Any] = self._get(key, lambda v: isinstance(v, list), "a list", [])
        return value

    def str_list(self, key: str) -> list[str]:
        value = self.items(key)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{self._name(key)}[{index}] must be a string (got {type_name(item)})")
        return list(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.doc.get(key)
        if raw is None:
            return default
        if not isinstance(raw, str) or raw.strip().lower() not in allowed:
            self.fail(f"{self._name(key)} must be one of {', '.join(allowed)} (got {raw!r})")
        return raw.strip().lower()

    def schema(self, key: str) -> JsonObject | None:
        """A flat (or full-form) parameter schema, checked to compile as JSON Schema."""
        value = self.doc.get(key)
        if value is None:
            return None
        name = self._name(key)
        if not isinstance(value, dict):
            self.fail(f"{name} must be a mapping of parameter definitions (got {type_name(value)})")
        full = params.is_full_form(value)
        if not full:
            for param, definition in value.items():
                if not isinstance(definition, dict):
                    self.fail(f"{name}.{param} must be a mapping (got {type_name(definition)})")
                for flag in ("required", "secret"):
                    if flag in definition and not isinstance(definition[flag], bool):
                        self.fail(f"{name}.{param}.{flag} must be true or false")
        converted = params.to_json_schema(value)
        assert converted is not None
        try:
            jsonschema.Draft202012Validator.check_schema(converted)
        except jsonschema.exceptions.SchemaError as exc:
            path = [str(p) for p in exc.absolute_path]
            if not full and path[:1] == ["properties"]:
                path = path[1:]
            where = ".".join([name, *path])
            self.fail(f"invalid parameter schema at {where}: {exc.message}")
        return value
