"""Running one action process: capture, limits, live logs, redaction, timeout and cancel.

Every test runs twice: the process watched through a pidfd (attune.worker.spawn) and through
asyncio's child watcher (the fallback where pidfds are unavailable)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attune.worker import process
from attune.worker.process import ProcessSpec, run_process

MARKER = "\n\n[OUTPUT TRUNCATED: {} exceeded size limit]\n"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def sh(script: str, **changes: Any) -> ProcessSpec:
    spec = ProcessSpec(
        argv=["/bin/sh", "-c", script],
        cwd=None,
        env=dict(ENV),
        stdin=b"",
        timeout=10,
        max_stdout=1 << 20,
        max_stderr=1 << 20,
        log_dir=None,
        kill_grace=0.5,
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def live_members(pgid: int) -> list[int]:
    """Pids of running (non-zombie) processes in group ``pgid``, read straight from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rfind(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


async def until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.fixture(autouse=True, params=["pidfd", "asyncio"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way the process is started and watched."""
    if request.param == "asyncio":
        monkeypatch.setattr(process, "pidfd_supported", lambda: False)
    return str(request.param)


@pytest.fixture
def reap_groups() -> Any:
    """Groups a test started; anything left is killed so a failing test leaves no strays."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


async def test_captures_stdout_stderr_and_exit_code() -> None:
    result = await run_process(sh("echo out; echo err >&2; exit 3"))
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not (result.timed_out or result.cancelled or result.stdout_truncated)
    assert result.error is None


async def test_runs_with_the_given_stdin_env_and_cwd(tmp_path: Path) -> None:
    spec = sh(
        'cat; echo "$GREETING"; pwd', stdin=b"from stdin\n", env={**ENV, "GREETING": "hi"}, cwd=tmp_path
    )
    result = await run_process(spec)
    assert result.stdout == f"from stdin\nhi\n{tmp_path}\n"


async def test_process_killed_by_a_signal_has_exit_code_minus_one() -> None:
    result = await run_process(sh("kill -9 $$"))
    assert result.exit_code == -1
    assert not result.timed_out


async def test_invalid_utf8_is_decoded_lossily() -> None:
    result = await run_process(sh(r"printf 'a\377b'"))
    assert result.stdout == "a\ufffdb"


async def test_stdout_over_the_limit_is_cut_marked_and_counted(tmp_path: Path) -> None:
    # usable = 138 - 128 = 10 bytes: "aaaaa\n" fits, "bbbb" of the next line fits, the rest is counted.
    spec = sh("printf 'aaaaa\\nbbbbbbbb\\ncc\\n'", max_stdout=138, log_dir=tmp_path)
    result = await run_process(spec)
    assert result.stdout == "aaaaa\nbbbb" + MARKER.format("stdout")
    assert result.stdout_truncated and result.stdout_bytes_truncated == 8
    assert not result.stderr_truncated and result.stderr_bytes_truncated == 0
    assert read(tmp_path / "stdout.log") == result.stdout


async def test_stderr_has_its_own_limit_and_marker() -> None:
    result = await run_process(sh("printf '0123456789abcdef' >&2; echo fine", max_stderr=138))
    assert result.stderr == "0123456789" + MARKER.format("stderr")
    assert result.stderr_truncated and result.stderr_bytes_truncated == 6
    assert result.stdout == "fine\n" and not result.stdout_truncated


async def test_very_long_line_without_newline_is_captured_whole() -> None:
    result = await run_process(sh("head -c 300000 /dev/zero | tr '\\0' x"))
    assert result.stdout == "x" * 300000


async def test_secrets_are_redacted_in_outputs_and_logs(tmp_path: Path) -> None:
    spec = sh(
        'echo "token=s3cr3t!"; echo "bad s3cr3t! and 42" >&2', redact=["s3cr3t!", "42"], log_dir=tmp_path
    )
    result = await run_process(spec)
    assert result.stdout == "token=********\n"
    # Values shorter than four characters are never masked (docs/packs.md).
    assert result.stderr == "bad ******** and 42\n"
    assert read(tmp_path / "stdout.log") == result.stdout
    assert read(tmp_path / "stderr.log") == result.stderr


async def test_secret_split_by_a_long_line_cut_is_still_redacted() -> None:
    # 64 KiB without a newline forces a cut; the secret's first half arrives before it, the rest later.
    script = "f=$(head -c 65531 /dev/zero | tr '\\0' y); printf '%sTOPSE' \"$f\"; sleep 0.2; printf 'CRET\\n'"
    result = await run_process(sh(script, redact=["TOPSECRET"]))
    assert result.stdout == "y" * 65531 + "********\n"


async def test_live_logs_are_readable_while_the_action_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    logs = tmp_path / "logs" / "execution_1"
    script = f"echo first; echo oops >&2; while [ ! -e {go} ]; do sleep 0.05; done; echo second"
    task = asyncio.create_task(run_process(sh(script, log_dir=logs)))
    await until(lambda: read(logs / "stdout.log") == "first\n" and read(logs / "stderr.log") == "oops\n")
    assert not task.done()
    go.touch()
    result = await task
    assert result.exit_code == 0
    assert read(logs / "stdout.log") == "first\nsecond\n"


async def test_timeout_kills_the_whole_group_and_keeps_output(reap_groups: list[int]) -> None:
    script = "echo $$; echo started; sleep 30 & sleep 30 & echo busy >&2; wait"
    started = time.monotonic()
    result = await run_process(sh(script, timeout=0.5))
    assert time.monotonic() - started < 3
    pgid = int(result.stdout.split()[0])
    reap_groups.append(pgid)
    assert result.timed_out and not result.cancelled
    assert result.exit_code == -1
    assert result.stdout.endswith("started\n") and result.stderr == "busy\n"
    assert live_members(pgid) == []


async def test_group_ignoring_sigterm_is_killed_after_the_grace(reap_groups: list[int]) -> None:
    script = "trap '' TERM; echo $$; sleep 30 & wait; wait"
    started = time.monotonic()
    result = await run_process(sh(script, timeout=0.5, kill_grace=0.3))
    pgid = int(result.stdout.split()[0])
    reap_groups.append(pgid)
    assert result.timed_out
    assert 0.7 < time.monotonic() - started < 4
    assert live_members(pgid) == []


async def test_cancel_event_kills_the_group(reap_groups: list[int], tmp_path: Path) -> None:
    cancel = asyncio.Event()
    script = "echo $$; sleep 30 & echo waiting; wait"
    task = asyncio.create_task(run_process(sh(script, log_dir=tmp_path), cancel))
    await until(lambda: "waiting" in read(tmp_path / "stdout.log"))
    pgid = int(read(tmp_path / "stdout.log").split()[0])
    reap_groups.append(pgid)
    cancel.set()
    result = await asyncio.wait_for(task, 5)
    assert result.cancelled and not result.timed_out
    assert result.exit_code == -1
    assert result.stdout.endswith("waiting\n")
    assert live_members(pgid) == []


async def test_cancel_before_start_runs_nothing(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    cancel.set()
    marker = tmp_path / "ran"
    result = await run_process(sh(f"touch {marker}"), cancel)
    assert result.cancelled and result.exit_code == -1
    assert not marker.exists()


async def test_cancelling_the_caller_kills_the_group(reap_groups: list[int], tmp_path: Path) -> None:
    task = asyncio.create_task(run_process(sh("echo $$; sleep 30 & wait", log_dir=tmp_path)))
    await until(lambda: read(tmp_path / "stdout.log").strip() != "")
    pgid = int(read(tmp_path / "stdout.log").split()[0])
    reap_groups.append(pgid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The shell itself is reaped before the cancellation returns (no zombie left to a later GC).
    assert not os.path.exists(f"/proc/{pgid}")  # noqa: ASYNC240 - one stat, no I/O to wait for
    await until(lambda: live_members(pgid) == [])


async def test_background_child_holding_the_pipes_does_not_block(reap_groups: list[int]) -> None:
    started = time.monotonic()
    result = await run_process(sh("echo $$; sleep 30 & echo done", kill_grace=0.3))
    reap_groups.append(int(result.stdout.split()[0]))
    assert result.exit_code == 0 and result.stdout.endswith("done\n")
    assert time.monotonic() - started < 3


async def test_missing_binary_is_a_spawn_failure() -> None:
    result = await run_process(sh("", argv=["/nonexistent/attune-action"]))
    assert result.exit_code == -1
    assert result.error is not None and result.error.startswith("Failed to start process: ")


async def test_non_executable_file_is_a_spawn_failure(tmp_path: Path) -> None:
    script = tmp_path / "action.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = await run_process(sh("", argv=[str(script)]))
    assert result.exit_code == -1
    assert result.error is not None and "Permission denied" in result.error


async def test_broken_stdin_after_a_quick_success_is_ignored() -> None:
    result = await run_process(sh("exit 0", stdin=b"x" * 1_000_000))
    assert result.exit_code == 0 and result.error is None


async def test_broken_stdin_fails_a_slow_action() -> None:
    result = await run_process(sh("exec 0<&-; sleep 0.6", stdin=b"x" * 1_000_000))
    assert result.exit_code == 0
    assert result.error is not None and result.error.startswith("Failed to write to stdin")


async def test_broken_stdin_is_reported_for_a_failing_action() -> None:
    result = await run_process(sh("exit 2", stdin=b"x" * 1_000_000))
    assert result.exit_code == 2
    assert result.error is not None and "stdin" in result.error


def sig_mask(status: str, field: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1], 16)


async def test_a_worker_ignoring_sigint_and_sigquit_starts_actions_with_the_defaults() -> None:
    """A worker started in the background ignores SIGINT/SIGQUIT; its actions must not inherit
    that, and the worker must go on ignoring them (it used to reset them in a ``preexec_fn``,
    which turns every spawn into a full fork of the worker)."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        result = await run_process(sh("cat /proc/self/status"))
        os.kill(os.getpid(), signal.SIGINT)  # still ignored: no KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGQUIT)  # still ignored: no core dump
        await asyncio.sleep(0)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGQUIT - 1))
    assert sig_mask(result.stdout, "SigIgn") & wanted == 0
