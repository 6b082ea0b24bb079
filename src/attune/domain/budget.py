"""What one template or expression evaluation may cost: time, output size and memory built.

docs/security.md "Input limits": a rule's ``action_params``, a rule condition and a workflow's
expressions are written by users, so evaluating them must not stall or exhaust the server. Threads
cannot be cancelled, so the limits are cooperative: the sandbox calls :meth:`Budget.check` on
every loop iteration, call and attribute access, and :meth:`Budget.charge` for every string or list
it builds, and both raise :class:`BudgetExceeded` once the render is over its limits. The render
itself runs in a small dedicated thread pool (:func:`offload`), off the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "Budget",
    "BudgetExceeded",
    "RenderLimits",
    "budgeted_iter",
    "charge",
    "check",
    "configure",
    "current",
    "json_size_within",
    "limits",
    "offload",
    "scope",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

MIB = 1024 * 1024


@dataclass(frozen=True)
class RenderLimits:
    """The budget of one render (settings ``limits.template_*``, docs/configuration.md)."""

    #: Seconds one render may run.
    timeout: float = 5.0
    #: Largest rendered result: characters of text, or of the JSON form of a typed value. Above
    #: the worker's 10 MiB output cap, so a workflow can pass a whole action result on.
    max_output: int = 16 * MIB
    #: Characters (strings) plus elements (lists) a render may build in total, intermediate values
    #: included; it stops ``{% set s = s ~ s %}`` doubling long before memory runs out.
    max_build: int = 64 * MIB
    #: Threads of the render pool: at most this many renders run at once, the rest wait.
    workers: int = 4


class BudgetExceeded(Exception):
    """A render went over its time, output or build limit."""


class Budget:
    """The running account of one render (thread-confined)."""

    __slots__ = ("built", "deadline", "limits")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout
        self.built = 0

    def check(self) -> None:
        """Raise once the render has run longer than its time limit."""
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"took longer than the limit of {self.limits.timeout:g} s")

    def charge(self, size: int) -> None:
        """Account ``size`` characters or elements just built; raise past the build limit."""
        self.built += size
        if self.built > self.limits.max_build:
            raise BudgetExceeded(f"builds more than the limit of {self.limits.max_build} characters")
        self.check()

    def output(self, size: int) -> None:
        """Raise when a result of ``size`` characters is larger than the output limit."""
        if size > self.limits.max_output:
            raise BudgetExceeded(f"output is larger than the limit of {self.limits.max_output} characters")


_state = threading.local()
_limits = RenderLimits()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def configure(new: RenderLimits) -> None:
    """Install the process-wide limits (the server calls it with its settings at start)."""
    global _limits, _pool
    with _pool_lock:
        if _pool is not None and new.workers != _limits.workers:
            _pool.shutdown(wait=False)
            _pool = None
        _limits = new


def limits() -> RenderLimits:
    """The process-wide limits."""
    return _limits


def current() -> Budget | None:
    """The budget of the render running on this thread, if any."""
    budget: Budget | None = getattr(_state, "budget", None)
    return budget


@contextmanager
def scope(render_limits: RenderLimits | None = None) -> Iterator[Budget]:
    """Run a render under a budget; nested renders share the outermost one (one deadline)."""
    running = current()
    if running is not None:
        yield running
        return
    budget = Budget(render_limits or _limits)
    _state.budget = budget
    try:
        yield budget
    finally:
        _state.budget = None


def check() -> None:
    """:meth:`Budget.check` on the running budget (no-op outside a render)."""
    budget = current()
    if budget is not None:
        budget.check()


def charge(size: int) -> None:
    """:meth:`Budget.charge` on the running budget (no-op outside a render)."""
    budget = current()
    if budget is not None:
        budget.charge(size)


def budgeted_iter(iterable: Iterable[_T]) -> Iterator[_T]:
    """``iterable``, checking the deadline before each item (wraps every template ``for`` loop)."""
    budget = current()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.check()
        yield item


def json_size_within(value: Any, limit: int) -> bool:
    """Whether the JSON text of ``value`` stays within ``limit`` characters (an upper estimate).

    It walks the value and stops as soon as the estimate passes ``limit``, so a list that repeats
    one long string a million times is refused without being serialised.
    """
    remaining = limit
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            remaining -= len(item) + 2
        elif isinstance(item, dict):
            remaining -= 2 + len(item)
            for key, entry in item.items():
                remaining -= len(str(key)) + 3
                stack.append(entry)
                if remaining < 0:
                    return False
        elif isinstance(item, list | tuple):
            remaining -= 2 + len(item)
            if remaining < 0:
                return False
            stack.extend(item)
        elif isinstance(item, bool) or item is None:
            remaining -= 5
        elif isinstance(item, int) and -(10**18) < item < 10**18:
            remaining -= len(str(item))
        else:
            remaining -= 24  # other numbers and anything else rendered short
        if remaining < 0:
            return False
    return True


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, _limits.workers), thread_name_prefix="render")
        return _pool


async def offload(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run ``fn`` in the render pool under one budget, off the event loop.

    The render stops itself at its deadline; waiting also stops a little later in case ``fn`` is
    stuck where the sandbox cannot interrupt it (its thread then stays busy until it returns, and
    the pool is bounded, so such renders cannot multiply threads).
    """
    render_limits = _limits
    call = functools.partial(_run_scoped, render_limits, fn, *args, **kwargs)
    context = contextvars.copy_context()
    future = asyncio.get_running_loop().run_in_executor(_executor(), context.run, call)
    # Queueing counts too: a full pool must not make a caller wait for ever.
    grace = render_limits.timeout * 2 + 1.0
    try:
        return await asyncio.wait_for(future, timeout=grace)
    except TimeoutError:
        raise BudgetExceeded(
            f"took longer than the limit of {render_limits.timeout:g} s (still running)"
        ) from None


def _run_scoped(render_limits: RenderLimits, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    with scope(render_limits):
        return fn(*args, **kwargs)
