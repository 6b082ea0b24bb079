"""A warm Python interpreter that forks one fresh process per action (docs/performance.md,
"Warm Python runners").

Run by the pack's own interpreter with the flags a cold run would get (``python3 -u
python_zygote.py FD``), standard library only: the pack's interpreter cannot import Attune. It
reads requests from the ``SOCK_SEQPACKET`` socket ``FD``, one message each: a JSON document (script,
arguments, environment, working directory) with the action's stdin, stdout and stderr pipe ends
attached. For each it forks a child that becomes what ``python3 -u script.py args`` would have
been — its own session (so its own process group), the pipes on fds 0–2, the execution's
environment, ``sys.argv``, ``sys.path[0]`` the script's directory, a fresh ``__main__`` — and
runs the script. Replies, one message each: ``S <id> <pid>`` (started), ``E <id> <returncode>``
(exited; negative for a signal, as ``subprocess`` reports it), ``F <id> <error>`` (could not fork).

When the socket closes (the worker stopped or died) it kills its children's process groups and
exits, so no action outlives its worker through the pool.
"""

from __future__ import annotations

import array
import atexit
import builtins
import gc
import importlib.machinery
import io
import json
import os
import select
import signal
import socket
import sys
import threading  # every child's exit joins threads through it: import it once here
import traceback
import types
from typing import Any

_MAX_MESSAGE = 1 << 20


def _exit_code(code: object) -> int:
    """What ``python script.py`` exits with after ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(request: dict[str, object], fds: list[int], control: socket.socket, wakeup: int) -> None:
    """Become the action's process and run its script; never returns."""
    code = 1
    interrupted = False
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh interpreter has it
        control.close()
        os.close(wakeup)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        _fresh_stdio()
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
        cwd = request.get("cwd")
        if isinstance(cwd, str) and cwd:
            os.chdir(cwd)
        script = str(request["script"])
        args = request.get("args")
        sys.argv = [script, *(str(a) for a in args)] if isinstance(args, list) else [script]
        # ``python script.py`` puts the script's directory first on sys.path.
        sys.path[0] = os.path.dirname(os.path.realpath(script))
        try:
            _run_script(script)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:
            exc_type, value, tb = sys.exc_info()
            # As the interpreter prints it: from the script's own frame on, without this
            # module's; a syntax error in the script has none (no "Traceback" header either).
            shown = tb
            while shown is not None and shown.tb_frame.f_code.co_filename != script:
                shown = shown.tb_next
            if exc_type is not None and value is not None:
                value = value.with_traceback(shown)
                sys.excepthook(exc_type, value, shown)
            code = 1
            interrupted = isinstance(value, KeyboardInterrupt)
        threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads, as at exit
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                code = code or 120
        if interrupted:
            # An interpreter ended by Ctrl-C exits through SIGINT, as a shell expects.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # the child must never return into the zygote's loop
        try:
            traceback.print_exc()
        except BaseException:  # nothing left to report to
            code = 1
    os._exit(code)


def _returncode(status: int) -> int:
    """As ``subprocess`` reports it: the exit code, or minus the signal that killed it."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _receive(control: socket.socket) -> tuple[bytes, list[int]]:
    """One request and the descriptors attached to it (``socket.recv_fds`` is 3.9+ only)."""
    size = array.array("i").itemsize
    data, ancillary, _, _ = control.recvmsg(_MAX_MESSAGE, socket.CMSG_LEN(3 * size))
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % size)])
    return data, list(fds)


def _stream(fd: int, old: Any, unbuffered: bool) -> io.TextIOWrapper:
    """A standard stream on ``fd`` built as the interpreter builds it at start-up (its
    buffering, line buffering and tty state are the action's pipe's, not the zygote's)."""
    write = fd != 0
    buffering = 0 if unbuffered and write else -1
    buffer: Any = open(fd, "wb" if write else "rb", buffering, closefd=False)
    raw = getattr(buffer, "raw", buffer)
    stream = io.TextIOWrapper(
        buffer,
        old.encoding,
        old.errors,
        newline="\n",
        line_buffering=not unbuffered and (raw.isatty() or fd == 2),
        write_through=unbuffered,
    )
    stream.mode = "w" if write else "r"  # type: ignore[misc]
    return stream


def _fresh_stdio() -> None:
    unbuffered = bool(getattr(sys.stdout, "write_through", False))
    # Python 3.8 compatible (the pack's interpreter runs this file): no zip(strict=).
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        stream = _stream(fd, getattr(sys, name), unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _run_script(script: str) -> None:
    """Run ``script`` in a fresh ``__main__`` module, as ``python script.py`` does."""
    with open(script, "rb") as handle:
        source = handle.read()
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__dict__["__builtins__"] = builtins
    main.__dict__["__cached__"] = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
    main.__spec__ = None
    sys.modules["__main__"] = main
    exec(compile(source, script, "exec"), main.__dict__)


def _send(control: socket.socket, text: str) -> None:
    try:
        control.send(text.encode())
    except OSError:
        pass  # the worker is gone; the loop sees EOF next


def main() -> int:
    """Serve fork requests until the control socket closes."""
    control = socket.socket(fileno=int(sys.argv[1]))
    read_wakeup, write_wakeup = os.pipe()
    os.set_blocking(write_wakeup, False)
    signal.set_wakeup_fd(write_wakeup)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the worker's to handle
    running: dict[int, str] = {}
    # Children share the zygote's memory copy-on-write; their collections skip its objects.
    gc.freeze()
    _send(control, f"R 0 {os.getpid()}")
    while True:
        try:
            ready, _, _ = select.select([control.fileno(), read_wakeup], [], [])
        except InterruptedError:
            continue
        if read_wakeup in ready:
            os.read(read_wakeup, 4096)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            request_id = running.pop(pid, None)
            if request_id is not None:
                _send(control, f"E {request_id} {_returncode(status)}")
        if control.fileno() not in ready:
            continue
        try:
            data, fds = _receive(control)
        except InterruptedError:
            continue
        except OSError:
            data, fds = b"", []
        if not data:
            break
        try:
            request = json.loads(data)
            request_id = str(request["id"])
        except (ValueError, KeyError, TypeError):
            for fd in fds:
                os.close(fd)
            continue
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            _send(control, f"F {request_id} expected 3 descriptors")
            continue
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered may be written twice by the child
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            _send(control, f"F {request_id} {exc}")
            continue
        if pid == 0:
            _child(request, fds, control, read_wakeup)
        for fd in fds:
            os.close(fd)
        running[pid] = request_id
        _send(control, f"S {request_id} {pid}")
    for pid in running:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
