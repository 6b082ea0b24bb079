"""Pack-directory parser: the core pack, strict rejection of malformed files, derived values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from attune.domain import refs
from attune.errors import BadRequest, ValidationFailed
from attune.packs.parser import PackFormatError, PackNotFoundError, parse_pack_dir, resolve_runner

CORE = Path(__file__).resolve().parents[2] / "packs" / "core"

PACK_YAML = """\
ref: mypack
version: 1.2.3
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "mypack"
    write(root, "pack.yaml", PACK_YAML)
    return root


def reject(root: Path) -> str:
    with pytest.raises(PackFormatError) as caught:
        parse_pack_dir(root)
    assert isinstance(caught.value, ValidationFailed)
    return caught.value.message


# -- the core pack ---------------------------------------------------------------------------


def test_core_pack_parses_with_all_components() -> None:
    parsed = parse_pack_dir(CORE)
    assert parsed.pack.ref == "core"
    assert parsed.pack.label == "Core Pack"
    assert parsed.pack.version == "1.0.0"
    assert parsed.pack.system is True
    assert parsed.pack.config == {"max_action_timeout": 300, "enable_debug_logging": False}
    assert parsed.pack.testing is not None and parsed.pack.testing["on_failure"] == "block"
    assert len(parsed.actions) == 16  # 9 Attune actions and 7 StackStorm core actions
    assert [t.ref for t in parsed.triggers] == ["core.crontimer", "core.datetimetimer", "core.intervaltimer"]
    assert [s.ref for s in parsed.sensors] == ["core.interval_timer_sensor"]
    assert [r.ref for r in parsed.runtimes] == [
        "core.native",
        "core.nodejs",
        "core.python",
        "core.shell",
        "core.stackstorm",
    ]
    assert parsed.warnings == []


def test_core_runtimes_carry_versions_with_one_default() -> None:
    runtimes = {r.ref: r for r in parse_pack_dir(CORE).runtimes}
    python = runtimes["core.python"]
    assert [(v.version, v.is_default) for v in python.versions] == [
        ("3.11", False),
        ("3.12", True),
        ("3.13", False),
    ]
    assert (python.versions[1].major, python.versions[1].minor, python.versions[1].patch) == (3, 12, 0)
    assert python.versions[1].execution_config["interpreter"]["binary"] == "python3.12"
    nodejs = runtimes["core.nodejs"]
    assert [v.version for v in nodejs.versions if v.is_default] == ["20"]
    assert nodejs.versions[0].meta == {"lts_codename": "hydrogen", "eol": "2025-04-30"}
    assert runtimes["core.shell"].versions == []
    assert runtimes["core.shell"].execution_config["interpreter"]["binary"] == "/bin/bash"
    assert runtimes["core.native"].execution_config == {}


def test_core_actions_are_shell_with_dotenv_stdin() -> None:
    actions = {a.ref: a for a in parse_pack_dir(CORE).actions}
    st2_names = {"core.local", "core.local_sudo", "core.http", "core.pause", "core.uuid", "core.error"}
    st2_names.add("core.inject_trigger")
    for ref in st2_names:
        assert actions.pop(ref).runtime_ref == "core.stackstorm"  # StackStorm's core actions
    for action in actions.values():
        assert action.runtime_ref == "core.shell"
        # core.ask (an Attune extension) takes JSON: its response_schema object must arrive intact.
        expected_format = "json" if action.ref == "core.ask" else "dotenv"
        assert (action.parameter_delivery, action.parameter_format) == ("stdin", expected_format)
        assert (CORE / "actions" / action.entrypoint).is_file()
    http = actions["core.http_request"]
    assert http.label == "HTTP Request"
    assert http.output_format == "json"
    assert http.out_schema is not None and "status_code" in http.out_schema
    assert actions["core.noop"].label == "No-Op"


def test_core_sensor_links_all_timer_triggers() -> None:
    sensor = parse_pack_dir(CORE).sensors[0]
    assert sensor.runtime_ref == "core.native"
    assert sensor.entrypoint == "attune-core-timer-sensor"
    assert sensor.trigger_refs == ["core.intervaltimer", "core.crontimer", "core.datetimetimer"]


