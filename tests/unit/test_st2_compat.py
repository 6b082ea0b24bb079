"""The StackStorm compatibility pieces: runner shim results, criteria operators, filters, key refs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attune import st2compat
from attune.cli import pack_index
from attune.domain import keyrefs
from attune.domain.criteria import matches
from attune.domain.templates import TemplateEngine
from attune.packs import st2
from attune.packs.parser import condition_problem

RUNNER = st2compat.IMPORT_ROOT / "runner.py"
ENGINE = TemplateEngine()


def shim(runner: str, pack: Path, entry: str, parameters: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run the shim as the worker does; the exit code and the result it printed."""
    stdin = json.dumps({"parameters": parameters, "config": {"greeting": "Hi"}, "positions": {"who": 0}})
    env = {**os.environ, "PYTHONPATH": str(st2compat.IMPORT_ROOT), "ATTUNE_ACTION": "demo.x"}
    done = subprocess.run(
        [sys.executable, str(RUNNER), runner, str(pack), entry],
        input=stdin + "\n---ATTUNE_PARAMS_END---\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_local_shell_cmd_gives_st2s_result_shape(tmp_path: Path) -> None:
    code, result = shim("local-shell-cmd", tmp_path, "", {"cmd": "echo out; echo err >&2; exit 3"})
    assert code == 1
    assert {k: result[k] for k in ("stdout", "stderr", "return_code", "succeeded", "failed")} == {
        "stdout": "out",
        "stderr": "err",
        "return_code": 3,
        "succeeded": False,
        "failed": True,
    }


def test_local_shell_script_gets_named_then_positional_arguments(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    script = tmp_path / "actions" / "args.sh"
    script.write_text('for a in "$@"; do echo "[$a]"; done\n')
    code, result = shim(
        "local-shell-script", tmp_path, "args.sh", {"who": "ada lovelace", "loud": True, "n": 2}
    )
    assert code == 0
    assert result["stdout"].splitlines() == ["[--loud]", "[--n=2]", "[ada lovelace]"]


def test_python_script_runs_the_action_class_with_its_config(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "hi.py").write_text(
        textwrap.dedent(
            """
            from st2common.runners.base_action import Action

            class Hi(Action):
                def run(self, who):
                    print("side output")
                    if who == "nobody":
                        return (False, "no one")
                    return "%s %s" % (self.config["greeting"], who)
            """
        )
    )
    code, result = shim("python-script", tmp_path, "hi.py", {"who": "Ada"})
    assert (code, result["result"], result["stdout"], result["exit_code"]) == (
        0,
        "Hi Ada",
        "side output\n",
        0,
    )
    code, result = shim("python-script", tmp_path, "hi.py", {"who": "nobody"})
    assert (code, result["result"], result["exit_code"]) == (1, "no one", 1)


def test_a_python_action_that_raises_fails_with_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "boom.py").write_text(
        "from st2common.runners.base_action import Action\n\n"
        "class B(Action):\n    def run(self):\n        1 / 0\n"
    )
    code, result = shim("python-script", tmp_path, "boom.py", {})
    assert code == 1
    assert "ZeroDivisionError" in result["stderr"]


@pytest.mark.parametrize(
    ("criteria", "payload", "expected"),
    [
        ({"trigger.n": {"type": "greaterthan", "pattern": 1}}, {"n": 2}, True),
        ({"trigger.n": {"type": "lessthan", "pattern": 1}}, {"n": 2}, False),
        ({"trigger.s": {"type": "nequals", "pattern": "a"}}, {"s": "b"}, True),
        ({"trigger.s": {"type": "matchwildcard", "pattern": "web-*"}}, {"s": "web-1"}, True),
        ({"trigger.s": {"type": "iregex", "pattern": "^WEB"}}, {"s": "web-1"}, True),
        ({"trigger.s": {"type": "ncontains", "pattern": "db"}}, {"s": "web-1"}, True),
        ({"trigger.s": {"type": "inside", "pattern": ["a", "b"]}}, {"s": "b"}, True),
        ({"trigger.s": {"type": "istartswith", "pattern": "WE"}}, {"s": "web"}, True),
        ({"trigger.s": {"type": "nexists"}}, {"t": 1}, True),
    ],
)
def test_st2_criteria_operators(criteria: dict[str, Any], payload: dict[str, Any], expected: bool) -> None:
    conditions = st2.criteria_to_conditions(criteria)
    assert matches(conditions, payload, engine=ENGINE, context={}) is expected


def test_timediff_criteria() -> None:
    recent = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    conditions = st2.criteria_to_conditions({"trigger.at": {"type": "timediff_lt", "pattern": 300}})
    assert matches(conditions, {"at": recent}, engine=ENGINE, context={}) is True


# Times are taken when the test runs, not when it is collected (a long suite outlives 300 s).
_OLD = "<two hours ago>"
_NOW = "<now>"


def _when(value: Any) -> Any:
    if value == _OLD:
        return (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    if value == _NOW:
        return datetime.now(UTC).isoformat()
    return value


@pytest.mark.parametrize(
    ("kind", "pattern", "value", "expected"),
    [
        # every operator of StackStorm's rule criteria, with its short alias where st2 has one
        ("equals", "a", "a", True),
        ("eq", "a", "b", False),
        ("nequals", "a", "b", True),
        ("neq", "a", "a", False),
        ("iequals", "ABC", "abc", True),
        ("ieq", "ABC", "abd", False),
        ("lessthan", 5, 3, True),
        ("lt", 5, 7, False),
        ("greaterthan", 5, 7, True),
        ("gt", 5, 3, False),
        ("matchwildcard", "web-?", "web-1", True),
        ("matchregex", r"^web-\d$", "web-12", False),
        ("regex", r"b-\d+", "web-12", True),
        ("iregex", "^WEB", "db-1", False),
        ("contains", "eb", "web", True),
        ("ncontains", "eb", "web", False),
        ("icontains", "EB", "web", True),
        ("incontains", "EB", "web", False),
        ("startswith", "we", "web", True),
        ("istartswith", "WE", "db", False),
        ("endswith", "eb", "web", True),
        ("iendswith", "EB", "web", True),
        ("timediff_lt", 300, _NOW, True),
        ("td_lt", 300, _OLD, False),
        ("timediff_gt", 300, _OLD, True),
        ("td_gt", 300, _NOW, False),
        ("timediff_nlt", 300, _OLD, True),
        ("timediff_ngt", 300, _OLD, False),
        ("inside", ["a", "b"], "b", True),
        ("in", "abc", "bc", True),
        ("ninside", ["a", "b"], "b", False),
        ("nin", ["a", "b"], "c", True),
    ],
)
def test_every_st2_criteria_operator(kind: str, pattern: Any, value: Any, expected: bool) -> None:
    conditions = st2.criteria_to_conditions({"trigger.f": {"type": kind, "pattern": pattern}})
    assert matches(conditions, {"f": _when(value)}, engine=ENGINE, context={}) is expected


def test_exists_criteria() -> None:
    conditions = st2.criteria_to_conditions({"trigger.f": {"type": "exists"}})
    assert matches(conditions, {"f": None}, engine=ENGINE, context={}) is True
    assert matches(conditions, {"g": 1}, engine=ENGINE, context={}) is False


# st2's own example for ``search``: a Jira-like change list
_FIELDS = {
    "fields": [
        {"field_name": "Status", "to_value": "Approved"},
        {"field_name": "Assignee", "to_value": "Ada"},
    ]
}
_SEARCH_PATTERN = {
    "item.field_name": {"type": "equals", "pattern": "Status"},
    "item.to_value": {"type": "equals", "pattern": "Approved"},
}


@pytest.mark.parametrize(
    ("condition", "pattern", "expected"),
    [
        ("any", _SEARCH_PATTERN, True),  # the Status item matches both
        ("all", _SEARCH_PATTERN, False),  # the Assignee item does not
        ("any2any", {"item.to_value": {"type": "equals", "pattern": "Ada"}}, True),
        ("all2any", _SEARCH_PATTERN, False),  # Assignee matches neither criterion
        (
            "all2any",
            {
                "item.field_name": {"type": "equals", "pattern": "Status"},
                "item.to_value": {"type": "startswith", "pattern": "A"},
            },
            True,
        ),
        ("all", {"item.to_value": {"type": "matchregex", "pattern": "^A"}}, True),
        ("any", {"item.missing": {"type": "equals", "pattern": 1}}, False),  # missing → no match
    ],
)
def test_search_criteria(condition: str, pattern: dict[str, Any], expected: bool) -> None:
    conditions = st2.criteria_to_conditions(
        {"trigger.fields": {"type": "search", "condition": condition, "pattern": pattern}}
    )
    assert matches(conditions, _FIELDS, engine=ENGINE, context={}) is expected


def test_search_over_an_empty_list_follows_st2() -> None:
    def run(condition: str) -> bool:
        conditions = st2.criteria_to_conditions(
            {"trigger.fields": {"type": "search", "condition": condition, "pattern": _SEARCH_PATTERN}}
        )
        return matches(conditions, {"fields": []}, engine=ENGINE, context={})

    assert (run("any"), run("all"), run("any2any"), run("all2any")) == (False, True, False, True)


def test_search_with_a_bad_condition_is_refused_at_registration() -> None:
    conditions = st2.criteria_to_conditions(
        {"trigger.fields": {"type": "search", "condition": "some", "pattern": _SEARCH_PATTERN}}
    )
    problem = condition_problem(conditions, "conditions")
    assert problem is not None and "any2any" in problem
    good = st2.criteria_to_conditions(
        {"trigger.fields": {"type": "search", "condition": "any", "pattern": _SEARCH_PATTERN}}
    )
    assert condition_problem(good, "conditions") is None


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ value | to_json_string }}", '{"a":[1,2]}'),
        ("{{ 'a-b' | regex_replace('-', '_') }}", "a_b"),
        ("{{ 'abc' | regex_match('a.c') }}", True),
        ("{{ '1.2.3' | version_bump_major }}", "2.0.0"),
        ("{{ '1.2.3' | version_match('>=1.2.0') }}", True),
        ("{{ 'say \"hi\"' | json_escape }}", 'say \\"hi\\"'),
    ],
)
def test_st2_jinja_filters(template: str, expected: Any) -> None:
    assert ENGINE.render_value(template, {"value": {"a": [1, 2]}}) == expected


