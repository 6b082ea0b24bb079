"""Grant parsing and matching (docs/security.md "Grants")."""

from __future__ import annotations

import pytest

from attune.domain.permissions import BUILTIN_SETS, Grant, GrantError, parse_grant, parse_grants


def test_manage_implies_every_action_and_star_every_resource() -> None:
    grant = parse_grant({"resource": "*", "actions": ["manage"]})
    assert grant.covers("keys", "delete") and grant.covers("identities", "create")
    rules = parse_grant({"resource": "rules", "actions": ["read"]})
    assert rules.covers("rules", "read") and not rules.covers("rules", "update")
    assert not rules.covers("actions", "read")


def test_constraints_limit_the_objects() -> None:
    grant = parse_grant(
        {"resource": "keys", "actions": ["read"], "constraints": {"packs": ["ops"], "owner": "self"}}
    )
    assert grant.admits(pack="ops", owner=7, identity_id=7)
    assert not grant.admits(pack="ops", owner=8, identity_id=7)
    assert not grant.admits(pack="dev", owner=7, identity_id=7)
    assert not grant.admits(pack=None, owner=7, identity_id=7)
    assert grant.as_dict() == {
        "resource": "keys",
        "actions": ["read"],
        "constraints": {"packs": ["ops"], "owner": "self"},
    }


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("rules", "object"),
        ({"resource": "nope", "actions": ["read"]}, "resource"),
        ({"resource": "rules", "actions": []}, "actions"),
        ({"resource": "rules", "actions": ["fly"]}, "action"),
        ({"resource": "rules", "actions": ["read"], "constraints": {"team": "x"}}, "constraint"),
        ({"resource": "rules", "actions": ["read"], "constraints": {"owner": "other"}}, "owner"),
        ({"resource": "rules", "actions": ["read"], "constraints": {"packs": "ops"}}, "packs"),
    ],
)
def test_malformed_grants_say_what_is_wrong(raw: object, fragment: str) -> None:
    with pytest.raises(GrantError, match=fragment):
        parse_grant(raw)


def test_the_built_in_sets_parse_and_the_viewer_only_reads() -> None:
    for spec in BUILTIN_SETS.values():
        parse_grants(spec["grants"])
    viewer: list[Grant] = parse_grants(BUILTIN_SETS["core.viewer"]["grants"])
    assert all(grant.actions == {"read"} for grant in viewer)
    assert not any(
        grant.covers("identities", "read") or grant.covers("permission_sets", "read") for grant in viewer
    )
    [keys] = [grant for grant in viewer if grant.resource == "keys"]
    assert keys.owner_self
