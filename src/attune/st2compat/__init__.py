"""StackStorm compatibility: st2 packs' Python actions and sensors run unmodified (docs/stackstorm.md).

``IMPORT_ROOT`` holds the importable ``st2common`` and ``st2reactor`` packages. The worker and the
sensor service put it on ``PYTHONPATH`` only for st2-format packs (runtime ``core.stackstorm``), so
nothing named ``st2common`` is visible to other code. Everything under it uses the standard library
only, because it runs inside the pack's own virtualenv.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["IMPORT_ROOT", "PACKAGE_ROOT"]

IMPORT_ROOT = Path(__file__).resolve().parent
"""Directory to put on ``PYTHONPATH`` so that ``import st2common`` finds the compatibility layer."""

PACKAGE_ROOT = IMPORT_ROOT.parent.parent
"""Directory holding the ``attune`` package, so the runner shim imports from a pack's virtualenv."""
