"""Run one action process (docs/packs.md).

The process gets its own session (and so its own process group), its stdin receives the
parameter/secret bytes and is closed, and stdout/stderr are read concurrently into bounded buffers
that are mirrored, already redacted, into live log files. A timeout or a cancel request terminates
the whole group and every process carrying the execution's cookie (``setsid`` children included,
see :mod:`attune.worker.watchdog`): SIGTERM, a grace period, then SIGKILL for whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from attune.worker import watchdog
from attune.worker.pipes import STREAM_LIMIT
from attune.worker.redaction import Redactor
from attune.worker.spawn import pidfd_supported, spawn_watched

log = logging.getLogger(__name__)

STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"

# Room reserved at the end of each buffer for the truncation marker.
_MARKER_RESERVE = 128
# Longest piece of a newline-less line handled at once; bounds memory for very long lines.
_CHUNK = 64 * 1024
# A broken stdin pipe is harmless when the action finished successfully this fast.
_QUICK_EXIT_SECONDS = 0.5
# How often a process group is polled for having emptied after SIGTERM/SIGKILL.
_POLL_SECONDS = 0.02


class _ExitNotifyingProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The protocol ``create_subprocess_exec`` uses, plus a future resolved the moment the child
    is reaped. ``Process.wait()`` on Python 3.11 also waits for every pipe to close (which a
    background grandchild holding stdout can delay forever), and polling ``returncode`` would add
    up to a poll interval to every action's run time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=STREAM_LIMIT, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


def _default_signals() -> None:
    """Runs in the child before exec: SIGINT and SIGQUIT back to their defaults."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _ignored(signum: int, frame: object) -> None:
    """SIGINT/SIGQUIT for a worker that was started ignoring them: still ignored, but a caught
    signal is reset to its default across exec, an ignored one is not."""


def _children_need_preexec() -> bool:
    """Whether action processes must reset SIGINT/SIGQUIT themselves before exec.

    A worker started in the background (a shell's ``&``, nohup) ignores SIGINT/SIGQUIT, and an
    ignored signal stays ignored across exec: its actions would not behave as they do from a
    terminal, nor as warm Python runs do. Resetting them in a ``preexec_fn`` makes every spawn a
    full ``fork`` of the worker instead of a ``vfork`` (≈ 12 ms per action on an embedded server,
    a third of its shell-action throughput), so the worker catches them with a no-op handler
    instead, once, which exec resets. Only the main thread may install handlers; elsewhere the
    children reset them.
    """
    ignored = [s for s in (signal.SIGINT, signal.SIGQUIT) if signal.getsignal(s) is signal.SIG_IGN]
    if not ignored:
        return False
    if threading.current_thread() is not threading.main_thread():
        return True
    for signum in ignored:
        signal.signal(signum, _ignored)
    return False


async def _spawn(
    argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]
) -> tuple[asyncio.subprocess.Process, asyncio.Future[None]]:
    """Start ``argv`` in its own session with piped stdin/stdout/stderr; the process and a future
    that resolves when it exits (what ``asyncio.create_subprocess_exec`` does, with that future)."""
    loop = asyncio.get_running_loop()
    protocol = _ExitNotifyingProtocol(loop)
    transport, _ = await loop.subprocess_exec(
        lambda: protocol,
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        preexec_fn=_default_signals if _children_need_preexec() else None,
    )
    return asyncio.subprocess.Process(transport, protocol, loop), protocol.exited


class Child(Protocol):
    """A started action process as supervision needs it: ``asyncio.subprocess.Process``, or a
    process forked by a warm interpreter (:mod:`attune.worker.runners.python_pool`)."""

    @property
    def pid(self) -> int:
        """The process id, which is also its process group id (its own session)."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit code once it exited (negative: killed by that signal)."""
        ...

    @property
    def stdin(self) -> asyncio.StreamWriter | None:
        """The write end of its stdin."""
        ...

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """Its stdout."""
        ...

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        """Its stderr."""
        ...


@dataclass
class Spawned:
    """A started child, a future resolved when it exits, and how to close our pipe ends early.

    ``stdin_written``: how many bytes of the stdin the spawner already put in the pipe (before
    the child could exit); the rest is fed as usual.
    """

    child: Child
    exited: asyncio.Future[None]
    close: Callable[[], None]
    stdin_written: int = 0


