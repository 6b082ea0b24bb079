"""The OpenAPI document with the failure answers every route can give, declared in one place.

Routes declare their success answers and their own special cases; the answers that come from the
shared machinery (docs/security.md "Input limits") are added here, so the document lists every
status code a route can return: 401 and 403 on protected routes (the bearer check, then the
permission check) and on the API's public ones (credentials, allow-lists), 404 where a path or body
names something, 400 for unreadable parameters or JSON, 409 for writes that hit a uniqueness rule,
413 and 415 for bodies, 422 for bodies that fail validation, and 429 where login attempts are
throttled. ``make fuzz`` checks the result against the running server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["ERROR_SCHEMA", "install_openapi"]

ERROR_SCHEMA = "ErrorResponse"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_WRITES = ("put", "post", "patch", "delete")
_BODY_METHODS = ("put", "post", "patch")
#: Routes that count failed attempts per login and client address (docs/security.md).
THROTTLED = frozenset({"/auth/login"})

_DESCRIPTIONS = {
    "400": "Unreadable parameters or request body",
    "401": "Missing, invalid or expired bearer token",
    "403": "The caller lacks the permission this operation needs",
    "404": "No such resource (also for an id out of range)",
    "409": "Conflicts with an existing resource",
    "413": "Request body larger than the server's limit",
    "415": "Request body is not JSON",
    "422": "The request failed validation",
    "429": "Too many attempts; retry after the Retry-After header's seconds",
}


def _error_response(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
    }


def _declare(operation: dict[str, Any], statuses: list[str]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in statuses:
        responses.setdefault(status, _error_response(status))


def add_failure_responses(document: dict[str, Any], is_public: Callable[[str], bool]) -> dict[str, Any]:
    """Add the shared failure answers to every operation of ``document`` (in place; returned)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        ERROR_SCHEMA,
        {
            "title": ERROR_SCHEMA,
            "type": "object",
            "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
            "required": ["error"],
        },
    )
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            statuses: list[str] = []
            # Public API routes answer 401/403 too: wrong credentials on /auth/*, a webhook's
            # address allow-list, a stream's query token.
            if not is_public(path) or path.startswith(("/api/", "/auth/")):
                statuses += ["401", "403"]
            has_body = "requestBody" in operation
            # A path names something; a body may name something else (a pack, an action…).
            if has_body or any(p.get("in") == "path" for p in parameters):
                statuses.append("404")
            if parameters or has_body or method in _BODY_METHODS:
                statuses += ["400", "422"]
            if method in _WRITES:
                statuses.append("409")
            if method in _BODY_METHODS:
                statuses += ["413", "415"]
            if path in THROTTLED:
                statuses.append("429")
            _declare(operation, statuses)
    return document


def install_openapi(app: FastAPI, is_public: Callable[[str], bool]) -> None:
    """Serve the document with the shared failure answers (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                terms_of_service=app.terms_of_service,
                contact=app.contact,
                license_info=app.license_info,
                routes=app.routes,
                webhooks=app.webhooks.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            app.openapi_schema = add_failure_responses(document, is_public)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
