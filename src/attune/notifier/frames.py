"""RFC 6455 framing: encode frames and parse a byte stream into frames (pure, no I/O).

Shared by the server protocol (:mod:`attune.notifier.ws_protocol`) and the test client
(:mod:`attune.testing.wsclient`). No extensions (no per-message deflate).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection must be closed with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed frame; ``payload`` is already unmasked."""

    fin: bool
    opcode: Opcode
    payload: bytes


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key() -> str:
    """A random ``Sec-WebSocket-Key`` (client side)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def _apply_mask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    # XOR the whole payload at once through big integers: far faster than a byte loop.
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(data), "big")


def encode_frame(opcode: Opcode, payload: bytes = b"", *, mask: bool = False, fin: bool = True) -> bytes:
    """One frame; clients must send ``mask=True``, servers ``mask=False``."""
    head = bytearray([(0x80 if fin else 0) | int(opcode)])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if mask:
        key = os.urandom(4)
        return bytes(head) + key + _apply_mask(payload, key)
    return bytes(head) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """The body of a close frame."""
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


def parse_close(payload: bytes) -> tuple[int, str]:
    """``(code, reason)`` of a close frame; 1005 when it carries no code."""
    if len(payload) < 2:
        return 1005, ""
    code = struct.unpack("!H", payload[:2])[0]
    return code, payload[2:].decode("utf-8", errors="replace")


class FrameParser:
    """Incremental parser: ``feed`` bytes, get back the complete frames.

    ``require_mask`` enforces the masking rule for frames sent by clients; ``max_size`` bounds
    a single frame's payload (larger → :class:`ProtocolError` with code 1009).
    """

    def __init__(self, *, require_mask: bool, max_size: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._require_mask = require_mask
        self._max_size = max_size

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame now complete, in order."""
        self._buffer += data
        frames: list[Frame] = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    def _next(self) -> Frame | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        if first & 0x70:
            raise ProtocolError("reserved bits set without a negotiated extension")
        try:
            opcode = Opcode(first & 0x0F)
        except ValueError as exc:
            raise ProtocolError(f"unknown opcode {first & 0x0F}") from exc
        fin = bool(first & 0x80)
        masked = bool(second & 0x80)
        if masked != self._require_mask:
            raise ProtocolError("frame masking does not match the peer's role")
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack_from("!H", buf, 2)[0]
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack_from("!Q", buf, 2)[0]
            offset = 10
        if opcode in CONTROL_OPCODES and (length > 125 or not fin):
            raise ProtocolError("control frames must be short and unfragmented")
        if length > self._max_size:
            raise ProtocolError("frame too large", code=1009)
        key = b""
        if masked:
            if len(buf) < offset + 4:
                return None
            key = bytes(buf[offset : offset + 4])
            offset += 4
        if len(buf) < offset + length:
            return None
        payload = bytes(buf[offset : offset + length])
        del buf[: offset + length]
        return Frame(fin, opcode, _apply_mask(payload, key) if masked else payload)


class MessageAssembler:
    """Joins fragmented data frames into whole messages (text → ``str``, binary → ``bytes``)."""

    def __init__(self, max_size: int = 16 * 1024 * 1024) -> None:
        self._opcode: Opcode | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._max_size = max_size

    def add(self, frame: Frame) -> str | bytes | None:
        """Take a data frame; return the message it completes, if any."""
        if frame.opcode is Opcode.CONTINUATION:
            if self._opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._opcode is not None:
            raise ProtocolError("new message started before the previous one finished")
        else:
            self._opcode = frame.opcode
        self._parts.append(frame.payload)
        self._size += len(frame.payload)
        if self._size > self._max_size:
            raise ProtocolError("message too large", code=1009)
        if not frame.fin:
            return None
        data = b"".join(self._parts)
        opcode = self._opcode
        self._opcode, self._parts, self._size = None, [], 0
        if opcode is Opcode.TEXT:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError("text message is not valid UTF-8", code=1007) from exc
        return data