# -- refs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", (3, 0, 0)),
        ("3.12", (3, 12, 0)),
        ("v3.12.1", (3, 12, 1)),
        ("1.2.3.4", (1, 2, 3)),
        ("3.13.0-rc1+b5", (3, 13, 0)),
        (" 20 ", (20, 0, 0)),
        ("abc", None),
        ("", None),
        ("3.x", None),
    ],
)
def test_lenient_version_parse(text: str, expected: tuple[int, int, int] | None) -> None:
    assert refs.parse_version_lenient(text) == expected


def test_ref_predicates() -> None:
    assert refs.is_pack_ref("my-pack_2") and not refs.is_pack_ref("a") and not refs.is_pack_ref("1pack")
    assert refs.is_component_ref("core.echo")
    assert not refs.is_component_ref("core.Echo") and not refs.is_component_ref("core.a.b")
    assert refs.is_key_ref("a.b.c") and not refs.is_key_ref("a..b") and not refs.is_key_ref("A.b")
    assert (
        refs.is_semver("1.0.0-alpha.1+build.5") and not refs.is_semver("1.0") and not refs.is_semver("01.0.0")
    )
    assert refs.label_from_name("http_request") == "Http Request"


# -- missing pack ---------------------------------------------------------------------------


def test_missing_pack_yaml_is_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(PackNotFoundError) as caught:
        parse_pack_dir(tmp_path)
    assert isinstance(caught.value, BadRequest)
    assert caught.value.message == f"pack.yaml not found in {tmp_path}"


def test_missing_directory_is_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(PackNotFoundError, match="Pack directory does not exist"):
        parse_pack_dir(tmp_path / "nope")


# -- malformed files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "text", "message"),
    [
        ("pack.yaml", "ref: mypack\n", "pack.yaml: missing required field 'version'"),
        ("pack.yaml", "version: 1.0.0\n", "pack.yaml: missing required field 'ref'"),
        ("pack.yaml", "ref: mypack\nversion: '1.0'\n", "pack.yaml: version must be a semantic version"),
        ("pack.yaml", "ref: My.Pack\nversion: 1.0.0\n", "pack.yaml: ref must match"),
        ("pack.yaml", "- just\n- a list\n", "pack.yaml: must contain a YAML mapping (got list)"),
        (
            "pack.yaml",
            "ref: mypack\nversion: 1.0.0\nconf_schema:\n  n: {type: integer, maximum: 3}\nconfig: {n: 5}\n",
            "pack.yaml: config does not match conf_schema: 5 is greater than the maximum of 3 at /n",
        ),
        (
            "actions/echo.yaml",
            "ref: mypack.echo\nparameter_format: xml\n",
            "actions/echo.yaml: parameter_format must be one of dotenv, json, yaml (got 'xml')",
        ),
        (
            "actions/echo.yaml",
            "ref: mypack.echo\noutput_format: csv\n",
            "actions/echo.yaml: output_format must be one of text, json, yaml, jsonl (got 'csv')",
        ),
        (
            "actions/a.yaml",
            "ref: other.a\n",
            "actions/a.yaml: ref 'other.a' must start with the pack ref 'mypack.'",
        ),
        ("actions/a.yaml", "ref: mypack.a.b\n", "actions/a.yaml: ref 'mypack.a.b' must be '<pack>.<name>'"),
        (
            "actions/a.yaml",
            "ref: mypack.a\nparameters:\n  n:\n    type: strin\n",
            "actions/a.yaml: invalid parameter schema at parameters.n.type",
        ),
        (
            "actions/a.yaml",
            "ref: mypack.a\nparameters:\n  n: string\n",
            "actions/a.yaml: parameters.n must be a mapping (got string)",
        ),
        ("actions/a.yaml", "ref: mypack.a\ntimeout: soon\n", "actions/a.yaml: timeout must be an integer"),
        (
            "triggers/x.yaml",
            "ref: mypack.x\nlabel: X\ndescription: a: b\n",
            "triggers/x.yaml: YAML syntax error at line 3",
        ),
        ("triggers/x.yaml", "just a string\n", "triggers/x.yaml: must contain a YAML mapping (got string)"),
        ("triggers/x.yaml", "", "triggers/x.yaml: must contain a YAML mapping (got null)"),
        (
            "triggers/x.yaml",
            "ref: mypack.x\nenabled: maybe\n",
            "triggers/x.yaml: enabled must be true or false",
        ),
        (
            "runtimes/ruby.yaml",
            "ref: mypack.ruby\nversions:\n  - is_default: true\n",
            "runtimes/ruby.yaml: missing required field 'versions[0].version'",
        ),
        (
            "runtimes/ruby.yaml",
            "ref: mypack.ruby\nversions: [{version: '3', is_default: true},"
            " {version: '4', is_default: true}]\n",
            "runtimes/ruby.yaml: versions: at most one version may have is_default: true",
        ),
        (
            "runtimes/ruby.yaml",
            "ref: mypack.ruby\nexecution_config:\n  environment: {env_type: conda}\n",
            "runtimes/ruby.yaml: execution_config.environment.env_type must be one of",
        ),
        (
            "sensors/s.yaml",
            "ref: mypack.s\ntrigger_types: [missing]\n",
            "sensors/s.yaml: trigger_types: trigger 'mypack.missing' is not defined in this pack",
        ),
        ("sensors/s.yaml", "ref: mypack.s\n", "sensors/s.yaml: missing required field 'trigger_types'"),
        (
            "rules/r.yaml",
            "ref: mypack.r\naction_ref: other.a\n",
            "rules/r.yaml: missing required field 'trigger_ref'",
        ),
    ],
)
def test_malformed_file_rejects_the_pack(pack: Path, rel: str, text: str, message: str) -> None:
    write(pack, rel, text)
    assert reject(pack).startswith(message)


