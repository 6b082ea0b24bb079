"""The pure workflow conductor: ``(spec, state, event) → (state, commands)``.

No database, no bus, no clock reads beyond ``now()``/``uuid()`` expressions: the executor feeds
events (a child finished, a timer fired, a cancel/pause/resume/rerun request) and carries out the
returned commands (run a child, start a timer, cancel children, finish the parent, report paused).
``WorkflowState`` is plain JSON data (``to_dict``/``from_dict``) so it can be persisted between
steps. Semantics: docs/workflows.md, Orquesta-style failure handling.
Workflows of the Orquesta dialect (``spec.orquesta``) also get Orquesta's other rules: inputs and
templated ``vars`` in the context, tasks dispatched in name order, a failure handled only by a
transition that goes somewhere, expression errors failing the workflow, the engine commands
``noop``/``fail``/``retry``, ``errors`` and an ``output`` rendered on failure (docs/stackstorm.md).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from attune.domain import keyrefs, params
from attune.domain.templates import TemplateEngine, TemplateError, rfc3339
from attune.workflow import control, expressions, items, retries
from attune.workflow import outcome as ending
from attune.workflow.events import (
    ACTIVE,
    Cancel,
    CancelTasks,
    Command,
    Continue,
    Event,
    Finish,
    Pause,
    Paused,
    Rerun,
    Resume,
    RunTask,
    Start,
    StartTimer,
    TaskFinished,
    TimerFired,
    WorkflowState,
    command_from_dict,
    command_to_dict,
    event_from_dict,
    event_to_dict,
)
from attune.workflow.records import (
    TaskRecord,
    TaskStatus,
    WorkflowStatus,
    new_record,
    set_status,
    set_workflow_status,
)
from attune.workflow.spec import TaskSpec, WorkflowSpec

__all__ = [
    "Cancel",
    "CancelTasks",
    "Command",
    "Continue",
    "Event",
    "Finish",
    "Pause",
    "Paused",
    "Rerun",
    "Resume",
    "RunTask",
    "Start",
    "StartTimer",
    "TaskFinished",
    "TimerFired",
    "WorkflowState",
    "advance",
    "command_from_dict",
    "command_to_dict",
    "event_from_dict",
    "event_to_dict",
    "held",
    "start",
]


_MAX_WARNINGS = 100


# -- entry points ----------------------------------------------------------------------------------


def start(
    spec: WorkflowSpec,
    parameters: Mapping[str, Any],
    *,
    engine: TemplateEngine,
    max_runs: int = 1000,
    now: datetime | None = None,
    keys: keyrefs.KeyNamespace | None = None,
    room: int | None = None,
) -> tuple[WorkflowState, list[Command]]:
    """Begin a workflow: fill parameter defaults (docs/packs.md), dispatch every entry point.

    ``max_runs`` bounds task runs (loops through transitions); exceeding it fails the workflow.
    ``now`` fixes ``system.workflow_start`` (defaults to the current time). ``keys`` are the keys
    templates may read (``key.system.x``, ``st2kv('system.x')``). ``room``: see :func:`advance`.
    """
    state = WorkflowState(
        parameters=params.apply_defaults(parameters, spec.parameters),
        vars=copy.deepcopy(spec.vars),
        max_runs=max_runs,
        started_at=rfc3339(now or datetime.now(UTC)),
    )
    step = Step(spec, state, engine, keys, room)
    if spec.orquesta and not step.initial_context():
        step.settle()
        return state, step.commands
    for name in spec.entry_points():
        step.schedule(name, None)
    step.settle()
    return state, step.commands


def advance(
    spec: WorkflowSpec,
    state: WorkflowState,
    event: Event,
    *,
    engine: TemplateEngine,
    keys: keyrefs.KeyNamespace | None = None,
    room: int | None = None,
) -> tuple[WorkflowState, list[Command]]:
    """Apply one event and return the state with the commands to carry out.

    ``room`` (None: no limit) is how many ``RunTask`` the step may give at most; tasks and items
    past it wait, like the items a ``concurrency`` holds back, until a later ``Continue`` event
    (:func:`held` tells whether any wait), so the caller can bound the work of one transaction.

    ``state`` is updated in place (and returned) so that a with_items task of thousands of items
    costs O(1) per item; copy it first (``from_dict(to_dict())``) if the old state is needed.
    Events that do not apply (a duplicate or stale TaskFinished, a timer of a cancelled task, any
    event after the end except Rerun) change nothing and return no commands.
    """
    if isinstance(event, Start):
        return start(spec, event.parameters, engine=engine, max_runs=state.max_runs, keys=keys, room=room)
    step = Step(spec, state, engine, keys, room)
    if isinstance(event, Rerun):
        step.rerun(event.tasks)
    elif state.finished:
        return state, []
    elif isinstance(event, TaskFinished):
        step.task_finished(event.task, event.index, event.status, event.result)
    elif isinstance(event, TimerFired):
        step.timer_fired(event.task, event.index, event.kind)
    elif isinstance(event, Cancel):
        step.cancel()
    elif isinstance(event, Pause):
        step.pause()
    elif isinstance(event, Resume):
        step.resume()
    elif isinstance(event, Continue):
        control.proceed(step)
    step.settle()
    return state, step.commands


def held(spec: WorkflowSpec, state: WorkflowState) -> bool:
    """True when a running workflow has tasks or items that only a step's ``room`` holds back
    (a ``Continue`` event starts them)."""
    if state.status != "running":
        return False
    if state.queued:
        return True  # a running workflow queues only what the room held (a pause's go on resume)
    for name, record in state.tasks.items():
        if record.get("kind") != "items" or record["status"] != "running":
            continue
        count = len(record["items"])
        limit = spec.by_name[name].concurrency or count
        if record["inflight"] < limit and (record["redo"] or record["next"] < count):
            return True
    return False


# -- one step --------------------------------------------------------------------------------------


class Step:
    """Applies one event to the state, collecting commands (records: :mod:`attune.workflow.records`)."""

    def __init__(
        self,
        spec: WorkflowSpec,
        state: WorkflowState,
        engine: TemplateEngine,
        keys: keyrefs.KeyNamespace | None = None,
        room: int | None = None,
    ) -> None:
        self.spec = spec
        self.state = state
        self.engine = engine
        self.keys = keys
        #: How many more RunTask this step may give (None: no limit; :func:`advance`).
        self.room = room
        self.commands: list[Command] = []

    def initial_context(self) -> bool:
        """Orquesta: inputs, then ``vars`` rendered in order, form the context; False on an error."""
        state = self.state
        rolling: dict[str, Any] = {}
        state.vars = rolling
        for name, value in list(state.parameters.items()):
            rolling[name] = self.render_strict(value, "input", name)
            state.parameters[name] = rolling[name]
        for name, value in self.spec.vars.items():
            rolling[name] = self.render_strict(value, "vars", name)
        return not state.errors

    def render_strict(self, value: Any, where: str, name: str) -> Any:
        """Render ``value``; a failure becomes a workflow error (Orquesta fails on any of them)."""
        try:
            return expressions.render(self.engine, value, self.context(None))
        except TemplateError as exc:
            self.engine_error(name, f"{where}.{name}: {exc.message}")
            return None

    def engine_error(self, task: str, message: str) -> None:
        """A failure of the workflow itself (an expression, a ``fail`` command, a join)."""
        self.state.errors.append({"task": task, "status": "failed", "error": message, "engine": True})

    # -- helpers -----------------------------------------------------------------------------------

    def context(
        self,
        trigger: str | None,
        outcome: expressions.Outcome | None = None,
        *,
        task: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Evaluation context; ``result()`` is ``outcome`` or else the recorded ``trigger`` task.

        ``ctx()`` is ``variables``, else (Orquesta) the branch context of ``task``, else the
        workflow's variables.
        """
        if variables is None:
            variables = self.task_vars(task)
        if outcome is None and trigger is not None:
            record = self.state.tasks.get(trigger)
            if record is not None and "result" in record:
                outcome = expressions.Outcome(record["status"], record["result"])
        return expressions.build_context(
            parameters=self.state.parameters,
            variables=variables,
            tasks=self.state.tasks,
            outcome=outcome,
            started_at=self.state.started_at,
            orquesta=self.spec.orquesta,
            keys=self.keys,
        )

    def task_vars(self, task: str | None) -> Mapping[str, Any]:
        """Orquesta: each task sees the context of its branch (docs/stackstorm.md#orquesta)."""
        if self.spec.orquesta and task is not None:
            record = self.state.tasks.get(task)
            if record is not None and isinstance(record.get("ctx"), Mapping):
                scoped: Mapping[str, Any] = record["ctx"]
                return scoped
        return self.state.vars

    def inbound_vars(self, name: str, sources: list[str]) -> dict[str, Any]:
        """The context a task starts with: its sources' published contexts merged in arrival
        order (a later one wins, as Orquesta merges a join); a start task gets the workflow's."""
        merged: dict[str, Any] = {}
        for source in sources:
            record = self.state.tasks.get(source)
            out = record.get("ctx_out") if record is not None else None
            merged.update(out if isinstance(out, Mapping) else self.state.vars)
        if not sources:
            previous = self.state.tasks.get(name)
            start = previous.get("ctx") if previous is not None else None
            merged.update(start if isinstance(start, Mapping) else self.state.vars)
        return copy.deepcopy(merged)

    def warn(self, message: str) -> None:
        if len(self.state.warnings) < _MAX_WARNINGS:
            self.state.warnings.append(message)

    def scope_errors(self, scope: str | None) -> list[dict[str, Any]]:
        if scope is None:
            return self.state.errors
        errors: list[dict[str, Any]] = self.state.tasks[scope].setdefault("errors", [])
        return errors

    def children_running(self) -> bool:
        for record in self.state.tasks.values():
            kind = record.get("kind")
            if kind == "items":
                if record["status"] == "running" and record["inflight"] - len(record["waiting"]) > 0:
                    return True
            elif kind != "parallel" and record["status"] == "running":
                return True
        return False

    # -- scheduling --------------------------------------------------------------------------------

    def schedule(self, name: str, trigger: str | None, sources: list[str] | None = None) -> None:
        """Start task ``name`` (triggered by task ``trigger``; a join by all of ``sources``):
        gate, delay, then begin."""
        state = self.state
        record = state.tasks.get(name)
        if record is not None and record["status"] in ACTIVE:
            return  # already on its way; a transition never starts a second concurrent run
        task = self.spec.by_name[name]
        branch = None
        if self.spec.orquesta:
            if sources is None:
                sources = [trigger] if trigger is not None else []
            branch = self.inbound_vars(name, sources)
        state.runs += 1
        if state.runs > state.max_runs:
            message = f"more than {state.max_runs} task runs (a loop without an exit?)"
            state.tasks[name] = new_record(TaskStatus.FAILED, trigger, error=message)
            state.errors.append({"task": name, "status": "failed", "error": message})
            return
        record = new_record(TaskStatus.PENDING, trigger)
        if branch is not None:
            record["ctx"] = branch
        state.tasks[name] = record
        if task.when is not None:
            try:
                go = expressions.evaluate_condition(self.engine, task.when, self.context(trigger, task=name))
            except TemplateError as exc:
                self.warn(f"{name}: when failed, running the task: {exc.message}")
                go = True
            if not go:
                set_status(record, TaskStatus.SKIPPED)
                return
        if task.delay:
            set_status(record, TaskStatus.DELAYED)
            self.commands.append(StartTimer(name, None, "delay", float(task.delay)))
            return
        self.begin(name)

    def begin(self, name: str) -> None:
        state = self.state
        record = state.tasks[name]
        task = self.spec.by_name[name]
        plain = task.type != "parallel" and task.with_items is None
        if state.status != "running" or (plain and self.room == 0):
            # Paused, or past the step's room: started on resume or by a Continue.
            set_status(record, TaskStatus.PENDING)
            state.queued.append([name, None, "begin"])
            return
        set_status(record, TaskStatus.RUNNING)
        if task.type == "parallel":
            record["kind"] = "parallel"
            record["errors"] = []
            for sub in task.tasks:
                state.tasks.pop(sub.name, None)
            for entry in self.spec.entry_points(name):
                self.schedule(entry, record["trigger"])
            self.close_parallel(name)
        elif task.with_items is not None:
            self.begin_items(name, task, record)
        else:
            self.run(name, None)

    def begin_items(self, name: str, task: TaskSpec, record: TaskRecord) -> None:
        items.begin(self, name, task, record)

    def refill(self, name: str) -> None:
        items.refill(self, name)

    def run(self, name: str, index: int | None) -> None:
        """Emit RunTask for a task (or one item) with its input rendered now."""
        state = self.state
        record = state.tasks[name]
        if state.status != "running" or self.room == 0:
            if index is None:
                set_status(record, TaskStatus.PENDING)
            else:
                record["waiting"].append(index)
            state.queued.append([name, index, "run"])
            return
        task = self.spec.by_name[name]
        context = self.context(record["trigger"], task=name)
        if index is None:
            set_status(record, TaskStatus.RUNNING)
            record["attempts"] += 1
            attempt = record["attempts"]
        else:
            attempt = record["item_attempts"].get(str(index), 0) + 1
            if task.retry is not None:
                record["item_attempts"][str(index)] = attempt
            item = items.named_item(record["items"][index], task.item_names)
            context = expressions.with_item(context, item, index, orquesta=self.spec.orquesta)
        try:
            rendered = expressions.render(self.engine, task.input, context)
        except TemplateError as exc:
            # The task fails without running; retrying would fail the same way.
            failure = {"succeeded": False, "error": f"input: {exc.message}"}
            if index is None:
                self.complete(name, "failed", failure)
            else:
                self.item_done(name, index, "failed", failure)
            return
        if task.action is None:
            # An Orquesta task without an action only routes: it succeeds at once.
            if index is None:
                self.complete(name, "completed", None)
            else:
                self.item_done(name, index, "completed", None)
            return
        if self.room is not None:
            self.room -= 1
        self.commands.append(RunTask(name, index, task.action, rendered, task.timeout, attempt))

    # -- results -----------------------------------------------------------------------------------

    def task_finished(self, name: str, index: int | None, status: str, result: Any) -> None:
        record = self.state.tasks.get(name)
        if record is None:
            return
        if status not in ("completed", "failed", "timeout", "cancelled"):
            status = "failed"  # any other end is a failure
        canceling = self.state.status == "canceling"
        if index is None:
            if record["status"] != "running" or record.get("kind") in ("items", "parallel"):
                return  # stale or duplicate delivery
            if not canceling and retries.should_retry(self, name, record["attempts"], status, result):
                set_status(record, TaskStatus.RETRYING)
                retries.retry_later(self, name, None, record["attempts"])
                return
            self.complete(name, status, result)
            return
        if (
            record.get("kind") != "items"
            or record["status"] != "running"
            or not 0 <= index < len(record["items"])
            or record["statuses"][index] is not None
            or index in record["waiting"]
            or index in record["redo"]
            or index >= record["next"]
        ):
            return
        attempts = record["item_attempts"].get(str(index), 1)
        if not canceling and retries.should_retry(self, name, attempts, status, result):
            record["waiting"].append(index)
            retries.retry_later(self, name, index, attempts)
            return
        self.item_done(name, index, status, result)
        if record["done"] == len(record["items"]):
            self.finish_items(name)
        else:
            self.refill(name)

    def timer_fired(self, name: str, index: int | None, kind: str) -> None:
        record = self.state.tasks.get(name)
        if record is None:
            return
        if kind == "delay":
            if index is None and record["status"] == "delayed":
                self.begin(name)
        elif index is None:
            if record["status"] == "retrying":
                self.run(name, None)
        elif record.get("kind") == "items" and record["status"] == "running" and index in record["waiting"]:
            record["waiting"].remove(index)
            self.run(name, index)

    def item_done(self, name: str, index: int, status: str, result: Any) -> None:
        items.item_done(self, name, index, status, result)

    def finish_items(self, name: str) -> None:
        items.finish_items(self, name)

    def close_parallel(self, name: str) -> None:
        """Finish parallel task ``name`` once none of its sub-tasks is active."""
        record = self.state.tasks.get(name)
        if record is None or record["status"] != "running":
            return
        subs = [self.state.tasks.get(sub.name) for sub in self.spec.by_name[name].tasks]
        if any(sub is not None and sub["status"] in ACTIVE for sub in subs):
            return
        results = [
            {"task": sub_spec.name, "status": sub["status"], "output": sub.get("result")}
            for sub_spec, sub in zip(self.spec.by_name[name].tasks, subs, strict=True)
            if sub is not None and sub["status"] != "skipped"
        ]
        self.complete(name, "failed" if record.get("errors") else "completed", {"results": results})

    def complete(self, name: str, status: str, result: Any) -> None:
        """Record a task's final outcome, then evaluate its transitions."""
        state = self.state
        record = state.tasks[name]
        set_status(record, TaskStatus(status))
        record["result"] = result
        if status != "completed" and isinstance(result, Mapping) and result.get("error"):
            record["error"] = str(result["error"])
        if state.status == "canceling":
            return
        task = self.spec.by_name[name]
        outcome = expressions.Outcome(status, result)
        # Orquesta: publishes go into this branch's context, passed on to the next tasks; the
        # workflow's variables (for the output) take them too, the latest publish winning.
        branch: dict[str, Any] = dict(self.task_vars(name)) if self.spec.orquesta else state.vars
        context = self.context(None, outcome, variables=branch)
        fired = False
        targets: list[str] = []
        for position, transition in enumerate(task.next):
            if not self.fires(name, position, transition.when, context, status):
                continue
            # Orquesta: only a transition that goes somewhere handles a failure.
            fired = fired or not self.spec.orquesta or bool(transition.do)
            for var, template in transition.publish:
                try:
                    branch[var] = ending.kept(expressions.render(self.engine, template, context))
                    state.vars[var] = branch[var]
                except TemplateError as exc:
                    if self.spec.orquesta:
                        self.engine_error(name, f"next[{position}] publish {var!r}: {exc.message}")
                    else:
                        self.warn(f"{name}: next[{position}] publish {var!r} failed: {exc.message}")
                    break
                context = self.context(None, outcome, variables=branch)
            targets.extend(target for target in transition.do if target not in targets)
        scope = self.spec.parent_of[name]
        errors = self.scope_errors(scope)
        if status != "completed" and not fired:
            errors.append({"task": name, "status": status, "error": record.get("error")})
        targets = self.commands_in(name, record, targets)
        if self.spec.orquesta:
            record["ctx_out"] = branch
            if targets:
                record.pop("ctx_end", None)
            else:
                # A branch ends here: the output merges the ends in the order they came (Orquesta).
                ends = [r.get("ctx_end", 0) for r in state.tasks.values()]
                record["ctx_end"] = max(ends, default=0) + 1
        if self.spec.orquesta:
            targets.sort()  # Orquesta starts the next tasks in name order
        if errors and not record.get("run_on_fail"):
            # An unhandled failure: let running tasks finish but start nothing new (Orquesta).
            state.held.extend([target, name] for target in targets)
        else:
            for target in targets:
                self.arrive(target, name)
        record.pop("run_on_fail", None)
        if scope is not None:
            self.close_parallel(scope)

    def commands_in(self, name: str, record: TaskRecord, targets: list[str]) -> list[str]:
        """Carry out the engine commands among ``targets`` and return the task names left.

        ``noop``/``continue`` do nothing; ``fail`` fails the workflow once running tasks end (the
        other targets of the step still run, so a cleanup task can sit beside it); ``retry``
        runs the task again.
        """
        tasks = [target for target in targets if target in self.spec.by_name]
        commands = [target for target in targets if target not in self.spec.by_name]
        if "fail" in commands:
            self.engine_error(name, f"the workflow was failed by the 'fail' command of task '{name}'")
            record["run_on_fail"] = True
        if "retry" in commands:
            tasks.append(name)
        return tasks

    def fires(self, name: str, position: int, when: str | None, context: dict[str, Any], status: str) -> bool:
        if when is None:
            return True
        try:
            return expressions.evaluate_condition(self.engine, when, context)
        except TemplateError as exc:
            if self.spec.orquesta:
                self.engine_error(name, f"next[{position}].when: {exc.message}")
                return False
            # Level 1 fallback: an unevaluable condition fires iff the task succeeded.
            self.warn(f"{name}: next[{position}].when failed: {exc.message}")
            return status == "completed"

    def arrive(self, target: str, source: str) -> None:
        """A transition from ``source`` into ``target`` fired: schedule it, or count it for a join."""
        task = self.spec.by_name[target]
        if task.join is not None:
            arrived = self.state.pending_joins.setdefault(target, [])
            if source not in arrived:
                arrived.append(source)
            needed = len(self.spec.inbound.get(target, [])) if task.join == "all" else int(task.join)
            if len(arrived) < needed:
                return
            del self.state.pending_joins[target]
            self.schedule(target, source, sources=arrived)
            return
        self.schedule(target, source)

    # -- control -----------------------------------------------------------------------------------

    def cancel(self) -> None:
        control.cancel(self)

    def pause(self) -> None:
        control.pause(self)

    def resume(self) -> None:
        control.resume(self)

    def rerun(self, names: list[str] | None) -> None:
        control.rerun(self, names)

    def settle(self) -> None:
        """Emit Paused/Finish when the step left nothing running (or nothing left to do)."""
        state = self.state
        if state.status == "canceling":
            if not self.children_running():
                for record in state.tasks.values():
                    if record["status"] in ACTIVE:
                        set_status(record, TaskStatus.CANCELLED)
                self.finish("cancelled")
        elif state.status == "pausing":
            if not self.children_running():
                state.status = set_workflow_status(state.status, WorkflowStatus.PAUSED)
                self.commands.append(Paused())
        elif state.status == "running":
            if not state.queued and not any(r["status"] in ACTIVE for r in state.tasks.values()):
                self.finish("failed" if state.errors else "completed")

    def finish(self, status: str) -> None:
        ending.finish(self, status)