#: Starts ``argv`` (own session, piped stdio) with ``cwd``, ``env`` and the ``stdin`` to feed
#: it; raises OSError/ValueError.
Spawner = Callable[[Sequence[str], Path | None, Mapping[str, str], bytes], Awaitable[Spawned]]


async def spawn_process(
    argv: Sequence[str], cwd: Path | None, env: Mapping[str, str], stdin: bytes = b""
) -> Spawned:
    """The default :data:`Spawner`: a new process (``exec`` of ``argv``); stdin is fed later.

    Watched through a pidfd by the event loop where the kernel allows it (no thread per child,
    :mod:`attune.worker.spawn`), else through ``asyncio``'s child watcher."""
    if pidfd_supported():
        preexec = _default_signals if _children_need_preexec() else None
        child, exited = await spawn_watched(argv, cwd=cwd, env=env, preexec_fn=preexec)
        return Spawned(child, exited, child.close)
    proc, exited = await _spawn(argv, cwd=cwd, env=env)
    return Spawned(proc, exited, lambda: _close_transport(proc))


@dataclass
class ProcessSpec:
    """Everything needed to run one action process."""

    argv: list[str]
    cwd: Path | None
    env: dict[str, str]
    stdin: bytes
    timeout: float | None
    max_stdout: int
    max_stderr: int
    log_dir: Path | None
    redact: Sequence[str] = ()
    kill_grace: float = 2.0
    #: ``ATTUNE_PROCESS_COOKIE`` of this run: every descendant inherits it, so a timeout or cancel
    #: finds the ones that left the process group (``setsid``) too.
    cookie: str | None = None


@dataclass
class ProcessOutcome:
    """What happened to the process; ``exit_code`` is -1 when it did not exit on its own."""

    exit_code: int
    stdout: str
    stderr: str
    stdout_truncated: bool
    stdout_bytes_truncated: int
    stderr_truncated: bool
    stderr_bytes_truncated: int
    duration_ms: int
    timed_out: bool
    cancelled: bool
    error: str | None


async def run_process(
    spec: ProcessSpec, cancel: asyncio.Event | None = None, *, spawn: Spawner | None = None
) -> ProcessOutcome:
    """Run ``spec`` to completion, timeout or cancellation and return what was captured.

    ``spawn`` starts the process (default: :func:`spawn_process`); whatever starts it, the run
    is supervised the same way.

    Never raises for process-level problems (spawn failure, broken stdin, killed process): those
    are reported in the outcome. If the calling task itself is cancelled, the process group is
    killed before ``CancelledError`` propagates.
    """
    started = time.monotonic()
    if cancel is not None and cancel.is_set():
        return _empty_outcome(started, cancelled=True)
    if not spec.argv:
        return _empty_outcome(started, error="Failed to start process: empty command")
    stdout_log, stderr_log = _open_logs(spec.log_dir)
    try:
        try:
            env = spec.env if spec.cookie is None else {**spec.env, watchdog.COOKIE_ENV: spec.cookie}
            spawned = await (spawn or spawn_process)(spec.argv, spec.cwd, env, spec.stdin)
        except (OSError, ValueError) as exc:
            return _empty_outcome(started, error=f"Failed to start process: {exc}")
        stdout = _Capture("stdout", spec.max_stdout, stdout_log)
        stderr = _Capture("stderr", spec.max_stderr, stderr_log)
        return await _supervise(spawned, spec, cancel, started, stdout, stderr)
    finally:
        for handle in (stdout_log, stderr_log):
            if handle is not None:
                handle.close()


