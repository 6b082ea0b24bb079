"""StackStorm's ActionChain (``runner_type: action-chain``) → a native document (docs/stackstorm.md).

``chain`` is a list of nodes ``{name, ref, parameters, on-success, on-failure, publish}``; the chain
starts at ``default`` (else the first node); ``vars`` are rendered at start. As in st2, a node's
result is reachable by the node's name (``{{ get_host.stdout }}``) and the chain's parameters and
variables by their bare names, so every node publishes its own result under its name first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune.workflow.dialects.convert import Problems, header, input_parameters, literal, ordered_pairs
from attune.workflow.model import WorkflowValidationError

__all__ = ["to_native"]


def to_native(
    doc: Mapping[str, Any], *, ref: str | None, parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Rewrite an action chain; raises WorkflowValidationError listing every problem."""
    problems = Problems()
    native = header(doc, ref, "action-chain", "1.0")
    schema = input_parameters(None, parameters, "parameters", problems)
    if schema is not None:
        native["parameters"] = schema
    native["vars"] = [{name: value} for name, value in ordered_pairs(doc.get("vars"), "vars", problems)]
    chain = doc.get("chain")
    if not isinstance(chain, list) or not chain:
        problems.add("", "chain must be a non-empty list of nodes")
        chain = []
    nodes = [node for node in chain if isinstance(node, Mapping) and isinstance(node.get("name"), str)]
    if len(nodes) != len(chain):
        problems.add("chain", "every node must be a mapping with a name")
    names = [str(node["name"]) for node in nodes]
    start = doc.get("default") or (names[0] if names else None)
    if start is not None and start not in names:
        problems.add("default", f"names no node of the chain ({start!r})")
    reachable = _reachable(nodes, start)
    native["tasks"] = [_node(node, problems) for node in nodes if node["name"] in reachable]
    if problems.items:
        raise WorkflowValidationError(problems.items)
    return native


def _reachable(nodes: list[Mapping[str, Any]], start: Any) -> set[str]:
    """Nodes reachable from the start node: st2 never runs the others, so they are dropped."""
    links = {
        str(node["name"]): [
            str(node[key]) for key in ("on-success", "on-failure") if isinstance(node.get(key), str)
        ]
        for node in nodes
    }
    seen: set[str] = set()
    stack = [start] if isinstance(start, str) else []
    while stack:
        name = stack.pop()
        if name in seen or name not in links:
            continue
        seen.add(name)
        stack.extend(links[name])
    return seen


def _node(node: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    name = str(node["name"])
    where = f"chain.{name}"
    task: dict[str, Any] = {"name": name, "type": "action"}
    action = node.get("ref")
    if not isinstance(action, str) or not action:
        problems.add(where, "ref (the action to run) is required")
    else:
        task["action"] = action
    parameters = node.get("parameters")
    if isinstance(parameters, Mapping):
        task["input"] = dict(parameters)
    elif parameters is not None:
        problems.add(where, "parameters must be a mapping")
    publish = [{name: "{{ result() }}"}]
    publish.extend(
        {key: literal(value)}
        for key, value in ordered_pairs(node.get("publish"), f"{where}.publish", problems)
    )
    transitions: list[dict[str, Any]] = []
    for key, when in (("on-success", "{{ succeeded() }}"), ("on-failure", "{{ failed() }}")):
        transition: dict[str, Any] = {"when": when, "publish": publish}
        target = node.get(key)
        if isinstance(target, str):
            transition["do"] = [target]
        elif target is not None:
            problems.add(where, f"{key} must be a node name")
        transitions.append(transition)
    task["next"] = transitions
    return task
