"""The definitions a worker reads for every run of an action, kept between runs (docs/performance.md).

An action's row, its runtime and the runtime's versions change only when a pack is registered
again or an action or runtime is updated. Each run still reads their freshness stamp
(:func:`attune.db.repos.action_inputs.run_inputs`) and reloads them when it differs, so a run
never starts from a stale definition, in this process or after another one wrote it.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from attune.db.database import Database
from attune.db.models import Action
from attune.db.models import Runtime as RuntimeRow
from attune.lru import LruCache

#: Actions remembered per database; an evicted one is read again on its next run.
SIZE = 256


@dataclass(frozen=True)
class Definition:
    """An action as its runs need it; shared by them, so never modified."""

    stamp: Hashable
    action: Action
    runtime_row: RuntimeRow | None
    version_rows: tuple[dict[str, Any], ...]


# One cache per database: tests run several deployments, each with its own ids, in one process.
_CACHES: weakref.WeakKeyDictionary[Database, LruCache[int, Definition]] = weakref.WeakKeyDictionary()


def _cache(db: Database) -> LruCache[int, Definition]:
    cache = _CACHES.get(db)
    if cache is None:
        cache = _CACHES[db] = LruCache(SIZE)
    return cache


def cached(db: Database, action_id: int, stamp: Hashable) -> Definition | None:
    """The definition of ``action_id`` kept under ``stamp``; None when unknown or outdated."""
    found = _cache(db).get(action_id)
    return found if found is not None and found.stamp == stamp else None


def remember(db: Database, definition: Definition) -> None:
    """Keep ``definition`` for the next runs of its action (read after its stamp was)."""
    _cache(db).put(definition.action.id, definition)
