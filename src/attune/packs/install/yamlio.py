"""The one place the installer reads YAML (pack manifests fetched from untrusted sources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely (no Python object tags)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))
