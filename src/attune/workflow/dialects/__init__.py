"""Workflow dialects: each front end turns its documents into a native document for the conductor.

docs/workflows.md and docs/stackstorm.md. ``detect`` names the dialect of a document;
``to_native`` rewrites an Orquesta, task-map or ActionChain document into Attune's native form
(``dialect`` recorded in it), which ``native.parse_native`` then checks and turns into the
``WorkflowSpec`` the pure conductor runs. Stored definitions are always native documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune.workflow.dialects import actionchain, orquesta, taskmap
from attune.workflow.dialects.native import parse_native
from attune.workflow.model import WorkflowSpec, WorkflowValidationError

__all__ = ["detect", "parse", "to_native"]

ORQUESTA_RUNNERS = frozenset({"orquesta"})
ACTION_CHAIN_RUNNERS = frozenset({"action-chain", "action_chain", "actionchain"})
_TASK_MAP_KEYS = ("on-success", "on-error", "on-complete")


def detect(doc: Mapping[str, Any], runner_type: str | None = None) -> str:
    """``attune``, ``orquesta``, ``task-map`` or ``action-chain`` for a workflow document.

    Orquesta: ``runner_type: orquesta`` on the action, or a map of tasks (``version: 1.0``).
    ActionChain: ``runner_type: action-chain`` or a ``chain`` list. Task-map: ``tasks`` is a map
    whose tasks use ``on-success``/``on-error``/``on-complete``. Anything else is native.
    """
    runner = (runner_type or "").strip().lower()
    if runner in ACTION_CHAIN_RUNNERS or (isinstance(doc.get("chain"), list) and "tasks" not in doc):
        return "action-chain"
    tasks = doc.get("tasks")
    if isinstance(tasks, Mapping):
        uses_task_map = any(
            isinstance(task, Mapping) and any(key in task for key in _TASK_MAP_KEYS)
            for task in tasks.values()
        )
        if uses_task_map and runner not in ORQUESTA_RUNNERS:
            return "task-map"
        return "orquesta"
    if runner in ORQUESTA_RUNNERS:
        return "orquesta"
    return "attune"


def to_native(
    doc: Mapping[str, Any],
    *,
    ref: str | None,
    runner_type: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The native document for ``doc`` of any dialect (a native document is returned as is).

    Raises WorkflowValidationError naming every problem of a dialect document.
    """
    if not isinstance(doc, Mapping):
        raise WorkflowValidationError(["the workflow document must be a mapping"])
    kind = detect(doc, runner_type)
    if kind == "attune":
        return dict(doc)
    if kind == "orquesta":
        return orquesta.to_native(doc, ref=ref, parameters=parameters)
    if kind == "task-map":
        return taskmap.to_native(doc, ref=ref, parameters=parameters)
    return actionchain.to_native(doc, ref=ref, parameters=parameters)


def parse(
    doc: Mapping[str, Any],
    *,
    ref: str | None = None,
    runner_type: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> WorkflowSpec:
    """Parse a document of any dialect into the conductor's ``WorkflowSpec``."""
    return parse_native(to_native(doc, ref=ref, runner_type=runner_type, parameters=parameters), ref=ref)
