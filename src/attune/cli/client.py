"""HTTP access to the Attune API for the client commands (docs/cli.md).

Paths under ``/auth`` go to ``{base}/auth/…``, everything else to ``{base}/api/v1/…``. A 401 with a
stored refresh token triggers one silent refresh: the new pair is saved to the selected profile
and the original request is retried once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from attune.cli.errors import ApiError, CliError

log = logging.getLogger("attune.cli.http")

DEFAULT_TIMEOUT = 30.0
LONG_TIMEOUT = 600.0

TokenSaver = Callable[[str, str], None]


def error_message(response: httpx.Response) -> str:
    """The server's message in one line: ``error`` (string or ``{message}``) or the plain body."""
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        if body.get("message"):
            return str(body["message"])
    if not text:
        return response.reason_phrase or "no details"
    return " ".join(text.split())


class ApiClient:
    """A synchronous client bound to one base URL and one profile's tokens."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        save_tokens: TokenSaver | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        self._save_tokens = save_tokens
        self._http = httpx.Client(transport=transport, timeout=DEFAULT_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        if path.startswith("/auth") or path.startswith("/health"):
            return f"{self.base_url}{path}"
        return f"{self.base_url}/api/v1{path}"

    def _send(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.url(path)
        log.debug("%s %s", method, url)
        try:
            response = self._http.request(method, url, headers=headers, timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(f"The Attune API at {self.base_url} did not answer within {timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise CliError(f"Cannot reach the Attune API at {self.base_url}: {exc}") from exc
        log.debug("-> %s %s", response.status_code, response.text[:500])
        return response

    def raw(
        self, method: str, path: str, *, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; refresh and retry once on 401; raise :class:`ApiError` on failure."""
        response = self._send(method, path, timeout=timeout, **kwargs)
        if response.status_code == 401 and self._can_refresh(path) and self._refresh():
            response = self._send(method, path, timeout=timeout, **kwargs)
        if response.is_error:
            message = error_message(response)
            if response.status_code == 401 and not path.startswith("/auth/login"):
                message += " (log in with 'attune auth login')"
            raise ApiError(response.status_code, response.reason_phrase, message)
        return response

    def _can_refresh(self, path: str) -> bool:
        return bool(self.refresh_token) and not path.startswith(("/auth/login", "/auth/refresh"))

    def _refresh(self) -> bool:
        """Exchange the refresh token for a new pair; False when the server refuses."""
        try:
            response = self._http.post(
                self.url("/auth/refresh"), json={"refresh_token": self.refresh_token}, timeout=DEFAULT_TIMEOUT
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        data = response.json()["data"]
        self.token, self.refresh_token = data["access_token"], data["refresh_token"]
        if self._save_tokens is not None:
            self._save_tokens(data["access_token"], data["refresh_token"])
        return True

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of a JSON response (the whole body when there is no envelope)."""
        response = self.raw(method, path, **kwargs)
        if not response.content:
            return None
        try:
            body = response.json()
        except ValueError as exc:
            raise CliError(f"The server sent a response that is not JSON: {response.text[:200]}") from exc
        if isinstance(body, dict) and "data" in body:
            return body["data"]
        return body

    def ndjson(self, method: str, path: str, *, timeout: float = 60.0, **kwargs: Any) -> Iterator[Any]:
        """The lines of a streamed NDJSON answer, parsed; ``timeout`` bounds the wait for each line.

        Errors before the stream starts raise :class:`ApiError` like :meth:`raw` (with one refresh
        on 401).
        """
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            url = self.url(path)
            log.debug("%s %s (stream)", method, url)
            try:
                with self._http.stream(method, url, headers=headers, timeout=timeout, **kwargs) as response:
                    if (
                        response.status_code == 401
                        and attempt == 1
                        and self._can_refresh(path)
                        and self._refresh()
                    ):
                        continue
                    if response.is_error:
                        response.read()
                        raise ApiError(response.status_code, response.reason_phrase, error_message(response))
                    for line in response.iter_lines():
                        if line.strip():
                            yield json.loads(line)
                    return
            except httpx.TimeoutException as exc:
                raise CliError(f"The Attune API at {self.base_url} went silent for {timeout:g} s") from exc
            except httpx.TransportError as exc:
                raise CliError(f"Cannot reach the Attune API at {self.base_url}: {exc}") from exc
            except ValueError as exc:
                raise CliError(f"The server sent a line that is not JSON: {exc}") from exc

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params=_clean(params))

    def post(self, path: str, body: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        return self.call("POST", path, json=body if body is not None else {}, timeout=timeout)

    def put(self, path: str, body: Any) -> Any:
        return self.call("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def get_all(self, path: str, params: dict[str, Any] | None = None, *, limit: int = 1000) -> list[Any]:
        """Every item of a page/page_size list, up to ``limit`` (the server returns 100 at most)."""
        items: list[Any] = []
        page = 1
        while len(items) < limit:
            response = self.raw(
                "GET", path, params=_clean({**(params or {}), "page": page, "page_size": 100})
            )
            body = response.json()
            batch = body.get("data") or []
            items.extend(batch)
            total_pages = (body.get("pagination") or {}).get("total_pages", 1)
            if not batch or page >= total_pages:
                break
            page += 1
        return items[:limit]


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop unset query parameters and spell booleans the way the API expects."""
    if params is None:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}


def env_token() -> str | None:
    """``ATTUNE_API_TOKEN`` overrides the stored token for one run (CI jobs, scripts)."""
    return os.environ.get("ATTUNE_API_TOKEN") or None
