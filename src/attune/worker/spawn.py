"""Starting an action process watched through a pidfd (docs/performance.md, "Cheaper process
start and finish on the worker").

``asyncio``'s subprocess support on Python 3.11 watches every child with its default
``ThreadedChildWatcher``: a new thread per process, started (and waited for) while the event loop
waits, blocked in ``waitpid`` until the child exits, and then queuing for the GIL behind a busy
event loop before it can report the exit. On Linux ≥ 5.3 a process file descriptor
(``pidfd_open``) becomes readable when the child exits, so the event loop itself can watch it:
no thread, and the exit is seen at the loop's next poll. This module starts the process as
``asyncio`` does (``subprocess.Popen`` with pipes, its own session), connects the pipes to the
loop (:mod:`attune.worker.pipes`), and reaps the child when its pidfd becomes readable.

Where ``pidfd_open`` is missing or refused (another kernel, a sandbox), :func:`pidfd_supported`
is False and :mod:`attune.worker.process` starts the process through ``asyncio`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from attune.worker.pipes import PipedChild, pipe_reader, pipe_writer


@functools.cache
def pidfd_supported() -> bool:
    """Whether this process may watch its children through pidfds (Linux ≥ 5.3, not forbidden)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        fd = pidfd_open(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


async def spawn_watched(
    argv: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    preexec_fn: Callable[[], Any] | None = None,
) -> tuple[PipedChild, asyncio.Future[None]]:
    """Start ``argv`` in its own session with piped stdin/stdout/stderr; the child and a future
    resolved once it has exited and been reaped. Raises OSError/ValueError as ``Popen`` does."""
    loop = asyncio.get_running_loop()
    popen = _popen(argv, cwd=cwd, env=env, preexec_fn=preexec_fn)
    assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
    pipes: list[IO[bytes]] = [popen.stdin, popen.stdout, popen.stderr]
    exited: asyncio.Future[None] = loop.create_future()
    child = PipedChild(popen.pid, None, None, None)
    try:
        _watch(loop, popen, child, exited)
        child.stdout, transport = await pipe_reader(loop, popen.stdout)
        pipes.remove(popen.stdout)
        child.transports.append(transport)
        child.stderr, transport = await pipe_reader(loop, popen.stderr)
        pipes.remove(popen.stderr)
        child.transports.append(transport)
        child.stdin, transport = await pipe_writer(loop, popen.stdin)
        pipes.remove(popen.stdin)
        child.transports.append(transport)
    except BaseException:
        child.close()
        for pipe in pipes:
            pipe.close()
        with contextlib.suppress(OSError):
            os.killpg(popen.pid, signal.SIGKILL)
        raise
    return child, exited


def _popen(
    argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], preexec_fn: Callable[[], Any] | None
) -> subprocess.Popen[bytes]:
    """The process, started as ``asyncio`` starts it: ``vfork`` + ``exec`` in the loop's thread,
    which returns once the program runs (or raises why it cannot)."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        preexec_fn=preexec_fn,
        bufsize=0,
    )


def _watch(
    loop: asyncio.AbstractEventLoop,
    popen: subprocess.Popen[bytes],
    child: PipedChild,
    exited: asyncio.Future[None],
) -> None:
    """Reap ``popen`` when its pidfd becomes readable; record the exit code and resolve ``exited``.

    The loop's reader handle is the only reference to the callback, so a loop closed (or dropped)
    while the child runs drops it, and its finalizer hands the child over to :func:`_hand_over`:
    else it would stay a zombie (and its pidfd open) until a later ``Popen`` happened to reap it."""
    pidfd = os.pidfd_open(popen.pid)

    def reap() -> None:
        try:
            pid, status = os.waitpid(popen.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = popen.pid, 255 << 8  # reaped elsewhere: as asyncio reports it
        if pid == 0:
            return  # not yet (a spurious wake-up)
        handover.detach()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        returncode = os.waitstatus_to_exitcode(status)
        # Popen must not try to reap it again (its destructor would keep it for a later waitpid).
        popen.returncode = child.returncode = returncode
        if not exited.done():
            exited.set_result(None)

    handover = weakref.finalize(reap, _hand_over, popen, pidfd)
    handover.atexit = False  # at exit nobody is left to care (and no thread may start)
    loop.add_reader(pidfd, reap)


def _hand_over(popen: subprocess.Popen[bytes], pidfd: int) -> None:
    """The child's loop is gone: a thread waits for it (blocked in ``waitpid`` until it exits)."""
    os.close(pidfd)
    threading.Thread(target=popen.wait, name=f"reap-{popen.pid}", daemon=True).start()