def test_duplicate_ref_names_both_files(pack: Path) -> None:
    write(pack, "actions/a.yaml", "ref: mypack.same\n")
    write(pack, "actions/b.yaml", "ref: mypack.same\n")
    assert (
        reject(pack) == "actions/b.yaml: duplicate action ref 'mypack.same' (also defined in actions/a.yaml)"
    )


def test_rule_params_are_validated_against_pack_action(pack: Path) -> None:
    write(pack, "triggers/t.yaml", "ref: mypack.t\n")
    write(pack, "actions/a.yaml", "ref: mypack.a\nparameters:\n  n: {type: integer, required: true}\n")
    write(pack, "rules/r.yaml", "trigger_ref: t\naction_ref: a\naction_params: {n: 'x'}\n")
    assert reject(pack) == (
        "rules/r.yaml: Invalid parameters for action 'mypack.a': 'x' is not of type 'integer' at /n"
    )


def test_rule_with_templates_and_conditions_parses(pack: Path) -> None:
    write(pack, "triggers/t.yaml", "ref: mypack.t\n")
    write(pack, "actions/a.yaml", "ref: mypack.a\nparameters:\n  n: {type: integer, required: true}\n")
    write(
        pack,
        "rules/on_t.yaml",
        """\
        trigger_ref: mypack.t
        action_ref: a
        action_params: {n: "{{ event.payload.n }}"}
        conditions:
          - {field: status, operator: EQUALS, value: ok}
        """,
    )
    (rule,) = parse_pack_dir(pack).rules
    assert (rule.ref, rule.label, rule.trigger_ref, rule.action_ref) == (
        "mypack.on_t",
        "On T",
        "mypack.t",
        "mypack.a",
    )
    assert rule.action_params == {"n": "{{ event.payload.n }}"}
    assert rule.conditions == [{"field": "status", "operator": "EQUALS", "value": "ok"}]
    assert rule.enabled is True


