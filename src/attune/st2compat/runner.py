"""Runs one StackStorm action the way st2's runners do, and prints its st2-shaped result as JSON.

Usage (by the worker, never by hand): ``python3 runner.py <runner> <pack_dir> <entry>`` with
``{"parameters": {...}, "config": {...}}`` on stdin (then ``---ATTUNE_PARAMS_END---``). The last
stdout line is the result; the exit code is 0 when the action succeeded. Standard library only and
no ``attune`` import: it runs with the pack's virtualenv interpreter (docs/stackstorm.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

PARAMS_END = "---ATTUNE_PARAMS_END---"
LOCAL_RUNNER_PARAMETERS = ("cmd", "cwd", "env", "timeout", "sudo", "sudo_password", "kwarg_op")


def _read_input() -> dict[str, Any]:
    text = sys.stdin.read()
    head = text.split(PARAMS_END, 1)[0].strip()
    data = json.loads(head) if head else {}
    return data if isinstance(data, dict) else {}


def _strip(text: str) -> str:
    """st2 removes one trailing newline (and carriage return) from command output."""
    return text[:-1] if text.endswith("\n") else text


def _st2_env(pack: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ST2_ACTION_API_URL": os.environ.get("ATTUNE_API_URL", "") + "/api/v1",
            "ST2_ACTION_AUTH_TOKEN": os.environ.get("ATTUNE_API_TOKEN", ""),
            "ST2_ACTION_PACK_NAME": pack,
            "ST2_ACTION_EXECUTION_ID": os.environ.get("ATTUNE_EXEC_ID", ""),
        }
    )
    return env


def _shell(
    command: list[str] | str, params: dict[str, Any], pack_dir: Path, pack: str
) -> tuple[bool, dict[str, Any]]:
    env = _st2_env(pack)
    extra = params.get("env")
    if isinstance(extra, dict):
        env.update({str(key): str(value) for key, value in extra.items()})
    timeout = params.get("timeout") or 60
    cwd = params.get("cwd") or str(pack_dir)
    if isinstance(command, str):
        shell = shutil.which("bash") or "/bin/sh"
        command = [shell, "-c", command]
    if params.get("sudo"):
        command = ["sudo", "-E", "--", *command]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=cwd, timeout=float(timeout)
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        result = {
            "stdout": _strip(out),
            "stderr": _strip(err),
            "return_code": -9,
            "succeeded": False,
            "failed": True,
        }
        result["error"] = f"Action failed to complete in {timeout} seconds"
        return False, result
    except OSError as exc:
        return False, {
            "stdout": "",
            "stderr": str(exc),
            "return_code": 127,
            "succeeded": False,
            "failed": True,
        }
    ok = done.returncode == 0
    return ok, {
        "stdout": _strip(done.stdout),
        "stderr": _strip(done.stderr),
        "return_code": done.returncode,
        "succeeded": ok,
        "failed": not ok,
    }


def _script_arguments(params: dict[str, Any], positions: dict[str, int]) -> list[str]:
    """st2's local-shell-script arguments: ``--name=value`` (``--name`` for true), then positionals."""
    kwarg_op = str(params.get("kwarg_op") or "--")
    named: list[str] = []
    positional = sorted((pos, name) for name, pos in positions.items() if name in params)
    for name, value in params.items():
        if name in positions or name in LOCAL_RUNNER_PARAMETERS or value is None or value == "":
            continue
        if isinstance(value, bool):
            if value:
                named.append(f"{kwarg_op}{name}")
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        named.append(f"{kwarg_op}{name}={text}")
    args = named
    for _, name in positional:
        value = params[name]
        args.append("" if value is None else value if isinstance(value, str) else json.dumps(value))
    return args


