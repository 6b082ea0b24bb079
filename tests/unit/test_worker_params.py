"""Parameter formats, the stdin protocol and parameter files (docs/packs.md)."""

from __future__ import annotations

import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from attune.worker import params


def test_json_is_compact() -> None:
    text = params.format_params({"a": 1, "b": [1, 2], "c": {"d": "é"}}, "json")
    assert text == '{"a":1,"b":[1,2],"c":{"d":"é"}}'


def test_yaml_round_trips() -> None:
    value = {"name": "web", "ports": [80, 443], "opts": {"tls": True}}
    text = params.format_params(value, "YAML")
    assert "name: web" in text
    assert yaml.safe_load(text) == value


def test_dotenv_flattens_escapes_and_sorts() -> None:
    value = {
        "name": "it's",
        "headers": {"Content-Type": "application/json", "X": {"Y": 1}},
        "list": [1, "a"],
        "none": None,
        "flag": True,
        "off": False,
        "num": 1.5,
        "count": 3,
    }
    assert params.format_params(value, "dotenv") == "\n".join(
        [
            "count='3'",
            "flag='true'",
            "headers.Content-Type='application/json'",
            "headers.X.Y='1'",
            "list='[1,\"a\"]'",
            "name='it'\\''s'",
            "none=''",
            "num='1.5'",
            "off='false'",
        ]
    )


def test_dotenv_quoting_survives_a_shell() -> None:
    tricky = "a 'quoted' $HOME `x` \\ value"
    line = params.format_params({"v": tricky}, "dotenv")
    shown = subprocess.run(
        ["/bin/sh", "-c", f'{line}\nprintf %s "$v"'], capture_output=True, text=True, check=True
    )
    assert shown.stdout == tricky


def test_dotenv_of_nothing_is_empty() -> None:
    assert params.format_params({}, "dotenv") == ""


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        params.format_params({"a": 1}, "xml")


def test_stdin_has_params_then_delimiter_then_secrets() -> None:
    data = params.build_stdin('{"a":1}', delivery="stdin", secrets={"token": "s3"})
    assert data == b'{"a":1}\n---ATTUNE_PARAMS_END---\n{"token":"s3"}\n'


def test_stdin_without_secrets_has_no_secret_line() -> None:
    assert params.build_stdin("a='1'", delivery="stdin", secrets={}) == b"a='1'\n---ATTUNE_PARAMS_END---\n"


@pytest.mark.parametrize("empty", ["", "  ", "{}", "{}\n", "[]"])
def test_empty_params_put_secrets_on_the_first_line(empty: str) -> None:
    assert params.build_stdin(empty, delivery="stdin", secrets={"k": "v"}) == b'{"k":"v"}\n'


def test_file_delivery_sends_only_secrets_on_stdin() -> None:
    assert params.build_stdin('{"a":1}', delivery="file", secrets={"k": "v"}) == b'{"k":"v"}\n'
    assert params.build_stdin('{"a":1}', delivery="file", secrets={}) == b""


def test_param_file_is_read_only_for_the_owner(tmp_path: Path) -> None:
    path = params.write_param_file("a='1'", tmp_path)
    assert path.parent == tmp_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.read_text() == "a='1'"


def test_param_file_defaults_to_the_system_temp_dir() -> None:
    path = params.write_param_file("{}")
    try:
        assert path.parent == Path(tempfile.gettempdir())
        assert stat.S_IMODE(path.stat().st_mode) == 0o400
    finally:
        path.unlink()
