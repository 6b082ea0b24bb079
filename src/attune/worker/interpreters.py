"""Which binary runs a runtime version on this host (docs/packs.md "Runtime versions").

A version names its own interpreter (``node20``, ``python3.12``), but many hosts have only the
generic binary (``node``) at that version. A version counts as installed when its own
interpreter is on ``PATH``, or when one of its verification commands passed (``node --version``
printing ``v20.…``) and that command's binary is on ``PATH``; the run then uses that binary.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Mapping
from typing import Any

from attune.lru import LruCache
from attune.worker import commands, versions

# Verification outcomes by verification block: the binary that passed ("" for none). A worker
# verifies at start-up too, so a version that changes needs a worker restart either way.
_VERIFIED: LruCache[str, str] = LruCache(64)


def runnable(binary: Any, checked: str | None) -> bool:
    """Whether a version whose verification passed through ``checked`` can run here: it has no
    interpreter of its own (native), its interpreter is on ``PATH``, or ``checked`` is."""
    if not isinstance(binary, str) or not binary.strip():
        return True
    if shutil.which(binary.strip()) is not None:
        return True
    return bool(checked) and shutil.which(str(checked)) is not None


async def resolve(config: dict[str, Any], distributions: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``interpreter.binary`` replaced by the verified binary when the configured
    one is not on ``PATH`` (unchanged otherwise, or when nothing better is found)."""
    interpreter = commands.section(config, "interpreter")
    binary = interpreter.get("binary")
    if not isinstance(binary, str) or not binary.strip() or shutil.which(binary.strip()) is not None:
        return config
    key = json.dumps(distributions.get("verification"), sort_keys=True, default=str)
    checked = _VERIFIED.get(key)
    if checked is None:
        available, found = await versions.check_commands(distributions, fallback_binary=None)
        checked = _VERIFIED.put(key, (found or "") if available else "")
    if not checked or shutil.which(checked) is None:
        return config
    resolved = copy.deepcopy(config)
    resolved["interpreter"] = {**interpreter, "binary": checked}
    return resolved