def test_rule_conditions_accept_groups_and_expressions(pack: Path) -> None:
    write(pack, "triggers/t.yaml", "ref: mypack.t\n")
    write(pack, "actions/a.yaml", "ref: mypack.a\n")
    write(
        pack,
        "rules/r.yaml",
        """\
        trigger_ref: mypack.t
        action_ref: mypack.a
        conditions:
          any:
            - {field: level, operator: iequals, value: HIGH}
            - all:
                - {field: count, operator: gt, value: 3}
                - expression: "{{ event.payload.env == 'prod' }}"
        """,
    )
    (rule,) = parse_pack_dir(pack).rules
    assert rule.conditions["any"][0]["operator"] == "iequals"


def test_rule_with_an_unknown_operator_is_rejected(pack: Path) -> None:
    write(pack, "triggers/t.yaml", "ref: mypack.t\n")
    write(pack, "actions/a.yaml", "ref: mypack.a\n")
    write(
        pack,
        "rules/r.yaml",
        "trigger_ref: mypack.t\naction_ref: mypack.a\n"
        "conditions:\n  - {field: x, operator: approx, value: 1}\n",
    )
    with pytest.raises(PackFormatError, match=r"rules/r\.yaml: conditions\[0\]\.operator must be one of"):
        parse_pack_dir(pack)


# -- derived values -------------------------------------------------------------------------


def test_missing_ref_is_derived_from_name_then_file_stem(pack: Path) -> None:
    write(pack, "actions/first.yaml", "name: greet\n")
    write(pack, "actions/second_one.yaml", "description: no name\n")
    actions = parse_pack_dir(pack).actions
    assert [(a.ref, a.label) for a in actions] == [
        ("mypack.greet", "Greet"),
        ("mypack.second_one", "Second One"),
    ]


def test_pack_label_defaults(tmp_path: Path) -> None:
    write(tmp_path, "pack.yaml", "ref: mypack\nversion: 1.0.0\nname: Legacy Name\n")
    assert parse_pack_dir(tmp_path).pack.label == "Legacy Name"
    write(tmp_path, "pack.yaml", PACK_YAML)
    assert parse_pack_dir(tmp_path).pack.label == "mypack"


def test_action_fields_are_normalised(pack: Path) -> None:
    write(pack, "actions/echo.py", "print('x')\n")
    write(
        pack,
        "actions/echo.yaml",
        """\
        name: echo
        runner_type: Python3
        entry_point: actions/echo.py
        runtime_version: 3.12
        parameter_delivery: FILE
        parameter_format: YAML
        output_format: JSONL
        timeout: 30
        output: {n: {type: integer}}
        """,
    )
    (action,) = parse_pack_dir(pack).actions
    assert action.runtime_ref == "core.python"
    assert action.entrypoint == "echo.py"
    assert action.runtime_version_constraint == "3.12"
    assert (action.parameter_delivery, action.parameter_format, action.output_format) == (
        "file",
        "yaml",
        "jsonl",
    )
    assert action.timeout_seconds == 30
    assert action.out_schema == {"n": {"type": "integer"}}


def test_unquoted_versions_keep_their_text(tmp_path: Path) -> None:
    write(tmp_path, "pack.yaml", "ref: mypack\nversion: 1.0.0\npython: 3.10\n")
    write(tmp_path, "actions/a.yaml", "runtime_version: 3.10\n")
    write(tmp_path, "runtimes/py.yaml", "versions: [{version: 3.10}, {version: 3}]\n")
    parsed = parse_pack_dir(tmp_path)
    assert parsed.pack.python == "3.10"
    assert parsed.actions[0].runtime_version_constraint == "3.10"
    versions = parsed.runtimes[0].versions
    assert [(v.version, v.major, v.minor, v.patch) for v in versions] == [("3.10", 3, 10, 0), ("3", 3, 0, 0)]


def test_output_schema_wins_over_output(pack: Path) -> None:
    write(pack, "actions/a.yaml", "output_schema: {a: {type: string}}\noutput: {b: {type: string}}\n")
    assert parse_pack_dir(pack).actions[0].out_schema == {"a": {"type": "string"}}


