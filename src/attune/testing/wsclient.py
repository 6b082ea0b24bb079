"""A minimal asyncio WebSocket client for tests (no third-party WebSocket library needed).

``ws://`` only: the RFC 6455 handshake, masked client frames, unmasked server frames, ping
answers and the close handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from attune.notifier.frames import (
    FrameParser,
    MessageAssembler,
    Opcode,
    accept_key,
    close_payload,
    encode_frame,
    new_key,
    parse_close,
)


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


class WebSocketClient:
    """One client connection; use :meth:`connect`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leftover: bytes) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = FrameParser(require_mask=False, max_size=64 * 1024 * 1024)
        self._assembler = MessageAssembler(64 * 1024 * 1024)
        self._messages: deque[str | bytes] = deque()
        self.closed: ConnectionClosed | None = None
        if leftover:
            self._absorb(leftover)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a connect timeout, as in other clients
    ) -> WebSocketClient:
        """Open ``ws://host:port/path?query``; raise :class:`WebSocketRefused` unless upgraded."""
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None:
            raise ValueError(f"only ws:// URLs are supported: {url}")
        port = parts.port or 80
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, port)
            key = new_key()
            lines = [
                f"GET {target} HTTP/1.1",
                f"Host: {parts.hostname}:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{name}: {value}" for name, value in (headers or {}).items()),
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                head += chunk
            raw_head, _, rest = head.partition(b"\r\n\r\n")
            status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ")[1]) if " " in status_line else 0
            values = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines)
            }
            if status != 101:
                body = rest
                with contextlib.suppress(Exception):
                    body += await asyncio.wait_for(reader.read(65536), 1.0)
                writer.close()
                raise WebSocketRefused(status, body.decode(errors="replace"))
            if values.get("sec-websocket-accept") != accept_key(key):
                writer.close()
                raise WebSocketRefused(status, "bad Sec-WebSocket-Accept")
        return cls(reader, writer, rest)

    async def __aenter__(self) -> WebSocketClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _absorb(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            if frame.opcode is Opcode.PING:
                self._writer.write(encode_frame(Opcode.PONG, frame.payload, mask=True))
            elif frame.opcode is Opcode.CLOSE:
                code, reason = parse_close(frame.payload)
                if self.closed is None:
                    with contextlib.suppress(Exception):
                        self._writer.write(encode_frame(Opcode.CLOSE, frame.payload[:2], mask=True))
                    self.closed = ConnectionClosed(code, reason)
            elif frame.opcode is not Opcode.PONG:
                message = self._assembler.add(frame)
                if message is not None:
                    self._messages.append(message)

    async def recv(self, timeout: float | None = 10.0) -> str | bytes:  # noqa: ASYNC109
        """The next message; raises :class:`ConnectionClosed` once the server has closed."""
        async with asyncio.timeout(timeout):
            while not self._messages:
                if self.closed is not None:
                    raise self.closed
                data = await self._reader.read(65536)
                if not data:
                    self.closed = self.closed or ConnectionClosed(1006, "connection lost")
                    raise self.closed
                self._absorb(data)
        return self._messages.popleft()

    async def recv_json(self, timeout: float | None = 10.0) -> Any:  # noqa: ASYNC109
        """The next message, parsed as JSON."""
        return json.loads(await self.recv(timeout))

    async def send_text(self, text: str) -> None:
        """Send one text message."""
        self._writer.write(encode_frame(Opcode.TEXT, text.encode("utf-8"), mask=True))
        await self._writer.drain()

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as a JSON text message."""
        await self.send_text(json.dumps(value))

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        self._writer.write(encode_frame(Opcode.BINARY, data, mask=True))
        await self._writer.drain()

    async def close(self, code: int = 1000) -> None:
        """Start (or finish) the close handshake and drop the connection."""
        if self._writer.is_closing():
            return
        with contextlib.suppress(Exception):
            if self.closed is None:
                self._writer.write(encode_frame(Opcode.CLOSE, close_payload(code), mask=True))
                await self._writer.drain()
                # Wait briefly for the server's answering close frame.
                async with asyncio.timeout(2):
                    while self.closed is None:
                        data = await self._reader.read(65536)
                        if not data:
                            break
                        self._absorb(data)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
