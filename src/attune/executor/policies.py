"""Execution policies: which limits apply to an action (docs/operations.md, docs/development.md).

A policy row has one of three scopes, decided by which columns are set:

* **action** — ``action`` is set (the row may also name its owning pack; the action wins);
* **pack** — only ``pack`` is set: every action of that pack;
* **global** — neither is set: every action.

:class:`PolicySet` is an immutable snapshot of the ``policy`` table that answers "which concurrency
limit and which rate limits apply to this action" without touching the database, so the executor
can swap a reloaded snapshot in atomically. The executor compares :func:`fingerprint` before each
decision, so a policy applies from the commit that writes it (docs/policies.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.db.repos import executions
from attune.db.repos import policies as repo

Scope = Literal["action", "pack", "global"]

CONCURRENCY = "concurrency"
RATE_LIMIT = "rate_limit"


@dataclass(frozen=True)
class Policy:
    """One loaded policy row, reduced to what enforcement needs."""

    id: int
    kind: str
    threshold: int
    window_seconds: int | None
    method: str
    action_id: int | None
    pack_id: int | None
    #: Whether manual runs (``POST /executions/execute``, re-runs) count against this policy.
    apply_to_manual: bool = True

    @property
    def scope(self) -> Scope:
        """``action`` when bound to an action, else ``pack`` when bound to a pack, else ``global``."""
        if self.action_id is not None:
            return "action"
        if self.pack_id is not None:
            return "pack"
        return "global"

    def applies_to(self, action_id: int, pack_id: int) -> bool:
        """Whether an execution of ``action_id`` (in ``pack_id``) falls within this policy's scope."""
        scope = self.scope
        if scope == "action":
            return self.action_id == action_id
        if scope == "pack":
            return self.pack_id == pack_id
        return True


_SCOPE_ORDER: tuple[Scope, ...] = ("action", "pack", "global")


class PolicySet:
    """An immutable, in-memory view of the policy table."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        # Ordered by id so that ties are decided the same way on every load.
        self._policies: tuple[Policy, ...] = tuple(sorted(policies, key=lambda p: p.id))

    @classmethod
    def from_rows(cls, rows: Iterable[models.Policy]) -> PolicySet:
        """Build a set from ORM rows.

        A row that names an action by ref whose id is NULL (the action is gone) is inert: treating
        it as pack-wide or global would silently widen its reach.
        """
        policies = [
            Policy(
                id=row.id,
                kind=row.kind,
                threshold=row.threshold,
                window_seconds=row.window_seconds,
                method=row.method,
                action_id=row.action,
                pack_id=row.pack,
                apply_to_manual=row.apply_to_manual is not False,
            )
            for row in rows
            if not (row.action is None and row.action_ref)
        ]
        return cls(policies)

    def __len__(self) -> int:
        return len(self._policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies)

    def _applicable(
        self, kind: str, action_id: int, pack_id: int, scope: Scope, manual: bool
    ) -> list[Policy]:
        return [
            p
            for p in self._policies
            if p.kind == kind
            and p.scope == scope
            and p.applies_to(action_id, pack_id)
            and (p.apply_to_manual or not manual)
        ]

    def concurrency_for(self, action_id: int, pack_id: int, *, manual: bool = False) -> Policy | None:
        """The effective concurrency policy: the most specific scope that has one (action > pack >
        global); ``None`` means unlimited. Several at the same scope: the lowest threshold wins.
        For a ``manual`` run, policies with ``apply_to_manual: false`` are left out."""
        for scope in _SCOPE_ORDER:
            candidates = self._applicable(CONCURRENCY, action_id, pack_id, scope, manual)
            if candidates:
                return min(candidates, key=lambda p: (p.threshold, p.id))
        return None

    def rate_limits_for(self, action_id: int, pack_id: int, *, manual: bool = False) -> list[Policy]:
        """Every applicable rate limit, in check order: action, then pack, then global (for a
        ``manual`` run, those with ``apply_to_manual: false`` are left out)."""
        ordered: list[Policy] = []
        for scope in _SCOPE_ORDER:
            ordered.extend(self._applicable(RATE_LIMIT, action_id, pack_id, scope, manual))
        return ordered


async def load_policies(session: AsyncSession) -> PolicySet:
    """Read the whole ``policy`` table into a :class:`PolicySet`."""
    return PolicySet.from_rows(await repo.all_by_id(session))


#: What changes whenever a policy row is inserted, updated or deleted (see :func:`fingerprint`).
Fingerprint = tuple[int, int | None, datetime | None]


async def fingerprint(session: AsyncSession) -> Fingerprint:
    """``(rows, highest id, latest update)`` of the ``policy`` table: one cheap aggregate that
    differs after any committed insert, update or delete, so the executor knows when its
    :class:`PolicySet` is out of date without reading the whole table."""
    return await repo.fingerprint(session)


async def _count_in_window(
    session: AsyncSession, policy: Policy, since: datetime, exclude: int | None = None
) -> int:
    if policy.scope == "action":
        return await executions.created_since(session, since, action_id=policy.action_id, exclude=exclude)
    if policy.scope == "pack":
        return await executions.created_since(session, since, pack_id=policy.pack_id, exclude=exclude)
    return await executions.created_since(session, since, exclude=exclude)


async def rate_limit_violation(
    session: AsyncSession,
    policies: Sequence[Policy],
    *,
    action_id: int,
    pack_id: int,
    now: datetime,
    exclude: int | None = None,
) -> Policy | None:
    """The first rate limit that a new execution of ``action_id`` would break, or ``None``.

    ``policies`` are checked in the given order (use :meth:`PolicySet.rate_limits_for`); policies
    that are not rate limits or do not cover the action are ignored. A policy is violated when the
    executions created in its scope during the last ``window_seconds`` already number
    ``threshold`` or more (``exclude``: an execution already inserted that is being checked).
    """
    for policy in policies:
        if policy.kind != RATE_LIMIT or not policy.applies_to(action_id, pack_id):
            continue
        if policy.window_seconds is None:  # the table allows it; without a window there is no limit
            continue
        since = now - timedelta(seconds=policy.window_seconds)
        if await _count_in_window(session, policy, since, exclude) >= policy.threshold:
            return policy
    return None
