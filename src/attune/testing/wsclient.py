"""A small asyncio WebSocket client for tests and tools, on the ``websockets`` package.

It keeps the interface the tests were written against: :meth:`WebSocketClient.connect` raises
:class:`WebSocketRefused` with the HTTP status when the upgrade is refused, :meth:`recv` raises
:class:`ConnectionClosed` with the server's close code once the server has closed, and a
``TimeoutError`` when nothing arrives in time.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as _WsClosed
from websockets.exceptions import InvalidStatus

#: Largest message accepted from the server.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class WebSocketRefused(Exception):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"WebSocket upgrade refused with HTTP {status}: {body}")
        self.status = status
        self.body = body


class ConnectionClosed(Exception):
    """The server closed the connection; ``code`` is its close code (1006: no close frame)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed with {code} {reason}".strip())
        self.code = code
        self.reason = reason


def _closed(exc: _WsClosed) -> ConnectionClosed:
    frame = exc.rcvd
    if frame is None:
        return ConnectionClosed(1006, "connection lost")
    return ConnectionClosed(frame.code, frame.reason)


class WebSocketClient:
    """One client connection; use :meth:`connect`."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self.closed: ConnectionClosed | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a connect timeout, as in other clients
    ) -> WebSocketClient:
        """Open ``ws://host:port/path?query``; raise :class:`WebSocketRefused` unless upgraded."""
        if not url.startswith("ws://"):
            raise ValueError(f"only ws:// URLs are supported: {url}")
        try:
            connection = await connect(
                url,
                additional_headers=headers,
                open_timeout=timeout,
                max_size=MAX_MESSAGE_BYTES,
                # The tests watch the application protocol; keep-alive pings would only add noise.
                ping_interval=None,
                compression=None,
            )
        except InvalidStatus as exc:
            response = exc.response
            raise WebSocketRefused(response.status_code, response.body.decode(errors="replace")) from exc
        return cls(connection)

    async def __aenter__(self) -> WebSocketClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def recv(self, timeout: float | None = 10.0) -> str | bytes:  # noqa: ASYNC109
        """The next message; raises :class:`ConnectionClosed` once the server has closed."""
        if self.closed is not None:
            raise self.closed
        try:
            async with asyncio.timeout(timeout):
                return await self._connection.recv()
        except _WsClosed as exc:
            self.closed = _closed(exc)
            raise self.closed from None

    async def recv_json(self, timeout: float | None = 10.0) -> Any:  # noqa: ASYNC109
        """The next message, parsed as JSON."""
        return json.loads(await self.recv(timeout))

    async def send_text(self, text: str) -> None:
        """Send one text message."""
        await self._send(text)

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as a JSON text message."""
        await self.send_text(json.dumps(value))

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        await self._send(data)

    async def _send(self, message: str | bytes) -> None:
        try:
            await self._connection.send(message)
        except _WsClosed as exc:
            self.closed = _closed(exc)
            raise self.closed from None

    async def close(self, code: int = 1000) -> None:
        """Run the close handshake (briefly) and drop the connection."""
        await self._connection.close(code)
