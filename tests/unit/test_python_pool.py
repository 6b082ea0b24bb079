"""Warm Python runs end exactly like cold ones (docs/performance.md, "Warm Python runners").

Every script here runs twice — started cold (``python -u script.py``) and forked from a warm
interpreter — and what the worker captures (exit code, stdout, stderr, truncation, redaction,
timeout, cancel) must be the same. Then what only the pool has: the interpreter's crash, its
replacement after ``max_runs``, and scripts that opt out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from attune.settings import PythonPoolSettings
from attune.worker import process, watchdog
from attune.worker.runners import RunRequest, select
from attune.worker.runners.python_pool import PythonPool, WarmCall, Zygote, close_pools, warm_call
from attune.worker.runners.warm_python import WarmPythonRunner

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def spec(script: Path, *args: str, **changes: Any) -> process.ProcessSpec:
    made = process.ProcessSpec(
        argv=[sys.executable, "-u", str(script), *args],
        cwd=script.parent,
        env={**ENV, "ATTUNE_EXECUTION_ID": "7"},
        stdin=b'{"name": "world"}',
        timeout=10,
        max_stdout=1 << 20,
        max_stderr=1 << 20,
        log_dir=None,
        kill_grace=0.5,
        cookie=f"pyx-test-{os.getpid()}:7",
    )
    return dataclasses.replace(made, **changes)


def write(tmp_path: Path, body: str, name: str = "action.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(autouse=True)
async def no_interpreter_left() -> AsyncIterator[None]:
    yield
    close_pools()


@pytest.fixture
async def pool() -> AsyncIterator[PythonPool]:
    made = PythonPool(size=1, max_runs=100)
    yield made
    made.close()


async def ready(pool: PythonPool, call: WarmCall) -> Zygote:
    """The pool's zygote for ``call``, waited for until it answers."""
    zygote = await pool.ready(call, 15)
    assert zygote is not None, "no warm interpreter became ready"
    return zygote


async def both(pool: PythonPool, made: process.ProcessSpec) -> tuple[process.ProcessOutcome, ...]:
    call = warm_call(made.argv, made.env, made.cookie)
    assert call is not None
    zygote = await ready(pool, call)
    cold = await process.run_process(made)
    warm = await process.run_process(made, spawn=zygote.spawn)
    return cold, warm


def seen(outcome: process.ProcessOutcome) -> dict[str, Any]:
    shown = dataclasses.asdict(outcome)
    shown.pop("duration_ms")
    return shown


SCRIPTS = {
    "output and exit code": """
        import os, sys
        data = sys.stdin.read()
        print("hello", repr(data), __name__, os.path.basename(__file__), sys.argv[1:])
        print("cwd", os.path.basename(os.getcwd()), "env", os.environ["ATTUNE_EXECUTION_ID"])
        print("oops", file=sys.stderr)
        sys.exit(3)
    """,
    "uncaught exception": """
        def fail():
            raise ValueError("bad input")
        print("before")
        fail()
    """,
    "exit with a message": """
        import sys
        sys.exit("giving up")
    """,
    "sibling module import": """
        import helper
        print(helper.VALUE)
    """,
    "atexit and threads": """
        import atexit, threading, time
        atexit.register(lambda: print("atexit ran"))
        def late():
            time.sleep(0.1)
            print("thread finished")
        threading.Thread(target=late).start()
        print("main done")
    """,
    "own session": """
        import os
        print(os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid())
    """,
    "killed by a signal": """
        import os, signal
        print("dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """,
    "standard streams": """
        import sys
        for s in (sys.stdin, sys.stdout, sys.stderr):
            print(s.encoding, s.errors, s.line_buffering, s.write_through, s.mode, s.isatty(),
                  s.seekable(), type(s.buffer).__name__, file=sys.stderr)
        print(sys.stdout is sys.__stdout__, repr(sys.stdin.read()))
        print("interleaved", file=sys.stderr)
        print("buffered until exit without -u")
    """,
    "syntax error": """
        print("never")
        def broken(:
    """,
    # Reads its input first, for the reason given in the test below.
    "interrupted": """
        import os, signal, sys
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGINT)
    """,
    "invalid utf-8 and no newline": """
        import sys
        sys.stdout.buffer.write(b"caf\\xe9 end")
    """,
}


@pytest.mark.parametrize("flags", [["-u"], []], ids=["-u", "buffered"])
@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_a_warm_run_ends_exactly_like_a_cold_one(
    pool: PythonPool, tmp_path: Path, name: str, flags: list[str]
) -> None:
    (tmp_path / "helper.py").write_text("VALUE = 'from the helper'\n")
    script = write(tmp_path, SCRIPTS[name])
    argv = [sys.executable, *flags, str(script), "a1", "two words"]
    # Input only for scripts that read it: a cold run that dies before the worker wrote its stdin
    # reports "Failed to write to stdin" (by design), a warm one never does (its stdin is in the
    # pipe before the fork), and which comes first is a race under load.
    stdin = b"line one\r\nline two" if "stdin" in SCRIPTS[name] else b""
    cold, warm = await both(pool, spec(script, argv=argv, stdin=stdin))
    assert seen(warm) == seen(cold)
    assert cold.stdout or cold.stderr


