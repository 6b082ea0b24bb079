"""Inquiry requests, answer validation and the core.ask script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from attune.operations.inquiry_requests import (
    InvalidInquiryRequest,
    parse_request,
    requested,
    response_errors,
)

ASK = Path(__file__).resolve().parents[2] / "packs" / "core" / "actions" / "ask.sh"


def test_request_is_found_in_parsed_output_or_at_the_top_level() -> None:
    assert requested({"data": {"__inquiry": {"prompt": "a"}}}) == {"prompt": "a"}
    assert requested({"__inquiry": {"prompt": "b"}, "data": [1]}) == {"prompt": "b"}
    assert requested({"data": {"answer": 1}}) is None
    assert requested("text") is None


def test_parse_request_accepts_the_documented_fields() -> None:
    request = parse_request(
        {
            "prompt": "Go?",
            "response_schema": {"ok": {"type": "boolean"}},
            "assigned_to": "bob",
            "timeout_seconds": 2,
        }
    )
    assert request.prompt == "Go?" and request.assigned_to == "bob" and request.timeout_seconds == 2.0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("Go?", "must be an object"),
        ({}, "prompt is required"),
        ({"prompt": "x", "response_schema": [1]}, "response_schema must be an object"),
        ({"prompt": "x", "response_schema": {"ok": {"type": "nonsense"}}}, "not a valid schema"),
        ({"prompt": "x", "assigned_to": True}, "assigned_to"),
        ({"prompt": "x", "timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_parse_request_rejects_malformed_requests(raw: object, fragment: str) -> None:
    with pytest.raises(InvalidInquiryRequest, match=fragment):
        parse_request(raw)


def test_answers_are_checked_against_flat_and_plain_schemas() -> None:
    flat = {"approved": {"type": "boolean", "required": True}}
    assert response_errors({"approved": False}, flat) == []
    assert response_errors({"approved": "no"}, flat) == ["'no' is not of type 'boolean' at /approved"]
    assert response_errors({}, flat) == ["'approved' is a required property"]
    assert response_errors("yes", {"type": "boolean"}) == ["'yes' is not of type 'boolean' at /response"]
    assert response_errors(True, {"type": "boolean"}) == []
    assert response_errors({"anything": 1}, None) == []


def test_core_ask_prints_its_parameters_as_the_inquiry_request() -> None:
    params = {"prompt": "Ship it?", "response_schema": {"ok": {"type": "boolean"}}, "assigned_to": 3}
    stdin = json.dumps(params, separators=(",", ":")) + "\n---ATTUNE_PARAMS_END---\n"
    done = subprocess.run(["/bin/bash", str(ASK)], input=stdin, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {"__inquiry": params}
