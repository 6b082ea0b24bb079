"""A minimal RFC 6455 WebSocket protocol for uvicorn.

uvicorn serves WebSockets only through the ``websockets`` or ``wsproto`` packages, and Attune
depends on neither; this class takes their place (``uvicorn.Config(ws=WebSocketProtocol)``).
It implements the ASGI WebSocket interface (connect, accept, receive, send, close, denial
responses) without extensions or keep-alive pings; uvicorn's h11 protocol hands it the raw
upgrade request, exactly as it does for its own implementations.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

from attune.notifier.frames import (
    FrameParser,
    MessageAssembler,
    Opcode,
    ProtocolError,
    accept_key,
    close_payload,
    encode_frame,
    parse_close,
)

log = logging.getLogger(__name__)

_MAX_HEAD = 16 * 1024
# Reading pauses while this many received messages wait for the application.
_MAX_PENDING = 32
_CLOSE_TIMEOUT = 5.0


class _Disconnected(Exception):
    """The application sent on a connection that is gone (uvicorn's ClientDisconnected)."""


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection: handshake, framing, and the ASGI ``receive``/``send`` pair."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.app_state = app_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.default_headers: list[tuple[bytes, bytes]] = server_state.default_headers
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.head = bytearray()
        self.handshake_done = False  # the request head has been parsed
        self.accepted = False
        self.responded = False  # a denial response was started instead
        self.close_sent = False
        self.disconnected = False
        self.read_paused = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.key = ""
        self.subprotocols: list[str] = []
        max_size = int(getattr(config, "ws_max_size", 16 * 1024 * 1024))
        self.parser = FrameParser(require_mask=True, max_size=max_size)
        self.assembler = MessageAssembler(max_size)
        self.close_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.connections.add(self)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if not self.disconnected:
            self.disconnected = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006 if exc else 1005})
        self.writable.set()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if not self.handshake_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > _MAX_HEAD:
                    self._http_error(431, "Request header fields too large")
                return
            rest = bytes(self.head[end + 4 :])
            self._handle_request(bytes(self.head[:end]))
            if not rest:
                return
            data = rest
        if self.close_sent and self.disconnected:
            return
        try:
            frames = self.parser.feed(data)
            for frame in frames:
                self._handle_frame(frame)
        except ProtocolError as exc:
            self._fail(exc.code, str(exc))

    def shutdown(self) -> None:
        """Server shutdown: close accepted connections with 1012 (service restart)."""
        if self.transport is None:
            return
        if self.accepted and not self.close_sent:
            self._send_close(1012, "")
            self._disconnect(1012)
        elif not self.accepted and not self.responded:
            self._http_error(503, "Server shutting down")
        self.transport.close()

    # ------------------------------------------------------------------ handshake

    def _handle_request(self, head: bytes) -> None:
        self.handshake_done = True
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._http_error(400, "Malformed request line")
            return
        headers: list[tuple[bytes, bytes]] = []
        values: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name, value = name.strip().lower(), value.strip()
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
            values[name] = f"{values[name]}, {value}" if name in values else value
        upgrade = values.get("upgrade", "").lower()
        connection = {token.strip().lower() for token in values.get("connection", "").split(",")}
        self.key = values.get("sec-websocket-key", "")
        if (
            method != "GET"
            or upgrade != "websocket"
            or "upgrade" not in connection
            or values.get("sec-websocket-version") != "13"
            or not self.key
        ):
            self._http_error(400, "Invalid WebSocket upgrade request")
            return
        raw_path, _, query = target.partition("?")
        self.subprotocols = [
            p.strip() for p in values.get("sec-websocket-protocol", "").split(",") if p.strip()
        ]
        transport = self.transport
        assert transport is not None
        server = transport.get_extra_info("sockname")
        client = transport.get_extra_info("peername")
        root_path = getattr(self.config, "root_path", "")
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": tuple(server[:2]) if isinstance(server, tuple) else None,
            "client": tuple(client[:2]) if isinstance(client, tuple) else None,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": (root_path + raw_path).encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": headers,
            "subprotocols": self.subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self._run_asgi(scope))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _http_error(self, status: int, message: str) -> None:
        body = message.encode()
        self._write_response(
            status,
            [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        )
        self._write(body)
        self.responded = True
        if self.transport is not None:
            self.transport.close()

    def _write_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        lines = [f"HTTP/1.1 {status} {_reason_phrase(status)}".encode("latin-1")]
        lines += [name + b": " + value for name, value in [*self.default_headers, *headers]]
        self._write(b"\r\n".join(lines) + b"\r\n\r\n")

    # ------------------------------------------------------------------ frames in

    def _handle_frame(self, frame: Any) -> None:
        if frame.opcode is Opcode.PING:
            if not self.close_sent:
                self._write(encode_frame(Opcode.PONG, frame.payload))
            return
        if frame.opcode is Opcode.PONG:
            return
        if frame.opcode is Opcode.CLOSE:
            code, reason = parse_close(frame.payload)
            if not self.close_sent:
                # Echo the close (RFC 6455 §5.5.1); 1005 may not be sent on the wire.
                self._send_close(1000 if code == 1005 else code, "")
            self._disconnect(code, reason)
            if self.transport is not None:
                self.transport.close()
            return
        if self.close_sent:
            return
        message = self.assembler.add(frame)
        if message is None:
            return
        if isinstance(message, str):
            self.queue.put_nowait({"type": "websocket.receive", "text": message})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": message})
        if self.queue.qsize() >= _MAX_PENDING and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _fail(self, code: int, reason: str) -> None:
        log.info("closing a WebSocket connection: %s", reason)
        if not self.close_sent:
            self._send_close(code, reason)
        self._disconnect(code, reason)
        if self.transport is not None:
            self.transport.close()

    def _disconnect(self, code: int, reason: str = "") -> None:
        if not self.disconnected:
            self.disconnected = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    # ------------------------------------------------------------------ frames out

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _send_close(self, code: int, reason: str) -> None:
        self.close_sent = True
        self._write(encode_frame(Opcode.CLOSE, close_payload(code, reason)))

    # ------------------------------------------------------------------ ASGI

    async def _run_asgi(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self.receive, self.send)
        except _Disconnected:
            pass
        except BaseException:
            log.exception("Exception in ASGI WebSocket application")
            if not self.accepted and not self.responded:
                self._http_error(500, "Internal Server Error")
        else:
            if not self.accepted and not self.responded:
                log.error("ASGI callable returned without completing the WebSocket handshake")
                self._http_error(500, "Internal Server Error")
        finally:
            if self.transport is not None and not self.transport.is_closing():
                if self.accepted and not self.close_sent:
                    self._send_close(1000, "")
                if self.close_sent and not self.disconnected:
                    # Give the peer a moment to answer our close before dropping the socket.
                    if self.close_timer is None:
                        self.close_timer = self.loop.call_later(_CLOSE_TIMEOUT, self.transport.close)
                else:
                    self.transport.close()

    async def receive(self) -> dict[str, Any]:
        """The next ASGI event: connect, receive or disconnect."""
        message = await self.queue.get()
        if self.read_paused and self.queue.qsize() < _MAX_PENDING // 2 and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        """Carry out one ASGI send event."""
        await self.writable.wait()
        kind = message["type"]
        if self.disconnected and kind != "websocket.http.response.body":
            raise _Disconnected
        if not self.accepted and not self.responded:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                # Closing before the handshake refuses the connection (ASGI spec: HTTP 403).
                self._http_error(403, "Forbidden")
                self._disconnect(1006)
            elif kind == "websocket.http.response.start":
                self.responded = True
                headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
                if not any(name == b"content-length" for name, _ in headers):
                    headers.append((b"connection", b"close"))
                self._write_response(int(message["status"]), headers)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} before the handshake")
            return
        if self.responded:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"unexpected ASGI message {kind!r} in a denial response")
            self._write(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self._disconnect(1006)
                if self.transport is not None:
                    self.transport.close()
            return
        if self.close_sent:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the close frame")
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                self._write(encode_frame(Opcode.TEXT, text.encode("utf-8")))
            else:
                self._write(encode_frame(Opcode.BINARY, bytes(message.get("bytes") or b"")))
        elif kind == "websocket.close":
            self._send_close(int(message.get("code", 1000)), str(message.get("reason") or ""))
            if self.transport is not None and not self.transport.is_closing() and self.close_timer is None:
                self.close_timer = self.loop.call_later(_CLOSE_TIMEOUT, self.transport.close)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _accept(self, message: dict[str, Any]) -> None:
        headers: list[tuple[bytes, bytes]] = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(self.key).encode("ascii")),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append((b"sec-websocket-protocol", str(subprotocol).encode("latin-1")))
        headers += [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        self._write_response(101, headers)
        self.accepted = True
