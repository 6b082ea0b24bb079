"""An action process's stdio pipes connected to the event loop (docs/performance.md, "Cheaper
process start and finish on the worker" and "Warm Python runners").

Both ways of starting an action without ``asyncio``'s subprocess support — a pidfd-watched
``Popen`` (:mod:`attune.worker.spawn`) and a fork of a warm interpreter
(:mod:`attune.worker.runners.python_pool`) — end with three pipe ends to hand to supervision as
stream readers and a writer, in the ``Child`` shape of :mod:`attune.worker.process`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import IO

#: Stream reader buffer limit (asyncio's default).
STREAM_LIMIT = 64 * 1024


@dataclass
class PipedChild:
    """A child process with its stdio connected to the event loop (the ``Child`` shape of
    :mod:`attune.worker.process`); ``returncode`` is set once it is reaped."""

    pid: int
    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    returncode: int | None = None

    def close(self) -> None:
        """Close our ends of its pipes (readers see EOF; a writing child gets SIGPIPE)."""
        for transport in self.transports:
            transport.close()


async def pipe_reader(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes]
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream reader on the read end ``pipe`` (the loop owns and closes it)."""
    stream = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream, loop=loop), pipe)
    return stream, transport


async def pipe_writer(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes]
) -> tuple[asyncio.StreamWriter, asyncio.BaseTransport]:
    """A stream writer on the write end ``pipe`` (the loop owns and closes it)."""
    # StreamReaderProtocol brings the drain and close-waiter support a StreamWriter needs.
    protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop)
    transport, _ = await loop.connect_write_pipe(lambda: protocol, pipe)
    return asyncio.StreamWriter(transport, protocol, None, loop), transport
