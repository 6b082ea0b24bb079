"""The one place the installer reads YAML (pack manifests fetched from untrusted sources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attune.domain import safe_yaml


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely: no Python object tags, bounded depth, size and aliases.

    Raises ``yaml.YAMLError`` (docs/security.md "Input limits").
    """
    return safe_yaml.load(path.read_text(encoding="utf-8"))