async def test_an_interrupt_ends_the_run_alike_when_the_worker_ignores_sigint(
    pool: PythonPool, tmp_path: Path
) -> None:
    """A worker started in the background (``&``, nohup) ignores SIGINT; its cold actions used to
    inherit that and run on through a Ctrl-C that ends a warm (or a terminal's) run."""
    script = write(tmp_path, SCRIPTS["interrupted"])
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cold, warm = await both(pool, spec(script))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen(warm) == seen(cold)
    assert cold.exit_code != 0 and "KeyboardInterrupt" in cold.stderr


async def test_output_limits_and_redaction_apply_alike(pool: PythonPool, tmp_path: Path) -> None:
    script = write(tmp_path, 'print("token s3cr3t-value " + "x" * 5000)\n')
    cold, warm = await both(pool, spec(script, max_stdout=1000, redact=["s3cr3t-value"]))
    assert seen(warm) == seen(cold)
    assert warm.stdout_truncated and "s3cr3t" not in warm.stdout and "***" in warm.stdout


async def test_a_module_changed_by_one_run_is_fresh_in_the_next(pool: PythonPool, tmp_path: Path) -> None:
    script = write(
        tmp_path, 'import json\nprint(getattr(json, "marker", None))\njson.marker = 1\nCOUNT = 1\n'
    )
    made = spec(script)
    call = warm_call(made.argv, made.env, made.cookie)
    assert call is not None
    zygote = await ready(pool, call)
    outputs = [(await process.run_process(made, spawn=zygote.spawn)).stdout for _ in range(3)]
    assert outputs == ["None\n"] * 3


def cookie_holders(cookie: str) -> list[int]:
    return watchdog.holders(cookie)


LEFTOVER = """
    import subprocess, sys, time
    subprocess.Popen(["setsid", "sleep", "600"])
    print("started", flush=True)
    time.sleep(600)
"""


async def test_timeout_kills_the_action_and_its_leftover_child(pool: PythonPool, tmp_path: Path) -> None:
    made = spec(write(tmp_path, LEFTOVER), timeout=1.5)
    call = warm_call(made.argv, made.env, made.cookie)
    assert call is not None
    zygote = await ready(pool, call)
    outcome = await process.run_process(made, spawn=zygote.spawn)
    assert outcome.timed_out and outcome.exit_code == -1 and outcome.stdout == "started\n"
    assert made.cookie is not None and cookie_holders(made.cookie) == []


async def test_cancel_kills_the_action_and_its_leftover_child(pool: PythonPool, tmp_path: Path) -> None:
    made = spec(write(tmp_path, LEFTOVER), timeout=60)
    call = warm_call(made.argv, made.env, made.cookie)
    assert call is not None
    zygote = await ready(pool, call)
    cancel = asyncio.Event()
    run = asyncio.create_task(process.run_process(made, cancel, spawn=zygote.spawn))
    await until(lambda: made.cookie is not None and len(cookie_holders(made.cookie)) >= 1)
    await asyncio.sleep(0.3)
    cancel.set()
    outcome = await run
    assert outcome.cancelled and outcome.exit_code == -1
    assert made.cookie is not None and cookie_holders(made.cookie) == []


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_crash_of_the_interpreter_mid_run_fails_the_run_and_the_pool_recovers(
    pool: PythonPool, tmp_path: Path
) -> None:
    script = write(tmp_path, "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n")
    made = spec(script, timeout=60)
    call = warm_call(made.argv, made.env, made.cookie)
    assert call is not None
    zygote = await ready(pool, call)
    assert zygote.popen is not None
    run = asyncio.create_task(process.run_process(made, spawn=zygote.spawn))
    await until(lambda: bool(zygote.pending) and next(iter(zygote.pending.values())).pid is not None)
    action_pid = next(iter(zygote.pending.values())).pid
    assert action_pid is not None
    os.kill(zygote.popen.pid, signal.SIGKILL)
    outcome = await asyncio.wait_for(run, 15)
    # As a cold action's process killed by a signal ends: exit code -1, not timed out or cancelled.
    assert outcome.exit_code == -1 and not outcome.timed_out and not outcome.cancelled
    await until(lambda: not process.group_alive(action_pid))
    # The next run gets a fresh interpreter.
    replacement = await ready(pool, call)
    assert replacement is not zygote and replacement.popen is not None
    # Another script of the same interpreter shares it.
    other = spec(write(tmp_path, 'import sys\nprint("ok", sys.argv[1:])\n', "ok.py"), "x")
    again = await process.run_process(other, spawn=replacement.spawn)
    assert (again.exit_code, again.stdout) == (0, "ok ['x']\n")


async def test_an_interpreter_is_replaced_after_max_runs(tmp_path: Path) -> None:
    pool = PythonPool(size=1, max_runs=2)
    try:
        made = spec(write(tmp_path, "import os\nprint(os.getppid())\n"))
        call = warm_call(made.argv, made.env, made.cookie)
        assert call is not None
        parents = []
        for _ in range(4):
            zygote = await ready(pool, call)
            outcome = await process.run_process(made, spawn=zygote.spawn)
            parents.append(int(outcome.stdout))
        assert parents[0] == parents[1] != parents[2] == parents[3]
    finally:
        pool.close()


