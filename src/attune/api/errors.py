"""Maps every failure onto the bodies of docs/api.md, in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from attune.db.constraints import out_of_range, violation
from attune.errors import AttuneError, TooManyRequests

log = logging.getLogger(__name__)

#: pydantic error types that mean "a field rule failed" (JSON 422) rather than "wrong shape".
FIELD_RULE_ERRORS = frozenset(
    {
        "string_too_short",
        "string_too_long",
        "too_short",
        "too_long",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "string_pattern_mismatch",
        "value_error",
        "assertion_error",
        "multiple_of",
    }
)

#: Auth endpoints word their validation messages differently (docs/api.md).
AUTH_PREFIXES = {
    "/auth/login": "Invalid login request",
    "/auth/register": "Invalid registration request",
    "/auth/refresh": "Invalid refresh request",
    "/auth/change-password": "Invalid change password request",
    "/auth/sensor-token": "Invalid sensor token request",
    "/auth/internal/sensor-token": "Invalid sensor token request",
}


def error_response(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _describe(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{_field(tuple(e['loc']))}: {e['msg']}" for e in errors)


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        detail = "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in errors)
        return PlainTextResponse(f"Failed to parse the request body as JSON: {detail}", status_code=400)
    if any(e["loc"] and e["loc"][0] in ("query", "path", "header") for e in errors):
        return PlainTextResponse(f"Invalid request parameters: {_describe(errors)}", status_code=400)
    if all(e["type"] in FIELD_RULE_ERRORS for e in errors):
        prefix = AUTH_PREFIXES.get(request.url.path, "Validation failed")
        return error_response(422, f"{prefix}: {_describe(errors)}", "VALIDATION_ERROR")
    return PlainTextResponse(
        f"Failed to deserialize the JSON body into the target type: {_describe(errors)}", status_code=422
    )


async def _attune_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AttuneError)
    if exc.status >= 500:
        log.error("request failed: %s", exc.message)
    if isinstance(exc, TooManyRequests):
        return too_many_requests(exc)
    return error_response(exc.status, exc.message, exc.code)


def too_many_requests(exc: TooManyRequests) -> JSONResponse:
    """The 429 answer, with the ``Retry-After`` the refusal names."""
    response = error_response(exc.status, exc.message, exc.code)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def describe_integrity_error(exc: IntegrityError) -> tuple[int, str, str]:
    """(status, message, code) for a database constraint violation, on either backend."""
    found = violation(exc)
    if found.kind == "unique":
        return 409, f"Already exists ({found.name or 'unique'})", "CONFLICT"
    if found.kind == "foreign_key":
        return (
            422,
            f"Referenced entity does not exist ({found.name or 'foreign_key'})",
            "UNPROCESSABLE_ENTITY",
        )
    if found.kind == "check":
        return 422, f"Validation constraint failed: {found.name or 'check'}", "UNPROCESSABLE_ENTITY"
    if found.kind == "not_null":
        return 422, f"Validation constraint failed: {found.name or 'not_null'}", "UNPROCESSABLE_ENTITY"
    return 500, "Database error", "DATABASE_ERROR"


async def _integrity_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IntegrityError)
    status, message, code = describe_integrity_error(exc)
    return error_response(status, message, code)


#: Paths served by the API itself: an unknown one answers 404 with the standard error body. Any
#: other path is left to the web UI (which serves its pages there).
API_PREFIXES = ("/api/", "/auth/", "/docs/", "/health/", "/api-spec/")
API_ROOTS = frozenset({"/api", "/auth", "/docs", "/health", "/api-spec"})


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the API (never answered with the web UI)."""
    return path in API_ROOTS or path.startswith(API_PREFIXES)


def not_found_message(path: str) -> str:
    """The 404 message for an unknown API path, with a hint where a natural guess is wrong."""
    message = f"No such route: {path}"
    if path.startswith("/api/v1/auth/") or path == "/api/v1/auth":
        rest = path.removeprefix("/api/v1/auth").lstrip("/")
        message += f". Authentication lives under /auth/, not /api/v1/auth/: try /auth/{rest or 'login'}"
    return message


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    if exc.status_code == 404 and is_api_path(path):
        return error_response(404, not_found_message(path), "NOT_FOUND")
    if exc.status_code in (404, 405):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


async def _out_of_range_handler(request: Request, exc: Exception) -> Response:
    """A number too large for the database (docs/security.md "Input limits"): the caller's fault."""
    if not out_of_range(exc):
        return await _unexpected_handler(request, exc)
    return error_response(422, "A number in the request is out of range", "VALIDATION_ERROR")


async def _unexpected_handler(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "Internal server error", "INTERNAL_SERVER_ERROR")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(AttuneError, _attune_handler)
    app.add_exception_handler(IntegrityError, _integrity_handler)
    app.add_exception_handler(OverflowError, _out_of_range_handler)
    app.add_exception_handler(DBAPIError, _out_of_range_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
