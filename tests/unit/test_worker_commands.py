"""Which command runs an action (docs/packs.md), using the core pack's runtime configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from attune.worker.commands import CommandError, build_command, is_native

RUNTIMES = Path(__file__).resolve().parents[2] / "packs" / "core" / "runtimes"


def core_config(name: str) -> dict[str, Any]:
    document = yaml.safe_load((RUNTIMES / f"{name}.yaml").read_text())
    config: dict[str, Any] = document["execution_config"]
    return config


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    pack = tmp_path / "packs" / "demo"
    (pack / "actions").mkdir(parents=True)
    return pack


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def run(argv: list[str], cwd: Path | None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def test_native_detection() -> None:
    assert is_native({})
    assert is_native(core_config("native"))
    assert is_native({"interpreter": {"binary": ""}})
    assert is_native({"interpreter": {"binary": "none"}})
    assert is_native({"interpreter": {"binary": "Native"}})
    assert is_native({"environment": {"env_type": "none"}})  # no interpreter at all
    assert not is_native(core_config("shell"))
    assert not is_native(core_config("python"))


def test_shell_file_runs_with_bash_in_the_pack_directory(pack_dir: Path) -> None:
    script = write(pack_dir / "actions" / "hello.sh", 'echo "hello from $(pwd)"\n')
    command = build_command(
        config=core_config("shell"),
        pack_dir=pack_dir,
        env_dir=None,
        entrypoint="hello.sh",
        inline_allowed=True,
    )
    assert command.argv == ["/bin/bash", str(script)]
    assert command.cwd == pack_dir
    assert not command.native
    assert run(command.argv, command.cwd).strip() == f"hello from {pack_dir}"


def test_shell_inline_code_when_there_is_no_file(pack_dir: Path) -> None:
    command = build_command(
        config=core_config("shell"),
        pack_dir=pack_dir,
        env_dir=None,
        entrypoint="echo $((6 * 7))",
        inline_allowed=True,
    )
    assert command.argv == ["/bin/bash", "-c", "echo $((6 * 7))"]
    assert run(command.argv, command.cwd).strip() == "42"


def test_inline_code_is_refused_when_not_allowed_or_not_a_shell(pack_dir: Path) -> None:
    with pytest.raises(CommandError, match="No executable content found for entrypoint 'echo hi'"):
        build_command(
            config=core_config("shell"),
            pack_dir=pack_dir,
            env_dir=None,
            entrypoint="echo hi",
            inline_allowed=False,
        )
    with pytest.raises(CommandError, match="No executable content found"):
        build_command(
            config=core_config("python"),
            pack_dir=pack_dir,
            env_dir=None,
            entrypoint="print('hi')",
            inline_allowed=True,
        )


def test_a_sh_file_extension_also_marks_a_shell_runtime(pack_dir: Path) -> None:
    config = {"interpreter": {"binary": "/usr/bin/env", "args": [], "file_extension": "SH"}}
    command = build_command(
        config=config, pack_dir=pack_dir, env_dir=None, entrypoint="true", inline_allowed=True
    )
    assert command.argv == ["/usr/bin/env", "-c", "true"]


def test_python_uses_the_environment_interpreter_when_it_exists(pack_dir: Path, tmp_path: Path) -> None:
    script = write(pack_dir / "actions" / "run.py", "import sys; print(sys.argv[0])\n")
    env_dir = tmp_path / "envs" / "demo" / "python"
    env_python = write(env_dir / "bin" / "python3", "#!/bin/sh\nexit 0\n", 0o755)
    command = build_command(
        config=core_config("python"),
        pack_dir=pack_dir,
        env_dir=env_dir,
        entrypoint="run.py",
        inline_allowed=True,
    )
    assert command.argv == [str(env_python), "-u", str(script)]


def test_python_falls_back_to_the_system_binary_without_an_environment(
    pack_dir: Path, tmp_path: Path
) -> None:
    script = write(pack_dir / "actions" / "run.py", "print('ok')\n")
    missing_env = tmp_path / "envs" / "demo" / "python"
    command = build_command(
        config=core_config("python"),
        pack_dir=pack_dir,
        env_dir=missing_env,
        entrypoint="run.py",
        inline_allowed=True,
    )
    assert command.argv == ["python3", "-u", str(script)]
    # A version's config replaces the base one, including its binary.
    version_config = {**core_config("python"), "interpreter": {"binary": sys.executable, "args": ["-u"]}}
    command = build_command(
        config=version_config,
        pack_dir=pack_dir,
        env_dir=missing_env,
        entrypoint="run.py",
        inline_allowed=True,
    )
    assert run(command.argv, command.cwd).strip() == "ok"


def test_native_executable_runs_directly(pack_dir: Path) -> None:
    binary = write(pack_dir / "actions" / "tool", "#!/bin/sh\necho native-ok\n", 0o755)
    command = build_command(
        config=core_config("native"), pack_dir=pack_dir, env_dir=None, entrypoint="tool", inline_allowed=True
    )
    assert command.native
    assert command.argv == [str(binary)]
    assert run(command.argv, command.cwd).strip() == "native-ok"


def test_native_file_must_be_executable(pack_dir: Path) -> None:
    write(pack_dir / "actions" / "tool", "#!/bin/sh\necho hi\n", 0o644)
    with pytest.raises(CommandError, match="not executable"):
        build_command(config={}, pack_dir=pack_dir, env_dir=None, entrypoint="tool", inline_allowed=True)


def test_native_never_runs_inline_code(pack_dir: Path) -> None:
    with pytest.raises(CommandError, match="No executable content found for entrypoint 'echo hi'"):
        build_command(config={}, pack_dir=pack_dir, env_dir=None, entrypoint="echo hi", inline_allowed=True)


def test_missing_content_is_an_error(pack_dir: Path) -> None:
    with pytest.raises(CommandError, match=r"No executable content found for entrypoint 'missing\.py'"):
        build_command(
            config=core_config("python"),
            pack_dir=pack_dir,
            env_dir=None,
            entrypoint="missing.py",
            inline_allowed=True,
        )


def test_absolute_paths_must_stay_inside_the_pack(pack_dir: Path, tmp_path: Path) -> None:
    inside = write(pack_dir / "lib" / "job.py", "print(1)\n")
    outside = write(tmp_path / "elsewhere.py", "print(2)\n")
    python = core_config("python")
    command = build_command(
        config=python, pack_dir=pack_dir, env_dir=None, entrypoint=str(inside), inline_allowed=False
    )
    assert command.argv[-1] == str(inside)
    for entrypoint in (str(outside), "../../elsewhere.py"):
        with pytest.raises(CommandError):
            build_command(
                config=python, pack_dir=pack_dir, env_dir=None, entrypoint=entrypoint, inline_allowed=False
            )


def test_env_vars_are_templated(pack_dir: Path, tmp_path: Path) -> None:
    script = write(pack_dir / "actions" / "main.js", "console.log(1)\n")
    write(pack_dir / "package.json", "{}\n")
    env_dir = tmp_path / "envs" / "demo" / "node.js"
    config = {
        **core_config("nodejs"),
        "env_vars": {
            "NODE_PATH": "{env_dir}/node_modules",
            "DETAILS": "{pack_dir}|{interpreter}|{manifest_path}|{action_file}",
            "COUNT": 3,
        },
    }
    command = build_command(
        config=config, pack_dir=pack_dir, env_dir=env_dir, entrypoint="main.js", inline_allowed=True
    )
    assert command.argv == ["node", str(script)]
    assert command.env == {
        "NODE_PATH": f"{env_dir}/node_modules",
        "DETAILS": f"{pack_dir}|node|{pack_dir / 'package.json'}|{script}",
        "COUNT": "3",
    }


def test_core_node_config_sets_node_path(pack_dir: Path, tmp_path: Path) -> None:
    write(pack_dir / "actions" / "main.js", "console.log(1)\n")
    env_dir = tmp_path / "envs" / "demo" / "node.js-20"
    command = build_command(
        config=core_config("nodejs"),
        pack_dir=pack_dir,
        env_dir=env_dir,
        entrypoint="main.js",
        inline_allowed=True,
    )
    assert command.env == {"NODE_PATH": f"{env_dir}/node_modules"}


def test_cwd_is_none_when_the_pack_directory_is_missing(tmp_path: Path) -> None:
    command = build_command(
        config=core_config("shell"),
        pack_dir=tmp_path / "nope",
        env_dir=None,
        entrypoint="echo hi",
        inline_allowed=True,
    )
    assert command.cwd is None
    assert command.argv == ["/bin/bash", "-c", "echo hi"]
