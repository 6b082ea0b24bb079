"""Warm Python interpreters (docs/performance.md, "Warm Python runners").

A Python action normally starts its interpreter (``python3 -u script.py``): 20–60 ms before the
first line of the script runs. Here one interpreter per (interpreter, flags, start-up environment)
is started once — the *zygote* (:mod:`attune.worker.runners.python_zygote`) — and each run is a
``fork`` of it that becomes the action's process: its own session and process group, the
execution's pipes, environment, working directory, ``sys.argv`` and a fresh ``__main__``. Output
capture, redaction, timeout, cancel, the process cookie and the result are then exactly the
process runner's (:func:`attune.worker.process.run_process` supervises it), since the action
still is a process of its own; only the interpreter's start-up is skipped.

Nothing an action does can leak into the next one (each is a new process); a zygote is still
replaced after ``max_runs`` forks, and when it dies a new one is started. A run never waits for
a zygote: until one is ready, the action starts cold as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune.worker import process, watchdog
from attune.worker.pipes import PipedChild, pipe_reader, pipe_writer

log = logging.getLogger(__name__)

ZYGOTE_SCRIPT = Path(__file__).with_name("python_zygote.py")
#: A line in the first bytes of an action's script that keeps it out of the pool.
OPT_OUT_MARKER = "attune: warm=false"
_MARKER_WINDOW = 4096
_INTERPRETER = re.compile(r"python(\d+(\.\d+)*)?$")
# Interpreter flags a zygote reproduces; anything else (``-X``, ``-W``, ``-m``, ``-c``) runs cold.
_FLAGS = frozenset({"-u", "-B", "-s", "-E", "-O", "-OO", "-b", "-bb", "-q", "-S"})
# Environment read while the interpreter starts (sys.path, encodings, site): part of the key.
_STARTUP_ENV = re.compile(r"(PYTHON.*|LANG|LC_.*|HOME|PATH|TZ)$")
_MAX_REQUEST = 128 * 1024
_START_TIMEOUT = 10.0
_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class WarmCall:
    """How ``argv`` runs warm: the zygote to use (``key``, its command and environment) and what
    its child runs."""

    key: tuple[str, ...]
    launch: tuple[str, ...]
    launch_env: tuple[tuple[str, str], ...]
    script: str
    args: tuple[str, ...]


def warm_call(argv: Sequence[str], env: Mapping[str, str], cookie: str | None) -> WarmCall | None:
    """The warm form of ``argv`` (``python [flags] script.py [args]``), or None when it must run
    cold: another program or flag, a missing script, or a script that opts out."""
    if len(argv) < 2 or not _INTERPRETER.match(Path(argv[0]).name):
        return None
    index = 1
    while index < len(argv) and argv[index].startswith("-"):
        if argv[index] not in _FLAGS:
            return None
        index += 1
    if index >= len(argv):
        return None
    script = argv[index]
    try:
        with open(script, "rb") as handle:
            head = handle.read(_MARKER_WINDOW)
    except OSError:
        return None
    if OPT_OUT_MARKER.encode() in head:
        return None
    flags = tuple(argv[1:index])
    startup = {name: value for name, value in env.items() if _STARTUP_ENV.match(name)}
    # The zygote's own cookie: a worker's watchdog (prefix ``<token>:``) kills it and, through
    # the environment its children inherit, any action it forked.
    prefix = cookie.rpartition(":")[0] if cookie and ":" in cookie else "local"
    startup[watchdog.COOKIE_ENV] = f"{prefix}:python-pool"
    launch_env = tuple(sorted(startup.items()))
    key = (argv[0], *flags, "\0", *(f"{k}={v}" for k, v in launch_env))
    return WarmCall(
        key=key,
        launch=(argv[0], *flags, str(ZYGOTE_SCRIPT)),
        launch_env=launch_env,
        script=script,
        args=tuple(argv[index + 1 :]),
    )


class ZygoteGone(OSError):
    """The zygote cannot start this run (it exited, or refused); the run starts cold instead."""


@dataclass
class _Pending:
    started: asyncio.Future[int]
    exited: asyncio.Future[None]
    pid: int | None = None
    returncode: int | None = None
    child: PipedChild | None = None

    def exit(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
        if self.child is not None and self.child.returncode is None:
            self.child.returncode = self.returncode
        if not self.exited.done():
            self.exited.set_result(None)


@dataclass
class Zygote:
    """One warm interpreter and the runs it forked."""

    call: WarmCall
    max_runs: int
    popen: subprocess.Popen[bytes] | None = None
    sock: socket.socket | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dead: bool = False
    forks: int = 0
    pending: dict[str, _Pending] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    _next_id: int = 0

    @property
    def usable(self) -> bool:
        return self.ready.is_set() and not self.dead and self.forks < self.max_runs

    async def start(self) -> None:
        """Start the interpreter; :attr:`ready` is set once it answers."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [*self.call.launch, str(theirs.fileno())]
            self.popen = await asyncio.to_thread(
                subprocess.Popen,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=dict(self.call.launch_env),
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            self.dead = True
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.reader = asyncio.create_task(self._read(), name=f"python-zygote-{self.popen.pid}")

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self.sock
        assert sock is not None
        try:
            while True:
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    break
                self._handle(data.decode(errors="replace"))
        except (OSError, ValueError, asyncio.CancelledError):
            pass
        finally:
            self._lost()

    def _handle(self, message: str) -> None:
        kind, _, rest = message.partition(" ")
        request_id, _, value = rest.partition(" ")
        if kind == "R":
            self.ready.set()
            return
        entry = self.pending.get(request_id)
        if entry is None:
            return
        if kind == "S" and not entry.started.done():
            entry.pid = int(value)
            entry.started.set_result(entry.pid)
        elif kind == "F" and not entry.started.done():
            entry.started.set_exception(ZygoteGone(value))
            self.pending.pop(request_id, None)
        elif kind == "E":
            self.pending.pop(request_id, None)
            entry.exit(int(value))
            if self.forks >= self.max_runs and not self.pending:
                self.close()

    def _lost(self) -> None:
        """The zygote exited (or we closed it): its runs end as if their process was killed."""
        self.dead = True
        for entry in self.pending.values():
            if not entry.started.done():
                entry.started.set_exception(ZygoteGone("the warm interpreter exited"))
            if entry.pid is not None:
                # A crashed interpreter's orphan would run on unsupervised: kill it, as a crash
                # of a cold action's process ends it.
                with contextlib.suppress(OSError):
                    os.killpg(entry.pid, signal.SIGKILL)
            entry.exit(-signal.SIGKILL)
        self.pending.clear()
        self.close()

    def close(self) -> None:
        """Close the control socket (the zygote exits, killing what it still runs) and reap it."""
        self.dead = True
        if self.reader is not None and not self.reader.done():
            # From outside the reader (its loop may be closed already: then nothing is pending).
            with contextlib.suppress(RuntimeError):
                if self.reader is not asyncio.current_task():
                    self.reader.cancel()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.popen is not None and self.popen.poll() is None:
            popen = self.popen
            try:
                asyncio.get_running_loop().run_in_executor(None, _reap, popen)
            except RuntimeError:
                # No running loop (a pool closed after its loop ended): reap in a thread,
                # which keeps the Popen until the interpreter has exited.
                reaper = threading.Thread(target=_reap, args=(popen,), name="zygote-reaper", daemon=True)
                reaper.start()

    async def spawn(
        self, argv: Sequence[str], cwd: Path | None, env: Mapping[str, str], stdin: bytes = b""
    ) -> process.Spawned:
        """Fork the action's process (a :data:`attune.worker.process.Spawner`).

        What of ``stdin`` fits is put in the pipe before the fork, so a child that exits at once
        finds it there as a slower cold process would, instead of a write to a closed pipe."""
        if self.dead or self.sock is None:
            raise ZygoteGone("the warm interpreter exited")
        loop = asyncio.get_running_loop()
        self._next_id += 1
        request_id = str(self._next_id)
        # Runs of one key share the interpreter and flags; the script and its arguments follow.
        at = len(self.call.launch) - 1
        payload = json.dumps(
            {
                "id": request_id,
                "script": argv[at],
                "args": list(argv[at + 1 :]),
                "env": dict(env),
                "cwd": str(cwd) if cwd is not None else None,
            }
        ).encode()
        if len(payload) > _MAX_REQUEST:
            raise ZygoteGone("request too large for the warm interpreter")
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        ours = [w_in, r_out, r_err]
        written = _prefill(w_in, stdin)
        transports: list[asyncio.BaseTransport] = []
        entry = _Pending(loop.create_future(), loop.create_future())
        try:
            try:
                stdout, t_out = await pipe_reader(loop, os.fdopen(r_out, "rb", buffering=0))
                ours.remove(r_out)
                transports.append(t_out)
                stderr, t_err = await pipe_reader(loop, os.fdopen(r_err, "rb", buffering=0))
                ours.remove(r_err)
                transports.append(t_err)
                feeder, t_in = await pipe_writer(loop, os.fdopen(w_in, "wb", buffering=0))
                ours.remove(w_in)
                transports.append(t_in)
                self.pending[request_id] = entry
                self.forks += 1
                socket.send_fds(self.sock, [payload], [r_in, w_out, w_err])
            finally:
                for fd in (r_in, w_out, w_err, *ours):
                    os.close(fd)
            pid = await asyncio.wait_for(asyncio.shield(entry.started), _START_TIMEOUT)
        except BaseException as exc:
            self.pending.pop(request_id, None)
            for transport in transports:
                transport.close()
            if isinstance(exc, OSError | TimeoutError):
                raise ZygoteGone(f"the warm interpreter did not start the run: {exc}") from exc
            raise
        child = PipedChild(pid, feeder, stdout, stderr, transports, entry.returncode)
        entry.child = child
        return process.Spawned(child, entry.exited, child.close, written)


def _prefill(fd: int, data: bytes) -> int:
    """Write what of ``data`` the empty pipe ``fd`` takes without blocking; the count."""
    if not data:
        return 0
    os.set_blocking(fd, False)
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _reap(popen: subprocess.Popen[bytes]) -> None:
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


class PythonPool:
    """The zygotes of one event loop, ``size`` per key, each replaced after ``max_runs`` forks."""

    def __init__(self, *, size: int = 1, max_runs: int = 100, max_keys: int = 16) -> None:
        self.size = max(1, size)
        self.max_runs = max(1, max_runs)
        self.max_keys = max(1, max_keys)
        self._zygotes: dict[tuple[str, ...], list[Zygote]] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self._retry_at: dict[tuple[str, ...], float] = {}

    def zygotes(self, key: tuple[str, ...]) -> list[Zygote]:
        """The live zygotes of ``key`` (for tests and diagnostics)."""
        return [z for z in self._zygotes.get(key, []) if not z.dead]

    def pick(self, call: WarmCall) -> Zygote | None:
        """A ready zygote for ``call`` (the least busy), starting what is missing in the
        background; None when none is ready yet (the run then starts cold)."""
        now = asyncio.get_running_loop().time()
        known = self._zygotes.get(call.key, [])
        if any(z.dead and not z.ready.is_set() for z in known):
            # An interpreter that cannot serve (too old, broken) is not retried at every run.
            self._retry_at[call.key] = now + _RETRY_SECONDS
        zygotes = [z for z in known if not z.dead]
        if call.key not in self._zygotes and len(self._zygotes) >= self.max_keys:
            self._evict()
        self._zygotes[call.key] = zygotes
        live = [z for z in zygotes if z.forks < self.max_runs]
        missing = self.size - len(live) if now >= self._retry_at.get(call.key, 0.0) else 0
        for _ in range(missing):
            zygote = Zygote(call, self.max_runs)
            zygotes.append(zygote)
            task = asyncio.create_task(self._start(zygote))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
        usable = [z for z in live if z.usable]
        return min(usable, key=lambda z: len(z.pending)) if usable else None

    async def ready(self, call: WarmCall, within: float) -> Zygote | None:
        """A ready zygote for ``call``, waiting up to ``within`` seconds for one to start."""
        zygote = self.pick(call)
        if zygote is not None:
            return zygote
        waits = [asyncio.ensure_future(z.ready.wait()) for z in self.zygotes(call.key)]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
            for wait in pending:
                wait.cancel()
        return self.pick(call)

    async def _start(self, zygote: Zygote) -> None:
        try:
            await zygote.start()
            await asyncio.wait_for(zygote.ready.wait(), _START_TIMEOUT)
        except Exception as exc:
            log.warning("cannot start a warm Python interpreter %s: %r", zygote.call.launch[0], exc)
            zygote.close()

    def _evict(self) -> None:
        """Drop the key whose zygotes run nothing (the oldest such), so keys stay bounded."""
        for key, zygotes in list(self._zygotes.items()):
            if all(not z.pending for z in zygotes):
                for zygote in zygotes:
                    zygote.close()
                del self._zygotes[key]
                return

    def close(self) -> None:
        """Stop every zygote (their running actions are killed)."""
        for zygotes in self._zygotes.values():
            for zygote in zygotes:
                zygote.close()
        self._zygotes.clear()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PythonPool] = weakref.WeakKeyDictionary()


def pool_for(loop: asyncio.AbstractEventLoop, **options: Any) -> PythonPool:
    """The pool of ``loop`` (one per worker event loop), created on first use."""
    for other, pool in list(_POOLS.items()):
        if other.is_closed():
            pool.close()
            _POOLS.pop(other, None)
    existing = _POOLS.get(loop)
    if existing is None:
        created = _POOLS[loop] = PythonPool(**options)
        return created
    existing.size = max(1, int(options.get("size", existing.size)))
    existing.max_runs = max(1, int(options.get("max_runs", existing.max_runs)))
    return existing


def close_pools() -> None:
    """Stop every pool's zygotes (tests, shutdown)."""
    for pool in list(_POOLS.values()):
        pool.close()
    _POOLS.clear()