async def test_the_runner_runs_python_warm_once_an_interpreter_is_ready(tmp_path: Path) -> None:
    made = spec(write(tmp_path, "import os\nprint(os.getppid())\n"))
    runner = WarmPythonRunner(size=1, max_runs=100)
    request = RunRequest(7, "pack.act", "text", 10, spec=made)
    parents = []
    for _ in range(30):
        ran = await runner.run(request)
        assert ran.status == "completed"
        parents.append(int(ran.result["stdout"]))
        if parents[-1] != os.getpid():
            break
        await asyncio.sleep(0.1)
    # The first run is cold (a child of the worker), a later one is forked from the interpreter.
    assert parents[0] == os.getpid() and parents[-1] != os.getpid()


def test_only_plain_python_scripts_run_warm(tmp_path: Path) -> None:
    script = write(tmp_path, "print(1)\n")
    opted_out = write(tmp_path, "# attune: warm=false\nprint(1)\n", "cold.py")
    assert warm_call(["/usr/bin/python3", "-u", str(script), "x"], ENV, None) is not None
    assert warm_call(["python3.11", str(script)], ENV, None) is not None
    assert warm_call(["python3", "-u", str(opted_out)], ENV, None) is None
    assert warm_call(["python3", "-X", "dev", str(script)], ENV, None) is None
    assert warm_call(["python3", "-c", "print(1)"], ENV, None) is None
    assert warm_call(["/bin/sh", str(script)], ENV, None) is None
    assert warm_call(["python3", str(tmp_path / "missing.py")], ENV, None) is None
    # The start-up environment is part of the key; an execution's own variables are not.
    one = warm_call(["python3", str(script)], {**ENV, "ATTUNE_EXECUTION_ID": "1"}, "w:1")
    two = warm_call(["python3", str(script)], {**ENV, "ATTUNE_EXECUTION_ID": "2"}, "w:2")
    other = warm_call(["python3", str(script)], {**ENV, "PYTHONPATH": "/x"}, "w:3")
    assert one is not None and two is not None and other is not None
    assert one.key == two.key != other.key


def test_the_worker_picks_the_warm_runner_unless_the_pool_is_off() -> None:
    request = RunRequest(1, "pack.act", "text", 10)
    assert isinstance(select(request, python_pool=PythonPoolSettings()), WarmPythonRunner)
    assert not isinstance(select(request, python_pool=PythonPoolSettings(enabled=False)), WarmPythonRunner)


async def test_an_interpreter_that_cannot_serve_warm_runs_cold_and_is_not_retried_each_run(
    tmp_path: Path,
) -> None:
    attempts = tmp_path / "attempts"
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *python_zygote.py*) echo x >> {attempts}; exit 1;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    script = write(tmp_path, "import os\nprint(os.getppid())\n")
    made = spec(script, argv=[str(fake), "-u", str(script)])
    runner = WarmPythonRunner(size=1, max_runs=100)
    for _ in range(5):
        ran = await runner.run(RunRequest(7, "pack.act", "text", 10, spec=made))
        assert ran.status == "completed" and int(ran.result["stdout"]) == os.getpid()
        await asyncio.sleep(0.2)
    assert attempts.read_text() == "x\n"


async def test_concurrent_runs_from_one_interpreter_keep_their_own_pipes(
    pool: PythonPool, tmp_path: Path
) -> None:
    script = write(tmp_path, "import sys, time\ntime.sleep(0.2)\nprint(sys.argv[1], sys.stdin.read())\n")
    made = [spec(script, str(n), stdin=f"in-{n}".encode()) for n in range(8)]
    call = warm_call(made[0].argv, made[0].env, made[0].cookie)
    assert call is not None
    zygote = await ready(pool, call)
    outcomes = await asyncio.gather(*(process.run_process(m, spawn=zygote.spawn) for m in made))
    assert [o.stdout for o in outcomes] == [f"{n} in-{n}\n" for n in range(8)]
    assert all(o.exit_code == 0 for o in outcomes)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_pool_closed_after_its_loop_ended_stops_its_interpreters_quietly(tmp_path: Path) -> None:
    """Closing a pool outside a running loop left its interpreter unreaped; collecting its Popen
    later warned "subprocess … is still running" in whatever test ran then."""
    made = spec(write(tmp_path, "print('x')\n"))
    call = warm_call(made.argv, made.env, made.cookie)
    assert call is not None
    pool = PythonPool(size=1, max_runs=10)

    async def start() -> int:
        zygote = await ready(pool, call)
        assert zygote.popen is not None
        return zygote.popen.pid

    loop = asyncio.new_event_loop()
    pid = loop.run_until_complete(start())
    loop.close()
    pool.close()  # drops the zygote: only a reaper may still hold its Popen
    gc.collect()  # a ResourceWarning here fails the test (filterwarnings = error)
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)
