"""``st2common.runners.base_action.Action``: subclass it and implement ``run(**parameters)``.

As in StackStorm: ``self.config`` is the pack configuration, ``self.logger`` a logger named after
the action, ``self.action_service`` reads and writes keys (``get_value``/``set_value``/…). ``run()``
returns the result, or a ``(succeeded, result)`` tuple.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from .._datastore import DatastoreClient

__all__ = ["Action", "ActionService"]


class ActionService:
    """Datastore access of a running action (st2's ``action_service``)."""

    def __init__(self, pack: str) -> None:
        self._client = DatastoreClient(pack)
        self.get_value = self._client.get_value
        self.set_value = self._client.set_value
        self.delete_value = self._client.delete_value
        self.list_values = self._client.list_values


class Action:
    """Base class of a StackStorm Python action."""

    def __init__(
        self, config: dict[str, Any] | None = None, action_service: ActionService | None = None
    ) -> None:
        self.config = config or {}
        pack = os.environ.get("ATTUNE_ACTION", "pack.action").split(".", 1)[0]
        self.action_service = action_service or ActionService(pack)
        self.logger = logging.getLogger(f"st2.action.{os.environ.get('ATTUNE_ACTION', 'action')}")
        if not self.logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self.logger.addHandler(handler)
            self.logger.setLevel(logging.DEBUG)

    def run(self, **kwargs: Any) -> Any:
        """Do the work; override in the action."""
        raise NotImplementedError("the action must implement run()")