def test_key_references_are_found_in_every_spelling() -> None:
    texts = [
        "{{ key.system.region }}",
        "{{ st2kv.pack.token | decrypt_kv }}",
        "<% st2kv('user.mail') %>",
        "{{ key.system['with-dash'] }}",
        "{{ keyboard.system.x }}",
    ]
    assert keyrefs.referenced(texts) == {
        ("system", "region"),
        ("pack", "token"),
        ("user", "mail"),
        ("system", "with-dash"),
    }


def test_decrypted_values_are_split_from_stored_parameters() -> None:
    namespace = keyrefs.KeyNamespace(
        {("system", "pw"): keyrefs.KeyValue("CIPHER", True)}, opener=lambda key: "plain-pw"
    )
    rendered = ENGINE.render_value(
        {
            "auth": "user:{{ key.system.pw | decrypt_kv }}",
            "secret_param": "{{ key.system.pw }}",
            "other": "x",
        },
        {"key": namespace},
    )
    public, revealed = keyrefs.split_revealed(rendered, {"secret_param"}, namespace.revealed)
    assert public == {"auth": "********", "secret_param": "********", "other": "x"}
    assert revealed == {"auth": "user:plain-pw", "secret_param": "plain-pw"}


def test_the_cli_reads_a_stackstorm_pack_yaml(tmp_path: Path) -> None:
    """Before: "'ref' field not found in pack.yaml" for StackStorm's own examples pack."""
    (tmp_path / "pack.yaml").write_text("name: examples\nversion: 1.0.0\ndescription: st2 examples\n")
    assert pack_index.read_pack_yaml(tmp_path)["ref"] == "examples"