def _python(
    entry: Path, params: dict[str, Any], config: dict[str, Any], pack_dir: Path
) -> tuple[bool, dict[str, Any]]:
    for extra in (entry.parent, entry.parent / "lib", pack_dir / "actions" / "lib"):
        if extra.is_dir():
            sys.path.insert(0, str(extra))
    # On the path only now (the worker's PYTHONPATH); imported by name so it stays st2's module name.
    action_base: Any = importlib.import_module("st2common.runners.base_action").Action

    captured_out, captured_err = io.StringIO(), io.StringIO()
    ok, value = False, None
    with contextlib.redirect_stdout(captured_out):
        try:
            spec = importlib.util.spec_from_file_location(f"st2_action_{entry.stem}", entry)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {entry}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            classes: list[Any] = [
                obj
                for obj in vars(module).values()
                if inspect.isclass(obj)
                and issubclass(obj, action_base)
                and obj is not action_base
                and obj.__module__ == module.__name__
            ]
            if not classes:
                raise TypeError(f"{entry.name} defines no subclass of st2common.runners.base_action.Action")
            action = classes[0](config=config)
            outcome = action.run(**params)
            if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[0], bool):
                ok, value = outcome
            else:
                ok, value = True, outcome
        except Exception:
            captured_err.write(traceback.format_exc())
            ok, value = False, None
    sys.stderr.write(captured_err.getvalue())
    result = {
        "result": _jsonable(value),
        "stdout": captured_out.getvalue(),
        "stderr": captured_err.getvalue(),
        "exit_code": 0 if ok else 1,
    }
    return ok, result


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _http(params: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    method = str(params.get("method") or "GET").upper()
    body = params.get("body")
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    request = urllib.request.Request(str(params.get("url")), data=data, method=method)
    for name, value in (params.get("headers") or {}).items():
        request.add_header(str(name), str(value))
    if isinstance(body, dict | list) and not request.has_header("Content-type"):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=float(params.get("timeout") or 60)) as response:
            status, headers, text = (
                response.status,
                dict(response.headers),
                response.read().decode(errors="replace"),
            )
    except urllib.error.HTTPError as exc:
        status, headers, text = exc.code, dict(exc.headers), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, {"status_code": 0, "body": "", "parsed": False, "headers": {}, "error": str(exc)}
    try:
        parsed_body, parsed = json.loads(text), True
    except ValueError:
        parsed_body, parsed = text, False
    return status < 400, {"status_code": status, "body": parsed_body, "parsed": parsed, "headers": headers}


def _builtin(name: str, params: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The st2 core actions that are not shell commands."""
    if name == "uuid":
        kind = str(params.get("uuid_type") or "uuid4")
        return True, {"result": str(uuid.uuid1() if kind == "uuid1" else uuid.uuid4())}
    if name == "pause":
        seconds = float(params.get("max_pause") or 5)
        time.sleep(max(0.0, seconds))
        return True, {"stdout": "", "stderr": "", "return_code": 0, "succeeded": True, "failed": False}
    if name == "error":
        message = str(params.get("message") or "error")
        return False, {"stdout": "", "stderr": message, "return_code": 1, "succeeded": False, "failed": True}
    if name == "inject_trigger":
        body = {"trigger_ref": params.get("trigger"), "payload": params.get("payload") or {}}
        url = os.environ.get("ATTUNE_API_URL", "") + "/api/v1/events"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        request.add_header("Authorization", f"Bearer {os.environ.get('ATTUNE_API_TOKEN', '')}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                reply = json.loads(response.read().decode() or "{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return False, {"error": f"cannot inject the trigger: {exc}"}
        return True, {"result": reply.get("data")}
    return False, {"error": f"unknown built-in st2 action {name!r}"}


def _inquiry(params: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """st2's inquirer runner: ask through Attune's inquiries (the worker holds the execution)."""
    request: dict[str, Any] = {"prompt": str(params.get("route") or "Please answer")}
    schema = params.get("schema")
    if isinstance(schema, dict):
        request["response_schema"] = schema
    users = params.get("users")
    if isinstance(users, list) and len(users) == 1:
        request["assigned_to"] = users[0]
    ttl = params.get("ttl")
    if isinstance(ttl, int | float) and ttl > 0:
        request["timeout_seconds"] = ttl * 60
    return True, {"__inquiry": request}


def main(argv: list[str]) -> int:
    runner, pack_dir, entry = argv[1], Path(argv[2]), argv[3] if len(argv) > 3 else ""
    data = _read_input()
    params = data.get("parameters") or {}
    config = data.get("config") or {}
    positions = {str(k): int(v) for k, v in (data.get("positions") or {}).items()}
    pack = os.environ.get("ATTUNE_ACTION", "pack.x").split(".", 1)[0]
    entry_path = (pack_dir / "actions" / entry) if entry else None
    if runner == "local-shell-cmd":
        ok, result = _shell(str(params.get("cmd") or ""), params, pack_dir, pack)
    elif runner == "local-shell-script":
        assert entry_path is not None
        command = [str(entry_path), *_script_arguments(params, positions)]
        if not os.access(entry_path, os.X_OK):
            command = [shutil.which("bash") or "/bin/sh", *command]
        ok, result = _shell(command, params, pack_dir, pack)
    elif runner == "python-script":
        assert entry_path is not None
        ok, result = _python(entry_path, {k: v for k, v in params.items()}, config, pack_dir)
    elif runner == "http-request":
        ok, result = _http(params)
    elif runner == "noop":
        ok, result = True, {"failed": False, "succeeded": True, "return_code": 0, "stdout": "", "stderr": ""}
    elif runner == "inquirer":
        ok, result = _inquiry(params)
    elif runner == "attune-builtin":
        ok, result = _builtin(entry, params)
    else:
        ok, result = False, {"error": f"the st2 runner {runner!r} is not supported"}
    if not ok and "error" not in result:
        result["error"] = _strip(str(result.get("stderr") or "")) or f"{runner} action failed"
    sys.stdout.write(json.dumps(result, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
