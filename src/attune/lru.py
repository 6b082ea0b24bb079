"""A small least-recently-used map for the per-instance caches (templates, workflow specs, states)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``size`` entries; storing one more drops the least recently used.

    Thread-safe: templates are compiled and cached from the render threads too.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def pop(self, key: K) -> V | None:
        """Remove and return the value for ``key``, or None."""
        with self._lock:
            return self._items.pop(key, None)

    def put(self, key: K, value: V) -> V:
        """Store ``value`` as the most recently used entry; returns it."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return value
