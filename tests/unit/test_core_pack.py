"""Behaviour of the core pack's action scripts, fed parameters on stdin as the worker does."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CORE = Path(__file__).resolve().parents[2] / "packs" / "core"
ACTIONS = CORE / "actions"


def dotenv(params: dict[str, str]) -> str:
    """The worker's dotenv delivery: sorted `KEY='value'` lines, `'` as `'\\''`, then the end marker."""
    lines = sorted("{}='{}'".format(key, value.replace("'", "'\\''")) for key, value in params.items())
    return "\n".join(lines) + "\n---ATTUNE_PARAMS_END---\n"


def run(
    script: str, params: dict[str, str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(ACTIONS / script)],
        input=dotenv(params),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=CORE,
        env={**os.environ, **(env or {})},
    )


class Recorder(BaseHTTPRequestHandler):
    """Echoes requests as JSON; `/api/...` answers in the API's `{"data": ...}` envelope."""

    requests: list[dict[str, Any]]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        record = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        self.server.requests.append(record)  # type: ignore[attr-defined]
        if self.path.startswith("/redirect"):
            self._reply(302, b"", {"Location": "/final"})
        elif self.path.startswith("/text"):
            self._reply(404, b"not 'found' \"here\"\n\tend", {"Content-Type": "text/plain"})
        elif self.path.startswith("/api/v1/packs/fail"):
            self._reply(400, b'{"error":"Pack path missing","code":"BAD_REQUEST"}', {})
        elif self.path.startswith("/api/"):
            self._reply(200, json.dumps({"data": {"received": json.loads(body)}}).encode(), {})
        else:
            self._reply(
                200, json.dumps(record).encode(), {"Content-Type": "application/json", "X-Test": "yes"}
            )

    def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def base_url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


# -- files -----------------------------------------------------------------------------------


def test_scripts_are_executable() -> None:
    scripts = [
        *ACTIONS.glob("*.sh"),
        CORE / "sensors" / "attune-core-timer-sensor",
        CORE / "tests" / "run_tests.sh",
    ]
    assert len(scripts) == 11
    for script in scripts:
        assert script.stat().st_mode & stat.S_IXUSR, script


