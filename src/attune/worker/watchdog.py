"""Finding and killing every process an action started, even after its worker died
(docs/operations.md "Guarantees").

Each action process gets ``ATTUNE_PROCESS_COOKIE=<worker boot token>:<execution id>`` in its
environment, and everything it starts inherits it: a ``setsid sleep 633 &`` leaves the action's
process group and session but keeps the cookie. (Jenkins finds the processes of a build the same
way; a cgroup per execution would be tighter, but ``/sys/fs/cgroup`` is read-only for an
unprivileged service and in most containers.) So:

* on timeout or cancel the worker signals the action's process group **and** every process
  carrying that execution's cookie (:func:`holders`);
* at start the worker launches a tiny watchdog process (:func:`command`) whose stdin is a pipe
  from the worker. When the worker exits — cleanly or by ``kill -9`` — the pipe closes and the
  watchdog kills every process carrying the worker's token, then exits. While it waits, the
  watchdog is a ``/bin/sh`` blocked on the pipe (≈ 1 MiB resident, where an idle Python
  interpreter costs ≈ 10 MiB: docs/performance.md "Idle RSS"); once the pipe closes it execs
  this module (``python -I -S watchdog.py TOKEN``, standard library only), which does the killing.
  Without ``/bin/sh`` the Python watchdog waits itself;
* a worker that restarts under its name also kills what its previous process's token left behind
  (in case the watchdog died with it).

What escapes: a process that clears its environment (``env -i``) or changes user. Container
deployments are tighter: the worker is the container's main process, and its cgroup dies with it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

COOKIE_ENV = "ATTUNE_PROCESS_COOKIE"
_POLL_SECONDS = 0.02
_SHELL = "/bin/sh"
# Ignores SIGINT like main() does (an ignored signal stays ignored across exec), reads the pipe
# until it closes, then becomes the Python watchdog, whose read of the closed pipe ends at once.
_WAIT_THEN_EXEC = 'trap "" INT; while read -r _; do :; done; exec "$1" -I -S "$2" "$3"'


def command(token: str) -> list[str]:
    """The argv of the watchdog for worker boot ``token`` (stdin: a pipe that closes when the worker
    is gone): a shell waits and then execs the Python watchdog, or the Python watchdog alone."""
    argv = [sys.executable, "-I", "-S", __file__, token]
    if not os.access(_SHELL, os.X_OK):
        return argv
    return [_SHELL, "-c", _WAIT_THEN_EXEC, "attune-watchdog", argv[0], argv[3], token]


def _environ_cookie(pid: str) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None  # gone, or not ours to read
    key = COOKIE_ENV.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key) :].decode(errors="replace")
    return None


def _state_and_pgrp(pid: str) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the ")" that closes the command name: state, ppid, pgrp, ...
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 3:
        return None
    return fields[0], int(fields[2])


def holders(cookie: str | None, *, pgid: int | None = None, prefix: bool = False) -> list[int]:
    """Live (non-zombie) processes carrying ``cookie`` (or a cookie starting with it when
    ``prefix``), plus the members of process group ``pgid``. Empty where there is no /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    me = os.getpid()
    found: list[int] = []
    for entry in proc.iterdir():
        name = entry.name
        if not name.isdigit() or int(name) == me:
            continue
        info = _state_and_pgrp(name)
        if info is None or info[0] in ("Z", "X"):
            continue
        if pgid is not None and info[1] == pgid:
            found.append(int(name))
            continue
        if cookie is None:
            continue
        value = _environ_cookie(name)
        if value is not None and (value.startswith(cookie) if prefix else value == cookie):
            found.append(int(name))
    return found


def send(pids: list[int], signum: int) -> None:
    """Signal each pid, ignoring those that are gone or not ours."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_all(cookie: str, *, prefix: bool = True, grace: float = 2.0) -> int:
    """SIGTERM every holder of ``cookie``, SIGKILL what is left after ``grace`` s; the count."""
    pids = holders(cookie, prefix=prefix)
    if not pids:
        return 0
    send(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        left = holders(cookie, prefix=prefix)
        if not left:
            return len(pids)
        time.sleep(_POLL_SECONDS * 5)
    send(holders(cookie, prefix=prefix), signal.SIGKILL)
    return len(pids)


def main(argv: list[str]) -> int:
    """``watchdog.py TOKEN``: wait for stdin to close, then kill the processes of ``TOKEN:``."""
    if len(argv) != 2 or not argv[1]:
        print("usage: watchdog.py TOKEN", file=sys.stderr)
        return 2
    token = argv[1]
    # Ctrl-C in a terminal reaches the worker, which then closes the pipe: the watchdog must
    # outlive that signal to clean up after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    kill_all(f"{token}:")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