@pytest.mark.parametrize(
    ("runner", "expected"),
    [
        ("bash", "core.shell"),
        ("SH", "core.shell"),
        ("node.js", "core.nodejs"),
        ("builtin", "core.native"),
        ("mypack.ruby", "mypack.ruby"),
    ],
)
def test_runner_resolution(runner: str, expected: str) -> None:
    assert resolve_runner(runner) == expected


def test_unknown_runner_is_kept_with_a_warning(pack: Path) -> None:
    write(pack, "actions/a.yaml", "runner_type: ruby\nentry_point: a.rb\n")
    parsed = parse_pack_dir(pack)
    assert parsed.actions[0].runtime_ref == "ruby"
    assert "actions/a.yaml: runner_type 'ruby' is not a known alias" in parsed.warnings[0]
    assert "actions/a.yaml: entry_point 'a.rb' not found in actions/" in parsed.warnings


def test_sensor_single_trigger_type_is_qualified(pack: Path) -> None:
    write(pack, "triggers/tick.yaml", "description: t\n")
    write(pack, "sensors/s.yaml", "trigger_type: tick\nconfig: {a: 1}\n")
    (sensor,) = parse_pack_dir(pack).sensors
    assert sensor.trigger_refs == ["mypack.tick"]
    assert sensor.runtime_ref == "core.native"
    assert sensor.config == {"a": 1}


def test_only_yaml_files_directly_in_component_dirs_load_sorted(pack: Path) -> None:
    write(pack, "triggers/b.yml", "description: b\n")
    write(pack, "triggers/a.yaml", "description: a\n")
    write(pack, "triggers/c.txt", "not: metadata\n")
    write(pack, "triggers/sub/d.yaml", "description: nested\n")
    assert [t.ref for t in parse_pack_dir(pack).triggers] == ["mypack.a", "mypack.b"]


def test_components_load_in_dependency_order(pack: Path) -> None:
    # A sensor may name a trigger of its own pack because triggers load before sensors,
    # whatever the file names.
    write(pack, "triggers/zz.yaml", "description: last by name\n")
    write(pack, "sensors/aa.yaml", "trigger_types: [zz]\n")
    assert parse_pack_dir(pack).sensors[0].trigger_refs == ["mypack.zz"]


def test_workflows_from_both_locations(pack: Path) -> None:
    write(pack, "workflows/deploy.yaml", "ref: mypack.deploy\nlabel: Deploy\n")
    write(pack, "actions/workflows/build.workflow.yaml", "label: Build\n")
    workflows = parse_pack_dir(pack).workflows
    assert [(w.ref, w.rel_path) for w in workflows] == [
        ("mypack.deploy", "workflows/deploy.yaml"),
        ("mypack.build", "actions/workflows/build.workflow.yaml"),
    ]
    assert workflows[0].raw == {"ref": "mypack.deploy", "label": "Deploy"}


def test_workflow_name_in_both_locations_is_rejected(pack: Path) -> None:
    write(pack, "workflows/deploy.yaml", "label: A\n")
    write(pack, "actions/workflows/deploy.workflow.yaml", "label: B\n")
    assert reject(pack) == (
        "actions/workflows/deploy.workflow.yaml: workflow 'deploy' is also defined in workflows/deploy.yaml"
    )


def test_workflow_and_action_cannot_share_a_ref(pack: Path) -> None:
    write(pack, "actions/deploy.yaml", "description: action\n")
    write(pack, "workflows/deploy.yaml", "label: A\n")
    assert "workflows/deploy.yaml: workflow 'mypack.deploy' has the same ref as the action" in reject(pack)


def test_pack_config_gets_schema_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        "pack.yaml",
        """\
        ref: mypack
        version: 1.0.0
        conf_schema:
          a: {type: integer, default: 1}
          b: {type: string}
        config: {b: x}
        """,
    )
    assert parse_pack_dir(tmp_path).pack.config == {"a": 1, "b": "x"}