def test_sensor_placeholder_explains_itself() -> None:
    result = subprocess.run(
        [str(CORE / "sensors" / "attune-core-timer-sensor")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "timer sensor runs inside the attune sensor service" in result.stderr


def test_pack_shell_tests_pass() -> None:
    result = subprocess.run(
        ["/bin/sh", "tests/run_tests.sh"], cwd=CORE, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    assert "Failed: 0" in result.stdout


def test_pack_unittests_pass() -> None:
    result = subprocess.run(
        ["python3", "-m", "unittest", "tests/test_actions.py"],
        cwd=CORE,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- echo / noop / sleep ---------------------------------------------------------------------


def test_echo_prints_message_without_newline() -> None:
    result = run("echo.sh", {"message": "Hello 'quoted' world\nsecond line"})
    assert (result.returncode, result.stdout) == (0, "Hello 'quoted' world\nsecond line")


def test_echo_without_message_prints_nothing() -> None:
    result = run("echo.sh", {})
    assert (result.returncode, result.stdout) == (0, "")


def test_echo_ignores_secrets_line_after_marker() -> None:
    result = subprocess.run(
        ["/bin/bash", str(ACTIONS / "echo.sh")],
        input='message=\'hi\'\n---ATTUNE_PARAMS_END---\n{"message":"secret"}\n',
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout == "hi"


def test_noop_prints_and_exits_with_code() -> None:
    result = run("noop.sh", {"message": "testing", "exit_code": "42"})
    assert result.returncode == 42
    assert result.stdout == "[NOOP] testing\nNo operation completed successfully\n"


def test_noop_defaults_to_success_without_message() -> None:
    result = run("noop.sh", {})
    assert (result.returncode, result.stdout) == (0, "No operation completed successfully\n")


@pytest.mark.parametrize("code", ["256", "-1", "abc"])
def test_noop_rejects_bad_exit_code(code: str) -> None:
    result = run("noop.sh", {"exit_code": code})
    assert result.returncode == 1
    assert result.stdout == ""
    assert "exit_code" in result.stderr


def test_sleep_prints_message_and_duration() -> None:
    result = run("sleep.sh", {"seconds": "0", "message": "waiting"})
    assert (result.returncode, result.stdout) == (0, "waiting\nSlept for 0 seconds\n")


@pytest.mark.parametrize("seconds", ["3601", "1.5", "x"])
def test_sleep_rejects_bad_seconds(seconds: str) -> None:
    result = run("sleep.sh", {"seconds": seconds})
    assert result.returncode == 1
    assert "seconds" in result.stderr


# -- http_request ----------------------------------------------------------------------------


def test_http_request_get_reports_response(server: ThreadingHTTPServer) -> None:
    result = run("http_request.sh", {"url": base_url(server) + "/items?x=1", "query_params.q": "a b&é"})
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["status_code"] == 200
    assert output["success"] is True
    assert output["headers"]["X-Test"] == "yes"
    assert output["json"]["path"] == "/items?x=1&q=a%20b%26%C3%A9"
    assert json.loads(output["body"]) == output["json"]
    assert output["url"].endswith("/items?x=1&q=a%20b%26%C3%A9")
    assert isinstance(output["elapsed_ms"], int)
    assert "error" not in output


def test_http_request_sends_json_body_headers_and_auth(server: ThreadingHTTPServer) -> None:
    params = {
        "url": base_url(server) + "/post",
        "method": "post",
        "headers.X-Custom": "v 1",
        "json_body.name": "it's",
        "json_body.count": "3",
        "json_body.tags": '["a","b"]',
        "json_body.nested.flag": "true",
        "json_body.nested.deeper.x": "1.5",
        "json_body.zeta": "",
        "auth_type": "bearer",
        "auth_token": "tok",
    }
    output = json.loads(run("http_request.sh", params).stdout)
    (request,) = server.requests  # type: ignore[attr-defined]
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {
        "count": 3,
        "name": "it's",
        "nested": {"deeper": {"x": 1.5}, "flag": True},
        "tags": ["a", "b"],
        "zeta": "",
    }
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Authorization"] == "Bearer tok"
    assert request["headers"]["X-Custom"] == "v 1"
    assert output["success"] is True


def test_http_request_sends_raw_body_with_basic_auth(server: ThreadingHTTPServer) -> None:
    run(
        "http_request.sh",
        {
            "url": base_url(server),
            "method": "PUT",
            "body": "raw\ntext",
            "auth_type": "basic",
            "auth_username": "u",
            "auth_password": "p",
        },
    )
    (request,) = server.requests  # type: ignore[attr-defined]
    assert (request["method"], request["body"]) == ("PUT", "raw\ntext")
    assert request["headers"]["Authorization"] == "Basic dTpw"


def test_http_request_follows_redirects(server: ThreadingHTTPServer) -> None:
    output = json.loads(run("http_request.sh", {"url": base_url(server) + "/redirect"}).stdout)
    assert output["status_code"] == 200
    assert output["url"] == base_url(server) + "/final"
    assert "Location" not in output["headers"]


def test_http_request_does_not_follow_when_disabled(server: ThreadingHTTPServer) -> None:
    output = json.loads(
        run("http_request.sh", {"url": base_url(server) + "/redirect", "follow_redirects": "false"}).stdout
    )
    assert output["status_code"] == 302
    assert output["success"] is False


def test_http_request_error_status_exits_zero_with_text_body(server: ThreadingHTTPServer) -> None:
    result = run("http_request.sh", {"url": base_url(server) + "/text"})
    assert result.returncode == 0
    output = json.loads(result.stdout)
    assert (output["status_code"], output["success"], output["json"]) == (404, False, None)
    assert output["body"] == "not 'found' \"here\"\n\tend"


def test_http_request_without_url_fails() -> None:
    result = run("http_request.sh", {})
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["error"] == "url parameter is required"
    assert (output["status_code"], output["success"]) == (0, False)


def test_http_request_connection_failure_fails() -> None:
    result = run("http_request.sh", {"url": "http://127.0.0.1:9/"})
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["error"] == "Failed to connect to host"
    assert output["status_code"] == 0


# -- pack management -------------------------------------------------------------------------


def test_register_packs_posts_to_api_and_prints_data(server: ThreadingHTTPServer) -> None:
    params = {
        "pack_paths": '["/p/a","/p/b"]',
        "force": "true",
        "api_url": base_url(server),
        "api_token": "t0k",
    }
    result = run("register_packs.sh", params)
    assert result.returncode == 0, result.stderr
    (request,) = server.requests  # type: ignore[attr-defined]
    assert request["path"] == "/api/v1/packs/register-batch"
    assert request["headers"]["Authorization"] == "Bearer t0k"
    sent = {
        "pack_paths": ["/p/a", "/p/b"],
        "packs_base_dir": "/opt/attune/packs",
        "skip_validation": False,
        "skip_tests": False,
        "force": True,
    }
    assert json.loads(request["body"]) == sent
    assert json.loads(result.stdout) == {"received": sent}


@pytest.mark.parametrize(
    ("script", "params", "path"),
    [
        ("download_packs.sh", {"packs": '["core"]', "destination_dir": "/tmp/x"}, "/api/v1/packs/download"),
        ("get_pack_dependencies.sh", {"pack_paths": '["/p"]'}, "/api/v1/packs/dependencies"),
        ("build_pack_envs.sh", {"pack_paths": '["/p"]'}, "/api/v1/packs/build-envs"),
    ],
)
def test_pack_actions_fall_back_to_environment(
    server: ThreadingHTTPServer, script: str, params: dict[str, str], path: str
) -> None:
    result = run(script, params, env={"ATTUNE_API_URL": base_url(server), "ATTUNE_API_TOKEN": "envtok"})
    assert result.returncode == 0, result.stdout + result.stderr
    (request,) = server.requests  # type: ignore[attr-defined]
    assert request["path"] == path
    assert request["headers"]["Authorization"] == "Bearer envtok"
    assert json.loads(result.stdout)["received"] == json.loads(request["body"])


def test_pack_action_api_error_prints_empty_result(server: ThreadingHTTPServer) -> None:
    result = run(
        "get_pack_dependencies.sh",
        {"pack_paths": '["/p"]', "api_url": base_url(server) + "/api/v1/packs/fail"},
    )
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["dependencies"] == []
    assert output["errors"] == [{"pack_path": "", "error": "API call failed (HTTP 400): Pack path missing"}]


def test_register_packs_requires_pack_paths() -> None:
    result = run("register_packs.sh", {"api_url": "http://127.0.0.1:9"})
    assert result.returncode == 1
    (failure,) = json.loads(result.stdout)["failed_packs"]
    assert failure["error"] == "pack_paths parameter is required"
