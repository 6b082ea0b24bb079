"""Per-pack isolated environments (virtualenv, node_modules) built outside the pack directory.

docs/packs.md: create the environment with the runtime's ``create_command``, rebuild it when its
interpreter is gone, and install the pack's dependency manifest once per manifest checksum. Packs may be
mounted read-only, so everything lives under ``{runtime_envs_dir}/{pack_ref}/{runtime}[-{version}]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import signal
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attune.worker import commands

MARKER_NAME = ".attune_deps_installed"
_LOG_LIMIT = 64 * 1024
_ERROR_TAIL = 2000
_LOCK_POLL_SECONDS = 0.05

# One asyncio.Lock per environment directory and event loop, so coroutines of one worker queue up
# without polling the file lock. Keyed weakly by loop: asyncio locks must not cross event loops.
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class EnvReport:
    """What ``ensure_environment`` did. ``error`` is set instead of raising."""

    env_dir: Path
    created: bool = False
    deps_installed: bool = False
    repaired: bool = False
    skipped: bool = False
    error: str | None = None
    log: str = ""

    def note(self, text: str) -> None:
        """Append to the log, keeping only its most recent part."""
        self.log = (self.log + text if text.endswith("\n") else self.log + text + "\n")[-_LOG_LIMIT:]

    def fail(self, message: str) -> None:
        """Record an error; several errors are joined."""
        self.error = message if self.error is None else f"{self.error}; {message}"
        self.note(f"error: {message}")


def env_dir_for(runtime_envs_dir: Path, pack_ref: str, runtime_name: str, version: str | None) -> Path:
    """``{runtime_envs_dir}/{pack_ref}/{lower(runtime_name)}[-{version}]`` (docs/packs.md)."""
    name = runtime_name.strip().lower()
    if version is not None and str(version).strip():
        name = f"{name}-{str(version).strip()}"
    return runtime_envs_dir / pack_ref / name


def _env_type(config: Mapping[str, Any]) -> str | None:
    """The configured environment kind, or ``None`` when there is no environment (or ``none``)."""
    environment = commands.section(config, "environment")
    if not environment:
        return None
    kind = str(environment.get("env_type") or "").strip().lower()
    return None if kind == "none" else kind


def needs_environment(config: Mapping[str, Any], pack_dir: Path) -> bool:
    """Whether a pack needs an environment for this runtime config (docs/packs.md).

    True when the config declares an environment other than ``none``, or when the pack contains the
    config's dependency manifest.
    """
    manifest = commands.manifest_path(config, pack_dir)
    if isinstance(config, Mapping) and config.get("st2"):
        # StackStorm packs get a virtualenv only for their requirements.txt; the runner shim
        # itself needs nothing beyond the standard library.
        return manifest is not None and manifest.is_file()
    if _env_type(config) is not None:
        return True
    return manifest is not None and manifest.is_file()


def _process_lock(env_dir: Path) -> asyncio.Lock:
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(os.path.normpath(env_dir.absolute()), asyncio.Lock())


@contextlib.asynccontextmanager
async def _file_lock(env_dir: Path, seconds: float) -> AsyncIterator[None]:
    """Hold ``{env_dir}.lock`` exclusively so two worker processes never build one env at once."""
    lock_path = env_dir.with_name(env_dir.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        # Non-blocking attempts: a blocking flock in a thread could not be cancelled.
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() >= deadline:
                    raise TimeoutError(f"timed out waiting for the lock {lock_path}") from None
                await asyncio.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def environment_lock(env_dir: Path, seconds: float) -> contextlib.AbstractAsyncContextManager[None]:
    """The cross-process lock ``ensure_environment`` holds on ``env_dir`` (the installer's swap takes it)."""
    return _file_lock(env_dir, seconds)


@dataclass
class _Outcome:
    returncode: int | None  # None: could not start or timed out (see ``problem``)
    stdout: str
    stderr: str
    problem: str | None = None


def _child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # pip would otherwise contact PyPI to check its own version on every install.
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.update(extra or {})
    return env


async def _run(
    argv: list[str], cwd: Path, seconds: float, report: EnvReport, extra_env: Mapping[str, str] | None = None
) -> _Outcome:
    """Run one setup command in its own process group, logging its output into ``report``."""
    report.note(f"$ {shlex.join(argv)}")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=_child_environment(extra_env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return _Outcome(None, "", "", f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        return _Outcome(None, "", "", f"{shlex.join(argv)} timed out after {seconds:g} seconds")
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    outcome = _Outcome(process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    report.note(outcome.stdout + outcome.stderr)
    return outcome


def _failure_text(outcome: _Outcome) -> str:
    if outcome.problem is not None:
        return outcome.problem
    detail = outcome.stderr.strip() or outcome.stdout.strip()
    return detail[-_ERROR_TAIL:] if detail else f"exit code {outcome.returncode}"


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _creation_argv(pack_dir: Path, env_dir: Path, config: Mapping[str, Any]) -> list[str]:
    """The templated ``create_command``; ``{interpreter}`` is the system binary (no env yet)."""
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    binary = commands.section(config, "interpreter").get("binary")
    variables = commands.template_variables(
        config, pack_dir, env_dir, interpreter=binary.strip() if isinstance(binary, str) else ""
    )
    raw = commands.string_list(commands.section(config, "environment").get("create_command"))
    if not raw:
        env_dir.mkdir(exist_ok=True)  # nothing to run: the directory itself is the environment
    return [commands.render_template(arg, variables) for arg in raw]


def _creation_problem(pack_dir: Path, env_dir: Path, config: Mapping[str, Any]) -> str | None:
    """Why a freshly created environment is unusable, or ``None`` when it is fine."""
    if not env_dir.is_dir():
        return f"{env_dir} does not exist after creation"
    interpreter = commands.env_interpreter(config, pack_dir, env_dir)
    if interpreter is not None and not interpreter.exists():
        return f"{interpreter} does not exist after creation"
    return None


async def _create(
    pack_dir: Path,
    env_dir: Path,
    config: Mapping[str, Any],
    seconds: float,
    report: EnvReport,
    extra_env: Mapping[str, str] | None = None,
) -> bool:
    """Step 2: run ``create_command`` (cwd ``pack_dir``); a failed build is removed so it is retried."""
    argv = await asyncio.to_thread(_creation_argv, pack_dir, env_dir, config)
    if argv:
        outcome = await _run(argv, pack_dir, seconds, report, extra_env)
        if outcome.returncode != 0:
            report.fail(f"Failed to create environment {env_dir}: {_failure_text(outcome)}")
            await asyncio.to_thread(_remove, env_dir)
            return False
    problem = await asyncio.to_thread(_creation_problem, pack_dir, env_dir, config)
    if problem is not None:
        report.fail(f"Failed to create environment {env_dir}: {problem}")
        await asyncio.to_thread(_remove, env_dir)
        return False
    report.created = True
    return True


@dataclass
class _PendingInstall:
    argv: list[str]
    manifest: Path
    checksum: str


def _pending_install(pack_dir: Path, env_dir: Path, config: Mapping[str, Any]) -> _PendingInstall | None:
    """The install to run, or ``None`` when nothing is configured or the marker is up to date."""
    manifest = commands.manifest_path(config, pack_dir)
    install = commands.string_list(commands.section(config, "dependencies").get("install_command"))
    if manifest is None or not install or not manifest.is_file() or not env_dir.is_dir():
        return None
    checksum = hashlib.sha256(manifest.read_bytes()).hexdigest()
    marker = env_dir / MARKER_NAME
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == checksum:
        return None
    if _env_type(config) == "node_modules":
        # `npm install --prefix {env_dir}` reads the copy made at creation time; refresh it so a
        # changed package.json is what gets installed.
        shutil.copyfile(manifest, env_dir / manifest.name)
    variables = commands.template_variables(
        config, pack_dir, env_dir, interpreter=commands.resolve_interpreter(config, pack_dir, env_dir)
    )
    return _PendingInstall([commands.render_template(arg, variables) for arg in install], manifest, checksum)


def _write_marker(env_dir: Path, checksum: str) -> None:
    marker = env_dir / MARKER_NAME
    staged = marker.with_name(MARKER_NAME + ".tmp")
    staged.write_text(checksum, encoding="utf-8")
    staged.replace(marker)  # atomic: a crash never leaves a half-written marker


async def _install(
    pack_dir: Path,
    env_dir: Path,
    config: Mapping[str, Any],
    seconds: float,
    report: EnvReport,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Step 4: install the manifest unless the marker already holds its checksum."""
    pending = await asyncio.to_thread(_pending_install, pack_dir, env_dir, config)
    if pending is None:
        return
    outcome = await _run(pending.argv, pack_dir, seconds, report, extra_env)
    if outcome.returncode != 0:
        report.fail(f"Failed to install dependencies from {pending.manifest}: {_failure_text(outcome)}")
        return
    await asyncio.to_thread(_write_marker, env_dir, pending.checksum)
    report.deps_installed = True


def _inspect(pack_dir: Path, env_dir: Path, config: Mapping[str, Any]) -> str:
    """What the environment needs: ``no-pack``, ``create``, ``repair`` or ``ok``."""
    if not pack_dir.is_dir():
        return "no-pack"
    if not (env_dir.exists() or env_dir.is_symlink()):
        return "create"
    interpreter = commands.env_interpreter(config, pack_dir, env_dir)
    # Path.exists follows symlinks, so a dangling interpreter link counts as missing.
    if interpreter is not None and not interpreter.exists():
        return "repair"
    return "ok"


async def _ensure_locked(
    pack_dir: Path,
    env_dir: Path,
    config: Mapping[str, Any],
    seconds: float,
    report: EnvReport,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    state = await asyncio.to_thread(_inspect, pack_dir, env_dir, config)
    if state == "no-pack":
        report.fail(f"Pack directory {pack_dir} does not exist")
        return
    if state == "create" and not await _create(pack_dir, env_dir, config, seconds, report, extra_env):
        return
    if state == "repair":
        report.note(f"the environment interpreter is missing: rebuilding {env_dir}")
        try:
            await asyncio.to_thread(_remove, env_dir)
        except OSError as exc:
            report.fail(f"Cannot remove broken environment {env_dir}: {exc}")
            await _install(pack_dir, env_dir, config, seconds, report, extra_env)
            return
        if not await _create(pack_dir, env_dir, config, seconds, report, extra_env):
            return
        report.repaired = True
    await _install(pack_dir, env_dir, config, seconds, report, extra_env)


async def ensure_environment(
    pack_dir: Path,
    env_dir: Path,
    config: Mapping[str, Any],
    *,
    timeout: float = 600,  # noqa: ASYNC109 - bounds each command and the lock wait, not the call
    extra_env: Mapping[str, str] | None = None,
) -> EnvReport:
    """Make ``env_dir`` a working environment for ``pack_dir`` under ``config`` (docs/packs.md).

    Creates it when absent, rebuilds it when its ``interpreter_path`` is missing or a broken link, and
    installs the pack's dependency manifest when its SHA-256 differs from the marker
    ``{env_dir}/.attune_deps_installed``. Idempotent, and serialised per ``env_dir`` within the process
    and across processes (``{env_dir}.lock``). ``timeout`` bounds each command and the lock wait;
    ``extra_env`` is added to the commands' environment (the installer's pip limits).
    Never raises: failures are reported in ``EnvReport.error``.
    """
    report = EnvReport(env_dir=env_dir)
    if _env_type(config) is None:
        report.skipped = True
        return report
    try:
        async with _process_lock(env_dir), _file_lock(env_dir, timeout):
            await _ensure_locked(pack_dir, env_dir, config, timeout, report, extra_env)
    except Exception as exc:  # the worker must survive any environment problem
        report.fail(f"Environment setup failed for {env_dir}: {exc}")
    return report
