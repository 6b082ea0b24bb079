"""Execution policies: parsing ``policies/*.yaml`` and choosing the applicable limits."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from attune.db import models
from attune.executor.policies import Policy, PolicySet
from attune.packs.parser import PackFormatError, parse_pack_dir

# -- PolicySet ---------------------------------------------------------------------------------

ACTION, PACK, OTHER_ACTION, OTHER_PACK = 10, 1, 11, 2


def policy(
    id: int,
    *,
    action: int | None = None,
    pack: int | None = None,
    kind: str = "concurrency",
    threshold: int = 1,
    window: int | None = None,
    method: str = "enqueue",
) -> Policy:
    return Policy(
        id=id,
        kind=kind,
        threshold=threshold,
        window_seconds=window,
        method=method,
        action_id=action,
        pack_id=pack,
    )


def test_action_policy_beats_pack_and_global() -> None:
    policies = PolicySet(
        [
            policy(1, threshold=9),
            policy(2, pack=PACK, threshold=5),
            policy(3, action=ACTION, pack=OTHER_PACK, threshold=2),
        ]
    )
    chosen = policies.concurrency_for(ACTION, PACK)
    assert chosen is not None and chosen.id == 3
    # Another action of the same pack falls back to the pack-wide policy, a foreign one to global.
    assert policies.concurrency_for(OTHER_ACTION, PACK) == policy(2, pack=PACK, threshold=5)
    assert policies.concurrency_for(OTHER_ACTION, OTHER_PACK) == policy(1, threshold=9)


def test_no_concurrency_policy_means_unlimited() -> None:
    policies = PolicySet([policy(1, action=OTHER_ACTION), policy(2, pack=OTHER_PACK)])
    assert policies.concurrency_for(ACTION, PACK) is None
    # A rate limit is not a concurrency limit.
    assert PolicySet([policy(3, kind="rate_limit", window=60)]).concurrency_for(ACTION, PACK) is None


def test_lowest_threshold_wins_within_one_scope() -> None:
    policies = PolicySet([policy(1, pack=PACK, threshold=4), policy(2, pack=PACK, threshold=2)])
    chosen = policies.concurrency_for(ACTION, PACK)
    assert chosen is not None and chosen.threshold == 2


def test_rate_limits_are_listed_action_then_pack_then_global() -> None:
    policies = PolicySet(
        [
            policy(1, kind="rate_limit", window=60, threshold=100),
            policy(2, pack=PACK, kind="rate_limit", window=60, threshold=10),
            policy(3, action=ACTION, kind="rate_limit", window=60, threshold=1),
            policy(4, action=OTHER_ACTION, kind="rate_limit", window=60),
            policy(5, action=ACTION, threshold=3),
        ]
    )
    assert [p.id for p in policies.rate_limits_for(ACTION, PACK)] == [3, 2, 1]
    assert [p.id for p in policies.rate_limits_for(OTHER_ACTION, OTHER_PACK)] == [4, 1]


def test_from_rows_maps_columns_and_skips_policies_of_deleted_actions() -> None:
    rows = [
        models.Policy(
            id=1,
            ref="p.a",
            action=ACTION,
            action_ref="p.act",
            pack=PACK,
            method="cancel",
            threshold=2,
            kind="concurrency",
        ),
        # The action is gone (FK NULL, ref kept): the policy must not turn into a pack-wide one.
        models.Policy(
            id=2, ref="p.b", action=None, action_ref="p.gone", pack=PACK, method="enqueue", threshold=1
        ),
        models.Policy(
            id=3,
            ref="p.c",
            pack=PACK,
            method="enqueue",
            threshold=5,
            kind="rate_limit",
            window_seconds=30,
        ),
    ]
    policies = PolicySet.from_rows(rows)
    assert list(policies) == [
        policy(1, action=ACTION, pack=PACK, method="cancel", threshold=2),
        policy(3, pack=PACK, kind="rate_limit", window=30, threshold=5),
    ]
    assert policies.concurrency_for(OTHER_ACTION, PACK) is None


# -- policies/*.yaml ---------------------------------------------------------------------------


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "mypack"
    write(root, "pack.yaml", "ref: mypack\nversion: 1.0.0\n")
    write(root, "actions/deploy.yaml", "name: deploy\nentry_point: deploy.sh\n")
    (root / "actions" / "deploy.sh").write_text("true\n")
    return root


def test_policy_file_defaults(pack: Path) -> None:
    write(pack, "policies/one_deploy_at_a_time.yaml", "action: deploy\nthreshold: 1\n")
    (spec,) = parse_pack_dir(pack).policies
    assert spec.ref == "mypack.one_deploy_at_a_time"
    assert spec.name == "One Deploy At A Time"
    assert spec.action_ref == "mypack.deploy"
    assert (spec.kind, spec.method, spec.threshold, spec.window_seconds) == (
        "concurrency",
        "enqueue",
        1,
        None,
    )
    assert (spec.parameters, spec.tags, spec.description) == ([], [], "")
    assert spec.rel_path == "policies/one_deploy_at_a_time.yaml"


def test_rate_limit_policy_with_every_field(pack: Path) -> None:
    write(
        pack,
        "policies/limit.yaml",
        """\
        ref: mypack.burst
        name: Burst guard
        description: at most 5 runs a minute for the whole pack
        kind: rate_limit
        threshold: 5
        window_seconds: 60
        method: cancel
        parameters: [host]
        tags: [safety]
        """,
    )
    (spec,) = parse_pack_dir(pack).policies
    assert spec.ref == "mypack.burst"
    assert spec.name == "Burst guard"
    assert spec.action_ref is None
    assert (spec.kind, spec.threshold, spec.window_seconds, spec.method) == ("rate_limit", 5, 60, "cancel")
    assert (spec.parameters, spec.tags) == (["host"], ["safety"])


def test_policy_may_target_an_action_of_another_pack(pack: Path) -> None:
    write(pack, "policies/echo.yaml", "action: core.echo\nthreshold: 3\n")
    (spec,) = parse_pack_dir(pack).policies
    assert spec.action_ref == "core.echo"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("action: deploy\n", "policies/bad.yaml: missing required field 'threshold'"),
        ("threshold: 0\n", "policies/bad.yaml: threshold must be at least 1 (got 0)"),
        ("threshold: two\n", "policies/bad.yaml: threshold must be an integer (got string)"),
        ("threshold: 1\nkind: quota\n", "policies/bad.yaml: kind must be one of concurrency, rate_limit"),
        ("threshold: 1\nmethod: drop\n", "policies/bad.yaml: method must be one of"),
        (
            "threshold: 1\nkind: rate_limit\n",
            "policies/bad.yaml: missing required field 'window_seconds'",
        ),
        (
            "threshold: 1\nkind: rate_limit\nwindow_seconds: 0\n",
            "policies/bad.yaml: window_seconds must be at least 1",
        ),
        ("threshold: 1\nwindow_seconds: 10\n", "policies/bad.yaml: window_seconds only applies to"),
        ("threshold: 1\nparameters: host\n", "policies/bad.yaml: parameters must be a list"),
        ("threshold: 1\ntags: [1]\n", "policies/bad.yaml: tags[0] must be a string"),
        ("threshold: 1\naction: missing\n", "policies/bad.yaml: action 'mypack.missing' is not defined"),
        ("threshold: 1\nref: other.p\n", "policies/bad.yaml: ref 'other.p' must start with"),
        ("- threshold: 1\n", "policies/bad.yaml: must contain a YAML mapping"),
    ],
)
def test_malformed_policy_file_names_file_and_field(pack: Path, text: str, message: str) -> None:
    write(pack, "policies/bad.yaml", text)
    with pytest.raises(PackFormatError) as caught:
        parse_pack_dir(pack)
    assert caught.value.message.startswith(message), caught.value.message