@pytest.mark.parametrize(
    ("trigger_type", "params", "expected"),
    [
        (
            "core.st2.IntervalTimer",
            {"unit": "seconds", "delta": 30},
            ("core.intervaltimer", {"unit": "seconds", "interval": 30}),
        ),
        (
            "core.st2.IntervalTimer",
            {"unit": "days", "delta": 2},
            ("core.intervaltimer", {"unit": "hours", "interval": 48}),
        ),
        (
            "core.st2.IntervalTimer",
            {"unit": "weeks", "delta": 1},
            ("core.intervaltimer", {"unit": "hours", "interval": 168}),
        ),
        # APScheduler's rule: finer fields than the finest given take their minimum, coarser are "*"
        ("core.st2.CronTimer", {"hour": 3}, ("core.crontimer", {"expression": "0 0 3 * * *"})),
        (
            "core.st2.CronTimer",
            {"minute": "*/5", "day_of_week": "0-4", "timezone": "Europe/Paris"},
            ("core.crontimer", {"expression": "0 */5 * * * MON-FRI", "timezone": "Europe/Paris"}),
        ),
        ("core.st2.CronTimer", {"day_of_week": 6}, ("core.crontimer", {"expression": "0 0 0 * * SUN"})),
        ("core.st2.CronTimer", {}, ("core.crontimer", {"expression": "* * * * * *"})),
        (
            "core.st2.DateTimer",
            {"date": "2030-12-31 23:59:59", "timezone": "UTC"},
            ("core.datetimetimer", {"fire_at": "2030-12-31T23:59:59", "timezone": "UTC"}),
        ),
    ],
)
def test_st2_timer_triggers_map_onto_attunes_timers(
    trigger_type: str, params: dict[str, Any], expected: tuple[str, dict[str, Any]]
) -> None:
    assert st2.st2_trigger(trigger_type, params) == expected


@pytest.mark.parametrize(
    ("trigger_type", "params", "reason"),
    [
        ("core.st2.webhook", {"url": "sample"}, "generated key"),
        ("core.st2.CronTimer", {"year": 2030}, "'year'"),
        ("core.st2.CronTimer", {"day": "last fri"}, "cannot evaluate"),
        ("core.st2.IntervalTimer", {"unit": "fortnights", "delta": 1}, "unit"),
        ("core.st2.generic.actiontrigger", {}, "no Attune equivalent"),
    ],
)
def test_unmappable_st2_triggers_say_why(trigger_type: str, params: dict[str, Any], reason: str) -> None:
    with pytest.raises(st2.Unsupported, match=reason):
        st2.st2_trigger(trigger_type, params)