async def _supervise(
    spawned: Spawned,
    spec: ProcessSpec,
    cancel: asyncio.Event | None,
    started: float,
    stdout: _Capture,
    stderr: _Capture,
) -> ProcessOutcome:
    proc, exit_future = spawned.child, spawned.exited
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    redactor = Redactor(spec.redact)
    io_tasks = [
        asyncio.create_task(_pump(proc.stdout, stdout, redactor)),
        asyncio.create_task(_pump(proc.stderr, stderr, redactor)),
    ]
    feeder = asyncio.create_task(_feed(proc.stdin, spec.stdin[spawned.stdin_written :]))
    exited = asyncio.create_task(_exit_code(proc, exit_future))
    stop = asyncio.create_task(cancel.wait()) if cancel is not None else None
    timed_out = cancelled = False
    try:
        watched = {exited} if stop is None else {exited, stop}
        done, _ = await asyncio.wait(watched, timeout=spec.timeout, return_when=asyncio.FIRST_COMPLETED)
        if exited not in done:
            cancelled = stop is not None and stop in done
            timed_out = not cancelled
            await _kill_group(proc.pid, spec.kill_grace, spec.cookie)
            await exited
        ended = time.monotonic()
        await _drain(spawned.close, [*io_tasks, feeder], spec.kill_grace)
    finally:
        pending = [task for task in (*io_tasks, feeder, exited, stop) if task is not None and not task.done()]
        for task in pending:
            task.cancel()
        if proc.returncode is None:
            # The caller was cancelled mid-run: do not leave the action behind.
            _signal_group(proc.pid, signal.SIGKILL)
            if spec.cookie is not None:
                watchdog.send(watchdog.holders(spec.cookie), signal.SIGKILL)
            spawned.close()
            if not exit_future.done():
                # Reap it here: once this loop is gone the child watcher cannot record its exit,
                # and the process object would report it as still running.
                await asyncio.wait({exit_future}, timeout=spec.kill_grace + 1.0)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    for task in io_tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("reading output of pid %s failed: %s", proc.pid, task.exception())

    returncode = proc.returncode if proc.returncode is not None else -1
    exit_code = -1 if timed_out or cancelled or returncode < 0 else returncode
    error = None
    stdin_error = feeder.result() if feeder.done() and not feeder.cancelled() else None
    if stdin_error is not None and not (timed_out or cancelled):
        quick_success = exit_code == 0 and ended - started < _QUICK_EXIT_SECONDS
        broken_pipe = isinstance(stdin_error, BrokenPipeError | ConnectionResetError)
        if not (broken_pipe and quick_success):
            error = f"Failed to write to stdin: {stdin_error}"
    return ProcessOutcome(
        exit_code=exit_code,
        stdout=stdout.text(),
        stderr=stderr.text(),
        stdout_truncated=stdout.truncated,
        stdout_bytes_truncated=stdout.discarded,
        stderr_truncated=stderr.truncated,
        stderr_bytes_truncated=stderr.discarded,
        duration_ms=int((ended - started) * 1000),
        timed_out=timed_out,
        cancelled=cancelled,
        error=error,
    )


async def _exit_code(proc: Child, exited: asyncio.Future[None]) -> int:
    """Wait for the process itself to exit (not for its pipes to close)."""
    await asyncio.shield(exited)
    assert proc.returncode is not None
    return proc.returncode


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> OSError | None:
    """Write ``data`` and close stdin; return the write error instead of raising it."""
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
        await stdin.wait_closed()
    except OSError as exc:  # BrokenPipeError and ConnectionResetError included
        return exc
    return None


async def _drain(close: Callable[[], None], tasks: Sequence[asyncio.Task[Any]], grace: float) -> None:
    """Let the readers reach EOF after the process has exited.

    Children left running in the background may hold the pipes open. After ``grace`` seconds we
    stop listening to them: closing our ends makes the readers see EOF, and the children get
    SIGPIPE if they write again.
    """
    _, pending = await asyncio.wait(tasks, timeout=grace)
    if pending:
        close()
        await asyncio.wait(pending, timeout=grace)


def _close_transport(proc: asyncio.subprocess.Process) -> None:
    # asyncio offers no public way to close a subprocess's read pipes early; the transport's
    # close() is the documented BaseTransport API, reached through the Process object.
    transport = getattr(proc, "_transport", None)
    if isinstance(transport, asyncio.BaseTransport):
        transport.close()


async def _kill_group(pgid: int, grace: float, cookie: str | None = None) -> None:
    """SIGTERM the group and the cookie's holders, give them ``grace`` seconds, then SIGKILL
    whatever is left."""
    _signal_group(pgid, signal.SIGTERM)
    if cookie is not None:
        watchdog.send(watchdog.holders(cookie), signal.SIGTERM)
    if await _wait_group_gone(pgid, grace, cookie):
        return
    _signal_group(pgid, signal.SIGKILL)
    if cookie is not None:
        watchdog.send(watchdog.holders(cookie, pgid=pgid), signal.SIGKILL)
    if not await _wait_group_gone(pgid, max(grace, 1.0), cookie):
        log.warning("process group %s still has live members after SIGKILL", pgid)


