"""Which command runs an action: interpreter, argv, environment variables and working directory.

Driven entirely by a runtime's ``execution_config`` (docs/packs.md). This
module only decides the command; spawning and output capture belong to the process runner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NATIVE_BINARIES = {"", "native", "none"}
_SHELLS = {"bash", "sh", "dash", "zsh"}


class CommandError(Exception):
    """The action cannot be turned into a command (no content, not executable, ...)."""


@dataclass
class Command:
    """A ready-to-spawn action command. ``env`` holds only the runtime's templated ``env_vars``."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path | None
    native: bool


def section(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``config[key]`` when it is a mapping, else an empty one (null and malformed act as absent)."""
    value = config.get(key) if isinstance(config, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def string_list(value: Any) -> list[str]:
    """A config list of argv elements; anything that is not a list yields ``[]``."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [str(item) for item in value if item is not None]
    return []


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Replace literal ``{name}`` substrings; unknown names are left as they are (docs/packs.md)."""
    for name, value in variables.items():
        template = template.replace("{" + name + "}", value)
    return template


def is_native(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` describes a native runtime: the action file itself is the program.

    True for an empty (or malformed) config and for an interpreter binary that is empty, ``native``
    or ``none`` (docs/packs.md).
    """
    if not isinstance(config, Mapping) or not config:
        return True
    binary = section(config, "interpreter").get("binary")
    return not isinstance(binary, str) or binary.strip().lower() in _NATIVE_BINARIES


def manifest_path(config: Mapping[str, Any], pack_dir: Path) -> Path | None:
    """``{pack_dir}/{dependencies.manifest_file}``, or ``None`` when no manifest is configured."""
    manifest_file = section(config, "dependencies").get("manifest_file")
    if not isinstance(manifest_file, str) or not manifest_file.strip():
        return None
    return pack_dir / manifest_file.strip()


def env_interpreter(config: Mapping[str, Any], pack_dir: Path, env_dir: Path | None) -> Path | None:
    """The templated ``environment.interpreter_path`` when configured, whether or not it exists."""
    template = section(config, "environment").get("interpreter_path")
    if env_dir is None or not isinstance(template, str) or not template.strip():
        return None
    return Path(render_template(template.strip(), {"pack_dir": str(pack_dir), "env_dir": str(env_dir)}))


def resolve_interpreter(config: Mapping[str, Any], pack_dir: Path, env_dir: Path | None) -> str:
    """The environment's interpreter when it exists on disk, else ``interpreter.binary``."""
    candidate = env_interpreter(config, pack_dir, env_dir)
    if env_dir is not None and env_dir.is_dir() and candidate is not None and candidate.exists():
        return str(candidate)
    binary = section(config, "interpreter").get("binary")
    return binary.strip() if isinstance(binary, str) else ""


def template_variables(
    config: Mapping[str, Any],
    pack_dir: Path,
    env_dir: Path | None,
    *,
    interpreter: str,
    action_file: Path | None = None,
) -> dict[str, str]:
    """The values of ``{pack_dir}``, ``{env_dir}``, ``{interpreter}``, ``{manifest_path}``, ``{action_file}``.

    ``env_dir`` is absent from the map when there is none, so templates naming it stay unresolved.
    """
    manifest = manifest_path(config, pack_dir)
    variables = {
        "pack_dir": str(pack_dir),
        "interpreter": interpreter,
        "manifest_path": str(manifest) if manifest is not None else "",
        "action_file": str(action_file) if action_file is not None else "",
    }
    if env_dir is not None:
        variables["env_dir"] = str(env_dir)
    return variables


def _action_file(pack_dir: Path, entrypoint: str) -> Path | None:
    """The action's file inside the pack, if it exists (docs/packs.md code location)."""
    text = entrypoint.strip()
    if not text or "\n" in text or "\x00" in text:
        return None
    root = Path(os.path.normpath(pack_dir.absolute()))
    requested = Path(text)
    candidate = requested if requested.is_absolute() else root / "actions" / requested
    # Lexical containment: "../" cannot escape the pack, while symlinks inside the pack still work.
    candidate = Path(os.path.normpath(candidate))
    if candidate != root and root not in candidate.parents:
        return None
    try:
        return candidate if candidate.is_file() else None
    except OSError:  # e.g. a long inline script is not a valid file name (ENAMETOOLONG)
        return None


def _is_shell(config: Mapping[str, Any], interpreter: str) -> bool:
    if Path(interpreter).name in _SHELLS:
        return True
    extension = section(config, "interpreter").get("file_extension")
    return isinstance(extension, str) and extension.strip().lower().lstrip(".") == "sh"


def build_command(
    *,
    config: Mapping[str, Any],
    pack_dir: Path,
    env_dir: Path | None,
    entrypoint: str,
    inline_allowed: bool,
) -> Command:
    """Decide the argv, runtime environment variables and working directory of one action run.

    * The action file is ``{pack_dir}/actions/{entrypoint}`` (or an absolute path inside the pack)
      when it exists.
    * The interpreter is the environment's ``interpreter_path`` when ``env_dir`` and that path exist,
      else ``interpreter.binary``.
    * With a file: ``[interpreter, *args, file]``; for a native runtime ``[file]``, which must be
      executable.
    * Without a file, when ``inline_allowed`` and the runtime is a shell: ``[interpreter, "-c",
      entrypoint]``.
    * ``env`` holds the templated ``env_vars``; ``cwd`` is the pack directory when it exists.

    Raises ``CommandError`` when there is nothing to run.
    """
    native = is_native(config)
    interpreter = "" if native else resolve_interpreter(config, pack_dir, env_dir)
    action_file = _action_file(pack_dir, entrypoint)
    variables = template_variables(
        config, pack_dir, env_dir, interpreter=interpreter, action_file=action_file
    )

    if action_file is not None:
        if native:
            if not os.access(action_file, os.X_OK):
                raise CommandError(f"Action file '{action_file}' is not executable")
            argv = [str(action_file)]
        else:
            args = [
                render_template(arg, variables)
                for arg in string_list(section(config, "interpreter").get("args"))
            ]
            argv = [interpreter, *args, str(action_file)]
    elif inline_allowed and not native and entrypoint.strip() and _is_shell(config, interpreter):
        argv = [interpreter, "-c", entrypoint]
    else:
        raise CommandError(f"No executable content found for entrypoint '{entrypoint}'")

    env: dict[str, str] = {}
    raw_env = section(config, "env_vars")
    for name, value in raw_env.items():
        if value is None:
            continue
        text = str(value)
        # Without an environment directory a value pointing into it would be meaningless.
        if env_dir is None and "{env_dir}" in text:
            continue
        env[str(name)] = render_template(text, variables)

    return Command(argv=argv, env=env, cwd=pack_dir if pack_dir.is_dir() else None, native=native)
