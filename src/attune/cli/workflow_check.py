"""Local checks of a workflow YAML file (docs/workflows.md), run by ``attune workflow validate``.

This mirrors the parse-time rules and the semantic rules that need no server: field types and
lengths, task names (unique, not reserved), transition targets, action refs, retry bounds,
``vars`` names and reachability from the entry tasks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from attune.domain import safe_yaml

RESERVED = {"parameters", "vars", "task", "system", "kv", "pack", "item", "batch", "index"}
VAR_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
LEGACY_TARGETS = ("on_success", "on_failure", "on_complete", "on_timeout")
MAX_FILE_BYTES = 1024 * 1024


def _text(doc: dict[str, Any], key: str, limit: int, errors: list[str], where: str = "") -> None:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        errors.append(f"{where}{key}: required, a non-empty string")
    elif len(value) > limit:
        errors.append(f"{where}{key}: at most {limit} characters")


def _targets(task: dict[str, Any], where: str, errors: list[str]) -> list[str]:
    """Every task name a task can transition to (``next[].do`` and the legacy fields)."""
    found: list[str] = []
    nxt = task.get("next")
    if nxt is not None and not isinstance(nxt, list):
        errors.append(f"{where}.next: must be a list")
        nxt = []
    for i, transition in enumerate(nxt or []):
        if not isinstance(transition, dict):
            errors.append(f"{where}.next[{i}]: must be a mapping")
            continue
        do = transition.get("do")
        if do is not None and not isinstance(do, list):
            errors.append(f"{where}.next[{i}].do: must be a list of task names")
        elif do:
            found.extend(str(x) for x in do)
        publish = transition.get("publish")
        if publish is not None and not isinstance(publish, list):
            errors.append(f"{where}.next[{i}].publish: must be a list")
        for entry in publish or []:
            if isinstance(entry, dict) and not all(isinstance(v, str) for v in entry.values()):
                errors.append(f"{where}.next[{i}].publish: values must be strings (quote literals)")
    for key in LEGACY_TARGETS:
        if task.get(key) is not None:
            found.append(str(task[key]))
    decisions = task.get("decision") or []
    defaults = 0
    for i, branch in enumerate(decisions if isinstance(decisions, list) else []):
        if not isinstance(branch, dict):
            continue
        if branch.get("default"):
            defaults += 1
        elif not branch.get("when"):
            errors.append(f"{where}.decision[{i}]: needs 'when' unless it is the default")
        if branch.get("next") is not None:
            found.append(str(branch["next"]))
    if defaults > 1:
        errors.append(f"{where}.decision: at most one default branch")
    return found


def _check_tasks(tasks: Any, where: str, errors: list[str]) -> None:
    if not isinstance(tasks, list) or not tasks:
        errors.append(f"{where}: at least one task is required")
        return
    names: list[str] = []
    for i, task in enumerate(tasks):
        here = f"{where}[{i}]"
        if not isinstance(task, dict):
            errors.append(f"{here}: must be a mapping")
            continue
        name = task.get("name")
        if not isinstance(name, str) or not name or len(name) > 255:
            errors.append(f"{here}.name: required, 1-255 characters")
            continue
        here = f"task '{name}'"
        if name in names:
            errors.append(f"{here}: Duplicate task name")
        if name in RESERVED:
            errors.append(f"{here}: '{name}' is a reserved word")
        names.append(name)
        kind = task.get("type", "action")
        if kind not in ("action", "workflow", "parallel"):
            errors.append(f"{here}.type: must be action, workflow or parallel")
        if kind in ("action", "workflow"):
            action = task.get("action")
            parts = str(action).split(".") if isinstance(action, str) else []
            if not action:
                errors.append(f"{here}.action: required for {kind} tasks")
            elif len(parts) < 2 or not all(parts):
                errors.append(f"{here}.action: invalid action ref '{action}' (expected pack.name)")
        if kind == "parallel":
            _check_tasks(task.get("tasks"), f"{here}.tasks", errors)
        if "with_items" in task and not isinstance(task["with_items"], str):
            errors.append(f"{here}.with_items: must be a template string")
        for key in ("batch_size", "concurrency"):
            if key in task and (not isinstance(task[key], int) or task[key] <= 0):
                errors.append(f"{here}.{key}: must be a positive integer")
        retry = task.get("retry")
        if retry is not None:
            if not isinstance(retry, dict) or "count" not in retry or "delay" not in retry:
                errors.append(f"{here}.retry: needs count and delay")
            else:
                count = retry.get("count")
                if not isinstance(count, int) or not 1 <= count <= 100:
                    errors.append(f"{here}.retry.count: must be 1-100")
                max_delay, delay = retry.get("max_delay"), retry.get("delay")
                if isinstance(max_delay, int) and isinstance(delay, int) and max_delay < delay:
                    errors.append(f"{here}.retry.max_delay: must be at least delay")
    known = set(names)
    graph: dict[str, list[str]] = {}
    for task in tasks:
        if isinstance(task, dict) and isinstance(task.get("name"), str):
            targets = _targets(task, f"task '{task['name']}'", errors)
            graph[task["name"]] = targets
            for target in targets:
                if target not in known:
                    errors.append(f"task '{task['name']}': transition to unknown task '{target}'")
    targeted = {t for ts in graph.values() for t in ts}
    entries = [n for n in names if n not in targeted]
    if entries:
        seen: set[str] = set()
        stack = list(entries)
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(t for t in graph.get(node, []) if t in known)
        for name in names:
            if name not in seen:
                errors.append(f"task '{name}': Unreachable task")


def validate_document(doc: Any) -> list[str]:
    """Problems of a parsed workflow document; empty when it is valid."""
    if not isinstance(doc, dict):
        return ["the document must be a mapping"]
    errors: list[str] = []
    _text(doc, "ref", 255, errors)
    _text(doc, "label", 255, errors)
    _text(doc, "version", 50, errors)
    ref = doc.get("ref")
    if isinstance(ref, str) and (len(ref.split(".")) < 2 or not all(ref.split("."))):
        errors.append(f"ref: '{ref}' must be pack.name")
    variables = doc.get("vars")
    if isinstance(variables, list):
        names = [k for item in variables if isinstance(item, dict) for k in item]
    elif isinstance(variables, dict):
        names = list(variables)
    elif variables is None:
        names = []
    else:
        errors.append("vars: must be a mapping")
        names = []
    errors.extend(
        f"vars: invalid name '{n}' (letters, digits, _ and -)" for n in names if not VAR_NAME.match(str(n))
    )
    output_map = doc.get("output_map")
    if isinstance(output_map, dict) and not all(isinstance(v, str) for v in output_map.values()):
        errors.append("output_map: values must be template strings")
    _check_tasks(doc.get("tasks"), "tasks", errors)
    return errors


def validate_file(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(document, problems) of a workflow file; the file name must match the ref's last part."""
    if path.stat().st_size > MAX_FILE_BYTES:
        return None, ["the file is larger than 1 MiB"]
    try:
        doc = safe_yaml.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return None, [f"not valid YAML: {exc}"]
    errors = validate_document(doc)
    if isinstance(doc, dict) and isinstance(doc.get("ref"), str) and "." in doc["ref"]:
        if doc["ref"].rsplit(".", 1)[1] != path.stem:
            errors.append(f"ref: '{doc['ref']}' does not end with the file name '{path.stem}'")
    return (doc if isinstance(doc, dict) else None), errors