async def _wait_group_gone(pgid: int, seconds: float, cookie: str | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if cookie is None:
            alive = group_alive(pgid)
        else:
            # Reading every process's environment takes a few milliseconds: off the event loop.
            alive = bool(await asyncio.to_thread(watchdog.holders, cookie, pgid=pgid))
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process still belongs to process group ``pgid``.

    Zombies are ignored: they cannot run, and orphans may stay unreaped when PID 1 does not reap.
    """
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process went away while we looked
        # Fields after the ")" that closes the command name: state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _empty_outcome(started: float, *, error: str | None = None, cancelled: bool = False) -> ProcessOutcome:
    return ProcessOutcome(
        exit_code=-1,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stdout_bytes_truncated=0,
        stderr_truncated=False,
        stderr_bytes_truncated=0,
        duration_ms=int((time.monotonic() - started) * 1000),
        timed_out=False,
        cancelled=cancelled,
        error=error,
    )


def _open_logs(log_dir: Path | None) -> tuple[BinaryIO | None, BinaryIO | None]:
    """Create ``log_dir`` and open fresh live log files in it (none if that is impossible)."""
    if log_dir is None:
        return None, None
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        out = (log_dir / STDOUT_LOG).open("wb")
    except OSError as exc:
        log.warning("cannot write live logs to %s: %s", log_dir, exc)
        return None, None
    try:
        err = (log_dir / STDERR_LOG).open("wb")
    except OSError as exc:
        out.close()
        log.warning("cannot write live logs to %s: %s", log_dir, exc)
        return None, None
    return out, err


class _Capture:
    """A bounded output buffer mirrored into a live log file."""

    def __init__(self, name: str, limit: int, sink: BinaryIO | None) -> None:
        self._usable = max(limit - _MARKER_RESERVE, 0)
        self._marker = f"\n\n[OUTPUT TRUNCATED: {name} exceeded size limit]\n".encode()
        self._kept = bytearray()
        self._sink = sink
        self.truncated = False
        self.discarded = 0

    def add(self, data: bytes) -> None:
        if self.truncated:
            self.discarded += len(data)
            return
        room = self._usable - len(self._kept)
        if len(data) <= room:
            self._kept += data
            self._write(data)
            return
        kept = data[:room] + self._marker
        self.discarded += len(data) - room
        self.truncated = True
        self._kept += kept
        self._write(kept)

    def flush(self) -> None:
        if self._sink is None:
            return
        try:
            self._sink.flush()
        except OSError as exc:
            self._drop_sink(exc)

    def text(self) -> str:
        return self._kept.decode("utf-8", errors="replace")

    def _write(self, data: bytes) -> None:
        if self._sink is None:
            return
        try:
            self._sink.write(data)
        except OSError as exc:
            self._drop_sink(exc)

    def _drop_sink(self, exc: OSError) -> None:
        # A full disk must not fail the action: keep capturing in memory only.
        log.warning("live log write failed, continuing without it: %s", exc)
        self._sink = None


async def _pump(stream: asyncio.StreamReader, capture: _Capture, redact: Redactor) -> None:
    """Copy ``stream`` into ``capture`` line by line, redacting each line first."""
    await _read_lines(stream.read, capture.add, capture.flush, redact)


async def _read_lines(
    read: Callable[[int], Awaitable[bytes]],
    emit: Callable[[bytes], None],
    flush: Callable[[], None],
    redact: Redactor,
) -> None:
    pending = b""
    while chunk := await read(_CHUNK):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            emit(redact(line + b"\n"))
        if len(pending) >= _CHUNK:
            # A very long line: pass it on in pieces, holding back enough to catch a split secret.
            pending = redact(pending)
            cut = len(pending) - redact.overlap
            if cut > 0:
                emit(pending[:cut])
                pending = pending[cut:]
        # Everything complete so far is visible to log readers before we wait for more.
        flush()
    if pending:
        emit(redact(pending))
    flush()
